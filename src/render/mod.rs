//! Writers over the deployment model: Compose YAML, a Swarm stack file, Kubernetes
//! manifests, a `docker run` script, the `flwr` connection snippet, and the deployment's
//! README.

use anyhow::Result;

use crate::auth;
use crate::deploy::{Deployment, SETTINGS_FILE, Settings};
use crate::fsutil::MODE_PUBLIC;

pub mod compose;
pub mod flwr_config;
pub mod kubernetes;
pub mod script;
pub mod swarm;
pub mod text;

/// Mode of the rendered shell scripts: the owner may run them directly.
pub const MODE_SCRIPT: u32 = 0o755;

/// The files quickstart renders into a deployment folder: name, contents, mode. No flwr
/// connection without a superlink.
pub fn deployment_files(deployment: &Deployment, settings: &Settings) -> Result<Vec<(&'static str, String, u32)>> {
    let mut files = vec![
        ("compose.yaml", compose::render(deployment)?, MODE_PUBLIC),
        ("run.sh", script::render_run(deployment)?, MODE_SCRIPT),
        ("stop.sh", script::render_stop(deployment)?, MODE_SCRIPT),
    ];
    if deployment.connection.is_some() {
        files.push((
            text::flwr_config_file(deployment),
            flwr_config::render(deployment)?,
            MODE_PUBLIC,
        ));
    }
    files.push(("README.md", text::readme(deployment)?, MODE_PUBLIC));
    files.push((SETTINGS_FILE, settings.to_json(), MODE_PUBLIC));
    if let Some(register) = script::render_register(deployment)? {
        files.push((auth::REGISTER_SCRIPT, register, MODE_SCRIPT));
    }
    Ok(files)
}
