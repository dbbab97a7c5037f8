//! Generated trees (proptest): `own` then `undo` restores any tree and never reaches
//! outside it.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;

use crate::testenv::{snapshot, stderr};

use super::OwnEnv;

/// One entry of a generated tree: what it is, and the folder it goes in (an index into
/// the folders made so far).
#[derive(Debug, Clone)]
enum GenEntry {
    File {
        mode: u32,
        uid: u32,
        content: Vec<u8>,
    },
    Dir {
        mode: u32,
        uid: u32,
    },
    Fifo {
        mode: u32,
        uid: u32,
    },
    /// To an earlier entry (index) of the tree.
    SymlinkInside(usize),
    SymlinkOutside {
        to_dir: bool,
    },
    /// To an earlier file (index) of the tree.
    HardLinkInside(usize),
    HardLinkOutside,
}

fn gen_entry() -> impl proptest::strategy::Strategy<Value = GenEntry> {
    use proptest::prelude::*;
    // Permission bits with setuid, setgid and sticky drawn as often as not.
    let mode = 0_u32..0o10_000;
    let uid = prop_oneof![Just(0_u32), Just(1_000), Just(49_999), 1_u32..70_000];
    prop_oneof![
        4 => (mode.clone(), uid.clone(), proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(mode, uid, content)| GenEntry::File { mode, uid, content }),
        3 => (mode.clone(), uid.clone()).prop_map(|(mode, uid)| GenEntry::Dir { mode, uid }),
        1 => (mode, uid).prop_map(|(mode, uid)| GenEntry::Fifo { mode, uid }),
        1 => any::<usize>().prop_map(GenEntry::SymlinkInside),
        1 => any::<bool>().prop_map(|to_dir| GenEntry::SymlinkOutside { to_dir }),
        1 => any::<usize>().prop_map(GenEntry::HardLinkInside),
        1 => Just(GenEntry::HardLinkOutside),
    ]
}

/// Build the generated tree below `tree` (outside things in `outside`).
fn build_generated_tree(env: &OwnEnv, entries: &[(GenEntry, usize)]) {
    use std::os::unix::fs::lchown;
    let tree = env.tree();
    let outside = env.outside();
    std::fs::write(outside.join("secret"), "host file").unwrap();
    std::fs::create_dir(outside.join("dir")).unwrap();
    std::fs::write(outside.join("dir/inner"), "host dir content").unwrap();
    std::fs::write(outside.join("linked"), "hard linked into the tree").unwrap();
    for path in ["secret", "dir", "dir/inner", "linked"] {
        lchown(outside.join(path), Some(1_234), Some(4_321)).unwrap();
    }
    std::fs::set_permissions(outside.join("secret"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut dirs = vec![tree.clone()];
    let mut made: Vec<PathBuf> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    // Modes are set last (a folder without write permission still takes entries: root).
    let mut modes = Vec::new();
    for (index, (entry, parent)) in entries.iter().enumerate() {
        let path = dirs[parent % dirs.len()].join(format!("e{index}"));
        match entry {
            GenEntry::File { mode, uid, content } => {
                std::fs::write(&path, content).unwrap();
                lchown(&path, Some(*uid), Some(uid + 1)).unwrap();
                modes.push((path.clone(), *mode));
                files.push(path.clone());
            }
            GenEntry::Dir { mode, uid } => {
                std::fs::create_dir(&path).unwrap();
                lchown(&path, Some(*uid), Some(uid + 1)).unwrap();
                modes.push((path.clone(), *mode));
                dirs.push(path.clone());
            }
            GenEntry::Fifo { mode, uid } => {
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
                lchown(&path, Some(*uid), Some(uid + 1)).unwrap();
                modes.push((path.clone(), *mode));
            }
            GenEntry::SymlinkInside(target) => {
                let target = if made.is_empty() {
                    tree.clone()
                } else {
                    made[target % made.len()].clone()
                };
                symlink(target, &path).unwrap();
            }
            GenEntry::SymlinkOutside { to_dir } => {
                symlink(outside.join(if *to_dir { "dir" } else { "secret" }), &path).unwrap();
            }
            GenEntry::HardLinkInside(target) => {
                if files.is_empty() {
                    std::fs::write(&path, b"").unwrap();
                } else {
                    std::fs::hard_link(&files[target % files.len()], &path).unwrap();
                }
            }
            GenEntry::HardLinkOutside => std::fs::hard_link(outside.join("linked"), &path).unwrap(),
        }
        made.push(path);
    }
    for (path, mode) in modes {
        // chown cleared setuid/setgid: the generated mode goes on after the owner.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random trees: `own` gives away exactly what it may and touches nothing outside;
    /// `undo` brings back every owner, group, mode, type and content.
    #[test]
    fn own_then_undo_restores_any_tree_and_never_reaches_outside(
        entries in proptest::collection::vec((gen_entry(), proptest::prelude::any::<usize>()), 0..24)
    ) {
        let env = OwnEnv::new();
        build_generated_tree(&env, &entries);
        let (tree_before, outside_before) = env.snapshot();

        let out = env.run(["own", "tree"]);
        proptest::prop_assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        proptest::prop_assert_eq!(&snapshot(&env.outside()), &outside_before);
        for (path, state) in snapshot(&env.tree()) {
            let meta = std::fs::symlink_metadata(env.tree().join(&path)).unwrap();
            let hard_linked = meta.is_file() && meta.nlink() > 1;
            let expected = if hard_linked {
                let old = &tree_before[&path];
                (old.uid, old.gid)
            } else {
                (49_999, 49_999)
            };
            proptest::prop_assert_eq!((state.uid, state.gid), expected, "{}", path.display());
        }

        let out = env.run(["undo", "tree"]);
        proptest::prop_assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let (tree_after, outside_after) = env.snapshot();
        proptest::prop_assert_eq!(tree_after, tree_before);
        proptest::prop_assert_eq!(outside_after, outside_before);
    }
}
