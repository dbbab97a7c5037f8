//! What a deployment folder needs on disk beyond its rendered files, for `quickstart`,
//! `render --out` and `quickstart --from-bundle` alike: the runner links' secrets and
//! Runtime API certificates, and (as root) the hand-over of what the containers must own.

use std::path::PathBuf;

use anyhow::{Result, anyhow};

use crate::auth;
use crate::deploy::{self, Deployment, DeploymentRole, MountPurpose, Settings};
use crate::fsutil::WritePlan;
use crate::hints;
use crate::superexec_auth;
use crate::tls::generate::{ExistingCa, SigningCa};
use crate::tls::{Layout, LayoutKind, runtime};

/// Add what the runner links need and lack: each link's superexec secret, and each
/// supernode's Runtime API certificate, signed by `ca` (just generated), else by the CA in
/// the deployment folder, or in a supernode-only folder by that folder's own Runtime CA.
/// Whatever is there already is kept.
pub fn plan_runtime_material(
    deployment: &Deployment,
    settings: &Settings,
    ca: Option<&SigningCa>,
    plan: &mut WritePlan,
) -> Result<()> {
    let mounts = || deployment.services.iter().flat_map(|service| &service.mounts);
    let mut secrets: Vec<PathBuf> = Vec::new();
    for mount in mounts().filter(|m| m.purpose == MountPurpose::SuperexecAuthSecret) {
        if !secrets.contains(&mount.source) {
            secrets.push(mount.source.clone());
        }
    }
    superexec_auth::plan_secrets(&secrets, plan)?;
    if !mounts().any(|m| m.purpose == MountPurpose::RuntimeServerCertificates) {
        return Ok(());
    }
    let layout = Layout::new(&settings.dir, LayoutKind::from(settings.cert_layout));
    let loaded;
    let mut reissue = false;
    let ca = if let Some(ca) = ca {
        ca
    } else if settings.role == DeploymentRole::Supernode {
        let (local, fresh) = runtime::plan_local_ca(&layout, plan)?;
        loaded = local;
        reissue = fresh;
        &loaded
    } else {
        let existing = ExistingCa {
            cert_path: layout.ca_cert(),
            key_path: layout.ca_key(),
        };
        if existing.key_path.symlink_metadata().is_err() {
            return Err(anyhow!(
                "{}: no CA key to issue the supernodes' Runtime API certificates with; run `{}` first, or pass {}",
                existing.key_path.display(),
                hints::certs_generate(&settings.dir.display().to_string()),
                hints::flag::INSECURE
            ));
        }
        loaded = SigningCa::load(&existing)?;
        &loaded
    };
    runtime::plan_supernode_certificates(&layout, settings.supernodes, ca, reissue, plan)
}

/// Plan the supernode-authentication keys of `settings`' side of the deployment (a
/// supernodes' folder made from a bundle names it in each key's comment).
pub fn plan_auth_keys(settings: &Settings, plan: &mut WritePlan) -> Result<()> {
    let supernodes = settings.supernodes;
    let side = match settings.role {
        DeploymentRole::All => auth::Side::All { supernodes },
        DeploymentRole::Superlink => auth::Side::Superlink,
        DeploymentRole::Supernode => auth::Side::Supernodes {
            supernodes,
            origin: settings.bundle.as_deref(),
        },
    };
    auth::plan_keys(&settings.dir, side, settings.profile()?.supernode_auth(), plan)
}

/// Refuse a deployment with a mount source neither on disk nor written by `plan`.
pub fn require_sources(deployment: &Deployment, plan: &WritePlan) -> Result<()> {
    let planned: Vec<PathBuf> = plan.files().iter().map(|file| file.path.clone()).collect();
    deploy::require_sources_planned(deployment, &deployment.dir, &planned)
}

/// After a folder is written: hand it over as root ([`hand_to_container`]) unless `skip`,
/// and otherwise the `sudo flowerbed own ...` command the user needs, if any. Returns
/// whether it was handed over, and that command.
pub fn hand_over_or_tell(deployment: &Deployment, skip: bool) -> Result<(bool, Option<String>)> {
    let applied = !skip && hand_to_container(deployment)?;
    let own_command = if applied {
        None
    } else {
        crate::render::text::own_command(deployment)
    };
    Ok((applied, own_command))
}

/// Before the folder is written: when [`hand_over_or_tell`] will hand folders over, start
/// reading the homes `own` refuses meanwhile, on another core.
pub fn prepare_hand_over(deployment: &Deployment, skip: bool) {
    if !skip && paths_to_hand_over(deployment).is_some() {
        crate::ownership::root::read_home_folders_early();
    }
}

/// The folders [`hand_to_container`] hands over: some, and running as root.
fn paths_to_hand_over(deployment: &Deployment) -> Option<Vec<&std::path::Path>> {
    let paths = deployment.owned_paths();
    (!paths.is_empty() && nix::unistd::geteuid().is_root()).then_some(paths)
}

/// As root, hand the folders the containers must own to their UID, journaled like
/// `flowerbed own` (a second run changes nothing). Returns whether it did.
fn hand_to_container(deployment: &Deployment) -> Result<bool> {
    let Some(paths) = paths_to_hand_over(deployment) else {
        return Ok(false);
    };
    let user = deployment.user;
    crate::ownership::own(&crate::ownership::ReownSettings {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        target: crate::ownership::Target {
            uid: user.uid,
            gid: user.gid,
        },
        allow_hardlinks: false,
        dry_run: false,
        progress: false,
        wait: crate::ownership::LockWait::Wait,
    })?;
    Ok(true)
}
