//! Checking and opening the PATHs the user names: never a symlink, never a system folder.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open};
use nix::sys::stat::{Mode, SFlag, fstatat};

use crate::error::Error;

/// A root entry ready to walk: the directory holding it (opened once, by path) and its name.
pub struct Root {
    /// Absolute, symlink-free path (for messages and the journal's label).
    pub path: PathBuf,
    pub parent: OwnedFd,
    pub name: CString,
    pub dev: u64,
    pub ino: u64,
    pub is_dir: bool,
}

/// Folders under which flowerbed never changes owners, at any depth.
const SYSTEM_TREES: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc", "/sys",
    "/run",
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

/// Resolve and check one PATH argument.
pub fn resolve(path: &Path, state_dir: Option<&Path>) -> Result<Root> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: no such file or directory", path.display())
        }
        Err(err) => return Err(err).with_context(|| format!("{}: cannot stat", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::SymlinkRefused {
            path: path.to_path_buf(),
        }
        .into());
    }
    let canonical =
        std::fs::canonicalize(path).with_context(|| format!("{}: cannot resolve", path.display()))?;
    check_not_dangerous(&canonical, path, state_dir)?;
    let (Some(parent_path), Some(name)) = (canonical.parent(), canonical.file_name()) else {
        bail!(
            "{}: refusing to change owners of the root directory",
            path.display()
        );
    };
    let parent = open(
        parent_path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("{}: cannot open", parent_path.display()))?;
    let name = CString::new(name.as_bytes()).expect("path names hold no NUL");
    let stat = match fstatat(&parent, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => bail!("{}: no such file or directory", path.display()),
        Err(errno) => bail!("{}: cannot stat: {errno}", path.display()),
    };
    let is_dir = super::walk::file_type(&stat) == SFlag::S_IFDIR;
    if stat.st_ino != meta_ino(&meta) {
        bail!("{}: changed while being checked; try again", path.display());
    }
    Ok(Root {
        path: canonical,
        parent,
        name,
        dev: stat.st_dev,
        ino: stat.st_ino,
        is_dir,
    })
}

fn meta_ino(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

/// Refuse roots whose takeover would break the machine or hand a container the journal.
pub fn check_not_dangerous(canonical: &Path, as_given: &Path, state_dir: Option<&Path>) -> Result<()> {
    let refuse = |why: &str| -> Result<()> {
        bail!(
            "{}: refusing to change owners of {why}; name a folder made for the container",
            as_given.display()
        )
    };
    let depth = canonical.components().count();
    if depth <= 1 {
        return refuse("the root directory");
    }
    if depth == 2 {
        return refuse("a top-level system directory");
    }
    if SYSTEM_TREES.iter().any(|tree| canonical.starts_with(tree)) {
        return refuse("a system directory");
    }
    if SYSTEM_FOLDERS.iter().any(|folder| canonical == Path::new(folder)) {
        return refuse("a system directory");
    }
    for home in home_dirs() {
        if canonical == home {
            return refuse("a home directory");
        }
        if home.starts_with(canonical) {
            return refuse("a folder that contains a home directory");
        }
    }
    if let Some(state) = state_dir {
        let state = std::fs::canonicalize(state).unwrap_or_else(|_| state.to_path_buf());
        if state.starts_with(canonical) {
            return refuse(&format!(
                "a folder that holds flowerbed's journal ({})",
                state.display()
            ));
        }
    }
    Ok(())
}

/// The caller's home directories: `$HOME` and, under sudo, the sudo user's.
fn home_dirs() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        homes.push(PathBuf::from(home));
    }
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
        homes.push(user.dir);
    }
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|v| v.parse().ok());
    if let Some(Ok(Some(user))) =
        sudo_uid.map(|uid| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)))
    {
        homes.push(user.dir);
    }
    homes
        .into_iter()
        .map(|home| std::fs::canonicalize(&home).unwrap_or(home))
        .filter(|home| home.components().count() > 1)
        .collect()
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
        check_not_dangerous(Path::new(path), Path::new(path), None).is_err()
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
            "/home",
            "/tmp",
            "/srv",
        ] {
            assert!(refused(path), "{path} should be refused");
        }
    }

    #[test]
    fn ordinary_folders_are_allowed() {
        for path in [
            "/srv/flower/certs",
            "/var/lib/docker/volumes/state/_data",
            "/opt/fl/state",
        ] {
            assert!(!refused(path), "{path} should be allowed");
        }
    }

    #[test]
    fn the_journal_folder_must_stay_outside() {
        let err = check_not_dangerous(
            Path::new("/srv/a"),
            Path::new("/srv/a"),
            Some(Path::new("/srv/a/state/flowerbed")),
        )
        .unwrap_err();
        assert!(err.to_string().contains("journal"), "{err}");
    }
}
