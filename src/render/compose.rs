//! `compose.yaml` (Compose specification, no obsolete `version:` key), serialized by
//! serde-saphyr from the model.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::deploy::{AppImages, Deployment, Hardening, HealthCheck, Service};

use super::text;

#[derive(Serialize)]
struct ComposeFile<'a> {
    name: &'a str,
    services: Services<'a>,
    networks: BTreeMap<&'static str, Network<'a>>,
}

/// Services in the model's order (superlink first), which a map type would lose; with a
/// base folder, mount sources below it are written relative to the compose file.
struct Services<'a> {
    deployment: &'a Deployment,
    base: Option<&'a Path>,
}

impl Serialize for Services<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let services = &self.deployment.services;
        let mut map = serializer.serialize_map(Some(services.len()))?;
        for service in services {
            let mut entry = ComposeService::new(service, self.base);
            entry.build =
                (self.deployment.app.as_ref()).and_then(|app| ComposeBuild::new(app, service, self.base));
            if let Some(hardening) = &self.deployment.hardening {
                entry.harden(hardening, service);
            }
            // What dials a service with a health check starts once that check passes.
            for name in &service.depends_on {
                let healthy = self
                    .deployment
                    .service(name)
                    .is_some_and(|dependency| dependency.health.is_some());
                let condition = if healthy {
                    "service_healthy"
                } else {
                    "service_started"
                };
                entry.depends_on.insert(name, Dependency { condition });
            }
            map.serialize_entry(&service.name, &entry)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct Network<'a> {
    name: &'a str,
}

/// Compose interpolates `$VAR` in every value; `$$` is its literal dollar sign.
pub(crate) fn literal(text: &str) -> Cow<'_, str> {
    if text.contains('$') {
        Cow::Owned(text.replace('$', "$$"))
    } else {
        Cow::Borrowed(text)
    }
}

pub(crate) fn literal_map(map: &BTreeMap<String, String>) -> BTreeMap<&str, Cow<'_, str>> {
    map.iter()
        .map(|(key, value)| (key.as_str(), literal(value)))
        .collect()
}

#[derive(Serialize)]
struct ComposeService<'a> {
    image: &'a str,
    /// With `--app`: how Compose builds the image (`docker compose build`, or `up` when
    /// the image is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    build: Option<ComposeBuild<'a>>,
    command: Vec<Cow<'a, str>>,
    user: String,
    restart: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    depends_on: BTreeMap<&'a str, Dependency>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<ComposePort>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<ComposeVolume<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<&'a str, Cow<'a, str>>,
    labels: BTreeMap<&'a str, Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<ComposeHealth>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cap_drop: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    security_opt: Vec<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pids_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpus: Option<String>,
}

#[derive(Serialize)]
struct Dependency {
    condition: &'static str,
}

/// A `healthcheck:` (the same in Swarm's stack files).
#[derive(Serialize)]
pub(crate) struct ComposeHealth {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: String,
}

impl ComposeHealth {
    pub(crate) fn new(health: &HealthCheck) -> Self {
        let seconds = |n: u32| format!("{n}s");
        let mut test = vec!["CMD".to_string()];
        test.extend(health.command().iter().map(|word| literal(word).into_owned()));
        Self {
            test,
            interval: seconds(HealthCheck::INTERVAL_SECONDS),
            timeout: seconds(HealthCheck::TIMEOUT_SECONDS),
            retries: HealthCheck::RETRIES,
            start_period: seconds(HealthCheck::START_PERIOD_SECONDS),
        }
    }
}

#[derive(Serialize)]
struct ComposeBuild<'a> {
    context: Cow<'a, str>,
    /// Relative to the context.
    dockerfile: Cow<'a, str>,
}

impl<'a> ComposeBuild<'a> {
    fn new(app: &'a AppImages, service: &Service, base: Option<&Path>) -> Option<Self> {
        let image = app.for_service(service)?;
        let dockerfile = image
            .dockerfile
            .strip_prefix(&app.context)
            .unwrap_or(&image.dockerfile)
            .to_str()
            .unwrap_or_default();
        let context = match base.filter(|base| *base == app.context) {
            Some(_) => Cow::Borrowed("."),
            None => source_text(&app.context, base),
        };
        Some(Self {
            context: Cow::Owned(literal(&context).into_owned()),
            dockerfile: Cow::Owned(literal(dockerfile).into_owned()),
        })
    }
}

#[derive(Serialize)]
struct ComposePort {
    target: u16,
    published: String,
    host_ip: String,
    protocol: &'static str,
}

#[derive(Serialize)]
struct ComposeVolume<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: Cow<'a, str>,
    target: Cow<'a, str>,
    read_only: bool,
    bind: BindOptions,
}

#[derive(Serialize)]
struct BindOptions {
    /// Fail instead of creating a missing source as a root-owned folder.
    create_host_path: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    selinux: Option<&'static str>,
}

/// A mount source as written: absolute, or `./PATH` below `base` (Compose resolves that
/// against the compose file's folder).
fn source_text<'a>(source: &'a Path, base: Option<&Path>) -> Cow<'a, str> {
    // Paths were checked to be UTF-8 when the settings were validated.
    match base.and_then(|base| source.strip_prefix(base).ok()) {
        Some(relative) => Cow::Owned(format!("./{}", relative.to_str().unwrap_or_default())),
        None => Cow::Borrowed(source.to_str().unwrap_or_default()),
    }
}

impl<'a> ComposeService<'a> {
    fn new(service: &'a Service, base: Option<&Path>) -> Self {
        Self {
            image: &service.image,
            build: None,
            command: service
                .flags
                .iter()
                .flat_map(|flag| std::iter::once(flag.name).chain(flag.value.as_deref()))
                .map(literal)
                .collect(),
            user: service.user.to_string(),
            restart: service.restart,
            depends_on: BTreeMap::new(),
            ports: service
                .ports
                .iter()
                .map(|port| ComposePort {
                    target: port.target,
                    published: port.published.to_string(),
                    host_ip: port.host_ip.to_string(),
                    protocol: "tcp",
                })
                .collect(),
            volumes: service
                .mounts
                .iter()
                .map(|mount| ComposeVolume {
                    kind: "bind",
                    source: Cow::Owned(literal(&source_text(&mount.source, base)).into_owned()),
                    target: literal(&mount.target),
                    read_only: mount.read_only,
                    bind: BindOptions {
                        create_host_path: false,
                        selinux: mount.selinux_relabel.then_some("z"),
                    },
                })
                .collect(),
            environment: literal_map(&service.environment),
            labels: literal_map(&service.labels),
            healthcheck: service.health.as_ref().map(ComposeHealth::new),
            cap_drop: Vec::new(),
            security_opt: Vec::new(),
            read_only: false,
            tmpfs: Vec::new(),
            mem_limit: None,
            pids_limit: None,
            cpus: None,
        }
    }

    /// Lock the container down as `hardening` says.
    fn harden(&mut self, hardening: &Hardening, service: &Service) {
        let options = Hardening::tmpfs_options(service.user);
        self.cap_drop = vec![Hardening::CAP_DROP];
        self.security_opt = vec![Hardening::NO_NEW_PRIVILEGES];
        self.read_only = true;
        self.tmpfs = (hardening.scratch.iter())
            .map(|path| format!("{path}:{options}"))
            .collect();
        self.mem_limit = Some(hardening.memory_text(false));
        self.pids_limit = Some(hardening.pids);
        self.cpus = Some(hardening.cpus_text());
    }
}

/// `render compose`: `compose.yaml`.
pub const FORMAT: super::Format = super::Format {
    name: "compose",
    about: Some("A compose.yaml for `docker compose`"),
    file_name: |_| "compose.yaml",
    mode: super::public,
    in_folder: super::always,
    render: |deployment, _| render(deployment),
};

/// The whole `compose.yaml`: a comment header, then the serialized model.
pub fn render(deployment: &Deployment) -> Result<String> {
    render_with_base(deployment, None)
}

/// `compose.yaml` for a folder that moves (a bundle): mount sources inside the deployment
/// folder are relative to the compose file.
pub fn render_relocatable(deployment: &Deployment) -> Result<String> {
    render_with_base(deployment, Some(&deployment.dir))
}

fn render_with_base(deployment: &Deployment, base: Option<&Path>) -> Result<String> {
    let file = ComposeFile {
        name: &deployment.project,
        services: Services { deployment, base },
        networks: BTreeMap::from([(
            "default",
            Network {
                name: &deployment.network,
            },
        )]),
    };
    // Plain or quoted scalars only: folded block scalars would make long paths hard to read.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let body =
        serde_saphyr::to_string_with_options(&file, options).context("cannot serialize the compose file")?;
    let mut out = text::compose_header(deployment, base.is_some())?;
    out.push_str(&body);
    Ok(out)
}
