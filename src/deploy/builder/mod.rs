//! Builds the deployment model from [`Settings`] and a [`Profile`]: every flag and mount
//! is spelled out here, once; every choice that depends on the release asks the profile.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::auth;
use crate::superexec_auth;
use crate::tls::{Layout, LayoutKind, layout};

use super::address::Address;
use super::component::Component;

use super::model::{
    CERT_MOUNT, CONTAINER_WORKDIR, Connection, DATABASE_PATH, Deployment, Dial, Flag, Hardening, HealthCheck,
    Identity, Mount, MountPurpose, NODE_CONFIG_FLAG, PROJECT_LABEL, Port, RESTART_POLICY, RUNTIME_CERT_MOUNT,
    Role, SERVICE_LABEL, Service, SourceKind, node_config,
};
use super::profile::{AppIoListen, HealthProbe, Profile, SUPERNODE_APPIO_PORT};
use super::settings::{
    DEFAULT_MEMORY_LIMIT, DEFAULT_MILLICPUS, DEFAULT_PIDS_LIMIT, DeploymentRole, Isolation, STATE_DIR,
    Security, Settings,
};

mod app_images;
mod supernode_auth;

struct Builder<'a> {
    settings: &'a Settings,
    profile: &'static Profile,
    layout: Layout,
}

/// Build the deployment for validated `settings`.
pub fn build(settings: &Settings, profile: &'static Profile) -> Deployment {
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
    let app = builder.app_images(&mut services);
    let connection = services
        .iter()
        .find(|service| service.role == Role::Superlink)
        .map(|superlink| builder.connection(superlink));
    Deployment {
        dir: settings.dir.clone(),
        project: settings.project_name.clone(),
        network: settings.project_name.clone(),
        profile,
        superlink_isolation: settings.superlink_isolation,
        supernode_isolation: settings.supernode_isolation,
        security: settings.security,
        user: builder.user(),
        state: settings.state && settings.role.has_superlink(),
        supernode_auth: settings.supernode_auth.then(|| profile.supernode_auth()),
        role: settings.role,
        public_addresses: settings.public_addresses.clone(),
        superlink_address: settings
            .role
            .has_supernodes()
            .then(|| builder.superlink_address()),
        services,
        connection,
        app,
        hardening: builder.hardening(),
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
    /// The app API it dials.
    address: Address,
    runtime_tls: bool,
    /// The link's superexec secret folder, when the link uses one.
    secret: Option<PathBuf>,
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

fn runtime_cert_path(file: &str) -> String {
    format!("{RUNTIME_CERT_MOUNT}/{file}")
}

impl Builder<'_> {
    fn tls(&self) -> bool {
        self.settings.security == Security::Tls
    }

    /// The superexec secret folder of the superlink's link (`None`) or supernode `index`'s,
    /// when that side runs its apps in process isolation on a release with the flag. Part
    /// of a TLS deployment: `--insecure` deployments stay the plain debugging setup.
    fn superexec_secret(&self, supernode: Option<u32>) -> Option<PathBuf> {
        let isolation = match supernode {
            None => self.settings.superlink_isolation,
            Some(_) => self.settings.supernode_isolation,
        };
        // Each host makes the secrets of its own links: none crosses hosts.
        (self.tls() && isolation == Isolation::Process && self.profile.superexec_auth_secret_flag().is_some())
            .then(|| superexec_auth::secret_dir(&self.settings.dir, supernode))
    }

    /// Whether supernode `index`'s Runtime API gets a server certificate of its own: TLS,
    /// process isolation (a runner dials it across the network) and a release that can.
    /// The deployment's CA issues it; a supernode-only folder (no CA key on its host) has
    /// a Runtime CA of its own, which its runners trust instead.
    fn supernode_runtime_tls(&self) -> bool {
        self.tls()
            && self.settings.supernode_isolation == Isolation::Process
            && self.profile.supernode_runtime_can_be_tls()
    }

    /// Mount a link's secret folder and name its file with the release's flag.
    fn use_superexec_secret(&self, service: &mut Service, dir: PathBuf) {
        let Some(flag_name) = self.profile.superexec_auth_secret_flag() else {
            return;
        };
        service.flags.push(valued(
            flag_name,
            format!("{}/{}", superexec_auth::SECRET_MOUNT, superexec_auth::SECRET),
        ));
        // Read-only: no release deletes the file for the runners we render.
        let mut mount = self.mount(
            MountPurpose::SuperexecAuthSecret,
            dir,
            superexec_auth::SECRET_MOUNT,
            SourceKind::Directory,
        );
        mount.read_only = !self.profile.superexec_deletes_auth_secret();
        service.mounts.push(mount);
    }

    fn hardening(&self) -> Option<Hardening> {
        (!self.settings.no_harden).then(|| Hardening {
            scratch: self.profile.scratch_paths(),
            memory_bytes: self.settings.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT),
            pids: self.settings.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
            millicpus: self.settings.millicpus.unwrap_or(DEFAULT_MILLICPUS),
        })
    }

    fn user(&self) -> Identity {
        Identity {
            uid: self.settings.uid,
            gid: self.settings.gid,
        }
    }

    /// Across hosts the supernodes dial the superlink's public address; on one host, its
    /// service name on the shared network. Either way with the port filled in.
    fn superlink_address(&self) -> Address {
        let fleet = self.profile.fleet_port();
        match &self.settings.superlink_address {
            Some(address) if self.settings.role == DeploymentRole::Supernode => address.with_port(fleet),
            _ => Address::service("superlink", fleet),
        }
    }

    fn image(&self, component: Component) -> String {
        format!(
            "{}/{}:{}",
            self.settings.image_repo,
            component.name(),
            self.settings.tag()
        )
    }

    fn service(&self, name: String, role: Role, component: Component, program: &'static str) -> Service {
        let labels = BTreeMap::from([
            (PROJECT_LABEL.to_string(), self.settings.project_name.clone()),
            (SERVICE_LABEL.to_string(), name.clone()),
        ]);
        Service {
            name,
            role,
            component,
            image: self.image(component),
            program,
            flags: Vec::new(),
            user: self.user(),
            mounts: Vec::new(),
            ports: Vec::new(),
            environment: BTreeMap::new(),
            labels,
            restart: RESTART_POLICY,
            depends_on: Vec::new(),
            health: None,
            dials: None,
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
        self.cert_mounts(
            MountPurpose::ServerCertificates,
            || self.layout.superlink_dir(),
            || {
                vec![
                    (self.layout.superlink_ca_cert(), layout::CA_CERT),
                    (self.layout.server_cert(), layout::SERVER_CERT),
                    (self.layout.server_key(), layout::SERVER_KEY),
                ]
            },
        )
    }

    /// The CA certificate, for everything that dials the superlink over TLS.
    fn ca_mounts(&self) -> Vec<Mount> {
        self.cert_mounts(
            MountPurpose::CaCertificate,
            || self.layout.supernode_dir(),
            || vec![(self.layout.supernode_ca_cert(), layout::CA_CERT)],
        )
    }

    /// Certificate mounts at the container's certificate folder: the split layout's folder
    /// (`split_dir`) as a whole, or in the flat layout each file of `flat_files` (source,
    /// name in the container).
    fn cert_mounts(
        &self,
        purpose: MountPurpose,
        split_dir: impl FnOnce() -> PathBuf,
        flat_files: impl FnOnce() -> Vec<(PathBuf, &'static str)>,
    ) -> Vec<Mount> {
        match self.layout.kind {
            LayoutKind::Split => vec![self.mount(purpose, split_dir(), CERT_MOUNT, SourceKind::Directory)],
            LayoutKind::Flat => flat_files()
                .into_iter()
                .map(|(source, file)| self.mount(purpose, source, &cert_path(file), SourceKind::File))
                .collect(),
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
        let process = self.settings.superlink_isolation == Isolation::Process;
        let mut service = self.service(
            "superlink".into(),
            Role::Superlink,
            Component::Superlink,
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
        if let Some(dir) = self.superexec_secret(None) {
            self.use_superexec_secret(&mut service, dir);
        }
        service
            .flags
            .push(valued("--isolation", self.settings.superlink_isolation.name()));
        if self.profile.superlink_needs_host_flag(process) {
            service.flags.push(valued("--host", "0.0.0.0"));
        }
        // 1.35's Runtime API has its own TLS flags; off, a separate ServerApp container
        // would talk to it in plain text across the network.
        if self.profile.has_appio_tls_flags() && process && self.tls() {
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
        let probe = self.profile.superlink_health();
        if let HealthProbe::Grpc { flag, port } = probe {
            service.flags.push(valued(flag, Address::any(port).to_string()));
        }
        service.health = Some(HealthCheck { probe });
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
            address: Address::service("superlink", self.profile.serverapp_io_port()),
            // The Runtime API speaks TLS from 1.35 on when we give it certificates (always
            // in 1.41+, with the `--appio-ssl-*` flags in 1.35); 1.21's superexec has no TLS.
            runtime_tls: self.tls() && self.profile.runtime_api_has_tls(),
            secret: self.superexec_secret(None),
            component: "superlink".into(),
        })
    }

    /// A process-isolation runner: `flwr-serverapp`/`flwr-clientapp` in their own images
    /// (1.13), else a superexec, dialing its component's app API.
    fn app_runner(&self, runner: AppRunner) -> Service {
        let mut service = if self.profile.separate_app_images() {
            let (component, program, address_flag) = match runner.app {
                "serverapp" => (
                    Component::Serverapp,
                    "flwr-serverapp",
                    "--serverappio-api-address",
                ),
                _ => (
                    Component::Clientapp,
                    "flwr-clientapp",
                    "--clientappio-api-address",
                ),
            };
            let mut service = self.service(runner.separate_name, runner.role, component, program);
            Self::dial_app_api(&mut service, address_flag, runner.address);
            // 1.13's app APIs have no TLS; the apps refuse to start without this.
            service.flags.push(flag("--insecure"));
            service
        } else {
            let mut service = self.service(
                runner.superexec_name,
                runner.role,
                Component::Superexec,
                "flower-superexec",
            );
            let own_runtime_ca = matches!(runner.role, Role::ClientAppRunner(_))
                && self.settings.role == DeploymentRole::Supernode;
            let trusted = runner.runtime_tls.then(|| {
                if own_runtime_ca {
                    vec![self.mount(
                        MountPurpose::RuntimeCaCertificate,
                        self.layout.runner_ca_dir(),
                        CERT_MOUNT,
                        SourceKind::Directory,
                    )]
                } else {
                    self.ca_mounts()
                }
            });
            Self::dial_trusting(&mut service, trusted);
            if self.profile.superexec_takes_runtime_address() {
                Self::dial_app_api(&mut service, "--runtime-api-address", runner.address);
            } else {
                service.flags.push(valued("--plugin-type", runner.app));
                Self::dial_app_api(&mut service, "--appio-api-address", runner.address);
            }
            if let Some(dir) = runner.secret {
                self.use_superexec_secret(&mut service, dir);
            }
            self.allow_dependency_install(&mut service);
            service
        };
        service.depends_on.push(runner.component);
        service
    }

    /// How a client of a Flower API dials it: trusting the deployment's CA (its
    /// certificate mounted), or in plain text.
    fn dial(&self, service: &mut Service, tls: bool) {
        Self::dial_trusting(service, tls.then(|| self.ca_mounts()));
    }

    /// [`Self::dial`] with the mounts that carry the CA to trust (`None`: plain text).
    fn dial_trusting(service: &mut Service, ca_mounts: Option<Vec<Mount>>) {
        match ca_mounts {
            Some(mounts) => {
                service
                    .flags
                    .push(valued("--root-certificates", cert_path(layout::CA_CERT)));
                service.mounts.extend(mounts);
            }
            None => service.flags.push(flag("--insecure")),
        }
    }

    fn supernode(&self, index: u32) -> Service {
        let mut service = self.service(
            format!("supernode-{index}"),
            Role::Supernode(index),
            Component::Supernode,
            "flower-supernode",
        );
        service
            .flags
            .push(valued("--superlink", self.superlink_address().to_string()));
        self.dial(&mut service, self.tls());
        self.supernode_auth(&mut service, index);
        if let Some(dir) = self.superexec_secret(Some(index)) {
            self.use_superexec_secret(&mut service, dir);
        }
        service
            .flags
            .push(valued("--isolation", self.settings.supernode_isolation.name()));
        // In process mode a ClientApp container dials this supernode's Runtime API, so it must
        // listen beyond loopback (1.35+ default to 127.0.0.1; earlier releases to 0.0.0.0,
        // stated here anyway because another container depends on it).
        if self.settings.supernode_isolation == Isolation::Process {
            match self.profile.supernode_appio_listen() {
                AppIoListen::AddressFlag => service.flags.push(valued(
                    "--clientappio-api-address",
                    Address::any(SUPERNODE_APPIO_PORT).to_string(),
                )),
                AppIoListen::HostAndPort => {
                    service.flags.push(valued("--host", "0.0.0.0"));
                    service
                        .flags
                        .push(valued("--port", SUPERNODE_APPIO_PORT.to_string()));
                }
            }
        }
        if let Some([ca, cert, key]) = self
            .profile
            .supernode_runtime_tls_flags()
            .filter(|_| self.supernode_runtime_tls())
        {
            service.flags.extend([
                valued(ca, runtime_cert_path(layout::CA_CERT)),
                valued(cert, runtime_cert_path(layout::SERVER_CERT)),
                valued(key, runtime_cert_path(layout::SERVER_KEY)),
            ]);
            service.mounts.push(self.mount(
                MountPurpose::RuntimeServerCertificates,
                self.layout.supernode_runtime_dir(index),
                RUNTIME_CERT_MOUNT,
                SourceKind::Directory,
            ));
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

    /// The runner dials `address` with `flag`, recorded as a fact beside the flag.
    fn dial_app_api(service: &mut Service, flag: &'static str, address: Address) {
        service.flags.push(valued(flag, address.to_string()));
        service.dials = Some(Dial { flag, address });
    }

    fn clientapp_runner(&self, index: u32) -> Service {
        let supernode = format!("supernode-{index}");
        self.app_runner(AppRunner {
            role: Role::ClientAppRunner(index),
            app: "clientapp",
            separate_name: format!("clientapp-{index}"),
            superexec_name: format!("superexec-clientapp-{index}"),
            address: Address::service(&supernode, SUPERNODE_APPIO_PORT),
            // TLS when the supernode got a Runtime API server certificate of its own.
            runtime_tls: self.supernode_runtime_tls(),
            secret: self.superexec_secret(Some(index)),
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
            address: Address::ip(host, control),
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
