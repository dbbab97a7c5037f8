//! `flowerbed render docker-run|compose|flwr-config` and `flowerbed quickstart`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::cli::deploy::QuickstartArgs;
use crate::cli::render::RenderCommand;
use crate::config;
use crate::deploy::{self, Deployment, DeploymentRole, SETTINGS_FILE, STATE_DIR, Security, Settings};
use crate::error::Outcome;
use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PUBLIC, PlanStep, WritePlan};
use crate::hints;
use crate::output::Printer;
use crate::prepare;
use crate::render::{self, text};
use crate::tls::generate::{self, GenerateSettings};
use crate::tls::{KeyType, Layout, LayoutKind, SubjectName, names};

pub fn render(command: &RenderCommand, printer: &Printer) -> Result<Outcome> {
    let (args, format, options) = config::render_request(command)?;
    let settings = config::render_settings(&args.dir, &args.deploy)?;
    let mut deployment = deploy::build(&settings)?;
    pin_image_digests(&mut deployment, &settings, printer);
    // With --out, missing authentication keys join the plan that writes the file (keys on
    // disk are never replaced); on stdout they must exist already.
    let mut plan = WritePlan::new(args.force);
    if settings.supernode_auth && args.out.is_some() {
        prepare::plan_auth_keys(&settings, &mut plan)?;
    }
    if args.out.is_some() {
        prepare::plan_runtime_material(&deployment, &settings, None, &mut plan)?;
    }
    prepare::require_sources(&deployment, &plan)?;
    // The app's project is read (and refused) before anything is written or printed.
    let app_files = render::dockerfile::read_app_files(&deployment)?;
    let rendered = format.render(&deployment, &options)?;
    print_image_commands(&deployment, format, printer)?;
    let Some(out) = &args.out else {
        std::io::stdout().lock().write_all(rendered.as_bytes())?;
        return Ok(Outcome::Success);
    };
    plan.file(out, rendered, format.mode(&deployment));
    if !app_files.is_empty() {
        plan.dir(settings.dir.join(deploy::app::DOCKERFILES_DIR), MODE_DIR_PUBLIC);
    }
    plan_unchanged_skipped(&mut plan, app_files);
    let settings_path = settings.dir.join(SETTINGS_FILE);
    let settings_json = settings.to_json();
    if std::fs::read_to_string(&settings_path).ok().as_deref() != Some(settings_json.as_str()) {
        plan.file(settings_path, settings_json, MODE_PUBLIC);
    }
    for path in plan.apply()? {
        printer.info(&format!("wrote {}", path.display()))?;
    }
    Ok(Outcome::Success)
}

/// Plan `files`, leaving out those that already hold exactly these bytes; returns how
/// many were planned.
fn plan_unchanged_skipped(plan: &mut WritePlan, files: Vec<(PathBuf, String, u32)>) -> usize {
    let mut planned = 0;
    for (path, contents, mode) in files {
        if std::fs::read(&path).ok().as_deref() != Some(contents.as_bytes()) {
            plan.file(path, contents, mode);
            planned += 1;
        }
    }
    planned
}

/// With `--image-digest`: each image the deployment pulls, named by the registry digest the
/// local Docker engine has for it. What cannot be pinned keeps its tag, with a warning.
fn pin_image_digests(deployment: &mut Deployment, settings: &Settings, printer: &Printer) {
    if !settings.image_digest {
        return;
    }
    let host = crate::docker::docker_host();
    let Some(unpinned) = crate::docker::pin_images(deployment) else {
        printer.warn(&format!(
            "{}: no Docker daemon answers at {host}; every image keeps its tag",
            hints::flag::IMAGE_DIGEST
        ));
        return;
    };
    for image in unpinned {
        printer.warn(&format!(
            "{}: the Docker daemon at {host} has no registry digest for {image} (not there, or built locally); it keeps its tag",
            hints::flag::IMAGE_DIGEST
        ));
    }
}

/// Orchestrators pull images, so a swarm or kubernetes rendering with app images says how
/// to build and push them (on stderr: stdout is the rendered file).
fn print_image_commands(deployment: &Deployment, format: &render::Format, printer: &Printer) -> Result<()> {
    if deployment.app.is_none() || !matches!(format.name, "swarm" | "kubernetes") {
        return Ok(());
    }
    let lines = render::dockerfile::command_lines(deployment)?;
    if deployment.app.as_ref().is_some_and(|app| app.registry.is_none()) {
        printer.warn(&format!(
            "the app images stay on this host: pass {} REGISTRY so every node can pull them",
            hints::flag::PUSH_TO
        ));
    }
    printer.note("build (and push) the app images first:");
    for line in lines {
        printer.note(&format!("  {line}"));
    }
    Ok(())
}

/// Names the server certificate covers: the defaults, a specific publish address (the
/// flwr CLI dials it), the public addresses (supernodes on other hosts dial them), and the
/// user's own.
fn certificate_names(settings: &Settings, extra: &[String]) -> Result<Vec<SubjectName>> {
    let mut wanted: Vec<SubjectName> = Vec::new();
    if !settings.publish_address.is_unspecified() {
        wanted.push(SubjectName::Ip(settings.publish_address));
    }
    wanted.extend(
        settings
            .public_addresses
            .iter()
            .map(|address| address.host.clone()),
    );
    let given = names::parse_all(extra.iter().map(String::as_str))
        .map_err(|err| anyhow!("{}: {err}", hints::flag::NAME))?;
    wanted.extend(given);
    Ok(generate::names_with_defaults(&wanted))
}

#[derive(Serialize)]
struct QuickstartReport<'a> {
    dir: &'a Path,
    dry_run: bool,
    up_to_date: bool,
    certificates_reused: bool,
    steps: Vec<PlanStep>,
    /// Whether the folders the containers must own were handed to their UID (as root).
    ownership_applied: bool,
    own_command: Option<String>,
    connection: Option<&'a deploy::Connection>,
    settings: &'a Settings,
}

pub fn quickstart(args: &QuickstartArgs, printer: &Printer) -> Result<Outcome> {
    let dir = args
        .dir
        .as_deref()
        .context("DIR: the deployment folder is required")?;
    let dir = config::deployment_dir(dir, false)?;
    let saved = if dir.is_dir() { Settings::read(&dir)? } else { None };
    let mut settings = config::merge_settings(dir.clone(), &args.deploy, saved)?;
    let existing_layout = Layout::detect(&dir);
    settings.cert_layout = existing_layout
        .as_ref()
        .map_or(LayoutKind::Split, |layout| layout.kind)
        .into();
    let mut deployment = deploy::build(&settings)?;
    prepare::prepare_hand_over(&deployment, args.dry_run || args.no_own);
    pin_image_digests(&mut deployment, &settings, printer);
    let app_files = render::dockerfile::read_app_files(&deployment)?;
    let tls = settings.security == Security::Tls;
    // A supernode deployment trusts the superlink's CA; it never makes certificates.
    let supernode_only = settings.role == DeploymentRole::Supernode;

    // Certificates already there (an earlier quickstart, or `certs generate` with custom
    // names) are kept; otherwise a fresh set in the split layout joins the plan.
    let certificates_reused = tls && existing_layout.is_some();
    if let Some(layout) = existing_layout.as_ref().filter(|_| tls) {
        warn_uncovered_public_addresses(&settings, layout, printer);
    }
    let mut plan = if tls && !certificates_reused && !supernode_only {
        let generated = generate::generate(&GenerateSettings {
            dir: dir.clone(),
            layout: LayoutKind::Split,
            names: certificate_names(&settings, &args.names)?,
            key_type: KeyType::EcdsaP256,
            days: 365,
            existing_ca: None,
            force: args.force,
        })?;
        for warning in &generated.report.warnings {
            printer.warn(warning);
        }
        let mut plan = generated.plan;
        prepare::plan_runtime_material(&deployment, &settings, Some(&generated.ca), &mut plan)?;
        plan
    } else {
        let mut plan = WritePlan::new(args.force);
        plan.dir(&dir, MODE_DIR_PUBLIC);
        prepare::plan_runtime_material(&deployment, &settings, None, &mut plan)?;
        plan
    };
    if !args.names.is_empty() && (certificates_reused || !tls || supernode_only) {
        printer.warn(&format!(
            "{} is ignored: no certificates are generated (existing ones are kept)",
            hints::flag::NAME
        ));
    }
    if settings.state {
        plan.dir(dir.join(STATE_DIR), MODE_DIR_PUBLIC);
    }
    if settings.supernode_auth {
        prepare::plan_auth_keys(&settings, &mut plan)?;
    }
    // A supernodes' folder trusts a CA it cannot make: the superlink's, copied in.
    if supernode_only && tls {
        prepare::require_sources(&deployment, &plan)?;
    }
    let mut files: Vec<(PathBuf, String, u32)> = render::deployment_files(&deployment, &settings)?
        .into_iter()
        .map(|(name, contents, mode)| (dir.join(name), contents, mode))
        .collect();
    if !app_files.is_empty() {
        plan.dir(dir.join(deploy::app::DOCKERFILES_DIR), MODE_DIR_PUBLIC);
    }
    files.extend(app_files);
    // A file that already holds exactly what we would write is not a change.
    let pending = plan_unchanged_skipped(&mut plan, files);
    let up_to_date = pending == 0 && plan.files().is_empty() && plan.steps().is_empty();
    plan.preflight()?;
    let steps = plan.steps();
    if !args.dry_run && !up_to_date {
        plan.apply()?;
    }
    let (ownership_applied, own_command) =
        prepare::hand_over_or_tell(&deployment, args.dry_run || args.no_own)?;
    if args.json {
        printer.json(&QuickstartReport {
            dir: &dir,
            dry_run: args.dry_run,
            up_to_date,
            certificates_reused,
            steps,
            ownership_applied,
            own_command,
            connection: deployment.connection.as_ref(),
            settings: &settings,
        })?;
        return Ok(Outcome::Success);
    }
    if up_to_date {
        printer.info(&format!("{}: up to date, nothing changed", dir.display()))?;
        return Ok(Outcome::Success);
    }
    printer.plan_steps(&steps, args.dry_run)?;
    if args.dry_run {
        return Ok(Outcome::Success);
    }
    if ownership_applied {
        let user = deployment.user;
        let paths: Vec<String> = deployment
            .owned_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        printer.info(&format!(
            "ownership: {} now belong to {user} (journaled; `{}` puts it back)",
            paths.join(", "),
            hints::undo("PATH")
        ))?;
    }
    for line in text::next_steps(&dir, &deployment, own_command.as_deref())? {
        printer.info(&line)?;
    }
    Ok(Outcome::Success)
}

/// Certificates that are kept must still cover every public address: say which do not.
fn warn_uncovered_public_addresses(settings: &Settings, layout: &Layout, printer: &Printer) {
    if settings.public_addresses.is_empty() {
        return;
    }
    let Ok(der) = crate::tls::material::read_certificate(&layout.server_cert()) else {
        return;
    };
    let Ok(cert) = crate::tls::material::parse_certificate(&der) else {
        return;
    };
    let covered = crate::tls::material::subject_names(&cert);
    for address in &settings.public_addresses {
        if !covered.iter().any(|name| name.covers(&address.host)) {
            printer.warn(&format!(
                "{} {address}: the existing server certificate {} does not cover {}; `{}` will report it (renew it with `{}`)",
                hints::flag::PUBLIC_ADDRESS,
                layout.server_cert().display(),
                address.host,
                hints::check_bare(),
                hints::certs_renew(&layout.root.display().to_string(), &[address.host.to_string()])
            ));
        }
    }
}
