//! What `check` looks at: the containers a deployment will run, from the host's side.
//!
//! Every source (flowerbed's own deployment model, a hand-written compose file, a
//! rendered `docker run` script, a live container) is turned into [`ContainerSpec`]s, so
//! one set of rules serves them all.

use std::path::{Path, PathBuf};

use crate::deploy::Profile;

/// A Flower component, when we can tell which one a container runs (the kind every layer
/// shares).
pub use crate::deploy::Component as Role;

/// How a host path reaches the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    /// A Compose file-based secret: plain Compose bind-mounts the file with its host owner
    /// and mode (it ignores `uid`, `gid` and `mode`).
    Secret,
}

/// One mount of a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The host path, absolute once resolved.
    pub source: PathBuf,
    /// The source as written, when it was relative (Docker's CLI refuses those).
    pub written_relative: bool,
    /// The path inside the container.
    pub target: String,
    pub read_only: bool,
    pub kind: MountKind,
    /// `z` or `Z` SELinux relabelling requested.
    pub selinux_label: bool,
}

/// A container as `check` sees it.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: Option<String>,
    pub role: Option<Role>,
    /// The Flower release it runs: flowerbed's own model knows; otherwise read off the
    /// image tag when that is a supported version.
    pub profile: Option<&'static Profile>,
    /// `user:` / `--user` as numbers, if the deployment states it.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The container's working directory (Flower's images use `/app`).
    pub working_dir: String,
    pub mounts: Vec<MountSpec>,
    /// Arguments after the entrypoint.
    pub args: Vec<String>,
}

impl ContainerSpec {
    /// The value of `--flag VALUE` or `--flag=VALUE` in the arguments.
    pub fn flag_value(&self, flag: &str) -> Option<&str> {
        let mut iter = self.args.iter();
        while let Some(arg) = iter.next() {
            if arg == flag {
                return iter.next().map(String::as_str);
            }
            if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.args
            .iter()
            .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")))
    }

    /// A container path made absolute against the working directory.
    pub fn container_path(&self, path: &str) -> String {
        if path.starts_with('/') {
            normalize(path)
        } else {
            normalize(&format!("{}/{path}", self.working_dir.trim_end_matches('/')))
        }
    }

    /// The host path behind a container path, through the mount that covers it (the
    /// deepest one wins, as in Docker).
    pub fn host_path(&self, container_path: &str) -> Option<(&MountSpec, PathBuf)> {
        let wanted = self.container_path(container_path);
        self.mounts
            .iter()
            .filter_map(|mount| {
                let target = normalize(&mount.target);
                let rest = if wanted == target {
                    Some("")
                } else {
                    wanted
                        .strip_prefix(&target)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .or_else(|| {
                            if target == "/" {
                                wanted.strip_prefix('/')
                            } else {
                                None
                            }
                        })
                }?;
                let host = if rest.is_empty() {
                    mount.source.clone()
                } else {
                    mount.source.join(rest)
                };
                Some((target.len(), mount, host))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, mount, host)| (mount, host))
    }
}

/// Collapse `.`, `..` and repeated slashes in an absolute container path.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Resolve a host path written in a file against that file's folder.
pub fn resolve_host(base: &Path, written: &str) -> PathBuf {
    let expanded = match written.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(written), |home| PathBuf::from(home).join(rest)),
        None => PathBuf::from(written),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: Vec<MountSpec>, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: "superlink".into(),
            image: None,
            role: Some(Role::Superlink),
            profile: None,
            uid: None,
            gid: None,
            working_dir: "/app".into(),
            mounts,
            args: args.iter().map(ToString::to_string).collect(),
        }
    }

    fn bind(source: &str, target: &str) -> MountSpec {
        MountSpec {
            source: source.into(),
            written_relative: false,
            target: target.into(),
            read_only: true,
            kind: MountKind::Bind,
            selinux_label: false,
        }
    }

    #[test]
    fn resolves_flag_paths_through_the_deepest_mount() {
        let s = spec(
            vec![bind("/srv/app", "/app"), bind("/srv/certs", "/app/certificates")],
            &[
                "--ssl-keyfile",
                "certificates/server.key",
                "--database=state/state.db",
            ],
        );
        assert_eq!(s.flag_value("--ssl-keyfile"), Some("certificates/server.key"));
        assert_eq!(s.flag_value("--database"), Some("state/state.db"));
        let (_, host) = s.host_path("certificates/server.key").unwrap();
        assert_eq!(host, PathBuf::from("/srv/certs/server.key"));
        let (_, host) = s.host_path("/app/other").unwrap();
        assert_eq!(host, PathBuf::from("/srv/app/other"));
        assert!(s.host_path("/etc/passwd").is_none());
        assert!(
            spec(vec![bind("/x", "/app/cert")], &[])
                .host_path("/app/certificates")
                .is_none()
        );
    }

    #[test]
    fn guesses_roles() {
        assert_eq!(Role::guess("flwr/superlink:1.42.0"), Some(Role::Superlink));
        assert_eq!(Role::guess("registry:5000/flwr/supernode"), Some(Role::Supernode));
        assert_eq!(Role::guess("flower-superexec"), Some(Role::Superexec));
        assert_eq!(Role::guess("nginx"), None);
    }
}
