//! `check`'s flags as rule settings.

use anyhow::{Result, anyhow};

use crate::check::{self, CheckSettings, IdShift};
use crate::cli::check::{CheckArgs, SelinuxMode};
use crate::hints;

fn parse_id_shift(text: &str, remap: bool) -> Result<IdShift> {
    let parse = |part: &str| -> Result<u32> {
        part.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow!(
                "{} {text}: expected START or START:GID_START, positive numbers",
                hints::flag::ID_SHIFT
            )
        })
    };
    let (uid, gid) = text.split_once(':').map_or((text, text), |(u, g)| (u, g));
    Ok(IdShift {
        uid_start: Some(parse(uid)?),
        gid_start: Some(parse(gid)?),
        remap,
        root_uid: None,
        root_gid: None,
    })
}

/// Turn `check` flags into rule settings.
pub fn settings(args: &CheckArgs, from_script: bool) -> Result<CheckSettings> {
    // Docker's CLI resolves relative `-v` sources from 23 on; only an older client here
    // refuses them (asked only for scripts: Compose always resolved them).
    let relative_sources_fail =
        from_script && crate::docker::client_version().is_some_and(|version| version.major < 23);
    Ok(CheckSettings {
        default_uid: args.uid,
        default_gid: args.gid,
        id_shift: args
            .id_shift
            .as_deref()
            .map(|text| parse_id_shift(text, args.remap))
            .transpose()?
            .unwrap_or_default(),
        selinux_enforcing: match args.selinux {
            SelinuxMode::Auto => check::selinux_enforcing(),
            SelinuxMode::Enforcing => true,
            SelinuxMode::Off => false,
        },
        warn_days: args.warn_days,
        relative_sources_fail,
    })
}
