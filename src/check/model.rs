//! flowerbed's own deployment model as container specs: `check DIR` reads exactly what
//! `render` writes, from the settings saved in the folder.

use super::spec::{ContainerSpec, MountKind, MountSpec};
use crate::deploy::Deployment;

/// One spec per service of the deployment.
pub fn specs(deployment: &Deployment) -> Vec<ContainerSpec> {
    deployment
        .services
        .iter()
        .map(|service| ContainerSpec {
            name: service.name.clone(),
            image: Some(service.image.clone()),
            role: Some(service.component),
            profile: Some(deployment.profile),
            user: Some(service.user.to_string()),
            owner: Some(service.user),
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
