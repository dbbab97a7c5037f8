//! What `check` looks at: the containers a deployment will run, from the host's side.
//!
//! Every source (flowerbed's own deployment model, a hand-written compose file, a
//! rendered `docker run` script, a live container) is turned into [`ContainerSpec`]s, so
//! one set of rules serves them all.

use std::path::{Path, PathBuf};

use crate::deploy::Profile;

/// A Flower component, when we can tell which one a container runs (the kind every layer
/// shares).
pub use crate::deploy::Component;

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
    /// The `docker run` option as written (scripts only: Compose resolves relative
    /// sources itself), so a fix can repeat it with only the source changed.
    pub written: Option<WrittenMount>,
    /// The path inside the container.
    pub target: String,
    pub read_only: bool,
    pub kind: MountKind,
    /// `z` or `Z` SELinux relabelling requested.
    pub selinux_label: bool,
}

/// A `docker run -v` / `--mount` option as the script spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenMount {
    /// `-v` or `--mount`.
    pub flag: &'static str,
    /// The whole value (`./certs:/app/certificates:ro,z`).
    pub value: String,
    /// The source part of it, after expansion (`./certs`).
    pub source: String,
}

impl MountSpec {
    /// Whether the script gave a relative source (Docker's CLI refuses those before 23).
    pub fn written_relative(&self) -> bool {
        self.written
            .as_ref()
            .is_some_and(|written| !written.source.starts_with('/'))
    }

    /// The option as written with the source made absolute: every other part (`:ro`,
    /// SELinux labels, `readonly`) is kept, so the fix never loosens the mount.
    pub fn absolute_option(&self) -> Option<String> {
        let written = self.written.as_ref()?;
        let absolute = self.source.to_string_lossy();
        let value = if written.flag == "-v" {
            written.value.replacen(&written.source, &absolute, 1)
        } else {
            written
                .value
                .split(',')
                .map(|field| match field.split_once('=') {
                    Some((key @ ("source" | "src"), _)) => format!("{key}={absolute}"),
                    _ => field.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let quoted = shlex::try_quote(&value).map_or_else(|_| value.clone(), std::borrow::Cow::into_owned);
        Some(format!("{} {quoted}", written.flag))
    }
}

/// A container as `check` sees it.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: Option<String>,
    pub role: Option<Component>,
    /// The Flower release it runs: flowerbed's own model knows; otherwise read off the
    /// image tag when that is a supported version.
    pub profile: Option<&'static Profile>,
    /// `user:` / `--user` as written (`49999:49999`, `root`, `app`), if stated.
    pub user: Option<String>,
    /// The identity flowerbed's own model gives it, which needs no reading of `user`.
    pub owner: Option<crate::deploy::Identity>,
    /// The container's working directory (Flower's images use `/app`).
    pub working_dir: String,
    pub mounts: Vec<MountSpec>,
    /// Arguments after the entrypoint.
    pub args: Vec<String>,
}

/// Who a container runs as, and what could not be resolved on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// A user or group name neither numeric, `root` nor one of the image's own users.
    pub unresolved: Option<String>,
}

impl ContainerSpec {
    /// A spec with nothing known yet (readers fill it in).
    pub fn unnamed() -> Self {
        Self {
            name: String::new(),
            image: None,
            role: None,
            profile: None,
            user: None,
            owner: None,
            working_dir: "/app".into(),
            mounts: Vec::new(),
            args: Vec::new(),
        }
    }

    /// The container's UID and GID: `root`/`0` and numbers as they are, the image's own
    /// names (`app` in Flower's images) from the release profile, anything else the
    /// default (with the name kept, for a warning). A bare UID takes the group the image
    /// gives that user, or GID 0 when the image has no such user (as Docker does).
    pub fn identity(&self, uid_default: u32, gid_default: u32) -> Identity {
        if let Some(owner) = self.owner {
            return Identity {
                uid: owner.uid,
                gid: owner.gid,
                unresolved: None,
            };
        }
        let Some(user) = self.user.as_deref().filter(|u| !u.is_empty()) else {
            return Identity {
                uid: uid_default,
                gid: gid_default,
                unresolved: None,
            };
        };
        let users = self.profile.map_or(&[][..], |profile| profile.image_users());
        let (user_part, group_part) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
        let mut unresolved = None;
        let by_name = |name: &str| users.iter().find(|u| u.name == name);
        let uid = if let Ok(number) = user_part.parse::<u32>() {
            number
        } else if user_part == "root" {
            0
        } else if let Some(known) = by_name(user_part) {
            known.uid
        } else {
            unresolved = Some(user_part.to_string());
            uid_default
        };
        let gid = match group_part {
            Some(group) => {
                if let Ok(number) = group.parse::<u32>() {
                    number
                } else if group == "root" {
                    0
                } else if let Some(known) = by_name(group) {
                    known.gid
                } else {
                    unresolved.get_or_insert_with(|| group.to_string());
                    gid_default
                }
            }
            None if uid == 0 => 0,
            None if unresolved.is_some() => gid_default,
            None => match users.iter().find(|u| u.uid == uid) {
                Some(known) => known.gid,
                None if self.profile.is_some() => 0,
                None => gid_default,
            },
        };
        Identity { uid, gid, unresolved }
    }

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
    // `components()` drops the `.` parts (`./certs` reads as `certs`).
    let joined = if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    };
    joined.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: Vec<MountSpec>, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: "superlink".into(),
            image: None,
            role: Some(Component::Superlink),
            profile: None,
            user: None,
            owner: None,
            working_dir: "/app".into(),
            mounts,
            args: args.iter().map(ToString::to_string).collect(),
        }
    }

    fn bind(source: &str, target: &str) -> MountSpec {
        MountSpec {
            source: source.into(),
            written: None,
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
    fn users_resolve_by_number_root_and_image_names() {
        let flower = crate::deploy::Profile::find("1.42.0");
        let who = |user: Option<&str>, profile| {
            let mut s = spec(Vec::new(), &[]);
            s.user = user.map(str::to_string);
            s.profile = profile;
            let id = s.identity(49_999, 49_999);
            (id.uid, id.gid, id.unresolved)
        };
        assert_eq!(who(None, flower), (49_999, 49_999, None));
        assert_eq!(who(Some("root"), flower), (0, 0, None));
        assert_eq!(who(Some("0"), None), (0, 0, None));
        assert_eq!(who(Some("app"), flower), (49_999, 49_999, None));
        assert_eq!(who(Some("app:root"), flower), (49_999, 0, None));
        assert_eq!(who(Some("1000:1000"), None), (1000, 1000, None));
        assert_eq!(who(Some("1000"), flower), (1000, 0, None));
        assert_eq!(who(Some("49999"), flower), (49_999, 49_999, None));
        assert_eq!(who(Some("app"), None), (49_999, 49_999, Some("app".into())));
        assert_eq!(
            who(Some("bob:staff"), flower),
            (49_999, 49_999, Some("bob".into()))
        );
    }

    #[test]
    fn absolute_options_keep_every_other_part() {
        let mut mount = bind("/srv/site/certs", "/app/certificates");
        mount.written = Some(WrittenMount {
            flag: "-v",
            value: "./certs:/app/certificates:ro,z".into(),
            source: "./certs".into(),
        });
        assert!(mount.written_relative());
        assert_eq!(
            mount.absolute_option().unwrap(),
            "-v '/srv/site/certs:/app/certificates:ro,z'"
        );
        mount.written = Some(WrittenMount {
            flag: "--mount",
            value: "type=bind,src=certs,dst=/app/certificates,readonly".into(),
            source: "certs".into(),
        });
        assert_eq!(
            mount.absolute_option().unwrap(),
            "--mount 'type=bind,src=/srv/site/certs,dst=/app/certificates,readonly'"
        );
    }

    #[test]
    fn guesses_roles() {
        assert_eq!(
            Component::guess("flwr/superlink:1.42.0"),
            Some(Component::Superlink)
        );
        assert_eq!(
            Component::guess("registry:5000/flwr/supernode"),
            Some(Component::Supernode)
        );
        assert_eq!(Component::guess("flower-superexec"), Some(Component::Superexec));
        assert_eq!(Component::guess("nginx"), None);
    }
}
