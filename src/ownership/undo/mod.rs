//! `undo`: put back the owner, group and mode every journaled entry had before `own`.
//!
//! Sessions are replayed newest first, so an entry `own` changed twice ends with the state
//! recorded by the first run: the state before flowerbed ever touched it. Each entry is
//! found by its recorded path without following symlinks, and only changed when its device
//! and inode are still the recorded ones. The file capabilities a session journaled go back
//! after its owners and modes (a change of owner clears them).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result, bail};
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, fchownat};
use serde::Serialize;

use super::journal::{self, Capability, JournalSummary, Record};
use super::report::{Progress, SkipReason, WalkReport, display_bytes};
use super::root::{Root, file_type};

/// An entry whose identity no longer matches its record.
#[derive(Debug, Clone, Serialize)]
pub struct ChangedEntry {
    pub path: String,
    pub detail: String,
}

/// Result of checking a journal against the tree, before anything is restored.
#[derive(Debug, Default)]
pub struct Preflight {
    pub records: u64,
    pub changed: u64,
    pub first_changed: Option<ChangedEntry>,
}

/// Finds recorded paths below a root, keeping the directories of the previous path open
/// (records come in walk order, so consecutive paths share most of their directories).
struct Locator<'r> {
    root: &'r Root,
    /// Open directories for the leading components of the previous path.
    open: Vec<(Vec<u8>, OwnedFd)>,
    /// The preflight's recently listed directories, most recent last.
    listings: Vec<Listing>,
    /// The name being opened, NUL-terminated (one buffer for every record).
    c_name: Vec<u8>,
}

/// One directory's entries as `getdents` lists them: the preflight checks inode and type
/// there (a few syscalls per directory) instead of with one stat per entry.
struct Listing {
    /// The directory's path relative to the root.
    key: Vec<u8>,
    dev: u64,
    /// Every listed name, back to back (one buffer, not one allocation per name).
    names: Vec<u8>,
    /// Each name's span in `names`, its inode and type; sorted by name.
    entries: Vec<ListedEntry>,
    /// Too large (or unreadable) to hold: its entries are stat'ed one by one, and the folder
    /// is not read again for each of them.
    unlisted: bool,
}

/// Listings kept at once (records interleave a folder's entries with its subfolders').
const LISTINGS_KEPT: usize = 8;
/// Larger folders are checked entry by entry, so memory stays flat (a listing this size
/// takes half a megabyte plus its names, and each undo walker may hold one).
const LISTING_MAX_ENTRIES: usize = 16_384;

struct ListedEntry {
    name: std::ops::Range<usize>,
    ino: u64,
    kind: Type,
}

impl Listing {
    fn confirms(&self, name: &[u8], record: &Record) -> bool {
        if self.unlisted || self.dev != record.dev {
            return false;
        }
        self.entries
            .binary_search_by(|entry| self.names[entry.name.clone()].cmp(name))
            .is_ok_and(|at| {
                let entry = &self.entries[at];
                entry.ino == record.ino && type_bits(entry.kind) == record.mode & SFlag::S_IFMT.bits()
            })
    }
}

fn type_bits(kind: Type) -> u32 {
    let flag = match kind {
        Type::Fifo => SFlag::S_IFIFO,
        Type::CharacterDevice => SFlag::S_IFCHR,
        Type::Directory => SFlag::S_IFDIR,
        Type::BlockDevice => SFlag::S_IFBLK,
        Type::File => SFlag::S_IFREG,
        Type::Symlink => SFlag::S_IFLNK,
        Type::Socket => SFlag::S_IFSOCK,
    };
    flag.bits()
}

impl<'r> Locator<'r> {
    fn new(root: &'r Root) -> Self {
        Self {
            root,
            open: Vec::new(),
            listings: Vec::new(),
            c_name: Vec::new(),
        }
    }

    /// Whether the parent folder's listing shows the record's inode with its type. `false`
    /// means "look closer with a stat", never "changed".
    fn listed_as_recorded(&mut self, record: &Record) -> Result<bool> {
        if record.path.is_empty() || !below_root(&record.path) {
            return Ok(false);
        }
        let key = record
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&[][..], |slash| &record.path[..slash]);
        let name = entry_name(self.root, record);
        if let Some(listing) = self.listings.iter().find(|l| l.key == key) {
            return Ok(listing.confirms(name, record));
        }
        if self.open_parents(record)?.is_err() {
            return Ok(false);
        }
        let parent = self
            .open
            .last()
            .map_or(self.root.parent.as_fd(), |(_, fd)| fd.as_fd());
        // A descriptor of its own: reading it leaves the locator's descriptors alone.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let Ok(fd) = openat(parent, c".", flags, Mode::empty()) else {
            return Ok(false);
        };
        let dev = fstat(&fd)?.st_dev;
        let mut names = Vec::new();
        let mut entries = Vec::new();
        let mut unlisted = false;
        let mut dir = Dir::from_fd(fd)?;
        for entry in dir.iter() {
            let Some((entry, kind)) = entry
                .ok()
                .and_then(|entry| entry.file_type().map(|kind| (entry, kind)))
            else {
                unlisted = true;
                break;
            };
            let listed = entry.file_name().to_bytes();
            if listed == b"." || listed == b".." {
                continue;
            }
            if entries.len() >= LISTING_MAX_ENTRIES {
                unlisted = true;
                break;
            }
            names.extend_from_slice(listed);
            entries.push(ListedEntry {
                name: names.len() - listed.len()..names.len(),
                ino: entry.ino(),
                kind,
            });
        }
        if unlisted {
            (names, entries) = (Vec::new(), Vec::new());
        }
        entries.sort_unstable_by(|a, b| names[a.name.clone()].cmp(&names[b.name.clone()]));
        let listing = Listing {
            key: key.to_vec(),
            dev,
            names,
            entries,
            unlisted,
        };
        let confirmed = listing.confirms(entry_name(self.root, record), record);
        if self.listings.len() >= LISTINGS_KEPT {
            self.listings.remove(0);
        }
        self.listings.push(listing);
        Ok(confirmed)
    }

    /// Open the directories leading to a record's entry (without following links): the
    /// open components, or why they cannot be entered.
    fn open_parents(&mut self, record: &Record) -> Result<Result<(), String>> {
        if !below_root(&record.path) {
            return Ok(Err(format!(
                "the journal names {}, which is not below the folder; refused",
                display_bytes(&record.path)
            )));
        }
        // Components below the root's parent: the root's own name, then the record's path;
        // every one but the last is a directory to open.
        let root_name = self.root.name.as_bytes();
        let below = (!record.path.is_empty()).then(|| record.path.split(|&b| b == b'/'));
        let count = 1 + below.clone().map_or(0, Iterator::count);
        let dirs = std::iter::once(root_name)
            .chain(below.into_iter().flatten())
            .take(count - 1);
        let shared = self
            .open
            .iter()
            .zip(dirs.clone())
            .take_while(|((open_name, _), want)| open_name.as_slice() == *want)
            .count();
        self.open.truncate(shared);
        for dir_name in dirs.skip(shared) {
            let parent = self
                .open
                .last()
                .map_or(self.root.parent.as_fd(), |(_, fd)| fd.as_fd());
            let c_name = c_string(&mut self.c_name, dir_name)?;
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            match openat(parent, c_name, flags, Mode::empty()) {
                Ok(fd) => {
                    // The first is the root itself: it must still be the folder resolved.
                    if self.open.is_empty() && !fstat(&fd).is_ok_and(|stat| self.root.is(&stat)) {
                        return Ok(Err("the folder was replaced since undo started".into()));
                    }
                    self.open.push((dir_name.to_vec(), fd));
                }
                Err(errno) => {
                    return Ok(Err(format!(
                        "folder {} cannot be entered without following a link: {errno}",
                        display_bytes(dir_name)
                    )));
                }
            }
        }
        Ok(Ok(()))
    }

    /// Why the record's entry is not the one journaled any more (`None`: it still is).
    fn gone(&mut self, record: &Record) -> Result<Option<String>> {
        if let Err(detail) = self.open_parents(record)? {
            return Ok(Some(detail));
        }
        let parent = self
            .open
            .last()
            .map_or(self.root.parent.as_fd(), |(_, fd)| fd.as_fd());
        let name = c_string(&mut self.c_name, entry_name(self.root, record))?;
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            // Same device, inode and file type: a reused inode number of another kind is caught.
            Ok(stat)
                if stat.st_dev == record.dev
                    && stat.st_ino == record.ino
                    && stat.st_mode & SFlag::S_IFMT.bits() == record.mode & SFlag::S_IFMT.bits() =>
            {
                Ok(None)
            }
            Ok(stat) => Ok(Some(format!(
                "now inode {} on device {:x} (journal: inode {} on device {:x})",
                stat.st_ino, stat.st_dev, record.ino, record.dev
            ))),
            Err(Errno::ENOENT) => Ok(Some("no longer exists".into())),
            Err(errno) => Ok(Some(format!("cannot stat: {errno}"))),
        }
    }

    /// [`Self::locate`] and open: a descriptor of the record's entry (`O_PATH`, never
    /// following it) and its stat, checked to be the recorded device, inode and file type;
    /// otherwise why not. One system call fewer than a stat by name and then one of the
    /// descriptor: what is checked is the descriptor that is changed.
    fn open_entry(&mut self, record: &Record) -> Result<Result<(OwnedFd, FileStat), String>> {
        if let Err(detail) = self.open_parents(record)? {
            return Ok(Err(detail));
        }
        let parent = self
            .open
            .last()
            .map_or(self.root.parent.as_fd(), |(_, fd)| fd.as_fd());
        let name = c_string(&mut self.c_name, entry_name(self.root, record))?;
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(Err("no longer exists".into())),
            Err(errno) => return Ok(Err(format!("cannot open: {errno}"))),
        };
        let stat = match fstat(&fd) {
            Ok(stat) => stat,
            Err(errno) => return Ok(Err(format!("cannot stat: {errno}"))),
        };
        let kind = SFlag::S_IFMT.bits();
        if stat.st_dev != record.dev || stat.st_ino != record.ino || stat.st_mode & kind != record.mode & kind
        {
            return Ok(Err(format!(
                "now inode {} on device {:x} (journal: inode {} on device {:x})",
                stat.st_ino, stat.st_dev, record.ino, record.dev
            )));
        }
        Ok(Ok((fd, stat)))
    }
}

/// The record's name within its parent directory.
fn entry_name<'a>(root: &'a Root, record: &'a Record) -> &'a [u8] {
    if record.path.is_empty() {
        root.name.as_bytes()
    } else {
        record.path.rsplit(|&b| b == b'/').next().unwrap_or_default()
    }
}

/// `name` NUL-terminated in `buffer` (reused from record to record: no allocation each).
fn c_string<'b>(buffer: &'b mut Vec<u8>, name: &[u8]) -> Result<&'b CStr> {
    buffer.clear();
    buffer.extend_from_slice(name);
    buffer.push(0);
    CStr::from_bytes_with_nul(buffer).context("journal path holds a NUL byte")
}

/// Threads replaying a journal (restoring is mostly kernel time, like the walk).
fn workers() -> usize {
    crate::ownership::cores().clamp(1, 4)
}

/// For each path a run after the first recorded, the newest run (session index) that did.
///
/// A later run records a path again when the entry there was replaced and handed over anew
/// (a renewed certificate renamed into place, then `own` again). The older record's inode
/// is gone from that path, but not behind the journal's back: the later record restores
/// the path, so the older one is superseded, not "changed since own". Only runs after the
/// first are collected: they record what they changed, usually a handful of entries.
fn later_paths(journal: &JournalSummary) -> Result<HashMap<Vec<u8>, usize>> {
    let mut newest = HashMap::new();
    for (index, session) in journal.sessions.iter().enumerate().skip(1) {
        journal::for_each_batch(&journal.file, session.offset, |batch| {
            for record in batch {
                newest.insert(record.path.clone(), index);
            }
            Ok(())
        })?;
    }
    Ok(newest)
}

/// Whether the record of session `index` at `path` was superseded by a later run's record.
fn superseded(later: &HashMap<Vec<u8>, usize>, index: usize, path: &[u8]) -> bool {
    later.get(path).is_some_and(|&newest| newest > index)
}

/// Check every record of every session against the tree without changing anything.
pub fn preflight(root: &Root, journal: &JournalSummary) -> Result<Preflight> {
    let mut result = Preflight::default();
    let later = later_paths(journal)?;
    for (index, session) in journal.sessions.iter().enumerate() {
        let later = &later;
        let states = journal::par_for_each_batch(
            &journal.file,
            session.offset,
            workers(),
            || (Locator::new(root), Preflight::default()),
            |(locator, found), batch| {
                for record in batch {
                    super::interrupt::check()?;
                    found.records += 1;
                    // The listing confirms nearly every entry; anything it does not is
                    // looked at exactly as restore will.
                    if locator.listed_as_recorded(record)? {
                        continue;
                    }
                    if let Some(detail) = locator.gone(record)? {
                        if superseded(later, index, &record.path) {
                            continue;
                        }
                        found.changed += 1;
                        if found.first_changed.is_none() {
                            found.first_changed = Some(ChangedEntry {
                                path: display_bytes(&record.path),
                                detail,
                            });
                        }
                    }
                }
                Ok(())
            },
        )?;
        for (_, found) in states {
            result.records += found.records;
            result.changed += found.changed;
            if result.first_changed.is_none() {
                result.first_changed = found.first_changed;
            }
        }
    }
    Ok(result)
}

/// Restore every record whose identity still matches; others are reported in the result.
///
/// Sessions go newest first, one after the other; the batches of one session in parallel.
pub fn restore(root: &Root, journal: &JournalSummary, progress: &Progress) -> Result<WalkReport> {
    let mut report = WalkReport::default();
    let later = later_paths(journal)?;
    for (index, session) in journal.sessions.iter().enumerate().rev() {
        let later = &later;
        let states = journal::par_for_each_batch(
            &journal.file,
            session.offset,
            workers(),
            || (Locator::new(root), WalkReport::default()),
            |(locator, report), batch| {
                for record in batch {
                    super::interrupt::check()?;
                    progress.tick();
                    restore_one(locator, record, report, superseded(later, index, &record.path))?;
                }
                Ok(())
            },
        )?;
        for (_, part) in states {
            report.merge(part);
        }
        if session.capabilities > 0 {
            let mut locator = Locator::new(root);
            let given = (session.info.uid, session.info.gid);
            journal::for_each_capability(&journal.file, session.offset, |capability| {
                super::interrupt::check()?;
                if superseded(later, index, &capability.path) {
                    return Ok(()); // the path holds a later run's file now
                }
                restore_capability(&mut locator, capability, given, &mut report)
            })?;
        }
    }
    Ok(report)
}

/// Put back a file's capabilities, once it is checked to be the file journaled, if it has
/// none now (the change of owner cleared them); capabilities set since are left as they are.
/// Capabilities grant privileges, so never onto a file still owned by `given`, the owner
/// `own` handed it to (its owner was not put back).
fn restore_capability(
    locator: &mut Locator<'_>,
    capability: &Capability,
    given: (u32, u32),
    report: &mut WalkReport,
) -> Result<()> {
    let path = &capability.path;
    let record = Record {
        dev: capability.dev,
        ino: capability.ino,
        uid: 0,
        gid: 0,
        mode: SFlag::S_IFREG.bits(),
        path: path.clone(),
    };
    let not_back = |detail: String| SkipReason::Error(format!("capabilities not put back: {detail}"));
    let (fd, now) = match locator.open_entry(&record)? {
        Ok(found) => found,
        Err(detail) => {
            report.skip(path, &not_back(format!("identity changed since own: {detail}")));
            return Ok(());
        }
    };
    if (now.st_uid, now.st_gid) == given {
        report.skip(
            path,
            &not_back(format!("its owner is still {}:{}", given.0, given.1)),
        );
        return Ok(());
    }
    match super::walk::capability::read_fd(fd.as_raw_fd()) {
        Ok(None) => {}
        Ok(Some(now)) if now == capability.value => return Ok(()),
        Ok(Some(_)) => {
            report.skip(
                path,
                &not_back("it has other capabilities now; left as they are".into()),
            );
            return Ok(());
        }
        Err(reason) => {
            report.skip(path, &reason);
            return Ok(());
        }
    }
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match xattr::set_deref(&link, super::walk::capability::ATTRIBUTE, &capability.value) {
        Ok(()) => report.capabilities += 1,
        Err(err) => report.skip(path, &not_back(err.to_string())),
    }
    Ok(())
}

fn restore_one(
    locator: &mut Locator<'_>,
    record: &Record,
    report: &mut WalkReport,
    superseded: bool,
) -> Result<()> {
    // Changed through the descriptor of the inode checked, never by name again: a swap
    // between the check and the change cannot redirect it.
    let (fd, stat) = match locator.open_entry(record)? {
        Ok(found) => found,
        // A later run's record of this path restored it already.
        Err(_) if superseded => return Ok(()),
        Err(detail) => {
            report.skip(
                &record.path,
                &SkipReason::Error(format!("identity changed since own: {detail}")),
            );
            return Ok(());
        }
    };
    let wanted_mode = record.mode & 0o7777;
    let kind = file_type(&stat);
    let owner_differs = stat.st_uid != record.uid || stat.st_gid != record.gid;
    if owner_differs {
        if let Err(errno) = fchownat(
            &fd,
            c"",
            Some(Uid::from_raw(record.uid)),
            Some(Gid::from_raw(record.gid)),
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            report.skip(
                &record.path,
                &SkipReason::Error(format!("cannot restore owner: {errno}")),
            );
            return Ok(());
        }
    }
    // chown clears setuid/setgid, so the mode goes back after the owner. Symlinks have no
    // mode of their own on Linux.
    let mode_differs = stat.st_mode & 0o7777 != wanted_mode;
    if kind != SFlag::S_IFLNK && (mode_differs || (owner_differs && wanted_mode & 0o6000 != 0)) {
        if let Err(detail) = restore_mode(&fd, kind, wanted_mode) {
            report.skip(&record.path, &SkipReason::Error(detail));
            return Ok(());
        }
    }
    if owner_differs || mode_differs {
        report.changed += 1;
    } else {
        report.already_right += 1;
    }
    Ok(())
}

/// chmod the inode `fd` (an `O_PATH` descriptor, checked by the caller) refers to.
fn restore_mode(fd: &OwnedFd, kind: SFlag, mode: u32) -> Result<(), String> {
    let mode = Mode::from_bits_truncate(mode);
    if kind == SFlag::S_IFDIR {
        // A directory reopened through its own descriptor: the same inode.
        let dir = openat(
            fd,
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| format!("cannot open to restore mode: {errno}"))?;
        return fchmod(&dir, mode).map_err(|errno| format!("cannot restore mode: {errno}"));
    }
    // An O_PATH descriptor cannot be fchmod'ed (and opening a FIFO or device could block or
    // act); its /proc link names exactly that inode.
    let proc_link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::set_permissions(&proc_link, std::fs::Permissions::from_mode(mode.bits()))
        .map_err(|err| format!("cannot restore mode (is /proc mounted?): {err}"))
}

/// Whether a journaled path stays below the root: no empty, `.` or `..` component, not
/// absolute (a forged journal must not reach outside the folder).
fn below_root(path: &[u8]) -> bool {
    path.is_empty()
        || path
            .split(|&b| b == b'/')
            .all(|component| !matches!(component, b"" | b"." | b".."))
}

/// Refuse to restore from a journal that did not record this root.
pub fn check_journal_root(root: &Root, journal: &JournalSummary) -> Result<()> {
    for session in &journal.sessions {
        if session.info.root_dev != root.dev || session.info.root_ino != root.ino {
            bail!(
                "{}: journal {} was recorded for another folder ({})",
                root.path.display(),
                journal.file.display(),
                session.info.root
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
