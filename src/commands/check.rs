//! `flowerbed check`

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::check::{self, CheckSettings, ContainerSpec, IdShift};
use crate::cli::check::{CheckArgs, Format, SelinuxMode};
use crate::deploy::Deployment;
use crate::error::Outcome;
use crate::output::Printer;
use crate::ownership::subid;

fn parse_id_shift(text: &str, remap: bool) -> Result<IdShift> {
    let parse = |part: &str| -> Result<u32> {
        part.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("--id-shift {text}: expected START or START:GID_START, positive numbers"))
    };
    let (uid, gid) = text.split_once(':').map_or((text, text), |(u, g)| (u, g));
    Ok(IdShift {
        uid_start: Some(parse(uid)?),
        gid_start: Some(parse(gid)?),
        remap,
        root_uid: None,
        root_gid: None,
    })
}

/// Turn `check` flags into rule settings.
pub fn settings(args: &CheckArgs, relative_sources_fail: bool) -> Result<CheckSettings> {
    Ok(CheckSettings {
        default_uid: args.uid,
        default_gid: args.gid,
        id_shift: args
            .id_shift
            .as_deref()
            .map(|text| parse_id_shift(text, args.remap))
            .transpose()?
            .unwrap_or_default(),
        selinux_enforcing: match args.selinux {
            SelinuxMode::Auto => check::selinux_enforcing(),
            SelinuxMode::Enforcing => true,
            SelinuxMode::Off => false,
        },
        warn_days: args.warn_days,
        relative_sources_fail,
    })
}

/// The containers of a deployment folder, whether they come from a `docker run` script,
/// and flowerbed's model when the folder has one.
fn folder_specs(dir: &Path) -> Result<(Vec<ContainerSpec>, bool, Option<Deployment>)> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    // A folder made by quickstart/render: rebuild the very model the renderers used.
    if dir.join(crate::deploy::SETTINGS_FILE).is_file() {
        let deployment = crate::deploy::load(dir)?;
        return Ok((check::model::specs(&deployment), false, Some(deployment)));
    }
    let compose = dir.join("compose.yaml");
    if compose.is_file() {
        return Ok((check::compose::read(&compose)?, false, None));
    }
    let script = dir.join("run.sh");
    if script.is_file() {
        return Ok((check::script::read(&script)?, true, None));
    }
    bail!(
        "{}: no deployment found (no compose.yaml or run.sh; make one with `flowerbed quickstart {}`)",
        dir.display(),
        dir.display()
    )
}

pub fn run(args: &CheckArgs, printer: &Printer) -> Result<Outcome> {
    if let Some(targets) = &args.live {
        return run_live(args, targets, printer);
    }
    let (source, specs, from_script, deployment) = if let Some(file) = &args.compose {
        (
            file.display().to_string(),
            check::compose::read(file)?,
            false,
            None,
        )
    } else if let Some(file) = &args.run_script {
        (file.display().to_string(), check::script::read(file)?, true, None)
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let (specs, from_script, deployment) = folder_specs(&dir)?;
        (dir.display().to_string(), specs, from_script, deployment)
    };
    let settings = settings(args, from_script)?;
    let mut report = check::run(source, &specs, &settings);
    if let Some(deployment) = &deployment {
        // Across hosts: public addresses (superlink) and the address dialed (supernode).
        let mut findings = report.findings;
        check::cross_host::check(deployment, &mut findings);
        report = check::CheckReport::new(report.source, report.services, findings);
    }
    print(&report, args, printer)?;
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

pub fn print(report: &check::CheckReport, args: &CheckArgs, printer: &Printer) -> std::io::Result<()> {
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Text => check::report::print_text(report, printer),
        Format::Json => printer.json(report),
        Format::Sarif => printer.json(&check::report::sarif(report)),
    }
}

/// The daemon's user-namespace shift, as `own` applies it (see [`subid::daemon_id_map`]).
/// `None` when the daemon maps nothing or its configuration cannot be read.
pub fn daemon_id_shift(facts: &crate::docker::DaemonFacts) -> Option<IdShift> {
    let sources = subid::MappingSources::from_host();
    let map = subid::daemon_id_map(facts.rootless, facts.userns_remap, &sources).ok()??;
    Some(id_shift(&map))
}

/// `check`'s form of the daemon's mapping: where the ranges start, and how they count.
pub fn id_shift(map: &subid::DaemonIdMap) -> IdShift {
    // Rootless: container root is the daemon user itself.
    let (remap, daemon_user) = match map.mode {
        subid::Userns::Remap => (true, None),
        subid::Userns::Rootless { uid, gid } => (false, Some((uid, gid))),
    };
    IdShift {
        uid_start: map.uid_range.as_ref().map(|range| range.start),
        gid_start: map.gid_range.as_ref().map(|range| range.start),
        remap,
        root_uid: daemon_user.map(|(uid, _)| uid),
        root_gid: daemon_user.map(|(_, gid)| gid),
    }
}

fn run_live(args: &CheckArgs, targets: &[String], printer: &Printer) -> Result<Outcome> {
    let (containers, facts) = crate::docker::block_on(async {
        let daemon = crate::docker::Daemon::connect().await?;
        let facts = daemon.facts().await?;
        let containers = daemon.containers(targets, args.log_lines).await?;
        anyhow::Ok((containers, facts))
    })??;
    if containers.is_empty() {
        bail!(
            "no Flower containers found on the Docker daemon at {} (name them: check --live NAME)",
            crate::docker::docker_host()
        );
    }
    let mut settings = settings(args, false)?;
    if args.id_shift.is_none() {
        if let Some(shift) = daemon_id_shift(&facts) {
            settings.id_shift = shift;
        }
    }
    let specs: Vec<ContainerSpec> = containers.iter().map(check::live::to_spec).collect();
    let mut report = check::run(
        format!("live containers on {}", crate::docker::docker_host()),
        &specs,
        &settings,
    );
    for container in &containers {
        check::live::state_findings(container, &mut report.findings);
    }
    report = check::CheckReport::new(report.source, report.services, report.findings);
    print(&report, args, printer)?;
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` predicts exactly the host IDs `own` applies, for both kinds of daemon.
    #[test]
    fn check_and_own_share_one_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let subids = "1001:200000:65536\ndockremap:300000:65536\n";
        std::fs::write(dir.path().join("subuid"), subids).unwrap();
        std::fs::write(dir.path().join("subgid"), subids).unwrap();
        let sources = subid::MappingSources {
            subuid: dir.path().join("subuid"),
            subgid: dir.path().join("subgid"),
            daemon_json: dir.path().join("daemon.json"),
            caller: (0, 0),
            sudo_caller: Some((1001, 1001)),
        };
        for (rootless, remap, expected) in [(true, false, 249_998), (false, true, 349_999)] {
            let map = subid::daemon_id_map(rootless, remap, &sources).unwrap().unwrap();
            let shift = id_shift(&map);
            assert_eq!(map.host_uid(49_999).unwrap(), expected);
            assert_eq!(shift.host_uid(49_999), expected);
            assert_eq!(shift.host_gid(49_999), map.host_gid(49_999).unwrap());
            // Container root too: under rootless it is the daemon user (the sudo caller).
            assert_eq!(shift.host_uid(0), map.host_uid(0).unwrap());
            assert_eq!(shift.host_gid(0), map.host_gid(0).unwrap());
        }
    }
}
