//! The host-side rules. Each is a small function over one container (or the whole
//! deployment, for TLS) that appends findings; none of them changes anything on disk.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::perm::{self, HostIdentity, PathPerms};
use super::spec::{ContainerSpec, MountKind, Role};
use crate::tls::names::SubjectName;
use crate::tls::verify::Severity;

/// One problem `check` found, with the command that fixes it when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Maps a container UID/GID to the host's (rootless Docker and userns-remap shift them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IdShift {
    /// Start of the subordinate UID range.
    pub uid_start: Option<u32>,
    pub gid_start: Option<u32>,
    /// userns-remap maps n to `start + n`; rootless Docker maps n >= 1 to `start + n - 1`
    /// (its container root is the daemon user itself).
    pub remap: bool,
    /// Rootless: the daemon user's host UID and GID, which container root is (when known).
    pub root_uid: Option<u32>,
    pub root_gid: Option<u32>,
}

impl IdShift {
    pub fn host_uid(&self, container_uid: u32) -> u32 {
        shift(self.uid_start, container_uid, self.remap, self.root_uid)
    }
    pub fn host_gid(&self, container_gid: u32) -> u32 {
        shift(self.gid_start, container_gid, self.remap, self.root_gid)
    }
}

fn shift(start: Option<u32>, id: u32, remap: bool, root: Option<u32>) -> u32 {
    if let (Some(root), 0, false) = (root, id, remap) {
        return root;
    }
    match (start, id, remap) {
        (Some(start), _, true) => start.saturating_add(id),
        (Some(start), 1.., false) => start.saturating_add(id - 1),
        _ => id,
    }
}

/// What the rules need besides the containers.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Identity for containers that state none (Flower's images: 49999).
    pub default_uid: u32,
    pub default_gid: u32,
    pub id_shift: IdShift,
    pub selinux_enforcing: bool,
    pub warn_days: u32,
    /// Docker's CLI (`docker run -v`) refuses relative sources; Compose resolves them.
    pub relative_sources_fail: bool,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            default_uid: crate::FLOWER_UID,
            default_gid: crate::FLOWER_GID,
            id_shift: IdShift::default(),
            selinux_enforcing: false,
            warn_days: 30,
            relative_sources_fail: false,
        }
    }
}

/// Flags whose value is a file the component reads at start-up.
const READ_FLAGS: [&str; 11] = [
    "--ssl-certfile",
    "--ssl-keyfile",
    "--ssl-ca-certfile",
    "--root-certificates",
    "--superexec-auth-secret-file",
    "--auth-supernode-private-key",
    "--auth-supernode-public-key",
    "--auth-superlink-private-key",
    "--auth-superlink-public-key",
    "--auth-list-public-keys",
    "--trusted-entities",
];
/// Of those, the ones holding a private key or secret.
const SECRET_FLAGS: [&str; 4] = [
    "--ssl-keyfile",
    "--superexec-auth-secret-file",
    "--auth-supernode-private-key",
    "--auth-superlink-private-key",
];
/// Flags naming an authentication private key (OpenSSH): the only reason to mount one.
const AUTH_KEY_FLAGS: [&str; 2] = ["--auth-supernode-private-key", "--auth-superlink-private-key"];
/// How an OpenSSH private key file begins (what Flower's auth keys are).
const OPENSSH_PRIVATE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// The container's identity as the host sees it.
pub fn host_identity(spec: &ContainerSpec, settings: &CheckSettings) -> HostIdentity {
    HostIdentity::new(
        settings
            .id_shift
            .host_uid(spec.uid.unwrap_or(settings.default_uid)),
        settings
            .id_shift
            .host_gid(spec.gid.unwrap_or(settings.default_gid)),
    )
}

fn own_fix(path: &Path, spec: &ContainerSpec, settings: &CheckSettings) -> String {
    let uid = spec.uid.unwrap_or(settings.default_uid);
    let gid = spec.gid.unwrap_or(settings.default_gid);
    let ids = if uid == crate::FLOWER_UID && gid == crate::FLOWER_GID {
        String::new()
    } else {
        format!(" --uid {uid} --gid {gid}")
    };
    format!("sudo flowerbed own{ids} {}", quote(path))
}

fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    shlex::try_quote(&text).map_or_else(|_| text.to_string(), std::borrow::Cow::into_owned)
}

struct Out<'a> {
    spec: &'a ContainerSpec,
    findings: &'a mut Vec<Finding>,
}

impl Out<'_> {
    fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        path: Option<&Path>,
        message: String,
        fix: Option<String>,
    ) {
        self.findings.push(Finding {
            id,
            severity,
            service: self.spec.name.clone(),
            path: path.map(Path::to_path_buf),
            message,
            fix,
        });
    }
}

/// Every rule over one container.
pub fn check_container(spec: &ContainerSpec, settings: &CheckSettings, findings: &mut Vec<Finding>) {
    let mut out = Out { spec, findings };
    mount_sources(&mut out, settings);
    flag_files(&mut out, settings);
    database(&mut out, settings);
    certificate_mounts_read_only(&mut out);
    private_keys_mounted(&mut out);
    selinux_labels(&mut out, settings);
}

/// Missing sources (Docker creates a root-owned directory), relative sources.
fn mount_sources(out: &mut Out<'_>, settings: &CheckSettings) {
    for mount in &out.spec.mounts {
        if mount.written_relative && settings.relative_sources_fail {
            out.add(
                "mount-source-relative",
                Severity::Error,
                Some(&mount.source),
                format!(
                    "relative source for {}: `docker run -v` refuses it; use the absolute path",
                    mount.target
                ),
                Some(format!("-v {}:{}", quote(&mount.source), mount.target)),
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
        return format!("flowerbed certs generate {}", quote(root));
    }
    let names = crate::tls::material::read_certificate(&layout.server_cert())
        .ok()
        .and_then(|der| {
            crate::tls::material::parse_certificate(&der)
                .ok()
                .map(|cert| crate::tls::material::subject_names(&cert))
        })
        .unwrap_or_default();
    renew_fix(&layout.server_cert(), &names)
}

/// A client trusts a CA that did not issue the server certificate: copy over the one that
/// did, when the deployment holds it (the superlink's copy, or the CA folder).
fn trusted_ca_fix(cert: &Path, trusted: &Path, superlink: &ContainerSpec) -> Option<String> {
    use crate::tls::material::{parse_certificate, read_certificate};
    let cert_der = read_certificate(cert).ok()?;
    let server = parse_certificate(&cert_der).ok()?;
    let folder = cert.parent().unwrap_or(Path::new("."));
    let candidates = [
        superlink
            .flag_value("--ssl-ca-certfile")
            .and_then(|v| superlink.host_path(v))
            .map(|(_, path)| path),
        Some(deployment_root(folder).join("ca/ca.crt")),
    ];
    let issuer = candidates.into_iter().flatten().find(|path| {
        path != trusted
            && read_certificate(path).is_ok_and(|der| {
                parse_certificate(&der).is_ok_and(|ca| {
                    server.issuer() == ca.subject() && server.verify_signature(Some(ca.public_key())).is_ok()
                })
            })
    })?;
    Some(format!("cp {} {}", quote(&issuer), quote(trusted)))
}

fn looks_like_certificates(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.contains("cert") || [".crt", ".pem", ".key"].iter().any(|ext| name.ends_with(ext))
}

/// Files named by flags: inside a mount, present, of the right kind, readable by the
/// container's UID through every parent; private keys not open to others.
fn flag_files(out: &mut Out<'_>, settings: &CheckSettings) {
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
                    looks_like_certificates(&host).then(|| {
                        format!(
                            "flowerbed certs generate {}",
                            quote(deployment_root(&mount.source))
                        )
                    }),
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
    }
}

fn deployment_root(source: &Path) -> &Path {
    if source
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("certificates"))
    {
        source.parent().unwrap_or(source)
    } else {
        source
    }
}

fn describe_perms(perms: Option<&PathPerms>) -> String {
    perms.map_or_else(String::new, |p| {
        format!(
            " (owner {}:{}, mode {:04o}{})",
            p.uid,
            p.gid,
            p.mode & 0o7777,
            if p.acl.is_some() { ", ACL" } else { "" }
        )
    })
}

fn key_permissions(out: &mut Out<'_>, host: &Path, who: &HostIdentity, flag: &str) {
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

/// SQLite needs the database's folder writable (journal and WAL files live beside it).
fn database(out: &mut Out<'_>, settings: &CheckSettings) {
    let Some(value) = out.spec.flag_value("--database").map(str::to_string) else {
        return;
    };
    if value.starts_with(':') {
        return; // in-memory state
    }
    let who = host_identity(out.spec, settings);
    let Some((mount, host)) = out.spec.host_path(&value).map(|(m, h)| (m.clone(), h)) else {
        out.add(
            "state-unmounted",
            Severity::Warning,
            None,
            format!(
                "--database {value} is not inside any mount: the state is lost when the container is removed"
            ),
            None,
        );
        return;
    };
    let folder = host.parent().unwrap_or(&host).to_path_buf();
    if mount.read_only {
        out.add(
            "state-read-only",
            Severity::Error,
            Some(&mount.source),
            format!("--database {value} is on a read-only mount ({})", mount.target),
            None,
        );
        return;
    }
    if !mount.source.exists() {
        return; // reported by mount-source-missing
    }
    if let Err(blocked) = perm::reach(&mount.source, &folder, &who, perm::WRITE | perm::EXEC) {
        out.add(
            "state-not-writable",
            Severity::Error,
            Some(&folder),
            format!(
                "UID {} cannot create files here (SQLite needs the folder, not only the file): {} lacks {}{}",
                who.uid,
                blocked.at.display(),
                blocked.lacks,
                describe_perms(blocked.perms.as_ref())
            ),
            Some(own_fix(&mount.source, out.spec, settings)),
        );
        return;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", host.display()));
        if file.exists() {
            if let Err(blocked) = perm::reach(&mount.source, &file, &who, perm::READ | perm::WRITE) {
                out.add(
                    "state-not-writable",
                    Severity::Error,
                    Some(&file),
                    format!(
                        "UID {} cannot write the database: {} lacks {}",
                        who.uid,
                        blocked.at.display(),
                        blocked.lacks
                    ),
                    Some(own_fix(&mount.source, out.spec, settings)),
                );
            }
        }
    }
}

/// Files in a mount (its top two levels), for the content rules.
fn mount_files(source: &Path) -> Vec<PathBuf> {
    if source.is_file() {
        return vec![source.to_path_buf()];
    }
    walkdir::WalkDir::new(source)
        .max_depth(2)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .take(2000)
        .map(walkdir::DirEntry::into_path)
        .collect()
}

fn is_tls_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [".crt", ".pem", ".key"].iter().any(|ext| name.ends_with(ext))
}

fn certificate_mounts_read_only(out: &mut Out<'_>) {
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

/// Private keys a container has no business holding: the CA's key (it signs certificates for
/// anyone, so it belongs in no container) and an authentication key that none of this
/// container's flags names (another supernode's, or the superlink's: whoever holds it can
/// pose as its owner).
fn private_keys_mounted(out: &mut Out<'_>) {
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
            Some("mount each supernode's key folder into that supernode only (flowerbed render --supernode-auth does)".into()),
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
            Some("move it out of the mounted folder (flowerbed certs generate keeps it in ca/)".into()),
        );
    }
}

fn selinux_labels(out: &mut Out<'_>, settings: &CheckSettings) {
    if !settings.selinux_enforcing {
        return;
    }
    let unlabelled: Vec<_> = out
        .spec
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Bind && !m.selinux_label)
        .cloned()
        .collect();
    for mount in unlabelled {
        out.add(
            "selinux-label",
            Severity::Error,
            Some(&mount.source),
            format!(
                "SELinux is enforcing and the mount at {} has no :z/:Z label; the container will be denied",
                mount.target
            ),
            Some("add :z to the mount (flowerbed render --selinux)".into()),
        );
    }
}

/// The address a component dials for the superlink, and the host part of it.
pub(crate) fn dial_host(address: &str) -> Option<String> {
    let without_scheme = address.split("://").last().unwrap_or(address);
    if let Some(rest) = without_scheme.strip_prefix('[') {
        return rest.split(']').next().map(str::to_string);
    }
    Some(
        without_scheme
            .rsplit_once(':')
            .map_or(without_scheme, |(host, _)| host)
            .to_string(),
    )
}

fn uses_tls(spec: &ContainerSpec) -> bool {
    !spec.has_flag("--insecure")
}

/// Deployment-wide TLS rules: both sides agree on TLS, and the superlink's certificate is
/// one every client would accept under the name it dials.
pub fn check_tls(specs: &[ContainerSpec], settings: &CheckSettings, findings: &mut Vec<Finding>) {
    let Some(superlink) = specs.iter().find(|s| s.role == Some(Role::Superlink)) else {
        return;
    };
    let clients: Vec<(&ContainerSpec, String)> = specs
        .iter()
        .filter_map(|spec| {
            let address = match spec.role? {
                Role::Supernode => spec.flag_value("--superlink"),
                Role::Superexec | Role::Serverapp => [
                    "--runtime-api-address",
                    "--appio-api-address",
                    "--serverappio-api-address",
                ]
                .into_iter()
                .find_map(|flag| spec.flag_value(flag)),
                _ => None,
            }?;
            let host = dial_host(address)?;
            let dials_superlink =
                spec.role == Some(Role::Supernode) || host == superlink.name || superlink_aliases(&host);
            dials_superlink.then_some((spec, host))
        })
        .collect();
    let superlink_tls = uses_tls(superlink);
    for (client, _) in &clients {
        if let Some(finding) = tls_mismatch(superlink, client) {
            findings.push(finding);
        }
    }
    if !superlink_tls {
        return;
    }
    let (Some(cert), Some(key)) = (
        superlink
            .flag_value("--ssl-certfile")
            .and_then(|v| superlink.host_path(v))
            .map(|(_, p)| p),
        superlink
            .flag_value("--ssl-keyfile")
            .and_then(|v| superlink.host_path(v))
            .map(|(_, p)| p),
    ) else {
        return;
    };
    let mut names: Vec<SubjectName> = clients
        .iter()
        .filter(|(client, _)| uses_tls(client))
        .filter_map(|(_, host)| SubjectName::parse(host).ok())
        .collect();
    let subprocess = superlink
        .flag_value("--isolation")
        .is_none_or(|mode| mode == "subprocess");
    if subprocess {
        // The superlink's own superexec children dial 127.0.0.1.
        names.push(SubjectName::parse("127.0.0.1").expect("valid"));
    }
    names.dedup();
    // Check against every CA a client trusts (one per distinct file).
    let mut cas: Vec<(String, PathBuf)> = clients
        .iter()
        .filter_map(|(client, _)| {
            let ca = client.flag_value("--root-certificates")?;
            Some((client.name.clone(), client.host_path(ca)?.1))
        })
        .collect();
    if cas.is_empty() {
        if let Some(ca) = superlink
            .flag_value("--ssl-ca-certfile")
            .and_then(|v| superlink.host_path(v))
        {
            cas.push((superlink.name.clone(), ca.1));
        }
    }
    cas.sort_by(|a, b| a.1.cmp(&b.1));
    cas.dedup_by(|a, b| a.1 == b.1);
    for (client, ca) in cas {
        if !(ca.is_file() && cert.is_file() && key.is_file()) {
            continue; // missing files are their own findings
        }
        // After `own`, only the container's UID (and root) may read the key: that is right,
        // and not a finding, but it means we cannot look inside.
        let unreadable = [&ca, &cert, &key]
            .into_iter()
            .find(|path| nix::unistd::access(path.as_path(), nix::unistd::AccessFlags::R_OK).is_err());
        if let Some(path) = unreadable {
            findings.push(Finding {
                id: "tls-not-verified",
                severity: Severity::Warning,
                service: superlink.name.clone(),
                path: Some(path.clone()),
                message: format!(
                    "not readable by UID {}, so chain, key match, expiry and names were not checked",
                    nix::unistd::geteuid()
                ),
                fix: Some("run the check as root (sudo flowerbed check ...)".into()),
            });
            continue;
        }
        let verify_settings = crate::tls::verify::VerifySettings {
            ca_path: ca.clone(),
            cert_path: cert.clone(),
            key_path: Some(key.clone()),
            ca_copies: Vec::new(),
            names: names.clone(),
            warn_days: settings.warn_days,
        };
        match crate::tls::verify::verify(&verify_settings) {
            Ok(report) => {
                for finding in report.findings {
                    let fix = match finding.id {
                        "name-not-covered" | "expired" | "expiring" => Some(renew_fix(&cert, &names)),
                        "chain-issuer" | "chain-signature" => trusted_ca_fix(&cert, &ca, superlink),
                        _ => None,
                    };
                    findings.push(Finding {
                        id: finding.id,
                        severity: finding.severity,
                        service: superlink.name.clone(),
                        path: Some(finding.path),
                        message: format!("{} (as trusted by {client})", finding.message),
                        fix,
                    });
                }
            }
            Err(err) => findings.push(Finding {
                id: "tls-unreadable",
                severity: Severity::Error,
                service: superlink.name.clone(),
                path: Some(cert.clone()),
                message: format!("{err:#}"),
                fix: None,
            }),
        }
    }
}

/// Whether `client` and the superlink agree on TLS for the link between them. Supernodes
/// dial the Fleet API, which can always be TLS. App runners dial the ServerAppIo / Runtime
/// API, whose TLS depends on the release: none in 1.13 and 1.21, `--appio-ssl-*` in 1.35,
/// the `--ssl-*` flags from 1.41 on.
fn tls_mismatch(superlink: &ContainerSpec, client: &ContainerSpec) -> Option<Finding> {
    let client_tls = uses_tls(client);
    let finding = |severity, message: String, fix: &str| Finding {
        id: "tls-mismatch",
        severity,
        service: client.name.clone(),
        path: None,
        message,
        fix: Some(fix.to_string()),
    };
    if client.role == Some(Role::Supernode) {
        let superlink_tls = uses_tls(superlink);
        return (client_tls != superlink_tls).then(|| {
            if superlink_tls {
                finding(
                    Severity::Error,
                    "runs with --insecure but the superlink serves TLS: it will retry forever".into(),
                    "replace --insecure with --root-certificates pointing at the CA",
                )
            } else {
                finding(
                    Severity::Error,
                    "expects TLS but the superlink runs with --insecure: it will retry forever".into(),
                    "use --insecure on both sides, or TLS on both",
                )
            }
        });
    }
    let Some(profile) = client.profile.or(superlink.profile) else {
        // A release we cannot name: whether this link can be TLS at all is unknown (it
        // cannot before 1.35), so a difference is worth a look but not a failure.
        let superlink_tls = uses_tls(superlink);
        return (client_tls != superlink_tls).then(|| {
            finding(
                Severity::Warning,
                format!(
                    "{} but the superlink {}; whether this release's ServerApp link can use TLS is unknown (it cannot before Flower 1.35), so this may be right",
                    if client_tls { "expects TLS" } else { "runs with --insecure" },
                    if superlink_tls { "serves TLS" } else { "runs with --insecure" },
                ),
                "name the release in the image tag (flwr/superexec:1.42.0) to have this checked",
            )
        });
    };
    let served_tls = uses_tls(superlink)
        && profile
            .superlink_app_io_tls_flag()
            .is_some_and(|flag| superlink.has_flag(flag));
    if client_tls == served_tls {
        return None;
    }
    let version = profile.version;
    Some(if !profile.app_io_can_be_tls() {
        finding(
            Severity::Error,
            format!(
                "expects TLS, but in Flower {version} the ServerApp link has no TLS: the component refuses to start without --insecure"
            ),
            "add --insecure (and drop --root-certificates)",
        )
    } else if client_tls {
        finding(
            Severity::Error,
            format!(
                "expects TLS but the superlink serves its ServerApp API (Flower {version}) in plain text: it will retry forever"
            ),
            if profile.superlink_app_io_tls_flag() == Some("--appio-ssl-certfile") {
                "give the superlink --appio-ssl-ca-certfile, --appio-ssl-certfile and --appio-ssl-keyfile, or use --insecure on both sides"
            } else {
                "use --insecure on both sides, or TLS on both"
            },
        )
    } else {
        finding(
            Severity::Error,
            format!(
                "runs with --insecure but the superlink serves its ServerApp API (Flower {version}) over TLS: it will retry forever"
            ),
            "replace --insecure with --root-certificates pointing at the CA",
        )
    })
}

fn superlink_aliases(host: &str) -> bool {
    host.contains("superlink")
}

pub(crate) fn renew_fix(cert: &Path, names: &[SubjectName]) -> String {
    let folder = cert.parent().unwrap_or(Path::new("."));
    let root = deployment_root(folder);
    // The CA lives in ca/ in flowerbed's layout, beside the server certificate in Flower's.
    let (layout_flag, ca) = if root.join("ca/ca.key").is_file() {
        ("", root.join("ca"))
    } else {
        (" --flat", folder.to_path_buf())
    };
    let extra = names
        .iter()
        .filter(|n| !crate::tls::layout::DEFAULT_NAMES.contains(&n.to_string().as_str()))
        .fold(String::new(), |mut out, n| {
            out.push_str(" --name ");
            out.push_str(&shlex::try_quote(&n.to_string()).unwrap_or_default());
            out
        });
    let target = if layout_flag.is_empty() { root } else { folder };
    format!(
        "flowerbed certs generate {}{layout_flag} --force --ca-cert {} --ca-key {}{extra}",
        quote(target),
        quote(&ca.join("ca.crt")),
        quote(&ca.join("ca.key"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shift_maps_like_rootless_docker() {
        let shift = IdShift {
            uid_start: Some(100_000),
            gid_start: Some(200_000),
            remap: false,
            root_uid: None,
            root_gid: None,
        };
        assert_eq!(shift.host_uid(0), 0);
        let known_root = IdShift {
            root_uid: Some(1000),
            ..shift
        };
        assert_eq!(known_root.host_uid(0), 1000);
        assert_eq!(known_root.host_uid(49_999), 149_998);
        assert_eq!(shift.host_uid(1), 100_000);
        assert_eq!(shift.host_uid(49_999), 149_998);
        assert_eq!(shift.host_gid(49_999), 249_998);
        assert_eq!(IdShift::default().host_uid(49_999), 49_999);
        let remap = IdShift { remap: true, ..shift };
        assert_eq!(remap.host_uid(0), 100_000);
        assert_eq!(remap.host_uid(49_999), 149_999);
    }

    #[test]
    fn dial_hosts() {
        assert_eq!(dial_host("superlink:9092").as_deref(), Some("superlink"));
        assert_eq!(dial_host("https://[::1]:8000").as_deref(), Some("::1"));
        assert_eq!(dial_host("10.0.0.1").as_deref(), Some("10.0.0.1"));
    }
}
