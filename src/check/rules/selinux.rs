//! SELinux rule: with SELinux enforcing, every bind mount is labelled.

use super::super::spec::MountKind;
use super::{CheckSettings, Out};
use crate::hints;
use crate::tls::verify::Severity;

pub(super) fn selinux_labels(out: &mut Out<'_>, settings: &CheckSettings) {
    if !settings.selinux_enforcing {
        return;
    }
    let unlabelled: Vec<_> = out
        .spec
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Bind && !m.selinux_label)
        .cloned()
        .collect();
    for mount in unlabelled {
        out.add(
            "selinux-label",
            Severity::Error,
            Some(&mount.source),
            format!(
                "SELinux is enforcing and the mount at {} has no :z/:Z label; the container will be denied",
                mount.target
            ),
            Some(format!("add :z to the mount ({})", hints::render_selinux())),
        );
    }
}
