//! What a walk did: counts, skipped entries with reasons, and a progress bar for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// How many skipped entries are listed by name; the rest are only counted.
pub const LISTED_SKIPS: usize = 100;

/// Why an entry was left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Another filesystem is mounted here; the walk stays on the root's filesystem.
    MountPoint,
    /// A regular file with other hard links, which may be outside the tree.
    HardLinked {
        links: u64,
    },
    /// An executable with file capabilities, which a change of owner would clear (`release`,
    /// which keeps no journal to put them back from).
    FileCapabilities,
    /// The entry was replaced (for example by a symlink) while the walk looked at it.
    ChangedDuringWalk,
    /// The entry disappeared while the walk looked at it.
    Vanished,
    /// Deeper than the walk goes (its depth limit, lower with a low open-file limit).
    TooDeep {
        limit: usize,
    },
    Error(String),
}

impl SkipReason {
    /// A short stable key for counting and JSON.
    pub fn key(&self) -> &'static str {
        match self {
            SkipReason::MountPoint => "mount_point",
            SkipReason::HardLinked { .. } => "hard_linked",
            SkipReason::FileCapabilities => "file_capabilities",
            SkipReason::ChangedDuringWalk => "changed_during_walk",
            SkipReason::Vanished => "vanished",
            SkipReason::TooDeep { .. } => "too_deep",
            SkipReason::Error(_) => "error",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SkipReason::MountPoint => "mount point (another filesystem; not entered)".into(),
            SkipReason::HardLinked { links } => {
                format!(
                    "regular file with {links} hard links (pass {} to include it)",
                    crate::hints::flag::ALLOW_HARDLINKS
                )
            }
            SkipReason::FileCapabilities => {
                "has file capabilities (security.capability), which a change of owner clears; left alone"
                    .into()
            }
            SkipReason::ChangedDuringWalk => "replaced while being walked; left alone".into(),
            SkipReason::Vanished => "disappeared while being walked".into(),
            SkipReason::TooDeep { limit } => {
                format!("deeper than the walk goes ({limit} levels here); contents not walked")
            }
            SkipReason::Error(message) => message.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedEntry {
    /// Relative to the root; invalid UTF-8 and control characters are escaped.
    pub path: String,
    pub reason: &'static str,
    pub detail: String,
}

/// Totals of one walk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalkReport {
    pub changed: u64,
    pub already_right: u64,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<&'static str, u64>,
    /// The first [`LISTED_SKIPS`] skipped entries.
    pub skipped_entries: Vec<SkippedEntry>,
    /// `--dry-run`: the first [`LISTED_SKIPS`] entries that would change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<PlannedChange>,
    /// Device nodes handed over (the first [`LISTED_SKIPS`]; `devices_total` counts all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub devices_total: u64,
    /// Files whose capabilities (`security.capability`) were journaled before the change of
    /// owner cleared them (`own`), or put back (`undo`).
    #[serde(skip_serializing_if = "is_zero")]
    pub capabilities: u64,
    /// Entries met whose (device, inode) the walk was asked to watch for.
    #[serde(skip)]
    pub watched: Vec<(u64, u64)>,
}

/// One change a dry run would make.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: String,
}

impl WalkReport {
    /// Add another worker's totals to these.
    pub fn merge(&mut self, other: WalkReport) {
        self.changed += other.changed;
        self.already_right += other.already_right;
        self.skipped += other.skipped;
        for (reason, count) in other.skipped_by_reason {
            *self.skipped_by_reason.entry(reason).or_default() += count;
        }
        let room = LISTED_SKIPS.saturating_sub(self.skipped_entries.len());
        self.skipped_entries
            .extend(other.skipped_entries.into_iter().take(room));
        let room = LISTED_SKIPS.saturating_sub(self.planned.len());
        self.planned.extend(other.planned.into_iter().take(room));
        self.watched.extend(other.watched);
        let room = LISTED_SKIPS.saturating_sub(self.devices.len());
        self.devices.extend(other.devices.into_iter().take(room));
        self.devices_total += other.devices_total;
        self.capabilities += other.capabilities;
    }

    /// Note a device node that is (or would be) handed over.
    pub fn device(&mut self, path: &[u8]) {
        self.devices_total += 1;
        if self.devices.len() < LISTED_SKIPS {
            self.devices.push(display_bytes(path));
        }
    }

    pub fn skip(&mut self, path: &[u8], reason: &SkipReason) {
        self.skipped += 1;
        *self.skipped_by_reason.entry(reason.key()).or_default() += 1;
        if self.skipped_entries.len() < LISTED_SKIPS {
            self.skipped_entries.push(SkippedEntry {
                path: display_bytes(path),
                reason: reason.key(),
                detail: reason.describe(),
            });
        }
    }

    /// Note a change a dry run would make (the first few are listed).
    pub fn plan(&mut self, path: &[u8], uid: u32, gid: u32, mode: u32) {
        self.changed += 1;
        if self.planned.len() < LISTED_SKIPS {
            self.planned.push(PlannedChange {
                path: display_bytes(path),
                uid,
                gid,
                mode: format!("{:04o}", mode & 0o7777),
            });
        }
    }

    /// `3 changed, 10 already right, 2 skipped (1 hard_linked, 1 mount_point)`.
    pub fn summary_line(&self, changed_word: &str) -> String {
        let mut line = format!("{} {changed_word}", self.changed);
        if self.capabilities > 0 {
            let count = self.capabilities;
            let (files, files_own) = if count == 1 {
                ("file", "file's")
            } else {
                ("files", "files'")
            };
            let _ = match changed_word {
                "restored" => write!(line, " ({count} {files_own} capabilities put back)"),
                "to restore" => write!(line, " ({count} {files_own} capabilities to put back)"),
                "to change" => write!(
                    line,
                    " ({count} {files} with capabilities, to be journaled; the change of owner clears them, undo puts them back)"
                ),
                _ => write!(
                    line,
                    " ({count} {files} with capabilities, journaled; the change of owner cleared them, undo puts them back)"
                ),
            };
        }
        let _ = write!(
            line,
            ", {} already right, {} skipped",
            self.already_right, self.skipped
        );
        if self.skipped > 0 {
            let reasons: Vec<String> = self
                .skipped_by_reason
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            let _ = write!(line, " ({})", reasons.join(", "));
        }
        line
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A relative path for people: `.` for the root, escapes for bytes that would mislead.
pub fn display_bytes(path: &[u8]) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A progress spinner on stderr, only when stderr is a terminal and output is not quiet.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    seen: AtomicU64,
}

impl Progress {
    pub fn new(enabled: bool, message: &str) -> Self {
        use std::io::IsTerminal;
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} entries ({per_sec})")
                    .expect("valid template"),
            );
            bar.set_message(message.to_string());
            bar
        });
        Self {
            bar,
            seen: AtomicU64::new(0),
        }
    }

    pub fn hidden() -> Self {
        Self {
            bar: None,
            seen: AtomicU64::new(0),
        }
    }

    /// Count one entry; the bar is redrawn every few thousand to stay off the hot path.
    pub fn tick(&self) {
        self.advance(1);
    }

    /// Count `n` entries at once (walkers count locally and report in chunks, so threads
    /// do not contend for the counter).
    pub fn advance(&self, n: u64) {
        let seen = self.seen.fetch_add(n, Ordering::Relaxed) + n;
        if (seen - n) / 4096 != seen / 4096 {
            if let Some(bar) = &self.bar {
                bar.set_position(seen);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_escapes_newlines_and_invalid_bytes() {
        assert_eq!(display_bytes(b"a b/new\nline/\xff"), "a b/new\\nline/\\xff");
        assert_eq!(display_bytes(b""), ".");
    }

    #[test]
    fn summary_names_reasons() {
        let mut report = WalkReport {
            changed: 3,
            already_right: 2,
            ..WalkReport::default()
        };
        report.skip(b"x", &SkipReason::HardLinked { links: 2 });
        assert_eq!(
            report.summary_line("changed"),
            "3 changed, 2 already right, 1 skipped (1 hard_linked)"
        );
    }
}
