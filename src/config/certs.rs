//! `certs`' flags as certificate settings.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::cli::certs::{GenerateArgs, RenewArgs, VerifyArgs};
use crate::hints;
use crate::tls::generate::{ExistingCa, GenerateSettings};
use crate::tls::renew::RenewSettings;
use crate::tls::verify::VerifySettings;
use crate::tls::{KeyType, Layout, LayoutKind, SubjectName, generate, material, names};

/// `--name` values, each sorted into DNS or IP; the first invalid one is the error.
fn parse_names(values: &[String]) -> Result<Vec<SubjectName>> {
    names::parse_all(values.iter().map(String::as_str)).map_err(|err| anyhow!("{}: {err}", hints::flag::NAME))
}

/// Turn `certs generate` flags into settings.
pub fn generate_settings(args: &GenerateArgs) -> Result<GenerateSettings> {
    let extra = parse_names(&args.names)?;
    let layout = if args.flat {
        LayoutKind::Flat
    } else {
        LayoutKind::Split
    };
    // Replacing a set keeps its key type (an RSA-4096 set stays RSA-4096) unless asked.
    let replaced_key_type = || {
        args.force
            .then(|| existing_key_type(&Layout::new(&args.dir, layout)))
            .flatten()
    };
    Ok(GenerateSettings {
        dir: args.dir.clone(),
        layout,
        names: generate::names_with_defaults(&extra),
        key_type: args
            .key_type
            .or_else(replaced_key_type)
            .unwrap_or(KeyType::EcdsaP256),
        days: args.days,
        existing_ca: match (&args.ca_cert, &args.ca_key) {
            (Some(cert_path), Some(key_path)) => Some(ExistingCa {
                cert_path: cert_path.clone(),
                key_path: key_path.clone(),
            }),
            _ => None,
        },
        force: args.force,
    })
}

/// The key type of the server certificate already in `layout`, when there is one.
fn existing_key_type(layout: &Layout) -> Option<KeyType> {
    let der = material::read_certificate(&layout.server_cert()).ok()?;
    let cert = material::parse_certificate(&der).ok()?;
    material::describe_spki(cert.public_key()).key_type()
}

/// Turn `certs renew` flags into settings.
pub fn renew_settings(args: &RenewArgs) -> Result<RenewSettings> {
    Ok(RenewSettings {
        dir: args.dir.clone(),
        extra_names: parse_names(&args.names)?,
        days: args.days,
        key_type: args.key_type,
    })
}

/// Turn `certs verify` flags into settings: explicit files, or what a folder holds.
pub fn verify_settings(args: &VerifyArgs) -> Result<VerifySettings> {
    let (ca_path, cert_path, key_path, ca_copies, dir) = if let (Some(ca), Some(cert)) =
        (&args.ca, &args.cert)
    {
        (ca.clone(), cert.clone(), args.key.clone(), Vec::new(), None)
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !dir.is_dir() {
            return Err(anyhow!("{}: not a directory", dir.display()));
        }
        let layout = Layout::detect(&dir).ok_or_else(|| {
            anyhow!(
                "{}: no certificates found (expected superlink-certificates/server.pem or server.pem; make them with `{}`)",
                dir.display(),
                hints::certs_generate(&dir.display().to_string())
            )
        })?;
        // Verify what is there: the supernodes' copy of the CA when the folder has one, else
        // the copy beside the server certificate (Flower's certs.yml writes one flat set into
        // superlink-certificates/); every further copy must be identical.
        let mut cas: Vec<PathBuf> = vec![layout.supernode_ca_cert(), layout.superlink_ca_cert()];
        cas.dedup();
        // Whatever is there counts (a FIFO or device too, for the reader to refuse by name).
        cas.retain(|path| path.metadata().is_ok());
        if cas.is_empty() {
            cas.push(layout.ca_cert());
        }
        let ca = cas.remove(0);
        let key = layout.server_key();
        (
            ca,
            layout.server_cert(),
            key.metadata().is_ok().then_some(key),
            cas,
            Some(dir),
        )
    };
    let names = if !args.names.is_empty() {
        parse_names(&args.names)?
    } else if let Some(names) = dir.as_deref().and_then(deployment_names) {
        names
    } else {
        generate::names_with_defaults(&[])
    };
    Ok(VerifySettings {
        ca_path,
        cert_path,
        key_path,
        ca_copies,
        names,
        warn_days: args.warn_days,
    })
}

/// The names the deployment in `dir` dials the superlink by, when `dir` holds one
/// (flowerbed.json, or a compose file); for a certificate folder inside a deployment
/// (Flower's `superlink-certificates/`), the deployment around it.
fn deployment_names(dir: &Path) -> Option<Vec<SubjectName>> {
    let parent = dir.canonicalize().ok()?.parent().map(Path::to_path_buf);
    [Some(dir.to_path_buf()), parent]
        .into_iter()
        .flatten()
        .find_map(|folder| crate::check::deployment_specs(&folder))
        .map(|specs| crate::check::superlink_names(&specs))
        .filter(|names| !names.is_empty())
}
