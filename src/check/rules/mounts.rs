//! Mount rules: sources exist (and are absolute where the Docker client needs it), files
//! named by flags are mounted, present and readable by the container's UID, certificate
//! folders are mounted read-only; the container's user resolves.

use std::path::Path;

use super::super::perm;
use super::super::spec::MountKind;
use super::keys::key_permissions;
use super::tls::{CA_FLAGS, ca_certificate};
use super::{
    CheckSettings, Out, READ_FLAGS, SECRET_FLAGS, deployment_root, describe_perms, host_identity,
    is_tls_file, mount_files, own_fix, quote,
};
use crate::hints;
use crate::tls::verify::Severity;

/// A user name that is neither root, a number, nor one the image defines.
pub(super) fn user_resolved(out: &mut Out<'_>, settings: &CheckSettings) {
    let id = out.spec.identity(settings.default_uid, settings.default_gid);
    let Some(name) = id.unresolved else { return };
    let known = out.spec.profile.map_or_else(
        || "the image's release is unknown, so its users are too".to_string(),
        |profile| {
            let names: Vec<&str> = profile.image_users().iter().map(|u| u.name).collect();
            format!("Flower {}'s images define {}", profile.version, names.join(", "))
        },
    );
    out.add(
        "user-unresolved",
        Severity::Warning,
        None,
        format!(
            "user {:?}: {name:?} could not be resolved ({known}); assumed UID {} GID {}",
            out.spec.user.as_deref().unwrap_or_default(),
            id.uid,
            id.gid
        ),
        Some("state the user as numbers (user: \"49999:49999\")".into()),
    );
}

/// Missing sources (Docker creates a root-owned directory), relative sources.
pub(super) fn mount_sources(out: &mut Out<'_>, settings: &CheckSettings) {
    for mount in &out.spec.mounts {
        if mount.written_relative() && settings.relative_sources_fail {
            out.add(
                "mount-source-relative",
                Severity::Error,
                Some(&mount.source),
                format!(
                    "relative source for {}: the Docker client here (before 23) refuses it; use the absolute path",
                    mount.target
                ),
                mount.absolute_option(),
            );
        }
        if mount.source.symlink_metadata().is_err() {
            let fix = if looks_like_certificates(&mount.source) {
                Some(certificates_fix(&mount.source))
            } else {
                Some(format!(
                    "mkdir -p {} && {}",
                    quote(&mount.source),
                    own_fix(&mount.source, out.spec, settings)
                ))
            };
            out.add(
                "mount-source-missing",
                Severity::Error,
                Some(&mount.source),
                format!(
                    "does not exist; Docker would create it as an empty root-owned directory and mount that at {}",
                    mount.target
                ),
                fix,
            );
        }
    }
}

/// Re-create a missing certificate folder: with the deployment's own CA when it kept one (a
/// fresh CA would not be the one the other side trusts), for the names the server
/// certificate already covers.
fn certificates_fix(source: &Path) -> String {
    let root = deployment_root(source);
    let layout = crate::tls::Layout::new(root, crate::tls::LayoutKind::Split);
    if !(layout.ca_cert().is_file() && layout.ca_key().is_file()) {
        return hints::certs_generate(&quote(root));
    }
    let names = crate::tls::material::read_certificate(&layout.server_cert())
        .ok()
        .and_then(|der| {
            crate::tls::material::parse_certificate(&der)
                .ok()
                .map(|cert| crate::tls::material::subject_names(&cert))
        })
        .unwrap_or_default();
    super::renew_fix(&layout.server_cert(), &names)
}

pub(super) fn looks_like_certificates(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.contains("cert") || [".crt", ".pem", ".key"].iter().any(|ext| name.ends_with(ext))
}

/// Files named by flags: inside a mount, present, of the right kind, readable by the
/// container's UID through every parent; private keys not open to others.
pub(super) fn flag_files(out: &mut Out<'_>, settings: &CheckSettings) {
    let who = host_identity(out.spec, settings);
    for flag in READ_FLAGS {
        let Some(value) = out.spec.flag_value(flag).map(str::to_string) else {
            continue;
        };
        let container_path = out.spec.container_path(&value);
        let Some((mount, host)) = out.spec.host_path(&value).map(|(m, h)| (m.clone(), h)) else {
            out.add(
                "flag-file-unmounted",
                Severity::Error,
                None,
                format!("{flag} {value} ({container_path}) is not inside any mount, so the container cannot see it"),
                None,
            );
            continue;
        };
        let Ok(meta) = std::fs::metadata(&host) else {
            if mount.source.exists() {
                out.add(
                    "flag-file-missing",
                    Severity::Error,
                    Some(&host),
                    format!("{flag} {value} names this file, which does not exist"),
                    looks_like_certificates(&host)
                        .then(|| hints::certs_generate(&quote(deployment_root(&mount.source)))),
                );
            }
            continue;
        };
        if meta.is_dir() {
            out.add(
                "mount-kind-mismatch",
                Severity::Error,
                Some(&host),
                format!("{flag} {value} must be a file, but this is a directory"),
                None,
            );
            continue;
        }
        if let Err(blocked) = perm::reach(&mount.source, &host, &who, perm::READ) {
            out.add(
                "not-readable",
                Severity::Error,
                Some(&host),
                format!(
                    "UID {} cannot read it ({flag}): {} lacks {} for it{}",
                    who.uid,
                    blocked.at.display(),
                    blocked.lacks,
                    describe_perms(blocked.perms.as_ref())
                ),
                Some(own_fix(&mount.source, out.spec, settings)),
            );
        }
        if SECRET_FLAGS.contains(&flag) {
            key_permissions(out, &host, &who, flag);
        }
        if CA_FLAGS.contains(&flag) && meta.is_file() {
            ca_certificate(out, &host, flag);
        }
    }
}

pub(super) fn certificate_mounts_read_only(out: &mut Out<'_>) {
    let writable: Vec<_> = out
        .spec
        .mounts
        .iter()
        .filter(|m| {
            !m.read_only && m.kind == MountKind::Bind && mount_files(&m.source).iter().any(|f| is_tls_file(f))
        })
        .cloned()
        .collect();
    for mount in writable {
        out.add(
            "certs-mount-writable",
            Severity::Warning,
            Some(&mount.source),
            format!(
                "holds certificates or keys but is mounted read-write at {}",
                mount.target
            ),
            Some(format!(
                "mount it read-only: -v {}:{}:ro",
                quote(&mount.source),
                mount.target
            )),
        );
    }
}
