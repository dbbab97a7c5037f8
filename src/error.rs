//! User-facing error kinds and the process exit codes they map to.

use std::path::PathBuf;

/// The three outcomes a command can report, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything held / everything was done.
    Success,
    /// The command ran, and found problems (`check`, `certs verify`, partial walks).
    Findings,
    /// Bad input or a failure before anything useful happened; nothing on disk changed.
    BadInput,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Findings => 1,
            Outcome::BadInput => 2,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(outcome: Outcome) -> Self {
        std::process::ExitCode::from(outcome.code())
    }
}

/// Errors whose message tells the user which input is at fault and what to do instead.
///
/// Anything else travels as an `anyhow::Error` with context; both print as one line and
/// exit with [`Outcome::BadInput`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: already exists (pass {force} to replace it)", force = crate::hints::flag::FORCE)]
    AlreadyExists { path: PathBuf },

    #[error("{path}: is a symbolic link; refusing to write through it (pass the real path)")]
    SymlinkRefused { path: PathBuf },

    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },

    #[error("{flag}: {message}")]
    InvalidFlag { flag: &'static str, message: String },

    #[error("{0}")]
    Usage(String),
}
