//! The flags and mounts of supernode authentication, per release's scheme.

use crate::auth;
use crate::deploy::model::{MountPurpose, Service, SourceKind};
use crate::deploy::profile::SupernodeAuth;

use super::{Builder, auth_path, flag, valued};

impl Builder<'_> {
    /// The superlink's side of supernode authentication, per release.
    pub(super) fn superlink_auth(&self, service: &mut Service) {
        if !self.settings.supernode_auth {
            return;
        }
        let purpose = match self.profile.supernode_auth() {
            SupernodeAuth::Registration => {
                service.flags.push(flag("--enable-supernode-auth"));
                return;
            }
            SupernodeAuth::KnownKeys => MountPurpose::KnownSupernodeKeys,
            SupernodeAuth::KnownKeysWithSuperlinkPair => MountPurpose::SuperlinkAuthKeys,
        };
        service
            .flags
            .push(valued("--auth-list-public-keys", auth_path(auth::KNOWN_KEYS)));
        if purpose == MountPurpose::SuperlinkAuthKeys {
            service.flags.push(valued(
                "--auth-superlink-private-key",
                auth_path(auth::SUPERLINK_PRIVATE_KEY),
            ));
            service.flags.push(valued(
                "--auth-superlink-public-key",
                auth_path(auth::SUPERLINK_PUBLIC_KEY),
            ));
        }
        service.mounts.push(self.mount(
            purpose,
            auth::superlink_dir(&self.settings.dir),
            auth::AUTH_MOUNT,
            SourceKind::Directory,
        ));
    }

    /// Supernode `index`'s key pair, mounted into it alone; 1.35+ derive the public key.
    pub(super) fn supernode_auth(&self, service: &mut Service, index: u32) {
        if !self.settings.supernode_auth {
            return;
        }
        service.flags.push(valued(
            "--auth-supernode-private-key",
            auth_path(auth::PRIVATE_KEY),
        ));
        if self.profile.supernode_auth() != SupernodeAuth::Registration {
            service
                .flags
                .push(valued("--auth-supernode-public-key", auth_path(auth::PUBLIC_KEY)));
        }
        service.mounts.push(self.mount(
            MountPurpose::SupernodeAuthKey,
            auth::supernode_dir(&self.settings.dir, index),
            auth::AUTH_MOUNT,
            SourceKind::Directory,
        ));
    }
}
