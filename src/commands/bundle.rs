//! `flowerbed bundle supernode` and `flowerbed quickstart --from-bundle`: a superlink
//! deployment packed for supernode operators on other hosts, and unpacked there.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::bundle::{self, ArchiveFile, Entry, METADATA_FILE, SuperlinkCertificate};
use crate::cli::deploy::{BundleArgs, BundleCommand, QuickstartArgs};
use crate::config;
use crate::deploy::settings::validate_dir_path;
use crate::deploy::{self, Deployment, DeploymentRole, SETTINGS_FILE, Security, Settings};
use crate::error::{Error, Outcome};
use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PUBLIC, PlanStep, WritePlan};
use crate::output::Printer;
use crate::render::{self, MODE_SCRIPT, compose, script, text};
use crate::tls::material::{self, fingerprint};
use crate::tls::{Layout, LayoutKind, SubjectName, layout};

/// Where the bundle's CA certificate sits below its folder (the split layout's).
fn ca_path_in_bundle() -> String {
    format!("{}/{}", layout::SUPERNODE_DIR, layout::CA_CERT)
}

pub fn run(command: &BundleCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        BundleCommand::Supernode(args) => bundle_supernode(args, printer),
    }
}

/// What the superlink's server certificate covers, and the CA certificate to ship.
fn certificate_facts(
    dir: &Path,
    saved: &Settings,
) -> Result<(Vec<u8>, SuperlinkCertificate, Vec<SubjectName>)> {
    let layout = Layout::detect(dir).unwrap_or_else(|| Layout::new(dir, LayoutKind::from(saved.cert_layout)));
    let ca_path = layout.supernode_ca_cert();
    let ca_pem = fs::read(&ca_path).with_context(|| format!("{}: cannot read", ca_path.display()))?;
    let ca_der = material::read_certificate(&ca_path)?;
    let server_path = layout.server_cert();
    let server_der = material::read_certificate(&server_path).with_context(|| {
        format!(
            "the server certificate's names go into the bundle (run as root if {} belongs to the container user)",
            server_path.display()
        )
    })?;
    let server = material::parse_certificate(&server_der)?;
    let names = material::subject_names(&server);
    let not_after = server.validity().not_after.to_datetime();
    let facts = SuperlinkCertificate {
        names: names.iter().map(ToString::to_string).collect(),
        server_certificate_sha256: fingerprint(&server_der),
        ca_certificate_sha256: fingerprint(&ca_der),
        not_after: material::format_time(not_after),
    };
    Ok((ca_pem, facts, names))
}

fn bundle_supernode(args: &BundleArgs, printer: &Printer) -> Result<Outcome> {
    let dir = config::deployment_dir(&args.dir, true)?;
    let saved = Settings::read(&dir)?.ok_or_else(|| {
        anyhow!(
            "{}: no {SETTINGS_FILE}: bundles are made from a superlink deployment (`flowerbed quickstart DIR --role superlink --public-address HOST`)",
            dir.display()
        )
    })?;
    if saved.role != DeploymentRole::Superlink {
        bail!(
            "{}: a deployment with role {}; bundles are made from a superlink deployment (`flowerbed quickstart DIR --role superlink --public-address HOST`)",
            dir.display(),
            saved.role.name()
        );
    }
    saved.validate()?;
    if saved.supernode_auth {
        // The supernodes' private keys must be made on their own host and only the public
        // halves carried back to the superlink; a bundle cannot do that round trip yet.
        bail!(
            "{}: a deployment with --supernode-auth: bundles for authenticated supernodes are not supported yet (their keys must be made on the supernode's host); bundle from a deployment without it",
            dir.display()
        );
    }
    let node = config::bundle_settings(&saved, args)?;
    let deployment = deploy::build(&node)?;
    let address = node.superlink_address.clone().expect("set above");

    let mut files = Vec::new();
    if node.security == Security::Tls {
        let (ca_pem, facts, names) = certificate_facts(&dir, &saved)?;
        if !names.iter().any(|name| name.covers(&address.host)) {
            printer.warn(&format!(
                "the server certificate does not cover {}, which the bundle's supernodes dial; they will fail the TLS handshake (`flowerbed check` on their host says so too)",
                address.host
            ));
        }
        files.push(ArchiveFile {
            path: ca_path_in_bundle(),
            contents: ca_pem,
            executable: false,
        });
        files.push(ArchiveFile {
            path: METADATA_FILE.into(),
            contents: facts.to_json().into_bytes(),
            executable: false,
        });
    }
    let top = format!("{}-supernode", node.project_name);
    let file_name = args.out.file_name().map_or_else(
        || format!("{top}.tar.gz"),
        |name| name.to_string_lossy().into_owned(),
    );
    for (path, contents, executable) in [
        ("compose.yaml", compose::render_relocatable(&deployment)?, false),
        ("run.sh", script::render_run_relocatable(&deployment)?, true),
        ("stop.sh", script::render_stop(&deployment)?, true),
        (SETTINGS_FILE, node.to_json(), false),
        (
            "README.md",
            text::bundle_readme(&deployment, &top, &file_name)?,
            false,
        ),
    ] {
        files.push(ArchiveFile {
            path: path.into(),
            contents: contents.into_bytes(),
            executable,
        });
    }
    // Belt and braces: nothing that looks like a private key leaves this host.
    if let Some(file) = files
        .iter()
        .find(|file| bundle::holds_private_key(&file.contents))
    {
        bail!(
            "{}: would carry a private key; refusing to write the bundle",
            file.path
        );
    }
    let bytes = bundle::write_archive(&top, &files)?;
    let mut plan = WritePlan::new(args.force);
    plan.file(&args.out, bytes, MODE_PUBLIC);
    plan.apply()?;
    printer.result(&format!(
        "wrote {}: {} supernode(s) dialing {}",
        args.out.display(),
        node.supernodes,
        address.dial(node.profile()?.fleet_port())
    ))?;
    printer.info(&format!(
        "on the supernode's host: flowerbed quickstart --from-bundle {file_name} {top}   (or: tar -xzf {file_name} && sh {top}/run.sh)"
    ))?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct FromBundleReport<'a> {
    dir: &'a Path,
    bundle: &'a Path,
    dry_run: bool,
    steps: Vec<PlanStep>,
    settings: &'a Settings,
}

/// The folder to create: DIR, or the bundle's folder name in the current folder. It must
/// not exist yet (an empty folder is fine: it is replaced).
fn target_dir(given: Option<&Path>, top: &str) -> Result<PathBuf> {
    let dir = std::path::absolute(given.unwrap_or(Path::new(top)))
        .with_context(|| format!("{top}: cannot resolve"))?;
    validate_dir_path(&dir)?;
    match dir.symlink_metadata() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(anyhow!("{}: {err}", dir.display())),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::SymlinkRefused { path: dir }.into());
        }
        Ok(meta) if !meta.is_dir() => return Err(Error::NotADirectory { path: dir }.into()),
        Ok(_) => {
            let empty = fs::read_dir(&dir)
                .with_context(|| format!("{}: cannot read", dir.display()))?
                .next()
                .is_none();
            if !empty {
                bail!(
                    "{}: already exists and is not empty; a bundle is unpacked into a new folder",
                    dir.display()
                );
            }
        }
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        bail!("{}: no such folder (create it first)", parent.display());
    }
    Ok(dir)
}

/// Create a file that does not exist yet, with its final mode from the first byte.
fn create_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// Create `relative` and its missing parents below `staging`, each 0755.
fn create_dirs(staging: &Path, relative: &Path) -> Result<()> {
    let mut path = staging.to_path_buf();
    for part in relative.components() {
        path.push(part);
        if path.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
            continue;
        }
        fs::DirBuilder::new()
            .mode(MODE_DIR_PUBLIC)
            .create(&path)
            .with_context(|| format!("{}: cannot create directory", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(MODE_DIR_PUBLIC))?;
    }
    Ok(())
}

/// Whether quickstart renders a file of this name (it replaces the archive's copy).
fn is_rendered(rendered: &[(&str, String, u32)], relative: &str) -> bool {
    rendered.iter().any(|(name, _, _)| *name == relative)
}

/// Write the archive's entries and the rendered files into `staging`.
fn lay_down(staging: &Path, unpacked: &bundle::Unpacked, rendered: &[(&str, String, u32)]) -> Result<()> {
    for (relative, entry) in &unpacked.entries {
        let path = staging.join(relative);
        match entry {
            Entry::Dir => create_dirs(staging, Path::new(relative))?,
            Entry::File { .. } if is_rendered(rendered, relative) => {}
            Entry::File { contents, executable } => {
                if let Some(parent) = Path::new(relative).parent() {
                    create_dirs(staging, parent)?;
                }
                let mode = if *executable { MODE_SCRIPT } else { MODE_PUBLIC };
                create_file(&path, contents, mode)?;
            }
        }
    }
    for (name, contents, mode) in rendered {
        create_file(&staging.join(name), contents.as_bytes(), *mode)?;
    }
    Ok(())
}

/// `quickstart --from-bundle FILE [DIR]`: check every entry, build the supernode
/// deployment for DIR, stage it beside DIR and rename it into place.
pub fn quickstart_from_bundle(args: &QuickstartArgs, archive: &Path, printer: &Printer) -> Result<Outcome> {
    let bytes = fs::read(archive).with_context(|| format!("{}: cannot read", archive.display()))?;
    let unpacked = bundle::read_archive(&bytes).with_context(|| format!("{}", archive.display()))?;
    let dir = target_dir(args.dir.as_deref(), &unpacked.top)?;
    let saved_json = unpacked.file(SETTINGS_FILE).ok_or_else(|| {
        anyhow!(
            "{}: no {}/{SETTINGS_FILE}: not a bundle made by `flowerbed bundle supernode`",
            archive.display(),
            unpacked.top
        )
    })?;
    let saved: Settings = serde_json::from_slice(saved_json).with_context(|| {
        format!(
            "{}: {}/{SETTINGS_FILE}: not a flowerbed settings file",
            archive.display(),
            unpacked.top
        )
    })?;
    if saved.role != DeploymentRole::Supernode {
        bail!(
            "{}: the bundle's settings have role {}, not supernode",
            archive.display(),
            saved.role.name()
        );
    }
    let settings = config::from_bundle_settings(&dir, &args.deploy, saved)?;
    let deployment: Deployment = deploy::build(&settings)?;
    if settings.security == Security::Tls {
        let ca = unpacked.file(&ca_path_in_bundle()).ok_or_else(|| {
            anyhow!(
                "{}: no {}/{}: a TLS bundle carries the CA certificate the supernodes trust",
                archive.display(),
                unpacked.top,
                ca_path_in_bundle()
            )
        })?;
        let blocks = material::parse_blocks(ca).with_context(|| {
            format!(
                "{}: {}: not a certificate",
                archive.display(),
                ca_path_in_bundle()
            )
        })?;
        if !blocks
            .iter()
            .any(|block| block.kind == material::BlockKind::Certificate)
        {
            bail!(
                "{}: {}: holds no certificate",
                archive.display(),
                ca_path_in_bundle()
            );
        }
    }
    if !args.names.is_empty() {
        printer.warn("--name is ignored: a supernode deployment makes no certificates");
    }
    let rendered = render::deployment_files(&deployment, &settings)?;
    let mut steps = vec![PlanStep {
        action: "mkdir",
        path: dir.clone(),
        mode: format!("{MODE_DIR_PUBLIC:04o}"),
    }];
    for (relative, entry) in &unpacked.entries {
        if matches!(entry, Entry::File { .. }) && !is_rendered(&rendered, relative) {
            steps.push(PlanStep {
                action: "write",
                path: dir.join(relative),
                mode: format!("{MODE_PUBLIC:04o}"),
            });
        }
    }
    for (name, _, mode) in &rendered {
        steps.push(PlanStep {
            action: "write",
            path: dir.join(name),
            mode: format!("{mode:04o}"),
        });
    }
    if !args.dry_run {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        let staging = tempfile::Builder::new()
            .prefix(".flowerbed-bundle-")
            .tempdir_in(parent)
            .with_context(|| format!("{}: cannot create a folder here", parent.display()))?;
        lay_down(staging.path(), &unpacked, &rendered)?;
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(MODE_DIR_PUBLIC))?;
        // The last step: an empty DIR is replaced, a missing one appears, all at once.
        fs::rename(staging.path(), &dir)
            .with_context(|| format!("{}: cannot move the unpacked bundle into place", dir.display()))?;
        let _ = staging.keep();
    }
    if args.json {
        printer.json(&FromBundleReport {
            dir: &dir,
            bundle: archive,
            dry_run: args.dry_run,
            steps,
            settings: &settings,
        })?;
        return Ok(Outcome::Success);
    }
    printer.plan_steps(&steps, args.dry_run)?;
    if args.dry_run {
        return Ok(Outcome::Success);
    }
    for line in text::next_steps(&dir, &deployment, None)? {
        printer.info(&line)?;
    }
    Ok(Outcome::Success)
}
