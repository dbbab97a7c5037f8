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
pub mod report;
pub mod root;
pub mod subid;
pub mod undo;
pub mod walk;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use self::journal::{JournalWriter, SessionInfo};
use self::report::{Progress, WalkReport};
use self::root::Root;
use self::undo::ChangedEntry;
pub use self::walk::Target;
use self::walk::WalkOptions;

/// The ID `chown` reads as "leave unchanged": never a target (it would change nothing while
/// reporting changes).
pub const UNCHANGED_ID: u32 = u32::MAX;

/// The user who ran sudo, from `SUDO_UID`/`SUDO_GID`: `None` when neither is set, an error
/// naming the variable when one is missing or is not an ID (so it never silently means root).
pub fn sudo_caller() -> Result<Option<Target>> {
    let read = |name: &str| -> Result<Option<u32>> {
        let Some(value) = std::env::var_os(name) else {
            return Ok(None);
        };
        let text = value.to_string_lossy();
        match text.parse::<u32>() {
            Ok(id) if id != UNCHANGED_ID && !text.starts_with('+') => Ok(Some(id)),
            _ => Err(crate::error::Error::Usage(format!(
                "{name}={}: not a user or group ID (0 to {}); unset it or set it to the caller's ID",
                report::display_bytes(value.as_encoded_bytes()),
                UNCHANGED_ID - 1
            ))
            .into()),
        }
    };
    match (read("SUDO_UID")?, read("SUDO_GID")?) {
        (None, None) => Ok(None),
        (Some(uid), Some(gid)) => Ok(Some(Target { uid, gid })),
        (Some(_), None) => bail!("SUDO_UID is set but SUDO_GID is not; set both or neither"),
        (None, Some(_)) => bail!("SUDO_GID is set but SUDO_UID is not; set both or neither"),
    }
}

/// Plain settings for `own` and `release`.
#[derive(Debug, Clone)]
pub struct ReownSettings {
    pub paths: Vec<PathBuf>,
    pub target: Target,
    pub allow_hardlinks: bool,
    pub dry_run: bool,
    pub progress: bool,
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
    /// `undo` only: entries whose identity changed since `own`, left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_changed: Option<u64>,
}

fn resolve_all(paths: &[PathBuf], state_dir: Option<&Path>) -> Result<Vec<Root>> {
    if paths.is_empty() {
        bail!("no PATH given");
    }
    paths.iter().map(|path| root::resolve(path, state_dir)).collect()
}

impl ReownSettings {
    fn walk_options(&self) -> WalkOptions {
        WalkOptions {
            target: self.target,
            allow_hardlinks: self.allow_hardlinks,
            dry_run: self.dry_run,
        }
    }
}

/// `own`: journal, then give every entry below each PATH to the target.
pub fn own(settings: &ReownSettings) -> Result<Vec<RootOutcome>> {
    let state_dir = journal::state_dir()?;
    let roots = resolve_all(&settings.paths, Some(&state_dir))?;
    if !settings.dry_run {
        journal::ensure_state_dir(&state_dir, Some(settings.target.uid))?;
    }
    let options = settings.walk_options();
    let mut outcomes = Vec::new();
    for root in &roots {
        let progress = Progress::new(settings.progress, &format!("own {}", root.path.display()));
        let (report, journal_path) = if settings.dry_run {
            (walk::reown(root, options, None, &progress, &[])?, None)
        } else {
            let path = journal::journal_path(&state_dir, root.dev, root.ino);
            let mut writer = JournalWriter::open(
                &path,
                session_info("own", root, settings.target),
                Some(settings.target.uid),
            )?;
            let walked = walk::reown(root, options, Some(&mut writer), &progress, &[]);
            // A journal that cannot be appended to (damaged, or its new file cannot be synced)
            // stopped the walk before any change: report it as it is.
            writer.prepare()?;
            let report = walked.with_context(|| {
                format!(
                    "own {}: stopped before the end; every change made is in the journal \
                     (`flowerbed undo {}` puts it back)",
                    root.path.display(),
                    root.path.display()
                )
            })?;
            let recorded = writer.finish(journal::unix_now())?;
            if recorded == 0 {
                remove_if_empty(&path);
            }
            (report, path.exists().then_some(path))
        };
        progress.finish();
        outcomes.push(RootOutcome {
            path: root.path.clone(),
            report,
            journal: journal_path,
            identity_changed: None,
            inner_journals: Vec::new(),
        });
    }
    Ok(outcomes)
}

/// A journal holding only its header records nothing: do not leave it behind.
fn remove_if_empty(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() <= journal::MAGIC.len() as u64) {
        let _ = std::fs::remove_file(path);
    }
}

fn session_info(command: &str, root: &Root, target: Target) -> SessionInfo {
    SessionInfo {
        tool: format!("flowerbed {}", env!("CARGO_PKG_VERSION")),
        command: command.into(),
        started: journal::unix_now(),
        root: root.path.to_string_lossy().into_owned(),
        root_dev: root.dev,
        root_ino: root.ino,
        uid: target.uid,
        gid: target.gid,
    }
}

/// `release`: give every entry to the target without journaling; a journal left by `own`
/// is retired once everything was handed over (the tree is no longer the container's).
pub fn release(settings: &ReownSettings) -> Result<Vec<RootOutcome>> {
    let state_dir = journal::state_dir().ok();
    let roots = resolve_all(&settings.paths, state_dir.as_deref())?;
    let options = settings.walk_options();
    let mut outcomes = Vec::new();
    for root in &roots {
        let progress = Progress::new(settings.progress, &format!("release {}", root.path.display()));
        // Paths inside the tree may have journals of their own (`own` run on them): once the
        // tree is handed over they are retired too, or they would outlive what they name and
        // be picked up by whatever later gets the same inode.
        let watch = state_dir
            .as_deref()
            .map(journal::journal_roots)
            .unwrap_or_default();
        let report = walk::reown(root, options, None, &progress, &watch).with_context(|| {
            format!(
                "release {}: stopped before the end (run it again to finish)",
                root.path.display()
            )
        })?;
        progress.finish();
        let existing = |(dev, ino): (u64, u64)| {
            state_dir
                .as_deref()
                .map(|dir| journal::journal_path(dir, dev, ino))
                .filter(|path| path.exists())
        };
        let journal_path = existing((root.dev, root.ino));
        let inner_journals: Vec<PathBuf> = report
            .watched
            .iter()
            .filter(|&&entry| entry != (root.dev, root.ino))
            .filter_map(|&entry| existing(entry))
            .collect();
        if !settings.dry_run && report.skipped == 0 {
            for path in journal_path.iter().chain(&inner_journals) {
                match std::fs::remove_file(path) {
                    // Retired meanwhile (another release of an overlapping tree).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => bail!("{}: cannot retire the journal: {e}", path.display()),
                    Ok(()) => {}
                }
            }
        }
        outcomes.push(RootOutcome {
            path: root.path.clone(),
            report,
            journal: journal_path,
            identity_changed: None,
            inner_journals,
        });
    }
    Ok(outcomes)
}

/// Plain settings for `undo`.
#[derive(Debug, Clone)]
pub struct UndoSettings {
    pub paths: Vec<PathBuf>,
    /// Restore what still matches even if some entries changed since `own`.
    pub skip_changed: bool,
    pub dry_run: bool,
    pub progress: bool,
}

/// An `undo` refused before touching anything because the tree changed since `own`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{root}: {count} journaled entries changed since own (first: {}: {}); nothing restored (pass --skip-changed to restore the rest)",
    first.path, first.detail
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
    let mut checked = Vec::new();
    for (index, root) in roots.iter().enumerate() {
        let path = journal::journal_path(&state_dir, root.dev, root.ino);
        if !path.exists() {
            bail!(
                "{}: no journal (looked for {}); `flowerbed journal list` shows what is recorded",
                root.path.display(),
                path.display()
            );
        }
        let summary = journal::summarize(&path)?;
        undo::check_journal_root(root, &summary)?;
        // Roots before this one in the list are undone before it.
        let earlier: Vec<(u64, u64)> = roots[..index].iter().map(|r| (r.dev, r.ino)).collect();
        if let Some((other, file)) = newer_overlapping_journal(&state_dir, root, &summary, &earlier) {
            bail!(
                "{}: {} has a journal of its own from a later own ({}); undo {} first, then {}, to restore exactly",
                root.path.display(),
                other.display(),
                file.display(),
                other.display(),
                root.path.display()
            );
        }
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
        checked.push((root, summary, preflight));
    }
    let mut outcomes = Vec::new();
    for (root, summary, preflight) in checked {
        let report = if settings.dry_run {
            WalkReport {
                changed: preflight.records - preflight.changed,
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
        outcomes.push(RootOutcome {
            path: root.path.clone(),
            report,
            journal: Some(summary.file.clone()),
            identity_changed: Some(preflight.changed),
            inner_journals: Vec::new(),
        });
    }
    Ok(outcomes)
}

/// A journal of a folder inside `root`'s tree (or holding it) whose first run came after
/// `root`'s first: undoing `root` first would leave the shared entries as that later run
/// found them, and undoing the other afterwards would put its owner back. Skips the roots
/// in `earlier` (undone before this one) and journals that no longer match their folder.
fn newer_overlapping_journal(
    state_dir: &Path,
    root: &Root,
    summary: &journal::JournalSummary,
    earlier: &[(u64, u64)],
) -> Option<(PathBuf, PathBuf)> {
    let first = |summary: &journal::JournalSummary| {
        let started = summary.sessions.first().map_or(0, |s| s.info.started);
        (started, born(&summary.file))
    };
    let ours = first(summary);
    for (dev, ino) in journal::journal_roots(state_dir) {
        if (dev, ino) == (root.dev, root.ino) || dev != root.dev || earlier.contains(&(dev, ino)) {
            continue;
        }
        let file = journal::journal_path(state_dir, dev, ino);
        let Ok(other) = journal::summarize(&file) else {
            continue;
        };
        let Some(session) = other.sessions.first() else {
            continue;
        };
        let other_path = PathBuf::from(&session.info.root);
        let overlaps = other_path.starts_with(&root.path) || root.path.starts_with(&other_path);
        let same = nix::sys::stat::lstat(&other_path).is_ok_and(|s| (s.st_dev, s.st_ino) == (dev, ino));
        if overlaps && same && first(&other) > ours {
            return Some((other_path, file));
        }
    }
    None
}

/// When a file was made, to the nanosecond (`None` where the filesystem does not say).
fn born(path: &Path) -> Option<(i64, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<nix::libc::statx>::zeroed();
    // SAFETY: statx writes at most one `struct statx` into `buf`; the path is NUL-terminated.
    let rc = unsafe {
        nix::libc::statx(
            nix::libc::AT_FDCWD,
            c_path.as_ptr(),
            0,
            nix::libc::STATX_BTIME,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: statx succeeded and filled the (zeroed) buffer.
    let sx = unsafe { buf.assume_init() };
    (sx.stx_mask & nix::libc::STATX_BTIME != 0).then_some((sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec))
}

/// Every journal in the state directory, with its sessions.
pub fn list_journals() -> Result<(PathBuf, Vec<Result<journal::JournalSummary, String>>)> {
    let dir = journal::state_dir()?;
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((dir, out)),
        Err(err) => bail!("{}: cannot list journals: {err}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "journal"))
        .collect();
    paths.sort();
    for path in paths {
        out.push(journal::summarize(&path).map_err(|e| format!("{e:#}")));
    }
    Ok((dir, out))
}

/// The journal recorded for PATH.
pub fn journal_for(path: &Path) -> Result<PathBuf> {
    let dir = journal::state_dir()?;
    let root = root::resolve(path, None)?;
    let file = journal::journal_path(&dir, root.dev, root.ino);
    if !file.exists() {
        bail!("{}: no journal (looked for {})", path.display(), file.display());
    }
    Ok(file)
}
