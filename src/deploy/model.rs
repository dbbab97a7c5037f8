//! The deployment model: services with their image, flags, mounts, ports and identity.
//!
//! Built once from [`Settings`] and a [`Profile`]; the renderers and `check` read it, so a
//! flag or mount is spelled out in exactly one place (this file).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::auth;
use crate::tls::{Layout, LayoutKind, layout};

use super::address::Address;
use super::profile::{Generation, Profile, SUPERNODE_APPIO_PORT, SupernodeAuth};
use super::settings::{DeploymentRole, Isolation, STATE_DIR, Security, Settings};

/// The container's working directory in Flower's images; relative flag paths start here.
pub const CONTAINER_WORKDIR: &str = "/app";
/// Where certificates are mounted, relative to the working directory (as Flower's docs do).
pub const CERT_MOUNT: &str = "certificates";
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
    pub flower_version: &'static str,
    pub generation: Generation,
    pub superlink_isolation: Isolation,
    pub supernode_isolation: Isolation,
    pub security: Security,
    /// Which side of the federation runs here.
    pub role: DeploymentRole,
    /// Role superlink: the addresses supernodes on other hosts dial.
    pub public_addresses: Vec<Address>,
    pub services: Vec<Service>,
    /// How the `flwr` CLI on the host reaches the superlink; `None` without a superlink.
    pub connection: Option<Connection>,
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
    pub image: String,
    /// The executable the image's entrypoint runs; `flags` are its arguments.
    pub program: &'static str,
    pub flags: Vec<Flag>,
    /// `UID:GID` the container runs as.
    pub user: String,
    pub mounts: Vec<Mount>,
    pub ports: Vec<Port>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub restart: &'static str,
    pub depends_on: Vec<String>,
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
    pub address: String,
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

    /// The UID and GID the containers run as.
    pub fn container_ids(&self) -> (u32, u32) {
        self.services
            .first()
            .and_then(|service| service.user.split_once(':'))
            .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)))
            .unwrap_or((crate::FLOWER_UID, crate::FLOWER_GID))
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

struct Builder<'a> {
    settings: &'a Settings,
    profile: &'a Profile,
    layout: Layout,
}

/// Build the deployment for validated `settings`.
pub fn build(settings: &Settings, profile: &Profile) -> Deployment {
    let builder = Builder {
        settings,
        profile,
        layout: Layout::new(&settings.dir, LayoutKind::from(settings.cert_layout)),
    };
    let mut services = Vec::new();
    if settings.role.has_superlink() {
        services.push(builder.superlink());
        if settings.superlink_isolation == Isolation::Process {
            services.push(builder.serverapp_runner());
        }
    }
    if settings.role.has_supernodes() {
        for index in 1..=settings.supernodes {
            services.push(builder.supernode(index));
            if settings.supernode_isolation == Isolation::Process {
                services.push(builder.clientapp_runner(index));
            }
        }
    }
    let connection = services
        .iter()
        .find(|service| service.role == Role::Superlink)
        .map(|superlink| builder.connection(superlink));
    Deployment {
        dir: settings.dir.clone(),
        project: settings.project_name.clone(),
        network: settings.project_name.clone(),
        flower_version: profile.version,
        generation: profile.generation,
        superlink_isolation: settings.superlink_isolation,
        supernode_isolation: settings.supernode_isolation,
        security: settings.security,
        role: settings.role,
        public_addresses: settings.public_addresses.clone(),
        services,
        connection,
    }
}

/// What [`Builder::app_runner`] needs to know about one runner.
struct AppRunner {
    role: Role,
    /// `serverapp` or `clientapp`: the image and flags of 1.13, the plugin type after.
    app: &'static str,
    /// The service name with separate app images (1.13), and with a superexec.
    separate_name: String,
    superexec_name: String,
    /// The app API it dials (`host:port`).
    address: String,
    runtime_tls: bool,
    /// The service it dials, started first.
    component: String,
}

fn flag(name: &'static str) -> Flag {
    Flag { name, value: None }
}

fn valued(name: &'static str, value: impl Into<String>) -> Flag {
    Flag {
        name,
        value: Some(value.into()),
    }
}

fn cert_path(file: &str) -> String {
    format!("{CERT_MOUNT}/{file}")
}

fn auth_path(file: &str) -> String {
    format!("{}/{file}", auth::AUTH_MOUNT)
}

impl Builder<'_> {
    fn tls(&self) -> bool {
        self.settings.security == Security::Tls
    }

    fn image(&self, component: &str) -> String {
        format!("{}/{component}:{}", self.settings.image_repo, self.settings.tag())
    }

    fn service(&self, name: String, role: Role, component: &str, program: &'static str) -> Service {
        let labels = BTreeMap::from([
            (PROJECT_LABEL.to_string(), self.settings.project_name.clone()),
            (SERVICE_LABEL.to_string(), name.clone()),
        ]);
        Service {
            name,
            role,
            image: self.image(component),
            program,
            flags: Vec::new(),
            user: format!("{}:{}", self.settings.uid, self.settings.gid),
            mounts: Vec::new(),
            ports: Vec::new(),
            environment: BTreeMap::new(),
            labels,
            restart: RESTART_POLICY,
            depends_on: Vec::new(),
        }
    }

    fn mount(&self, purpose: MountPurpose, source: PathBuf, target: &str, kind: SourceKind) -> Mount {
        Mount {
            purpose,
            read_only: purpose != MountPurpose::State,
            source,
            target: format!("{CONTAINER_WORKDIR}/{target}"),
            kind,
            selinux_relabel: self.settings.selinux,
        }
    }

    /// The superlink's certificates: the split layout's folder holds only what the
    /// superlink needs; in the flat layout the CA key sits beside them, so mount files.
    fn superlink_cert_mounts(&self) -> Vec<Mount> {
        match self.layout.kind {
            LayoutKind::Split => vec![self.mount(
                MountPurpose::ServerCertificates,
                self.layout.superlink_dir(),
                CERT_MOUNT,
                SourceKind::Directory,
            )],
            LayoutKind::Flat => [
                (self.layout.superlink_ca_cert(), layout::CA_CERT),
                (self.layout.server_cert(), layout::SERVER_CERT),
                (self.layout.server_key(), layout::SERVER_KEY),
            ]
            .into_iter()
            .map(|(source, file)| {
                self.mount(
                    MountPurpose::ServerCertificates,
                    source,
                    &cert_path(file),
                    SourceKind::File,
                )
            })
            .collect(),
        }
    }

    /// The CA certificate, for everything that dials the superlink over TLS.
    fn ca_mounts(&self) -> Vec<Mount> {
        match self.layout.kind {
            LayoutKind::Split => vec![self.mount(
                MountPurpose::CaCertificate,
                self.layout.supernode_dir(),
                CERT_MOUNT,
                SourceKind::Directory,
            )],
            LayoutKind::Flat => vec![self.mount(
                MountPurpose::CaCertificate,
                self.layout.supernode_ca_cert(),
                &cert_path(layout::CA_CERT),
                SourceKind::File,
            )],
        }
    }

    fn server_tls_flags(ca: &'static str, cert: &'static str, key: &'static str) -> [Flag; 3] {
        [
            valued(ca, cert_path(layout::CA_CERT)),
            valued(cert, cert_path(layout::SERVER_CERT)),
            valued(key, cert_path(layout::SERVER_KEY)),
        ]
    }

    fn superlink(&self) -> Service {
        let generation = self.profile.generation;
        let process = self.settings.superlink_isolation == Isolation::Process;
        let mut service = self.service(
            "superlink".into(),
            Role::Superlink,
            "superlink",
            "flower-superlink",
        );
        if self.tls() {
            service.flags.extend(Self::server_tls_flags(
                "--ssl-ca-certfile",
                "--ssl-certfile",
                "--ssl-keyfile",
            ));
            service.mounts.extend(self.superlink_cert_mounts());
        } else {
            service.flags.push(flag("--insecure"));
        }
        self.superlink_auth(&mut service);
        service
            .flags
            .push(valued("--isolation", self.settings.superlink_isolation.name()));
        // 1.13/1.21 listen on 0.0.0.0 by default. From 1.35 the Runtime API (and in 1.41+
        // every API) listens on 127.0.0.1 unless told otherwise, which other containers
        // cannot reach.
        let listen_everywhere = match generation {
            Generation::Seed | Generation::AppIo => false,
            Generation::HostPort => process,
            Generation::Runtime => true,
        };
        if listen_everywhere {
            service.flags.push(valued("--host", "0.0.0.0"));
        }
        // 1.35's Runtime API has its own TLS flags; off, a separate ServerApp container
        // would talk to it in plain text across the network.
        if generation == Generation::HostPort && process && self.tls() {
            service.flags.extend(Self::server_tls_flags(
                "--appio-ssl-ca-certfile",
                "--appio-ssl-certfile",
                "--appio-ssl-keyfile",
            ));
        }
        if self.settings.state {
            service.flags.push(valued("--database", DATABASE_PATH));
            service.mounts.push(self.mount(
                MountPurpose::State,
                self.settings.dir.join(STATE_DIR),
                STATE_DIR,
                SourceKind::Directory,
            ));
        }
        // On by default in the superlink from 1.35 on; it needs the internet at run time.
        if self.profile.has_runtime_dependency_installation() && !self.settings.install_app_dependencies {
            service
                .flags
                .push(flag("--disable-runtime-dependency-installation"));
        }
        let control = self.profile.control_port();
        let fleet = self.profile.fleet_port();
        if self.settings.role == DeploymentRole::Superlink {
            // Supernodes on other hosts dial the Fleet port: publish it on every address
            // of this host. When the flwr CLI shares that port (1.41+) it is the same entry.
            let everywhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            if fleet != control {
                service.ports.push(Port {
                    host_ip: self.settings.publish_address,
                    published: control,
                    target: control,
                });
            }
            service.ports.push(Port {
                host_ip: everywhere,
                published: fleet,
                target: fleet,
            });
        } else {
            service.ports.push(Port {
                host_ip: self.settings.publish_address,
                published: control,
                target: control,
            });
        }
        service
    }

    /// The superlink's side of supernode authentication, per release.
    fn superlink_auth(&self, service: &mut Service) {
        if !self.settings.supernode_auth {
            return;
        }
        let purpose = match self.profile.supernode_auth() {
            SupernodeAuth::Registration => {
                service.flags.push(flag("--enable-supernode-auth"));
                return;
            }
            SupernodeAuth::KnownKeys => MountPurpose::KnownSupernodeKeys,
            SupernodeAuth::KnownKeysWithSuperlinkPair => MountPurpose::SuperlinkAuthKeys,
        };
        service
            .flags
            .push(valued("--auth-list-public-keys", auth_path(auth::KNOWN_KEYS)));
        if purpose == MountPurpose::SuperlinkAuthKeys {
            service.flags.push(valued(
                "--auth-superlink-private-key",
                auth_path(auth::SUPERLINK_PRIVATE_KEY),
            ));
            service.flags.push(valued(
                "--auth-superlink-public-key",
                auth_path(auth::SUPERLINK_PUBLIC_KEY),
            ));
        }
        service.mounts.push(self.mount(
            purpose,
            auth::superlink_dir(&self.settings.dir),
            auth::AUTH_MOUNT,
            SourceKind::Directory,
        ));
    }

    /// Supernode `index`'s key pair, mounted into it alone; 1.35+ derive the public key.
    fn supernode_auth(&self, service: &mut Service, index: u32) {
        if !self.settings.supernode_auth {
            return;
        }
        service.flags.push(valued(
            "--auth-supernode-private-key",
            auth_path(auth::PRIVATE_KEY),
        ));
        if self.profile.supernode_auth() != SupernodeAuth::Registration {
            service
                .flags
                .push(valued("--auth-supernode-public-key", auth_path(auth::PUBLIC_KEY)));
        }
        service.mounts.push(self.mount(
            MountPurpose::SupernodeAuthKey,
            auth::supernode_dir(&self.settings.dir, index),
            auth::AUTH_MOUNT,
            SourceKind::Directory,
        ));
    }

    fn allow_dependency_install(&self, service: &mut Service) {
        if self.profile.has_runtime_dependency_installation() && self.settings.install_app_dependencies {
            service
                .flags
                .push(flag("--allow-runtime-dependency-installation"));
        }
    }

    fn serverapp_runner(&self) -> Service {
        self.app_runner(AppRunner {
            role: Role::ServerAppRunner,
            app: "serverapp",
            separate_name: "serverapp".into(),
            superexec_name: "superexec-serverapp".into(),
            address: format!("superlink:{}", self.profile.serverapp_io_port()),
            // The Runtime API speaks TLS from 1.35 on when we give it certificates (always
            // in 1.41+, with the `--appio-ssl-*` flags in 1.35); 1.21's superexec has no TLS.
            runtime_tls: self.tls() && self.profile.generation >= Generation::HostPort,
            component: "superlink".into(),
        })
    }

    /// A process-isolation runner: `flwr-serverapp`/`flwr-clientapp` in their own images
    /// (1.13), else a superexec, dialing its component's app API.
    fn app_runner(&self, runner: AppRunner) -> Service {
        let mut service = if self.profile.separate_app_images() {
            let (component, program, address_flag) = match runner.app {
                "serverapp" => ("serverapp", "flwr-serverapp", "--serverappio-api-address"),
                _ => ("clientapp", "flwr-clientapp", "--clientappio-api-address"),
            };
            let mut service = self.service(runner.separate_name, runner.role, component, program);
            service.flags.push(valued(address_flag, runner.address));
            // 1.13's app APIs have no TLS; the apps refuse to start without this.
            service.flags.push(flag("--insecure"));
            service
        } else {
            let mut service = self.service(
                runner.superexec_name,
                runner.role,
                "superexec",
                "flower-superexec",
            );
            if runner.runtime_tls {
                service
                    .flags
                    .push(valued("--root-certificates", cert_path(layout::CA_CERT)));
                service.mounts.extend(self.ca_mounts());
            } else {
                service.flags.push(flag("--insecure"));
            }
            if self.profile.generation == Generation::Runtime {
                service
                    .flags
                    .push(valued("--runtime-api-address", runner.address));
            } else {
                service.flags.push(valued("--plugin-type", runner.app));
                service.flags.push(valued("--appio-api-address", runner.address));
            }
            self.allow_dependency_install(&mut service);
            service
        };
        service.depends_on.push(runner.component);
        service
    }

    fn supernode(&self, index: u32) -> Service {
        let generation = self.profile.generation;
        let mut service = self.service(
            format!("supernode-{index}"),
            Role::Supernode(index),
            "supernode",
            "flower-supernode",
        );
        let fleet = self.profile.fleet_port();
        // Across hosts the supernodes dial the superlink's public address; on one host,
        // its service name on the shared network.
        let superlink = match &self.settings.superlink_address {
            Some(address) if self.settings.role == DeploymentRole::Supernode => address.dial(fleet),
            _ => format!("superlink:{fleet}"),
        };
        service.flags.push(valued("--superlink", superlink));
        if self.tls() {
            service
                .flags
                .push(valued("--root-certificates", cert_path(layout::CA_CERT)));
            service.mounts.extend(self.ca_mounts());
        } else {
            service.flags.push(flag("--insecure"));
        }
        self.supernode_auth(&mut service, index);
        service
            .flags
            .push(valued("--isolation", self.settings.supernode_isolation.name()));
        // In process mode a ClientApp container dials this supernode's Runtime API, so it must
        // listen beyond loopback (1.35+ default to 127.0.0.1; earlier releases to 0.0.0.0,
        // stated here anyway because another container depends on it).
        if self.settings.supernode_isolation == Isolation::Process {
            match generation {
                Generation::Seed | Generation::AppIo => service.flags.push(valued(
                    "--clientappio-api-address",
                    format!("0.0.0.0:{SUPERNODE_APPIO_PORT}"),
                )),
                Generation::HostPort | Generation::Runtime => {
                    service.flags.push(valued("--host", "0.0.0.0"));
                    service
                        .flags
                        .push(valued("--port", SUPERNODE_APPIO_PORT.to_string()));
                }
            }
        }
        service.flags.push(valued(
            NODE_CONFIG_FLAG,
            node_config(index - 1, self.settings.supernodes),
        ));
        self.allow_dependency_install(&mut service);
        if self.settings.role.has_superlink() {
            service.depends_on.push("superlink".into());
        }
        service
    }

    fn clientapp_runner(&self, index: u32) -> Service {
        let supernode = format!("supernode-{index}");
        self.app_runner(AppRunner {
            role: Role::ClientAppRunner(index),
            app: "clientapp",
            separate_name: format!("clientapp-{index}"),
            superexec_name: format!("superexec-clientapp-{index}"),
            address: format!("{supernode}:{SUPERNODE_APPIO_PORT}"),
            // The supernode's Runtime API stays plain HTTP: it gets no server certificate.
            runtime_tls: false,
            component: supernode,
        })
    }

    fn connection(&self, superlink: &Service) -> Connection {
        let control = self.profile.control_port();
        let published = superlink
            .ports
            .iter()
            .find(|port| port.target == control)
            .map_or(self.settings.publish_address, |port| port.host_ip);
        // A wildcard publish address is dialled on loopback, which our certificates cover.
        let host = match published {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Connection {
            name: self.settings.project_name.clone(),
            address: SocketAddr::new(host, control).to_string(),
            root_certificates: self.tls().then(|| ca_for_cli(&self.layout)),
            config_toml: self.profile.uses_flwr_config_toml(),
        }
    }
}

/// The CA the host's `flwr` CLI trusts: the copy beside the supernodes' mount, readable by
/// the user even after the superlink's folder is handed to UID 49999.
fn ca_for_cli(layout: &Layout) -> PathBuf {
    layout.supernode_ca_cert()
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
            MountPurpose::CaCertificate => &[layout::CA_CERT],
            MountPurpose::SupernodeAuthKey => &[auth::PRIVATE_KEY, auth::PUBLIC_KEY],
            MountPurpose::KnownSupernodeKeys => &[auth::KNOWN_KEYS],
            MountPurpose::SuperlinkAuthKeys => &[
                auth::KNOWN_KEYS,
                auth::SUPERLINK_PRIVATE_KEY,
                auth::SUPERLINK_PUBLIC_KEY,
            ],
            MountPurpose::State => return None,
        };
        let file = |name: &'static str, source: PathBuf, target: String| MountedFile {
            private: [layout::SERVER_KEY, auth::PRIVATE_KEY, auth::SUPERLINK_PRIVATE_KEY].contains(&name),
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
