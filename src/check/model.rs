//! flowerbed's own deployment model as container specs: `check DIR` reads exactly what
//! `render` writes, from the settings saved in the folder.

use super::spec::{ContainerSpec, MountKind, MountSpec, Role};
use crate::deploy::{Deployment, model};

fn role(service: &model::Service) -> Option<Role> {
    match service.role {
        model::Role::Superlink => Some(Role::Superlink),
        model::Role::Supernode(_) => Some(Role::Supernode),
        model::Role::ServerAppRunner => Role::guess(&service.image).or(Some(Role::Superexec)),
        model::Role::ClientAppRunner(_) => Role::guess(&service.image).or(Some(Role::Clientapp)),
    }
}

/// One spec per service of the deployment.
pub fn specs(deployment: &Deployment) -> Vec<ContainerSpec> {
    deployment
        .services
        .iter()
        .map(|service| ContainerSpec {
            name: service.name.clone(),
            image: Some(service.image.clone()),
            role: role(service),
            profile: Some(deployment.profile),
            user: Some(service.user.to_string()),
            working_dir: "/app".into(),
            mounts: service
                .mounts
                .iter()
                .map(|mount| MountSpec {
                    source: mount.source.clone(),
                    written: None,
                    target: mount.target.clone(),
                    read_only: mount.read_only,
                    kind: MountKind::Bind,
                    selinux_label: mount.selinux_relabel,
                })
                .collect(),
            args: service.args(),
        })
        .collect()
}
