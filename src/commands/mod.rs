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
    IdShift {
        uid_start: map.uid_range.as_ref().map(|range| range.start),
        gid_start: map.gid_range.as_ref().map(|range| range.start),
        remap: map.mode == subid::Userns::Remap,
    }
}
