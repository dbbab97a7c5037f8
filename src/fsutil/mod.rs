//! Safe file access: planned, all-or-nothing writes ([`plan`]) and bounded reads of files
//! a user named ([`bounded`]).
//!
//! Every command that creates files (`certs generate`, `render --out`, `quickstart`) first
//! builds a [`WritePlan`], checks it against the disk ([`WritePlan::preflight`]), and only
//! then applies it. Files are written to a temporary name beside their target with their
//! final mode from the first byte, synced, and renamed into place; if anything fails, the
//! files and directories this plan created are removed and replaced files are put back.
//!
//! A plan made with [`WritePlan::new_dir`] creates one new folder as a whole instead: every
//! directory and file is written into a fresh staging folder beside it, which is renamed
//! into place as the last step (a missing or empty folder is replaced at once), so the
//! folder appears complete or not at all.

mod bounded;
mod create;
mod plan;

pub use bounded::{
    CERTIFICATE_LIMIT, Links, ReadError, TEXT_LIMIT, human_size, read_regular, read_regular_text,
};
pub use plan::{PlanStep, PlannedFile, WritePlan};

/// Mode for private keys: owner read/write only, from creation on.
pub const MODE_PRIVATE: u32 = 0o600;
/// Mode for certificates and other public files.
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode for directories that others may traverse.
pub const MODE_DIR_PUBLIC: u32 = 0o755;
/// Mode for directories that hold secrets nobody else needs (the CA folder).
pub const MODE_DIR_PRIVATE: u32 = 0o700;

/// `path` as one shell word, for a command the user is told to run (quoted only when it
/// needs to be; a path shlex cannot quote, one with a NUL, is shown as it is).
pub fn shell_word(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    shlex::try_quote(&text).map_or_else(|_| text.to_string(), std::borrow::Cow::into_owned)
}

/// The files of `dir` whose name ends in `.ext`, sorted by name; `None` when `dir` cannot
/// be listed (it is missing, or not a folder).
pub fn files_with_extension(dir: &std::path::Path, ext: &str) -> Option<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|found| found == ext))
        .collect();
    files.sort();
    Some(files)
}
