//! The images of the user's app (`--app`): which services run its code, and their names.

use crate::deploy::app;
use crate::deploy::model::{AppImage, AppImages, Role, Service};
use crate::deploy::settings::Isolation;

use super::Builder;

impl Builder<'_> {
    /// With `--app`, the services that run app code (the app runners in process
    /// isolation, the superlink/supernodes themselves in subprocess isolation) switch to
    /// an image of the app's own, one per component, built `FROM` the image they had.
    pub(super) fn app_images(&self, services: &mut [Service]) -> Option<AppImages> {
        let project = self.settings.app.clone()?;
        let mut images: Vec<AppImage> = Vec::new();
        for service in services.iter_mut() {
            let runs_app_code = match service.role {
                Role::Superlink => self.settings.superlink_isolation == Isolation::Subprocess,
                Role::Supernode(_) => self.settings.supernode_isolation == Isolation::Subprocess,
                Role::ServerAppRunner | Role::ClientAppRunner(_) => true,
            };
            // Built on Flower's own image of the component, when the service runs that.
            let component = service.component.name();
            if !runs_app_code || service.image != self.image(service.component) {
                continue;
            }
            let registry = self
                .settings
                .push_to
                .as_ref()
                .map(|registry| format!("{registry}/"))
                .unwrap_or_default();
            let image = format!(
                "{registry}{}/{component}-app:{}",
                self.settings.project_name,
                self.settings.tag()
            );
            if !images.iter().any(|known| known.image == image) {
                images.push(AppImage {
                    component,
                    base: service.image.clone(),
                    image: image.clone(),
                    dockerfile: self
                        .settings
                        .dir
                        .join(app::DOCKERFILES_DIR)
                        .join(format!("{component}.Dockerfile")),
                });
            }
            service.image = image;
        }
        Some(AppImages {
            project,
            context: self.settings.dir.clone(),
            registry: self.settings.push_to.clone(),
            images,
        })
    }
}
