//! The re-owning walk behind `own` and `release`.
//!
//! Every step is relative to a directory file descriptor that was opened with
//! `O_NOFOLLOW | O_DIRECTORY` and whose inode was checked against the name it was opened
//! by, so a directory swapped for a symlink mid-walk is never entered and nothing outside
//! the tree is reached. Non-directories are changed with `fchownat(AT_SYMLINK_NOFOLLOW)`,
//! which re-owns a symlink itself, never its target.
//!
//! The walk streams: memory holds one open directory per level and one journal batch.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use anyhow::Result;
use nix::dir::{Dir, OwningIter, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::journal::{JournalWriter, Record};
use super::report::{Progress, SkipReason, WalkReport};
use super::root::Root;

/// Records per journal batch: one `fdatasync` per this many changes.
const BATCH_RECORDS: usize = 16_384;
/// Directories a pending batch may keep open before it must be applied.
const BATCH_DIRS: usize = 512;

/// Test hook: `FLOWERBED_TEST_KILL_AFTER=K` makes `own` SIGKILL itself after K changes, so
/// the crash-safety tests can stop it at an exact point. Never set it otherwise.
pub const KILL_AFTER_ENV: &str = "FLOWERBED_TEST_KILL_AFTER";

/// What the walk gives every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub target: Target,
    /// Re-own regular files that have other hard links (which may live outside the tree).
    pub allow_hardlinks: bool,
    /// Look only: change nothing, journal nothing.
    pub dry_run: bool,
}

/// An open directory of the walk: its entry stream and the descriptor changes go through.
struct OpenDir {
    entries: RefCell<OwningIter>,
    /// Length of the relative path buffer up to and including this directory's name.
    path_len: usize,
}

impl OpenDir {
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to `entries`, which lives as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.entries.borrow().as_raw_fd()) }
    }
}

/// Where a pending change is applied.
enum Handle {
    /// The directory itself, through its own descriptor.
    Dir(Rc<OpenDir>),
    /// A non-directory: a name in a directory, checked again just before the change.
    Child {
        parent: Rc<ParentDir>,
        name: CString,
        dev: u64,
        ino: u64,
    },
}

/// A directory descriptor shared by the entries that sit in it.
enum ParentDir {
    Walked(Rc<OpenDir>),
    /// The directory holding the root entry.
    Base(OwnedFd),
}

impl ParentDir {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            ParentDir::Walked(dir) => dir.fd(),
            ParentDir::Base(fd) => fd.as_fd(),
        }
    }
}

struct Pending {
    handle: Handle,
    path: Vec<u8>,
}

/// Walk `root` and give every entry to `options.target`, journaling first when `journal`
/// is given (then changes are applied in synced batches), otherwise changing inline.
pub fn reown(
    root: &Root,
    options: WalkOptions,
    mut journal: Option<&mut JournalWriter>,
    progress: &Progress,
) -> Result<WalkReport> {
    let max_depth = super::root::raise_fd_limit().saturating_sub(BATCH_DIRS as u64 + 64);
    let mut walk = Walk {
        options,
        root_dev: root.dev,
        report: WalkReport::default(),
        path: Vec::new(),
        pending: Vec::new(),
        pending_dirs: 0,
        kill_after: std::env::var(KILL_AFTER_ENV).ok().and_then(|v| v.parse().ok()),
        progress,
        max_depth: usize::try_from(max_depth.max(16)).unwrap_or(usize::MAX),
    };
    let base = Rc::new(ParentDir::Base(root.parent.try_clone()?));
    let mut stack: Vec<Rc<OpenDir>> = Vec::new();
    if let Some(dir) = walk.visit(&base, &root.name, None, None, &mut journal, 0)? {
        stack.push(dir);
    }
    while let Some(top) = stack.last().cloned() {
        let next = top.entries.borrow_mut().next();
        match next {
            None => {
                stack.pop();
            }
            Some(Err(errno)) => {
                walk.path.truncate(top.path_len);
                walk.skip(&SkipReason::Error(format!("cannot read directory: {errno}")));
                stack.pop();
            }
            Some(Ok(entry)) => {
                let name = entry.file_name();
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                walk.path.truncate(top.path_len);
                if !walk.path.is_empty() {
                    walk.path.push(b'/');
                }
                walk.path.extend_from_slice(name.to_bytes());
                let parent = Rc::new(ParentDir::Walked(top.clone()));
                let depth = stack.len();
                if let Some(child) = walk.visit(
                    &parent,
                    name,
                    entry.file_type(),
                    Some(entry.ino()),
                    &mut journal,
                    depth,
                )? {
                    stack.push(child);
                }
            }
        }
        if walk.batch_full() {
            walk.flush(&mut journal)?;
        }
    }
    walk.flush(&mut journal)?;
    Ok(walk.report)
}

struct Walk<'p> {
    options: WalkOptions,
    root_dev: u64,
    report: WalkReport,
    /// Relative path of the entry being visited (raw bytes).
    path: Vec<u8>,
    pending: Vec<Pending>,
    pending_dirs: usize,
    kill_after: Option<u64>,
    progress: &'p Progress,
    max_depth: usize,
}

impl Walk<'_> {
    fn skip(&mut self, reason: &SkipReason) {
        self.report.skip(&self.path, reason);
    }

    /// Look at one entry; returns the directory to descend into, if it is one.
    fn visit(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        listed_type: Option<Type>,
        listed_ino: Option<u64>,
        journal: &mut Option<&mut JournalWriter>,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        self.progress.tick();
        // A listed directory is opened straight away (no separate stat); anything else, or
        // an entry of unknown type, is looked at without following it first.
        let stat = if listed_type == Some(Type::Directory) {
            None
        } else {
            match fstatat(parent.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) => Some(stat),
                Err(Errno::ENOENT) => {
                    self.skip(&SkipReason::Vanished);
                    return Ok(None);
                }
                Err(errno) => {
                    self.skip(&SkipReason::Error(format!("cannot stat: {errno}")));
                    return Ok(None);
                }
            }
        };
        let is_dir = stat.as_ref().is_none_or(|s| file_type(s) == SFlag::S_IFDIR);
        if is_dir {
            return self.visit_dir(
                parent,
                name,
                stat.map_or(listed_ino, |s| Some(s.st_ino)),
                journal,
                depth,
            );
        }
        let stat = stat.expect("non-directories were stat'ed");
        if stat.st_dev != self.root_dev {
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        if file_type(&stat) == SFlag::S_IFREG && stat.st_nlink > 1 && !self.options.allow_hardlinks {
            self.skip(&SkipReason::HardLinked { links: stat.st_nlink });
            return Ok(None);
        }
        if self.already_right(&stat) {
            return Ok(None);
        }
        let handle = Handle::Child {
            parent: parent.clone(),
            name: name.to_owned(),
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        self.change(handle, &stat, journal);
        Ok(None)
    }

    fn visit_dir(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        expected_ino: Option<u64>,
        journal: &mut Option<&mut JournalWriter>,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent.fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Replaced by a symlink or a file since it was listed: not ours to follow.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                self.skip(&SkipReason::ChangedDuringWalk);
                return Ok(None);
            }
            Err(Errno::ENOENT) => {
                self.skip(&SkipReason::Vanished);
                return Ok(None);
            }
            Err(errno) => {
                self.skip(&SkipReason::Error(format!("cannot open directory: {errno}")));
                return Ok(None);
            }
        };
        let stat = fstat(&fd)?;
        if stat.st_dev != self.root_dev {
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        if expected_ino.is_some_and(|ino| ino != stat.st_ino) {
            self.skip(&SkipReason::ChangedDuringWalk);
            return Ok(None);
        }
        let entries = Dir::from_fd(fd)?.into_iter();
        let dir = Rc::new(OpenDir {
            entries: RefCell::new(entries),
            path_len: self.path.len(),
        });
        if !self.already_right(&stat) {
            self.pending_dirs += 1;
            self.change(Handle::Dir(dir.clone()), &stat, journal);
        }
        if depth >= self.max_depth {
            self.skip(&SkipReason::TooDeep);
            return Ok(None);
        }
        Ok(Some(dir))
    }

    fn already_right(&mut self, stat: &FileStat) -> bool {
        if stat.st_uid == self.options.target.uid && stat.st_gid == self.options.target.gid {
            self.report.already_right += 1;
            return true;
        }
        false
    }

    /// Journal the entry's current state and change it (now, or with its batch).
    fn change(&mut self, handle: Handle, stat: &FileStat, journal: &mut Option<&mut JournalWriter>) {
        if self.options.dry_run {
            self.report.changed += 1;
            return;
        }
        let pending = Pending {
            handle,
            path: self.path.clone(),
        };
        match journal {
            Some(journal) => {
                journal.add(&Record {
                    dev: stat.st_dev,
                    ino: stat.st_ino,
                    uid: stat.st_uid,
                    gid: stat.st_gid,
                    mode: stat.st_mode,
                    path: self.path.clone(),
                });
                self.pending.push(pending);
            }
            None => self.apply(&pending, false),
        }
    }

    fn batch_full(&self) -> bool {
        self.pending.len() >= BATCH_RECORDS || self.pending_dirs >= BATCH_DIRS
    }

    /// Sync the journal batch, then make the changes it lists.
    fn flush(&mut self, journal: &mut Option<&mut JournalWriter>) -> Result<()> {
        if let Some(journal) = journal {
            journal.commit()?;
        }
        let pending = std::mem::take(&mut self.pending);
        for entry in &pending {
            self.apply(entry, true);
        }
        self.pending_dirs = 0;
        Ok(())
    }

    fn apply(&mut self, entry: &Pending, recheck: bool) {
        let uid = Some(Uid::from_raw(self.options.target.uid));
        let gid = Some(Gid::from_raw(self.options.target.gid));
        let result = match &entry.handle {
            Handle::Dir(dir) => fchown(dir.fd(), uid, gid),
            Handle::Child {
                parent,
                name,
                dev,
                ino,
            } => {
                // The batch was stat'ed a moment ago: make sure the name still means the same
                // inode (and still has no other links) before changing it.
                if recheck {
                    match fstatat(parent.fd(), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(now)
                            if now.st_dev == *dev
                                && now.st_ino == *ino
                                && (self.options.allow_hardlinks
                                    || file_type(&now) != SFlag::S_IFREG
                                    || now.st_nlink == 1) => {}
                        _ => {
                            self.report.skip(&entry.path, &SkipReason::ChangedDuringWalk);
                            return;
                        }
                    }
                }
                fchownat(
                    parent.fd(),
                    name.as_c_str(),
                    uid,
                    gid,
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
            }
        };
        match result {
            Ok(()) => {
                self.report.changed += 1;
                if self.kill_after.is_some_and(|k| self.report.changed >= k) {
                    // Test hook: die the hardest way, mid-batch, with no cleanup.
                    // SAFETY: raise has no memory-safety preconditions.
                    unsafe { nix::libc::raise(nix::libc::SIGKILL) };
                }
            }
            Err(errno) => self.report.skip(
                &entry.path,
                &SkipReason::Error(format!("cannot change owner: {errno}")),
            ),
        }
    }
}

pub(crate) fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}
