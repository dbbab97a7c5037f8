//! Where journals live: the state directory, the journals' names, their permissions.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Environment variable that overrides the state directory (tests, the Docker helper).
pub const STATE_DIR_ENV: &str = "FLOWERBED_STATE_DIR";

/// The directory journals are kept in.
///
/// Root uses a root-owned system location so the journal is out of reach of the container's
/// UID; anyone else uses their XDG state directory.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/flowerbed"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("flowerbed"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_STATE_HOME nor HOME is set: cannot place the journal")?;
    Ok(PathBuf::from(home).join(".local/state/flowerbed"))
}

/// The journal file for the root with this device and inode.
pub fn journal_path(dir: &Path, dev: u64, ino: u64) -> PathBuf {
    dir.join(format!("own-{dev:x}-{ino:x}.journal"))
}

/// The (device, inode) of every root that has a journal in `dir`, sorted, read off the file
/// names [`journal_path`] gives (nothing if the folder cannot be read).
pub fn journal_roots(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut roots: Vec<(u64, u64)> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let (dev, ino) = name
                .to_str()?
                .strip_prefix("own-")?
                .strip_suffix(".journal")?
                .split_once('-')?;
            Some((
                u64::from_str_radix(dev, 16).ok()?,
                u64::from_str_radix(ino, 16).ok()?,
            ))
        })
        .collect();
    roots.sort_unstable();
    roots
}

/// Create the state directory (0700) if needed and check nobody else can write into it.
///
/// `forbidden_uid` is the owner `own` hands out: a journal that UID could edit would let a
/// container steer a later `undo`.
pub fn ensure_state_dir(dir: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create the journal directory", dir.display()))?;
    check_private(dir, forbidden_uid)
}

fn check_private(path: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{}: journal location is a symbolic link; refusing to use it",
            path.display()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{}: journal location is writable by group or others (mode {:o}); run `chmod go-w {}`",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        );
    }
    if forbidden_uid == Some(meta.uid()) && meta.uid() != 0 {
        bail!(
            "{}: journal location is owned by UID {}, the owner being handed out; choose another {STATE_DIR_ENV}",
            path.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_roots_are_read_off_journal_names_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "own-fe00-1a.journal",
            "own-2-5.journal",
            "own-zz-1.journal",
            "own-1-2.txt",
            "notes",
            "own-3.journal",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            journal_path(dir.path(), 0xfe00, 0x1a),
            dir.path().join("own-fe00-1a.journal")
        );
        assert_eq!(journal_roots(dir.path()), vec![(2, 5), (0xfe00, 0x1a)]);
        assert!(journal_roots(&dir.path().join("missing")).is_empty());
    }
}
