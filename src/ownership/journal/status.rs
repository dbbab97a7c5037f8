//! Whether a journal's folder still exists: for `journal list`, `journal prune`, and the
//! pruning `own` and `release` do on their own device.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fstat};
use serde::Serialize;

use super::identity::{
    Observed, Recorded, Verdict, filesystem_id, identify, identify_fd, is_gone, judge, open_by_handle,
};
use super::read::{JournalSummary, first_session};
use super::store::{JournalLock, is_set_aside, journal_files, journal_name_root};

/// What became of a journal's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The folder exists (where it is now, if it moved).
    Live {
        #[serde(skip_serializing_if = "Option::is_none")]
        moved_to: Option<String>,
    },
    /// The folder is gone.
    Stale { reason: String },
    /// Another folder holds the inode the journal is named after.
    Mismatched { reason: String },
    /// Nothing proves either: kept.
    Unknown { reason: String },
}

impl Status {
    /// Whether `journal prune` removes it.
    pub fn prunable(&self) -> bool {
        matches!(self, Status::Stale { .. } | Status::Mismatched { .. })
    }

    /// One word and the reason, for the listing.
    pub fn describe(&self) -> String {
        match self {
            Status::Live { moved_to: None } => "live".into(),
            Status::Live { moved_to: Some(path) } => format!("live (moved to {path})"),
            Status::Stale { reason } => format!("stale ({reason})"),
            Status::Mismatched { reason } => format!("mismatched ({reason})"),
            Status::Unknown { reason } => format!("unknown ({reason})"),
        }
    }
}

/// The runs of a summary, as [`judge`] takes them.
pub fn runs(summary: &JournalSummary) -> Vec<Recorded<'_>> {
    summary
        .sessions
        .iter()
        .map(|s| Recorded {
            info: &s.info,
            root_entry: s.root_entry.as_ref(),
        })
        .collect()
}

/// Judge a journal by itself: find its folder through its file handle, or else at the
/// path it recorded.
pub fn status(summary: &JournalSummary) -> Status {
    if is_set_aside(&summary.file) {
        return Status::Mismatched {
            reason: "set aside by own: another folder got its inode".into(),
        };
    }
    let Some((dev, ino)) = journal_name_root(&summary.file) else {
        return Status::Unknown {
            reason: "not named after a folder".into(),
        };
    };
    let Some(last) = summary.sessions.last() else {
        return Status::Unknown {
            reason: "records no run".into(),
        };
    };
    let runs = runs(summary);
    if let Some(other) = runs
        .iter()
        .find(|r| (r.info.root_dev, r.info.root_ino) != (dev, ino))
    {
        return Status::Mismatched {
            reason: format!("it records runs of another folder ({})", other.info.root),
        };
    }
    let root = Path::new(&last.info.root);
    let identity = summary.sessions.iter().find_map(|s| s.info.identity.as_ref());
    let handle = identity.and_then(|i| i.handle.as_ref());
    // Only on the filesystem the handle came from (a device number can be reused).
    let mount = mount_fd(root, dev).filter(|fd| {
        identity
            .and_then(|i| i.fsid)
            .is_none_or(|id| filesystem_id(fd.as_fd()) == Some(id))
    });
    if let (Some(handle), Some(mount)) = (handle, mount) {
        match open_by_handle(mount.as_fd(), handle) {
            Ok(fd) => {
                if identify_fd(fd.as_fd()).is_ok_and(|id| (id.dev, id.ino) == (dev, ino)) {
                    let now = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok();
                    return Status::Live {
                        moved_to: now.filter(|now| now != root).map(|now| now.display().to_string()),
                    };
                }
            }
            Err(err) if is_gone(&err) => {
                if observe(root).is_some_and(|(o, _)| (o.identity.dev, o.identity.ino) == (dev, ino)) {
                    return Status::Mismatched {
                        reason: format!("{} is another folder now, with the same inode", root.display()),
                    };
                }
                return Status::Stale {
                    reason: format!("{} no longer exists", root.display()),
                };
            }
            Err(_) => {}
        }
    }
    match observe(root) {
        Some((observed, parent)) if (observed.identity.dev, observed.identity.ino) == (dev, ino) => {
            match judge(&runs, &observed, Some(parent.as_fd())) {
                Verdict::Belongs(_) => Status::Live { moved_to: None },
                Verdict::Foreign(reason) => Status::Mismatched { reason },
            }
        }
        _ => Status::Unknown {
            reason: format!(
                "its folder is not at {}: moved or deleted, nothing here tells which",
                root.display()
            ),
        },
    }
}

/// The entry at `path` as it is now, with its parent directory open.
fn observe(path: &Path) -> Option<(Observed, OwnedFd)> {
    let (parent, name) = (path.parent()?, path.file_name()?);
    let parent = open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let name = CString::new(name.as_bytes()).ok()?;
    let observed = identify(parent.as_fd(), &name).ok()?;
    Some((observed, parent))
}

/// A descriptor on the filesystem of device `dev`: the nearest existing folder on the way
/// to `path` that is on it.
fn mount_fd(path: &Path, dev: u64) -> Option<OwnedFd> {
    path.ancestors().find_map(|dir| {
        // Not `O_PATH`: open_by_handle_at refuses such a descriptor.
        let fd = open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        (fstat(&fd).ok()?.st_dev == dev).then_some(fd)
    })
}

/// Remove a journal (and its lock file) unless a run holds its lock; whether it was removed.
pub fn remove_journal(file: &Path) -> std::io::Result<bool> {
    if is_set_aside(file) {
        return std::fs::remove_file(file).map(|()| true);
    }
    let Some(lock) = JournalLock::try_acquire(file) else {
        return Ok(false);
    };
    let removed = std::fs::remove_file(file);
    lock.remove();
    removed.map(|()| true)
}

/// Remove the journals in `dir` of folders on device `dev` that are provably gone: their
/// file handle no longer opens on that filesystem (`mount` is on it; the journal must
/// record the same filesystem id). `keep` is the
/// journal in use. Best effort: whatever cannot be proven or removed stays.
pub fn prune_device(dir: &Path, mount: BorrowedFd<'_>, dev: u64, keep: &Path) -> Vec<PathBuf> {
    let mut pruned = Vec::new();
    let Some(fsid) = filesystem_id(mount) else {
        return pruned;
    };
    for file in journal_files(dir).unwrap_or_default() {
        if file == keep || journal_name_root(&file).is_none_or(|(d, _)| d != dev) {
            continue;
        }
        // Only journals recorded on this very filesystem, not one that had its number.
        let Some(handle) = first_session(&file)
            .ok()
            .flatten()
            .and_then(|info| info.identity)
            .filter(|identity| identity.fsid == Some(fsid))
            .and_then(|identity| identity.handle)
        else {
            continue;
        };
        if !open_by_handle(mount, &handle).is_err_and(|e| is_gone(&e)) {
            continue;
        }
        if remove_journal(&file).unwrap_or(false) {
            pruned.push(file);
        }
    }
    pruned
}
