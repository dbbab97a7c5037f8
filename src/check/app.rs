//! The app images of a deployment made with `--app`: is each Dockerfile what the app's
//! pyproject.toml gives today, does the wheel folder hold every dependency, and (with a
//! Docker daemon) is each image built?

use std::path::PathBuf;

use crate::deploy::app::{self, AppProject};
use crate::deploy::{AppImage, AppImages, Deployment};
use crate::hints;

use super::Finding;
use super::rules::Findings;

/// What the command layer gathered about the app for the rules.
#[derive(Debug, Clone)]
pub struct AppFacts {
    /// The app project as read now, or why it could not be.
    pub project: Result<AppProject, String>,
    /// Each app file as it would be rendered now (path, contents).
    pub expected_files: Vec<(PathBuf, String)>,
    /// The distributions the wheel folder holds, when there is one.
    pub wheels: Option<Vec<String>>,
    /// Each app image and whether the Docker daemon has it; `None` without a daemon.
    pub images_built: Option<Vec<(String, bool)>>,
}

/// The command that builds `image` from its Dockerfile in the deployment's build context.
fn build_command(images: &AppImages, image: &AppImage) -> String {
    format!(
        "docker build --file {} --tag {} {}",
        crate::fsutil::shell_word(&image.dockerfile),
        image.image,
        crate::fsutil::shell_word(&images.context)
    )
}

/// The service a finding about `image` belongs to: the first that runs it.
fn service_of<'a>(deployment: &'a Deployment, image: &str) -> &'a str {
    deployment
        .services
        .iter()
        .find(|service| service.image == image)
        .map_or("app", |service| service.name.as_str())
}

pub fn check(deployment: &Deployment, facts: &AppFacts, findings: &mut Findings) {
    let Some(images) = &deployment.app else {
        return;
    };
    let dir = crate::fsutil::shell_word(&deployment.dir);
    let project = match &facts.project {
        Ok(project) => project,
        Err(message) => {
            findings.push(Finding::new(
                "app-project-unreadable",
                None,
                "app",
                Some(&images.project.join(app::PYPROJECT)),
                message.clone(),
                Some(format!(
                    "fix the app's pyproject.toml, or point the deployment at it with `{} PROJECT_DIR`",
                    hints::flag::APP
                )),
            ));
            return;
        }
    };
    for image in &images.images {
        let expected = facts
            .expected_files
            .iter()
            .find(|(path, _)| *path == image.dockerfile)
            .map(|(_, contents)| contents.as_str());
        let on_disk = std::fs::read_to_string(&image.dockerfile).ok();
        if expected.is_some() && on_disk.as_deref() != expected {
            let what = if on_disk.is_none() {
                "is missing"
            } else {
                "is stale: it does not install what the app's pyproject.toml lists today"
            };
            findings.push(Finding::new(
                "app-dockerfile-stale",
                None,
                service_of(deployment, &image.image),
                Some(&image.dockerfile),
                format!("the Dockerfile of {} {what}", image.image),
                Some(format!(
                    "re-render it: `{}`, then rebuild the image: `{}`",
                    hints::render_compose(
                        &dir,
                        &crate::fsutil::shell_word(&deployment.dir.join("compose.yaml"))
                    ),
                    build_command(images, image)
                )),
            ));
        }
        if let Some(built) = &facts.images_built {
            if built
                .iter()
                .any(|(name, present)| *name == image.image && !present)
            {
                findings.push(Finding::new(
                    "app-image-not-built",
                    None,
                    service_of(deployment, &image.image),
                    Some(&image.dockerfile),
                    format!("the app image {} is not on the Docker daemon", image.image),
                    Some(build_command(images, image)),
                ));
            }
        }
    }
    if let Some(wheels) = &facts.wheels {
        for dependency in &project.dependencies {
            if !wheels.contains(&dependency.name) {
                findings.push(Finding::new(
                    "app-wheel-missing",
                    None,
                    "app",
                    Some(&deployment.dir.join(app::WHEELS_DIR)),
                    format!(
                        "the wheel folder has no wheel of {:?}, which the offline build installs",
                        dependency.requirement
                    ),
                    Some(hints::wheels(Some(&dir))),
                ));
            }
        }
    }
}
