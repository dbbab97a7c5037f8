//! State rule: the superlink's SQLite folder is mounted and writable by the container.

use std::path::PathBuf;

use super::super::perm;
use super::{CheckSettings, Out, describe_perms, host_identity, own_fix};
use crate::tls::verify::Severity;

/// SQLite needs the database's folder writable (journal and WAL files live beside it).
pub(super) fn database(out: &mut Out<'_>, settings: &CheckSettings) {
    let Some(value) = out.spec.flag_value("--database").map(str::to_string) else {
        return;
    };
    if value.starts_with(':') {
        return; // in-memory state
    }
    let who = host_identity(out.spec, settings);
    let Some((mount, host)) = out.spec.host_path(&value).map(|(m, h)| (m.clone(), h)) else {
        out.add(
            "state-unmounted",
            Severity::Warning,
            None,
            format!(
                "--database {value} is not inside any mount: the state is lost when the container is removed"
            ),
            None,
        );
        return;
    };
    let folder = host.parent().unwrap_or(&host).to_path_buf();
    if mount.read_only {
        out.add(
            "state-read-only",
            Severity::Error,
            Some(&mount.source),
            format!("--database {value} is on a read-only mount ({})", mount.target),
            None,
        );
        return;
    }
    if !mount.source.exists() {
        return; // reported by mount-source-missing
    }
    if let Err(blocked) = perm::reach(&mount.source, &folder, &who, perm::WRITE | perm::EXEC) {
        out.add(
            "state-not-writable",
            Severity::Error,
            Some(&folder),
            format!(
                "UID {} cannot create files here (SQLite needs the folder, not only the file): {} lacks {}{}",
                who.uid,
                blocked.at.display(),
                blocked.lacks,
                describe_perms(blocked.perms.as_ref())
            ),
            Some(own_fix(&mount.source, out.spec, settings)),
        );
        return;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", host.display()));
        if file.exists() {
            if let Err(blocked) = perm::reach(&mount.source, &file, &who, perm::READ | perm::WRITE) {
                out.add(
                    "state-not-writable",
                    Severity::Error,
                    Some(&file),
                    format!(
                        "UID {} cannot write the database: {} lacks {}",
                        who.uid,
                        blocked.at.display(),
                        blocked.lacks
                    ),
                    Some(own_fix(&mount.source, out.spec, settings)),
                );
            }
        }
    }
}
