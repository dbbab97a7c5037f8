//! `own`, `undo`, `release`, `journal`: hostile trees, exact undo, crashes, races, bad input.
//!
//! These tests run as root (they chown); each uses its own journal folder through
//! `FLOWERBED_STATE_DIR`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::testenv::{Snapshot, TestEnv, assert_bad_input, snapshot};

/// A test folder with `tree/` (handed over), `outside/` (must never change) and `state/`
/// (the journal folder).
pub(crate) struct OwnEnv {
    pub(crate) env: TestEnv,
}

impl OwnEnv {
    pub(crate) fn new() -> Self {
        let env = TestEnv::new();
        for dir in ["tree", "outside"] {
            std::fs::create_dir(env.join(dir)).unwrap();
        }
        Self { env }
    }

    pub(crate) fn tree(&self) -> PathBuf {
        self.env.join("tree")
    }

    pub(crate) fn outside(&self) -> PathBuf {
        self.env.join("outside")
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.env.join("state")
    }

    pub(crate) fn command<I, S>(&self, args: I) -> assert_cmd::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.env.flowerbed(args);
        command
            .env("FLOWERBED_STATE_DIR", self.state())
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .env_remove("DOCKER_HOST");
        command
    }

    pub(crate) fn run<I, S>(&self, args: I) -> std::process::Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().unwrap()
    }

    /// The journals in the state folder (not the lock files beside them).
    pub(crate) fn journal_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.state()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "journal"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Everything in one snapshot: the tree and the outside folder.
    pub(crate) fn snapshot(&self) -> (Snapshot, Snapshot) {
        (snapshot(&self.tree()), snapshot(&self.outside()))
    }

    /// The hostile tree the issue asks for.
    pub(crate) fn build_hostile_tree(&self) {
        let tree = self.tree();
        let outside = self.outside();
        std::fs::write(outside.join("secret"), "host file").unwrap();
        std::fs::create_dir(outside.join("dir")).unwrap();
        std::fs::write(outside.join("dir/inner"), "host dir content").unwrap();
        std::fs::write(outside.join("linked"), "hard linked into the tree").unwrap();

        std::fs::write(tree.join("plain"), "data").unwrap();
        symlink(outside.join("secret"), tree.join("link-to-outside-file")).unwrap();
        symlink(outside.join("dir"), tree.join("link-to-outside-dir")).unwrap();
        std::fs::hard_link(outside.join("linked"), tree.join("hard-link")).unwrap();
        nix::unistd::mkfifo(
            &tree.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
        std::fs::write(tree.join("setuid"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(tree.join("setuid"), std::fs::Permissions::from_mode(0o6755)).unwrap();
        std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
        std::fs::write(tree.join("a/b/c/key"), "private").unwrap();
        std::fs::set_permissions(tree.join("a/b/c/key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            std::fs::set_permissions(tree.join(dir), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(tree.join("name with spaces"), "s").unwrap();
        std::fs::write(tree.join("new\nline"), "n").unwrap();
        let invalid = OsStr::from_bytes(b"bad-\xff\xfe-utf8");
        std::fs::create_dir(tree.join(invalid)).unwrap();
        std::fs::write(tree.join(invalid).join("inside"), "i").unwrap();
        // Some entries start with other owners, so undo has something to tell apart.
        std::os::unix::fs::lchown(tree.join("plain"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::lchown(tree.join("link-to-outside-dir"), Some(7), Some(8)).unwrap();
    }
}

pub(crate) fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

pub(crate) fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn own_reowns_everything_inside_and_nothing_outside() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let (_, outside_before) = env.snapshot();
    let out = env.run(["own", "--uid", "1234", "--gid", "5678", "tree"]);
    // The hard-linked file is a finding: exit 1, named in a warning.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("hard-link"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 skipped (1 hard_linked)"),
        "{}",
        stdout(&out)
    );

    let (tree_after, outside_after) = env.snapshot();
    assert_eq!(
        outside_before, outside_after,
        "something outside the tree changed"
    );
    for (path, state) in &tree_after {
        if path == Path::new("hard-link") {
            assert_eq!((state.uid, state.gid), (0, 0), "hard-linked file must be skipped");
        } else {
            assert_eq!(
                (state.uid, state.gid),
                (1234, 5678),
                "{} not re-owned",
                path.display()
            );
        }
    }
    // Modes stay, except that chown cleared setuid/setgid as the kernel does.
    assert_eq!(tree_after[Path::new("a/b/c")].mode, 0o700);
    assert_eq!(tree_after[Path::new("a/b/c/key")].mode, 0o600);
    assert_eq!(tree_after[Path::new("setuid")].mode, 0o755);
    assert_eq!(tree_after.len(), 15);
}

#[test]
fn allow_hardlinks_includes_hard_linked_files() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let out = env.run(["own", "--allow-hardlinks", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(owner(&env.tree().join("hard-link")), (49_999, 49_999));
    assert_eq!(owner(&env.outside().join("secret")), (0, 0));
}

#[test]
fn undo_restores_owners_and_modes_exactly() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let before = env.snapshot();
    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_ne!(env.snapshot(), before);
    assert_eq!(env.journal_files().len(), 1);
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.snapshot(), before);
    assert!(
        env.journal_files().is_empty(),
        "journal should be removed after a full undo"
    );
}

#[test]
fn undo_after_two_owns_returns_to_the_state_before_the_first() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let before = env.snapshot();
    env.run(["own", "--uid", "10", "--gid", "10", "tree"]);
    // Between the two runs a new (root-owned) file appears; the second own takes it too.
    std::fs::write(env.tree().join("made-later"), "x").unwrap();
    env.run(["own", "--uid", "20", "--gid", "20", "tree"]);
    assert_eq!(owner(&env.tree().join("plain")), (20, 20));
    assert_eq!(owner(&env.tree().join("made-later")), (20, 20));
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Everything is as before the first own, and the later file as before the second.
    let mut after = env.snapshot();
    let later = after.0.remove(Path::new("made-later")).unwrap();
    assert_eq!((later.uid, later.gid), (0, 0));
    assert!(
        after == before,
        "undo did not return to the state before the first own"
    );
}

#[test]
fn second_own_changes_nothing_and_does_not_grow_the_journal() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    env.run(["own", "tree"]);
    let journal = env.journal_files().pop().unwrap();
    let journal_before = std::fs::read(&journal).unwrap();
    let tree_before = env.snapshot();
    let out = env.run(["own", "--json", "tree"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["roots"][0]["changed"], 0);
    assert_eq!(report["roots"][0]["already_right"], 14);
    assert_eq!(std::fs::read(&journal).unwrap(), journal_before);
    assert_eq!(env.snapshot(), tree_before);
}

#[test]
fn entries_of_a_directory_are_changed_in_inode_order() {
    let env = OwnEnv::new();
    let dir = env.tree().join("many");
    std::fs::create_dir(&dir).unwrap();
    let count = 600;
    for i in 0..count {
        std::fs::write(dir.join(format!("f{i:03}")), b"").unwrap();
    }
    // Renaming moves names around in the directory's listing but keeps their inodes, so the
    // listing order differs from the inode order on any filesystem.
    for i in (0..count).step_by(2) {
        let j = (i * 7) % count;
        std::fs::rename(dir.join(format!("f{j:03}")), dir.join(format!("r{j:03}"))).ok();
    }
    symlink("f001", dir.join("link")).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A directory in between: what was listed before it is looked at before going down.
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/inner"), b"").unwrap();

    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env.run(["journal", "show", "--json", "tree"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inodes: Vec<u64> = shown["sessions"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let path = e["path"].as_str().unwrap();
            path.starts_with("many/") && path.matches('/').count() == 1 && path != "many/sub"
        })
        .map(|e| e["ino"].as_u64().unwrap())
        .collect();
    assert_eq!(inodes.len(), count + 2, "every file, the symlink and the FIFO");
    // What was listed before `sub` and what was listed after it are each in inode order.
    let runs = 1 + inodes.windows(2).filter(|pair| pair[0] > pair[1]).count();
    assert!(
        runs <= 2,
        "records of one directory's entries are not in inode order ({runs} ascending runs)"
    );
    for (path, state) in snapshot(&env.tree()) {
        assert_eq!((state.uid, state.gid), (49999, 49999), "{}", path.display());
    }
}

#[test]
fn dry_run_changes_nothing_and_writes_no_journal() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let before = env.snapshot();
    let out = env.run(["own", "--dry-run", "tree"]);
    assert!(stdout(&out).contains("14 to change"), "{}", stdout(&out));
    assert_eq!(env.snapshot(), before);
    assert!(env.journal_files().is_empty());
    // The plan names each entry with its current owner.
    let out = env.run(["own", "--dry-run", "--json", "tree"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned = plan["roots"][0]["planned"].as_array().unwrap();
    assert_eq!(planned.len(), 14);
    let plain_file = planned.iter().find(|p| p["path"] == "plain").unwrap();
    assert_eq!(
        (plain_file["uid"].as_u64(), plain_file["mode"].as_str()),
        (Some(1000), Some("0644"))
    );
    assert_eq!(env.snapshot(), before);
    env.run(["own", "tree"]);
    let owned = env.snapshot();
    let out = env.run(["undo", "--dry-run", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.snapshot(), owned);
    let out = env.run(["release", "--dry-run", "--to", "0:0", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(env.snapshot(), owned);
}

#[test]
fn journal_is_private_and_listed() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    env.run(["own", "tree"]);
    let journal = env.journal_files().pop().unwrap();
    assert_eq!(std::fs::metadata(&journal).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(env.state()).unwrap().mode() & 0o777, 0o700);
    let out = env.run(["journal", "list"]);
    assert!(stdout(&out).contains("14 entries recorded"), "{}", stdout(&out));
    let out = env.run(["journal", "show", "--json", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = shown["sessions"][0]["entries"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"new\\nline") && names.contains(&"bad-\\xff\\xfe-utf8/inside"),
        "{names:?}"
    );
    let setuid = entries.iter().find(|e| e["path"] == "setuid").unwrap();
    assert_eq!(setuid["mode"], "6755");
}

#[test]
fn release_hands_the_tree_to_the_sudo_caller_and_retires_the_journal() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let (_, outside_before) = env.snapshot();
    env.run(["own", "tree"]);
    let out = env
        .env
        .flowerbed(["release", "tree"])
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("SUDO_UID", "4242")
        .env("SUDO_GID", "4343")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "hard link is a finding: {}",
        stderr(&out)
    );
    for (path, state) in snapshot(&env.tree()) {
        if path != Path::new("hard-link") {
            assert_eq!((state.uid, state.gid), (4242, 4343), "{}", path.display());
        }
    }
    assert_eq!(snapshot(&env.outside()), outside_before);

    let out = env.run(["release", "--allow-hardlinks", "--to", "root:daemon", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(owner(&env.tree().join("plain")), (0, 1));
    assert!(stdout(&out).contains("journal retired"), "{}", stdout(&out));
    assert!(env.journal_files().is_empty());
}

#[test]
fn release_retires_the_journals_of_folders_inside_and_no_others() {
    let env = OwnEnv::new();
    for dir in ["tree/sub/deeper", "outside/other"] {
        std::fs::create_dir_all(env.env.join(dir)).unwrap();
        std::fs::write(env.env.join(dir).join("file"), b"").unwrap();
    }
    std::fs::write(env.tree().join("single"), b"").unwrap();
    // Inner roots first: owning `sub` first would leave nothing to change in `deeper`.
    for path in ["tree/sub/deeper", "tree/sub", "tree/single", "outside/other"] {
        let out = env.run(["own", path]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(env.journal_files().len(), 4);
    let other = journal_of(&env, &env.outside().join("other"));

    // A dry run names them and keeps them.
    let out = env.run(["release", "--dry-run", "--to", "0:0", "tree"]);
    assert!(
        stdout(&out).contains("journals of paths inside kept"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.journal_files().len(), 4);
    // So does a release that skipped something (a hard link to a file outside).
    std::fs::hard_link(env.outside().join("other/file"), env.tree().join("linked")).unwrap();
    let out = env.run(["release", "--to", "0:0", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(env.journal_files().len(), 4);
    std::fs::remove_file(env.tree().join("linked")).unwrap();

    let out = env.run(["release", "--json", "--to", "0:0", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["roots"][0]["inner_journals"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        env.journal_files(),
        vec![other],
        "only the journal of the folder outside is left"
    );
    assert_eq!(owner(&env.tree().join("sub/deeper/file")), (0, 0));
}

/// The journal file `own` keeps for `path`.
pub(crate) fn journal_of(env: &OwnEnv, path: &Path) -> PathBuf {
    let meta = std::fs::symlink_metadata(path).unwrap();
    env.state()
        .join(format!("own-{:x}-{:x}.journal", meta.dev(), meta.ino()))
}

/// Build a flat-ish tree of `count` files spread over directories.
pub(crate) fn build_large_tree(root: &Path, count: usize) {
    for i in 0..count {
        let dir = root.join(format!("d{:03}", i / 200));
        if i % 200 == 0 {
            std::fs::create_dir(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i}")), b"").unwrap();
    }
    std::fs::set_permissions(root.join("d000/f1"), std::fs::Permissions::from_mode(0o4711)).unwrap();
}

#[test]
fn sigkill_at_any_point_then_undo_restores_the_snapshot() {
    // Kills land at the first change, inside a batch, and late in the walk.
    let env = OwnEnv::new();
    build_large_tree(&env.tree(), 17_000);
    let before = env.snapshot();
    for kill_after in [1_u64, 5_000, 16_390] {
        let out = env
            .env
            .flowerbed(["own", "tree"])
            .env("FLOWERBED_STATE_DIR", env.state())
            .env("FLOWERBED_TEST_KILL_AFTER", kill_after.to_string())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "own should have been killed: {}",
            stderr(&out)
        );
        let changed = snapshot(&env.tree()).values().filter(|s| s.uid == 49_999).count();
        assert!(
            changed as u64 >= kill_after,
            "kill after {kill_after}: only {changed} changed"
        );
        if kill_after == 5_000 {
            // The interrupted run is finished by a second own; undo still goes all the way back.
            let out = env.run(["own", "tree"]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        }
        let out = env.run(["undo", "tree"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "kill after {kill_after}: {}",
            stderr(&out)
        );
        assert!(
            env.snapshot() == before,
            "kill after {kill_after}: undo did not restore the snapshot"
        );
    }
}

#[test]
fn swapping_a_directory_for_a_symlink_never_reaches_outside() {
    let env = OwnEnv::new();
    let tree = env.tree();
    let outside = env.outside();
    for i in 0..20 {
        std::fs::write(outside.join(format!("host{i}")), "host").unwrap();
    }
    std::fs::create_dir(tree.join("swap")).unwrap();
    for i in 0..50 {
        std::fs::write(tree.join("swap").join(format!("f{i}")), "").unwrap();
    }
    let outside_before = snapshot(&outside);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let tree = tree.clone();
        let outside = outside.clone();
        std::thread::spawn(move || {
            let mut swaps = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(tree.join("swap"), tree.join("swap.real")).unwrap();
                symlink(&outside, tree.join("swap")).unwrap();
                std::thread::yield_now();
                std::fs::remove_file(tree.join("swap")).unwrap();
                std::fs::rename(tree.join("swap.real"), tree.join("swap")).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    for i in 0..150 {
        let (command, to) = if i % 2 == 0 {
            ("own", "--uid=31337")
        } else {
            ("release", "--to=4242:4242")
        };
        let args: Vec<&str> = if command == "own" {
            vec![command, to, "--gid=31337", "tree"]
        } else {
            vec![command, to, "tree"]
        };
        let out = env.run(&args);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{command}: {}",
            stderr(&out)
        );
        let now = snapshot(&outside);
        assert!(
            now == outside_before,
            "iteration {i} ({command}) changed something outside the tree"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0);
    assert_eq!(snapshot(&outside), outside_before);
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct TmpfsMount(PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.0);
    }
}

#[test]
fn mount_points_below_the_root_are_reported_and_not_entered() {
    let env = OwnEnv::new();
    std::fs::write(env.tree().join("file"), "x").unwrap();
    let mount_point = env.tree().join("mnt");
    std::fs::create_dir(&mount_point).unwrap();
    let mounted = nix::mount::mount(
        Some("none"),
        &mount_point,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if mounted.is_err() {
        eprintln!("cannot mount tmpfs here ({mounted:?}); mount-point test skipped");
        return;
    }
    let _guard = TmpfsMount(mount_point.clone());
    std::fs::write(mount_point.join("other-fs"), "y").unwrap();
    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("mnt: mount point"), "{}", stderr(&out));
    assert_eq!(owner(&env.tree().join("file")), (49_999, 49_999));
    assert_eq!(owner(&mount_point), (0, 0));
    assert_eq!(owner(&mount_point.join("other-fs")), (0, 0));
}

#[test]
fn deep_trees_are_walked_within_the_open_file_limit() {
    let env = OwnEnv::new();
    // 1,500 levels: deeper than a low open-file limit, within PATH_MAX for building it.
    let mut deepest = env.tree();
    for _ in 0..1_500 {
        deepest.push("d");
    }
    std::fs::create_dir_all(&deepest).unwrap();
    std::fs::write(deepest.join("leaf"), "x").unwrap();
    let before = env.snapshot();

    // With 256 descriptors the walk stops at a safe depth and says so, without failing.
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(["own", "--json", "tree"])
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.state())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["roots"][0]["skipped_by_reason"]["too_deep"], 1, "{report}");
    assert!(
        report["roots"][0]["skipped_by_reason"].get("error").is_none(),
        "{report}"
    );
    assert_eq!(owner(&deepest.join("leaf")), (0, 0));
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.snapshot() == before);

    // With the usual limit the whole tree is taken, and undone.
    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(owner(&deepest.join("leaf")), (49_999, 49_999));
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.snapshot() == before);
}

/// A chain of `levels` folders named `name` under `root`, made through descriptors (its
/// paths may be longer than PATH_MAX), with a file `leaf` and `others` more at the bottom.
fn build_chain(root: &Path, levels: usize, name: &str, others: usize) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let mut dir: std::os::fd::OwnedFd = std::fs::File::open(root).unwrap().into();
    for _ in 0..levels {
        mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).unwrap();
        dir = openat(&dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    }
    for file in std::iter::once("leaf".to_string()).chain((0..others).map(|i| format!("f{i}"))) {
        let mode = Mode::from_bits_truncate(0o644);
        openat(&dir, file.as_str(), OFlag::O_CREAT | OFlag::O_WRONLY, mode).unwrap();
    }
}

/// Owner of every level of a chain built by [`build_chain`], top first, and of its file.
fn chain_owners(root: &Path, name: &str) -> Vec<(u32, u32)> {
    use nix::fcntl::{AtFlags, OFlag, openat};
    use nix::sys::stat::{Mode, fstat, fstatat};
    let mut dir: std::os::fd::OwnedFd = std::fs::File::open(root).unwrap().into();
    let mut owners = Vec::new();
    loop {
        if let Ok(leaf) = fstatat(&dir, "leaf", AtFlags::AT_SYMLINK_NOFOLLOW) {
            owners.push((leaf.st_uid, leaf.st_gid));
            return owners;
        }
        dir = openat(&dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let stat = fstat(&dir).unwrap();
        owners.push((stat.st_uid, stat.st_gid));
    }
}

#[test]
fn deep_paths_keep_the_journal_small() {
    let env = OwnEnv::new();
    // 500 levels of 200-byte names: the bottom's relative path is 100 KB long. Spelled out
    // in every record (as journal format 1 did), the paths of this chain add up to 25 MB.
    let name = "n".repeat(200);
    build_chain(&env.tree(), 500, &name, 0);
    // One CPU, so one walker: its frames are not cut short by handing folders over.
    let out = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(["own", "tree"])
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.state())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        chain_owners(&env.tree(), &name)
            .iter()
            .all(|&o| o == (49_999, 49_999))
    );
    let journal = env.journal_files().pop().expect("a journal");
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(size < 2_000_000, "journal of {size} bytes");
    let out = env.run(["journal", "show", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let owners = chain_owners(&env.tree(), &name);
    assert_eq!(owners.len(), 501);
    assert!(owners.iter().all(|&o| o == (0, 0)), "{owners:?}");
}

#[test]
fn deep_paths_keep_memory_bounded() {
    let env = OwnEnv::new();
    // 2,000 files at the bottom of 400 levels of 250-byte names: each file's relative path is
    // 100 KB long, 200 MB for all of them if a batch held them all.
    let name = "m".repeat(250);
    build_chain(&env.tree(), 400, &name, 2_000);
    // Peak RSS of the child, in KiB, from the rusage of its parent.
    let script = "import resource, subprocess, sys\n\
                  code = subprocess.run(sys.argv[1:]).returncode\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(code)";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(["-q", "own", "tree"])
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.state())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let peak_kib: u64 = stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        chain_owners(&env.tree(), &name)
            .iter()
            .all(|&o| o == (49_999, 49_999))
    );
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(chain_owners(&env.tree(), &name).iter().all(|&o| o == (0, 0)));
}

#[test]
fn the_walk_stops_at_its_depth_limit_even_with_descriptors_to_spare() {
    let env = OwnEnv::new();
    // The walk takes the hard open-file limit; with this many descriptors per walker only
    // its own depth limit (4,096 levels) stops it.
    let limit = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let limit = String::from_utf8_lossy(&limit.stdout).trim().to_string();
    let hard = if limit == "unlimited" {
        u64::MAX
    } else {
        limit.parse::<u64>().unwrap()
    };
    // Each walker (one per CPU, at most 4) needs a descriptor per level, up to 256 for its
    // batch and a few for the hand-over queue; 64 are kept aside.
    let walkers = std::thread::available_parallelism().map_or(1, usize::from).min(4) as u64;
    let needed = 64 + walkers * (4_096 + 256 + 8 + 1);
    assert!(
        hard >= needed,
        "this test needs an open-file hard limit of {needed} or more, not {hard}"
    );
    build_chain(&env.tree(), 4_200, "d", 0);
    let out = env.run(["own", "--json", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["roots"][0]["skipped_by_reason"]["too_deep"], 1, "{report}");
    // The root and 4,096 levels below it are handed over; nothing deeper is touched.
    let owners = chain_owners(&env.tree(), "d");
    assert!(
        owners[..4_096].iter().all(|&o| o == (49_999, 49_999)),
        "{owners:?}"
    );
    assert!(owners[4_096..].iter().all(|&o| o == (0, 0)), "{owners:?}");
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(chain_owners(&env.tree(), "d").iter().all(|&o| o == (0, 0)));
}

// ---- bad input: exit 2, one line naming the culprit, nothing changed ----------------------

pub(crate) fn assert_refused(env: &OwnEnv, args: &[&str], culprit: &str) {
    assert_command_refused(env, &mut env.command(args), culprit);
}

/// `command` exits 2 with one line naming `culprit`, and changes nothing.
pub(crate) fn assert_command_refused(env: &OwnEnv, command: &mut assert_cmd::Command, culprit: &str) {
    let before = env.snapshot();
    let journals_before = env.journal_files();
    let out = command.output().unwrap();
    let args = command.get_args().collect::<Vec<_>>();
    assert_bad_input(&out, culprit);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(env.snapshot() == before, "{args:?} changed the tree");
    assert_eq!(env.journal_files(), journals_before);
}

#[test]
fn missing_path_is_refused() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    assert_refused(&env, &["own", "tree", "no-such-dir"], "no-such-dir");
    assert_refused(&env, &["release", "no-such-dir"], "no-such-dir");
}

#[test]
fn system_folders_are_refused() {
    let env = OwnEnv::new();
    assert_refused(&env, &["own", "/"], "/");
    assert_refused(&env, &["own", "/etc"], "/etc");
    assert_refused(&env, &["release", "/usr/bin"], "/usr/bin");
    assert_refused(&env, &["undo", "/var"], "/var");
}

#[test]
fn symlink_root_is_refused() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    assert_refused(&env, &["own", "tree/link-to-outside-dir"], "link-to-outside-dir");
}

#[test]
fn journal_folder_inside_the_tree_is_refused() {
    let env = OwnEnv::new();
    let out = env
        .env
        .flowerbed(["own", "tree"])
        .env("FLOWERBED_STATE_DIR", env.tree().join("state"))
        .output()
        .unwrap();
    assert_bad_input(&out, "journal");
    assert_eq!(owner(&env.tree()), (0, 0));
}

#[test]
fn unknown_user_is_refused() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    assert_refused(
        &env,
        &["release", "--to", "no-such-user-xyz", "tree"],
        "no-such-user-xyz",
    );
    assert_refused(
        &env,
        &["release", "--to", "root:no-such-group-xyz", "tree"],
        "no-such-group-xyz",
    );
}

#[test]
fn undo_without_journal_is_refused() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    assert_refused(&env, &["undo", "tree"], "no journal");
}

#[test]
fn corrupt_journal_is_refused() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    env.run(["own", "tree"]);
    let journal = env.journal_files().pop().unwrap();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[24] ^= 0x55;
    std::fs::write(&journal, &bytes).unwrap();
    assert_refused(&env, &["undo", "tree"], "corrupt");
    let out = env.run(["journal", "show", "tree"]);
    assert_bad_input(&out, "corrupt");
    // `own` must not append to it either. The journal is read back while the walk starts:
    // neither a tree with an entry to change nor one that is already right gets past it.
    std::fs::write(env.tree().join("added later"), "new").unwrap();
    assert_refused(&env, &["own", "tree"], "corrupt");
    std::fs::remove_file(env.tree().join("added later")).unwrap();
    assert_refused(&env, &["own", "tree"], "corrupt");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes);
}

#[test]
fn tree_changed_since_own_is_refused_unless_asked() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    env.run(["own", "tree"]);
    // Replace one entry by another inode under the same name (made first, so the inode
    // number cannot be reused).
    std::fs::write(env.tree().join("plain.new"), "replaced").unwrap();
    std::fs::rename(env.tree().join("plain.new"), env.tree().join("plain")).unwrap();
    assert_refused(&env, &["undo", "tree"], "plain");

    let out = env.run(["undo", "--skip-changed", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("plain"), "{}", stderr(&out));
    assert_eq!(
        owner(&env.tree().join("plain")),
        (0, 0),
        "the new file is not touched"
    );
    assert_eq!(
        owner(&env.tree().join("a/b/c/key")),
        (0, 0),
        "the rest is restored"
    );
    assert_eq!(
        std::fs::metadata(env.tree().join("setuid")).unwrap().mode() & 0o7777,
        0o6755
    );
}

#[test]
fn not_root_without_via_docker_is_refused_with_the_command_to_run() {
    let env = OwnEnv::new();
    std::fs::write(env.tree().join("f"), "x").unwrap();
    // UID 65534 must be able to reach the folder to get past path checks.
    for dir in [env.env.path(), &env.tree()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let before = env.snapshot();
    let binary = assert_cmd::cargo::cargo_bin("flowerbed");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args(["own", "tree"])
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.env.path().join("nobody-state"))
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert_bad_input(&out, "sudo");
    assert!(
        stderr(&out).contains("own tree") && stderr(&out).contains("--via-docker"),
        "{}",
        stderr(&out)
    );
    assert!(env.snapshot() == before);
}

#[test]
fn via_docker_without_a_daemon_names_docker_host() {
    let env = OwnEnv::new();
    std::fs::write(env.tree().join("f"), "x").unwrap();
    let before = env.snapshot();
    let socket = env.env.join("no-daemon.sock");
    let out = env
        .env
        .flowerbed(["own", "--via-docker", "tree"])
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    assert_bad_input(&out, "DOCKER_HOST");
    assert!(stderr(&out).contains("no-daemon.sock"), "{}", stderr(&out));
    assert!(env.snapshot() == before);
}

#[test]
fn own_help_has_examples() {
    for command in ["own", "undo", "release", "journal"] {
        let out = crate::testenv::flowerbed()
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(
            stdout(&out).contains("Examples:"),
            "{command} --help lacks examples"
        );
    }
}

/// Start `own tree` with the test pause hook; returns the child once it is paused mid-walk.
fn spawn_paused_own(
    env: &OwnEnv,
    pause_after: u64,
) -> (std::process::Child, std::io::BufReader<std::process::ChildStderr>) {
    use std::io::BufRead;
    // A plain std Command: the child must run on its own while the test signals it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flowerbed"))
        .args(["own", "tree"])
        .current_dir(env.env.path())
        .env("NO_COLOR", "1")
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("FLOWERBED_TEST_PAUSE_AFTER", pause_after.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("test pause"), "own did not pause: {line:?}");
    (child, err)
}

#[test]
fn sigint_or_sigterm_midway_stops_cleanly_and_undo_restores_the_snapshot() {
    use nix::sys::signal::{Signal, kill};
    use std::io::Read;
    let env = OwnEnv::new();
    build_large_tree(&env.tree(), 6_000);
    let before = env.snapshot();
    let total = before.0.len();
    for (signal, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let (mut child, mut err) = spawn_paused_own(&env, 1_000);
        // A real signal, delivered to the running process.
        kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            signal,
        )
        .unwrap();
        let mut message = String::new();
        err.read_to_string(&mut message).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{signal}: {message}");
        assert_eq!(
            message.lines().count(),
            1,
            "{signal}: one line expected: {message}"
        );
        assert!(
            message.contains(&format!("interrupted by {signal}")) && message.contains("flowerbed undo"),
            "{message}"
        );
        // It stopped midway: some entries changed, not all.
        let changed = snapshot(&env.tree()).values().filter(|s| s.uid == 49_999).count();
        assert!(
            changed >= 1_000 && changed < total,
            "{signal}: {changed} of {total} changed"
        );
        let out = env.run(["undo", "tree"]);
        assert_eq!(out.status.code(), Some(0), "{signal}: {}", stderr(&out));
        assert!(
            env.snapshot() == before,
            "{signal}: undo did not restore the snapshot"
        );
        assert!(env.journal_files().is_empty());
    }
}

#[test]
fn full_disk_under_the_journal_stops_own_cleanly_and_undo_restores() {
    let env = OwnEnv::new();
    // Many small folders: the walk journals them in several frames (a few KiB each), so a
    // 16 KiB disk fills up after some entries were already changed.
    for dir in 0..3_000 {
        let path = env.tree().join(format!("d{dir:04}"));
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("f"), b"x").unwrap();
    }
    std::fs::set_permissions(
        env.tree().join("d0007/f"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let before = env.snapshot();
    let total = before.0.len();
    std::fs::create_dir(env.state()).unwrap();
    std::fs::set_permissions(env.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mounted = nix::mount::mount(
        Some("tmpfs"),
        &env.state(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=16k,mode=0700"),
    );
    let _guard = mounted.is_ok().then(|| TmpfsMount(env.state()));
    let mut own = env.env.flowerbed(["own", "tree"]);
    own.env("FLOWERBED_STATE_DIR", env.state());
    if let Err(err) = mounted {
        eprintln!("cannot mount tmpfs here ({err}); injecting a journal write failure at 16 KiB instead");
        own.env("FLOWERBED_TEST_JOURNAL_MAX_BYTES", "16384");
    }
    let out = own.output().unwrap();
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert_eq!(message.lines().count(), 1, "one line expected: {message}");
    assert!(
        message.contains("cannot write the journal")
            && message.contains("No space left on device")
            && message.contains(".journal"),
        "{message}"
    );
    let changed = snapshot(&env.tree()).values().filter(|s| s.uid == 49_999).count();
    assert!(changed > 0 && changed < total, "{changed} of {total} changed");
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.snapshot() == before, "undo did not restore the snapshot");
}

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
