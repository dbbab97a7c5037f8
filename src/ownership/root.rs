//! Checking and opening the PATHs the user names: never through a symlink, never a system
//! folder, never the journal's folder.
//!
//! A PATH is resolved once, component by component from `/`, without following any link
//! (a trailing slash included); every refusal is then decided on the identity (device,
//! inode) of what was opened, so a parent swapped for a link, or a bind mount of a system
//! folder, cannot steer it. The walk and `undo` start from the descriptors opened here.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

use crate::error::Error;

/// A root entry ready to walk: the directory holding it (opened once, by path) and its name.
pub struct Root {
    /// Absolute, symlink-free path (for messages and the journal's label).
    pub path: PathBuf,
    pub parent: OwnedFd,
    pub name: CString,
    pub dev: u64,
    pub ino: u64,
    /// The mount the entry sits on (0 when the kernel does not say): an entry below it on
    /// another mount, a file bind mount included, is not the tree's.
    pub mnt_id: u64,
    pub is_dir: bool,
    /// A small directory of files: its link count says it holds no directory (2 on ext4,
    /// xfs and tmpfs; btrfs counts 1 for every directory, which says nothing), and its size
    /// that its names fit in one 4 KiB block. One walker is enough (a large folder of files
    /// is shared between walkers by listing).
    pub small_leaf_dir: bool,
}

impl Root {
    /// Whether `stat` (of the root's name, looked up again) is still the resolved entry.
    pub fn is(&self, stat: &FileStat) -> bool {
        stat.st_dev == self.dev && stat.st_ino == self.ino
    }
}

/// The type bits of a stat.
pub fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

/// `fstatat` that also reports the mount the entry sits on (`statx` with `STATX_MNT_ID`;
/// 0 when the kernel does not know it). `name` empty means `dirfd` itself.
pub fn stat_at(dirfd: BorrowedFd<'_>, name: &CStr, follow: bool) -> nix::Result<(FileStat, u64)> {
    let mut flags = nix::libc::AT_STATX_SYNC_AS_STAT;
    if !follow {
        flags |= nix::libc::AT_SYMLINK_NOFOLLOW;
    }
    if name.is_empty() {
        flags |= nix::libc::AT_EMPTY_PATH;
    }
    // Only what the walk and the refusals read: no times, sizes or blocks to fill in.
    let mask = nix::libc::STATX_TYPE
        | nix::libc::STATX_MODE
        | nix::libc::STATX_NLINK
        | nix::libc::STATX_UID
        | nix::libc::STATX_GID
        | nix::libc::STATX_INO
        | nix::libc::STATX_MNT_ID;
    let mut buf = std::mem::MaybeUninit::<nix::libc::statx>::zeroed();
    // SAFETY: statx writes at most one `struct statx` into `buf`; `name` is NUL-terminated.
    let rc = unsafe { nix::libc::statx(dirfd.as_raw_fd(), name.as_ptr(), flags, mask, buf.as_mut_ptr()) };
    Errno::result(rc)?;
    // SAFETY: statx succeeded, so it filled the buffer (and it started zeroed).
    let sx = unsafe { buf.assume_init() };
    // SAFETY: `stat` is plain data; every field the walk reads is set below.
    let mut stat: FileStat = unsafe { std::mem::zeroed() };
    stat.st_dev = nix::libc::makedev(sx.stx_dev_major, sx.stx_dev_minor);
    stat.st_ino = sx.stx_ino;
    stat.st_mode = u32::from(sx.stx_mode);
    stat.st_nlink = sx.stx_nlink.into();
    stat.st_uid = sx.stx_uid;
    stat.st_gid = sx.stx_gid;
    let mnt_id = if sx.stx_mask & nix::libc::STATX_MNT_ID == 0 {
        0
    } else {
        sx.stx_mnt_id
    };
    Ok((stat, mnt_id))
}

/// Folders under which flowerbed never changes owners, at any depth.
const SYSTEM_TREES: &[&str] = &[
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/var/lib/dpkg",
    "/var/lib/apt",
];
/// Folders flowerbed never takes over as a whole (their subfolders may be fine, e.g. a
/// Docker volume's `_data`).
const SYSTEM_FOLDERS: &[&str] = &[
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/var/spool",
    "/var/mail",
    "/var/tmp",
    "/var/lib/docker",
    "/var/lib/docker/volumes",
    "/usr/local",
];

type Identity = (u64, u64);

fn identity(stat: &FileStat) -> Identity {
    (stat.st_dev, stat.st_ino)
}

/// One opened component of a PATH.
struct Step {
    name: OsString,
    fd: OwnedFd,
    stat: FileStat,
}

/// Resolve and check one PATH argument.
pub fn resolve(path: &Path, state_dir: Option<&Path>) -> Result<Root> {
    let mut roots = resolve_all(std::slice::from_ref(&path.to_path_buf()), state_dir)?;
    Ok(roots.pop().expect("one root for one path"))
}

/// Resolve and check PATH arguments, in order. What no root may be (system folders, homes,
/// the journal's folder) is gathered once for all of them: it reads the passwd database
/// and resolves every home folder.
pub fn resolve_all(paths: &[PathBuf], state_dir: Option<&Path>) -> Result<Vec<Root>> {
    let fs_root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("/: cannot open")?;
    let root_stat = fstat(&fs_root)?;
    let mut protected = None;
    let mut roots = Vec::with_capacity(paths.len());
    for path in paths {
        let protected = protected.get_or_insert_with(|| Protected::gather(&root_stat, state_dir));
        roots.push(resolve_one(path, &fs_root, protected)?);
    }
    Ok(roots)
}

fn resolve_one(path: &Path, fs_root: &OwnedFd, protected: &Protected) -> Result<Root> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot find the current folder")?
            .join(path)
    };
    let mut stack: Vec<Step> = Vec::new();
    for component in absolute.components() {
        let name = match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => {
                // Nothing followed so far, so the parent is the folder opened before.
                stack.pop();
                continue;
            }
            Component::Normal(name) => name,
        };
        let here = stack.last().map_or(fs_root.as_fd(), |step| step.fd.as_fd());
        if stack
            .last()
            .is_some_and(|step| file_type(&step.stat) != SFlag::S_IFDIR)
        {
            bail!(
                "{}: not a directory: {}",
                path.display(),
                lexical(&stack).display()
            );
        }
        let c_name = CString::new(name.as_bytes()).expect("path names hold no NUL");
        let fd = match openat(
            here,
            c_name.as_c_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => bail!("{}: no such file or directory", path.display()),
            Err(errno) => bail!(
                "{}: cannot open {}: {errno}",
                path.display(),
                Path::new(name).display()
            ),
        };
        let stat = fstat(&fd)?;
        stack.push(Step {
            name: name.to_os_string(),
            fd,
            stat,
        });
        if file_type(&stat) == SFlag::S_IFLNK {
            let link = lexical(&stack);
            if link == lexical_path(&absolute) {
                return Err(Error::SymlinkRefused {
                    path: path.to_path_buf(),
                }
                .into());
            }
            bail!(
                "{}: {} is a symbolic link; refusing to follow it (pass the real path)",
                path.display(),
                link.display()
            );
        }
    }
    let canonical = lexical(&stack);
    protected.check(&stack, &canonical, path)?;
    let entry = stack.pop().expect("the root directory is refused above");
    let parent = stack.last().map_or(fs_root.as_fd(), |step| step.fd.as_fd());
    // The walk lists and changes through the parent: a real directory descriptor of the
    // very folder opened above.
    let parent = openat(
        parent,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("{}: cannot open its folder", path.display()))?;
    let (stat, mnt_id) =
        stat_at(entry.fd.as_fd(), c"", false).with_context(|| format!("{}: cannot stat", path.display()))?;
    Ok(Root {
        path: canonical,
        parent,
        name: CString::new(entry.name.as_bytes()).expect("path names hold no NUL"),
        dev: stat.st_dev,
        ino: stat.st_ino,
        mnt_id,
        is_dir: file_type(&stat) == SFlag::S_IFDIR,
        small_leaf_dir: file_type(&stat) == SFlag::S_IFDIR
            && entry.stat.st_nlink == 2
            && entry.stat.st_size <= 4096,
    })
}

fn lexical(stack: &[Step]) -> PathBuf {
    let mut path = PathBuf::from("/");
    path.extend(stack.iter().map(|step| &step.name));
    path
}

/// `path` with `.` and `..` taken lexically (only used to tell the last component).
fn lexical_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            _ => {}
        }
    }
    out
}

/// The identities of everything a root must not be, or be inside, or hold.
#[derive(Default)]
struct Protected {
    fs_root: Identity,
    /// System trees: a root is refused at any depth below one.
    trees: HashSet<Identity>,
    /// Refused as roots themselves.
    folders: HashSet<Identity>,
    /// Home folders: refused themselves, and their dot-entries at any depth.
    homes: HashSet<Identity>,
    /// Folders holding a home: refused themselves.
    above_homes: HashSet<Identity>,
    /// Every folder holding the journal folder (or the folder it will be made in).
    holds_state: HashSet<Identity>,
    /// The journal folder itself, when it exists.
    state: Option<Identity>,
    state_path: Option<PathBuf>,
}

static HOME_DIRS: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Every user's home folder, read once per run: the first caller reads the passwd database,
/// and a caller arriving meanwhile waits for that read.
fn home_dirs() -> &'static [PathBuf] {
    HOME_DIRS.get_or_init(read_home_dirs)
}

/// Start reading the passwd database (whose modules take a millisecond or so to load) on
/// another thread, for a command that hands folders over only after other work
/// (`quickstart`). The homes' identities are still looked up when PATHs are checked.
pub fn read_home_folders_early() {
    if HOME_DIRS.get().is_none() {
        // Without the thread, the read happens when `own` needs it, as it otherwise does.
        let _ = std::thread::Builder::new().spawn(|| {
            home_dirs();
        });
    }
}

impl Protected {
    fn gather(fs_root: &FileStat, state_dir: Option<&Path>) -> Self {
        let mut protected = Protected {
            fs_root: identity(fs_root),
            ..Protected::default()
        };
        let stat_of = |path: &Path| nix::sys::stat::stat(path).ok().map(|s| identity(&s));
        protected.trees = SYSTEM_TREES
            .iter()
            .filter_map(|p| stat_of(Path::new(p)))
            .collect();
        protected.folders = SYSTEM_FOLDERS
            .iter()
            .filter_map(|p| stat_of(Path::new(p)))
            .collect();
        for home in home_dirs() {
            let chain = chain_of(home);
            if let Some((&home_id, above)) = chain.split_last() {
                protected.homes.insert(home_id);
                protected.above_homes.extend(above.iter().skip(1));
            }
        }
        if let Some(state) = state_dir {
            // Not made yet: protect the folder it will be made in.
            let existing = state.ancestors().find(|p| p.exists()).unwrap_or(state);
            protected
                .holds_state
                .extend(chain_of(existing).into_iter().skip(1));
            protected.state = nix::sys::stat::stat(state).ok().map(|s| identity(&s));
            protected.state_path = Some(state.to_path_buf());
        }
        protected
    }

    fn check(&self, stack: &[Step], canonical: &Path, as_given: &Path) -> Result<()> {
        let refuse = |why: &str| -> Result<()> {
            bail!(
                "{}: refusing to change owners of {why}; name a folder made for the container",
                as_given.display()
            )
        };
        let Some(entry) = stack.last() else {
            return refuse("the root directory");
        };
        let id = identity(&entry.stat);
        if id == self.fs_root {
            return refuse("the root directory");
        }
        if stack.len() == 1 {
            return refuse("a top-level system directory");
        }
        let ids: Vec<Identity> = stack.iter().map(|step| identity(&step.stat)).collect();
        if ids.iter().any(|id| self.trees.contains(id))
            || SYSTEM_TREES.iter().any(|tree| canonical.starts_with(tree))
            || self.folders.contains(&id)
            || SYSTEM_FOLDERS.iter().any(|folder| canonical == Path::new(folder))
        {
            return refuse("a system directory");
        }
        if self.homes.contains(&id) {
            return refuse("a home directory");
        }
        let dot_in_home = stack.windows(2).any(|pair| {
            self.homes.contains(&identity(&pair[0].stat)) && pair[1].name.as_bytes().starts_with(b".")
        });
        if dot_in_home {
            return refuse("a home directory's dotfiles");
        }
        if self.above_homes.contains(&id) {
            return refuse("a folder that contains a home directory");
        }
        if let Some(state) = &self.state_path {
            let inside_state = self.state.is_some_and(|state| ids.contains(&state));
            if self.holds_state.contains(&id) || inside_state {
                return refuse(&format!(
                    "a folder that holds flowerbed's journal ({})",
                    state.display()
                ));
            }
        }
        Ok(())
    }
}

/// Identities of `/` and every folder on the way to `path` (symlinks in `path` resolved).
fn chain_of(path: &Path) -> Vec<Identity> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let mut chain: Vec<Identity> = real
        .ancestors()
        .filter_map(|p| nix::sys::stat::stat(p).ok().map(|s| identity(&s)))
        .collect();
    chain.reverse();
    chain
}

/// Every user's home folder (the passwd database), and the caller's `$HOME`.
fn read_home_dirs() -> Vec<PathBuf> {
    static PASSWD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let mut homes = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        homes.push(PathBuf::from(home));
    }
    let _guard = PASSWD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // SAFETY: getpwent's static buffer is only read here, under the lock, before the next
    // call; setpwent/endpwent bracket the scan.
    unsafe {
        nix::libc::setpwent();
        loop {
            let entry = nix::libc::getpwent();
            if entry.is_null() {
                break;
            }
            let dir = (*entry).pw_dir;
            if !dir.is_null() {
                homes.push(PathBuf::from(OsStr::from_bytes(CStr::from_ptr(dir).to_bytes())));
            }
        }
        nix::libc::endpwent();
    }
    homes.retain(|home| home.is_absolute() && home.components().count() > 1);
    homes
}

/// Raise the open-file limit to its hard maximum; returns the limit now in force.
///
/// The walk keeps one descriptor per directory level, so this bounds the depth it can take.
pub fn raise_fd_limit() -> u64 {
    let mut limit = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = nix::libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str) -> bool {
        resolve(Path::new(path), None).is_err()
    }

    #[test]
    fn system_folders_are_refused() {
        for path in [
            "/",
            "/etc",
            "/etc/ssl",
            "/usr",
            "/usr/local",
            "/var",
            "/var/lib",
            "/var/lib/dpkg",
            "/var/lib/apt",
            "/root",
            "/tmp",
            "/tmp/..",
            "/etc/../usr",
        ] {
            assert!(refused(path), "{path} should be refused");
        }
    }

    #[test]
    fn ordinary_folders_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let root = resolve(&dir.path().join("a/./../a/"), None).unwrap();
        assert_eq!(root.path, std::fs::canonicalize(dir.path().join("a")).unwrap());
        assert!(root.is_dir);
    }

    #[test]
    fn the_journal_folder_must_stay_outside() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state/flowerbed");
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        for tree in [dir.path().join("a"), dir.path().to_path_buf()] {
            let err = resolve(&tree, Some(&state)).err().unwrap();
            assert!(err.to_string().contains("journal"), "{err}");
        }
        std::fs::create_dir_all(&state).unwrap();
        let err = resolve(&state, Some(&state)).err().unwrap();
        assert!(err.to_string().contains("journal"), "{err}");
        std::fs::create_dir_all(state.join("inner")).unwrap();
        let err = resolve(&state.join("inner"), Some(&state)).err().unwrap();
        assert!(err.to_string().contains("journal"), "{err}");
    }
}
