//! One walker's look at one entry: stat it (by name where that is safe, through a
//! checked descriptor where it will be changed), skip what the walk must not touch, and
//! queue its journal record and change, or open the directory to descend into.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;

use anyhow::{Result, bail};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::batch::{Handle, OpenDir, ParentDir};
use super::queue::Handoff;
use super::{PROGRESS_CHUNK, Worker, capability};
use crate::ownership::report::{SkipReason, display_bytes};
use crate::ownership::root::{file_type, stat_at};

impl Worker<'_, '_> {
    /// Look at one entry; returns the directory to descend into, if it is one.
    pub(super) fn visit(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        listed_type: Option<Type>,
        listed_ino: Option<u64>,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        self.unreported += 1;
        if self.unreported >= PROGRESS_CHUNK {
            self.report_progress();
        }
        // A listed directory is opened straight away (no separate stat).
        if listed_type == Some(Type::Directory) {
            return self.visit_dir(parent, name, listed_ino, depth);
        }
        // Anything else is looked at without following it. Where changes are expected and
        // made, through an `O_PATH` descriptor opened first and kept for the change: one
        // lookup of the name, and the change reaches the inode looked at. Elsewhere (a tree
        // already handed over, a dry run), by name, and opened only if it needs a change.
        let holds = !self.shared.options.dry_run && parent.expects_changes();
        let looked = if holds {
            self.open_entry(parent, name)
                .map(|(stat, mnt_id, fd)| (stat, mnt_id, Some(fd)))
        } else {
            self.stat_entry(parent, name)
                .map(|(stat, mnt_id)| (stat, mnt_id, None))
        };
        let Some((stat, mnt_id, held)) = looked else {
            return Ok(None);
        };
        if depth == 0 && (stat.st_dev, stat.st_ino) != self.shared.root_id {
            bail!(
                "{}: replaced since it was checked; nothing changed",
                display_bytes(name.to_bytes())
            );
        }
        if file_type(&stat) == SFlag::S_IFDIR {
            if listed_type.is_some() {
                // Listed as something else, a directory now: replaced while we walk.
                self.skip(&SkipReason::ChangedDuringWalk);
                return Ok(None);
            }
            drop(held);
            return self.visit_dir(parent, name, Some(stat.st_ino), depth);
        }
        if self.shared.on_another_mount(&stat, mnt_id) {
            // A file bind-mounted here (from anywhere) is not the tree's.
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        self.note_if_watched(&stat);
        if self.hard_linked(&stat) {
            self.skip(&SkipReason::HardLinked { links: stat.st_nlink });
            return Ok(None);
        }
        if self.already_right(&stat) {
            return Ok(None);
        }
        // Looked at by name: open it now, and change it only if the descriptor holds the
        // inode looked at, still with no other hard link.
        let (fd, stat) = if let Some(fd) = held {
            (fd, stat)
        } else {
            let Some((now, _, fd)) = self.open_entry(parent, name) else {
                return Ok(None);
            };
            if (now.st_dev, now.st_ino) != (stat.st_dev, stat.st_ino) || self.hard_linked(&now) {
                self.skip(&SkipReason::ChangedDuringWalk);
                return Ok(None);
            }
            if self.already_right(&now) {
                return Ok(None);
            }
            (fd, now)
        };
        // chown clears file capabilities: `own` journals them first, `release` leaves such a
        // program alone. Only executables are looked at: the kernel grants a file's
        // capabilities when it is executed, and a look costs a system call or two.
        let mut capability = None;
        if file_type(&stat) == SFlag::S_IFREG && stat.st_mode & 0o111 != 0 {
            match capability::read_fd(fd.as_raw_fd()) {
                Ok(None) => {}
                Ok(Some(_)) if !self.shared.keeps_capabilities() => {
                    self.skip(&SkipReason::FileCapabilities);
                    return Ok(None);
                }
                Ok(found) => capability = found,
                Err(reason) => {
                    self.skip(&reason);
                    return Ok(None);
                }
            }
        }
        self.change(Handle::Child(fd), &stat, capability.as_deref());
        Ok(None)
    }

    /// Whether `stat` is a regular file with other hard links, left alone unless asked.
    pub(super) fn hard_linked(&self, stat: &FileStat) -> bool {
        file_type(stat) == SFlag::S_IFREG && stat.st_nlink > 1 && !self.shared.options.allow_hardlinks
    }

    /// Look at `name` in `parent` by name, without following it; `None` once skipped.
    pub(super) fn stat_entry(&mut self, parent: &ParentDir, name: &CStr) -> Option<(FileStat, u64)> {
        match stat_at(parent.fd(), name, false) {
            Ok(found) => Some(found),
            Err(Errno::ENOENT) => {
                self.skip(&SkipReason::Vanished);
                None
            }
            Err(errno) => {
                self.skip(&SkipReason::Error(format!("cannot stat: {errno}")));
                None
            }
        }
    }

    /// Open `name` in `parent` as an `O_PATH` descriptor, without following it, and look at
    /// the inode it holds; `None` once skipped.
    pub(super) fn open_entry(&mut self, parent: &ParentDir, name: &CStr) -> Option<(FileStat, u64, OwnedFd)> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent.fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                self.skip(&SkipReason::Vanished);
                return None;
            }
            Err(errno) => {
                self.skip(&SkipReason::Error(format!("cannot open: {errno}")));
                return None;
            }
        };
        match stat_at(fd.as_fd(), c"", false) {
            Ok((stat, mnt_id)) => Some((stat, mnt_id, fd)),
            Err(errno) => {
                self.skip(&SkipReason::Error(format!("cannot stat: {errno}")));
                None
            }
        }
    }

    pub(super) fn visit_dir(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        expected_ino: Option<u64>,
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
        let (stat, mnt_id) = stat_at(fd.as_fd(), c"", false)?;
        if depth == 0 && (stat.st_dev, stat.st_ino) != self.shared.root_id {
            bail!(
                "{}: replaced since it was checked; nothing changed",
                display_bytes(name.to_bytes())
            );
        }
        // Before the inode check: a folder mounted here has another inode than the one listed.
        if self.shared.on_another_mount(&stat, mnt_id) {
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        if expected_ino.is_some_and(|ino| ino != stat.st_ino) {
            self.skip(&SkipReason::ChangedDuringWalk);
            return Ok(None);
        }
        if depth > 0 {
            let item = Handoff {
                fd,
                stat,
                path: self.path.clone(),
                depth,
            };
            return match self.shared.offer(item) {
                None => Ok(None),
                Some(item) => self.adopt(item.fd, &item.stat, depth),
            };
        }
        self.adopt(fd, &stat, depth)
    }

    /// Take an opened, checked directory into this worker: change it, and return it to be
    /// walked unless it is too deep.
    pub(super) fn adopt(
        &mut self,
        fd: OwnedFd,
        stat: &FileStat,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        let entries = Dir::from_fd(fd)?.into_iter();
        let target = self.shared.options.target;
        let dir = Rc::new(OpenDir {
            entries: RefCell::new(entries),
            path_len: self.path.len(),
            depth,
            expects_changes: (stat.st_uid, stat.st_gid) != (target.uid, target.gid),
        });
        self.note_if_watched(stat);
        if dir.expects_changes {
            self.change(Handle::Dir(dir.clone()), stat, None);
        } else {
            self.report.already_right += 1;
        }
        if depth >= self.shared.max_depth {
            // Its own change (if any) still holds it open; its entries are not walked.
            self.skip(&SkipReason::TooDeep {
                limit: self.shared.max_depth,
            });
            return Ok(None);
        }
        Ok(Some(dir))
    }

    pub(super) fn note_if_watched(&mut self, stat: &FileStat) {
        let watch = self.shared.watch;
        if !watch.is_empty() && watch.binary_search(&(stat.st_dev, stat.st_ino)).is_ok() {
            self.report.watched.push((stat.st_dev, stat.st_ino));
        }
    }

    pub(super) fn already_right(&mut self, stat: &FileStat) -> bool {
        let target = self.shared.options.target;
        if stat.st_uid == target.uid && stat.st_gid == target.gid {
            self.report.already_right += 1;
            return true;
        }
        false
    }
}
