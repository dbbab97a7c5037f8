//! Can a given UID/GID read or write a host path, the way the kernel decides it?
//!
//! Mode bits, supplementary groups and POSIX ACLs (`system.posix_acl_access`) are honoured;
//! every directory on the way needs search (`x`) permission.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who the container runs as, seen from the host (after any user-namespace mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl HostIdentity {
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

/// Owner, group, mode and ACL of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPerms {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub acl: Option<Acl>,
}

impl PathPerms {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            acl: read_acl(path),
        })
    }

    /// The permission bits (`rwx` as 0..=7) `who` gets on this path.
    pub fn granted(&self, who: &HostIdentity) -> u32 {
        if who.uid == 0 {
            // Root reads and writes anything; it executes only if someone may.
            let any_exec = if self.mode & 0o111 != 0 || self.mode & 0o040_000 != 0 {
                EXEC
            } else {
                0
            };
            return READ | WRITE | any_exec;
        }
        if let Some(acl) = &self.acl {
            return acl.granted(self.uid, self.gid, who);
        }
        if who.uid == self.uid {
            (self.mode >> 6) & 7
        } else if who.in_group(self.gid) {
            (self.mode >> 3) & 7
        } else {
            self.mode & 7
        }
    }
}

/// A POSIX access ACL, as the kernel stores it in the extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    pub user_obj: u32,
    pub users: Vec<(u32, u32)>,
    pub group_obj: u32,
    pub groups: Vec<(u32, u32)>,
    pub mask: Option<u32>,
    pub other: u32,
}

impl Acl {
    /// Parse the `system.posix_acl_access` value (version 2: a u32 header, then
    /// entries of u16 tag, u16 permissions, u32 id, little-endian).
    pub fn parse(bytes: &[u8]) -> Option<Acl> {
        const USER_OBJ: u16 = 0x01;
        const USER: u16 = 0x02;
        const GROUP_OBJ: u16 = 0x04;
        const GROUP: u16 = 0x08;
        const MASK: u16 = 0x10;
        const OTHER: u16 = 0x20;
        let (header, entries) = bytes.split_at_checked(4)?;
        if u32::from_le_bytes(header.try_into().ok()?) != 2 || entries.len() % 8 != 0 {
            return None;
        }
        let mut acl = Acl::default();
        for entry in entries.chunks_exact(8) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let perm = u32::from(u16::from_le_bytes([entry[2], entry[3]]) & 7);
            let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            match tag {
                USER_OBJ => acl.user_obj = perm,
                USER => acl.users.push((id, perm)),
                GROUP_OBJ => acl.group_obj = perm,
                GROUP => acl.groups.push((id, perm)),
                MASK => acl.mask = Some(perm),
                OTHER => acl.other = perm,
                _ => return None,
            }
        }
        Some(acl)
    }

    /// The access check algorithm of POSIX.1e ACLs.
    pub fn granted(&self, owner: u32, owning_group: u32, who: &HostIdentity) -> u32 {
        let masked = |perm: u32| self.mask.map_or(perm, |mask| perm & mask);
        if who.uid == owner {
            return self.user_obj;
        }
        if let Some((_, perm)) = self.users.iter().find(|(uid, _)| *uid == who.uid) {
            return masked(*perm);
        }
        let mut group_match = None;
        if who.in_group(owning_group) {
            group_match = Some(self.group_obj);
        }
        for (gid, perm) in &self.groups {
            if who.in_group(*gid) {
                group_match = Some(group_match.unwrap_or(0) | perm);
            }
        }
        match group_match {
            Some(perm) => masked(perm),
            None => self.other,
        }
    }
}

fn read_acl(path: &Path) -> Option<Acl> {
    let bytes = xattr::get(path, "system.posix_acl_access").ok()??;
    Acl::parse(&bytes)
}

/// Why `who` cannot reach a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The path that refuses (a parent directory, or the target itself).
    pub at: PathBuf,
    /// The permission it lacks: "search (x)", "read (r)", "write (w)"...
    pub lacks: &'static str,
    pub perms: Option<PathPerms>,
}

fn lacks_name(bits: u32) -> &'static str {
    match bits {
        READ => "read (r)",
        WRITE => "write (w)",
        EXEC => "search (x)",
        b if b == WRITE | EXEC => "write and search (wx)",
        b if b == READ | EXEC => "read and search (rx)",
        _ => "access",
    }
}

/// Can `who` get `want` on `target`, walking from `root` (the mount's source, the first
/// directory the container sees) through every directory in between?
pub fn reach(root: &Path, target: &Path, who: &HostIdentity, want: u32) -> Result<(), Box<Blocked>> {
    let relative = target.strip_prefix(root).unwrap_or(Path::new(""));
    let mut current = root.to_path_buf();
    let mut steps: Vec<PathBuf> = vec![current.clone()];
    for part in relative.components() {
        current.push(part);
        steps.push(current.clone());
    }
    let last = steps.len() - 1;
    for (index, step) in steps.iter().enumerate() {
        let perms = PathPerms::of(step).map_err(|_| {
            Box::new(Blocked {
                at: step.clone(),
                lacks: "existence",
                perms: None,
            })
        })?;
        let needed = if index == last { want } else { EXEC };
        let granted = perms.granted(who);
        if granted & needed != needed {
            return Err(Box::new(Blocked {
                at: step.clone(),
                lacks: lacks_name(needed & !granted),
                perms: Some(perms),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(uid: u32, gid: u32, mode: u32) -> PathPerms {
        PathPerms {
            uid,
            gid,
            mode,
            acl: None,
        }
    }

    #[test]
    fn mode_bits_pick_owner_group_or_other() {
        let app = HostIdentity::new(49_999, 49_999);
        assert_eq!(perms(0, 0, 0o600).granted(&app), 0);
        assert_eq!(perms(49_999, 0, 0o600).granted(&app), READ | WRITE);
        assert_eq!(perms(0, 49_999, 0o640).granted(&app), READ);
        assert_eq!(perms(0, 0, 0o644).granted(&app), READ);
        // The owner class wins even when it grants less than others.
        assert_eq!(perms(49_999, 0, 0o044).granted(&app), 0);
    }

    #[test]
    fn acl_named_user_is_masked() {
        let mut bytes = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, 0u32),
            (2, 6, 49_999),
            (4, 0, 0),
            (0x10, 4, 0),
            (0x20, 0, 0),
        ] {
            bytes.extend(tag.to_le_bytes());
            bytes.extend(perm.to_le_bytes());
            bytes.extend(id.to_le_bytes());
        }
        let acl = Acl::parse(&bytes).unwrap();
        let app = HostIdentity::new(49_999, 49_999);
        assert_eq!(acl.granted(0, 0, &app), READ);
        assert_eq!(acl.granted(0, 0, &HostIdentity::new(1000, 1000)), 0);
        assert!(Acl::parse(&[1, 0, 0, 0]).is_none());
        assert!(Acl::parse(&[2, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn reach_needs_search_on_every_parent() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("certs");
        std::fs::create_dir_all(root.join("inner")).unwrap();
        std::fs::write(root.join("inner/server.key"), "k").unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("inner"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(
            root.join("inner/server.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let app = HostIdentity::new(49_999, 49_999);
        let blocked = reach(&root, &root.join("inner/server.key"), &app, READ).unwrap_err();
        assert_eq!(blocked.at, root.join("inner"));
        assert_eq!(blocked.lacks, "search (x)");
        std::fs::set_permissions(root.join("inner"), std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(reach(&root, &root.join("inner/server.key"), &app, READ).is_ok());
        assert!(reach(&root, &root.join("inner/server.key"), &app, WRITE).is_err());
    }
}
