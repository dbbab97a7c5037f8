//! Where journals live: the state directory, the journals' names, their permissions.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Environment variable that overrides the state directory (tests, the Docker helper).
pub const STATE_DIR_ENV: &str = "FLOWERBED_STATE_DIR";
/// The UID that owns the state directory besides root and the caller: `own --via-docker`
/// runs flowerbed as root in a helper container over the invoking user's own state folder,
/// which the invoking user's flowerbed checked before starting it.
pub const STATE_OWNER_ENV: &str = "FLOWERBED_STATE_OWNER";

/// The directory journals are kept in.
///
/// Root uses a root-owned system location so the journal is out of reach of the container's
/// UID; anyone else uses their XDG state directory.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/flowerbed"));
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(state).join("flowerbed"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_STATE_HOME nor HOME is set: cannot place the journal")?;
    Ok(PathBuf::from(home).join(".local/state/flowerbed"))
}

/// The journal file for the root with this device and inode.
pub fn journal_path(dir: &Path, dev: u64, ino: u64) -> PathBuf {
    dir.join(format!("own-{dev:x}-{ino:x}.journal"))
}

/// The (device, inode) of every root that has a journal in `dir`, sorted, read off the file
/// names [`journal_path`] gives (nothing if the folder cannot be read).
pub fn journal_roots(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut roots: Vec<(u64, u64)> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let (dev, ino) = name
                .to_str()?
                .strip_prefix("own-")?
                .strip_suffix(".journal")?
                .split_once('-')?;
            Some((
                u64::from_str_radix(dev, 16).ok()?,
                u64::from_str_radix(ino, 16).ok()?,
            ))
        })
        .collect();
    roots.sort_unstable();
    roots
}

/// Create the state directory (0700) if needed and check nobody else can write into it.
///
/// `forbidden_uid` is the owner `own` hands out: a journal that UID could edit would let a
/// container steer a later `undo`.
pub fn ensure_state_dir(dir: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create the journal directory", dir.display()))?;
    check_private(dir, forbidden_uid)
}

/// Check the state directory before journals in it are read: `false` if it does not
/// exist (no journals), an error if someone else could have written them.
pub fn check_state_dir(dir: &Path) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        _ => check_private(dir, None).map(|()| true),
    }
}

/// Whether journals and their folder may belong to `uid`: root, the caller, or the invoking
/// user of `own --via-docker` (named by [`STATE_OWNER_ENV`]).
pub fn trusted_owner(uid: u32) -> bool {
    let delegated = std::env::var(STATE_OWNER_ENV)
        .ok()
        .and_then(|text| text.parse::<u32>().ok());
    uid == 0 || uid == nix::unistd::geteuid().as_raw() || Some(uid) == delegated
}

fn check_private(path: &Path, forbidden_uid: Option<u32>) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "{}: journal location is a symbolic link; refusing to use it",
            path.display()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "{}: journal location is writable by group or others (mode {:o}); run `chmod go-w {}`",
            path.display(),
            meta.mode() & 0o7777,
            path.display()
        );
    }
    let euid = nix::unistd::geteuid().as_raw();
    if !trusted_owner(meta.uid()) {
        bail!(
            "{}: journal location is owned by UID {}, not by root or UID {euid}; refusing to trust it",
            path.display(),
            meta.uid()
        );
    }
    if forbidden_uid == Some(meta.uid()) && meta.uid() != 0 {
        bail!(
            "{}: journal location is owned by UID {}, the owner being handed out; choose another {STATE_DIR_ENV}",
            path.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// Prefix of journals `own` set aside: they belonged to a folder that is gone.
const SET_ASIDE_PREFIX: &str = "set-aside-";

/// The device and inode a journal file is named after (`own` or set aside).
pub fn journal_name_root(path: &Path) -> Option<(u64, u64)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".journal")?;
    let (dev, rest) = name
        .strip_prefix("own-")
        .or_else(|| name.strip_prefix(SET_ASIDE_PREFIX))?
        .split_once('-')?;
    let ino = rest.split('-').next()?;
    Some((
        u64::from_str_radix(dev, 16).ok()?,
        u64::from_str_radix(ino, 16).ok()?,
    ))
}

/// Whether `own` set this journal aside.
pub fn is_set_aside(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(SET_ASIDE_PREFIX))
}

/// Every journal file in `dir` (named by `own` or set aside), sorted.
pub fn journal_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => bail!("{}: cannot list journals: {err}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "journal"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Move a journal that belongs to another folder out of the way, under a name no lookup
/// picks up (`journal prune` removes it); the new name.
pub fn set_aside(journal: &Path, dev: u64, ino: u64) -> Result<PathBuf> {
    let dir = journal.parent().unwrap_or(Path::new("."));
    let now = unix_now();
    for n in 0..100 {
        let aside = dir.join(format!("{SET_ASIDE_PREFIX}{dev:x}-{ino:x}-{now}-{n}.journal"));
        match nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            journal,
            nix::fcntl::AT_FDCWD,
            &aside,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(aside),
            Err(nix::errno::Errno::EEXIST) => {}
            Err(errno) => bail!("{}: cannot set the journal aside: {errno}", journal.display()),
        }
    }
    bail!(
        "{}: cannot set the journal aside: too many set aside",
        journal.display()
    )
}

/// The lock file beside a journal.
pub fn lock_path(journal: &Path) -> PathBuf {
    journal.with_extension("lock")
}

/// An exclusive lock on one root's journal, held for a whole `own`, `undo` or `release`.
pub struct JournalLock {
    file: nix::fcntl::Flock<fs::File>,
    path: PathBuf,
}

/// How to take a lock that another run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait for it, saying so in one line on stderr.
    Wait,
    /// Fail at once.
    NoWait,
}

impl JournalLock {
    /// Lock the journal of `root` (named for messages). The lock file is created 0600 if
    /// needed; a lock file removed while waiting for it is opened again.
    pub fn acquire(journal: &Path, root: &Path, wait: LockWait) -> Result<Self> {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::OpenOptionsExt;
        let path = lock_path(journal);
        let mut said = false;
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&path)
                .with_context(|| format!("{}: cannot open the journal lock", path.display()))?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(locked) => locked,
                Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
                    if wait == LockWait::NoWait {
                        bail!(
                            "{}: another flowerbed run holds its journal lock ({}); try again later, or leave out {} to wait",
                            root.display(),
                            path.display(),
                            crate::hints::flag::NO_WAIT
                        );
                    }
                    if !said {
                        eprintln!(
                            "waiting for another flowerbed run on {} to finish (lock {})",
                            root.display(),
                            path.display()
                        );
                        said = true;
                    }
                    Flock::lock(file, FlockArg::LockExclusive)
                        .map_err(|(_, errno)| anyhow::anyhow!("{}: cannot lock: {errno}", path.display()))?
                }
                Err((_, errno)) => bail!("{}: cannot lock: {errno}", path.display()),
            };
            // The holder may have removed the file (its journal done with): lock the one
            // that is there now instead.
            let ours = file.metadata()?;
            match fs::symlink_metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (ours.dev(), ours.ino()) => {
                    return Ok(Self { file, path });
                }
                _ => {}
            }
        }
    }

    /// Lock without waiting; `None` if another run holds it.
    pub fn try_acquire(journal: &Path) -> Option<Self> {
        Self::acquire(journal, journal, LockWait::NoWait).ok()
    }

    /// Remove the lock file (its journal is gone), then release the lock.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_roots_are_read_off_journal_names_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "own-fe00-1a.journal",
            "own-2-5.journal",
            "own-zz-1.journal",
            "own-1-2.txt",
            "notes",
            "own-3.journal",
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            journal_path(dir.path(), 0xfe00, 0x1a),
            dir.path().join("own-fe00-1a.journal")
        );
        assert_eq!(journal_roots(dir.path()), vec![(2, 5), (0xfe00, 0x1a)]);
        assert!(journal_roots(&dir.path().join("missing")).is_empty());
    }
}
