//! One module per command family: turn parsed flags into plain settings, call the domain
//! code, print the result, and decide the outcome. No command module imports another;
//! what two of them share lives here.

pub mod bundle;
pub mod certs;
pub mod check;
pub mod deploy;
pub mod doctor;
pub mod man;
pub mod ownership;

use crate::check::IdShift;

/// The daemon's user-namespace shift, from `docker info` and /etc/subuid, /etc/subgid.
pub(crate) fn daemon_id_shift(facts: &crate::docker::DaemonFacts) -> Option<IdShift> {
    if !(facts.rootless || facts.userns_remap) {
        return None;
    }
    // Rootless: the daemon runs as the calling user; userns-remap: Docker's default
    // remap user is `dockremap`.
    let (user, user_id) = if facts.rootless {
        let uid = nix::unistd::getuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        (name, uid.as_raw())
    } else {
        ("dockremap".to_string(), u32::MAX)
    };
    let start = |file: &str| {
        let ranges = crate::ownership::subid::parse_subid(&std::fs::read_to_string(file).unwrap_or_default());
        let id_text = user_id.to_string();
        ranges
            .into_iter()
            .find(|r| r.owner == user || r.owner == id_text)
            .map(|r| r.start)
    };
    Some(IdShift {
        uid_start: start("/etc/subuid"),
        gid_start: start("/etc/subgid"),
        remap: facts.userns_remap,
    })
}
