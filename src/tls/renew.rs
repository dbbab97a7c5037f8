//! `certs renew`: a new server certificate from the CA that signed the current one.
//!
//! The supernodes trust the CA, not the server certificate, so a certificate issued by the
//! same CA for the same names is accepted without anything new on their side. Everything
//! that would make that untrue is refused before a file is touched: no CA key, a CA that
//! did not sign the current certificate, a supernode copy of `ca.crt` that is not the CA,
//! or a CA that ends before the new certificate would.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use time::OffsetDateTime;

use crate::hints::{self, flag};

use super::KeyType;
use super::generate::{self, ExistingCa, GenerateSettings, Generated};
use super::layout::{Layout, LayoutKind};
use super::material;
use super::names::SubjectName;

/// How long a renewed certificate lasts unless told (as long as `certs generate` makes).
pub const DEFAULT_DAYS: u32 = 365;

/// What `certs renew` was asked for, free of command-line types.
#[derive(Debug, Clone)]
pub struct RenewSettings {
    pub dir: PathBuf,
    /// Names to cover besides the ones the current certificate has.
    pub extra_names: Vec<SubjectName>,
    /// Days from now; `None`: [`DEFAULT_DAYS`], or what the CA has left when that is less.
    pub days: Option<u32>,
    /// The new server key's type; `None` keeps the current key's.
    pub key_type: Option<KeyType>,
}

/// A file the renewal replaces, as it was before: the new file gets its owner and mode.
#[derive(Debug, Clone, Serialize)]
pub struct ReplacedFile {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// The certificate being replaced, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Previous {
    pub sha256: String,
    pub not_after: String,
}

/// The planned renewal: the files (a [`Generated`] plan over the same layout, signed by
/// the folder's own CA) and what they replace.
pub struct Renewal {
    pub generated: Generated,
    pub previous: Previous,
    pub replaced: Vec<ReplacedFile>,
}

/// Check that the folder's certificate can be renewed, then plan the renewal.
pub fn plan(settings: &RenewSettings) -> Result<Renewal> {
    let dir = &settings.dir;
    let layout = Layout::detect(dir).with_context(|| {
        format!(
            "{}: no server certificate to renew (looked for {} and {}); `{}` makes one",
            dir.display(),
            Layout::new(dir, LayoutKind::Split).server_cert().display(),
            Layout::new(dir, LayoutKind::Flat).server_cert().display(),
            hints::certs_generate_bare(),
        )
    })?;
    let (ca_cert_path, ca_key_path) = (layout.ca_cert(), layout.ca_key());
    if ca_key_path.symlink_metadata().is_err() {
        bail!(
            "{}: the CA key is absent; renewing needs the CA that signed the current certificate",
            ca_key_path.display()
        );
    }
    let server_path = layout.server_cert();
    let server_der = material::read_certificate(&server_path)?;
    let server = material::parse_certificate(&server_der)?;
    let ca_der = material::read_certificate(&ca_cert_path)?;
    let ca = material::parse_certificate(&ca_der)?;
    if server.verify_signature(Some(ca.public_key())).is_err() {
        bail!(
            "{}: was not issued by {}; a certificate from that CA would not be trusted by supernodes that trust the current one",
            server_path.display(),
            ca_cert_path.display()
        );
    }
    let ca_key = material::read_private_key(&ca_key_path)?;
    if !material::key_matches_certificate(&ca_key, &ca) {
        bail!(
            "{}: does not belong to {}",
            ca_key_path.display(),
            ca_cert_path.display()
        );
    }
    require_same_ca_copies(&layout, &ca_der)?;

    let now = OffsetDateTime::now_utc();
    let ca_not_after = ca.validity().not_after.to_datetime();
    let room = (ca_not_after - now).whole_days();
    let days = match settings.days {
        Some(days) => days,
        None if room >= 1 => DEFAULT_DAYS.min(u32::try_from(room).unwrap_or(u32::MAX)),
        None => DEFAULT_DAYS,
    };
    if ca_not_after < now + time::Duration::days(i64::from(days)) {
        let advice = if room >= 1 {
            format!("ask for at most {} {room}, or make a new CA", flag::DAYS)
        } else {
            "make a new CA".to_string()
        };
        bail!(
            "{}: the CA ends on {}, before a certificate valid for {} days would; {advice} (`{} {}`; every supernode then needs the new ca.crt)",
            ca_cert_path.display(),
            ca_not_after.date(),
            days,
            hints::certs_generate_bare(),
            flag::FORCE
        );
    }

    // The names every flowerbed certificate covers are covered again (as `certs generate`
    // does), then those asked for.
    let mut names = material::subject_names(&server);
    for name in generate::names_with_defaults(&settings.extra_names) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in &settings.extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    if names.is_empty() {
        bail!(
            "{}: names no DNS name or IP address; give the names to cover with {}",
            server_path.display(),
            flag::NAME
        );
    }
    let key_type = match settings.key_type {
        Some(key_type) => key_type,
        None => material::describe_spki(server.public_key())
            .key_type()
            .with_context(|| {
                format!(
                    "{}: its key type cannot be made again; choose one with {}",
                    server_path.display(),
                    flag::KEY_TYPE
                )
            })?,
    };
    let previous = Previous {
        sha256: material::fingerprint(&server_der),
        not_after: material::format_time(server.validity().not_after.to_datetime()),
    };

    let generated = generate::generate(&GenerateSettings {
        dir: dir.clone(),
        layout: layout.kind,
        names,
        key_type,
        days,
        existing_ca: Some(ExistingCa {
            cert_path: ca_cert_path,
            key_path: ca_key_path,
        }),
        force: true,
    })?;
    let replaced = generated
        .plan
        .files()
        .iter()
        .filter_map(|file| {
            let meta = file.path.symlink_metadata().ok()?;
            Some(ReplacedFile {
                path: file.path.clone(),
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
            })
        })
        .collect();
    Ok(Renewal {
        generated,
        previous,
        replaced,
    })
}

/// Every `ca.crt` a container mounts must be the CA that signs: otherwise the renewed
/// certificate is not what the supernodes trust.
fn require_same_ca_copies(layout: &Layout, ca_der: &[u8]) -> Result<()> {
    if layout.kind == LayoutKind::Flat {
        return Ok(());
    }
    for copy in [layout.superlink_ca_cert(), layout.supernode_ca_cert()] {
        if copy.symlink_metadata().is_err() {
            continue; // written afresh from the CA
        }
        let der = material::read_certificate(&copy)?;
        if der != ca_der {
            bail!(
                "{}: is not the CA in {}; the supernodes may trust another CA, so renewing with this one could lock them out",
                copy.display(),
                layout.ca_cert().display()
            );
        }
    }
    Ok(())
}

/// The mode a renewed file gets: the old one, except that a private key is never left
/// readable by others (returned as the second value when that bit was dropped).
pub fn kept_mode(path: &Path, old_mode: u32) -> (u32, bool) {
    let is_key = path
        .file_name()
        .is_some_and(|name| name.to_string_lossy().ends_with(".key"));
    if is_key && old_mode & 0o007 != 0 {
        (old_mode & !0o007, true)
    } else {
        (old_mode, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_mode_but_never_other_users_bits() {
        assert_eq!(kept_mode(Path::new("a/server.key"), 0o640), (0o640, false));
        assert_eq!(kept_mode(Path::new("a/server.key"), 0o644), (0o640, true));
        assert_eq!(kept_mode(Path::new("a/server.pem"), 0o644), (0o644, false));
        assert_eq!(kept_mode(Path::new("a/server.pem"), 0o444), (0o444, false));
    }
}
