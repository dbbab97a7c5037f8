//! Private-key rules: keys not open to others nor owned by another UID; no CA key and no
//! unused authentication key inside a container.

use std::path::{Path, PathBuf};

use super::super::perm::{self, HostIdentity, PathPerms};
use super::{Out, is_tls_file, mount_files, quote};
use crate::hints;
use crate::tls::verify::Severity;

/// Flags naming an authentication private key (OpenSSH): the only reason to mount one.
const AUTH_KEY_FLAGS: [&str; 2] = ["--auth-supernode-private-key", "--auth-superlink-private-key"];
/// How an OpenSSH private key file begins (what Flower's auth keys are).
const OPENSSH_PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

pub(super) fn key_permissions(out: &mut Out<'_>, host: &Path, who: &HostIdentity, flag: &str) {
    let Ok(perms) = PathPerms::of(host) else { return };
    if perms.mode & 0o077 != 0 {
        // Readable by anyone (as ssh and PostgreSQL refuse), or by a group that is not the
        // container's, is an error; the container's own group reading it is a warning.
        let mode = perms.mode & 0o7777;
        let (severity, whom) = if mode & 0o004 != 0 {
            (Severity::Error, "every user on the host".to_string())
        } else if mode & 0o040 != 0 && perms.gid != who.gid {
            (
                Severity::Error,
                format!(
                    "group {}, which is not the container's group {}",
                    perms.gid, who.gid
                ),
            )
        } else {
            (Severity::Warning, "group or others".to_string())
        };
        out.add(
            "key-too-open",
            severity,
            Some(host),
            format!("{flag}: private key readable by {whom} (mode {mode:04o})"),
            Some(format!("chmod 600 {}", quote(host))),
        );
    }
    if perms.uid != who.uid && perms.granted(who) & perm::READ != 0 && perms.mode & 0o077 == 0 {
        out.add(
            "key-owner",
            Severity::Warning,
            Some(host),
            format!(
                "{flag}: private key owned by UID {}, not the container's UID {}",
                perms.uid, who.uid
            ),
            None,
        );
    }
}

/// Private keys a container has no business holding: the CA's key (it signs certificates for
/// anyone, so it belongs in no container) and an authentication key that none of this
/// container's flags names (another supernode's, or the superlink's: whoever holds it can
/// pose as its owner).
pub(super) fn private_keys_mounted(out: &mut Out<'_>) {
    ca_key_mounted(out);
    auth_key_mounted_elsewhere(out);
}

/// Whether `file` is an OpenSSH private key, by content or, when the caller cannot read it
/// (after `own` it belongs to the container's UID), by the name flowerbed gives one.
fn is_auth_private_key(file: &Path) -> bool {
    let mut head = [0_u8; OPENSSH_PRIVATE_KEY.len()];
    match std::fs::File::open(file) {
        Ok(mut handle) => {
            std::io::Read::read_exact(&mut handle, &mut head).is_ok()
                && head == OPENSSH_PRIVATE_KEY.as_bytes()
        }
        Err(_) => file.file_name().is_some_and(|name| {
            name == crate::auth::PRIVATE_KEY || name == crate::auth::SUPERLINK_PRIVATE_KEY
        }),
    }
}

fn auth_key_mounted_elsewhere(out: &mut Out<'_>) {
    let used: Vec<PathBuf> = AUTH_KEY_FLAGS
        .iter()
        .filter_map(|flag| out.spec.flag_value(flag))
        .filter_map(|value| out.spec.host_path(value).map(|(_, host)| host))
        .collect();
    let mut found = Vec::new();
    for mount in &out.spec.mounts {
        for file in mount_files(&mount.source) {
            if !used.contains(&file) && is_auth_private_key(&file) {
                let inside = file.strip_prefix(&mount.source).map_or_else(
                    |_| mount.target.clone(),
                    |rest| {
                        if rest.as_os_str().is_empty() {
                            mount.target.clone()
                        } else {
                            format!("{}/{}", mount.target.trim_end_matches('/'), rest.display())
                        }
                    },
                );
                found.push((file, inside));
            }
        }
    }
    for (file, inside) in found {
        out.add(
            "auth-key-mounted",
            Severity::Error,
            Some(&file),
            format!(
                "an authentication private key is mounted at {inside} but none of this container's flags uses it; whoever holds it can pose as its owner"
            ),
            Some(format!(
                "mount each supernode's key folder into that supernode only ({} does)",
                hints::render_supernode_auth()
            )),
        );
    }
}

/// The CA's private key signs certificates for anyone: it belongs in no container.
fn ca_key_mounted(out: &mut Out<'_>) {
    let mut found = Vec::new();
    for mount in &out.spec.mounts {
        let files = mount_files(&mount.source);
        let ca_certs: Vec<Vec<u8>> = files
            .iter()
            .filter(|f| is_tls_file(f))
            .filter_map(|f| crate::tls::material::read_certificate(f).ok())
            .filter(|der| crate::tls::material::parse_certificate(der).is_ok_and(|c| c.is_ca()))
            .collect();
        for file in files.iter().filter(|f| is_tls_file(f)) {
            let named_ca = file.file_name().is_some_and(|n| n == "ca.key");
            let matches_ca = crate::tls::material::read_private_key(file).is_ok_and(|key| {
                ca_certs.iter().any(|der| {
                    crate::tls::material::parse_certificate(der)
                        .is_ok_and(|cert| crate::tls::material::key_matches_certificate(&key, &cert))
                })
            });
            if named_ca || matches_ca {
                found.push((file.clone(), mount.target.clone()));
            }
        }
    }
    for (file, target) in found {
        out.add(
            "ca-key-mounted",
            Severity::Error,
            Some(&file),
            format!("the CA private key is mounted into the container (at {target}); anyone in it can sign certificates"),
            Some(format!(
                "move it out of the mounted folder ({} keeps it in ca/)",
                hints::certs_generate_bare()
            )),
        );
    }
}
