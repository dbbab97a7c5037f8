//! Journals of overlapping trees (`own a`, then `own a/sub`): `undo` must replay them newest
//! first run first, or the older journal's state is overwritten by the newer's.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::journal;
use super::root::Root;

/// Refuse to undo `root` while an overlapping tree's journal is newer, naming the order
/// that restores exactly.
pub(super) fn check_order(
    state_dir: &Path,
    root: &Root,
    summary: &journal::JournalSummary,
    earlier: &[(u64, u64)],
) -> Result<()> {
    if let Some((other, file)) = newer_overlapping_journal(state_dir, root, summary, earlier) {
        bail!(
            "{}: {} has a journal of its own from a later own ({}); undo {} first, then {}, to restore exactly",
            root.path.display(),
            other.display(),
            file.display(),
            other.display(),
            root.path.display()
        );
    }
    Ok(())
}

/// A journal of a folder inside `root`'s tree (or holding it) whose first run came after
/// `root`'s first: undoing `root` first would leave the shared entries as that later run
/// found them, and undoing the other afterwards would put its owner back. Skips the roots
/// in `earlier` (undone before this one) and journals that no longer match their folder.
fn newer_overlapping_journal(
    state_dir: &Path,
    root: &Root,
    summary: &journal::JournalSummary,
    earlier: &[(u64, u64)],
) -> Option<(PathBuf, PathBuf)> {
    let first = |summary: &journal::JournalSummary| {
        let started = summary.sessions.first().map_or(0, |s| s.info.started);
        (started, born(&summary.file))
    };
    let ours = first(summary);
    for (dev, ino) in journal::journal_roots(state_dir) {
        if (dev, ino) == (root.dev, root.ino) || dev != root.dev || earlier.contains(&(dev, ino)) {
            continue;
        }
        let file = journal::journal_path(state_dir, dev, ino);
        let Ok(other) = journal::summarize(&file) else {
            continue;
        };
        let Some(session) = other.sessions.first() else {
            continue;
        };
        let other_path = PathBuf::from(&session.info.root);
        let overlaps = other_path.starts_with(&root.path) || root.path.starts_with(&other_path);
        let same = nix::sys::stat::lstat(&other_path).is_ok_and(|s| (s.st_dev, s.st_ino) == (dev, ino));
        if overlaps && same && first(&other) > ours {
            return Some((other_path, file));
        }
    }
    None
}

/// When a file was made, to the nanosecond (`None` where the filesystem does not say).
fn born(path: &Path) -> Option<(i64, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<nix::libc::statx>::zeroed();
    // SAFETY: statx writes at most one `struct statx` into `buf`; the path is NUL-terminated.
    let rc = unsafe {
        nix::libc::statx(
            nix::libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            nix::libc::STATX_BTIME,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: statx succeeded and filled the (zeroed) buffer.
    let sx = unsafe { buf.assume_init() };
    (sx.stx_mask & nix::libc::STATX_BTIME != 0).then_some((sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec))
}
