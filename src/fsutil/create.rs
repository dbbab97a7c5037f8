//! The primitives a write plan is built from: directories and files created with exactly
//! their mode whatever the umask (never through a link), staging names beside a target,
//! syncing many files at once, and the record of what to put back when a plan fails.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::MODE_DIR_PUBLIC;

pub(super) fn create_dir_all_recorded(dir: &Path, mode: u32, undo: &mut Undo) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            create_dir_all_recorded(parent, MODE_DIR_PUBLIC, undo)?;
        }
    }
    create_one_dir(dir, mode)?;
    undo.created_dirs.push(dir.to_path_buf());
    Ok(())
}

/// Create `dir` and its missing parents, each with exactly `mode`.
pub(super) fn create_dir_exact(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            create_dir_exact(parent, MODE_DIR_PUBLIC)?;
        }
    }
    create_one_dir(dir, mode)
}

fn create_one_dir(dir: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    // The umask may have narrowed the mode; set exactly what the plan says.
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot set mode", dir.display()))
}

/// Create a file that does not exist yet, with its final mode from the first byte (exact
/// regardless of umask; a private mode is never widened).
pub(super) fn create_file_exact(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    create_file_unsynced(path, contents, mode)?.sync_all()
}

/// Create `path` (never through a link) with exactly `mode`, whatever the umask, and write
/// `contents`; the caller syncs it.
fn create_file_unsynced(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    Ok(file)
}

pub(super) fn sibling_name(target: &Path, tag: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(format!("{tag}-{}-{}", std::process::id(), unique_suffix()));
    target.with_file_name(name)
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    nanos ^ (COUNTER.fetch_add(1, Ordering::Relaxed) << 32)
}

/// Write `contents` to a temporary name beside `path`, with the final `mode`; not yet synced.
pub(super) fn write_temp(path: &Path, contents: &[u8], mode: u32) -> Result<(PathBuf, File)> {
    let temp = sibling_name(path, ".flowerbed-new");
    match create_file_unsynced(&temp, contents, mode) {
        Ok(handle) => Ok((temp, handle)),
        Err(err) => {
            // Opened (ours) but not written, or not created at all.
            let created = err.kind() != std::io::ErrorKind::AlreadyExists && temp.symlink_metadata().is_ok();
            if created {
                let _ = fs::remove_file(&temp);
            }
            let what = if created { "cannot write" } else { "cannot create" };
            Err(anyhow::Error::new(err).context(format!("{}: {what}", path.display())))
        }
    }
}

/// fsync every staged file before any is renamed into place. Writeback of every file is
/// started first, so that it all goes to the disk together; the syncs that follow wait for
/// it, and the filesystem commits their metadata together.
pub(super) fn sync_all(handles: &[(File, &PathBuf)]) -> Result<()> {
    for (handle, _) in handles {
        // Only a head start: a failure here shows in the fsync below.
        // SAFETY: sync_file_range reads nothing from memory; the descriptor is open.
        let _ =
            unsafe { nix::libc::sync_file_range(handle.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE) };
    }
    for (handle, path) in handles {
        handle
            .sync_all()
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        let _ = handle.sync_all();
    }
}

/// What to put back if a plan fails half-way.
#[derive(Default)]
pub(super) struct Undo {
    pub(super) temps: Vec<PathBuf>,
    pub(super) created_files: Vec<PathBuf>,
    pub(super) backups: Vec<(PathBuf, PathBuf)>,
    pub(super) created_dirs: Vec<PathBuf>,
}

impl Undo {
    pub(super) fn commit(self) {
        for temp in &self.temps {
            let _ = fs::remove_file(temp);
        }
        for (backup, _) in &self.backups {
            let _ = fs::remove_file(backup);
        }
    }

    pub(super) fn rollback(self) {
        for temp in &self.temps {
            let _ = fs::remove_file(temp);
        }
        for file in &self.created_files {
            let _ = fs::remove_file(file);
        }
        for (backup, target) in &self.backups {
            let _ = fs::rename(backup, target);
        }
        for dir in self.created_dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}
