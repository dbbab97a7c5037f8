//! `flowerbed supernodes admit DIR FILE...`: supernodes of other hosts, admitted on the
//! superlink's host by their public keys.

use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::auth::admit::{self, Admitted};
use crate::auth::{REGISTER_SCRIPT, SupernodeAuth};
use crate::cli::deploy::{AdmitArgs, SupernodesCommand};
use crate::config;
use crate::deploy::{self, DeploymentRole};
use crate::error::Outcome;
use crate::fsutil::{PlanStep, shell_word};
use crate::hints;
use crate::output::Printer;

pub fn run(command: &SupernodesCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        SupernodesCommand::Admit(args) => run_admit(args, printer),
    }
}

#[derive(Serialize)]
struct AlreadyAdmitted<'a> {
    file: &'a Path,
    admitted_as: &'a Path,
}

#[derive(Serialize)]
struct AdmitReport<'a> {
    dir: &'a Path,
    dry_run: bool,
    added: &'a [Admitted],
    already: Vec<AlreadyAdmitted<'a>>,
    steps: Vec<PlanStep>,
    /// What makes the superlink use the new keys, when there are any.
    next: Option<String>,
}

fn run_admit(args: &AdmitArgs, printer: &Printer) -> Result<Outcome> {
    let dir = config::deployment_dir(&args.dir, true)?;
    let settings = deploy::load_settings(&dir)?;
    if !(settings.supernode_auth && settings.role.has_superlink()) {
        bail!(
            "{}: not a superlink deployment with supernode authentication (made by `{}`)",
            dir.display(),
            hints::quickstart_superlink_auth()
        );
    }
    let deployment = deploy::build(&settings)?;
    let local = if settings.role == DeploymentRole::All {
        settings.supernodes
    } else {
        0
    };
    let scheme = deployment.profile.supernode_auth();
    let admitted = admit::plan_admit(&dir, local, &args.files, scheme)?;
    admitted.plan.preflight()?;
    let steps = admitted.plan.steps();
    if !args.dry_run {
        admitted.plan.apply()?;
    }
    let next = (!admitted.added.is_empty()).then(|| match scheme {
        SupernodeAuth::Registration => format!(
            "register them with the running superlink: sh {}",
            shell_word(&dir.join(REGISTER_SCRIPT))
        ),
        SupernodeAuth::KnownKeys | SupernodeAuth::KnownKeysWithSuperlinkPair => {
            let container = deployment
                .service("superlink")
                .map(|superlink| superlink.container_name(&deployment.project))
                .unwrap_or_default();
            format!(
                "Flower {} reads the known keys at start: restart the superlink (docker restart {container}, or docker compose -f {} restart superlink); supernodes it refused before give up without exiting, so their hosts restart them too",
                deployment.flower_version(),
                shell_word(&dir.join("compose.yaml"))
            )
        }
    });
    let already: Vec<AlreadyAdmitted<'_>> = admitted
        .already
        .iter()
        .map(|(file, admitted_as)| AlreadyAdmitted { file, admitted_as })
        .collect();
    if args.json {
        printer.json(&AdmitReport {
            dir: &dir,
            dry_run: args.dry_run,
            added: &admitted.added,
            already,
            steps,
            next,
        })?;
        return Ok(Outcome::Success);
    }
    printer.plan_steps(&steps, args.dry_run)?;
    for entry in &already {
        printer.info(&format!(
            "{}: already admitted ({})",
            entry.file.display(),
            entry.admitted_as.display()
        ))?;
    }
    let verb = if args.dry_run { "would admit" } else { "admitted" };
    printer.result(&format!(
        "{verb} {} new key(s), {} already admitted",
        admitted.added.len(),
        already.len()
    ))?;
    if let Some(next) = next.filter(|_| !args.dry_run) {
        printer.info(&next)?;
    }
    Ok(Outcome::Success)
}
