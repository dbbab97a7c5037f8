//! Writers over the deployment model: Compose YAML, a Swarm stack file, Kubernetes
//! manifests, a `docker run` script, the `flwr` connection snippet, and the deployment's
//! README.
//!
//! Every output a user can ask for by name is a [`Format`] in [`FORMATS`]: what it is
//! called, how it renders, the file name a deployment folder gives it and the mode it is
//! written with. A new format is its own module with one `Format` constant, plus its line
//! in [`FORMATS`].

use anyhow::Result;

use crate::auth;
use crate::deploy::{Deployment, SETTINGS_FILE, Settings};
use crate::fsutil::{MODE_PRIVATE, MODE_PUBLIC};

pub mod compose;
pub mod dockerfile;
pub mod flwr_config;
pub mod kubernetes;
pub mod script;
pub mod swarm;
pub mod text;

/// Mode of the rendered shell scripts: the owner may run them directly.
pub const MODE_SCRIPT: u32 = 0o755;

/// Options only some formats read; the others ignore them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub swarm: swarm::SwarmOptions,
    pub kubernetes: kubernetes::KubernetesOptions,
}

/// One output format.
#[derive(Debug)]
pub struct Format {
    /// Its name (`compose`, `docker-run`, ...), as `render` takes it.
    pub name: &'static str,
    /// What `render NAME` makes, in a line for its help; `None` for a format `render` does
    /// not offer as a subcommand of its own (the teardown script: `docker-run --teardown`).
    pub about: Option<&'static str>,
    /// The file's name in a deployment folder.
    pub file_name: fn(&Deployment) -> &'static str,
    /// The mode the file is written with.
    pub mode: fn(&Deployment) -> u32,
    /// Whether quickstart writes it into the deployment folder.
    pub in_folder: fn(&Deployment) -> bool,
    pub render: fn(&Deployment, &Options) -> Result<String>,
}

impl Format {
    pub fn render(&self, deployment: &Deployment, options: &Options) -> Result<String> {
        (self.render)(deployment, options)
    }

    pub fn file_name(&self, deployment: &Deployment) -> &'static str {
        (self.file_name)(deployment)
    }

    pub fn mode(&self, deployment: &Deployment) -> u32 {
        (self.mode)(deployment)
    }
}

/// Every format, in the order quickstart writes those it writes.
pub const FORMATS: &[&Format] = &[
    &compose::FORMAT,
    &script::RUN,
    &script::STOP,
    &flwr_config::FORMAT,
    &swarm::FORMAT,
    &kubernetes::FORMAT,
];

/// The format called `name`.
pub fn format(name: &str) -> Option<&'static Format> {
    FORMATS.iter().copied().find(|format| format.name == name)
}

/// For [`Format::mode`]: a file anyone may read.
pub fn public(_: &Deployment) -> u32 {
    MODE_PUBLIC
}

/// For [`Format::mode`]: a script its owner may run.
pub fn script_mode(_: &Deployment) -> u32 {
    MODE_SCRIPT
}

/// For [`Format::mode`] of an output that embeds what the containers mount: private when
/// any of it is (a server key, a supernode's Runtime or authentication key, a secret).
pub fn private_with_private_files(deployment: &Deployment) -> u32 {
    let private = deployment
        .services
        .iter()
        .flat_map(|service| &service.mounts)
        .filter_map(crate::deploy::Mount::files)
        .flatten()
        .any(|file| file.private);
    if private { MODE_PRIVATE } else { MODE_PUBLIC }
}

/// For [`Format::in_folder`].
pub fn always(_: &Deployment) -> bool {
    true
}

/// For [`Format::in_folder`].
pub fn never(_: &Deployment) -> bool {
    false
}

/// The files quickstart renders into a deployment folder: name, contents, mode. No flwr
/// connection without a superlink.
pub fn deployment_files(
    deployment: &Deployment,
    settings: &Settings,
) -> Result<Vec<(&'static str, String, u32)>> {
    let mut files = Vec::new();
    for format in FORMATS.iter().filter(|format| (format.in_folder)(deployment)) {
        files.push((
            format.file_name(deployment),
            format.render(deployment, &Options::default())?,
            format.mode(deployment),
        ));
    }
    files.push(("README.md", text::readme(deployment)?, MODE_PUBLIC));
    files.push((SETTINGS_FILE, settings.to_json(), MODE_PUBLIC));
    if let Some(register) = script::render_register(deployment)? {
        files.push((auth::REGISTER_SCRIPT, register, MODE_SCRIPT));
    }
    Ok(files)
}
