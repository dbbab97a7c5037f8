//! `check --live`: real containers as specs, so the same host-side rules read their mounts
//! (what only a running or dead container can tell, its state and log, is judged by
//! `rules::live`).

use std::path::PathBuf;

use super::spec::{Component, ContainerSpec, MountKind, MountSpec};
use crate::docker::LiveContainer;

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
    let role = Component::guess(&container.image)
        .or_else(|| container.entrypoint.first().and_then(|e| Component::guess(e)))
        .or_else(|| Component::guess(&container.name));
    ContainerSpec {
        name: container.name.clone(),
        image: Some(container.image.clone()),
        role,
        profile: crate::deploy::Profile::from_image(&container.image),
        user: container.user.clone().filter(|user| !user.is_empty()),
        owner: None,
        working_dir: container.working_dir.clone().unwrap_or_else(|| "/app".into()),
        mounts,
        args: container.args.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::docker::LiveMount;

    /// A live container for the tests here and of the state rules.
    pub(crate) fn container(
        user: Option<&str>,
        running: bool,
        exit_code: i64,
        log: &[&str],
    ) -> LiveContainer {
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
        assert_eq!(spec.role, Some(Component::Superlink));
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
}
