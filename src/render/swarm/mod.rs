//! A stack file for `docker stack deploy`, serialized by serde-saphyr from the model.
//!
//! What differs from `compose.yaml`, and why:
//! - Certificates travel as Swarm secrets carrying the container user's uid/gid and a mode
//!   (0400 for the private key, 0444 for certificates): Swarm honours those, so nothing on
//!   the host needs a chown. Each secret's target is the absolute path the service's flags
//!   name (the model's mount target plus the file name), so flags and targets cannot drift.
//! - The superlink's state lives on a named volume, not a bind mount of a host folder. A
//!   new volume is root's, so a one-shot `superlink-state-init` task (root, same image,
//!   same node) hands it to the container user before the superlink can write it.
//! - Supernodes in subprocess isolation are ONE replicated service, `supernode`, with
//!   `deploy.replicas` = the number of supernodes. Each still reads its own data partition:
//!   Swarm expands `{{.Task.Slot}}` (1, 2, ...) in `environment` values and `hostname`, not
//!   in `command`, so the slot reaches the container as `FLOWERBED_SLOT` and a `sh -c`
//!   entrypoint turns it into `--node-config "partition-id=SLOT-1 num-partitions=N"` before
//!   it `exec`s the image's program with the other flags. Every literal `$` in that script
//!   is written `$$`: stack files go through Compose interpolation. After `docker service
//!   scale STACK_supernode=K` partitions number 0..K-1, but num-partitions stays N.
//! - Two cases keep one service per supernode (`supernode-1`, `supernode-2`, ...), because
//!   replicas share everything but the slot:
//!   - supernode authentication: each supernode has a private key of its own, carried as a
//!     secret of its own service; replicas would all get the same key;
//!   - process isolation: each supernode is paired with its own ClientApp runner that dials
//!     it by name (`supernode-N:PORT`); replicas share one DNS name, so a runner could not
//!     pick its supernode.
//! - Placement constraints apply to the superlink only: its state volume is local to the
//!   node it runs on, and its published port is opened on that node (`mode: host`).
//! - Services are found by DNS round robin (`endpoint_mode: dnsrr`), not through a virtual
//!   IP: each runs one task, so a VIP balances nothing, and it needs IPVS in the kernel,
//!   which small hosts and sandboxes often lack (then supernodes never reach the superlink).
//!   Published ports are in `host` mode, which dnsrr allows.
//! - No `container_name`, `depends_on` or `restart`: `docker stack deploy` ignores them;
//!   `deploy.restart_policy` brings a service back instead (supernodes retry until the
//!   superlink answers).

use std::borrow::Cow;
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::deploy::model::{NODE_CONFIG_FLAG, PROJECT_LABEL, SERVICE_LABEL, node_config, relative_to};
use crate::deploy::{Deployment, Hardening, Identity, Isolation, MountPurpose, Role, Service};

use super::compose::{ComposeHealth, literal, literal_map};
use super::text;

/// Mode of a secret holding a private key: the container user reads it, nobody else.
const MODE_PRIVATE: u32 = 0o400;
/// Mode of a secret holding a certificate: public material.
const MODE_PUBLIC: u32 = 0o444;

/// Name of the replicated supernode service (subprocess isolation, no supernode auth).
pub const SUPERNODE_SERVICE: &str = "supernode";
/// Environment variable carrying a replica's slot (1-based) into the container.
pub const SLOT_ENV: &str = "FLOWERBED_SLOT";
/// What Swarm replaces with a task's slot in `environment` values and `hostname`.
const TASK_SLOT: &str = "{{.Task.Slot}}";

/// Options only a stack file has.
#[derive(Debug, Clone, Default)]
pub struct SwarmOptions {
    /// Placement constraints for the superlink (`node.role==manager`, `node.labels.x==y`).
    pub placement: Vec<String>,
}

/// A refused placement constraint: the constraint and why (the caller names the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{constraint:?}: {why}")]
pub struct InvalidPlacement {
    pub constraint: String,
    pub why: String,
}

/// Check a placement constraint: `ATTRIBUTE==VALUE` or `ATTRIBUTE!=VALUE`.
pub fn validate_placement(constraint: &str) -> Result<(), InvalidPlacement> {
    let invalid = |why: &str| InvalidPlacement {
        constraint: constraint.to_string(),
        why: why.to_string(),
    };
    if constraint.chars().any(char::is_control) {
        return Err(invalid("contains a control character"));
    }
    let Some((attribute, value)) = constraint
        .split_once("==")
        .or_else(|| constraint.split_once("!="))
    else {
        return Err(invalid(
            "not a constraint (ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE, e.g. node.role==manager)",
        ));
    };
    let attribute = attribute.trim();
    let value = value.trim();
    let known = [
        "node.id",
        "node.hostname",
        "node.role",
        "node.platform.os",
        "node.platform.arch",
    ];
    let attribute_ok = known.contains(&attribute)
        || ["node.labels.", "engine.labels."]
            .iter()
            .any(|prefix| attribute.len() > prefix.len() && attribute.starts_with(prefix));
    if !attribute_ok {
        return Err(invalid(&format!(
            "unknown attribute {attribute:?} (one of {}, node.labels.NAME, engine.labels.NAME)",
            known.join(", ")
        )));
    }
    if value.is_empty() || value.contains("==") || value.contains("!=") {
        return Err(invalid("needs exactly one value after == or !="));
    }
    Ok(())
}

/// The supernodes as one replicated service: their first one (the template) and how many
/// there are. `None` when each needs a service of its own: in process isolation (each has
/// its own ClientApp runner dialing it by name) or with supernode authentication (each has
/// its own private key), or when the deployment has no supernode.
pub fn replicated_supernodes(deployment: &Deployment) -> Option<(&Service, u32)> {
    if deployment.supernode_isolation != Isolation::Subprocess {
        return None;
    }
    let supernodes: Vec<&Service> = deployment
        .services
        .iter()
        .filter(|service| matches!(service.role, Role::Supernode(_)))
        .collect();
    let own_keys = supernodes.iter().any(|service| {
        service
            .mounts
            .iter()
            .any(|mount| mount.purpose == MountPurpose::SupernodeAuthKey)
    });
    if own_keys {
        return None;
    }
    let first = supernodes
        .iter()
        .copied()
        .find(|service| service.role == Role::Supernode(1))?;
    Some((first, u32::try_from(supernodes.len()).ok()?))
}

/// The `sh -c` script of a replicated supernode: the image's program with the arguments
/// after the script (`"$@"`) and a partition from the slot, written for Compose
/// interpolation (every `$` doubled).
fn replica_script(program: &str, replicas: u32) -> Result<String> {
    let program = shlex::try_quote(program).context("program name cannot be quoted")?;
    let partition = node_config(format!("$(({SLOT_ENV} - 1))"), replicas);
    let script = format!("exec {program} \"$@\" {NODE_CONFIG_FLAG} \"{partition}\"");
    Ok(literal(&script).into_owned())
}

#[derive(Serialize)]
struct StackFile<'a> {
    services: Services<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, SecretSource<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, Volume<'a>>,
    networks: BTreeMap<&'static str, Network<'a>>,
}

/// Services in the model's order (superlink first).
struct Services<'a> {
    deployment: &'a Deployment,
    options: &'a SwarmOptions,
}

impl Serialize for Services<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let replicated = replicated_supernodes(self.deployment);
        let mut map = serializer.serialize_map(None)?;
        for service in &self.deployment.services {
            if let Role::Supernode(index) = service.role
                && let Some((_, replicas)) = replicated
            {
                // The first supernode stands for all of them; the others are its replicas.
                if index == 1 {
                    let stack_service =
                        StackService::replicated(self.deployment, service, self.options, replicas)
                            .map_err(serde::ser::Error::custom)?;
                    map.serialize_entry(SUPERNODE_SERVICE, &stack_service)?;
                }
                continue;
            }
            let stack_service = StackService::new(self.deployment, service, self.options);
            let init = stack_service.state_init(self.deployment, &service.name);
            map.serialize_entry(&service.name, &stack_service)?;
            if let Some((name, init)) = init {
                map.serialize_entry(&name, &init)?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct SecretSource<'a> {
    file: Cow<'a, str>,
}

/// A named volume, labelled with its project like the containers.
#[derive(Serialize)]
struct Volume<'a> {
    labels: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct Network<'a> {
    name: &'a str,
    driver: &'static str,
}

#[derive(Serialize)]
struct StackService<'a> {
    image: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command: Vec<Cow<'a, str>>,
    user: String,
    /// A replica's host name, with the task's slot (replicated supernodes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<StackPort>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretUse>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<VolumeUse>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<&'a str, Cow<'a, str>>,
    labels: BTreeMap<&'a str, Cow<'a, str>>,
    /// Swarm keeps a task out of the service's DNS until its check passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<ComposeHealth>,
    /// Hardening (Swarm has no `security_opt`, so no `no-new-privileges` here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cap_drop: Vec<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    deploy: Deploy<'a>,
}

#[derive(Serialize)]
struct StackPort {
    target: u16,
    published: u16,
    protocol: &'static str,
    /// Opened on the node that runs the task, not on every node of the swarm.
    mode: &'static str,
}

#[derive(Serialize)]
struct SecretUse {
    source: String,
    target: String,
    uid: String,
    gid: String,
    mode: u32,
}

#[derive(Serialize)]
struct VolumeUse {
    #[serde(rename = "type")]
    kind: &'static str,
    /// The named volume; none for a tmpfs scratch folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    target: String,
}

#[derive(Serialize)]
struct Deploy<'a> {
    replicas: u32,
    endpoint_mode: &'static str,
    restart_policy: RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<Placement<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
}

#[derive(Serialize)]
struct Resources {
    limits: Limits,
}

#[derive(Serialize)]
struct Limits {
    cpus: String,
    memory: String,
    pids: u32,
}

#[derive(Serialize)]
struct RestartPolicy {
    condition: &'static str,
}

#[derive(Serialize)]
struct Placement<'a> {
    constraints: &'a [String],
}

/// The secret's name in the stack: its host path below the deployment folder, with `/`
/// as `-` (`superlink-certificates-server.key`); one secret per host file.
fn secret_name(deployment: &Deployment, source: &std::path::Path) -> String {
    relative_to(source, &deployment.dir)
        .to_string_lossy()
        .replace('/', "-")
}

/// The named volume standing for a state folder (`state`).
fn volume_name(deployment: &Deployment, source: &std::path::Path) -> String {
    relative_to(source, &deployment.dir)
        .to_string_lossy()
        .replace('/', "-")
}

impl<'a> StackService<'a> {
    fn new(deployment: &'a Deployment, service: &'a Service, options: &'a SwarmOptions) -> Self {
        let Identity { uid, gid } = deployment.user;
        let mut secrets = Vec::new();
        let mut volumes = Vec::new();
        for mount in &service.mounts {
            if let Some(files) = mount.files() {
                secrets.extend(files.into_iter().map(|file| SecretUse {
                    source: secret_name(deployment, &file.source),
                    target: file.target,
                    uid: uid.to_string(),
                    gid: gid.to_string(),
                    mode: if file.private { MODE_PRIVATE } else { MODE_PUBLIC },
                }));
            } else {
                debug_assert_eq!(mount.purpose, MountPurpose::State);
                volumes.push(VolumeUse {
                    kind: "volume",
                    source: Some(volume_name(deployment, &mount.source)),
                    target: mount.target.clone(),
                });
            }
        }
        let hardening = deployment.hardening.as_ref();
        // Swarm's tmpfs mounts take no owner: the default mode (1777) lets the user write.
        volumes.extend(
            hardening
                .iter()
                .flat_map(|hardening| hardening.scratch)
                .map(|path| VolumeUse {
                    kind: "tmpfs",
                    source: None,
                    target: (*path).to_string(),
                }),
        );
        let placement =
            (service.role == Role::Superlink && !options.placement.is_empty()).then(|| Placement {
                constraints: &options.placement,
            });
        Self {
            image: &service.image,
            entrypoint: Vec::new(),
            command: service
                .flags
                .iter()
                .flat_map(|flag| std::iter::once(flag.name).chain(flag.value.as_deref()))
                .map(literal)
                .collect(),
            user: service.user.to_string(),
            hostname: None,
            ports: service
                .ports
                .iter()
                .map(|port| StackPort {
                    target: port.target,
                    published: port.published,
                    protocol: "tcp",
                    mode: "host",
                })
                .collect(),
            secrets,
            volumes,
            environment: literal_map(&service.environment),
            labels: literal_map(&service.labels),
            healthcheck: service.health.as_ref().map(ComposeHealth::new),
            cap_drop: hardening.map(|_| Hardening::CAP_DROP).into_iter().collect(),
            read_only: hardening.is_some(),
            deploy: Deploy {
                replicas: 1,
                endpoint_mode: "dnsrr",
                restart_policy: RestartPolicy { condition: "any" },
                placement,
                resources: hardening.map(|hardening| Resources {
                    limits: Limits {
                        cpus: hardening.cpus_text(),
                        memory: hardening.memory_text(false),
                        pids: hardening.pids,
                    },
                }),
            },
        }
    }
}

impl<'a> StackService<'a> {
    /// The supernodes as one service of `replicas` tasks, from the first supernode: its
    /// flags without `--node-config`, which the entrypoint adds from the task's slot.
    fn replicated(
        deployment: &'a Deployment,
        first: &'a Service,
        options: &'a SwarmOptions,
        replicas: u32,
    ) -> Result<Self> {
        let mut service = StackService::new(deployment, first, options);
        service.entrypoint = vec![
            "sh".into(),
            "-c".into(),
            replica_script(first.program, replicas)?,
            literal(first.program).into_owned(),
        ];
        service.command = first
            .flags
            .iter()
            .filter(|flag| flag.name != NODE_CONFIG_FLAG)
            .flat_map(|flag| std::iter::once(flag.name).chain(flag.value.as_deref()))
            .map(literal)
            .collect();
        service.environment.insert(SLOT_ENV, Cow::Borrowed(TASK_SLOT));
        service.hostname = Some(format!("{SUPERNODE_SERVICE}-{TASK_SLOT}"));
        service
            .labels
            .insert(SERVICE_LABEL, Cow::Borrowed(SUPERNODE_SERVICE));
        service.deploy.replicas = replicas;
        // Placement applies to the superlink only; a supernode never has any.
        service.deploy.placement = None;
        Ok(service)
    }

    /// A one-shot task that hands a service's state volumes to the container user: Docker
    /// creates a new named volume owned by root unless the image already has the mount
    /// point owned by that user (Flower's images do not), and the service cannot write it.
    /// It runs as root in the same image, on the same node (the volume is local to it), and
    /// stops once done; the service restarts until the volume is its own.
    fn state_init(&self, deployment: &Deployment, name: &str) -> Option<(String, StackService<'a>)> {
        let state: Vec<&VolumeUse> = self
            .volumes
            .iter()
            .filter(|volume| volume.kind == "volume")
            .collect();
        if state.is_empty() {
            return None;
        }
        let init_name = format!("{name}-state-init");
        let mut entrypoint = vec!["chown".to_string(), deployment.user.to_string()];
        entrypoint.extend(state.iter().map(|volume| volume.target.clone()));
        let mut labels = self.labels.clone();
        labels.insert(SERVICE_LABEL, Cow::Owned(init_name.clone()));
        let init = StackService {
            image: self.image,
            entrypoint,
            command: Vec::new(),
            user: "0:0".to_string(),
            hostname: None,
            ports: Vec::new(),
            secrets: Vec::new(),
            // Root with CAP_CHOWN, for one chown: not hardened.
            volumes: state
                .iter()
                .map(|volume| VolumeUse {
                    kind: volume.kind,
                    source: volume.source.clone(),
                    target: volume.target.clone(),
                })
                .collect(),
            environment: BTreeMap::new(),
            labels,
            healthcheck: None,
            cap_drop: Vec::new(),
            read_only: false,
            deploy: Deploy {
                replicas: 1,
                endpoint_mode: "dnsrr",
                restart_policy: RestartPolicy {
                    condition: "on-failure",
                },
                placement: self.deploy.placement.as_ref().map(|placement| Placement {
                    constraints: placement.constraints,
                }),
                resources: None,
            },
        };
        Some((init_name, init))
    }
}

/// `render swarm`: a stack file for `docker stack deploy`.
pub const FORMAT: super::Format = super::Format {
    name: "swarm",
    about: Some(
        "A stack file for `docker stack deploy`: certificates as Swarm secrets owned by the container user (no chown on the host), state on a named volume",
    ),
    file_name: |_| "stack.yaml",
    mode: super::public,
    in_folder: super::never,
    render: |deployment, options| render(deployment, &options.swarm),
};

/// The whole stack file: a comment header, then the serialized model.
pub fn render(deployment: &Deployment, options: &SwarmOptions) -> Result<String> {
    for constraint in &options.placement {
        validate_placement(constraint).map_err(|err| anyhow::anyhow!("placement constraint {err}"))?;
    }
    let mut secrets = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for mount in deployment.services.iter().flat_map(|service| &service.mounts) {
        match mount.files() {
            Some(files) => {
                for file in files {
                    secrets.insert(
                        secret_name(deployment, &file.source),
                        SecretSource {
                            // Paths were checked to be UTF-8 when the settings were validated.
                            file: literal(file.source.to_str().unwrap_or_default())
                                .into_owned()
                                .into(),
                        },
                    );
                }
            }
            None => {
                volumes.insert(
                    volume_name(deployment, &mount.source),
                    Volume {
                        labels: BTreeMap::from([(PROJECT_LABEL, deployment.project.as_str())]),
                    },
                );
            }
        }
    }
    let file = StackFile {
        services: Services { deployment, options },
        secrets,
        volumes,
        networks: BTreeMap::from([(
            "default",
            Network {
                name: &deployment.network,
                driver: "overlay",
            },
        )]),
    };
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let body =
        serde_saphyr::to_string_with_options(&file, options).context("cannot serialize the stack file")?;
    let mut out = text::swarm_header(deployment, replicated_supernodes(deployment).is_some())?;
    out.push_str(&body);
    Ok(out)
}

#[cfg(test)]
mod tests;
