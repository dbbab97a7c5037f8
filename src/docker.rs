//! The only async code in flowerbed: a small wrapper over bollard.
//!
//! Callers stay synchronous: [`block_on`] runs one future on a current-thread runtime.
//! What is here is meant to grow (daemon facts for `doctor`, live inspection for
//! `check --live`): connecting honours `DOCKER_HOST`, the API version is negotiated with
//! the daemon, and every error names the daemon address so the user knows what to fix.

use std::future::Future;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;

/// Where bollard connects when `DOCKER_HOST` is unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How long to wait for the daemon to answer its first request.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// The daemon address in use, for messages.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string())
}

/// Whether a daemon could plausibly be reached without trying (no socket, no DOCKER_HOST:
/// do not wait on a connection that cannot succeed).
pub fn daemon_configured() -> bool {
    std::env::var_os("DOCKER_HOST").is_some_and(|h| !h.is_empty())
        || Path::new(DEFAULT_DOCKER_HOST.trim_start_matches("unix://")).exists()
}

/// What the daemon says about itself that flowerbed cares about.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DaemonFacts {
    pub server_version: Option<String>,
    /// Rootless Docker: containers run in the daemon user's subordinate ID range.
    pub rootless: bool,
    /// userns-remap: containers run in the remap user's subordinate ID range.
    pub userns_remap: bool,
    pub docker_root_dir: Option<String>,
}

impl DaemonFacts {
    /// Read the facts out of the daemon's `security_options` (`name=rootless`, `name=userns`).
    pub fn from_security_options(options: &[String]) -> Self {
        let has = |wanted: &str| {
            options
                .iter()
                .any(|opt| opt.split(',').any(|field| field == format!("name={wanted}")))
        };
        Self {
            rootless: has("rootless"),
            userns_remap: has("userns"),
            ..Self::default()
        }
    }
}

/// A connected, version-negotiated daemon.
pub struct Daemon {
    docker: Docker,
    host: String,
}

/// A short-lived helper container: one command, user 0, selected bind mounts, no network.
#[derive(Debug, Clone)]
pub struct HelperSpec {
    pub image: String,
    /// Command and arguments (the first is the program inside the container).
    pub command: Vec<String>,
    /// `(host path, container path, read_only)`.
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    pub env: Vec<String>,
}

/// What the helper printed and how it ended.
#[derive(Debug, Clone)]
pub struct HelperRun {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Daemon {
    /// Connect (honouring `DOCKER_HOST`) and negotiate the API version.
    pub async fn connect() -> Result<Self> {
        Self::connect_to(docker_host()).await
    }

    /// Connect to the daemon at `host` (`unix://`, `tcp://`, `http://`).
    pub async fn connect_to(host: String) -> Result<Self> {
        let unreachable = |err: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "cannot reach the Docker daemon at {host} (DOCKER_HOST): {err}; start dockerd or point DOCKER_HOST at its socket"
            )
        };
        let docker = Docker::connect_with_host(&host).map_err(|e| unreachable(&e))?;
        // A tcp:// address that swallows packets would otherwise hold us for minutes.
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(&format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(&e))?;
        Ok(Self { docker, host })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn facts(&self) -> Result<DaemonFacts> {
        let info = self
            .docker
            .info()
            .await
            .with_context(|| format!("{}: docker info failed", self.host))?;
        let mut facts =
            DaemonFacts::from_security_options(info.security_options.as_deref().unwrap_or_default());
        facts.server_version = info.server_version;
        facts.docker_root_dir = info.docker_root_dir;
        Ok(facts)
    }

    /// Whether `image` is already on the machine (helpers never pull).
    pub async fn has_image(&self, image: &str) -> bool {
        self.docker.inspect_image(image).await.is_ok()
    }

    /// `image` pinned to the registry digest the daemon recorded for its repository
    /// (`NAME:TAG@sha256:...`), if it has the image and one: an image pulled from or pushed
    /// to a registry has one, an image built or imported here has none.
    pub async fn pinned_reference(&self, image: &str) -> Option<String> {
        let details = self.docker.inspect_image(image).await.ok()?;
        let repository = repository_of(image);
        let digest = details
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|entry| {
                let (name, digest) = entry.split_once('@')?;
                (name == repository).then(|| digest.to_string())
            })?;
        Some(format!("{image}@{digest}"))
    }

    /// Create, start and wait for a helper container, then collect its output and remove it.
    pub async fn run_helper(&self, spec: &HelperSpec) -> Result<HelperRun> {
        if !self.has_image(&spec.image).await {
            bail!(
                "{} {}: not present on the Docker daemon at {} (helpers are never pulled; `docker pull` or build it first)",
                crate::hints::flag::HELPER_IMAGE,
                spec.image,
                self.host
            );
        }
        let binds = spec
            .binds
            .iter()
            .map(|(host, container, read_only)| {
                format!(
                    "{}:{}{}",
                    host.display(),
                    container.display(),
                    if *read_only { ":ro" } else { "" }
                )
            })
            .collect();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: Some(spec.command[..1].to_vec()),
            cmd: Some(spec.command[1..].to_vec()),
            user: Some("0:0".into()),
            env: Some(spec.env.clone()),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some("none".into()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker
            .create_container(Some(CreateContainerOptions::default()), body)
            .await
            .with_context(|| format!("{}: cannot create the helper container", self.host))?;
        let result = self.start_wait_collect(&created.id).await;
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = self.docker.remove_container(&created.id, Some(remove)).await;
        result
    }

    async fn start_wait_collect(&self, id: &str) -> Result<HelperRun> {
        self.docker
            .start_container(id, None)
            .await
            .with_context(|| format!("{}: cannot start the helper container", self.host))?;
        let mut exit_code = -1;
        let mut waits = self
            .docker
            .wait_container(id, Some(WaitContainerOptions::default()));
        while let Some(event) = waits.next().await {
            match event {
                Ok(done) => exit_code = done.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => exit_code = code,
                Err(err) => return Err(err).context("waiting for the helper container"),
            }
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let options = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let mut logs = self.docker.logs(id, Some(options));
        while let Some(chunk) = logs.next().await {
            match chunk.context("reading the helper's output")? {
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message);
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(HelperRun {
            exit_code,
            stdout,
            stderr,
        })
    }
}

/// Name each image `deployment` pulls by the registry digest the local daemon has for it
/// (`--image-digest`). Returns the images left with their tag (the daemon has no digest
/// for them), or `None` when no daemon answers and nothing was pinned.
pub fn pin_images(deployment: &mut crate::deploy::Deployment) -> Option<Vec<String>> {
    if !daemon_configured() {
        return None;
    }
    let images: Vec<String> = deployment
        .pulled_images()
        .into_iter()
        .map(str::to_string)
        .collect();
    let pinned = block_on(async {
        let daemon = Daemon::connect().await.ok()?;
        let mut pinned = std::collections::BTreeMap::new();
        for image in &images {
            if let Some(reference) = daemon.pinned_reference(image).await {
                pinned.insert(image.clone(), reference);
            }
        }
        Some(pinned)
    })
    .ok()
    .flatten()?;
    deployment.pin_images(&pinned);
    Some(
        images
            .into_iter()
            .filter(|image| !pinned.contains_key(image))
            .collect(),
    )
}

/// The repository of an image reference: without its tag (a registry's port is not a
/// tag) or digest.
pub fn repository_of(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rfind(':') {
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// The version of the `docker` client on PATH, read without a daemon.
pub fn client_version() -> Option<semver::Version> {
    let out = std::process::Command::new("docker")
        .arg("--version")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "Docker version 24.0.7, build afdd53b"; old releases print "20.10.24+dfsg1".
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().nth(2)?.trim_end_matches(',');
    let core = word.split(['+', '-']).next().unwrap_or(word);
    let mut parts = core.split('.').map(str::parse::<u64>);
    let (major, minor, patch) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next().unwrap_or(Ok(0)).ok()?,
    );
    Some(semver::Version::new(major, minor, patch))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_repository_drops_the_tag_but_not_a_registry_port() {
        use super::repository_of;
        assert_eq!(repository_of("flwr/superlink:1.42.0"), "flwr/superlink");
        assert_eq!(
            repository_of("localhost:5000/flwr/superlink:1.42.0"),
            "localhost:5000/flwr/superlink"
        );
        assert_eq!(
            repository_of("localhost:5000/flwr/superlink"),
            "localhost:5000/flwr/superlink"
        );
        assert_eq!(repository_of("flwr/superlink:1.42.0@sha256:ab"), "flwr/superlink");
        assert_eq!(repository_of("superlink"), "superlink");
    }

    use super::*;

    #[test]
    fn security_options_reveal_rootless_and_userns() {
        let facts = DaemonFacts::from_security_options(&[
            "name=seccomp,profile=builtin".into(),
            "name=rootless".into(),
            "name=cgroupns".into(),
        ]);
        assert!(facts.rootless);
        assert!(!facts.userns_remap);
        let facts = DaemonFacts::from_security_options(&["name=userns".into()]);
        assert!(facts.userns_remap && !facts.rootless);
    }

    #[test]
    fn unreachable_daemon_is_a_clear_error() {
        // An explicit socket path that cannot exist: no daemon is contacted.
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let host = format!("unix://{}", socket.display());
        let err = block_on(Daemon::connect_to(host.clone()))
            .unwrap()
            .err()
            .expect("no daemon there");
        let message = err.to_string();
        assert!(
            message.contains(&host) && message.contains("DOCKER_HOST"),
            "{message}"
        );
    }
}

/// A container as the daemon reports it, reduced to what `check --live` needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `Config.User` (`49999:49999`, `app`, or empty for the image's default).
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub entrypoint: Vec<String>,
    pub args: Vec<String>,
    pub mounts: Vec<LiveMount>,
    pub status: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    /// The Compose project the container belongs to, if any.
    pub project: Option<String>,
    /// The last lines of its log (stdout and stderr).
    pub log_tail: Vec<String>,
}

/// One mount of a live container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveMount {
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_write: bool,
    pub mode: String,
}

/// A local image and the user its containers run as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageUser {
    pub tags: Vec<String>,
    pub user: String,
    pub entrypoint: Vec<String>,
}

const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";

impl Daemon {
    /// The API version agreed with the daemon.
    pub fn api_version(&self) -> String {
        let version = self.docker.client_version();
        format!("{}.{}", version.major_version, version.minor_version)
    }

    /// Security options as the daemon lists them (`name=rootless`, `name=selinux`, ...).
    pub async fn security_options(&self) -> Result<Vec<String>> {
        let info = self
            .docker
            .info()
            .await
            .with_context(|| format!("{}: docker info failed", self.host))?;
        Ok(info.security_options.unwrap_or_default())
    }

    /// Containers named by `targets` (names, IDs, or Compose project names), or every
    /// container whose image or entrypoint looks like a Flower component when empty.
    /// Unknown targets are an error naming them.
    pub async fn containers(&self, targets: &[String], log_lines: usize) -> Result<Vec<LiveContainer>> {
        let summaries = self
            .docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .with_context(|| format!("{}: cannot list containers", self.host))?;
        let mut ids: Vec<String> = Vec::new();
        for target in targets {
            let matched: Vec<String> = summaries
                .iter()
                .filter(|summary| {
                    let id = summary.id.as_deref().unwrap_or_default();
                    let by_name = summary
                        .names
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .any(|name| name.trim_start_matches('/') == target);
                    let by_project = summary
                        .labels
                        .as_ref()
                        .and_then(|labels| labels.get(COMPOSE_PROJECT_LABEL))
                        .is_some_and(|project| project == target);
                    by_name || by_project || (target.len() >= 4 && id.starts_with(target.as_str()))
                })
                .filter_map(|summary| summary.id.clone())
                .collect();
            if matched.is_empty() {
                bail!(
                    "{target}: no such container or Compose project on the Docker daemon at {}",
                    self.host
                );
            }
            ids.extend(matched);
        }
        if targets.is_empty() {
            ids = summaries
                .iter()
                .filter(|summary| {
                    let image = summary.image.as_deref().unwrap_or_default();
                    let command = summary.command.as_deref().unwrap_or_default();
                    crate::deploy::Component::guess(image).is_some()
                        || command
                            .split_whitespace()
                            .next()
                            .and_then(crate::deploy::Component::guess)
                            .is_some()
                })
                .filter_map(|summary| summary.id.clone())
                .collect();
        }
        ids.dedup();
        let mut containers = Vec::with_capacity(ids.len());
        for id in ids {
            containers.push(self.inspect(&id, log_lines).await?);
        }
        Ok(containers)
    }

    async fn inspect(&self, id: &str, log_lines: usize) -> Result<LiveContainer> {
        let details = self
            .docker
            .inspect_container(id, None)
            .await
            .with_context(|| format!("{id}: cannot inspect the container"))?;
        let config = details.config.unwrap_or_default();
        let state = details.state.unwrap_or_default();
        let mounts = details
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|mount| LiveMount {
                kind: mount.typ.unwrap_or_default().to_lowercase(),
                source: mount.source.unwrap_or_default(),
                destination: mount.destination.unwrap_or_default(),
                read_write: mount.rw.unwrap_or(true),
                mode: mount.mode.unwrap_or_default(),
            })
            .collect();
        Ok(LiveContainer {
            id: details.id.unwrap_or_else(|| id.to_string()),
            name: details
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.clone().unwrap_or_default(),
            user: config.user.clone().filter(|u| !u.is_empty()),
            working_dir: config.working_dir.clone().filter(|w| !w.is_empty()),
            entrypoint: config.entrypoint.clone().unwrap_or_default(),
            args: config.cmd.clone().unwrap_or_default(),
            mounts,
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            project: config
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPOSE_PROJECT_LABEL).cloned()),
            log_tail: self.log_tail(id, log_lines).await,
        })
    }

    /// The last `lines` lines a container printed (empty when the log is unavailable).
    pub async fn log_tail(&self, id: &str, lines: usize) -> Vec<String> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text.lines().map(str::to_string).collect()
    }

    /// Local images that look like Flower components, and the user each runs as.
    pub async fn flower_images(&self) -> Result<Vec<ImageUser>> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .with_context(|| format!("{}: cannot list images", self.host))?;
        let mut out = Vec::new();
        for image in images {
            if !image
                .repo_tags
                .iter()
                .any(|tag| crate::deploy::Component::guess(tag).is_some())
            {
                continue;
            }
            let Ok(details) = self.docker.inspect_image(&image.id).await else {
                continue;
            };
            let config = details.config.unwrap_or_default();
            out.push(ImageUser {
                tags: image.repo_tags.clone(),
                user: config.user.unwrap_or_default(),
                entrypoint: config.entrypoint.unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.tags.cmp(&b.tags));
        Ok(out)
    }
}
