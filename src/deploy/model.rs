//! The deployment model: services with their image, flags, mounts, ports and identity,
//! and the deployment-wide facts (release, identity, TLS, state, authentication, the
//! address the supernodes dial) typed, so readers never search argument lists for them.
//!
//! Built once by the builder (`deploy/builder/`); the renderers and `check` read it, so a flag or mount
//! is spelled out in exactly one place (the builder).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::auth;
use crate::superexec_auth;
use crate::tls::layout;

use super::address::Address;
use super::component::Component;
use super::profile::{HealthProbe, Profile, SupernodeAuth};
use super::settings::{DeploymentRole, Isolation, Security};

/// The container's working directory in Flower's images; relative flag paths start here.
pub const CONTAINER_WORKDIR: &str = "/app";
/// Where certificates are mounted, relative to the working directory (as Flower's docs do).
pub const CERT_MOUNT: &str = "certificates";
/// Where a supernode finds its own Runtime API server certificate.
pub const RUNTIME_CERT_MOUNT: &str = "runtime-certificates";
/// The superlink's database with `--state`, relative to the working directory.
pub const DATABASE_PATH: &str = "state/state.db";
/// Restart policy of every service: come back after a crash or a daemon restart.
pub const RESTART_POLICY: &str = "unless-stopped";
/// Label every container carries, naming its project (for `check --live`).
pub const PROJECT_LABEL: &str = "org.flowerbed.project";
/// Label naming the service within the project.
pub const SERVICE_LABEL: &str = "org.flowerbed.service";

/// A whole deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// The deployment folder (absolute): certificates, state, rendered files.
    pub dir: PathBuf,
    pub project: String,
    /// The Docker network every service joins (service names resolve on it).
    pub network: String,
    /// The Flower release: every release-dependent choice is one of its methods.
    pub profile: &'static Profile,
    pub superlink_isolation: Isolation,
    pub supernode_isolation: Isolation,
    pub security: Security,
    /// Who every container runs as.
    pub user: Identity,
    /// The superlink keeps its database in the deployment folder's `state/`.
    pub state: bool,
    /// Supernodes authenticate with key pairs of their own, by this release's scheme.
    pub supernode_auth: Option<SupernodeAuth>,
    /// Which side of the federation runs here.
    pub role: DeploymentRole,
    /// Role superlink: the addresses supernodes on other hosts dial.
    pub public_addresses: Vec<Address>,
    /// The superlink address the supernodes dial, port included (`superlink:PORT` on one
    /// host, the public address across hosts); `None` without supernodes.
    pub superlink_address: Option<Address>,
    pub services: Vec<Service>,
    /// How the `flwr` CLI on the host reaches the superlink; `None` without a superlink.
    pub connection: Option<Connection>,
    /// With `--app`: the images built for the user's app, which the services that run its
    /// code use instead of Flower's.
    pub app: Option<AppImages>,
    /// How every container is locked down; `None` with `--no-harden`.
    pub hardening: Option<Hardening>,
}

/// The images of the user's app: one per Flower component that runs app code here.
#[derive(Debug, Clone, Serialize)]
pub struct AppImages {
    /// The app's project folder (absolute), whose `pyproject.toml` lists the dependencies.
    pub project: PathBuf,
    /// The build context: the deployment folder (its `.dockerignore` lets only the wheel
    /// folder through).
    pub context: PathBuf,
    /// Registry the images are pushed to, for orchestrators that pull.
    pub registry: Option<String>,
    pub images: Vec<AppImage>,
}

/// One app image: `FROM` the image the component would run, plus the app's dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppImage {
    /// The Flower component (`superexec`, `supernode`, ...), the Dockerfile's name.
    pub component: &'static str,
    /// The image it is built on: what the deployment would run without `--app`.
    pub base: String,
    /// `[REGISTRY/]PROJECT/COMPONENT-app:TAG`.
    pub image: String,
    /// Absolute path of its Dockerfile.
    pub dockerfile: PathBuf,
}

impl AppImages {
    /// The app image a service runs, if it runs one.
    pub fn for_service(&self, service: &Service) -> Option<&AppImage> {
        self.images.iter().find(|image| image.image == service.image)
    }
}

/// A numeric `UID:GID`, as containers run and files are owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// Flower's images' user `app`.
    pub const FLOWER: Identity = Identity {
        uid: crate::FLOWER_UID,
        gid: crate::FLOWER_GID,
    };
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// How every container is locked down, as Flower's own Helm chart does: all capabilities
/// dropped, no privilege escalation, a read-only root filesystem with scratch folders for
/// what Flower writes, and memory and process limits. `None` with `--no-harden`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardening {
    /// Container paths that get a writable scratch filesystem (tmpfs, `emptyDir`) owned by
    /// the container user; from the release's profile.
    pub scratch: &'static [&'static str],
    /// Memory limit of each container, in bytes.
    pub memory_bytes: u64,
    /// Process (and thread) limit of each container.
    pub pids: u32,
    /// CPU limit of each container, in thousandths of a CPU.
    pub millicpus: u32,
}

impl Hardening {
    /// Docker's `--security-opt` that keeps setuid programs from gaining privileges.
    pub const NO_NEW_PRIVILEGES: &'static str = "no-new-privileges:true";
    /// What `--cap-drop` drops: every capability (Flower needs none).
    pub const CAP_DROP: &'static str = "ALL";

    /// The CPU limit as Docker and Kubernetes both read it (`2`, `0.5`).
    pub fn cpus_text(&self) -> String {
        let whole = self.millicpus / 1000;
        match self.millicpus % 1000 {
            0 => whole.to_string(),
            part => format!("{whole}.{part:03}").trim_end_matches('0').to_string(),
        }
    }

    /// Docker's tmpfs options for a scratch folder: owned by the container user, private
    /// to it (Docker adds `noexec,nosuid,nodev`).
    pub fn tmpfs_options(user: Identity) -> String {
        format!("uid={},gid={},mode=0700", user.uid, user.gid)
    }

    /// The memory limit in the largest binary unit that states it exactly, as Docker
    /// spells it (`4g`, `512m`, `1000`); Kubernetes wants `Gi`/`Mi`/`Ki`.
    pub fn memory_text(&self, kubernetes: bool) -> String {
        let units: [(u64, &str, &str); 3] =
            [(1 << 30, "g", "Gi"), (1 << 20, "m", "Mi"), (1 << 10, "k", "Ki")];
        for (size, docker, kube) in units {
            if self.memory_bytes % size == 0 {
                let unit = if kubernetes { kube } else { docker };
                return format!("{}{unit}", self.memory_bytes / size);
            }
        }
        self.memory_bytes.to_string()
    }
}

/// How a service is probed for readiness, so what dials it starts once it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub probe: HealthProbe,
}

/// Asks a gRPC health service (`HOST:PORT`, the argument) whether it is serving; exit 0
/// when it is. Python and grpc are in every Flower image that has the service.
const GRPC_HEALTH_SCRIPT: &str = "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
r = g.HealthStub(grpc.insecure_channel(sys.argv[1])).Check(h.HealthCheckRequest(), timeout=4); \
sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)";
/// Connects to `HOST:PORT` (the argument); exit 0 when the port accepts.
const TCP_SCRIPT: &str = "import socket, sys; host, port = sys.argv[1].rsplit(':', 1); socket.create_connection((host, int(port)), 4).close()";

impl HealthCheck {
    /// Seconds between probes (each starts a Python process in the container, so not
    /// often). Compose's `start_interval` would probe faster while starting, but Compose
    /// refuses it on engines before Docker 25 (Debian's docker.io among them).
    pub const INTERVAL_SECONDS: u32 = 5;
    pub const TIMEOUT_SECONDS: u32 = 5;
    pub const RETRIES: u32 = 3;
    /// How long a start may take before failed probes count.
    pub const START_PERIOD_SECONDS: u32 = 60;

    /// The probe as a command run inside the container (exec form).
    pub fn command(&self) -> Vec<String> {
        let (script, port) = match self.probe {
            HealthProbe::Grpc { port, .. } => (GRPC_HEALTH_SCRIPT, port),
            HealthProbe::Tcp(port) => (TCP_SCRIPT, port),
        };
        vec![
            "python".into(),
            "-c".into(),
            script.into(),
            format!("127.0.0.1:{port}"),
        ]
    }
}

/// What a service does in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "index")]
pub enum Role {
    Superlink,
    /// Runs ServerApps for the superlink in process isolation.
    ServerAppRunner,
    /// Supernode number N (from 1).
    Supernode(u32),
    /// Runs ClientApps for supernode N in process isolation.
    ClientAppRunner(u32),
}

/// One container.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Compose service name, network alias and DNS name (`superlink`, `supernode-1`, ...).
    pub name: String,
    pub role: Role,
    /// The Flower component it runs, whatever image carries it (an app image too).
    pub component: Component,
    pub image: String,
    /// The executable the image's entrypoint runs; `flags` are its arguments.
    pub program: &'static str,
    pub flags: Vec<Flag>,
    /// Who the container runs as.
    pub user: Identity,
    pub mounts: Vec<Mount>,
    pub ports: Vec<Port>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub restart: &'static str,
    pub depends_on: Vec<String>,
    /// How to tell it is ready; the services that depend on it start after that.
    pub health: Option<HealthCheck>,
    /// For an app runner: the app API it dials, and the flag that names it.
    pub dials: Option<Dial>,
}

/// The app API an app runner dials: a renderer that puts the runner beside its component
/// (one Kubernetes pod) changes the host here, not in the flag's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dial {
    pub flag: &'static str,
    pub address: Address,
}

/// One command-line flag and its value, if it takes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub name: &'static str,
    pub value: Option<String>,
}

/// Whether a bind mount's source is a file or a folder (Docker creates a missing source as
/// a root-owned folder, so both are checked before rendering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    File,
    Directory,
}

/// What a bind mount carries, so consumers (`check`, the ownership hint) need not guess
/// from paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountPurpose {
    /// The superlink's CA certificate, server certificate and private key.
    ServerCertificates,
    /// Only the CA certificate, for whatever dials the superlink over TLS.
    CaCertificate,
    /// The superlink's database folder: the container user must be able to write it.
    State,
    /// One supernode's authentication key pair: mounted into that supernode only.
    SupernodeAuthKey,
    /// The supernodes' public keys for `--auth-list-public-keys` (1.21).
    KnownSupernodeKeys,
    /// The supernodes' public keys and the superlink's own key pair (1.13).
    SuperlinkAuthKeys,
    /// A supernode's own Runtime API server certificate and key, and the CA beside them.
    RuntimeServerCertificates,
    /// The CA certificate a ClientApp runner trusts for its supernode's Runtime API, where
    /// that is not the deployment's CA (a supernode-only folder's own Runtime CA).
    RuntimeCaCertificate,
    /// The secret a superexec and the component it dials share (`--superexec-auth-secret-file`).
    SuperexecAuthSecret,
}

impl MountPurpose {
    /// Whether the container user must own the source: it holds a private key (mode 0600)
    /// or must be written.
    pub fn needs_container_owner(self) -> bool {
        matches!(
            self,
            MountPurpose::ServerCertificates
                | MountPurpose::State
                | MountPurpose::SupernodeAuthKey
                | MountPurpose::SuperlinkAuthKeys
                | MountPurpose::RuntimeServerCertificates
                | MountPurpose::SuperexecAuthSecret
        )
    }
}

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub purpose: MountPurpose,
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute container path.
    pub target: String,
    pub kind: SourceKind,
    pub read_only: bool,
    /// Relabel for SELinux (`:z`, shared between containers).
    pub selinux_relabel: bool,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub host_ip: IpAddr,
    pub published: u16,
    pub target: u16,
}

/// The `flwr` CLI's view of the deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// Connection (or federation) name: the project name, which has no dots.
    pub name: String,
    /// `HOST:PORT` the CLI dials.
    pub address: Address,
    /// Absolute path of the CA the CLI trusts, or `None` for `insecure = true`.
    pub root_certificates: Option<PathBuf>,
    /// `[superlink.NAME]` in `~/.flwr/config.toml` (1.35+), else the app's `pyproject.toml`.
    pub config_toml: bool,
}

impl Deployment {
    /// Host folders the container user must own (private keys, state), each once.
    pub fn owned_paths(&self) -> Vec<&std::path::Path> {
        let mut paths: Vec<&std::path::Path> = Vec::new();
        for mount in self.services.iter().flat_map(|service| &service.mounts) {
            if mount.purpose.needs_container_owner() && !paths.contains(&mount.source.as_path()) {
                paths.push(&mount.source);
            }
        }
        paths
    }

    /// The Flower release's version.
    pub fn flower_version(&self) -> &'static str {
        self.profile.version
    }

    pub fn tls(&self) -> bool {
        self.security == Security::Tls
    }

    /// The superlink reads the supernodes' public keys from a folder (1.13, 1.21).
    pub fn reads_known_keys(&self) -> bool {
        self.role.has_superlink()
            && matches!(
                self.supernode_auth,
                Some(SupernodeAuth::KnownKeys | SupernodeAuth::KnownKeysWithSuperlinkPair)
            )
    }

    /// The superlink has a key pair of its own (1.13).
    pub fn has_superlink_pair(&self) -> bool {
        self.role.has_superlink() && self.supernode_auth == Some(SupernodeAuth::KnownKeysWithSuperlinkPair)
    }

    /// Whether the folder needs material made on its own host: its runner links' material,
    /// or a supernode's authentication key (none of which a bundle carries).
    pub fn needs_host_material(&self) -> bool {
        self.needs_runner_material() || self.has_mount(MountPurpose::SupernodeAuthKey)
    }

    /// Whether a runner link has a secret or a supernode a Runtime API certificate.
    pub fn needs_runner_material(&self) -> bool {
        self.has_mount(MountPurpose::RuntimeServerCertificates)
            || self.has_mount(MountPurpose::SuperexecAuthSecret)
    }

    fn has_mount(&self, purpose: MountPurpose) -> bool {
        self.services
            .iter()
            .flat_map(|service| &service.mounts)
            .any(|mount| mount.purpose == purpose)
    }

    /// The supernodes' keys are registered through the Control API (1.35+).
    pub fn registers_supernodes(&self) -> bool {
        self.role.has_superlink() && self.supernode_auth == Some(SupernodeAuth::Registration)
    }

    /// Supernodes here carry their own key pair.
    pub fn supernodes_authenticate(&self) -> bool {
        self.role.has_supernodes() && self.supernode_auth.is_some()
    }
}

impl Service {
    /// The container's arguments after the image (the entrypoint's argv).
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(self.flags.len() * 2);
        for flag in &self.flags {
            args.push(flag.name.to_string());
            if let Some(value) = &flag.value {
                args.push(value.clone());
            }
        }
        args
    }

    /// The value of `name`, if this service passes that flag.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|flag| flag.name == name)
    }

    /// Container name used by the `docker run` script.
    pub fn container_name(&self, project: &str) -> String {
        format!("{project}-{}", self.name)
    }
}

impl Deployment {
    /// The images the deployment pulls: Flower's (or the mirror's), and the bases of the
    /// app images it builds itself, not those; each once, in service order.
    pub fn pulled_images(&self) -> Vec<&str> {
        let mut images: Vec<&str> = Vec::new();
        for service in &self.services {
            let image = match self.app.as_ref().and_then(|app| app.for_service(service)) {
                Some(built) => built.base.as_str(),
                None => service.image.as_str(),
            };
            if !images.contains(&image) {
                images.push(image);
            }
        }
        images
    }

    /// Name each image found in `pinned` (image → `NAME:TAG@sha256:...`) by its digest:
    /// the services' and the app images' bases.
    pub fn pin_images(&mut self, pinned: &BTreeMap<String, String>) {
        let images = self.services.iter_mut().map(|service| &mut service.image);
        let bases = self
            .app
            .iter_mut()
            .flat_map(|app| app.images.iter_mut().map(|image| &mut image.base));
        for image in images.chain(bases) {
            if let Some(reference) = pinned.get(image.as_str()) {
                image.clone_from(reference);
            }
        }
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.name == name)
    }

    /// Every mount source that is missing or of the wrong kind, with what it should be.
    pub fn missing_sources(&self) -> Vec<(&Mount, &Service)> {
        let mut missing = Vec::new();
        for service in &self.services {
            for mount in &service.mounts {
                let ok = match mount.kind {
                    SourceKind::File => mount.source.is_file(),
                    SourceKind::Directory => mount.source.is_dir(),
                };
                if !ok
                    && !missing
                        .iter()
                        .any(|(m, _): &(&Mount, &Service)| m.source == mount.source)
                {
                    missing.push((mount, service));
                }
            }
        }
        missing
    }
}

/// The supernode flag that carries its data partition.
pub const NODE_CONFIG_FLAG: &str = "--node-config";

/// The `--node-config` value of the supernode reading partition `partition_id` of
/// `partitions`. Orchestrators that number replicas themselves (a Kubernetes pod index)
/// pass a placeholder as `partition_id`.
pub fn node_config(partition_id: impl std::fmt::Display, partitions: u32) -> String {
    format!("partition-id={partition_id} num-partitions={partitions}")
}

/// One file a mount carries into the container: what orchestrators that ship files
/// rather than bind-mount folders (Swarm secrets, Kubernetes Secrets) need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedFile {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute container path (what the service's flags name, from the working directory).
    pub target: String,
    /// The file's name inside the mount (`server.key`), a key for Secrets.
    pub name: &'static str,
    /// A private key: readable by the container user only.
    pub private: bool,
}

impl Mount {
    /// The files this mount carries: a folder mount of certificates carries exactly the
    /// files its purpose needs (never the CA key); a file mount carries itself. `None` for
    /// the state folder, whose content the container writes.
    pub fn files(&self) -> Option<Vec<MountedFile>> {
        let names: &[&'static str] = match self.purpose {
            MountPurpose::ServerCertificates => &[layout::CA_CERT, layout::SERVER_CERT, layout::SERVER_KEY],
            MountPurpose::CaCertificate | MountPurpose::RuntimeCaCertificate => &[layout::CA_CERT],
            MountPurpose::SupernodeAuthKey => &[auth::PRIVATE_KEY, auth::PUBLIC_KEY],
            MountPurpose::KnownSupernodeKeys => &[auth::KNOWN_KEYS],
            MountPurpose::SuperlinkAuthKeys => &[
                auth::KNOWN_KEYS,
                auth::SUPERLINK_PRIVATE_KEY,
                auth::SUPERLINK_PUBLIC_KEY,
            ],
            MountPurpose::RuntimeServerCertificates => {
                &[layout::CA_CERT, layout::SERVER_CERT, layout::SERVER_KEY]
            }
            MountPurpose::SuperexecAuthSecret => &[superexec_auth::SECRET],
            MountPurpose::State => return None,
        };
        let file = |name: &'static str, source: PathBuf, target: String| MountedFile {
            private: [
                layout::SERVER_KEY,
                auth::PRIVATE_KEY,
                auth::SUPERLINK_PRIVATE_KEY,
                superexec_auth::SECRET,
            ]
            .contains(&name),
            name,
            source,
            target,
        };
        Some(match self.kind {
            SourceKind::Directory => names
                .iter()
                .map(|name| file(name, self.source.join(name), format!("{}/{name}", self.target)))
                .collect(),
            SourceKind::File => {
                let name = names
                    .iter()
                    .copied()
                    .find(|name| self.target.ends_with(&format!("/{name}")))
                    .unwrap_or(layout::CA_CERT);
                vec![file(name, self.source.clone(), self.target.clone())]
            }
        })
    }
}

/// The host path of a mount source relative to the deployment folder, for messages.
pub fn relative_to<'a>(path: &'a Path, dir: &Path) -> &'a Path {
    path.strip_prefix(dir).unwrap_or(path)
}
