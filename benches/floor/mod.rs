//! The floor under `own`: the system calls of a change alone, on every core, with no
//! journal, no checks and no walk to speak of (the tree's folders are listed beforehand),
//! so that `own`'s figures can be read against what each rule allows at best.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::dir::{Dir, Type};
use nix::fcntl::{OFlag, open, openat};
use nix::libc;
use nix::sys::stat::Mode;

/// How each entry is looked at and changed.
#[derive(Clone, Copy)]
pub enum Rule {
    /// `statx` and `fchownat` by name, as `chown -R` does.
    ByName,
    /// Opened `O_PATH` without following, looked at and changed through that descriptor,
    /// then closed: the rule `own` and `undo` keep, so that a change reaches the very inode
    /// looked at (and journaled), even if its name is swapped meanwhile.
    Descriptor,
}

/// Give every entry of `tree` to `uid:gid` under `rule`, its folders shared out between one
/// thread per core; the time this took (listing the folders beforehand is not counted).
pub fn measure(tree: &Path, rule: Rule, uid: u32, gid: u32) -> Duration {
    let mut dirs: Vec<PathBuf> = vec![tree.to_path_buf()];
    let mut next = 0;
    while next < dirs.len() {
        for entry in std::fs::read_dir(&dirs[next]).expect("list a folder") {
            let entry = entry.expect("a folder entry");
            if entry.file_type().expect("its type").is_dir() {
                dirs.push(entry.path());
            }
        }
        next += 1;
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for first in 0..threads {
            let dirs = &dirs;
            scope.spawn(move || {
                for dir in dirs.iter().skip(first).step_by(threads) {
                    change_folder(dir, rule, uid, gid);
                }
            });
        }
    });
    started.elapsed()
}

/// Change the non-folders of `dir` (its folders are changed as folders of their own), then
/// `dir` itself through its descriptor.
fn change_folder(dir: &Path, rule: Rule, uid: u32, gid: u32) {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = open(dir, flags, Mode::empty()).expect("open a folder");
    let mut listing = Dir::from_fd(fd.try_clone().expect("a second descriptor")).expect("read a folder");
    for entry in listing.iter() {
        let entry = entry.expect("a folder entry");
        let name = entry.file_name();
        if name == c"." || name == c".." || entry.file_type() == Some(Type::Directory) {
            continue;
        }
        match rule {
            Rule::ByName => {
                stat(fd.as_fd(), name);
                chown(fd.as_fd(), name, uid, gid);
            }
            Rule::Descriptor => {
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let held = openat(fd.as_fd(), name, flags, Mode::empty()).expect("open an entry");
                stat(held.as_fd(), c"");
                chown(held.as_fd(), c"", uid, gid);
            }
        }
    }
    chown(fd.as_fd(), c"", uid, gid);
}

/// `statx` of `name` in `dirfd` (of `dirfd` itself when empty) without following, asking
/// for what `own` journals.
fn stat(dirfd: BorrowedFd<'_>, name: &CStr) {
    let mut flags = libc::AT_SYMLINK_NOFOLLOW;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_NLINK
        | libc::STATX_UID
        | libc::STATX_GID
        | libc::STATX_INO;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::uninit();
    // SAFETY: statx writes at most one `struct statx` into `buf`; `name` is NUL-terminated.
    let rc = unsafe { libc::statx(dirfd.as_raw_fd(), name.as_ptr(), flags, mask, buf.as_mut_ptr()) };
    assert_eq!(rc, 0, "statx: {}", std::io::Error::last_os_error());
}

/// `fchownat` of `name` in `dirfd` without following (of `dirfd` itself when empty).
fn chown(dirfd: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) {
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: `name` is NUL-terminated; fchownat reads nothing else from memory.
    let rc = unsafe { libc::fchownat(dirfd.as_raw_fd(), name.as_ptr(), uid, gid, flags) };
    assert_eq!(rc, 0, "fchownat: {}", std::io::Error::last_os_error());
}
