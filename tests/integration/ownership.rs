//! `own`, `undo`, `release`, `journal`: hostile trees, exact undo, crashes, races, bad input.
//!
//! These tests run as root (they chown); each uses its own journal folder through
//! `FLOWERBED_STATE_DIR`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::testenv::{Snapshot, TestEnv, snapshot, stderr, stdout};

mod generated;
mod hostile;
mod interrupts;
mod refusals;

pub(crate) use refusals::{assert_command_refused, assert_refused};

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

    /// `tree/NAME`, a new folder of `count` empty files `f00000`, `f00001`, ...
    pub(crate) fn folder_of_files(&self, name: &str, count: usize) -> PathBuf {
        let dir = self.tree().join(name);
        std::fs::create_dir(&dir).unwrap();
        for i in 0..count {
            std::fs::File::create(dir.join(format!("f{i:05}"))).unwrap();
        }
        dir
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

/// A mount point (a test mounted a tmpfs on it); unmounts on drop, so a failing assertion does not leave a mount behind.
pub(crate) struct TmpfsMount(PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.0);
    }
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

/// A folder of more files than a walker lists at once: the walkers share its entries, and
/// each entry is journaled and changed exactly once, then undone exactly (setuid bits,
/// which the change of owner clears, included).
#[test]
fn a_folder_of_many_files_is_shared_between_walkers_and_undone_exactly() {
    let env = OwnEnv::new();
    let count = 20_000;
    let dir = env.folder_of_files("many", count);
    for i in (0..count).step_by(1_000) {
        let file = dir.join(format!("f{i:05}"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let before = env.snapshot();
    let out = env.run(["own", "--json", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["roots"][0]["changed"],
        count + 2,
        "the files, `many` and the tree"
    );
    for (path, state) in snapshot(&env.tree()) {
        assert_eq!((state.uid, state.gid), (49_999, 49_999), "{}", path.display());
    }
    let out = env.run(["journal", "show", "--json", "tree"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut paths: Vec<&str> = shown["sessions"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let journaled = paths.len();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(
        (journaled, paths.len()),
        (count + 2, count + 2),
        "each entry once"
    );
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        env.snapshot() == before,
        "undo did not restore the folder exactly"
    );
}

/// Several PATHs are handed over at once, but a folder inside another one given waits for
/// it: then it finds its entries already handed over, and only the outer journal holds
/// them (two walks at once would journal them twice).
#[test]
fn a_path_inside_another_path_is_owned_after_it() {
    let env = OwnEnv::new();
    env.folder_of_files("sub", 2_000);
    let other = env.env.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file"), b"").unwrap();
    let before = snapshot(&env.tree());
    let out = env.run(["own", "--json", "tree", "tree/sub", "other"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["roots"][0]["changed"], 2_002, "{report}");
    assert_eq!(report["roots"][1]["changed"], 0, "{report}");
    assert_eq!(report["roots"][2]["changed"], 2, "{report}");
    assert_eq!(env.journal_files().len(), 2, "tree's and other's journals only");
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        snapshot(&env.tree()) == before,
        "undo did not restore the tree exactly"
    );
}
