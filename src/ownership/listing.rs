//! `journal list|prune|show`: the journals in the state directory and what became of
//! their folders.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::journal::status::{self, Status};
use super::journal::{self, JournalSummary};
use super::root;

/// A journal listed: its summary, what became of its folder, its size in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub summary: JournalSummary,
    #[serde(flatten)]
    pub status: Status,
    pub bytes: u64,
}

/// Every journal in the state directory, with its sessions and status.
pub fn list_journals() -> Result<(PathBuf, Vec<Result<Listed, String>>)> {
    let dir = journal::state_dir()?;
    if !journal::check_state_dir(&dir)? {
        return Ok((dir, Vec::new()));
    }
    let out = journal::journal_files(&dir)?
        .into_iter()
        .map(|path| {
            let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            journal::summarize(&path)
                .map(|summary| Listed {
                    status: status::status(&summary),
                    summary,
                    bytes,
                })
                .map_err(|e| format!("{e:#}"))
        })
        .collect();
    Ok((dir, out))
}

/// One journal `journal prune` looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub file: PathBuf,
    /// The folder it recorded, if it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(flatten)]
    pub status: Status,
    pub bytes: u64,
    /// Removed (or, with --dry-run, would be).
    pub removed: bool,
}

/// `journal prune`: remove the journals of folders that are gone (stale) or whose inode
/// another folder holds (mismatched); keep live, unknown, unreadable and locked ones.
pub fn prune_journals(dry_run: bool) -> Result<(PathBuf, Vec<Pruned>)> {
    let (dir, listed) = list_journals()?;
    let files = journal::journal_files(&dir)?;
    let mut out = Vec::new();
    for (file, entry) in files.into_iter().zip(listed) {
        let Ok(listed) = entry else {
            out.push(Pruned {
                file,
                root: None,
                status: Status::Unknown {
                    reason: "unreadable; kept".into(),
                },
                bytes: 0,
                removed: false,
            });
            continue;
        };
        let removed = listed.status.prunable()
            && (dry_run
                || status::remove_journal(&file)
                    .with_context(|| format!("{}: cannot remove the journal", file.display()))?);
        out.push(Pruned {
            root: listed.summary.sessions.last().map(|s| s.info.root.clone()),
            file,
            status: listed.status,
            bytes: listed.bytes,
            removed,
        });
    }
    Ok((dir, out))
}

/// The journal recorded for PATH.
pub fn journal_for(path: &Path) -> Result<PathBuf> {
    let dir = journal::state_dir()?;
    journal::check_state_dir(&dir)?;
    let root = root::resolve(path, None)?;
    let file = journal::journal_path(&dir, root.dev, root.ino);
    if !file.exists() {
        bail!("{}: no journal (looked for {})", path.display(), file.display());
    }
    Ok(file)
}
