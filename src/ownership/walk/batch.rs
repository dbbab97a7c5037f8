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
    /// A non-directory: a name (kept in the batch's bytes) in a directory.
    Child {
        parent: Rc<ParentDir>,
        dev: u64,
        ino: u64,
    },
}

/// A directory descriptor shared by the entries that sit in it.
pub(super) enum ParentDir {
    Walked(Rc<OpenDir>),
    /// The directory holding the root entry.
    Base(OwnedFd),
}

impl ParentDir {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            ParentDir::Walked(dir) => dir.fd(),
            ParentDir::Base(fd) => fd.as_fd(),
        }
    }
}

/// One change to make once its record is on disk.
pub(super) struct Pending {
    pub(super) handle: Handle,
    /// Where, in the batch's bytes, its relative path starts; the path is followed by the
    /// entry's name and a NUL (for a child), up to `end`.
    pub(super) start: usize,
    pub(super) path_end: usize,
    pub(super) end: usize,
}

/// A walker's changes in one journal frame, with the bytes their names and paths need:
/// one buffer for all of them, reused from batch to batch, so an entry costs no allocation.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) records: RecordBatch,
    pub(super) entries: Vec<Pending>,
    pub(super) bytes: Vec<u8>,
    /// Directories its entries keep open.
    pub(super) dirs: usize,
}

impl Batch {
    pub(super) fn push(&mut self, handle: Handle, path: &[u8], name: Option<&CStr>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(path);
        let path_end = self.bytes.len();
        if let Some(name) = name {
            self.bytes.extend_from_slice(name.to_bytes_with_nul());
        }
        if matches!(handle, Handle::Dir(_)) {
            self.dirs += 1;
        }
        self.entries.push(Pending {
            handle,
            start,
            path_end,
            end: self.bytes.len(),
        });
    }

    /// The name (for a child) and relative path that [`Self::push`] stored for `entry`.
    pub(super) fn name_and_path(&self, entry: &Pending) -> (Option<&CStr>, &[u8]) {
        let name = (entry.end > entry.path_end).then(|| {
            CStr::from_bytes_with_nul(&self.bytes[entry.path_end..entry.end]).expect("a name and its NUL")
        });
        (name, &self.bytes[entry.start..entry.path_end])
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.dirs = 0;
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
