//! Safe ownership: hand trees to a container's UID (`own`), put them back exactly (`undo`),
//! or hand them to the person at the keyboard (`release`).
//!
//! * [`walk`]: the fd-relative walk that never follows a symlink.
//! * [`journal`]: the on-disk record of what `own` changed, synced before each change.
//! * [`undo`]: replaying a journal, checking each entry's identity first.
//! * [`root`]: checking the PATHs the user names.
//! * [`subid`]: container IDs to host IDs under rootless Docker / userns-remap.
//! * [`interrupt`]: SIGINT / SIGTERM stop a run at a consistent point.
//!
//! "The last own" for `undo`: every `own` of a root appends one session to that root's
//! journal, holding only the entries it changed. `undo` replays all sessions newest first,
//! so the tree returns to its state before the *first* `own`, however often it was owned
//! since; the journal is then removed.

pub mod interrupt;
pub mod journal;
mod listing;
mod nested;
pub mod report;
pub mod root;
pub mod subid;
pub mod undo;
pub mod walk;

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use serde::Serialize;

use crate::hints;

pub use self::journal::LockWait;
use self::journal::identity::{self, Observed, Proof, Recorded, Verdict};
use self::journal::status;
use self::journal::{JournalLock, JournalSummary, JournalWriter, RootIdentity, SessionInfo};
pub use self::listing::{Listed, Pruned, journal_for, list_journals, prune_journals};
use self::report::{Progress, WalkReport};
use self::root::Root;
use self::undo::ChangedEntry;
pub use self::walk::Target;
use self::walk::WalkOptions;

/// The ID `chown` reads as "leave unchanged": never a target (it changes nothing).
pub const UNCHANGED_ID: u32 = u32::MAX;

pub use self::subid::sudo_caller;

/// Plain settings for `own` and `release`.
#[derive(Debug, Clone)]
pub struct ReownSettings {
    pub paths: Vec<PathBuf>,
    pub target: Target,
    pub allow_hardlinks: bool,
    pub dry_run: bool,
    pub progress: bool,
    /// Whether to wait for another run holding the root's journal lock.
    pub wait: LockWait,
}

/// What happened to one PATH.
#[derive(Debug, Clone, Serialize)]
pub struct RootOutcome {
    pub path: PathBuf,
    #[serde(flatten)]
    pub report: WalkReport,
    /// The journal written (`own`), replayed (`undo`) or retired (`release`).
    pub journal: Option<PathBuf>,
    /// `release` only: journals of paths inside the tree, retired with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inner_journals: Vec<PathBuf>,
    /// `release` only: journals of paths inside that another run holds (kept, not retired).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inner_busy: Vec<PathBuf>,
    /// `undo` only: entries whose identity changed since `own`, left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_changed: Option<u64>,
    /// `own` only: a journal named after the root's inode but another folder's, moved
    /// aside (where to, and why it is not this folder's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<SetAside>,
    /// `own` and `release`: journals of folders on the same device proven gone, removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<PathBuf>,
    /// `undo` only: how the journal was found to be this folder's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_rule: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetAside {
    pub file: PathBuf,
    pub reason: String,
}

impl RootOutcome {
    fn new(root: &Root, report: WalkReport, journal: Option<PathBuf>) -> Self {
        Self {
            path: root.path.clone(),
            report,
            journal,
            inner_journals: Vec::new(),
            inner_busy: Vec::new(),
            identity_changed: None,
            set_aside: None,
            pruned: Vec::new(),
            identity_rule: None,
        }
    }
}

/// A descriptor on the root's filesystem, for file handles: the root folder itself
/// (opened without following a link), or the folder holding a root that is a file.
fn open_root(root: &Root) -> Result<OwnedFd> {
    if !root.is_dir {
        return Ok(root.parent.try_clone()?);
    }
    openat(
        &root.parent,
        root.name.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("{}: cannot open", root.path.display()))
}

fn observe(root: &Root) -> Result<Observed> {
    let name: &CStr = root.name.as_c_str();
    identity::identify(root.parent.as_fd(), name)
        .with_context(|| format!("{}: cannot stat", root.path.display()))
}

/// Whether the journal at `path` is this root's: its first run's identity proving it is
/// enough (every later run was appended after the same check); anything else is judged
/// on every run.
fn judge_existing(path: &Path, root_fd: &OwnedFd, observed: &Observed) -> Result<Verdict> {
    if let Some(info) = journal::first_session(path)?.filter(|i| i.identity.is_some()) {
        let run = Recorded {
            info: &info,
            root_entry: None,
        };
        let verdict = identity::judge(&[run], observed, Some(root_fd.as_fd()));
        if matches!(verdict, Verdict::Belongs(Proof::Identity(_))) {
            return Ok(verdict);
        }
    }
    let summary = journal::summarize(path)?;
    Ok(identity::judge(
        &status::runs(&summary),
        observed,
        Some(root_fd.as_fd()),
    ))
}

/// Release a journal lock, removing its file: lock files do not pile up, and a run
/// waiting on the removed file takes the lock on a new one (see [`JournalLock::acquire`]).
fn unlock(lock: JournalLock) {
    lock.remove();
}

fn resolve_all(paths: &[PathBuf], state_dir: Option<&Path>) -> Result<Vec<Root>> {
    if paths.is_empty() {
        bail!("no PATH given");
    }
    root::resolve_all(paths, state_dir)
}

impl ReownSettings {
    fn walk_options(&self, journal_capabilities: bool) -> WalkOptions {
        WalkOptions {
            target: self.target,
            allow_hardlinks: self.allow_hardlinks,
            dry_run: self.dry_run,
            journal_capabilities,
            concurrent_walks: 1,
        }
    }
}

/// Open-file limit a walk needs to run beside others (a share of a few thousand
/// descriptors still lets it go a thousand folders deep).
const FDS_PER_CONCURRENT_WALK: usize = 2_048;

/// `own`: journal, then give every entry below each PATH to the target.
pub fn own(settings: &ReownSettings) -> Result<Vec<RootOutcome>> {
    let state_dir = journal::state_dir()?;
    let roots = resolve_all(&settings.paths, Some(&state_dir))?;
    if !settings.dry_run {
        journal::ensure_state_dir(&state_dir, Some(settings.target.uid))?;
    }
    // Pruning the journals of gone folders reads every journal of a device: once per
    // device is enough, by its first root.
    let mut seen_devices = std::collections::HashSet::new();
    let first_of_device: Vec<bool> = roots.iter().map(|root| seen_devices.insert(root.dev)).collect();
    // Several folders and no progress to show (quickstart hands over a few small ones):
    // all at once, each under its own journal lock, so that their journal syncs overlap.
    // Progress bars would interleave: with them, one after the other.
    // Each walk takes its share of the open-file limit (which bounds the depth it can go
    // to): with a low limit, one after the other too.
    let fd_limit = usize::try_from(root::raise_fd_limit()).unwrap_or(usize::MAX);
    let room = fd_limit / FDS_PER_CONCURRENT_WALK;
    // Folders inside one another (or one given twice) go one after the other too: the
    // outer walk would change what the inner one is looking at.
    let disjoint = roots.iter().enumerate().all(|(i, a)| {
        roots[i + 1..]
            .iter()
            .all(|b| !a.path.starts_with(&b.path) && !b.path.starts_with(&a.path))
    });
    let concurrent = if settings.progress || roots.len() > room || !disjoint {
        1
    } else {
        roots.len()
    };
    let mut options = settings.walk_options(true);
    options.concurrent_walks = concurrent;
    if concurrent > 1 {
        walk::reserve_descriptors(concurrent, fd_limit);
    }
    let own_root = |root: &Root, prune: bool| -> Result<RootOutcome> {
        let progress = Progress::new(settings.progress, &format!("own {}", root.path.display()));
        let outcome = if settings.dry_run {
            RootOutcome::new(root, walk::reown(root, options, None, &progress, &[])?, None)
        } else {
            let path = journal::journal_path(&state_dir, root.dev, root.ino);
            let lock = JournalLock::acquire(&path, &root.path, settings.wait)?;
            let result = own_one(root, options, &state_dir, &path, &progress, prune);
            unlock(lock);
            let (report, set_aside, pruned) = result?;
            let mut outcome = RootOutcome::new(root, report, path.exists().then_some(path));
            outcome.set_aside = set_aside;
            outcome.pruned = pruned;
            outcome
        };
        progress.finish();
        Ok(outcome)
    };
    if concurrent == 1 {
        return roots
            .iter()
            .zip(first_of_device.iter().copied())
            .map(|(root, prune)| own_root(root, prune))
            .collect();
    }
    // Every root is done or refused on its own; the first error (in the order given) is
    // the one reported.
    std::thread::scope(|scope| {
        let runs: Vec<_> = roots
            .iter()
            .zip(first_of_device.iter().copied())
            .map(|(root, prune)| scope.spawn(move || own_root(root, prune)))
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("own thread panicked"))
            .collect()
    })
}

type OwnedOne = (WalkReport, Option<SetAside>, Vec<PathBuf>);

/// `own` of one root, its journal lock held: set a foreign journal aside, prune the gone
/// folders' journals of its device, journal and walk.
fn own_one(
    root: &Root,
    options: WalkOptions,
    state_dir: &Path,
    path: &Path,
    progress: &Progress,
    prune: bool,
) -> Result<OwnedOne> {
    let root_fd = open_root(root)?;
    let observed = observe(root)?;
    let mut set_aside = None;
    if std::fs::symlink_metadata(path).is_ok() {
        if let Verdict::Foreign(reason) = judge_existing(path, &root_fd, &observed)? {
            let file = journal::set_aside(path, root.dev, root.ino)?;
            set_aside = Some(SetAside { file, reason });
        }
    }
    let pruned = if prune {
        status::prune_device(state_dir, root_fd.as_fd(), root.dev, path)
    } else {
        Vec::new()
    };
    let mut writer = JournalWriter::open(
        path,
        session_info("own", root, options.target, Some(observed.identity)),
        Some(options.target.uid),
    )?;
    let walked = walk::reown(root, options, Some(&mut writer), progress, &[]);
    // A damaged journal stopped the walk before any change: report it as it is. (A new
    // journal that cannot be synced fails its first frames, before any change, too.)
    writer.prepare()?;
    let report = walked.with_context(|| {
        format!(
            "own {}: stopped before the end; every change made is in the journal \
             (`{}` puts it back)",
            root.path.display(),
            hints::undo_path(&root.path.display().to_string())
        )
    })?;
    let recorded = writer.finish(journal::unix_now())?;
    if recorded == 0 {
        remove_if_empty(path);
    }
    Ok((report, set_aside, pruned))
}

/// A journal holding only its header records nothing: do not leave it behind.
fn remove_if_empty(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() <= journal::MAGIC.len() as u64) {
        let _ = std::fs::remove_file(path);
    }
}

fn session_info(command: &str, root: &Root, target: Target, identity: Option<RootIdentity>) -> SessionInfo {
    SessionInfo {
        tool: format!("flowerbed {}", env!("CARGO_PKG_VERSION")),
        command: command.into(),
        started: journal::unix_now(),
        root: root.path.to_string_lossy().into_owned(),
        root_dev: root.dev,
        root_ino: root.ino,
        uid: target.uid,
        gid: target.gid,
        identity,
    }
}

/// `release`: give every entry to the target without journaling; a journal left by `own`
/// is retired once everything was handed over (the tree is no longer the container's).
pub fn release(settings: &ReownSettings) -> Result<Vec<RootOutcome>> {
    let state_dir = journal::state_dir().ok();
    let roots = resolve_all(&settings.paths, state_dir.as_deref())?;
    // Journals are only looked at (and locked) where the state directory exists.
    let state_dir = match state_dir {
        Some(dir) if journal::check_state_dir(&dir)? => Some(dir),
        _ => None,
    };
    let mut outcomes = Vec::new();
    for root in &roots {
        let Some(dir) = state_dir.as_deref() else {
            outcomes.push(release_one(root, settings, None)?);
            continue;
        };
        let path = journal::journal_path(dir, root.dev, root.ino);
        let lock = JournalLock::acquire(&path, &root.path, settings.wait)?;
        let result = release_one(root, settings, Some(dir));
        unlock(lock);
        outcomes.push(result?);
    }
    Ok(outcomes)
}

fn release_one(root: &Root, settings: &ReownSettings, state_dir: Option<&Path>) -> Result<RootOutcome> {
    let progress = Progress::new(settings.progress, &format!("release {}", root.path.display()));
    // A journal named after the root's inode but of a folder that had it before is not
    // retired with this tree: it is pruned, as proven stale. Judged before the walk, which
    // changes the owner that older journals are judged by.
    let root_fd = open_root(root)?;
    let foreign = match state_dir.map(|dir| journal::journal_path(dir, root.dev, root.ino)) {
        Some(path) if path.exists() => {
            let observed = observe(root)?;
            matches!(
                judge_existing(&path, &root_fd, &observed),
                Ok(Verdict::Foreign(_))
            )
        }
        _ => false,
    };
    // Paths inside the tree may have journals of their own (`own` run on them): once the
    // tree is handed over they are retired too, or they would outlive what they name and
    // be picked up by whatever later gets the same inode.
    let watch = state_dir.map(journal::journal_roots).unwrap_or_default();
    let report =
        walk::reown(root, settings.walk_options(false), None, &progress, &watch).with_context(|| {
            format!(
                "release {}: stopped before the end (run it again to finish)",
                root.path.display()
            )
        })?;
    progress.finish();
    let existing = |(dev, ino): (u64, u64)| {
        state_dir
            .map(|dir| journal::journal_path(dir, dev, ino))
            .filter(|path| path.exists())
    };
    let own_journal = existing((root.dev, root.ino));
    let (journal_path, stale) = if foreign {
        (None, own_journal)
    } else {
        (own_journal, None)
    };
    let mut inner_journals: Vec<PathBuf> = report
        .watched
        .iter()
        .filter(|&&entry| entry != (root.dev, root.ino))
        .filter_map(|&entry| existing(entry))
        .collect();
    inner_journals.sort_unstable();
    inner_journals.dedup();
    let mut pruned = Vec::new();
    let mut inner_busy = Vec::new();
    if !settings.dry_run {
        if let Some(path) = stale {
            retire(&path)?;
            pruned.push(path);
        }
        if report.skipped == 0 {
            if let Some(path) = &journal_path {
                retire(path)?;
            }
            // Each under its own lock: a run still writing one (`own` of that folder) keeps it.
            for path in std::mem::take(&mut inner_journals) {
                match JournalLock::try_acquire(&path) {
                    Some(lock) => {
                        retire(&path)?;
                        lock.remove();
                        inner_journals.push(path);
                    }
                    None => inner_busy.push(path),
                }
            }
        }
        if let Some(dir) = state_dir {
            let keep = journal::journal_path(dir, root.dev, root.ino);
            pruned.extend(status::prune_device(dir, root_fd.as_fd(), root.dev, &keep));
        }
    }
    let mut outcome = RootOutcome::new(root, report, journal_path);
    outcome.inner_journals = inner_journals;
    outcome.inner_busy = inner_busy;
    outcome.pruned = pruned;
    Ok(outcome)
}

/// Remove a journal `release` is done with, and the lock file of one nobody holds.
fn retire(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        // Retired meanwhile (another release of an overlapping tree).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("{}: cannot retire the journal: {e}", path.display()),
        Ok(()) => {}
    }
    if let Some(lock) = JournalLock::try_acquire(path) {
        lock.remove();
    }
    Ok(())
}

/// Plain settings for `undo`.
#[derive(Debug, Clone)]
pub struct UndoSettings {
    pub paths: Vec<PathBuf>,
    /// Restore what still matches even if some entries changed since `own`.
    pub skip_changed: bool,
    pub dry_run: bool,
    pub progress: bool,
    pub wait: LockWait,
}

/// The cores this process may use, asked once: the standard library reads the cgroup's
/// quota files at each call, and one run walks several folders, each with its walkers.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// An `undo` refused before touching anything because the tree changed since `own`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{root}: {count} journaled entries changed since own (first: {}: {}); nothing restored (pass {skip} to restore the rest)",
    first.path, first.detail, skip = hints::flag::SKIP_CHANGED
)]
pub struct TreeChanged {
    pub root: String,
    pub count: u64,
    pub first: ChangedEntry,
}

/// `undo`: check every journal against its tree, then restore.
pub fn undo(settings: &UndoSettings) -> Result<Vec<RootOutcome>> {
    // Finding an entry keeps its parent directories open: deep trees need descriptors.
    root::raise_fd_limit();
    let state_dir = journal::state_dir()?;
    let roots = resolve_all(&settings.paths, Some(&state_dir))?;
    journal::check_state_dir(&state_dir)?;
    for root in &roots {
        let path = journal::journal_path(&state_dir, root.dev, root.ino);
        if !path.exists() {
            bail!(
                "{}: no journal (looked for {}); `{}` shows what is recorded",
                root.path.display(),
                path.display(),
                hints::journal_list()
            );
        }
    }
    // Every journal stays locked from its check to its removal; taken in one order (and
    // once per root), so that two undos of overlapping PATH lists cannot deadlock.
    let mut order: Vec<(u64, u64, &Root)> = roots.iter().map(|r| (r.dev, r.ino, r)).collect();
    order.sort_by_key(|&(dev, ino, _)| (dev, ino));
    order.dedup_by_key(|&mut (dev, ino, _)| (dev, ino));
    let mut locks = Vec::new();
    for &(dev, ino, root) in &order {
        let path = journal::journal_path(&state_dir, dev, ino);
        locks.push(JournalLock::acquire(&path, &root.path, settings.wait)?);
    }
    let result = undo_locked(settings, &roots, &state_dir);
    for lock in locks {
        unlock(lock);
    }
    result
}

fn undo_locked(settings: &UndoSettings, roots: &[Root], state_dir: &Path) -> Result<Vec<RootOutcome>> {
    let mut checked = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let path = journal::journal_path(state_dir, root.dev, root.ino);
        if !path.exists() {
            // Undone by another run while this one waited for the lock.
            bail!(
                "{}: no journal (looked for {})",
                root.path.display(),
                path.display()
            );
        }
        let summary = journal::summarize(&path)?;
        summary.check_complete()?;
        let rule = belongs(root, &summary)?;
        undo::check_journal_root(root, &summary)?;
        // Roots before this one in the list are undone before it.
        let earlier: Vec<(u64, u64)> = roots[..index].iter().map(|r| (r.dev, r.ino)).collect();
        nested::check_order(state_dir, root, &summary, &earlier)?;
        let preflight = undo::preflight(root, &summary)
            .with_context(|| format!("undo {}: stopped; nothing restored", root.path.display()))?;
        if let Some(first) = preflight.first_changed.clone() {
            if !settings.skip_changed {
                return Err(TreeChanged {
                    root: root.path.display().to_string(),
                    count: preflight.changed,
                    first,
                }
                .into());
            }
        }
        checked.push((root, summary, preflight, rule));
    }
    let mut outcomes = Vec::new();
    for (root, summary, preflight, rule) in checked {
        let report = if settings.dry_run {
            WalkReport {
                changed: preflight.records - preflight.changed,
                capabilities: summary.sessions.iter().map(|s| s.capabilities).sum(),
                ..WalkReport::default()
            }
        } else {
            let progress = Progress::new(settings.progress, &format!("undo {}", root.path.display()));
            let report = undo::restore(root, &summary, &progress).with_context(|| {
                format!(
                    "undo {}: stopped before the end; the journal is kept (run undo again to finish)",
                    root.path.display()
                )
            })?;
            progress.finish();
            if report.skipped == 0 {
                std::fs::remove_file(&summary.file).map_err(|e| {
                    anyhow::anyhow!("{}: cannot remove the journal: {e}", summary.file.display())
                })?;
            }
            report
        };
        let mut outcome = RootOutcome::new(root, report, Some(summary.file.clone()));
        outcome.identity_changed = Some(preflight.changed);
        outcome.identity_rule = Some(rule);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Refuse a journal that is not this root's (another folder had the inode); how it was
/// found to be.
fn belongs(root: &Root, summary: &JournalSummary) -> Result<String> {
    let root_fd = open_root(root)?;
    match identity::judge(&status::runs(summary), &observe(root)?, Some(root_fd.as_fd())) {
        Verdict::Belongs(proof) => Ok(proof.describe()),
        Verdict::Foreign(reason) => bail!(
            "{}: journal {} belongs to another folder: {reason}; nothing restored (`{}` removes it)",
            root.path.display(),
            summary.file.display(),
            hints::journal_prune()
        ),
    }
}
