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
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::deploy::model::SERVICE_LABEL;
use crate::deploy::profile::HealthProbe;
use crate::deploy::{
    Deployment, DeploymentRole, Hardening, HealthCheck, Identity, MountPurpose, Profile, Role, Service,
};
use crate::error::Error;

use super::text;

mod supernodes;

/// What each hardened container asks the scheduler to reserve.
const REQUESTED_CPU: &str = "100m";
const REQUESTED_MEMORY: &str = "256Mi";
/// Secret with the superlink's CA certificate, server certificate and key.
pub const SERVER_SECRET: &str = "superlink-tls";
/// Secret with the CA certificate alone.
pub const CA_SECRET: &str = "flower-ca";
/// Size requested for the superlink's state volume.
const STATE_STORAGE: &str = "1Gi";
/// Secret volumes: the files are root-owned with group fsGroup inside the pod, so the
/// container user (runAsUser 49999, not root) reads them through the group bit. 0440 says
/// so explicitly rather than relying on kubelet widening 0400 for fsGroup; other users get
/// nothing.
const SECRET_MODE: u32 = 0o440;

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

fn labels(deployment: &Deployment, workload: &str) -> Value {
    json!({
        "app.kubernetes.io/name": workload,
        "app.kubernetes.io/instance": deployment.project,
        "app.kubernetes.io/managed-by": "flowerbed",
    })
}

fn selector(deployment: &Deployment, workload: &str) -> Value {
    json!({
        "app.kubernetes.io/name": workload,
        "app.kubernetes.io/instance": deployment.project,
    })
}

fn metadata(deployment: &Deployment, namespace: &str, name: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(deployment, name) })
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

/// A container for `service`: the model's arguments (after `rewrite`), its mounts as
/// Secret or claim mounts, and the locked-down security context.
struct Container<'a> {
    name: &'a str,
    service: &'a Service,
    args: Vec<String>,
    env: Vec<Value>,
    ports: Vec<u16>,
}

/// The `emptyDir` volume standing for a scratch folder: its path as a name
/// (`/app/.flwr` → `app-flwr`).
fn scratch_volume(path: &str) -> String {
    let words: Vec<&str> = path.split(['/', '.']).filter(|word| !word.is_empty()).collect();
    words.join("-")
}

impl Container<'_> {
    fn to_value(&self, hardening: Option<&Hardening>) -> Value {
        let scratch = hardening.map_or(&[][..], |hardening| hardening.scratch);
        let mut mounts: Vec<Value> = scratch
            .iter()
            .map(|path| json!({ "name": scratch_volume(path), "mountPath": path }))
            .collect();
        for (volume, path) in volume_mounts(self.service) {
            mounts.push(json!({ "name": volume, "mountPath": path, "readOnly": volume != "state" }));
        }
        let mut container = json!({
            "name": self.name,
            "image": self.service.image,
            "imagePullPolicy": "IfNotPresent",
            "args": self.args,
            "volumeMounts": mounts,
        });
        if let Some(health) = &self.service.health {
            // The kubelet probes from outside the container: gRPC health or TCP, natively.
            let probe = match health.probe {
                HealthProbe::Grpc { port, .. } => json!({ "grpc": { "port": port } }),
                HealthProbe::Tcp(port) => json!({ "tcpSocket": { "port": port } }),
            };
            let mut ready = probe.clone();
            // The kubelet's probes cost the container nothing: readiness often, so what
            // dials the superlink's Service finds it soon.
            ready["periodSeconds"] = Value::from(2);
            let mut alive = probe;
            alive["periodSeconds"] = Value::from(HealthCheck::INTERVAL_SECONDS * 2);
            alive["initialDelaySeconds"] = Value::from(HealthCheck::START_PERIOD_SECONDS);
            alive["failureThreshold"] = Value::from(HealthCheck::RETRIES);
            container["readinessProbe"] = ready;
            container["livenessProbe"] = alive;
        }
        if let Some(hardening) = hardening {
            container["securityContext"] = json!({
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "capabilities": { "drop": [Hardening::CAP_DROP] },
            });
            // Requests are what the scheduler reserves: a floor an idle Flower component
            // stays under, so a small cluster still places every pod; limits are the cap.
            let (cpu, memory) = (hardening.cpus_text(), hardening.memory_text(true));
            container["resources"] = json!({
                "limits": { "cpu": cpu, "memory": memory },
                "requests": { "cpu": REQUESTED_CPU, "memory": REQUESTED_MEMORY },
            });
        }
        if !self.env.is_empty() {
            container["env"] = Value::from(self.env.clone());
        }
        if !self.ports.is_empty() {
            container["ports"] = self
                .ports
                .iter()
                .map(|port| json!({ "containerPort": port, "protocol": "TCP" }))
                .collect();
        }
        container
    }
}

/// `(volume name, mount path)` for each Secret or state volume `service` needs; a Secret
/// is mounted as the folder its files' targets share, so the flags' paths resolve.
fn volume_mounts(service: &Service) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for mount in &service.mounts {
        let entry = match (secret_for(mount.purpose, service), mount.files()) {
            (Some(secret), Some(files)) => {
                let folder = files
                    .first()
                    .and_then(|file| Path::new(&file.target).parent())
                    .map_or_else(|| mount.target.clone(), |p| p.display().to_string());
                (secret, folder)
            }
            _ => ("state".to_string(), mount.target.clone()),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// The pod's volumes: an `emptyDir` per scratch folder and each Secret with the files the
/// containers' mounts carry (key = file name, path = name in the mounted folder).
fn pod_volumes(services: &[&Service], hardening: Option<&Hardening>) -> Vec<Value> {
    let mut items: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
    let mounts = services
        .iter()
        .flat_map(|service| service.mounts.iter().map(move |mount| (mount, *service)));
    for (mount, service) in mounts {
        let (Some(secret), Some(files)) = (secret_for(mount.purpose, service), mount.files()) else {
            continue;
        };
        for file in files {
            let path = Path::new(&file.target)
                .file_name()
                .map_or_else(|| file.name.to_string(), |n| n.to_string_lossy().into_owned());
            items.entry(secret.clone()).or_default().insert(file.name, path);
        }
    }
    let scratch = hardening.map_or(&[][..], |hardening| hardening.scratch);
    let mut volumes: Vec<Value> = scratch
        .iter()
        .map(|path| json!({ "name": scratch_volume(path), "emptyDir": {} }))
        .collect();
    for (secret, files) in items {
        let items: Vec<Value> = files
            .into_iter()
            .map(|(key, path)| json!({ "key": key, "path": path }))
            .collect();
        volumes.push(json!({
            "name": secret,
            "secret": { "secretName": secret, "defaultMode": SECRET_MODE, "items": items },
        }));
    }
    volumes
}

fn pod_template(deployment: &Deployment, workload: &str, containers: &[Container<'_>]) -> Value {
    let Identity { uid, gid } = deployment.user;
    let mut labels = labels(deployment, workload);
    for (key, value) in &containers[0].service.labels {
        labels[key.as_str()] = Value::from(value.clone());
    }
    // One pod template stands for every supernode: it is named after the workload.
    labels[SERVICE_LABEL] = Value::from(workload);
    let services: Vec<&Service> = containers.iter().map(|c| c.service).collect();
    let hardening = deployment.hardening.as_ref();
    json!({
        "metadata": { "labels": labels },
        "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsUser": uid,
                "runAsGroup": gid,
                "fsGroup": gid,
                "runAsNonRoot": true,
                "seccompProfile": { "type": "RuntimeDefault" },
            },
            "containers": containers
                .iter()
                .map(|container| container.to_value(hardening))
                .collect::<Vec<_>>(),
            "volumes": pod_volumes(&services, hardening),
        },
    })
}

fn service_object(
    deployment: &Deployment,
    namespace: &str,
    name: &str,
    ports: &[u16],
    headless: bool,
) -> Value {
    let mut spec = json!({
        "selector": selector(deployment, name),
        "ports": ports
            .iter()
            .map(|port| json!({ "name": format!("grpc-{port}"), "port": port, "targetPort": port, "protocol": "TCP" }))
            .collect::<Vec<_>>(),
    });
    if headless {
        spec["clusterIP"] = Value::from("None");
    }
    json!({ "apiVersion": "v1", "kind": "Service", "metadata": metadata(deployment, namespace, name), "spec": spec })
}

/// Every object, in apply order.
pub fn objects(deployment: &Deployment, namespace: &str, material: &Material) -> Result<Vec<Value>> {
    let profile = deployment.profile;
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": namespace, "labels": { "app.kubernetes.io/managed-by": "flowerbed" } },
    })];

    // Secrets: each file the model mounts, under its purpose's Secret.
    let mut secrets: BTreeMap<String, BTreeMap<&'static str, &str>> = BTreeMap::new();
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
            secrets.entry(secret.clone()).or_default().insert(file.name, text);
        }
    }
    for (secret, data) in &secrets {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(deployment, namespace, secret),
            "type": "Opaque",
            "stringData": data,
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
) -> Vec<Value> {
    let mut objects = Vec::new();
    let ports = superlink_ports(profile);
    objects.push(service_object(deployment, namespace, "superlink", &ports, false));
    let container = Container {
        name: "superlink",
        service: superlink,
        args: superlink.args(),
        env: Vec::new(),
        ports: ports.clone(),
    };
    let mut spec = json!({
        "serviceName": "superlink",
        "replicas": 1,
        "selector": { "matchLabels": selector(deployment, "superlink") },
        "template": pod_template(deployment, "superlink", &[container]),
    });
    if superlink.mounts.iter().any(|m| m.purpose == MountPurpose::State) {
        spec["volumeClaimTemplates"] = json!([{
            "metadata": { "name": "state" },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": STATE_STORAGE } },
            },
        }]);
    }
    objects.push(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(deployment, namespace, "superlink"),
        "spec": spec,
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
        objects.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(deployment, namespace, &runner.name),
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": selector(deployment, &runner.name) },
                "template": pod_template(deployment, &runner.name, &[container]),
            },
        }));
    }

    if deployment.role == DeploymentRole::Superlink {
        let name = "superlink-public";
        let fleet = profile.fleet_port();
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(deployment, namespace, name),
            "spec": {
                "type": "LoadBalancer",
                "selector": selector(deployment, "superlink"),
                "ports": [{ "name": format!("fleet-{fleet}"), "port": fleet, "targetPort": fleet, "protocol": "TCP" }],
            },
        }));
    }
    objects
}
