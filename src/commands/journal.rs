//! `flowerbed journal list|show|prune`: what `own` recorded, and what became of its folders.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::cli::ownership::JournalCommand;
use crate::error::Outcome;
use crate::output::Printer;
use crate::ownership::report::display_bytes;
use crate::ownership::{self, journal};

pub fn run_journal(command: &JournalCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        JournalCommand::List { json } => journal_list(*json, *printer),
        JournalCommand::Show { path, json } => journal_show(path, *json, *printer),
        JournalCommand::Prune { dry_run, json } => journal_prune(*dry_run, *json, *printer),
    }
}

fn journal_list(json: bool, printer: Printer) -> Result<Outcome> {
    let (dir, journals) = ownership::list_journals()?;
    let mut unreadable = false;
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            directory: &'a Path,
            journals: Vec<serde_json::Value>,
        }
        let journals = journals
            .iter()
            .map(|entry| match entry {
                Ok(listed) => serde_json::to_value(listed).expect("plain data"),
                Err(message) => {
                    unreadable = true;
                    serde_json::json!({ "error": message })
                }
            })
            .collect();
        printer.json(&Listing {
            directory: &dir,
            journals,
        })?;
    } else {
        if journals.is_empty() {
            printer.info(&format!("no journals in {}", dir.display()))?;
        }
        for entry in &journals {
            match entry {
                Ok(listed) => {
                    let summary = &listed.summary;
                    let root = summary.sessions.first().map_or("?", |s| s.info.root.as_str());
                    let records: u64 = summary.sessions.iter().map(|s| s.records).sum();
                    let mut line = format!(
                        "{root}: {}; {} run(s), {records} entries recorded, journal {} ({} bytes)",
                        listed.status.describe(),
                        summary.sessions.len(),
                        summary.file.display(),
                        listed.bytes
                    );
                    if summary.sessions.iter().any(|s| !s.finished) {
                        line.push_str(" (a run was interrupted: `undo` restores what it changed)");
                    }
                    printer.result(&line)?;
                }
                Err(message) => {
                    unreadable = true;
                    printer.warn(message);
                }
            }
        }
    }
    Ok(if unreadable {
        Outcome::Findings
    } else {
        Outcome::Success
    })
}

fn journal_show(path: &Path, json: bool, printer: Printer) -> Result<Outcome> {
    #[derive(Serialize)]
    struct ShownRecord {
        path: String,
        dev: u64,
        ino: u64,
        uid: u32,
        gid: u32,
        mode: String,
    }
    #[derive(Serialize)]
    struct ShownSession<'a> {
        #[serde(flatten)]
        summary: &'a journal::SessionSummary,
        entries: Vec<ShownRecord>,
    }
    let file = ownership::journal_for(path)?;
    let summary = journal::summarize(&file)?;
    let mut sessions = Vec::new();
    for session in &summary.sessions {
        let mut entries = Vec::new();
        journal::for_each_batch(&file, session.offset, |batch| {
            entries.extend(batch.iter().map(|r| ShownRecord {
                path: display_bytes(&r.path),
                dev: r.dev,
                ino: r.ino,
                uid: r.uid,
                gid: r.gid,
                mode: format!("{:04o}", r.mode & 0o7777),
            }));
            Ok(())
        })?;
        sessions.push(ShownSession {
            summary: session,
            entries,
        });
    }
    if json {
        printer.json(&serde_json::json!({
            "file": file,
            "tail": summary.tail,
            "sessions": sessions,
        }))?;
        return Ok(Outcome::Success);
    }
    printer.result(&format!("journal {}", file.display()))?;
    for session in &sessions {
        let info = &session.summary.info;
        printer.result(&format!(
            "run started {} by {}: {} -> {}:{}, {} entries{}",
            info.started,
            info.tool,
            info.root,
            info.uid,
            info.gid,
            session.summary.records,
            if session.summary.finished {
                ""
            } else {
                " (interrupted)"
            }
        ))?;
        for entry in &session.entries {
            printer.result(&format!(
                "  {} {}:{} {}",
                entry.mode, entry.uid, entry.gid, entry.path
            ))?;
        }
    }
    if let journal::Tail::Torn { offset } = summary.tail {
        printer.warn(&format!(
            "torn last write at byte {offset} ignored (it changed nothing)"
        ));
    }
    Ok(Outcome::Success)
}

fn journal_prune(dry_run: bool, json: bool, printer: Printer) -> Result<Outcome> {
    let (dir, looked_at) = ownership::prune_journals(dry_run)?;
    let removed: Vec<_> = looked_at.iter().filter(|p| p.removed).collect();
    let bytes: u64 = removed.iter().map(|p| p.bytes).sum();
    if json {
        printer.json(&serde_json::json!({
            "directory": dir,
            "dry_run": dry_run,
            "journals": looked_at,
        }))?;
        return Ok(Outcome::Success);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for pruned in &looked_at {
        let root = pruned.root.as_deref().unwrap_or("?");
        if pruned.removed {
            printer.result(&format!(
                "{verb} {} ({root}: {}, {} bytes)",
                pruned.file.display(),
                pruned.status.describe(),
                pruned.bytes
            ))?;
        } else {
            let why = if pruned.status.prunable() {
                "another run holds its lock".to_string()
            } else {
                pruned.status.describe()
            };
            printer.detail(&format!("kept {} ({root}: {why})", pruned.file.display()));
        }
    }
    printer.info(&format!(
        "{} {} journal(s), {bytes} bytes, in {}; {} kept",
        verb,
        removed.len(),
        dir.display(),
        looked_at.len() - removed.len()
    ))?;
    Ok(Outcome::Success)
}
