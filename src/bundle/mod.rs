//! A supernode operator's bundle: a superlink deployment packed for supernodes on other
//! hosts, and unpacked there.
//!
//! - [`archive`]: the tar format, written reproducibly and read back defensively (bounded
//!   names, headers, sizes and counts).
//! - [`metadata`]: what the bundle records about the superlink's server certificate.
//! - [`pack`]: the files a bundle holds, rendered for the supernode side.
//! - [`records`]: what the superlink's host keeps about the bundles it made.
//! - [`unpack`]: checking a bundle and the plan that lays it down in a new folder.

pub mod archive;
pub mod metadata;
pub mod pack;
pub mod records;
pub mod unpack;

pub use archive::{ArchiveFile, Entry, Unpacked, holds_private_key, read_archive, write_archive};
pub use metadata::{METADATA_FILE, SuperlinkCertificate};
