//! Container IDs to host IDs under rootless Docker and userns-remap.
//!
//! A user-namespaced daemon runs containers in a range of subordinate IDs from
//! `/etc/subuid` / `/etc/subgid`. Rootless Docker maps container ID 0 to the daemon user
//! itself and container ID n ≥ 1 to `start + n - 1`; userns-remap maps n ≥ 0 to
//! `start + n`. So a file a rootless container's UID 49999 can use belongs, on the host, to
//! `start + 49998`.

use anyhow::{Context, Result, bail};

use super::Target;

/// One line of `/etc/subuid` or `/etc/subgid`: `user:start:count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubidRange {
    /// A user name or a numeric ID, as written in the file.
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

/// How the daemon maps IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Userns {
    /// Rootless: container 0 is the daemon user (`host_id`), n ≥ 1 is `start + n - 1`.
    Rootless { host_id: u32 },
    /// userns-remap: n is `start + n`.
    Remap,
}

/// Parse a subuid/subgid file; malformed lines are ignored, as `newuidmap` does.
pub fn parse_subid(text: &str) -> Vec<SubidRange> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut fields = line.split(':');
            let owner = fields.next()?.to_string();
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            fields
                .next()
                .is_none()
                .then_some(SubidRange { owner, start, count })
        })
        .collect()
}

/// The host ID behind container ID `id` for the daemon user named `user` (or numbered
/// `user_id`), `kind` naming "UID" or "GID" in errors.
pub fn map_container_id(
    id: u32,
    mode: Userns,
    ranges: &[SubidRange],
    user: &str,
    user_id: u32,
    kind: &str,
) -> Result<u32> {
    if let Userns::Rootless { host_id } = mode {
        if id == 0 {
            return Ok(host_id);
        }
    }
    let user_id_text = user_id.to_string();
    let Some(range) = ranges.iter().find(|r| r.owner == user || r.owner == user_id_text) else {
        bail!(
            "no subordinate {kind} range for user {user} (add one to /etc/sub{}id)",
            kind_letter(kind)
        );
    };
    let offset = match mode {
        Userns::Rootless { .. } => id - 1,
        Userns::Remap => id,
    };
    if offset >= range.count {
        bail!(
            "container {kind} {id} is outside {user}'s subordinate range {}:{} (pass --host-{} to choose the host ID)",
            range.start,
            range.count,
            kind.to_ascii_lowercase()
        );
    }
    range
        .start
        .checked_add(offset)
        .ok_or_else(|| anyhow::anyhow!("container {kind} {id} maps past the largest {kind}"))
}

/// The host owner behind container IDs `container` under `mode`; an ID given in `host`
/// is kept as it is.
pub fn host_ids(container: Target, host: (Option<u32>, Option<u32>), mode: Userns) -> Result<Target> {
    let (user, user_id) = daemon_user(mode)?;
    let map = |id: u32, given: Option<u32>, kind: &str, file: &str, own_id: u32| -> Result<u32> {
        if let Some(given) = given {
            return Ok(given);
        }
        let ranges = parse_subid(&std::fs::read_to_string(file).unwrap_or_default());
        let mode = match mode {
            Userns::Rootless { .. } => Userns::Rootless { host_id: own_id },
            Userns::Remap => Userns::Remap,
        };
        map_container_id(id, mode, &ranges, &user, user_id, kind)
    };
    Ok(Target {
        uid: map(container.uid, host.0, "UID", "/etc/subuid", user_id)?,
        gid: map(
            container.gid,
            host.1,
            "GID",
            "/etc/subgid",
            nix::unistd::getgid().as_raw(),
        )?,
    })
}

/// The user who ran sudo, from `SUDO_UID`/`SUDO_GID`: `None` when neither is set, an error
/// naming the variable when one is missing or is not an ID (so it never silently means root).
pub fn sudo_caller() -> Result<Option<Target>> {
    let read = |name: &str| -> Result<Option<u32>> {
        let Some(value) = std::env::var_os(name) else {
            return Ok(None);
        };
        let text = value.to_string_lossy();
        match text.parse::<u32>() {
            Ok(id) if id != super::UNCHANGED_ID && !text.starts_with('+') => Ok(Some(id)),
            _ => Err(crate::error::Error::Usage(format!(
                "{name}={}: not a user or group ID (0 to {}); unset it or set it to the caller's ID",
                super::report::display_bytes(value.as_encoded_bytes()),
                super::UNCHANGED_ID - 1
            ))
            .into()),
        }
    };
    match (read("SUDO_UID")?, read("SUDO_GID")?) {
        (None, None) => Ok(None),
        (Some(uid), Some(gid)) => Ok(Some(Target { uid, gid })),
        (Some(_), None) => bail!("SUDO_UID is set but SUDO_GID is not; set both or neither"),
        (None, Some(_)) => bail!("SUDO_GID is set but SUDO_UID is not; set both or neither"),
    }
}

/// Whose subordinate ranges the daemon uses: the caller for rootless (the sudo caller under
/// sudo), the remap user (`dockremap` unless daemon.json names another) for userns-remap.
fn daemon_user(mode: Userns) -> Result<(String, u32)> {
    let uid = match mode {
        Userns::Rootless { host_id } => sudo_caller()?.map_or(host_id, |caller| caller.uid),
        Userns::Remap => {
            let configured = std::fs::read_to_string("/etc/docker/daemon.json")
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|v| v.get("userns-remap").and_then(|n| n.as_str()).map(str::to_string));
            let name = match configured.as_deref() {
                None | Some("default") => "dockremap".to_string(),
                Some(name) => name.split(':').next().unwrap_or(name).to_string(),
            };
            let user = nix::unistd::User::from_name(&name)?
                .with_context(|| format!("userns-remap user {name}: unknown user"))?;
            return Ok((user.name, user.uid.as_raw()));
        }
    };
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))?
        .map_or_else(|| uid.to_string(), |u| u.name);
    Ok((name, uid))
}

fn kind_letter(kind: &str) -> &'static str {
    if kind.eq_ignore_ascii_case("gid") {
        "g"
    } else {
        "u"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "# comment\nalice:100000:65536\n1001:200000:65536\nbroken line\n";

    #[test]
    fn parses_names_numbers_and_skips_junk() {
        let ranges = parse_subid(SUBUID);
        assert_eq!(ranges.len(), 2);
        assert_eq!(
            ranges[1],
            SubidRange {
                owner: "1001".into(),
                start: 200_000,
                count: 65_536
            }
        );
    }

    #[test]
    fn rootless_maps_n_to_start_plus_n_minus_one() {
        let ranges = parse_subid(SUBUID);
        let rootless = Userns::Rootless { host_id: 1000 };
        assert_eq!(
            map_container_id(49_999, rootless, &ranges, "alice", 1000, "UID").unwrap(),
            149_998
        );
        assert_eq!(
            map_container_id(1, rootless, &ranges, "alice", 1000, "UID").unwrap(),
            100_000
        );
        assert_eq!(
            map_container_id(0, rootless, &ranges, "alice", 1000, "UID").unwrap(),
            1000
        );
    }

    #[test]
    fn remap_maps_n_to_start_plus_n() {
        let ranges = parse_subid(SUBUID);
        assert_eq!(
            map_container_id(0, Userns::Remap, &ranges, "bob", 1001, "UID").unwrap(),
            200_000
        );
        assert_eq!(
            map_container_id(49_999, Userns::Remap, &ranges, "bob", 1001, "UID").unwrap(),
            249_999
        );
    }

    #[test]
    fn out_of_range_and_unknown_users_are_errors() {
        let ranges = parse_subid("alice:100000:1000\n");
        let rootless = Userns::Rootless { host_id: 1000 };
        let err = map_container_id(49_999, rootless, &ranges, "alice", 1000, "UID").unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        let err = map_container_id(5, rootless, &ranges, "carol", 1002, "GID").unwrap_err();
        assert!(err.to_string().contains("/etc/subgid"), "{err}");
    }
}
