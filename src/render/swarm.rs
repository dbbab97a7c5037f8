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
//! - Supernodes stay one service each: every supernode reads its own data partition
//!   (`--node-config partition-id=N`), and in process isolation each is paired with its
//!   own ClientApp runner that dials it by name. A replicated service gives every replica
//!   the same flags and one DNS name, so it can express neither.
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

use crate::deploy::model::{PROJECT_LABEL, SERVICE_LABEL, relative_to};
use crate::deploy::{Deployment, MountPurpose, Role, Service};
use crate::error::Error;

use super::compose::{literal, literal_map};
use super::text;

/// Mode of a secret holding a private key: the container user reads it, nobody else.
const MODE_PRIVATE: u32 = 0o400;
/// Mode of a secret holding a certificate: public material.
const MODE_PUBLIC: u32 = 0o444;

/// Options only a stack file has.
#[derive(Debug, Clone, Default)]
pub struct SwarmOptions {
    /// Placement constraints for the superlink (`node.role==manager`, `node.labels.x==y`).
    pub placement: Vec<String>,
}

/// Check a placement constraint: `ATTRIBUTE==VALUE` or `ATTRIBUTE!=VALUE`.
pub fn validate_placement(constraint: &str) -> Result<()> {
    let invalid = |why: &str| -> anyhow::Error {
        Error::InvalidFlag {
            flag: "--placement",
            message: format!("{constraint:?}: {why}"),
        }
        .into()
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
        let services = &self.deployment.services;
        let mut map = serializer.serialize_map(Some(services.len()))?;
        for service in services {
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
    user: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<StackPort>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretUse>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<VolumeUse>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<&'a str, Cow<'a, str>>,
    labels: BTreeMap<&'a str, Cow<'a, str>>,
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
    source: String,
    target: String,
}

#[derive(Serialize)]
struct Deploy<'a> {
    replicas: u32,
    endpoint_mode: &'static str,
    restart_policy: RestartPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<Placement<'a>>,
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
        let (uid, gid) = deployment.container_ids();
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
                    source: volume_name(deployment, &mount.source),
                    target: mount.target.clone(),
                });
            }
        }
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
            user: &service.user,
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
            deploy: Deploy {
                replicas: 1,
                endpoint_mode: "dnsrr",
                restart_policy: RestartPolicy { condition: "any" },
                placement,
            },
        }
    }
}

impl<'a> StackService<'a> {
    /// A one-shot task that hands a service's state volumes to the container user: Docker
    /// creates a new named volume owned by root unless the image already has the mount
    /// point owned by that user (Flower's images do not), and the service cannot write it.
    /// It runs as root in the same image, on the same node (the volume is local to it), and
    /// stops once done; the service restarts until the volume is its own.
    fn state_init(&self, deployment: &Deployment, name: &str) -> Option<(String, StackService<'a>)> {
        if self.volumes.is_empty() {
            return None;
        }
        let (uid, gid) = deployment.container_ids();
        let init_name = format!("{name}-state-init");
        let mut entrypoint = vec!["chown".to_string(), format!("{uid}:{gid}")];
        entrypoint.extend(self.volumes.iter().map(|volume| volume.target.clone()));
        let mut labels = self.labels.clone();
        labels.insert(SERVICE_LABEL, Cow::Owned(init_name.clone()));
        let init = StackService {
            image: self.image,
            entrypoint,
            command: Vec::new(),
            user: "0:0",
            ports: Vec::new(),
            secrets: Vec::new(),
            volumes: self
                .volumes
                .iter()
                .map(|volume| VolumeUse {
                    kind: volume.kind,
                    source: volume.source.clone(),
                    target: volume.target.clone(),
                })
                .collect(),
            environment: BTreeMap::new(),
            labels,
            deploy: Deploy {
                replicas: 1,
                endpoint_mode: "dnsrr",
                restart_policy: RestartPolicy {
                    condition: "on-failure",
                },
                placement: self.deploy.placement.as_ref().map(|placement| Placement {
                    constraints: placement.constraints,
                }),
            },
        };
        Some((init_name, init))
    }
}

/// The whole stack file: a comment header, then the serialized model.
pub fn render(deployment: &Deployment, options: &SwarmOptions) -> Result<String> {
    for constraint in &options.placement {
        validate_placement(constraint)?;
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
    let mut out = text::swarm_header(deployment)?;
    out.push_str(&body);
    Ok(out)
}
