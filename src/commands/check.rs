//! `flowerbed check`

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::check::{self, CheckSettings, ContainerSpec, IdShift};
use crate::cli::check::{CheckArgs, Format, SelinuxMode};
use crate::error::Outcome;
use crate::output::Printer;

fn parse_id_shift(text: &str) -> Result<IdShift> {
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
            .map(parse_id_shift)
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

/// The containers of a deployment folder, and whether they come from a `docker run` script.
fn folder_specs(dir: &Path) -> Result<(Vec<ContainerSpec>, bool)> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let compose = dir.join("compose.yaml");
    if compose.is_file() {
        return Ok((check::compose::read(&compose)?, false));
    }
    let script = dir.join("run.sh");
    if script.is_file() {
        return Ok((check::script::read(&script)?, true));
    }
    bail!(
        "{}: no deployment found (no compose.yaml or run.sh; make one with `flowerbed quickstart {}`)",
        dir.display(),
        dir.display()
    )
}

pub fn run(args: &CheckArgs, printer: &Printer) -> Result<Outcome> {
    let (source, specs, from_script) = if let Some(file) = &args.compose {
        (file.display().to_string(), check::compose::read(file)?, false)
    } else if let Some(file) = &args.run_script {
        (file.display().to_string(), check::script::read(file)?, true)
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let (specs, from_script) = folder_specs(&dir)?;
        (dir.display().to_string(), specs, from_script)
    };
    let settings = settings(args, from_script)?;
    let report = check::run(source, &specs, &settings);
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
