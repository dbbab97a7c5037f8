//! `flowerbed bundle supernode` and `flowerbed quickstart --from-bundle`: a superlink
//! deployment packed for supernode operators on other hosts, and unpacked there.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::bundle::{pack, records, unpack};
use crate::cli::deploy::{BundleArgs, BundleCommand, QuickstartArgs};
use crate::config;
use crate::deploy::{self, Security, Settings};
use crate::error::Outcome;
use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PUBLIC, PlanStep, WritePlan};
use crate::hints;
use crate::output::Printer;
use crate::prepare;
use crate::render::{self, text};

pub fn run(command: &BundleCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        BundleCommand::Supernode(args) => bundle_supernode(args, printer),
    }
}

fn bundle_supernode(args: &BundleArgs, printer: &Printer) -> Result<Outcome> {
    let dir = config::deployment_dir(&args.dir, true)?;
    let saved = pack::superlink_settings(&dir)?;
    let mut node = config::bundle_settings(&saved, args)?;
    if node.supernode_auth {
        node.bundle = Some(pack::new_bundle_id()?);
    }
    let deployment = deploy::build(&node)?;
    let top = format!("{}-supernode", node.project_name);
    let file_name = args.out.file_name().map_or_else(
        || format!("{top}.tar.gz"),
        |name| name.to_string_lossy().into_owned(),
    );
    let packed = pack::pack(&dir, &saved, &node, &deployment, &top, &file_name)?;
    for warning in &packed.warnings {
        printer.warn(warning);
    }
    let mut plan = WritePlan::new(args.force);
    plan.file(&args.out, packed.bytes, MODE_PUBLIC);
    if let Some(id) = &node.bundle {
        let record = records::BundleRecord {
            id: id.clone(),
            file: file_name.clone(),
            supernodes: node.supernodes,
        };
        // One record per archive: a bundle made again under the same name replaces it.
        let records_dir = dir.join(records::BUNDLES_DIR);
        plan.dir(&records_dir, MODE_DIR_PUBLIC);
        plan.derived(
            records_dir.join(format!("{file_name}.json")),
            serde_json::to_string_pretty(&record)? + "\n",
            MODE_PUBLIC,
        );
    }
    plan.apply()?;
    let dialed = deployment
        .superlink_address
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    printer.result(&format!(
        "wrote {}: {} supernode(s) dialing {dialed}",
        args.out.display(),
        node.supernodes,
    ))?;
    let by_hand = if deployment.needs_host_material() {
        String::new()
    } else {
        format!("   (or: tar -xzf {file_name} && sh {top}/run.sh)")
    };
    printer.info(&format!(
        "on the supernode's host: {}{by_hand}",
        hints::from_bundle(&format!("{file_name} {top}"))
    ))?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct FromBundleReport<'a> {
    dir: &'a Path,
    bundle: &'a Path,
    dry_run: bool,
    steps: Vec<PlanStep>,
    /// Whether the folders the containers must own were handed to their UID (as root).
    ownership_applied: bool,
    own_command: Option<String>,
    settings: &'a Settings,
}

/// `quickstart --from-bundle FILE [DIR]`: check every entry, build the supernode
/// deployment for DIR, and create DIR whole from one plan.
pub fn quickstart_from_bundle(args: &QuickstartArgs, archive: &Path, printer: &Printer) -> Result<Outcome> {
    let unpacked = unpack::read(archive)?;
    let dir = unpack::target_dir(args.dir.as_deref(), &unpacked.top)?;
    let saved = unpack::saved_settings(&unpacked, archive)?;
    let settings = config::from_bundle_settings(&dir, &args.deploy, saved)?;
    let deployment = deploy::build(&settings)?;
    if settings.security == Security::Tls {
        unpack::require_ca(&unpacked, archive)?;
    }
    if !args.names.is_empty() {
        printer.warn(&format!(
            "{} is ignored: a supernode deployment makes no certificates",
            hints::flag::NAME
        ));
    }
    prepare::prepare_hand_over(&deployment, args.dry_run || args.no_own);
    let rendered = render::deployment_files(&deployment, &settings)?;
    let mut plan = unpack::plan(&dir, &unpacked, &rendered);
    // This host's own runner-link material and supernode keys: none crosses hosts.
    prepare::plan_runtime_material(&deployment, &settings, None, &mut plan)?;
    if settings.supernode_auth {
        prepare::plan_auth_keys(&settings, &mut plan)?;
    }
    plan.preflight()?;
    let steps = plan.steps();
    if !args.dry_run {
        plan.apply()?;
    }
    let (ownership_applied, own_command) =
        prepare::hand_over_or_tell(&deployment, args.dry_run || args.no_own)?;
    if args.json {
        printer.json(&FromBundleReport {
            dir: &dir,
            bundle: archive,
            dry_run: args.dry_run,
            steps,
            ownership_applied,
            own_command,
            settings: &settings,
        })?;
        return Ok(Outcome::Success);
    }
    printer.plan_steps(&steps, args.dry_run)?;
    if args.dry_run {
        return Ok(Outcome::Success);
    }
    for line in text::next_steps(&dir, &deployment, own_command.as_deref())? {
        printer.info(&line)?;
    }
    if settings.supernode_auth {
        printer.info(&format!(
            "keys:    send {} (public keys only) to the superlink's operator, who runs `{}`; until then the superlink refuses these supernodes",
            dir.join(crate::auth::RETURN_DIR).display(),
            hints::supernodes_admit("LINK_DIR", crate::auth::RETURN_DIR)
        ))?;
    }
    Ok(Outcome::Success)
}
