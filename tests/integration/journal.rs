//! Journals and the folders they belong to: inode reuse, moves, copies, older formats,
//! forged and cut journals, the state folder's owner, the per-folder lock.
//!
//! These tests run as root (they chown); each uses its own journal folder.

use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::{Path, PathBuf};
use std::process::Output;

use flowerbed::ownership::journal::{self, Frame, MAGIC, encode_frame};

use crate::testenv::{Snapshot, TestEnv, snapshot};

/// A test folder; journals go to `state/`.
pub(crate) struct Env {
    pub(crate) env: TestEnv,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self { env: TestEnv::new() }
    }

    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.env.join(rel)
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.env.join("state")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.env
            .flowerbed(args)
            .env("FLOWERBED_STATE_DIR", self.state())
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .output()
            .unwrap()
    }

    /// A folder with one file, both owned by `uid:uid`.
    pub(crate) fn folder(&self, name: &str, uid: u32) -> PathBuf {
        let dir = self.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), name).unwrap();
        lchown(&dir, Some(uid), Some(uid)).unwrap();
        lchown(dir.join("f"), Some(uid), Some(uid)).unwrap();
        dir
    }

    pub(crate) fn journals(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.state())
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        out.retain(|p| p.extension().is_some_and(|e| e == "journal"));
        out.sort();
        out
    }

    pub(crate) fn journal_of(&self, path: &Path) -> PathBuf {
        let meta = std::fs::symlink_metadata(path).unwrap();
        self.state()
            .join(format!("own-{:x}-{:x}.journal", meta.dev(), meta.ino()))
    }

    /// Everything: the test folder (the state folder included), bytes, owners and modes.
    pub(crate) fn snapshot(&self) -> Snapshot {
        snapshot(self.env.path())
    }
}

pub(crate) fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Exit 2 with one `flowerbed:` line naming `culprit`.
pub(crate) fn assert_refused(out: &Output, culprit: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{}", text(out));
    assert!(stderr.starts_with("flowerbed: "), "{}", text(out));
    assert!(
        stderr.contains(culprit),
        "does not name {culprit:?}: {}",
        text(out)
    );
}

/// Create folders next to where `gone` was until one gets its inode back (bounded): the
/// folder, renamed to `name`, or `None` if the filesystem never gave it back.
fn folder_with_inode(env: &Env, ino: u64, name: &str) -> Option<PathBuf> {
    let mut made = Vec::new();
    let mut found = None;
    for i in 0..2_000 {
        let candidate = env.join(&format!("candidate-{i}"));
        std::fs::create_dir(&candidate).unwrap();
        if std::fs::metadata(&candidate).unwrap().ino() == ino {
            found = Some(candidate);
            break;
        }
        made.push(candidate);
    }
    for dir in made {
        std::fs::remove_dir(dir).unwrap();
    }
    let found = found?;
    let target = env.join(name);
    std::fs::rename(found, &target).unwrap();
    Some(target)
}

/// The sequence of issue 22: own a folder, delete it without release, and let a new
/// folder get its inode. The old journal is never used for the new folder.
#[test]
fn a_new_folder_that_gets_a_deleted_folders_inode_never_inherits_its_journal() {
    let env = Env::new();
    let a = env.folder("a", 1111);
    let out = env.run(&["own", "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ino = std::fs::metadata(&a).unwrap().ino();
    let old_journal = env.journal_of(&a);
    std::fs::remove_dir_all(&a).unwrap();
    let Some(b1) = folder_with_inode(&env, ino, "b1") else {
        eprintln!("skipped: the filesystem did not reuse inode {ino} within 2,000 folders");
        return;
    };
    std::fs::write(b1.join("g"), "g").unwrap();
    lchown(&b1, Some(2222), Some(2222)).unwrap();
    lchown(b1.join("g"), Some(2222), Some(2222)).unwrap();
    assert_eq!(env.journal_of(&b1), old_journal);

    // undo refuses the old journal outright, --skip-changed or not; nothing changes.
    let before = env.snapshot();
    for args in [&["undo", "b1"][..], &["undo", "--skip-changed", "b1"]] {
        let out = env.run(args);
        assert_refused(&out, &old_journal.display().to_string());
        assert!(text(&out).contains("belongs to another folder"), "{}", text(&out));
        assert_eq!(env.snapshot(), before, "{args:?} changed something");
    }
    let list = env.run(&["journal", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("stale ("),
        "{}",
        text(&list)
    );

    // own sets the old journal aside (saying so) and starts a new one.
    let out = env.run(&["own", "b1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("set aside journal"), "{}", text(&out));
    let list = text(&env.run(&["journal", "list"]));
    assert!(list.contains("b1: live; 1 run(s), 2 entries"), "{list}");
    assert!(!list.contains("2 run(s)"), "{list}");

    // undo puts b1 back exactly: 2222, not the deleted folder's 1111.
    let out = env.run(&["undo", "b1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("matched to the folder by its birth time"),
        "{}",
        text(&out)
    );
    assert_eq!(owner(&b1), (2222, 2222));
    assert_eq!(owner(&b1.join("g")), (2222, 2222));
    // The set-aside journal was pruned (its folder is provably gone), the new one removed.
    assert!(env.journals().is_empty(), "{:?}", env.journals());
}

#[test]
fn a_folder_moved_on_the_same_filesystem_keeps_its_journal() {
    let env = Env::new();
    let tree = env.folder("tree", 1000);
    let out = env.run(&["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::create_dir(env.join("elsewhere")).unwrap();
    let moved = env.join("elsewhere/moved");
    std::fs::rename(&tree, &moved).unwrap();
    let list = text(&env.run(&["journal", "list"]));
    assert!(
        list.contains(&format!("live (moved to {})", moved.display())),
        "{list}"
    );
    // Neither prune nor another own of a folder on the device removes it; that own does
    // remove the journal of a folder deleted without release.
    let out = env.run(&["journal", "prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let gone = env.folder("gone", 7);
    assert_eq!(env.run(&["own", "gone"]).status.code(), Some(0));
    let gone_journal = env.journal_of(&gone);
    // Made before the deletion, so it cannot get the deleted folder's inode.
    env.folder("other", 5);
    std::fs::remove_dir_all(&gone).unwrap();
    let out = env.run(&["own", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "removed 1 journal(s) of folders since deleted: {}",
            gone_journal.display()
        )),
        "{}",
        text(&out)
    );
    assert!(!gone_journal.exists());
    assert!(env.journal_of(&moved).exists());
    let out = env.run(&["undo", "elsewhere/moved"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(owner(&moved), (1000, 1000));
    assert_eq!(owner(&moved.join("f")), (1000, 1000));
}

#[test]
fn a_folder_replaced_by_a_copy_does_not_get_its_journal() {
    let env = Env::new();
    let a = env.folder("a", 1000);
    assert_eq!(env.run(&["own", "a"]).status.code(), Some(0));
    let old_journal = env.journal_of(&a);
    // cp -a then swap: same path, owners and content, another folder.
    let copy = env.join("a.copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("f"), "a").unwrap();
    for path in [&copy, &copy.join("f")] {
        lchown(path, Some(49_999), Some(49_999)).unwrap();
    }
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::rename(&copy, &a).unwrap();
    let before = env.snapshot();
    let out = env.run(&["undo", "a"]);
    if env.journal_of(&a) == old_journal {
        // The copy happened to get the inode back: still not its journal.
        assert_refused(&out, "belongs to another folder");
    } else {
        assert_refused(&out, "no journal");
    }
    assert_eq!(env.snapshot(), before);
    let list = text(&env.run(&["journal", "list"]));
    assert!(
        list.contains("stale (") || list.contains("mismatched ("),
        "{list}"
    );
    let dry = env.run(&["journal", "prune", "--dry-run", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    assert_eq!(json["journals"][0]["removed"], true, "{json}");
    assert!(old_journal.exists(), "--dry-run removed it");
    let out = env.run(&["journal", "prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!old_journal.exists());
    assert!(!old_journal.with_extension("lock").exists());
}

#[test]
fn a_second_run_on_a_locked_folder_waits_or_exits_2_with_no_wait() {
    use nix::fcntl::{Flock, FlockArg};
    let env = Env::new();
    let tree = env.folder("tree", 1000);
    journal::ensure_state_dir(&env.state(), None).unwrap();
    let lock_path = env.journal_of(&tree).with_extension("lock");
    let file = std::fs::File::create(&lock_path).unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusive).unwrap();
    let before = env.snapshot();
    for args in [
        &["own", "--no-wait", "tree"][..],
        &["release", "--no-wait", "--to", "0:0", "tree"],
    ] {
        let out = env.run(args);
        assert_refused(&out, &lock_path.display().to_string());
        assert_eq!(env.snapshot(), before, "{args:?}");
    }
    // Without --no-wait it waits, says so, and goes on once the lock is released.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(["own", "tree"])
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "own did not wait for the lock"
    );
    assert_eq!(owner(&tree), (1000, 1000));
    drop(held);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("waiting for another flowerbed run on"),
        "{}",
        text(&out)
    );
    assert_eq!(owner(&tree), (49_999, 49_999));
}

/// own, own --uid 1234 and undo started together, again and again: every run either
/// does its work or finds no journal; the journal is never corrupt; and the owners end
/// exactly as some order of the three would leave them.
#[test]
fn concurrent_own_own_and_undo_never_corrupt_the_journal() {
    let env = Env::new();
    let tree = env.folder("tree", 1000);
    for i in 0..40 {
        std::fs::write(tree.join(format!("f{i}")), "x").unwrap();
        lchown(tree.join(format!("f{i}")), Some(1000), Some(1000)).unwrap();
    }
    let original = snapshot(&tree);
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    for round in 0..25 {
        let spawn = |args: &[&str]| {
            std::process::Command::new(&bin)
                .args(args)
                .current_dir(env.env.path())
                .env("FLOWERBED_STATE_DIR", env.state())
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let children = [
            spawn(&["own", "tree"]),
            spawn(&["own", "--uid", "1234", "--gid", "1234", "tree"]),
            spawn(&["undo", "tree"]),
        ];
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() == Some(0)
                    || (out.status.code() == Some(2) && stderr.contains("no journal")),
                "round {round}: {}",
                text(&out)
            );
            assert!(!stderr.contains("corrupt"), "round {round}: {stderr}");
        }
        let owners: std::collections::BTreeSet<(u32, u32)> =
            snapshot(&tree).values().map(|s| (s.uid, s.gid)).collect();
        assert_eq!(owners.len(), 1, "round {round}: mixed owners {owners:?}");
        if env.journals().is_empty() {
            assert_eq!(
                snapshot(&tree),
                original,
                "round {round}: no journal, tree not back"
            );
        } else {
            let out = env.run(&["undo", "tree"]);
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
            assert_eq!(snapshot(&tree), original, "round {round}: undo not exact");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    /// own then undo restores any tree exactly, also when the folder was deleted (without
    /// release) and made again in between: the new folder, which often gets the old one's
    /// inode, is restored to its own state, never to the deleted folder's.
    #[test]
    fn own_undo_is_exact_across_folders_deleted_and_made_again(
        first in proptest::collection::vec((0_u32..3, 0_u32..0o1000, 0_u32..3), 0..12),
        second in proptest::collection::vec((0_u32..3, 0_u32..0o1000, 0_u32..3), 0..12),
        root_uid in 0_u32..2,
    ) {
        let env = Env::new();
        let tree = env.join("tree");
        build_tree(&tree, root_uid, &first);
        let out = env.run(&["own", "tree"]);
        proptest::prop_assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        std::fs::remove_dir_all(&tree).unwrap();
        build_tree(&tree, 1 - root_uid, &second);
        let before = snapshot(&tree);
        let out = env.run(&["own", "tree"]);
        proptest::prop_assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let out = env.run(&["undo", "tree"]);
        proptest::prop_assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        proptest::prop_assert_eq!(snapshot(&tree), before);
    }
}

/// A folder of files and subfolders: (kind 0 file / 1 folder / 2 file in the last folder,
/// permission bits, owner index). The root is not 49999's, so `own` always changes it.
fn build_tree(root: &Path, root_uid: u32, entries: &[(u32, u32, u32)]) {
    let uids = [0, 1000, 49_999];
    std::fs::create_dir(root).unwrap();
    lchown(root, Some(uids[root_uid as usize]), Some(uids[root_uid as usize])).unwrap();
    let mut last_dir = root.to_path_buf();
    for (i, &(kind, mode, uid)) in entries.iter().enumerate() {
        let path = match kind {
            1 => root.join(format!("d{i}")),
            2 => last_dir.join(format!("f{i}")),
            _ => root.join(format!("f{i}")),
        };
        if kind == 1 {
            std::fs::create_dir(&path).unwrap();
            last_dir.clone_from(&path);
        } else {
            std::fs::write(&path, format!("{i}")).unwrap();
        }
        lchown(&path, Some(uids[uid as usize]), Some(uids[uid as usize])).unwrap();
        // Folders stay enterable by root whatever their bits.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// A later run that crashed before its first records frame was complete changed nothing:
/// undo passes over it (after the next own cut its torn frame, too) and restores the
/// earlier runs exactly.
#[test]
fn a_run_cut_before_its_first_records_frame_does_not_block_undo() {
    let env = Env::new();
    let tree = env.folder("tree", 1000);
    let before = snapshot(&tree);
    assert_eq!(env.run(&["own", "tree"]).status.code(), Some(0));
    let journal = env.journal_of(&tree);
    let bytes = std::fs::read(&journal).unwrap();
    let (frames, _) = journal::parse(&bytes).unwrap();
    let mut torn = bytes.clone();
    torn.extend(encode_frame(&frames[0]));
    let records = encode_frame(&frames[1]);
    torn.extend(&records[..records.len() / 2]);
    for own_again in [false, true] {
        std::fs::write(&journal, &torn).unwrap();
        if own_again {
            // Nothing left to change; the torn frame is cut, the run's session frame stays.
            let out = env.run(&["own", "tree"]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            assert!(std::fs::read(&journal).unwrap().len() < torn.len());
        }
        let out = env.run(&["undo", "tree"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(snapshot(&tree), before);
        assert_eq!(env.run(&["own", "tree"]).status.code(), Some(0));
        let bytes_now = std::fs::read(&journal).unwrap();
        torn = bytes_now.clone();
        let (frames, _) = journal::parse(&bytes_now).unwrap();
        torn.extend(encode_frame(&frames[0]));
        let records = encode_frame(&frames[1]);
        torn.extend(&records[..records.len() / 2]);
    }
}

/// A journal recorded on another filesystem that had the same device number is not
/// pruned: its file handle means nothing here.
#[test]
fn journals_of_another_filesystem_with_the_same_device_number_are_not_pruned() {
    let env = Env::new();
    let gone = env.folder("gone", 7);
    assert_eq!(env.run(&["own", "gone"]).status.code(), Some(0));
    let gone_journal = env.journal_of(&gone);
    // Rewrite its run as if recorded on another filesystem (checksums recomputed).
    let (frames, _) = journal::parse(&std::fs::read(&gone_journal).unwrap()).unwrap();
    let mut bytes = MAGIC.to_vec();
    for mut frame in frames {
        if let Frame::Session(info) = &mut frame {
            let identity = info.identity.as_mut().expect("an identity recorded");
            assert!(identity.fsid.is_some(), "no filesystem id recorded");
            identity.fsid = identity.fsid.map(|id| id ^ 1);
        }
        bytes.extend(encode_frame(&frame));
    }
    std::fs::write(&gone_journal, &bytes).unwrap();
    env.folder("other", 5);
    std::fs::remove_dir_all(&gone).unwrap();
    let out = env.run(&["own", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("removed 1 journal"), "{}", text(&out));
    assert_eq!(std::fs::read(&gone_journal).unwrap(), bytes);
    let list = text(&env.run(&["journal", "list"]));
    assert!(list.contains("gone: unknown ("), "{list}");
}
