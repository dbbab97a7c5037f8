//! `own`'s and `release`'s flags as the owner to hand files to.

use anyhow::Result;

use crate::cli::ownership::OwnArgs;
use crate::docker::DaemonFacts;
use crate::error::Error;
use crate::hints;
use crate::ownership::{self, Target, subid};

/// The host owner for `own`: `--host-uid/--host-gid` as given, otherwise `--uid/--gid`
/// mapped through the daemon's subordinate ranges when it runs rootless or userns-remapped
/// (the same mapping `check` predicts with).
///
/// `facts` asks the daemon, when one answers; it is called only when an ID is left to map.
/// Returns the target and, when the IDs were mapped, a line saying how.
pub fn host_target(
    args: &OwnArgs,
    facts: impl FnOnce() -> Option<DaemonFacts>,
) -> Result<(Target, Option<String>)> {
    let given = Target {
        uid: args.host_uid.unwrap_or(args.uid),
        gid: args.host_gid.unwrap_or(args.gid),
    };
    if args.host_uid.is_some() && args.host_gid.is_some() {
        return Ok((given, None));
    }
    let Some(facts) = facts() else {
        return Ok((given, None));
    };
    let sources = subid::MappingSources::from_host()?;
    let Some(map) = subid::daemon_id_map(facts.rootless, facts.userns_remap, &sources)? else {
        return Ok((given, None));
    };
    let target = Target {
        uid: args.host_uid.map_or_else(|| map.host_uid(args.uid), Ok)?,
        gid: args.host_gid.map_or_else(|| map.host_gid(args.gid), Ok)?,
    };
    let note = format!(
        "Docker runs user-namespaced: container {}:{} is host {}:{}",
        args.uid, args.gid, target.uid, target.gid
    );
    Ok((target, Some(note)))
}

/// `--to USER[:GROUP]`, else the sudo caller, else the current user.
pub fn release_target(to: Option<&str>) -> Result<Target> {
    use nix::unistd::{Group, User};
    let Some(spec) = to else {
        if nix::unistd::geteuid().is_root() {
            if let Some(caller) = ownership::sudo_caller()? {
                return Ok(caller);
            }
        }
        return Ok(Target {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        });
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let unknown = |what: &str, name: &str| Error::InvalidFlag {
        flag: hints::flag::TO,
        message: format!("unknown {what} {name:?}"),
    };
    let reserved = |id: &str| Error::InvalidFlag {
        flag: hints::flag::TO,
        message: format!("{id} means \"leave unchanged\" to the kernel; name a real user and group"),
    };
    let (uid, primary_gid) = if let Ok(uid) = user_part.parse::<u32>() {
        if uid == ownership::UNCHANGED_ID {
            return Err(reserved(user_part).into());
        }
        let user = User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten();
        (uid, user.map_or(uid, |u| u.gid.as_raw()))
    } else {
        let user = User::from_name(user_part)
            .ok()
            .flatten()
            .ok_or_else(|| unknown("user", user_part))?;
        (user.uid.as_raw(), user.gid.as_raw())
    };
    let gid = match group_part {
        None | Some("") => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(ownership::UNCHANGED_ID) => return Err(reserved(group).into()),
            Ok(gid) => gid,
            Err(_) => Group::from_name(group)
                .ok()
                .flatten()
                .ok_or_else(|| unknown("group", group))?
                .gid
                .as_raw(),
        },
    };
    Ok(Target { uid, gid })
}
