//! Which folder a journal belongs to: an identity that a reused inode number does not share.
//!
//! A journal is named after its root's device and inode, but inode numbers come back: a
//! folder deleted without `release` leaves its number to the next folder created. So every
//! session also records [`RootIdentity`]: the birth time `statx` reports, the inode
//! generation (`FS_IOC_GETVERSION`), and a file handle (`name_to_handle_at`). The first two
//! tell a reused inode from the original; the handle also tells whether the original still
//! exists anywhere on its filesystem (it opens wherever the folder was moved, and fails
//! with `ESTALE` once it was deleted), which is what lets stale journals be pruned.
//!
//! Nothing here decides what to do: [`compare`] says whether an identity matches and by
//! which rule, and the callers (`own`, `undo`, `release`, `journal list|prune`) act on it.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::libc;

use super::format::{Birth, FileHandle, Record, RootIdentity, SessionInfo};

/// The largest handle the kernel hands out (`MAX_HANDLE_SZ`).
const MAX_HANDLE_BYTES: usize = 128;
#[allow(clippy::cast_possible_truncation)]
const MAX_HANDLE_BYTES_U32: u32 = MAX_HANDLE_BYTES as u32;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_BYTES],
}

/// A root as it is now: its identity and the facts older journals are checked against.
#[derive(Debug, Clone)]
pub struct Observed {
    pub identity: RootIdentity,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The identity of the entry `name` in `parent`, not following a link.
pub fn identify(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<Observed> {
    let stx = statx(parent, name, libc::AT_SYMLINK_NOFOLLOW)?;
    let kind = u32::from(stx.stx_mode) & libc::S_IFMT;
    let plain = (kind == libc::S_IFDIR || kind == libc::S_IFREG)
        .then(|| open_plain(parent, name).ok())
        .flatten();
    let generation = plain.as_ref().and_then(generation);
    let fsid = filesystem_id(plain.as_ref().map_or(parent, AsFd::as_fd));
    Ok(Observed {
        identity: RootIdentity {
            dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
            ino: stx.stx_ino,
            birth: birth(&stx),
            generation,
            handle: handle_at(parent, name).ok(),
            fsid,
        },
        uid: stx.stx_uid,
        gid: stx.stx_gid,
        mode: u32::from(stx.stx_mode),
    })
}

/// The identity of an open entry (device, inode, birth time, generation; no handle).
pub fn identify_fd(fd: BorrowedFd<'_>) -> io::Result<RootIdentity> {
    let stx = statx(fd, c"", libc::AT_EMPTY_PATH)?;
    Ok(RootIdentity {
        dev: libc::makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        birth: birth(&stx),
        generation: None,
        handle: None,
        fsid: filesystem_id(fd),
    })
}

/// The id of the filesystem `fd` is on (`statfs` `f_fsid`).
pub fn filesystem_id(fd: BorrowedFd<'_>) -> Option<u64> {
    let stat = nix::sys::statfs::fstatfs(fd).ok()?;
    // SAFETY: `fsid_t` is two C ints (8 bytes) on Linux, with no invalid bit patterns;
    // only its bytes are read.
    let bytes: [u8; 8] = unsafe { std::mem::transmute(stat.filesystem_id()) };
    Some(u64::from_ne_bytes(bytes)).filter(|&id| id != 0)
}

/// How a recorded identity was checked against the folder now there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    BirthTime,
    Generation,
    FileHandle,
}

impl Rule {
    pub fn noun(self) -> &'static str {
        match self {
            Rule::BirthTime => "birth time",
            Rule::Generation => "inode generation",
            Rule::FileHandle => "file handle",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rule::BirthTime => "its birth time",
            Rule::Generation => "its inode generation",
            Rule::FileHandle => "its file handle",
        }
    }
}

/// Whether `now` is the folder `recorded` describes, and by which rule; `None` when the
/// filesystem gives nothing that tells a reused inode apart (then the caller falls back on
/// the root entry's facts).
///
/// A differing device or inode is never a match. `mount` is any descriptor on the
/// folder's filesystem, for the file-handle rule.
pub fn compare(
    recorded: &RootIdentity,
    now: &RootIdentity,
    mount: Option<BorrowedFd<'_>>,
) -> Option<(bool, Rule)> {
    if (recorded.dev, recorded.ino) != (now.dev, now.ino) {
        return Some((false, Rule::BirthTime));
    }
    if let (Some(a), Some(b)) = (recorded.birth, now.birth) {
        return Some((a == b, Rule::BirthTime));
    }
    if let (Some(a), Some(b)) = (recorded.generation, now.generation) {
        return Some((a == b, Rule::Generation));
    }
    let (Some(handle), Some(mount)) = (&recorded.handle, mount) else {
        return None;
    };
    match open_by_handle(mount, handle) {
        Ok(fd) => {
            let opened = identify_fd(fd.as_fd()).ok()?;
            Some(((opened.dev, opened.ino) == (now.dev, now.ino), Rule::FileHandle))
        }
        Err(err) if is_gone(&err) => Some((false, Rule::FileHandle)),
        Err(_) => None,
    }
}

/// One recorded run, as far as telling its folder apart needs.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub info: &'a SessionInfo,
    /// The root's record (its state before that run), if the run changed the root.
    pub root_entry: Option<&'a Record>,
}

/// How a journal was found to belong to the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Identity(Rule),
    /// An older journal (no identity recorded), or a filesystem that gives nothing to tell
    /// a reused inode apart: the root's owner is the one the last run gave, and its type
    /// and permission bits are the recorded ones.
    RootFacts,
}

impl Proof {
    pub fn describe(self) -> String {
        match self {
            Proof::Identity(rule) => format!("matched to the folder by {}", rule.describe()),
            Proof::RootFacts => {
                "no identity recorded: matched by the root entry's owner and mode".to_string()
            }
        }
    }
}

/// Whether a journal is the folder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Belongs(Proof),
    /// It belongs to another folder (one that had the inode before): why.
    Foreign(String),
}

/// Judge the runs a journal records against the folder now there (`mount`: a descriptor
/// on its filesystem, for the file-handle rule).
pub fn judge(runs: &[Recorded<'_>], now: &Observed, mount: Option<BorrowedFd<'_>>) -> Verdict {
    let mut proof = None;
    for run in runs {
        if (run.info.root_dev, run.info.root_ino) != (now.identity.dev, now.identity.ino) {
            return Verdict::Foreign(format!(
                "it was recorded for another folder ({}, device {:x} inode {})",
                run.info.root, run.info.root_dev, run.info.root_ino
            ));
        }
        let Some(recorded) = &run.info.identity else {
            continue;
        };
        match compare(recorded, &now.identity, mount) {
            Some((true, rule)) => proof = Some(rule),
            Some((false, rule)) => {
                return Verdict::Foreign(format!(
                    "its {} is not this folder's; it was recorded for {}, which had this inode",
                    rule.noun(),
                    run.info.root
                ));
            }
            None => {}
        }
    }
    if let Some(rule) = proof {
        return Verdict::Belongs(Proof::Identity(rule));
    }
    // Nothing proves it either way: the root entry's own facts decide.
    if let Some(last) = runs.last() {
        if (last.info.uid, last.info.gid) != (now.uid, now.gid) {
            return Verdict::Foreign(format!(
                "no identity recorded, and the folder is owned by {}:{}, not {}:{} as the last own left it",
                now.uid, now.gid, last.info.uid, last.info.gid
            ));
        }
    }
    let bits = |mode: u32| mode & (libc::S_IFMT | 0o777);
    if let Some(entry) = runs.iter().find_map(|run| run.root_entry) {
        if bits(entry.mode) != bits(now.mode) {
            return Verdict::Foreign(format!(
                "no identity recorded, and the folder's mode {:o} is not the recorded {:o}",
                now.mode & 0o7777,
                entry.mode & 0o7777
            ));
        }
    }
    Verdict::Belongs(Proof::RootFacts)
}

/// Whether an `open_by_handle` error proves the handle's entry no longer exists.
pub fn is_gone(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ESTALE | libc::ENOENT))
}

fn birth(stx: &libc::statx) -> Option<Birth> {
    (stx.stx_mask & libc::STATX_BTIME != 0).then_some(Birth {
        secs: stx.stx_btime.tv_sec,
        nanos: stx.stx_btime.tv_nsec,
    })
}

fn statx(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<libc::statx> {
    let mut out = MaybeUninit::<libc::statx>::zeroed();
    let mask = libc::STATX_BASIC_STATS | libc::STATX_BTIME;
    // SAFETY: `name` is NUL-terminated, `out` is a writable statx the kernel fills.
    let rc = unsafe { libc::statx(dir.as_raw_fd(), name.as_ptr(), flags, mask, out.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statx succeeded, so the struct is filled (and it was zeroed before).
    Ok(unsafe { out.assume_init() })
}

/// Open a folder or regular file for an ioctl: never a link, never blocking, no terminal.
fn open_plain(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: plain openat on a NUL-terminated name; the result is checked before use.
    let fd = unsafe { libc::openat(parent.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The inode generation, where the filesystem reports one (ext4, btrfs, tmpfs, ...).
fn generation(fd: &OwnedFd) -> Option<u64> {
    let mut value: libc::c_long = 0;
    // SAFETY: FS_IOC_GETVERSION writes one `long` through the pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETVERSION, &raw mut value) };
    // The ioctl fills an `int` on most filesystems: keep its low 32 bits.
    (rc == 0).then(|| u64::from_ne_bytes(value.to_ne_bytes()) & u64::from(u32::MAX))
}

fn handle_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<FileHandle> {
    let mut raw = RawHandle {
        handle_bytes: MAX_HANDLE_BYTES_U32,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_BYTES],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` has room for `handle_bytes` bytes of handle; flags 0 do not follow a
    // final symlink.
    let rc = unsafe {
        libc::name_to_handle_at(
            parent.as_raw_fd(),
            name.as_ptr(),
            (&raw mut raw).cast(),
            &raw mut mount_id,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (raw.handle_bytes as usize).min(MAX_HANDLE_BYTES);
    Ok(FileHandle {
        kind: raw.handle_type,
        bytes: raw.f_handle[..len].to_vec(),
    })
}

/// Open what a file handle names, on the filesystem `mount` is on (`O_PATH`: nothing is
/// read; `mount` itself must not be an `O_PATH` descriptor). Needs CAP_DAC_READ_SEARCH;
/// `ESTALE` means the entry is gone.
pub fn open_by_handle(mount: BorrowedFd<'_>, handle: &FileHandle) -> io::Result<OwnedFd> {
    let len = u32::try_from(handle.bytes.len())
        .ok()
        .filter(|&len| len <= MAX_HANDLE_BYTES_U32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut raw = RawHandle {
        handle_bytes: len,
        handle_type: handle.kind,
        f_handle: [0; MAX_HANDLE_BYTES],
    };
    raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `raw` is a valid file_handle of `handle_bytes` bytes.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&raw mut raw).cast(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::journal::testdata::{record, session};

    fn observed(birth: Option<Birth>, generation: Option<u64>, uid: u32, mode: u32) -> Observed {
        Observed {
            identity: RootIdentity {
                dev: 7,
                ino: 9,
                birth,
                generation,
                handle: None,
                fsid: None,
            },
            uid,
            gid: uid,
            mode,
        }
    }

    const BORN: Birth = Birth { secs: 10, nanos: 5 };
    const LATER: Birth = Birth { secs: 10, nanos: 6 };

    #[test]
    fn birth_time_then_generation_tell_a_reused_inode_apart() {
        let mut info = session();
        let now = observed(Some(BORN), Some(1), 49_999, 0o40_755);
        info.identity = Some(now.identity.clone());
        let run = [Recorded {
            info: &info,
            root_entry: None,
        }];
        assert_eq!(
            judge(&run, &now, None),
            Verdict::Belongs(Proof::Identity(Rule::BirthTime))
        );
        // Same inode, born later: another folder, whatever its generation says.
        let reused = observed(Some(LATER), Some(1), 49_999, 0o40_755);
        assert!(matches!(judge(&run, &reused, None), Verdict::Foreign(why) if why.contains("birth time")));
        // No birth time on this filesystem: the generation decides.
        info.identity = Some(observed(None, Some(1), 0, 0).identity);
        let run = [Recorded {
            info: &info,
            root_entry: None,
        }];
        let same = observed(None, Some(1), 49_999, 0o40_755);
        assert_eq!(
            judge(&run, &same, None),
            Verdict::Belongs(Proof::Identity(Rule::Generation))
        );
        let other = observed(None, Some(2), 49_999, 0o40_755);
        assert!(matches!(judge(&run, &other, None), Verdict::Foreign(why) if why.contains("generation")));
    }

    #[test]
    fn without_an_identity_the_root_entrys_facts_decide() {
        let info = session();
        let mut root = record(b"");
        root.mode = 0o40_750;
        let run = [Recorded {
            info: &info,
            root_entry: Some(&root),
        }];
        // Owned as the last own left it (49999), type and permission bits as recorded;
        // setuid/setgid bits may differ (chown clears them on files).
        let now = observed(None, None, 49_999, 0o42_750);
        assert_eq!(judge(&run, &now, None), Verdict::Belongs(Proof::RootFacts));
        let chowned = observed(None, None, 2222, 0o40_750);
        assert!(matches!(judge(&run, &chowned, None), Verdict::Foreign(why) if why.contains("2222:2222")));
        let chmodded = observed(None, None, 49_999, 0o40_755);
        assert!(matches!(judge(&run, &chmodded, None), Verdict::Foreign(why) if why.contains("mode")));
        // A run recorded for another inode is never this folder's.
        let mut elsewhere = session();
        elsewhere.root_ino = 10;
        let run = [Recorded {
            info: &elsewhere,
            root_entry: None,
        }];
        assert!(matches!(judge(&run, &now, None), Verdict::Foreign(why) if why.contains("another folder")));
    }
}
