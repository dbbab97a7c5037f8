//! `quickstart --from-bundle`: what a checked archive lays down, as one write plan that
//! creates the new folder whole (so `--dry-run` prints exactly what is applied).

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::deploy::settings::validate_dir_path;
use crate::deploy::{DeploymentRole, SETTINGS_FILE, Settings};
use crate::error::Error;
use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PUBLIC, WritePlan};
use crate::render::MODE_SCRIPT;
use crate::tls::material;

use super::archive::{self, Entry, Unpacked, holds_private_key};
use super::metadata::ca_path_in_bundle;

/// Read and check the bundle at `path`, streaming it (bounded memory whatever it holds).
/// A bundle never carries a private key: one that does is refused as a whole.
pub fn read(path: &Path) -> Result<Unpacked> {
    let file = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let unpacked =
        archive::read_archive(BufReader::new(file)).with_context(|| format!("{}", path.display()))?;
    if let Some((relative, _)) = unpacked
        .entries
        .iter()
        .find(|(_, entry)| matches!(entry, Entry::File { contents, .. } if holds_private_key(contents)))
    {
        bail!(
            "{}: {}/{relative} holds a private key: a supernode bundle never carries one (keys stay on the host that made them); refusing to unpack it",
            path.display(),
            unpacked.top
        );
    }
    Ok(unpacked)
}

/// The supernode settings the bundle was made with.
pub fn saved_settings(unpacked: &Unpacked, archive: &Path) -> Result<Settings> {
    let saved_json = unpacked.file(SETTINGS_FILE).ok_or_else(|| {
        anyhow!(
            "{}: no {}/{SETTINGS_FILE}: not a bundle made by `{}`",
            archive.display(),
            unpacked.top,
            crate::hints::bundle_supernode()
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
    // The id ends each supernode key's comment: hex digits only, as `bundle` makes it.
    if let Some(id) = &saved.bundle {
        if id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            bail!(
                "{}: the bundle's id {id:?} is not one flowerbed makes",
                archive.display()
            );
        }
    }
    Ok(saved)
}

/// A TLS bundle carries the CA certificate its supernodes trust.
pub fn require_ca(unpacked: &Unpacked, archive: &Path) -> Result<()> {
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
    Ok(())
}

/// The folder to create: DIR, or the bundle's folder name in the current folder. It must
/// not exist yet (an empty folder is fine: it is replaced).
pub fn target_dir(given: Option<&Path>, top: &str) -> Result<PathBuf> {
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
            let empty = std::fs::read_dir(&dir)
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

/// The plan that creates `dir` from the archive's entries and the files rendered for this
/// host (which replace the archive's copies of the same name).
pub fn plan(dir: &Path, unpacked: &Unpacked, rendered: &[(&str, String, u32)]) -> WritePlan {
    let is_rendered = |relative: &str| rendered.iter().any(|(name, _, _)| *name == relative);
    let mut plan = WritePlan::new_dir(dir, MODE_DIR_PUBLIC);
    for (relative, entry) in &unpacked.entries {
        match entry {
            Entry::Dir => {
                plan.dir(dir.join(relative), MODE_DIR_PUBLIC);
            }
            Entry::File { .. } if is_rendered(relative) => {}
            Entry::File { contents, executable } => {
                let mode = if *executable { MODE_SCRIPT } else { MODE_PUBLIC };
                plan.file(dir.join(relative), contents.clone(), mode);
            }
        }
    }
    for (name, contents, mode) in rendered {
        plan.file(dir.join(name), contents.clone(), *mode);
    }
    plan
}
