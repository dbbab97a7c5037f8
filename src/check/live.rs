//! `check --live`: the same host-side rules over real containers' mounts, plus what only a
//! running (or dead) container can tell: its state, exit code and last log lines.

use std::path::PathBuf;

use super::rules::Finding;
use super::spec::{ContainerSpec, MountKind, MountSpec, Role};
use crate::docker::LiveContainer;
use crate::tls::verify::Severity;

/// Log lines that name the problems flowerbed exists for.
const PERMISSION_MARKERS: [&str; 2] = ["Permission denied", "PermissionError"];
const TLS_MARKERS: [&str; 4] = [
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "SSLError",
    "hostname mismatch",
];

/// A live container as a spec (its `user` is resolved by the rules, like any other).
pub fn to_spec(container: &LiveContainer) -> ContainerSpec {
    let mounts = container
        .mounts
        .iter()
        .filter(|mount| mount.kind == "bind")
        .map(|mount| MountSpec {
            source: PathBuf::from(&mount.source),
            written: None,
            target: mount.destination.clone(),
            read_only: !mount.read_write,
            kind: MountKind::Bind,
            selinux_label: mount.mode.split(',').any(|m| m == "z" || m == "Z"),
        })
        .collect();
    let role = Role::guess(&container.image)
        .or_else(|| container.entrypoint.first().and_then(|e| Role::guess(e)))
        .or_else(|| Role::guess(&container.name));
    ContainerSpec {
        name: container.name.clone(),
        image: Some(container.image.clone()),
        role,
        profile: crate::deploy::Profile::from_image(&container.image),
        user: container.user.clone().filter(|user| !user.is_empty()),
        working_dir: container.working_dir.clone().unwrap_or_else(|| "/app".into()),
        mounts,
        args: container.args.clone(),
    }
}

/// What the container's state and log say.
pub fn state_findings(container: &LiveContainer, findings: &mut Vec<Finding>) {
    let mut add = |id: &'static str, severity: Severity, message: String| {
        findings.push(Finding::new(
            id,
            Some(severity),
            &container.name,
            None,
            message,
            None,
        ));
    };
    let failed = !container.running && container.exit_code.is_some_and(|code| code != 0);
    if failed {
        add(
            "container-exited",
            Severity::Error,
            format!(
                "{} with exit code {}",
                container.status,
                container.exit_code.unwrap_or_default()
            ),
        );
    }
    if let Some(line) = container
        .log_tail
        .iter()
        .rev()
        .find(|l| PERMISSION_MARKERS.iter().any(|m| l.contains(m)))
    {
        add(
            "log-permission-denied",
            Severity::Error,
            format!("its log says: {}", line.trim()),
        );
    }
    if let Some(line) = container
        .log_tail
        .iter()
        .rev()
        .find(|l| TLS_MARKERS.iter().any(|m| l.contains(m)))
    {
        add(
            "log-tls-failure",
            Severity::Error,
            format!("its log says: {}", line.trim()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::LiveMount;

    fn container(user: Option<&str>, running: bool, exit_code: i64, log: &[&str]) -> LiveContainer {
        LiveContainer {
            id: "abc".into(),
            name: "flower-superlink-1".into(),
            image: "flowerbed-local/superlink:1.42.0".into(),
            user: user.map(str::to_string),
            working_dir: None,
            entrypoint: vec!["flower-superlink".into()],
            args: vec!["--ssl-keyfile".into(), "certificates/server.key".into()],
            mounts: vec![
                LiveMount {
                    kind: "bind".into(),
                    source: "/srv/certs".into(),
                    destination: "/app/certificates".into(),
                    read_write: false,
                    mode: "ro".into(),
                },
                LiveMount {
                    kind: "volume".into(),
                    source: "/var/lib/docker/volumes/x".into(),
                    destination: "/data".into(),
                    read_write: true,
                    mode: String::new(),
                },
            ],
            status: if running {
                "running".into()
            } else {
                "exited".into()
            },
            running,
            exit_code: Some(exit_code),
            project: None,
            log_tail: log.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn live_containers_become_specs() {
        let spec = to_spec(&container(Some("49999:49999"), true, 0, &[]));
        assert_eq!(spec.role, Some(Role::Superlink));
        assert_eq!(
            spec.identity(1, 1),
            crate::check::spec::Identity {
                uid: 49_999,
                gid: 49_999,
                unresolved: None
            }
        );
        assert_eq!(spec.mounts.len(), 1, "only bind mounts are host paths");
        assert!(spec.mounts[0].read_only);
        assert_eq!(spec.working_dir, "/app");
        assert_eq!(
            to_spec(&container(Some("app"), true, 0, &[])).identity(1, 1).uid,
            49_999
        );
    }

    #[test]
    fn exit_codes_and_logs_become_findings() {
        let mut findings = Vec::new();
        state_findings(
            &container(
                None,
                false,
                1,
                &["PermissionError: [Errno 13] Permission denied: 'certificates/server.key'"],
            ),
            &mut findings,
        );
        let ids: Vec<_> = findings.iter().map(|f| f.id).collect();
        assert_eq!(ids, ["container-exited", "log-permission-denied"]);
        let mut clean = Vec::new();
        state_findings(&container(None, true, 0, &["INFO all good"]), &mut clean);
        assert!(clean.is_empty());
    }
}
