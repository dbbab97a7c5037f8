//! `own` and `undo` against hostile and huge trees: kills at any point, a directory
//! swapped for a symlink mid-walk, mount points, deep and long paths.

use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::testenv::{snapshot, stderr};

use super::{OwnEnv, TmpfsMount, build_large_tree, owner};

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
