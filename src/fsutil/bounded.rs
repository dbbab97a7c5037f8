//! Reading a file a user named, safely when that name may point anywhere: only a regular
//! file is read, and at most a given number of bytes of it.
//!
//! The file is opened with `O_NONBLOCK` (so opening a FIFO returns at once instead of
//! waiting for a writer) and `O_NOCTTY`, and optionally `O_NOFOLLOW`; then the opened
//! descriptor is checked with `fstat`, so what is checked is what is read. A FIFO, a device,
//! a socket or a directory is refused by name, and so is a file over the limit, both by its
//! size before reading and by what a read actually returns (a file may grow meanwhile).

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a certificate, key or request file may hold.
pub const CERTIFICATE_LIMIT: u64 = 1 << 20;
/// The most a compose file, a `docker run` script or a small metadata file may hold.
pub const TEXT_LIMIT: u64 = 16 << 20;

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it, as `cat` does: the user named this path.
    Follow,
    /// Refuse it: the file sits in a folder that others (containers) may write.
    Refuse,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read ({source})")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: is a symbolic link; not following it here (name the file it points to)")]
    Symlink { path: String },
    #[error("{path}: is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path}: is {size}, over the {limit} limit")]
    TooLarge {
        path: String,
        size: String,
        limit: String,
    },
    #[error("{path}: is not UTF-8 text")]
    NotText { path: String },
}

impl ReadError {
    /// The file does not exist (callers with a better message for that case use it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Read all of `path`, a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, ReadError> {
    let shown = || path.display().to_string();
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| open_error(path, links, source))?;
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: shown(),
        source,
    })?;
    if let Some(kind) = non_regular_kind(&meta.file_type()) {
        return Err(ReadError::NotRegular { path: shown(), kind });
    }
    let too_large = |size: u64| ReadError::TooLarge {
        path: shown(),
        size: human_size(size),
        limit: human_size(limit),
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the limit tells a file that grew since fstat from one that fits.
    (&file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: shown(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Read `path` as UTF-8 text, bounded as [`read_regular`].
pub fn read_regular_text(path: &Path, limit: u64, links: Links) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, limit, links)?).map_err(|_| ReadError::NotText {
        path: path.display().to_string(),
    })
}

fn open_error(path: &Path, links: Links, source: std::io::Error) -> ReadError {
    let shown = path.display().to_string();
    // O_NOFOLLOW on a symbolic link fails with ELOOP.
    if links == Links::Refuse
        && source.raw_os_error() == Some(nix::libc::ELOOP)
        && path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
    {
        return ReadError::Symlink { path: shown };
    }
    // A socket cannot be opened (ENXIO); say what it is rather than "no such device".
    if let Ok(meta) = std::fs::metadata(path) {
        if let Some(kind) = non_regular_kind(&meta.file_type()) {
            return ReadError::NotRegular { path: shown, kind };
        }
    }
    ReadError::Io { path: shown, source }
}

fn non_regular_kind(kind: &std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else {
        Some("not a regular file")
    }
}

/// `1.0 GiB`, `16 MiB`, `512 bytes`: one decimal below ten units, none from ten on.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(16 << 20), "16 MiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(human_size((1 << 20) + (1 << 19)), "1.5 MiB");
        assert_eq!(human_size(1 << 20), "1.0 MiB");
        assert_eq!(human_size(1_000_000_000), "954 MiB");
    }

    #[test]
    fn reads_a_regular_file_within_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5, Links::Refuse).unwrap(), b"12345");
        let err = read_regular(&path, 4, Links::Follow).unwrap_err().to_string();
        assert!(err.ends_with("f: is 5 bytes, over the 4 bytes limit"), "{err}");
    }

    #[test]
    fn refuses_fifos_devices_directories_and_links_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fifo, 10, Links::Follow).unwrap_err().to_string();
        assert!(err.ends_with("fifo: is a FIFO, not a regular file"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 10, Links::Follow)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "/dev/zero: is a character device, not a regular file");
        let err = read_regular(tmp.path(), 10, Links::Follow)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with(": is a directory, not a regular file"), "{err}");
        let target = tmp.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::os::unix::fs::symlink(&target, tmp.path().join("link")).unwrap();
        assert_eq!(
            read_regular(&tmp.path().join("link"), 10, Links::Follow).unwrap(),
            b"x"
        );
        let err = read_regular(&tmp.path().join("link"), 10, Links::Refuse)
            .unwrap_err()
            .to_string();
        assert!(err.contains("link: is a symbolic link"), "{err}");
    }
}
