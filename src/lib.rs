//! flowerbed: prepares Docker volumes, TLS material and deployments for Flower and for any
//! image that runs as a fixed non-root UID.
//!
//! The binary is a thin shell over this library so that integration tests, benchmarks and
//! fuzz targets reach the same code the command line runs.

pub mod app;
pub mod auth;
pub mod bundle;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod docker;
pub mod error;
pub mod fsutil;
pub mod hints;
pub mod output;
pub mod ownership;
pub mod prepare;
pub mod render;
pub mod superexec_auth;
pub mod tls;

/// The UID and GID that Flower's official images run as (user `app`).
pub const FLOWER_UID: u32 = 49_999;
/// See [`FLOWER_UID`].
pub const FLOWER_GID: u32 = 49_999;
