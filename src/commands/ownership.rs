//! `flowerbed own|undo|release|journal`: flags to settings, privilege and Docker decisions,
//! printing.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::ownership::{CommonArgs, OwnArgs, ReleaseArgs, UndoArgs, ViaDockerArgs};
use crate::config;
use crate::docker;
use crate::error::{Error, Outcome};
use crate::hints;
use crate::output::Printer;
use crate::ownership::{self, LockWait, ReownSettings, RootOutcome, Target, UndoSettings};
use crate::ownership::{interrupt, journal};

#[derive(Serialize)]
struct RunReport<'a> {
    command: &'a str,
    dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Target>,
    roots: &'a [RootOutcome],
}

pub fn run_own(args: &OwnArgs, printer: &Printer) -> Result<Outcome> {
    if args.docker.via_docker {
        return via_docker(&args.docker, &args.paths, *printer, || Ok(args.helper_args()));
    }
    let (target, note) = config::ownership::host_target(args, daemon_facts)?;
    if let Some(note) = note {
        printer.detail(&note);
    }
    reown(
        "own",
        ownership::own,
        &args.paths,
        target,
        args.allow_hardlinks,
        &args.common,
        *printer,
    )
}

pub fn run_undo(args: &UndoArgs, printer: &Printer) -> Result<Outcome> {
    if args.docker.via_docker {
        return via_docker(&args.docker, &args.paths, *printer, || Ok(args.helper_args()));
    }
    require_root(args.common.dry_run)?;
    interrupt::install()?;
    let settings = UndoSettings {
        paths: args.paths.clone(),
        skip_changed: args.skip_changed,
        dry_run: args.common.dry_run,
        progress: !printer.quiet() && !args.common.json,
        wait: lock_wait(&args.common),
    };
    let outcomes = ownership::undo(&settings)?;
    let verb = if args.common.dry_run {
        "to restore"
    } else {
        "restored"
    };
    report(
        "undo",
        None,
        args.common.dry_run,
        args.common.json,
        verb,
        &outcomes,
        *printer,
    )
}

pub fn run_release(args: &ReleaseArgs, printer: &Printer) -> Result<Outcome> {
    let target = config::ownership::release_target(args.to.as_deref())?;
    if args.docker.via_docker {
        return via_docker(&args.docker, &args.paths, *printer, || {
            // Rootless Docker: the helper's root *is* the calling user on the host.
            let rootless = args.to.is_none() && daemon_facts().is_some_and(|f| f.rootless);
            let to = if rootless {
                "0:0".to_string()
            } else {
                format!("{}:{}", target.uid, target.gid)
            };
            Ok(args.helper_args(to))
        });
    }
    reown(
        "release",
        ownership::release,
        &args.paths,
        target,
        args.allow_hardlinks,
        &args.common,
        *printer,
    )
}

/// `own` and `release` alike: hand `paths` to `target` as root, then report.
fn reown(
    command: &str,
    walk: fn(&ReownSettings) -> Result<Vec<ownership::RootOutcome>>,
    paths: &[PathBuf],
    target: ownership::Target,
    allow_hardlinks: bool,
    common: &CommonArgs,
    printer: Printer,
) -> Result<Outcome> {
    require_root(common.dry_run)?;
    interrupt::install()?;
    let settings = ReownSettings {
        paths: paths.to_vec(),
        target,
        allow_hardlinks,
        dry_run: common.dry_run,
        progress: !printer.quiet() && !common.json,
        wait: lock_wait(common),
    };
    let outcomes = walk(&settings)?;
    let verb = if common.dry_run { "to change" } else { "changed" };
    report(
        command,
        Some(target),
        common.dry_run,
        common.json,
        verb,
        &outcomes,
        printer,
    )
}

fn lock_wait(common: &CommonArgs) -> LockWait {
    if common.no_wait {
        LockWait::NoWait
    } else {
        LockWait::Wait
    }
}

fn report(
    command: &str,
    target: Option<Target>,
    dry_run: bool,
    json: bool,
    verb: &str,
    outcomes: &[RootOutcome],
    printer: Printer,
) -> Result<Outcome> {
    let findings = outcomes.iter().any(|o| o.report.skipped > 0);
    if json {
        printer.json(&RunReport {
            command,
            dry_run,
            target,
            roots: outcomes,
        })?;
    } else {
        for outcome in outcomes {
            for skipped in &outcome.report.skipped_entries {
                printer.warn(&format!(
                    "{}: skipped {}: {}",
                    outcome.path.display(),
                    skipped.path,
                    skipped.detail
                ));
            }
            for device in &outcome.report.devices {
                printer.warn(&format!(
                    "{}: device node {device} {}: its owner can read and write the device",
                    outcome.path.display(),
                    if dry_run {
                        "would be handed over"
                    } else {
                        "handed over"
                    }
                ));
            }
            let listed = outcome.report.skipped_entries.len() as u64;
            if outcome.report.skipped > listed {
                printer.warn(&format!(
                    "{}: {} more skipped entries not listed (use {} for counts by reason)",
                    outcome.path.display(),
                    outcome.report.skipped - listed,
                    hints::flag::JSON
                ));
            }
            for planned in &outcome.report.planned {
                printer.detail(&format!(
                    "would change {} (now {}:{} mode {})",
                    planned.path, planned.uid, planned.gid, planned.mode
                ));
            }
            let listed = outcome.report.planned.len() as u64;
            if dry_run && outcome.report.changed > listed {
                printer.detail(&format!("... and {} more", outcome.report.changed - listed));
            }
            let mut line = format!(
                "{}: {}",
                outcome.path.display(),
                outcome.report.summary_line(verb)
            );
            if let Some(target) = target {
                let _ = write!(line, " (owner {}:{})", target.uid, target.gid);
            }
            // `release` retires journals only once the whole tree was handed over.
            let retired = !dry_run && outcome.report.skipped == 0;
            if let Some(journal) = &outcome.journal {
                let what = match command {
                    "own" => "journal",
                    "undo" if dry_run => "journal",
                    "undo" if outcome.report.skipped == 0 => "journal removed",
                    "release" if retired => "journal retired",
                    _ => "journal kept",
                };
                let _ = write!(line, "; {what}: {}", journal.display());
                if let Some(rule) = &outcome.identity_rule {
                    let _ = write!(line, " ({rule})");
                }
            }
            if !outcome.inner_journals.is_empty() {
                let what = if retired { "retired" } else { "kept" };
                let paths: Vec<String> = outcome
                    .inner_journals
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                let _ = write!(line, "; journals of paths inside {what}: {}", paths.join(", "));
            }
            for busy in &outcome.inner_busy {
                printer.warn(&format!(
                    "{}: journal {} of a path inside is in use by another run; kept (release again once that run is over)",
                    outcome.path.display(),
                    busy.display()
                ));
            }
            if let Some(aside) = &outcome.set_aside {
                printer.warn(&format!(
                    "{}: set aside journal {} and started a new one: {}",
                    outcome.path.display(),
                    aside.file.display(),
                    aside.reason
                ));
            }
            if !outcome.pruned.is_empty() {
                let paths: Vec<String> = outcome.pruned.iter().map(|p| p.display().to_string()).collect();
                let _ = write!(
                    line,
                    "; removed {} journal(s) of folders since deleted: {}",
                    paths.len(),
                    paths.join(", ")
                );
            }
            printer.result(&line)?;
        }
    }
    Ok(if findings {
        Outcome::Findings
    } else {
        Outcome::Success
    })
}

/// Facts from the daemon, when one is configured and answers (otherwise no mapping).
fn daemon_facts() -> Option<docker::DaemonFacts> {
    if !docker::daemon_configured() {
        return None;
    }
    // A daemon that does not answer quickly is treated as absent: `own` must not hang on it.
    docker::block_on(async {
        let ask = async {
            let daemon = docker::Daemon::connect().await.ok()?;
            daemon.facts().await.ok()
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), ask)
            .await
            .ok()
            .flatten()
    })
    .ok()
    .flatten()
}

/// Changing owners needs root; say exactly what to run instead.
fn require_root(dry_run: bool) -> Result<()> {
    if dry_run || nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let args: Vec<String> = std::env::args_os()
        .map(|arg: OsString| {
            let arg = arg.to_string_lossy().into_owned();
            shlex::try_quote(&arg).map_or(arg.clone(), std::borrow::Cow::into_owned)
        })
        .collect();
    let command = args.join(" ");
    Err(Error::Usage(format!(
        "changing owners needs root: run `sudo {command}`, or add {} to do it in a helper container",
        hints::flag::VIA_DOCKER
    ))
    .into())
}

/// The helper's image when none is named: the first image of the deployment whose folder
/// holds (or is) one of `paths`, which is on this machine if the deployment ran here; else
/// the newest release's superlink image. With a note on where it came from.
fn default_helper_image(paths: &[PathBuf]) -> (String, String) {
    for path in paths {
        for dir in path.ancestors() {
            let Ok(Some(settings)) = crate::deploy::Settings::read(dir) else {
                continue;
            };
            if let Some(image) = crate::deploy::build(&settings)
                .ok()
                .and_then(|deployment| deployment.pulled_images().first().map(ToString::to_string))
            {
                return (image, format!("the image of the deployment in {}", dir.display()));
            }
        }
    }
    let newest = crate::deploy::Profile::newest();
    (
        newest.helper_image(),
        format!("Flower {}'s superlink image", newest.version),
    )
}

/// Where flowerbed's own binary is mounted inside the helper container.
const HELPER_BINARY: &str = "/flowerbed-helper";

/// Run this same flowerbed inside a helper container, with the trees and the journal
/// folder mounted at their host paths, and relay its output and exit code.
fn via_docker(
    docker_args: &ViaDockerArgs,
    paths: &[PathBuf],
    printer: Printer,
    helper_args: impl FnOnce() -> Result<Vec<String>>,
) -> Result<Outcome> {
    let state_dir = journal::state_dir()?;
    // Check every PATH here first: the same refusals apply, with host paths in the message.
    let mut host_paths = Vec::new();
    for path in paths {
        let root = ownership::root::resolve(path, Some(&state_dir))?;
        host_paths.push(root.path);
    }
    journal::ensure_state_dir(&state_dir, None)?;
    let binary =
        std::env::current_exe().context("cannot find flowerbed's own binary to mount in the helper")?;
    let mut command = vec![HELPER_BINARY.to_string()];
    command.extend(helper_args()?);
    command.push("--".into());
    command.extend(host_paths.iter().map(|p| p.to_string_lossy().into_owned()));
    let mut binds = vec![(binary, PathBuf::from(HELPER_BINARY), true)];
    binds.extend(host_paths.iter().map(|p| (p.clone(), p.clone(), false)));
    binds.push((state_dir.clone(), state_dir.clone(), false));
    let (image, whose) = if let Some(image) = &docker_args.helper_image {
        (image.clone(), None)
    } else {
        let (image, whose) = default_helper_image(&host_paths);
        (image, Some(whose))
    };
    let spec = docker::HelperSpec {
        image,
        command,
        binds,
        env: vec![
            format!("{}={}", journal::STATE_DIR_ENV, state_dir.display()),
            // The state folder is ours (checked above); the helper runs as root.
            format!("{}={}", journal::STATE_OWNER_ENV, nix::unistd::geteuid().as_raw()),
            "NO_COLOR=1".into(),
        ],
    };
    printer.detail(&format!(
        "running the helper in {} via {}",
        spec.image,
        docker::docker_host()
    ));
    let run = docker::block_on(async {
        let daemon = docker::Daemon::connect().await?;
        daemon.run_helper(&spec).await
    })??;
    if let Some(whose) = whose {
        printer.note(&format!(
            "the helper ran {} ({whose}; {} chooses another)",
            spec.image,
            hints::flag::HELPER_IMAGE
        ));
    }
    std::io::stdout().lock().write_all(&run.stdout)?;
    std::io::stderr().lock().write_all(&run.stderr)?;
    match run.exit_code {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Findings),
        2 => Ok(Outcome::BadInput),
        code => bail!("the helper container in {} exited with status {code}", spec.image),
    }
}
