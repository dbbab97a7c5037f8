//! One module per command family: turn parsed flags into plain settings, call the domain
//! code, print the result, and decide the outcome.

pub mod bundle;
pub mod certs;
pub mod check;
pub mod deploy;
pub mod doctor;
pub mod journal;
pub mod man;
pub mod ownership;
