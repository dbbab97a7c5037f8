//! `bundle supernode`: the files a supernode operator's bundle holds, rendered for the
//! supernode side of a superlink deployment, and never a private key.

use std::path::Path;

use anyhow::{Result, anyhow, bail};

use crate::deploy::{Deployment, DeploymentRole, SETTINGS_FILE, Security, Settings};
use crate::hints;
use crate::render::{compose, script, text};

use super::archive::{ArchiveFile, holds_private_key, write_archive};
use super::metadata::{METADATA_FILE, ca_path_in_bundle, certificate_facts};

/// The saved settings of the superlink deployment in `dir`, which bundles are made from.
pub fn superlink_settings(dir: &Path) -> Result<Settings> {
    let saved = Settings::read(dir)?.ok_or_else(|| {
        anyhow!(
            "{}: no {SETTINGS_FILE}: bundles are made from a superlink deployment (`{}`)",
            dir.display(),
            hints::quickstart_superlink()
        )
    })?;
    if saved.role != DeploymentRole::Superlink {
        bail!(
            "{}: a deployment with role {}; bundles are made from a superlink deployment (`{}`)",
            dir.display(),
            saved.role.name(),
            hints::quickstart_superlink()
        );
    }
    saved.validate()?;
    Ok(saved)
}

/// A fresh bundle id: 12 hex digits from the operating system's random source. Only
/// bundles with supernode authentication get one (their keys' comments carry it back);
/// the others stay byte-for-byte reproducible.
pub fn new_bundle_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|err| anyhow!("no randomness for a bundle id ({err})"))?;
    Ok(hex::encode(bytes))
}

/// A packed bundle and what its maker should hear about it.
pub struct Packed {
    pub bytes: Vec<u8>,
    pub warnings: Vec<String>,
}

/// Pack the supernode deployment `node` (built as `deployment`) of the superlink deployment
/// in `dir` under the folder `top`; `file_name` is what its README calls the archive.
pub fn pack(
    dir: &Path,
    superlink: &Settings,
    node: &Settings,
    deployment: &Deployment,
    top: &str,
    file_name: &str,
) -> Result<Packed> {
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    if node.security == Security::Tls {
        let (ca_pem, facts, names) = certificate_facts(dir, superlink)?;
        if let Some(address) = &node.superlink_address {
            if !names.iter().any(|name| name.covers(&address.host)) {
                warnings.push(format!(
                    "the server certificate does not cover {}, which the bundle's supernodes dial; they will fail the TLS handshake (`{}` on their host says so too)",
                    address.host,
                    hints::check_bare()
                ));
            }
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
    for (path, contents, executable) in [
        ("compose.yaml", compose::render_relocatable(deployment)?, false),
        ("run.sh", script::render_run_relocatable(deployment)?, true),
        ("stop.sh", script::render_stop(deployment)?, true),
        (SETTINGS_FILE, node.to_json(), false),
        (
            "README.md",
            text::bundle_readme(deployment, top, file_name)?,
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
    if let Some(file) = files.iter().find(|file| holds_private_key(&file.contents)) {
        bail!(
            "{}: would carry a private key; refusing to write the bundle",
            file.path
        );
    }
    Ok(Packed {
        bytes: write_archive(top, &files)?,
        warnings,
    })
}
