//! `own`, `undo` and `release` under attack: races, bind mounts, forged journals, IDs the
//! kernel reads as "leave unchanged". Each test performs the attack and checks that nothing
//! outside the tree changed.

use std::fmt::Write as _;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{RenameFlags, renameat2};

use crate::ownership::{OwnEnv, assert_command_refused, assert_refused, owner};
use crate::testenv::snapshot;
use crate::testenv::{stderr, stdout};

#[test]
fn the_leave_unchanged_id_is_refused_everywhere() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    for to in ["4294967295", "4294967295:0", "0:4294967295"] {
        assert_refused(&env, &["release", "--to", to, "tree"], "4294967295");
    }
    for flag in ["--uid", "--gid", "--host-uid", "--host-gid"] {
        let out = env.run(["own", flag, "4294967295", "tree"]);
        crate::testenv::assert_bad_input(&out, flag);
        assert_eq!(owner(&env.tree()), (0, 0));
    }
    let mut sudo = env.command(["release", "tree"]);
    sudo.env("SUDO_UID", "4294967295").env("SUDO_GID", "0");
    assert_command_refused(&env, &mut sudo, "SUDO_UID");
}

#[test]
fn malformed_sudo_ids_are_refused_naming_the_variable() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        (Some("abc"), Some("1000"), "SUDO_UID"),
        (Some("-1"), Some("1000"), "SUDO_UID"),
        (Some(""), Some("1000"), "SUDO_UID"),
        (Some("4294967296"), Some("1000"), "SUDO_UID"),
        (Some("1000"), Some("abc"), "SUDO_GID"),
        (Some("1000"), Some(""), "SUDO_GID"),
        (Some("1000"), None, "SUDO_GID"),
        (None, Some("1000"), "SUDO_UID"),
    ];
    for (uid, gid, culprit) in cases {
        let mut command = env.command(["release", "tree"]);
        for (name, value) in [("SUDO_UID", uid), ("SUDO_GID", gid)] {
            if let Some(value) = value {
                command.env(name, value);
            }
        }
        assert_command_refused(&env, &mut command, culprit);
    }
    // Well-formed, they are used.
    let out = env
        .command(["release", "tree"])
        .env("SUDO_UID", "1000")
        .env("SUDO_GID", "1001")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    assert_eq!(owner(&env.tree()), (1000, 1001));
}

/// Exchanges each pair of names in a loop (`renameat2(RENAME_EXCHANGE)`) until told to
/// stop; returns how many exchanges it made.
fn exchange_loop(
    dir: PathBuf,
    pairs: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let dir_fd = std::fs::File::open(&dir).unwrap();
        let mut swaps = 0_u64;
        while !stop.load(Ordering::Relaxed) {
            for (a, b) in &pairs {
                renameat2(
                    &dir_fd,
                    a.as_str(),
                    &dir_fd,
                    b.as_str(),
                    RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
                swaps += 1;
            }
        }
        swaps
    })
}

/// Run the commands of `args` in turn while the swapper works, at least `min_runs` runs and
/// then on for about three seconds (at most 20 times as many), checking after each run that
/// nothing outside the tree changed and passing its output to `check`.
fn race(
    env: &OwnEnv,
    swapper: std::thread::JoinHandle<u64>,
    stop: &AtomicBool,
    args: &[&[&str]],
    min_runs: usize,
    check: impl Fn(&std::process::Output),
) -> u64 {
    let outside_before = snapshot(&env.outside());
    let started = std::time::Instant::now();
    let mut runs = 0;
    while runs < min_runs || (runs < min_runs * 20 && started.elapsed().as_secs() < 3) {
        let command = args[runs % args.len()];
        let out = env.run(command);
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "{command:?}: {}",
            stderr(&out)
        );
        assert!(
            snapshot(&env.outside()) == outside_before,
            "run {runs} ({command:?}) changed something outside the tree: {}",
            stdout(&out)
        );
        check(&out);
        runs += 1;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap()
}

#[test]
fn a_trailing_slash_does_not_follow_a_symlink() {
    let env = OwnEnv::new();
    env.build_hostile_tree();
    for path in [
        "tree/link-to-outside-dir/",
        "tree/link-to-outside-dir/.",
        "tree/link-to-outside-dir/inner/..",
    ] {
        for command in ["own", "release"] {
            assert_refused(&env, &[command, path], "link-to-outside-dir");
        }
    }
    assert_refused(
        &env,
        &["undo", "tree/link-to-outside-dir/"],
        "link-to-outside-dir",
    );
}

/// 32 tree files `fI`, each beside `hI`, a hard link to an outside file `victimI`: the
/// pairs of names to exchange.
fn files_and_outside_hard_links(env: &OwnEnv) -> Vec<(String, String)> {
    let tree = env.tree();
    (0..32)
        .map(|i| {
            let victim = env.outside().join(format!("victim{i}"));
            std::fs::write(&victim, "host file").unwrap();
            std::fs::write(tree.join(format!("f{i}")), "tree file").unwrap();
            std::fs::hard_link(&victim, tree.join(format!("h{i}"))).unwrap();
            (format!("f{i}"), format!("h{i}"))
        })
        .collect()
}

#[test]
fn a_hard_link_exchanged_in_while_own_or_release_runs_is_never_changed() {
    let env = OwnEnv::new();
    let tree = env.tree();
    let pairs = files_and_outside_hard_links(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = exchange_loop(tree.clone(), pairs, stop.clone());
    let runs: &[&[&str]] = &[
        &["own", "--uid=31337", "--gid=31337", "tree"],
        &["release", "--to=4242:4242", "tree"],
    ];
    let swaps = race(&env, swapper, &stop, runs, 40, |_| {});
    assert!(swaps >= 1_000, "only {swaps} exchanges");
    // The names were shuffled since the journal was written: undo restores what still
    // matches, and nothing outside either.
    let before = snapshot(&env.outside());
    let out = env.run(["undo", "--skip-changed", "tree"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    assert!(
        snapshot(&env.outside()) == before,
        "undo changed something outside"
    );
}

/// The same race where `own` looks at entries by name first: in a folder that is already
/// the target's, it stats each entry by name and opens only those it must change. What it
/// opens must be what it looked at.
#[test]
fn a_hard_link_exchanged_in_while_own_looks_by_name_is_never_changed() {
    let env = OwnEnv::new();
    let tree = env.tree();
    let pairs = files_and_outside_hard_links(&env);
    // The folder already belongs to the target; its files do not. undo puts the files back
    // (the folder was never changed, so never journaled) for the next own to change again.
    let target = Some(nix::unistd::Uid::from_raw(31_337));
    nix::unistd::chown(&tree, target, Some(nix::unistd::Gid::from_raw(31_337))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = exchange_loop(tree.clone(), pairs, stop.clone());
    let runs: &[&[&str]] = &[
        &["own", "--uid=31337", "--gid=31337", "tree"],
        &["undo", "--skip-changed", "tree"],
    ];
    // Runs of own that changed files: the path under attack was taken, not skipped.
    let changing_runs = std::cell::Cell::new(0);
    let swaps = race(&env, swapper, &stop, runs, 40, |out| {
        let text = stdout(out);
        if text.contains(" changed,") && !text.contains(" 0 changed,") && !text.contains("restored") {
            changing_runs.set(changing_runs.get() + 1);
        }
    });
    assert!(swaps >= 1_000, "only {swaps} exchanges");
    assert!(
        changing_runs.get() >= 10,
        "own changed files in only {} runs",
        changing_runs.get()
    );
    assert_eq!(owner(&tree), (31_337, 31_337));
}

#[test]
fn a_parent_exchanged_with_a_symlink_never_steers_own() {
    let env = OwnEnv::new();
    let tree = env.tree();
    std::fs::create_dir_all(tree.join("p/state")).unwrap();
    std::fs::write(tree.join("p/state/mine"), "tree").unwrap();
    std::fs::create_dir(env.outside().join("state")).unwrap();
    for i in 0..10 {
        std::fs::write(env.outside().join(format!("state/OUTSIDE-{i}")), "host").unwrap();
    }
    symlink(env.outside(), tree.join("q")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = exchange_loop(tree.clone(), vec![("p".into(), "q".into())], stop.clone());
    let runs: &[&[&str]] = &[
        &["own", "tree/p/state"],
        &["own", "--dry-run", "tree/p/state"],
        &["release", "--to=4242:4242", "tree/p/state"],
        &["release", "--dry-run", "--to=4242:4242", "tree/p/state"],
    ];
    let swaps = race(&env, swapper, &stop, runs, 40, |out| {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(!all.contains("OUTSIDE-"), "an outside entry was listed: {all}");
    });
    assert!(swaps >= 1_000, "only {swaps} exchanges");
    assert_eq!(owner(&env.state()), (0, 0));
}

/// `mount --bind FROM TO` pairs.
type Binds<'a> = &'a [(&'a Path, &'a Path)];

/// Run flowerbed with `args` in a private mount namespace (`unshare -m`), after
/// `mount --bind FROM TO` for each pair: the mounts vanish with the namespace.
fn in_namespace(env: &OwnEnv, binds: &[(&Path, &Path)], args: &[&str]) -> std::process::Output {
    let quote = |p: &str| shlex::try_quote(p).unwrap().into_owned();
    let mut script = String::from("set -e\n");
    for (from, to) in binds {
        let _ = writeln!(
            script,
            "mount --bind {} {}",
            quote(&from.to_string_lossy()),
            quote(&to.to_string_lossy())
        );
    }
    script.push_str("exec \"$FLOWERBED\"");
    for arg in args {
        script.push(' ');
        script.push_str(&quote(arg));
    }
    std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .current_dir(env.env.path())
        .env("FLOWERBED", assert_cmd::cargo::cargo_bin("flowerbed"))
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("NO_COLOR", "1")
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

#[test]
fn bind_mounted_files_and_folders_are_mount_points() {
    let env = OwnEnv::new();
    let (tree, outside) = (env.tree(), env.outside());
    std::fs::write(outside.join("f1"), "host").unwrap();
    std::fs::create_dir(outside.join("d")).unwrap();
    std::fs::write(outside.join("d/inner"), "host").unwrap();
    std::fs::write(tree.join("pw"), "").unwrap();
    std::fs::create_dir(tree.join("dm")).unwrap();
    std::fs::write(tree.join("plain"), "").unwrap();
    let before = snapshot(&outside);
    let binds: &[(&Path, &Path)] = &[
        (&outside.join("f1"), &tree.join("pw")),
        (&outside.join("d"), &tree.join("dm")),
    ];
    for args in [
        &["own", "--dry-run", "tree"][..],
        &["own", "tree"],
        &["release", "--to", "4242:4242", "tree"],
    ] {
        let out = in_namespace(&env, binds, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("skipped pw: mount point"), "{args:?}: {err}");
        assert!(err.contains("skipped dm: mount point"), "{args:?}: {err}");
        assert!(!err.contains("replaced"), "{args:?}: {err}");
        assert!(snapshot(&outside) == before, "{args:?} changed something outside");
    }
    assert_eq!(owner(&tree.join("plain")), (4242, 4242));
}

#[test]
fn refusals_hold_by_identity_through_bind_mounts() {
    let env = OwnEnv::new();
    let tree = env.tree();
    std::fs::create_dir(env.state()).unwrap();
    std::fs::write(env.state().join("keep"), "").unwrap();
    for dir in ["alias", "etc", "home/fake"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::fs::write(tree.join("home/fake/.profile"), "").unwrap();
    let passwd = env.env.join("passwd");
    let mut users = std::fs::read_to_string("/etc/passwd").unwrap();
    let _ = writeln!(
        users,
        "fake:x:4321:4321::{}:/bin/sh",
        tree.join("home/fake").display()
    );
    std::fs::write(&passwd, users).unwrap();
    let state = env.state();
    let cases: &[(Binds, &[&str], &str)] = &[
        (
            &[(&state, &tree.join("alias"))],
            &["own", "tree/alias"],
            "journal",
        ),
        (
            &[(&state, &tree.join("alias"))],
            &["release", "tree/alias"],
            "journal",
        ),
        (
            &[(Path::new("/etc"), &tree.join("etc"))],
            &["own", "--dry-run", "tree/etc"],
            "system directory",
        ),
        (
            &[(&passwd, Path::new("/etc/passwd"))],
            &["own", "tree/home/fake"],
            "a home directory",
        ),
        (
            &[(&passwd, Path::new("/etc/passwd"))],
            &["own", "tree/home"],
            "contains a home directory",
        ),
        (
            &[(&passwd, Path::new("/etc/passwd"))],
            &["own", "tree/home/fake/.profile"],
            "dotfiles",
        ),
    ];
    for (binds, args, culprit) in cases {
        let before = env.snapshot();
        let out = in_namespace(&env, binds, args);
        crate::testenv::assert_bad_input(&out, culprit);
        assert!(env.snapshot() == before, "{args:?} changed the tree");
        assert_eq!(owner(&state), (0, 0));
    }
}

/// How many `getdents64` calls flowerbed ARGS makes (counted by `strace -f -c`), with a
/// generous guard so a quadratic undo fails the test instead of hanging it.
fn directory_reads(env: &OwnEnv, args: &[&str]) -> u64 {
    let counts = env.env.join("strace.txt");
    let out = std::process::Command::new("timeout")
        .args(["600", "strace", "-f", "-c", "-e", "trace=getdents64", "-o"])
        .arg(&counts)
        .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(args)
        .current_dir(env.env.path())
        .env("FLOWERBED_STATE_DIR", env.state())
        .env("NO_COLOR", "1")
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("strace is installed");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    let summary = std::fs::read_to_string(&counts).unwrap();
    summary
        .lines()
        .find(|line| line.trim_end().ends_with("getdents64"))
        .and_then(|line| line.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or_else(|| panic!("no getdents64 count in: {summary}"))
}

#[test]
fn undo_reads_a_folder_of_70000_entries_a_bounded_number_of_times() {
    let env = OwnEnv::new();
    let big = env.folder_of_files("big", 70_000);
    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One listing of the folder is about 70 reads; each walker may read it once. Reading it
    // again per entry (quadratic) would take millions.
    let dry = directory_reads(&env, &["undo", "--dry-run", "tree"]);
    assert!(dry < 2_000, "undo --dry-run read directories {dry} times");
    let real = directory_reads(&env, &["undo", "tree"]);
    assert!(real < 4_000, "undo read directories {real} times");
    assert_eq!(owner(&big.join("f69999")), (0, 0));
    assert_eq!(owner(&big), (0, 0));
}

fn build_nested(env: &OwnEnv) {
    std::fs::create_dir_all(env.tree().join("sub/deeper")).unwrap();
    std::fs::write(env.tree().join("sub/deeper/f"), "").unwrap();
    std::fs::write(env.tree().join("g"), "").unwrap();
}

fn all_owners(env: &OwnEnv) -> Vec<(u32, u32)> {
    ["", "g", "sub", "sub/deeper", "sub/deeper/f"]
        .iter()
        .map(|p| owner(&env.tree().join(p)))
        .collect()
}

#[test]
fn undo_of_a_folder_with_a_newer_inner_journal_names_the_order_that_restores() {
    let env = OwnEnv::new();
    build_nested(&env);
    std::os::unix::fs::lchown(env.tree().join("sub/deeper/f"), Some(7), Some(8)).unwrap();
    let original = all_owners(&env);
    assert_eq!(env.run(["own", "tree"]).status.code(), Some(0));
    let out = env.run(["own", "--uid", "1234", "--gid", "1234", "tree/sub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let owned = all_owners(&env);
    for command in [&["undo", "tree"][..], &["undo", "--dry-run", "tree"]] {
        let out = env.run(command);
        crate::testenv::assert_bad_input(&out, "undo");
        let err = stderr(&out);
        assert!(err.contains("tree/sub first, then"), "{err}");
        assert_eq!(all_owners(&env), owned, "{command:?} changed something");
    }
    // The order it names restores exactly; so does naming both in that order at once.
    let out = env.run(["undo", "tree/sub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(all_owners(&env), original);
    assert_eq!(env.run(["own", "tree"]).status.code(), Some(0));
    assert_eq!(
        env.run(["own", "--uid=1234", "--gid=1234", "tree/sub"])
            .status
            .code(),
        Some(0)
    );
    let out = env.run(["undo", "tree/sub", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(all_owners(&env), original);
}

#[test]
fn undo_of_a_folder_with_an_older_inner_journal_goes_ahead_and_restores_exactly() {
    let env = OwnEnv::new();
    build_nested(&env);
    let original = all_owners(&env);
    assert_eq!(
        env.run(["own", "--uid=1234", "--gid=1234", "tree/sub"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(env.run(["own", "tree"]).status.code(), Some(0));
    // The inner journal is older: undoing the inner first would be wrong, so it is refused.
    let out = env.run(["undo", "tree/sub"]);
    crate::testenv::assert_bad_input(&out, "tree first, then");
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(owner(&env.tree().join("sub/deeper/f")), (1234, 1234));
    let out = env.run(["undo", "tree/sub"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(all_owners(&env), original);
}

#[test]
fn device_nodes_handed_over_get_a_warning() {
    let env = OwnEnv::new();
    nix::sys::stat::mknod(
        &env.tree().join("null-copy"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    for args in [&["own", "--dry-run", "tree"][..], &["own", "tree"]] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("device node null-copy"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(owner(&env.tree().join("null-copy")), (49_999, 49_999));
}

#[test]
fn programs_with_file_capabilities_are_left_alone_not_stripped() {
    let env = OwnEnv::new();
    let program = env.tree().join("ping-like");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let set = std::process::Command::new("setcap")
        .args(["cap_net_bind_service+ep"])
        .arg(&program)
        .status()
        .expect("setcap is installed");
    assert!(set.success());
    let caps = || {
        let out = std::process::Command::new("getcap")
            .arg(&program)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(caps().contains("cap_net_bind_service"), "{}", caps());
    // `own` journals them instead (capabilities.rs); `release` keeps no journal.
    for args in [
        &["release", "--dry-run", "--to=4242:4242", "tree"][..],
        &["release", "--to=4242:4242", "tree"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("skipped ping-like: has file capabilities"),
            "{}",
            stderr(&out)
        );
        assert!(
            caps().contains("cap_net_bind_service"),
            "{args:?} cleared them: {}",
            caps()
        );
        assert_eq!(owner(&program), (0, 0));
    }
}
