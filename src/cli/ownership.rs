//! clap types for `own`, `undo`, `release` and `journal`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::ownership::UNCHANGED_ID;
use crate::{FLOWER_GID, FLOWER_UID};

pub const OWN_AFTER_HELP: &str = "\
Examples:
  sudo flowerbed own deploy/superlink-certificates deploy/state
  sudo flowerbed own --dry-run deploy                 what would change, nothing written
  flowerbed own --via-docker deploy/state             no sudo: a helper container does it
  sudo flowerbed own --host-uid 149998 --host-gid 149998 state   rootless Docker, by hand

Symlinks are re-owned themselves, never followed; mount points below PATH and files with
other hard links are reported and skipped. Before anything changes, the old owner, group
and mode of every entry are journaled (see `flowerbed journal list`), so `flowerbed undo`
puts them back exactly. Running `own` again changes only what is not right yet; `undo`
still returns to the state before the first `own`. A journal left by a deleted folder whose
inode this one got is set aside, never appended to. One run at a time per folder: a second
waits for the first (or exits 2 with --no-wait).

Exit status: 0 done, 1 some entries skipped, 2 bad input or a failure (such as a full disk
under the journal: what was changed is journaled, `undo` puts it back). Ctrl-C (SIGINT) or
SIGTERM stops at a consistent point with the journal covering every change made, and exits
130 (SIGINT) or 143 (SIGTERM).";

pub const UNDO_AFTER_HELP: &str = "\
Examples:
  sudo flowerbed undo deploy/state
  sudo flowerbed undo --dry-run deploy/state
  sudo flowerbed undo --skip-changed deploy/state     restore what still matches the journal

Every entry is checked (device and inode) before it is restored; if any changed since
`own`, nothing is restored unless --skip-changed is given. The journal is removed once
everything is back. Ctrl-C (SIGINT) or SIGTERM stops between entries and exits 130 or 143;
the journal is kept, so running `undo` again finishes the job.";

pub const RELEASE_AFTER_HELP: &str = "\
Examples:
  sudo flowerbed release deploy && rm -rf deploy      hand back to the sudo caller, then delete
  sudo flowerbed release --to alice:staff deploy/state
  flowerbed release --via-docker deploy

Without --to, the tree goes to the user who ran sudo (SUDO_UID/SUDO_GID), or else to the
current user. Journals left by `own` on the tree, or on paths inside it, are retired once
the whole tree was handed over.
Ctrl-C (SIGINT) or SIGTERM stops between entries and exits 130 or 143.";

pub const JOURNAL_AFTER_HELP: &str = "\
Examples:
  flowerbed journal list
  sudo flowerbed journal show deploy/state --json
  sudo flowerbed journal prune --dry-run              what would go: journals of deleted folders";

/// A UID or GID to hand entries to: a number below 4294967295, which `chown` reads as
/// "leave unchanged" (so it would report changes it never made).
pub fn owner_id(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(UNCHANGED_ID) => Err(format!(
            "{UNCHANGED_ID} means \"leave unchanged\" to the kernel; name a real ID"
        )),
        Ok(id) => Ok(id),
        Err(_) => Err(format!(
            "{value:?} is not a number from 0 to {}",
            UNCHANGED_ID - 1
        )),
    }
}

#[derive(Debug, Args)]
pub struct OwnArgs {
    /// Folders (or files) to hand over, each including everything below it.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The UID inside the container (Flower's images run as 49999).
    #[arg(long, default_value_t = FLOWER_UID, value_name = "UID", value_parser = owner_id)]
    pub uid: u32,

    /// The GID inside the container.
    #[arg(long, default_value_t = FLOWER_GID, value_name = "GID", value_parser = owner_id)]
    pub gid: u32,

    /// Also re-own regular files that have other hard links (which may live outside PATH).
    #[arg(long)]
    pub allow_hardlinks: bool,

    /// The host UID to use as is, skipping the rootless/userns-remap mapping of --uid.
    #[arg(long, value_name = "N", value_parser = owner_id)]
    pub host_uid: Option<u32>,

    /// The host GID to use as is, skipping the rootless/userns-remap mapping of --gid.
    #[arg(long, value_name = "N", value_parser = owner_id)]
    pub host_gid: Option<u32>,

    #[command(flatten)]
    pub docker: ViaDockerArgs,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// Folders (or files) to restore from their journals.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Restore the entries that still match the journal even if others changed since `own`.
    #[arg(long)]
    pub skip_changed: bool,

    #[command(flatten)]
    pub docker: ViaDockerArgs,

    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Folders (or files) to hand back.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Give the tree to this user (and group), by name or number; default: the sudo caller.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub to: Option<String>,

    /// Also re-own regular files that have other hard links.
    #[arg(long)]
    pub allow_hardlinks: bool,

    #[command(flatten)]
    pub docker: ViaDockerArgs,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// `--helper-image`'s help: its default comes from the profile table.
fn helper_image_help() -> String {
    format!(
        "The image the helper runs; it must already be on the machine (never pulled) [default: the \
         image of the deployment folder a PATH is in (its flowerbed.json), else {}]",
        crate::deploy::Profile::newest().helper_image()
    )
}

#[derive(Debug, Args)]
pub struct ViaDockerArgs {
    /// Make the change in a short-lived helper container (user 0) instead of needing sudo.
    #[arg(long)]
    pub via_docker: bool,

    #[arg(long, value_name = "IMAGE", requires = "via_docker", help = helper_image_help())]
    pub helper_image: Option<String>,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Show what would change; change nothing and write no journal.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Fail (exit 2) instead of waiting when another flowerbed run holds the folder's
    /// journal lock.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// List every journal with its folder, runs, entry counts, size and status: live,
    /// stale (the folder is gone), mismatched (another folder holds its inode) or unknown.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the journals of folders that are gone (stale) or whose inode another folder
    /// holds (mismatched); live and unknown ones are kept.
    Prune {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what is recorded for PATH, entry by entry.
    Show {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

// The command line the `--via-docker` helper container runs: flowerbed itself, the same
// subcommand and flags, before `--` and the host paths. Inside the helper the IDs are
// container IDs already, so `own` passes them as host IDs too: no second mapping.

impl OwnArgs {
    pub fn helper_args(&self) -> Vec<String> {
        let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
        let mut args: Vec<String> = [
            "own",
            "--uid",
            &uid,
            "--gid",
            &gid,
            "--host-uid",
            &uid,
            "--host-gid",
            &gid,
        ]
        .map(String::from)
        .into();
        if self.allow_hardlinks {
            args.push("--allow-hardlinks".into());
        }
        self.common.push_helper_args(&mut args);
        args
    }
}

impl UndoArgs {
    pub fn helper_args(&self) -> Vec<String> {
        let mut args = vec!["undo".to_string()];
        if self.skip_changed {
            args.push("--skip-changed".into());
        }
        self.common.push_helper_args(&mut args);
        args
    }
}

impl ReleaseArgs {
    /// `to` is `UID:GID` as the helper sees them.
    pub fn helper_args(&self, to: String) -> Vec<String> {
        let mut args = vec!["release".to_string(), "--to".into(), to];
        if self.allow_hardlinks {
            args.push("--allow-hardlinks".into());
        }
        self.common.push_helper_args(&mut args);
        args
    }
}

impl CommonArgs {
    fn push_helper_args(&self, args: &mut Vec<String>) {
        let flags = [
            (self.no_wait, "--no-wait"),
            (self.dry_run, "--dry-run"),
            (self.json, "--json"),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| flag.to_string()),
        );
    }
}
