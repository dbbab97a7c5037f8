//! The ownership journal: what `own` changed, written and synced before the change.
//!
//! * [`format`]: the byte format (header, frames, records, checksums) and the streaming
//!   [`FrameReader`]: pure functions over bytes, what the fuzz target exercises.
//! * [`store`]: where journals live (the state directory), their names and permissions.
//! * [`writer`]: [`JournalWriter`] and the record batches the walk fills.
//! * [`read`]: summaries of journal files and their records, batch by batch.
//! * [`identity`]: which folder a journal belongs to, beyond its inode number.
//! * [`status`]: whether a journal's folder still exists (`journal list|prune`).

pub mod format;
pub mod identity;
pub mod read;
pub mod status;
pub mod store;
pub mod writer;

#[cfg(test)]
mod testdata;

pub use self::format::*;
pub use self::read::*;
pub use self::store::*;
pub use self::writer::*;
