//! Container IDs to host IDs under rootless Docker and userns-remap.
//!
//! A user-namespaced daemon runs containers in a range of subordinate IDs from
//! `/etc/subuid` / `/etc/subgid`. Rootless Docker maps container ID 0 to the daemon user
//! itself and container ID n ≥ 1 to `start + n - 1`; userns-remap maps n ≥ 0 to
//! `start + n`. So a file a rootless container's UID 49999 can use belongs, on the host, to
//! `start + 49998`.

use anyhow::{Result, bail};

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
