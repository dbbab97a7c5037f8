//! The walk's open directories, and a walker's pending changes and listings.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use nix::dir::{OwningIter, Type};

use super::super::journal::RecordBatch;

/// An open directory of the walk: its entry stream and the descriptor changes go through.
pub(super) struct OpenDir {
    pub(super) entries: RefCell<OwningIter>,
    /// Length of the relative path buffer up to and including this directory's name.
    pub(super) path_len: usize,
    pub(super) depth: usize,
    /// Whether the directory itself needed a new owner: then its entries most likely do
    /// too, and each is opened before it is looked at (see `Worker::visit`).
    pub(super) expects_changes: bool,
}

impl OpenDir {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to `entries`, which lives as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.entries.borrow().as_raw_fd()) }
    }
}

/// One level of a worker's walk: the directory, and the same as the parent of its entries
/// (made once per directory, not per entry).
#[derive(Clone)]
pub(super) struct Level {
    pub(super) dir: Rc<OpenDir>,
    pub(super) as_parent: Rc<ParentDir>,
}

impl Level {
    pub(super) fn new(dir: Rc<OpenDir>) -> Self {
        Self {
            as_parent: Rc::new(ParentDir::Walked(dir.clone())),
            dir,
        }
    }
}

/// Where a pending change is applied.
pub(super) enum Handle {
    /// The directory itself, through its own descriptor.
    Dir(Rc<OpenDir>),
    /// A non-directory, through the `O_PATH` descriptor it was looked at through: the
    /// change reaches the inode that was checked and journaled, whatever is renamed over
    /// its name meanwhile.
    Child(OwnedFd),
}

/// A directory descriptor shared by the entries that sit in it.
pub(super) enum ParentDir {
    Walked(Rc<OpenDir>),
    /// The directory holding the root entry.
    Base(OwnedFd),
    /// A directory another walker listed and handed over a part of (its own descriptor).
    Handed {
        fd: OwnedFd,
        expects_changes: bool,
    },
}

impl ParentDir {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            ParentDir::Walked(dir) => dir.fd(),
            ParentDir::Base(fd) | ParentDir::Handed { fd, .. } => fd.as_fd(),
        }
    }

    /// Whether the entries in it are opened before they are looked at.
    pub(super) fn expects_changes(&self) -> bool {
        match self {
            ParentDir::Walked(dir) => dir.expects_changes,
            ParentDir::Base(_) => true,
            ParentDir::Handed { expects_changes, .. } => *expects_changes,
        }
    }
}

/// One change to make once its record is on disk.
pub(super) struct Pending {
    pub(super) handle: Handle,
    /// Where, in the batch's bytes, its relative path lies (for the report).
    pub(super) start: usize,
    pub(super) end: usize,
}

/// A walker's changes in one journal frame, with the bytes their paths need: one buffer
/// for all of them, reused from batch to batch, so an entry costs no allocation.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) records: RecordBatch,
    pub(super) entries: Vec<Pending>,
    pub(super) bytes: Vec<u8>,
    /// Descriptors its entries keep open (directories and children alike).
    pub(super) fds: usize,
}

impl Batch {
    pub(super) fn push(&mut self, handle: Handle, path: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(path);
        self.fds += 1;
        self.entries.push(Pending {
            handle,
            start,
            end: self.bytes.len(),
        });
    }

    /// The relative path that [`Self::push`] stored for `entry`.
    pub(super) fn path(&self, entry: &Pending) -> &[u8] {
        &self.bytes[entry.start..entry.end]
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.fds = 0;
    }
}

/// Non-directory entries of one directory as it listed them, names in one reused buffer.
#[derive(Default)]
pub(super) struct Listing {
    pub(super) entries: Vec<Listed>,
    pub(super) names: Vec<u8>,
}

pub(super) struct Listed {
    pub(super) ino: u64,
    pub(super) kind: Type,
    /// The name and its NUL in `Listing::names`.
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Listing {
    pub(super) fn push(&mut self, ino: u64, name: &CStr, kind: Type) {
        let start = self.names.len();
        self.names.extend_from_slice(name.to_bytes_with_nul());
        self.entries.push(Listed {
            ino,
            kind,
            start,
            end: self.names.len(),
        });
    }

    pub(super) fn name(&self, listed: &Listed) -> &CStr {
        CStr::from_bytes_with_nul(&self.names[listed.start..listed.end]).expect("a name and its NUL")
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.names.clear();
    }
}

/// A batch whose records are queued for the journal; its entries change once it is synced.
pub(super) struct InFlight {
    pub(super) ticket: u64,
    pub(super) batch: Batch,
}
