//! `flowerbed render docker-run|compose|flwr-config` and `flowerbed quickstart`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::auth;
use crate::cli::deploy::{DeployArgs, IsolationArg, QuickstartArgs, RenderCommand, RoleArg};
use crate::deploy::{
    self, Address, Deployment, DeploymentRole, Isolation, SETTINGS_FILE, STATE_DIR, Security, Settings,
};
use crate::error::{Error, Outcome};
use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PRIVATE, MODE_PUBLIC, PlanStep, WritePlan};
use crate::output::Printer;
use crate::render::kubernetes::{self, KubernetesOptions};
use crate::render::swarm::{self, SwarmOptions};
use crate::render::{compose, flwr_config, script, text};
use crate::tls::generate::{self, GenerateSettings};
use crate::tls::{KeyType, Layout, LayoutKind, SubjectName, names};

/// Mode of the rendered shell scripts: the owner may run them directly.
pub(crate) const MODE_SCRIPT: u32 = 0o755;

impl From<RoleArg> for DeploymentRole {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Superlink => DeploymentRole::Superlink,
            RoleArg::Supernode => DeploymentRole::Supernode,
            RoleArg::All => DeploymentRole::All,
        }
    }
}

/// Parse a `HOST[:PORT]` flag value; the error names the flag and the value.
pub(crate) fn parse_address(flag: &'static str, text: &str) -> Result<Address> {
    Address::parse(text).map_err(|err| {
        Error::InvalidFlag {
            flag,
            message: err.to_string(),
        }
        .into()
    })
}

impl From<IsolationArg> for Isolation {
    fn from(arg: IsolationArg) -> Self {
        match arg {
            IsolationArg::Subprocess => Isolation::Subprocess,
            IsolationArg::Process => Isolation::Process,
        }
    }
}

/// The deployment folder as an absolute path; it must be a folder if it exists.
pub(crate) fn deployment_dir(dir: &Path, must_exist: bool) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))?;
    match absolute.symlink_metadata() {
        Ok(_) if absolute.is_dir() => Ok(absolute),
        Ok(_) => Err(Error::NotADirectory { path: absolute }.into()),
        Err(_) if !must_exist => Ok(absolute),
        Err(err) => Err(anyhow!("{}: {err}", absolute.display())),
    }
}

/// Flags over the folder's saved settings over the defaults.
pub(crate) fn merge_settings(dir: PathBuf, args: &DeployArgs, saved: Option<Settings>) -> Result<Settings> {
    let mut settings = saved.unwrap_or_else(|| Settings::defaults(dir.clone()));
    settings.dir = dir;
    if let Some(version) = &args.flower_version {
        settings.flower_version.clone_from(version);
    }
    if let Some(isolation) = args.isolation {
        settings.superlink_isolation = isolation.into();
        settings.supernode_isolation = isolation.into();
    }
    if let Some(isolation) = args.superlink_isolation {
        settings.superlink_isolation = isolation.into();
    }
    if let Some(isolation) = args.supernode_isolation {
        settings.supernode_isolation = isolation.into();
    }
    if args.tls {
        settings.security = Security::Tls;
    }
    if args.insecure {
        settings.security = Security::Insecure;
    }
    if let Some(count) = args.supernodes {
        settings.supernodes = count;
    }
    settings.state |= args.state;
    settings.selinux |= args.selinux;
    settings.install_app_dependencies |= args.install_app_dependencies;
    settings.supernode_auth |= args.supernode_auth;
    if let Some(repo) = &args.image_repo {
        settings.image_repo.clone_from(repo);
    }
    if args.image_tag.is_some() {
        settings.image_tag.clone_from(&args.image_tag);
    }
    if let Some(name) = &args.project_name {
        settings.project_name.clone_from(name);
    }
    if let Some(address) = args.publish_address {
        settings.publish_address = address;
    }
    if let Some(uid) = args.uid {
        settings.uid = uid;
    }
    if let Some(gid) = args.gid {
        settings.gid = gid;
    }
    if let Some(role) = args.role {
        settings.role = role.into();
    }
    if !args.public_addresses.is_empty() {
        settings.public_addresses = args
            .public_addresses
            .iter()
            .map(|text| parse_address("--public-address", text))
            .collect::<Result<_>>()?;
    }
    if let Some(text) = &args.superlink_address {
        settings.superlink_address = Some(parse_address("--superlink-address", text)?);
    }
    Ok(settings)
}

/// Settings for `render`: the folder must exist; certificates are found in either layout.
pub fn render_settings(dir: &Path, args: &DeployArgs) -> Result<Settings> {
    let dir = deployment_dir(dir, true)?;
    let saved = Settings::read(&dir)?;
    let mut settings = merge_settings(dir, args, saved)?;
    if let Some(layout) = Layout::detect(&settings.dir) {
        settings.cert_layout = layout.kind.into();
    }
    Ok(settings)
}

/// Text of one renderer over a built deployment.
pub fn render_text(command: &RenderCommand, deployment: &Deployment) -> Result<String> {
    match command {
        RenderCommand::DockerRun(args) if args.teardown => script::render_stop(deployment),
        RenderCommand::DockerRun(_) => script::render_run(deployment),
        RenderCommand::Compose(_) => compose::render(deployment),
        RenderCommand::FlwrConfig(_) => flwr_config::render(deployment),
        RenderCommand::Swarm(args) => swarm::render(
            deployment,
            &SwarmOptions {
                placement: args.placement.clone(),
            },
        ),
        RenderCommand::Kubernetes(args) => kubernetes::render(
            deployment,
            &KubernetesOptions {
                namespace: args.namespace.clone(),
            },
        ),
    }
}

pub fn render(command: &RenderCommand, printer: &Printer) -> Result<Outcome> {
    let (args, mut mode) = match command {
        RenderCommand::DockerRun(args) => (args, MODE_SCRIPT),
        RenderCommand::Compose(args) | RenderCommand::FlwrConfig(args) => (args, MODE_PUBLIC),
        RenderCommand::Swarm(args) => (&args.render, MODE_PUBLIC),
        RenderCommand::Kubernetes(args) => (&args.render, MODE_PUBLIC),
    };
    if args.teardown && !matches!(command, RenderCommand::DockerRun(_)) {
        return Err(Error::Usage("--teardown: only `render docker-run` has a teardown script".into()).into());
    }
    let settings = render_settings(&args.dir, &args.deploy)?;
    let deployment = deploy::build(&settings)?;
    // With --out, missing authentication keys join the plan that writes the file (keys on
    // disk are never replaced); on stdout they must exist already.
    let mut plan = WritePlan::new(args.force);
    if settings.supernode_auth && args.out.is_some() {
        auth::plan_keys(
            &settings.dir,
            settings.supernodes,
            settings.profile()?.supernode_auth(),
            &mut plan,
        )?;
    }
    let planned: Vec<PathBuf> = plan.files().iter().map(|file| file.path.clone()).collect();
    deploy::require_sources_planned(&deployment, &settings.dir, &planned)?;
    let rendered = render_text(command, &deployment)?;
    // The manifests embed the superlink's private key: keep them like the key itself.
    if matches!(command, RenderCommand::Kubernetes(_))
        && settings.security == Security::Tls
        && settings.role.has_superlink()
    {
        mode = MODE_PRIVATE;
    }
    let Some(out) = &args.out else {
        std::io::stdout().lock().write_all(rendered.as_bytes())?;
        return Ok(Outcome::Success);
    };
    plan.file(out, rendered, mode);
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
    let given = names::parse_all(extra.iter().map(String::as_str)).map_err(|err| anyhow!("--name: {err}"))?;
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
    if let Some(archive) = &args.from_bundle {
        return super::bundle::quickstart_from_bundle(args, archive, printer);
    }
    let dir = args
        .dir
        .as_deref()
        .context("DIR: the deployment folder is required")?;
    let dir = deployment_dir(dir, false)?;
    let saved = if dir.is_dir() { Settings::read(&dir)? } else { None };
    let mut settings = merge_settings(dir.clone(), &args.deploy, saved)?;
    let existing_layout = Layout::detect(&dir);
    settings.cert_layout = existing_layout
        .as_ref()
        .map_or(LayoutKind::Split, |layout| layout.kind)
        .into();
    let deployment = deploy::build(&settings)?;
    let tls = settings.security == Security::Tls;
    // A supernode deployment trusts the superlink's CA; it never makes certificates.
    let supernode_only = settings.role == DeploymentRole::Supernode;
    if supernode_only && tls {
        deploy::require_sources(&deployment, &dir)?;
    }

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
        generated.plan
    } else {
        let mut plan = WritePlan::new(args.force);
        plan.dir(&dir, MODE_DIR_PUBLIC);
        plan
    };
    if !args.names.is_empty() && (certificates_reused || !tls || supernode_only) {
        printer.warn("--name is ignored: no certificates are generated (existing ones are kept)");
    }
    if settings.state {
        plan.dir(dir.join(STATE_DIR), MODE_DIR_PUBLIC);
    }
    if settings.supernode_auth {
        auth::plan_keys(
            &dir,
            settings.supernodes,
            settings.profile()?.supernode_auth(),
            &mut plan,
        )?;
    }
    let files = deployment_files(&deployment, &settings)?;
    // A file that already holds exactly what we would write is not a change.
    let mut pending = 0;
    for (name, contents, mode) in files {
        let path = dir.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(contents.as_bytes()) {
            plan.file(path, contents, mode);
            pending += 1;
        }
    }
    let up_to_date = pending == 0 && plan.files().is_empty() && plan.steps().is_empty();
    plan.preflight()?;
    let steps = plan.steps();
    if !args.dry_run && !up_to_date {
        plan.apply()?;
    }
    let ownership_applied = !args.dry_run && !args.no_own && hand_to_container(&deployment)?;
    let own_command = if ownership_applied {
        None
    } else {
        text::own_command(&deployment)
    };
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
        let (uid, gid) = deployment.container_ids();
        let paths: Vec<String> = deployment
            .owned_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        printer.info(&format!(
            "ownership: {} now belong to {uid}:{gid} (journaled; `sudo flowerbed undo PATH` puts it back)",
            paths.join(", ")
        ))?;
    }
    print_next_steps(printer, &dir, &deployment, own_command.as_deref())?;
    Ok(Outcome::Success)
}

/// The files quickstart renders into a deployment folder: name, contents, mode. No flwr
/// connection without a superlink.
pub(crate) fn deployment_files(
    deployment: &Deployment,
    settings: &Settings,
) -> Result<Vec<(&'static str, String, u32)>> {
    let mut files = vec![
        ("compose.yaml", compose::render(deployment)?, MODE_PUBLIC),
        ("run.sh", script::render_run(deployment)?, MODE_SCRIPT),
        ("stop.sh", script::render_stop(deployment)?, MODE_SCRIPT),
    ];
    if deployment.connection.is_some() {
        files.push((
            text::flwr_config_file(deployment),
            flwr_config::render(deployment)?,
            MODE_PUBLIC,
        ));
    }
    files.push(("README.md", text::readme(deployment)?, MODE_PUBLIC));
    files.push((SETTINGS_FILE, settings.to_json(), MODE_PUBLIC));
    if let Some(register) = script::render_register(deployment)? {
        files.push((auth::REGISTER_SCRIPT, register, MODE_SCRIPT));
    }
    Ok(files)
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
                "--public-address {address}: the existing server certificate {} does not cover {}; `flowerbed check` will report it (renew it with `flowerbed certs generate ... --force --ca-cert ... --ca-key ... --name {}`)",
                layout.server_cert().display(),
                address.host,
                address.host
            ));
        }
    }
}

/// As root, hand the folders the containers must own to their UID, journaled like
/// `flowerbed own` (a second run changes nothing). Returns whether it did.
fn hand_to_container(deployment: &Deployment) -> Result<bool> {
    let paths = deployment.owned_paths();
    if paths.is_empty() || !nix::unistd::geteuid().is_root() {
        return Ok(false);
    }
    let (uid, gid) = deployment.container_ids();
    crate::ownership::own(&crate::ownership::ReownSettings {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        target: crate::ownership::Target { uid, gid },
        allow_hardlinks: false,
        dry_run: false,
        progress: false,
    })?;
    Ok(true)
}

pub(crate) fn print_next_steps(
    printer: &Printer,
    dir: &Path,
    deployment: &Deployment,
    own: Option<&str>,
) -> Result<()> {
    let quoted_dir = shlex::try_quote(&dir.to_string_lossy())?.into_owned();
    printer.info("")?;
    if let Some(own) = own {
        // Handing files to UID 49999 needs privileges flowerbed does not assume.
        printer.info(&format!(
            "ownership not changed: the containers run as {}; run: {own}",
            deployment.services[0].user
        ))?;
    }
    printer.info(&format!(
        "start:   cd {quoted_dir} && docker compose up -d   (or: sh run.sh)"
    ))?;
    let Some(connection) = &deployment.connection else {
        printer.info(&format!("check:   flowerbed check {quoted_dir}"))?;
        return Ok(());
    };
    printer.info(&format!(
        "connect: add {} to {}, then `flwr run APP_DIR {} --stream`",
        text::flwr_config_file(deployment),
        if connection.config_toml {
            "~/.flwr/config.toml"
        } else {
            "your app's pyproject.toml"
        },
        connection.name
    ))?;
    if deployment.role == DeploymentRole::Superlink {
        printer.info(&format!(
            "supernodes on other hosts: flowerbed bundle supernode {quoted_dir} --out {}-supernode.tar.gz",
            deployment.project
        ))?;
    }
    Ok(())
}
