//! One module per command family: turn parsed flags into plain settings, call the domain
//! code, print the result, and decide the outcome. No command module imports another;
//! what two of them share lives here.

pub mod bundle;
pub mod certs;
pub mod check;
pub mod deploy;
pub mod doctor;
pub mod journal;
pub mod man;
pub mod ownership;
pub mod supernodes;
pub mod wheels;

use crate::check::IdShift;
use crate::ownership::subid;

/// The daemon's user-namespace shift, as `own` applies it (see [`subid::daemon_id_map`]):
/// what `check` and `doctor` predict with. `None` when the daemon maps nothing or its
/// configuration cannot be read.
pub(crate) fn daemon_id_shift(facts: &crate::docker::DaemonFacts) -> Option<IdShift> {
    let sources = subid::MappingSources::from_host().ok()?;
    let map = subid::daemon_id_map(facts.rootless, facts.userns_remap, &sources).ok()??;
    Some(id_shift(&map))
}

/// `check`'s form of the daemon's mapping: where the ranges start, and how they count.
pub(crate) fn id_shift(map: &subid::DaemonIdMap) -> IdShift {
    // Rootless: container root is the daemon user itself.
    let (remap, daemon_user) = match map.mode {
        subid::Userns::Remap => (true, None),
        subid::Userns::Rootless { uid, gid } => (false, Some((uid, gid))),
    };
    IdShift {
        uid_start: map.uid_range.as_ref().map(|range| range.start),
        gid_start: map.gid_range.as_ref().map(|range| range.start),
        remap,
        root_uid: daemon_user.map(|(uid, _)| uid),
        root_gid: daemon_user.map(|(_, gid)| gid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` predicts exactly the host IDs `own` applies, for both kinds of daemon.
    #[test]
    fn check_and_own_share_one_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let subids = "1001:200000:65536\ndockremap:300000:65536\n";
        std::fs::write(dir.path().join("subuid"), subids).unwrap();
        std::fs::write(dir.path().join("subgid"), subids).unwrap();
        let sources = subid::MappingSources {
            subuid: dir.path().join("subuid"),
            subgid: dir.path().join("subgid"),
            daemon_json: dir.path().join("daemon.json"),
            caller: (0, 0),
            sudo_caller: Some((1001, 1001)),
        };
        for (rootless, remap, expected) in [(true, false, 249_998), (false, true, 349_999)] {
            let map = subid::daemon_id_map(rootless, remap, &sources).unwrap().unwrap();
            let shift = id_shift(&map);
            assert_eq!(map.host_uid(49_999).unwrap(), expected);
            assert_eq!(shift.host_uid(49_999), expected);
            assert_eq!(shift.host_gid(49_999), map.host_gid(49_999).unwrap());
            // Container root too: under rootless it is the daemon user (the sudo caller).
            assert_eq!(shift.host_uid(0), map.host_uid(0).unwrap());
            assert_eq!(shift.host_gid(0), map.host_gid(0).unwrap());
        }
    }
}
