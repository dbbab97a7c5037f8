//! Container IDs to host IDs under rootless Docker and userns-remap.
//!
//! A user-namespaced daemon runs containers in a range of subordinate IDs from
//! `/etc/subuid` / `/etc/subgid`. Rootless Docker maps container ID 0 to the daemon user
//! itself and container ID n ≥ 1 to `start + n - 1`; userns-remap maps n ≥ 0 to
//! `start + n`. So a file a rootless container's UID 49999 can use belongs, on the host, to
//! `start + 49998`.
//!
//! [`daemon_id_map`] is the one place that decides whose ranges apply; `own` (to choose the
//! owner it applies) and `check`/`doctor` (to predict who reads a file) both use it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::Target;

/// Replaces `/etc` as the folder holding `subuid`, `subgid` and `docker/daemon.json`
/// (for tests, and for hosts whose files live elsewhere).
pub const SYSCONF_DIR_ENV: &str = "FLOWERBED_SYSCONF_DIR";

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
    /// Rootless: container 0 is the daemon user (`uid`/`gid` on the host), n ≥ 1 is
    /// `start + n - 1`.
    Rootless { uid: u32, gid: u32 },
    /// userns-remap: n is `start + n`.
    Remap,
}

/// Where the mapping is read from, and who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSources {
    pub subuid: PathBuf,
    pub subgid: PathBuf,
    /// The rootful daemon's configuration (its `userns-remap` names the remap user).
    pub daemon_json: PathBuf,
    /// The real user and group of this process.
    pub caller: (u32, u32),
    /// The user who ran `sudo flowerbed ...` (`SUDO_UID`/`SUDO_GID`), when running as root
    /// under sudo: a rootless daemon is theirs, not root's.
    pub sudo_caller: Option<(u32, u32)>,
}

impl MappingSources {
    /// This host's files (under [`SYSCONF_DIR_ENV`] when set) and this process's caller; an
    /// error when `SUDO_UID`/`SUDO_GID` are set but malformed.
    pub fn from_host() -> Result<Self> {
        let etc = std::env::var_os(SYSCONF_DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from("/etc"), PathBuf::from);
        // A malformed SUDO_UID/SUDO_GID is refused (never read as root).
        let sudo_caller = sudo_caller()?
            .filter(|_| nix::unistd::geteuid().is_root())
            .map(|caller| (caller.uid, caller.gid));
        Ok(Self {
            subuid: etc.join("subuid"),
            subgid: etc.join("subgid"),
            daemon_json: etc.join("docker/daemon.json"),
            caller: (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw()),
            sudo_caller,
        })
    }
}

/// A user-namespaced daemon's mapping: the mode and the ranges of the user it maps through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonIdMap {
    pub mode: Userns,
    /// Whose ranges: the rootless daemon's user, or the userns-remap user.
    pub user: String,
    /// The ranges found for that user (by name or number); `None` when the file has none.
    pub uid_range: Option<SubidRange>,
    pub gid_range: Option<SubidRange>,
}

impl DaemonIdMap {
    /// The host UID behind container UID `id`.
    pub fn host_uid(&self, id: u32) -> Result<u32> {
        let root = match self.mode {
            Userns::Rootless { uid, .. } => Some(uid),
            Userns::Remap => None,
        };
        map_id(id, root, self.uid_range.as_ref(), &self.user, "UID")
    }

    /// The host GID behind container GID `id`.
    pub fn host_gid(&self, id: u32) -> Result<u32> {
        let root = match self.mode {
            Userns::Rootless { gid, .. } => Some(gid),
            Userns::Remap => None,
        };
        map_id(id, root, self.gid_range.as_ref(), &self.user, "GID")
    }
}

/// The daemon's mapping, or `None` when it maps nothing (neither rootless nor
/// userns-remapped).
///
/// Rootless: the daemon runs as the caller (the sudo caller under sudo). userns-remap: the
/// remap user named by `userns-remap` in daemon.json (`user`, `user:group`, or a UID;
/// `default` or no setting means `dockremap`). Like Docker, both files are searched for the
/// user's name or its UID.
pub fn daemon_id_map(
    rootless: bool,
    userns_remap: bool,
    sources: &MappingSources,
) -> Result<Option<DaemonIdMap>> {
    let (mode, user, user_id) = if rootless {
        let (uid, gid) = sources.sudo_caller.unwrap_or(sources.caller);
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |user| user.name);
        (Userns::Rootless { uid, gid }, name, Some(uid))
    } else if userns_remap {
        let (name, uid) = remap_user(sources)?;
        (Userns::Remap, name, uid)
    } else {
        return Ok(None);
    };
    let range = |path: &PathBuf| -> Result<Option<SubidRange>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!("{}: cannot read", path.display())));
            }
        };
        let id_text = user_id.map(|id| id.to_string());
        Ok(parse_subid(&text)
            .into_iter()
            .find(|r| r.owner == user || Some(&r.owner) == id_text.as_ref()))
    };
    Ok(Some(DaemonIdMap {
        mode,
        uid_range: range(&sources.subuid)?,
        gid_range: range(&sources.subgid)?,
        user,
    }))
}

/// The userns-remap user's name and, when it exists here, its UID.
fn remap_user(sources: &MappingSources) -> Result<(String, Option<u32>)> {
    let path = &sources.daemon_json;
    let configured = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?
            .get("userns-remap")
            .and_then(|value| value.as_str().map(str::to_string)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => return Err(anyhow::Error::new(err).context(format!("{}: cannot read", path.display()))),
    };
    let user = match configured.as_deref().map(str::trim) {
        None | Some("" | "default") => "dockremap",
        Some(setting) => setting.split(':').next().unwrap_or(setting),
    };
    // A UID names its user; a name may or may not exist on this host (the files decide).
    if let Ok(uid) = user.parse::<u32>() {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        return Ok((name, Some(uid)));
    }
    let uid = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    Ok((user.to_string(), uid))
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

/// Container ID `id` on the host: `root` for container 0 under rootless, otherwise through
/// `range` (rootless when `root` is given: `start + id - 1`; remap: `start + id`).
fn map_id(id: u32, root: Option<u32>, range: Option<&SubidRange>, user: &str, kind: &str) -> Result<u32> {
    if let (Some(root), 0) = (root, id) {
        return Ok(root);
    }
    let Some(range) = range else {
        bail!(
            "no subordinate {kind} range for user {user} (add one to /etc/sub{}id)",
            kind_letter(kind)
        );
    };
    let offset = if root.is_some() { id - 1 } else { id };
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

    /// Hand-made subuid, subgid and daemon.json in a temp folder; caller 1000:1000.
    fn hand_made(
        uid_ranges: &str,
        gid_ranges: &str,
        daemon_json: Option<&str>,
    ) -> (tempfile::TempDir, MappingSources) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("subuid"), uid_ranges).unwrap();
        std::fs::write(dir.path().join("subgid"), gid_ranges).unwrap();
        std::fs::create_dir(dir.path().join("docker")).unwrap();
        if let Some(json) = daemon_json {
            std::fs::write(dir.path().join("docker/daemon.json"), json).unwrap();
        }
        let sources = MappingSources {
            subuid: dir.path().join("subuid"),
            subgid: dir.path().join("subgid"),
            daemon_json: dir.path().join("docker/daemon.json"),
            caller: (1000, 1000),
            sudo_caller: None,
        };
        (dir, sources)
    }

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
    fn nothing_to_map_without_a_user_namespace() {
        let (_dir, sources) = hand_made(SUBUID, SUBUID, None);
        assert_eq!(daemon_id_map(false, false, &sources).unwrap(), None);
    }

    #[test]
    fn rootless_maps_n_to_start_plus_n_minus_one_for_the_caller() {
        // UID 1001 has no passwd entry here: its line is found by number.
        let (_dir, mut sources) = hand_made(SUBUID, "1001:300000:65536\n", None);
        sources.caller = (1001, 1002);
        let map = daemon_id_map(true, false, &sources).unwrap().unwrap();
        assert_eq!(map.host_uid(49_999).unwrap(), 249_998);
        assert_eq!(map.host_uid(1).unwrap(), 200_000);
        assert_eq!(
            map.host_uid(0).unwrap(),
            1001,
            "container root is the daemon user"
        );
        assert_eq!(map.host_gid(49_999).unwrap(), 349_998);
        assert_eq!(map.host_gid(0).unwrap(), 1002);
    }

    #[test]
    fn rootless_under_sudo_is_the_sudo_callers_daemon() {
        let (_dir, mut sources) = hand_made(SUBUID, SUBUID, None);
        sources.caller = (0, 0);
        sources.sudo_caller = Some((1001, 1001));
        let map = daemon_id_map(true, false, &sources).unwrap().unwrap();
        assert_eq!(map.mode, Userns::Rootless { uid: 1001, gid: 1001 });
        assert_eq!(map.host_uid(49_999).unwrap(), 249_998);
        assert_eq!(map.host_uid(0).unwrap(), 1001);
    }

    #[test]
    fn remap_user_comes_from_daemon_json() {
        let subids = "dockremap:100000:65536\nflower:300000:65536\n1500:500000:65536\n";
        for (json, uid_49999) in [
            (None, 149_999),
            (Some(r#"{"userns-remap": "default"}"#), 149_999),
            (Some(r#"{"userns-remap": "flower"}"#), 349_999),
            (
                Some(r#"{"userns-remap": "flower:flowergroup", "debug": true}"#),
                349_999,
            ),
            (Some(r#"{"userns-remap": "1500"}"#), 549_999),
            (Some(r#"{"log-driver": "json-file"}"#), 149_999),
        ] {
            let (_dir, sources) = hand_made(subids, subids, json);
            let map = daemon_id_map(false, true, &sources).unwrap().unwrap();
            assert_eq!(map.mode, Userns::Remap);
            assert_eq!(map.host_uid(49_999).unwrap(), uid_49999, "{json:?}");
            assert_eq!(map.host_gid(0).unwrap(), uid_49999 - 49_999, "{json:?}");
        }
    }

    #[test]
    fn a_broken_daemon_json_is_named() {
        let (_dir, sources) = hand_made(SUBUID, SUBUID, Some("{ not json"));
        let err = daemon_id_map(false, true, &sources).unwrap_err();
        assert!(
            format!("{err:#}").contains("daemon.json: not valid JSON"),
            "{err:#}"
        );
    }

    #[test]
    fn out_of_range_and_unknown_users_are_errors() {
        let (_dir, mut sources) = hand_made("1000:100000:1000\n", "", None);
        sources.caller = (1000, 1000);
        let map = daemon_id_map(true, false, &sources).unwrap().unwrap();
        let err = map.host_uid(49_999).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        let err = map.host_gid(5).unwrap_err();
        assert!(err.to_string().contains("/etc/subgid"), "{err}");
        let (_dir, sources) = hand_made("", "", None);
        let map = daemon_id_map(false, true, &sources).unwrap().unwrap();
        let err = map.host_uid(49_999).unwrap_err();
        assert!(err.to_string().contains("user dockremap"), "{err}");
    }
}
