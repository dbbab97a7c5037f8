//! Flower release profiles: which executables, flags and ports a release has.
//!
//! Every flag the model renders for a profile was read off that release's own `--help`
//! (and parser source where help is silent); the per-profile integration tests start each
//! rendered component in a venv of that release to keep it so.

use std::sync::OnceLock;

use serde::Serialize;

pub use crate::auth::SupernodeAuth;

/// The eras in which Flower's deployment command lines differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generation {
    /// 1.13: ServerAppIo 9091, Fleet 9092, Exec 9093; process mode runs standalone
    /// `flwr-serverapp` / `flwr-clientapp` containers; the supernode's ClientAppIo is
    /// `--clientappio-api-address`.
    Seed,
    /// 1.21: process mode moved to `flower-superexec --plugin-type ... --appio-api-address`;
    /// 9093 became the Control API; the superexec only speaks plain HTTP (`--insecure`).
    AppIo,
    /// 1.35: the Runtime API moved to `--host`/`--port` (8000 on the superlink, 9094 on the
    /// supernode) with its own `--appio-ssl-*` TLS flags; Fleet stays on 9092 and Control on
    /// 9093; runtime dependency installation appears.
    HostPort,
    /// 1.41 and later: one superlink port (8000) serves Fleet, Control and Runtime under the
    /// `--ssl-*` flags; the superexec takes only `--runtime-api-address`.
    Runtime,
}

/// One supported Flower release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub version: &'static str,
    pub generation: Generation,
}

/// Supported releases, oldest first; the last one is the default. This table is the one
/// source of the supported releases: help text, defaults, the helper image, the Makefile's
/// pinned release and the tests' parameters all derive from it; the real-Flower tests'
/// per-release lists (`per_release!`) fail a guard test until they name every entry.
pub const PROFILES: [Profile; 5] = [
    Profile {
        version: "1.13.1",
        generation: Generation::Seed,
    },
    Profile {
        version: "1.21.0",
        generation: Generation::AppIo,
    },
    Profile {
        version: "1.35.0",
        generation: Generation::HostPort,
    },
    Profile {
        version: "1.41.0",
        generation: Generation::Runtime,
    },
    Profile {
        version: "1.42.0",
        generation: Generation::Runtime,
    },
];

/// The port of a component's gRPC health service (not published; probes run inside the
/// container, or from the kubelet).
pub const HEALTH_PORT: u16 = 9099;

/// How a component is probed for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthProbe {
    /// The gRPC health checking protocol on `port`, served once `flag` names an address.
    Grpc { flag: &'static str, port: u16 },
    /// A TCP connection to this port.
    Tcp(u16),
}

/// How a supernode's ClientAppIo (Runtime) API listen address is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppIoListen {
    /// `--clientappio-api-address 0.0.0.0:PORT` (1.13, 1.21).
    AddressFlag,
    /// `--host 0.0.0.0 --port PORT` (1.35+).
    HostAndPort,
}

/// A user Flower's images define in their `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageUser {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

/// The users of every Flower image (`app` is what the images run as).
const FLOWER_IMAGE_USERS: [ImageUser; 2] = [
    ImageUser {
        name: "root",
        uid: 0,
        gid: 0,
    },
    ImageUser {
        name: "app",
        uid: crate::FLOWER_UID,
        gid: crate::FLOWER_GID,
    },
];

/// The supernode's Runtime (ClientAppIo) API port, the same in every release.
pub const SUPERNODE_APPIO_PORT: u16 = 9094;

/// Environment variable that, in debug builds only, adds a copy of the newest profile
/// under the release it names: how the tests show that a new table entry is all a new
/// release needs for `--help`, the defaults and `render`.
pub const TEST_EXTRA_RELEASE_ENV: &str = "FLOWERBED_TEST_EXTRA_RELEASE";

impl Profile {
    /// Every supported release, oldest first: [`PROFILES`] (plus the test-only extra one).
    pub fn all() -> &'static [Profile] {
        static ALL: OnceLock<Vec<Profile>> = OnceLock::new();
        ALL.get_or_init(|| {
            let mut all = PROFILES.to_vec();
            let extra = std::env::var(TEST_EXTRA_RELEASE_ENV).ok();
            if let Some(version) = extra.filter(|v| cfg!(debug_assertions) && !v.is_empty()) {
                all.push(Profile {
                    version: Box::leak(version.into_boxed_str()),
                    ..PROFILES[PROFILES.len() - 1]
                });
            }
            all
        })
    }

    /// The newest supported release.
    pub fn newest() -> &'static Profile {
        Self::all().last().expect("at least one profile")
    }

    /// Look a release up by its exact version.
    pub fn find(version: &str) -> Option<&'static Profile> {
        Self::all().iter().find(|profile| profile.version == version)
    }

    /// Supported versions, comma separated, for error messages and help.
    pub fn supported_list() -> String {
        Self::all()
            .iter()
            .map(|p| p.version)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The image a helper container runs: this release's superlink image.
    pub fn helper_image(&self) -> String {
        format!("flwr/superlink:{}", self.version)
    }

    /// How the superlink shows it is ready: from 1.21 its gRPC health service
    /// (`--health-server-address`, plain text, off unless given); 1.13 has none, so its
    /// Fleet port accepting connections is the sign.
    pub fn superlink_health(&self) -> HealthProbe {
        match self.generation {
            Generation::Seed => HealthProbe::Tcp(self.fleet_port()),
            _ => HealthProbe::Grpc {
                flag: "--health-server-address",
                port: HEALTH_PORT,
            },
        }
    }

    /// Port the supernodes dial (Fleet API).
    pub fn fleet_port(&self) -> u16 {
        match self.generation {
            Generation::Runtime => 8000,
            _ => 9092,
        }
    }

    /// Port the `flwr` CLI dials (Exec API in 1.13, Control API later).
    pub fn control_port(&self) -> u16 {
        match self.generation {
            Generation::Runtime => 8000,
            _ => 9093,
        }
    }

    /// Port the ServerApp side dials on the superlink (ServerAppIo / Runtime API).
    pub fn serverapp_io_port(&self) -> u16 {
        match self.generation {
            Generation::Seed | Generation::AppIo => 9091,
            Generation::HostPort | Generation::Runtime => 8000,
        }
    }

    /// Whether process mode uses standalone `flwr-serverapp` / `flwr-clientapp` images
    /// (1.13) rather than `flower-superexec`.
    pub fn separate_app_images(&self) -> bool {
        self.generation == Generation::Seed
    }

    /// Whether the link a process-mode app runner dials (ServerAppIo/ClientAppIo in 1.13
    /// and 1.21, the Runtime API from 1.35) can be TLS at all: `flwr-serverapp` and
    /// `flwr-clientapp` 1.13 and `flower-superexec` 1.21 refuse to start without
    /// `--insecure` ("does not support TLS yet") and have no `--root-certificates`.
    pub fn app_io_can_be_tls(&self) -> bool {
        self.generation >= Generation::HostPort
    }

    /// The superlink flag that puts its ServerApp-side API (ServerAppIo / Runtime) under
    /// TLS: none before 1.35, `--appio-ssl-certfile` in 1.35 (the `--ssl-*` flags cover
    /// Fleet and Control only), `--ssl-certfile` from 1.41 on (one port for every API).
    pub fn superlink_app_io_tls_flag(&self) -> Option<&'static str> {
        match self.generation {
            Generation::Seed | Generation::AppIo => None,
            Generation::HostPort => Some("--appio-ssl-certfile"),
            Generation::Runtime => Some("--ssl-certfile"),
        }
    }

    /// The TLS flags (CA, certificate, key) of a supernode's own Runtime (ClientAppIo)
    /// server, the link its ClientApp runner dials. 1.13 and 1.21: none (`flower-supernode
    /// --help` has only the client-side `--root-certificates`); 1.35: `--appio-ssl-*`
    /// (`supercore/tls.py` wants all three or none); 1.41+: `--ssl-*`, with `--appio-ssl-*`
    /// left as hidden aliases that warn (`supernode/cli/flower_supernode.py`).
    pub fn supernode_runtime_tls_flags(&self) -> Option<[&'static str; 3]> {
        match self.generation {
            Generation::Seed | Generation::AppIo => None,
            Generation::HostPort => Some([
                "--appio-ssl-ca-certfile",
                "--appio-ssl-certfile",
                "--appio-ssl-keyfile",
            ]),
            Generation::Runtime => Some(["--ssl-ca-certfile", "--ssl-certfile", "--ssl-keyfile"]),
        }
    }

    /// Whether both ends of the supernode's Runtime link can be TLS: the server flags above
    /// and the runner's `--root-certificates` (`flower-superexec --help`, 1.35+).
    pub fn supernode_runtime_can_be_tls(&self) -> bool {
        self.app_io_can_be_tls() && self.supernode_runtime_tls_flags().is_some()
    }

    /// The flag naming the shared secret the superexecs sign their Runtime API calls with,
    /// the same on `flower-superlink`, `flower-supernode` and `flower-superexec`: 1.35+
    /// (`supercore/auth/superexec_secret.py`), absent before. Only process isolation uses
    /// it: in subprocess mode the superlink and supernode warn and ignore it.
    pub fn superexec_auth_secret_flag(&self) -> Option<&'static str> {
        (self.generation >= Generation::HostPort).then_some("--superexec-auth-secret-file")
    }

    /// How the release reads that secret: `Path.read_bytes()`, exact raw bytes (a trailing
    /// newline is part of the secret), an empty file refused (`load_superexec_auth_secret`).
    /// It is never deleted for the runners we render: 1.35's `flower_superexec.py` zeroes
    /// and unlinks it only for `--plugin-type serverapp-ephemeral`, 1.41+ never, so a
    /// read-only mount is enough.
    pub fn superexec_deletes_auth_secret(&self) -> bool {
        false
    }

    /// The supported release an image tag names (`1.13.1`, `1.21.0-py3.11-ubuntu24.04`),
    /// when it parses as a version with the major and minor of a supported release. Read
    /// through [`Profile::all`] like every other lookup, so `check` knows a test-only
    /// release's images too.
    pub fn from_image(image: &str) -> Option<&'static Profile> {
        let name = image.split('@').next().unwrap_or(image);
        let (repository, tag) = name.rsplit_once(':')?;
        if tag.contains('/') || repository.is_empty() {
            return None; // `registry:5000/flwr/superlink` has no tag
        }
        let version = semver::Version::parse(tag.split('-').next().unwrap_or(tag)).ok()?;
        Self::all().iter().rev().find(|profile| {
            semver::Version::parse(profile.version)
                .is_ok_and(|known| (known.major, known.minor) == (version.major, version.minor))
        })
    }

    /// The users this release's images define, for `user: app` and the like.
    pub fn image_users(&self) -> &'static [ImageUser] {
        &FLOWER_IMAGE_USERS
    }

    /// Folders a component of this release writes at run time besides its mounts: with a
    /// read-only root filesystem (hardening) each gets a scratch filesystem of its own.
    /// `$HOME/.flwr` holds installed apps and run files, `$HOME/.cache` and `$HOME/.config`
    /// what Python packages keep there, `/tmp` and `/var/tmp` temporary files. The same in
    /// every supported release; the e2e matrix runs each release hardened to keep it so.
    pub fn scratch_paths(&self) -> &'static [&'static str] {
        &["/app/.flwr", "/app/.cache", "/app/.config", "/tmp", "/var/tmp"]
    }

    /// Whether runtime installation of app dependencies exists (1.35+: on by default in the
    /// superlink, opt-in on supernodes and superexecs).
    pub fn has_runtime_dependency_installation(&self) -> bool {
        self.generation >= Generation::HostPort
    }

    /// How this release authenticates supernodes.
    pub fn supernode_auth(&self) -> SupernodeAuth {
        match self.generation {
            Generation::Seed => SupernodeAuth::KnownKeysWithSuperlinkPair,
            Generation::AppIo => SupernodeAuth::KnownKeys,
            Generation::HostPort | Generation::Runtime => SupernodeAuth::Registration,
        }
    }

    /// Whether the superlink must be told `--host 0.0.0.0`: 1.13/1.21 listen on every
    /// address by default; from 1.35 the Runtime API (and in 1.41+ every API) listens on
    /// 127.0.0.1 unless told otherwise, which other containers cannot reach. In 1.35 only a
    /// separate ServerApp container (`process`) needs the Runtime API.
    pub fn superlink_needs_host_flag(&self, process: bool) -> bool {
        match self.generation {
            Generation::Seed | Generation::AppIo => false,
            Generation::HostPort => process,
            Generation::Runtime => true,
        }
    }

    /// Whether the superlink's Runtime API has TLS flags of its own (`--appio-ssl-*`, 1.35);
    /// later releases serve it under the `--ssl-*` flags, earlier ones have no TLS there.
    pub fn has_appio_tls_flags(&self) -> bool {
        self.generation == Generation::HostPort
    }

    /// Whether the superlink's Runtime API speaks TLS when given certificates (1.35+);
    /// 1.21's superexec talks plain HTTP to it.
    pub fn runtime_api_has_tls(&self) -> bool {
        self.generation >= Generation::HostPort
    }

    /// Whether the superexec takes only `--runtime-api-address` (1.41+) rather than
    /// `--plugin-type` and `--appio-api-address`.
    pub fn superexec_takes_runtime_address(&self) -> bool {
        self.generation == Generation::Runtime
    }

    /// How a supernode's ClientAppIo API is told to listen beyond loopback.
    pub fn supernode_appio_listen(&self) -> AppIoListen {
        match self.generation {
            Generation::Seed | Generation::AppIo => AppIoListen::AddressFlag,
            Generation::HostPort | Generation::Runtime => AppIoListen::HostAndPort,
        }
    }

    /// Whether the `flwr` CLI reads connections from `~/.flwr/config.toml` (1.35+) rather
    /// than `[tool.flwr.federations]` in the app's `pyproject.toml`.
    pub fn uses_flwr_config_toml(&self) -> bool {
        self.generation >= Generation::HostPort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_is_default_and_lookup_is_exact() {
        assert_eq!(Profile::newest().version, "1.42.0");
        assert!(Profile::find("1.13.1").is_some());
        assert!(Profile::find("1.13").is_none());
        assert_eq!(
            Profile::supported_list(),
            "1.13.1, 1.21.0, 1.35.0, 1.41.0, 1.42.0"
        );
    }

    #[test]
    fn app_io_tls_and_image_tags_follow_the_release() {
        let tls: Vec<_> = PROFILES
            .iter()
            .map(|p| (p.version, p.app_io_can_be_tls(), p.superlink_app_io_tls_flag()))
            .collect();
        assert_eq!(
            tls,
            [
                ("1.13.1", false, None),
                ("1.21.0", false, None),
                ("1.35.0", true, Some("--appio-ssl-certfile")),
                ("1.41.0", true, Some("--ssl-certfile")),
                ("1.42.0", true, Some("--ssl-certfile")),
            ]
        );
        let version = |image: &str| Profile::from_image(image).map(|p| p.version);
        assert_eq!(version("flwr/superlink:1.13.1"), Some("1.13.1"));
        assert_eq!(version("flwr/serverapp:1.13.0"), Some("1.13.1"));
        assert_eq!(
            version("flwr/superexec:1.21.0-py3.11-ubuntu24.04"),
            Some("1.21.0")
        );
        assert_eq!(
            version("localhost:5000/flwr/superlink:1.42.0@sha256:ab"),
            Some("1.42.0")
        );
        assert_eq!(version("localhost:5000/flwr/superlink"), None);
        assert_eq!(version("flwr/superlink:latest"), None);
        assert_eq!(version("flwr/superlink:1.30.0"), None);
        assert_eq!(version("flwr/superlink"), None);
    }

    #[test]
    fn runtime_link_tls_and_superexec_secret_follow_the_release() {
        let facts: Vec<_> = PROFILES
            .iter()
            .map(|p| {
                (
                    p.version,
                    p.supernode_runtime_can_be_tls(),
                    p.supernode_runtime_tls_flags().map(|[_, cert, _]| cert),
                    p.superexec_auth_secret_flag(),
                    p.superexec_deletes_auth_secret(),
                )
            })
            .collect();
        let secret = Some("--superexec-auth-secret-file");
        assert_eq!(
            facts,
            [
                ("1.13.1", false, None, None, false),
                ("1.21.0", false, None, None, false),
                ("1.35.0", true, Some("--appio-ssl-certfile"), secret, false),
                ("1.41.0", true, Some("--ssl-certfile"), secret, false),
                ("1.42.0", true, Some("--ssl-certfile"), secret, false),
            ]
        );
        // The supernode's server flags are one family: CA, certificate, key.
        for profile in PROFILES {
            if let Some(flags) = profile.supernode_runtime_tls_flags() {
                let prefix = flags[1].trim_end_matches("certfile");
                assert_eq!(
                    flags,
                    [
                        format!("{prefix}ca-certfile").as_str(),
                        flags[1],
                        format!("{prefix}keyfile").as_str()
                    ]
                );
            }
        }
    }

    #[test]
    fn ports_follow_the_release() {
        let seed = Profile::find("1.13.1").unwrap();
        assert_eq!(
            (seed.fleet_port(), seed.control_port(), seed.serverapp_io_port()),
            (9092, 9093, 9091)
        );
        let mid = Profile::find("1.35.0").unwrap();
        assert_eq!(
            (mid.fleet_port(), mid.control_port(), mid.serverapp_io_port()),
            (9092, 9093, 8000)
        );
        let new = Profile::newest();
        assert_eq!(
            (new.fleet_port(), new.control_port(), new.serverapp_io_port()),
            (8000, 8000, 8000)
        );
    }
}
