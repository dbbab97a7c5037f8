//! Kubernetes manifests (multi-document YAML) from the model, serialized by serde-saphyr.
//!
//! - The superlink is a StatefulSet of one (a PersistentVolumeClaim for its state with
//!   `--state`) behind a Service with its release's ports; a ServerApp runner in process
//!   isolation is a Deployment dialing that Service by the model's name `superlink`.
//! - Supernodes are one StatefulSet of N, or one StatefulSet each when a supernode has
//!   Secrets of its own (see `supernodes`).
//! - TLS material is read from the deployment folder at render time into Secrets:
//!   `superlink-tls` (CA, server certificate, server key) for the superlink only,
//!   `flower-ca` (the CA certificate) for everything that dials it, and in process
//!   isolation one per runner link's superexec secret and per supernode's Runtime API
//!   certificate (`supernode-runtime-tls-N`, `superexec-auth-supernode-N`). No CA key is
//!   ever read. The output then holds a private key, so `--out` writes it with mode 0600.
//! - Pods run as the model's UID/GID with `fsGroup` the same GID, the runtime's default
//!   seccomp profile and no service-account token; hardened (the default), each container
//!   also has a read-only root filesystem with an `emptyDir` per scratch folder the release
//!   writes, no privilege escalation, every capability dropped and a memory limit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::deploy::{Deployment, DeploymentRole, MountPurpose, Profile, Role, Service};
use crate::error::Error;

use super::text;

pub mod objects;
mod pods;
mod supernodes;

use objects::{
    DeploymentSpec, LabelSelector, Labels, Namespace, Object, ObjectMeta, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, Secret, ServicePort, ServiceSpec, StatefulSet, StatefulSetSpec,
    StorageRequest, StorageResources,
};
use pods::{Container, pod_template};

/// Secret with the superlink's CA certificate, server certificate and key.
pub const SERVER_SECRET: &str = "superlink-tls";
/// Secret with the CA certificate alone.
pub const CA_SECRET: &str = "flower-ca";
/// Size requested for the superlink's state volume.
const STATE_STORAGE: &str = "1Gi";

/// Options only the manifests have.
#[derive(Debug, Clone, Default)]
pub struct KubernetesOptions {
    /// Namespace of every object [default: the project name].
    pub namespace: Option<String>,
}

/// The namespace to use: the option, or the project name; a DNS-1123 label either way.
pub fn namespace(deployment: &Deployment, options: &KubernetesOptions) -> Result<String> {
    let (name, given) = match &options.namespace {
        Some(name) => (name.as_str(), true),
        None => (deployment.project.as_str(), false),
    };
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        return Ok(name.to_string());
    }
    let message = if given {
        format!(
            "{name:?} is not a valid namespace (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )
    } else {
        format!(
            "the project name {name:?} is not a valid namespace; pass {} NAME",
            crate::hints::flag::NAMESPACE
        )
    };
    Err(Error::InvalidFlag {
        flag: crate::hints::flag::NAMESPACE,
        message,
    }
    .into())
}

/// Certificate files by host path, read from the deployment folder.
pub type Material = BTreeMap<PathBuf, String>;

/// Read every file the model mounts for TLS (never the CA key: the model mounts none).
pub fn read_material(deployment: &Deployment) -> Result<Material> {
    let mut material = Material::new();
    for mount in deployment.services.iter().flat_map(|service| &service.mounts) {
        for file in mount.files().unwrap_or_default() {
            if material.contains_key(&file.source) {
                continue;
            }
            let text = std::fs::read_to_string(&file.source)
                .with_context(|| format!("{}: cannot read", file.source.display()))?;
            material.insert(file.source, text);
        }
    }
    Ok(material)
}

/// The supernode a mount of `service` belongs to alone: its Runtime API key, its link's
/// superexec secret and its authentication key pair (a Secret of that supernode only,
/// named with its number).
fn own_supernode(purpose: MountPurpose, service: &Service) -> Option<u32> {
    let (Role::Supernode(index) | Role::ClientAppRunner(index)) = service.role else {
        return None;
    };
    matches!(
        purpose,
        MountPurpose::RuntimeServerCertificates
            | MountPurpose::SuperexecAuthSecret
            | MountPurpose::SupernodeAuthKey
    )
    .then_some(index)
}

/// The Secret a mount of `service` is carried by. Each superexec link has a secret of its
/// own: the superlink's and each supernode's never share one.
fn secret_for(purpose: MountPurpose, service: &Service) -> Option<String> {
    let base = match purpose {
        MountPurpose::ServerCertificates => SERVER_SECRET,
        MountPurpose::CaCertificate => CA_SECRET,
        MountPurpose::RuntimeServerCertificates => "supernode-runtime-tls",
        // A supernode-only folder's own Runtime CA, trusted by its runners alone.
        MountPurpose::RuntimeCaCertificate => "runner-ca",
        MountPurpose::SuperexecAuthSecret => match service.role {
            Role::Superlink | Role::ServerAppRunner => "superexec-auth-superlink",
            Role::Supernode(_) | Role::ClientAppRunner(_) => "superexec-auth-supernode",
        },
        MountPurpose::SupernodeAuthKey => "supernode-auth",
        // The superlink's list of admitted public keys (1.21), with its own pair (1.13).
        MountPurpose::KnownSupernodeKeys => "supernode-public-keys",
        MountPurpose::SuperlinkAuthKeys => "superlink-auth",
        MountPurpose::State => return None,
    };
    Some(match own_supernode(purpose, service) {
        Some(index) => format!("{base}-{index}"),
        None => base.to_string(),
    })
}

/// Whether some supernode has a Secret of its own, so the supernodes cannot share one pod
/// template.
fn per_supernode_secrets(deployment: &Deployment) -> bool {
    deployment.services.iter().any(|service| {
        service
            .mounts
            .iter()
            .any(|mount| own_supernode(mount.purpose, service).is_some())
    })
}

/// Labels from `(key, value)` pairs.
fn label_map<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn labels(deployment: &Deployment, workload: &str) -> Labels {
    let mut labels = selector(deployment, workload);
    labels.insert("app.kubernetes.io/managed-by".into(), "flowerbed".into());
    labels
}

fn selector(deployment: &Deployment, workload: &str) -> Labels {
    label_map([
        ("app.kubernetes.io/name", workload),
        ("app.kubernetes.io/instance", &deployment.project),
    ])
}

fn metadata(deployment: &Deployment, namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        labels: labels(deployment, name),
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
    }
}

/// The superlink's listening ports in this release, each once.
fn superlink_ports(profile: &Profile) -> Vec<u16> {
    let mut ports = Vec::new();
    for port in [
        profile.fleet_port(),
        profile.control_port(),
        profile.serverapp_io_port(),
    ] {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports.sort_unstable();
    ports
}

/// The Service of workload `name`'s pods (`headless`: without a cluster IP).
fn service_object(
    deployment: &Deployment,
    namespace: &str,
    name: &str,
    ports: &[u16],
    headless: bool,
) -> objects::Service {
    objects::Service {
        api_version: "v1",
        kind: "Service",
        metadata: metadata(deployment, namespace, name),
        spec: ServiceSpec {
            cluster_ip: headless.then_some("None"),
            ports: ports.iter().map(|&port| service_port("grpc", port)).collect(),
            selector: selector(deployment, name),
            type_: None,
        },
    }
}

fn service_port(prefix: &str, port: u16) -> ServicePort {
    ServicePort {
        name: format!("{prefix}-{port}"),
        port,
        protocol: "TCP",
        target_port: port,
    }
}

/// Every object, in apply order.
pub fn objects(deployment: &Deployment, namespace: &str, material: &Material) -> Result<Vec<Object>> {
    let profile = deployment.profile;
    let mut objects = vec![Object::Namespace(Namespace {
        api_version: "v1",
        kind: "Namespace",
        metadata: ObjectMeta {
            labels: label_map([("app.kubernetes.io/managed-by", "flowerbed")]),
            name: Some(namespace.to_string()),
            namespace: None,
        },
    })];

    // Secrets: each file the model mounts, under its purpose's Secret.
    let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mounts = (deployment.services.iter())
        .flat_map(|service| service.mounts.iter().map(move |mount| (mount, service)));
    for (mount, service) in mounts {
        let (Some(secret), Some(files)) = (secret_for(mount.purpose, service), mount.files()) else {
            continue;
        };
        for file in files {
            let text = material
                .get(&file.source)
                .with_context(|| format!("{}: not read", file.source.display()))?;
            (secrets.entry(secret.clone()).or_default()).insert(file.name.to_string(), text.clone());
        }
    }
    for (secret, string_data) in secrets {
        objects.push(Object::Secret(Secret {
            api_version: "v1",
            kind: "Secret",
            metadata: metadata(deployment, namespace, &secret),
            string_data,
            type_: "Opaque",
        }));
    }

    if let Some(superlink) = deployment
        .services
        .iter()
        .find(|service| service.role == Role::Superlink)
    {
        objects.extend(superlink_objects(deployment, namespace, profile, superlink));
    }
    if deployment
        .services
        .iter()
        .any(|service| matches!(service.role, Role::Supernode(_)))
    {
        objects.extend(supernodes::objects(deployment, namespace)?);
    }
    Ok(objects)
}

/// The manifests from already-read material, with the comment header.
pub fn render_with(deployment: &Deployment, namespace: &str, material: &Material) -> Result<String> {
    let mut out = text::kubernetes_header(deployment, namespace)?;
    let options = serde_saphyr::ser_options! { prefer_block_scalars: true };
    for object in objects(deployment, namespace, material)? {
        out.push_str("---\n");
        let body = serde_saphyr::to_string_with_options(&object, options.clone())
            .context("cannot serialize the manifests")?;
        out.push_str(&body);
    }
    Ok(out)
}

/// `render kubernetes`: the manifests; they embed the superlink's private key with TLS.
pub const FORMAT: super::Format = super::Format {
    name: "kubernetes",
    about: Some(
        "Kubernetes manifests: Namespace, Secrets read from DIR's certificates, the superlink as a StatefulSet behind a Service, the supernodes as a StatefulSet of N",
    ),
    file_name: |_| "flower.k8s.yaml",
    mode: super::private_with_private_files,
    in_folder: super::never,
    render: |deployment, options| render(deployment, &options.kubernetes),
};

/// The manifests, reading the TLS material from the deployment folder.
pub fn render(deployment: &Deployment, options: &KubernetesOptions) -> Result<String> {
    let namespace = namespace(deployment, options)?;
    let material = read_material(deployment)?;
    render_with(deployment, &namespace, &material)
}

/// The superlink's Service and StatefulSet, its ServerApp runner in process isolation, and
/// for a superlink-only deployment a LoadBalancer Service with the Fleet port alone, for
/// supernodes outside the cluster.
fn superlink_objects(
    deployment: &Deployment,
    namespace: &str,
    profile: &Profile,
    superlink: &Service,
) -> Vec<Object> {
    let mut objects = Vec::new();
    let ports = superlink_ports(profile);
    objects.push(Object::Service(service_object(
        deployment,
        namespace,
        "superlink",
        &ports,
        false,
    )));
    let container = Container {
        name: "superlink",
        service: superlink,
        args: superlink.args(),
        env: Vec::new(),
        ports: ports.clone(),
    };
    let mut volume_claim_templates = Vec::new();
    if superlink.mounts.iter().any(|m| m.purpose == MountPurpose::State) {
        volume_claim_templates.push(PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("state".to_string()),
                ..ObjectMeta::default()
            },
            spec: PersistentVolumeClaimSpec {
                access_modes: vec!["ReadWriteOnce"],
                resources: StorageResources {
                    requests: StorageRequest {
                        storage: STATE_STORAGE,
                    },
                },
            },
        });
    }
    objects.push(Object::StatefulSet(StatefulSet {
        api_version: "apps/v1",
        kind: "StatefulSet",
        metadata: metadata(deployment, namespace, "superlink"),
        spec: StatefulSetSpec {
            pod_management_policy: None,
            replicas: 1,
            selector: LabelSelector {
                match_labels: selector(deployment, "superlink"),
            },
            service_name: "superlink".to_string(),
            template: pod_template(deployment, "superlink", &[container]),
            volume_claim_templates,
        },
    }));

    if let Some(runner) = deployment
        .services
        .iter()
        .find(|service| service.role == Role::ServerAppRunner)
    {
        let container = Container {
            name: &runner.name,
            service: runner,
            args: runner.args(),
            env: Vec::new(),
            ports: Vec::new(),
        };
        objects.push(Object::Deployment(objects::Deployment {
            api_version: "apps/v1",
            kind: "Deployment",
            metadata: metadata(deployment, namespace, &runner.name),
            spec: DeploymentSpec {
                replicas: 1,
                selector: LabelSelector {
                    match_labels: selector(deployment, &runner.name),
                },
                template: pod_template(deployment, &runner.name, &[container]),
            },
        }));
    }

    if deployment.role == DeploymentRole::Superlink {
        let name = "superlink-public";
        objects.push(Object::Service(objects::Service {
            api_version: "v1",
            kind: "Service",
            metadata: metadata(deployment, namespace, name),
            spec: ServiceSpec {
                cluster_ip: None,
                ports: vec![service_port("fleet", profile.fleet_port())],
                selector: selector(deployment, "superlink"),
                type_: Some("LoadBalancer"),
            },
        }));
    }
    objects
}
