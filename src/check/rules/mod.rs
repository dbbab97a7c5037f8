//! Every rule `check` runs, one module per concern (mounts, keys, state, selinux, tls,
//! cross-host, live). Each is a small function over one container, the whole deployment
//! (TLS), flowerbed's own model (cross-host) or a live container, and adds what it finds to
//! the one sink, [`Findings`] (per container through [`Out`]); `check::run` calls them all
//! and sorts the findings once. None of them changes anything on disk.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod admission;
pub mod cross_host;
mod keys;
pub mod live;
mod mounts;
mod runtime_tls;
mod selinux;
mod state;
pub mod table;
mod tls;

pub use runtime_tls::check_runtime_links;
pub(crate) use tls::dial_host;
pub use tls::{check_tls, renew_fix};
pub(crate) use tls::{dialed_names, superlink_clients, uses_tls};

pub use table::{RULES, Rule};

use super::perm::{HostIdentity, PathPerms};
use super::spec::ContainerSpec;
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

impl Finding {
    /// The one way a finding is made: the id must be a rule of [`RULES`], whose severity
    /// it takes unless `severity` overrides it (a rule that is a warning in some cases).
    pub fn new(
        id: &'static str,
        severity: Option<Severity>,
        service: &str,
        path: Option<&Path>,
        message: String,
        fix: Option<String>,
    ) -> Self {
        let rule = table::rule(id);
        debug_assert!(rule.is_some(), "rule {id} is not in the rule table");
        Self {
            id,
            severity: severity.or(rule.map(|r| r.severity)).unwrap_or(Severity::Error),
            service: service.to_string(),
            path: path.map(Path::to_path_buf),
            message,
            fix,
        }
    }
}

/// Where every rule puts what it found; [`Findings::into_sorted`] orders them once, after
/// the last rule ran.
#[derive(Debug, Default)]
pub struct Findings(Vec<Finding>);

impl Findings {
    /// Add a finding of rule `id` (see [`Finding::new`]).
    pub fn add(
        &mut self,
        id: &'static str,
        severity: Option<Severity>,
        service: &str,
        path: Option<&Path>,
        message: String,
        fix: Option<String>,
    ) {
        self.push(Finding::new(id, severity, service, path, message, fix));
    }

    /// Add a finding a rule made ahead (one it may or may not report).
    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    /// What was found so far, in the order the rules found it.
    pub fn list(&self) -> &[Finding] {
        &self.0
    }

    /// Every finding, by service, the most severe first within one.
    pub fn into_sorted(mut self) -> Vec<Finding> {
        self.0
            .sort_by(|a, b| a.service.cmp(&b.service).then(b.severity.cmp(&a.severity)));
        self.0
    }
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
    /// The Docker client here is older than 23, whose `docker run -v` / `--mount` refuse
    /// relative sources (23 and later resolve them; Compose always has).
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
pub(super) const READ_FLAGS: [&str; 11] = [
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
pub(super) const SECRET_FLAGS: [&str; 4] = [
    "--ssl-keyfile",
    "--superexec-auth-secret-file",
    "--auth-supernode-private-key",
    "--auth-superlink-private-key",
];
/// The container's identity as the host sees it.
pub fn host_identity(spec: &ContainerSpec, settings: &CheckSettings) -> HostIdentity {
    let id = spec.identity(settings.default_uid, settings.default_gid);
    HostIdentity::new(
        settings.id_shift.host_uid(id.uid),
        settings.id_shift.host_gid(id.gid),
    )
}

pub(super) fn own_fix(path: &Path, spec: &ContainerSpec, settings: &CheckSettings) -> String {
    let id = spec.identity(settings.default_uid, settings.default_gid);
    let shown = path.to_string_lossy();
    // Only a NUL stops a word from being quoted, and no path from the system holds one.
    crate::hints::own_command(id.uid, id.gid, [shown.as_ref()]).unwrap_or_default()
}

pub(super) use crate::fsutil::shell_word as quote;

pub(super) struct Out<'a> {
    pub(super) spec: &'a ContainerSpec,
    pub(super) findings: &'a mut Findings,
}

impl Out<'_> {
    pub(super) fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        path: Option<&Path>,
        message: String,
        fix: Option<String>,
    ) {
        self.findings
            .add(id, Some(severity), &self.spec.name, path, message, fix);
    }
}

/// Every rule over one container.
pub fn check_container(spec: &ContainerSpec, settings: &CheckSettings, findings: &mut Findings) {
    let mut out = Out { spec, findings };
    mounts::user_resolved(&mut out, settings);
    mounts::mount_sources(&mut out, settings);
    mounts::flag_files(&mut out, settings);
    state::database(&mut out, settings);
    mounts::certificate_mounts_read_only(&mut out);
    keys::private_keys_mounted(&mut out);
    selinux::selinux_labels(&mut out, settings);
}

pub(super) fn deployment_root(source: &Path) -> &Path {
    if source
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("certificates"))
    {
        source.parent().unwrap_or(source)
    } else {
        source
    }
}

pub(super) fn describe_perms(perms: Option<&PathPerms>) -> String {
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

/// Files in a mount (its top two levels), for the content rules.
pub(super) fn mount_files(source: &Path) -> Vec<PathBuf> {
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

pub(super) fn is_tls_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    [".crt", ".pem", ".key"].iter().any(|ext| name.ends_with(ext))
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
}
