//! `own` stopped midway (SIGINT, SIGTERM, a full disk under the journal) stops cleanly,
//! and `undo` restores the snapshot.

use std::os::unix::fs::PermissionsExt;

use crate::testenv::{snapshot, stderr};

use super::{OwnEnv, TmpfsMount, build_large_tree};

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

/// The syncs `own` makes, in order, as `strace` sees them: a new journal and its folder
/// entry reach the disk before the first change (with one sync of the file for its first
/// frames, not one for the empty file and one more for the frames), and the session's end
/// after the last change.
#[test]
fn a_new_journal_and_its_folder_entry_are_synced_before_the_first_change() {
    let env = OwnEnv::new();
    // Files only: one journal frame for all four changes, whatever the number of walkers.
    for name in ["a", "b", "c"] {
        std::fs::write(env.tree().join(name), "").unwrap();
    }
    let trace = env.env.join("syncs.txt");
    let out = std::process::Command::new("timeout")
        .args([
            "600",
            "strace",
            "-f",
            "-y",
            "-e",
            "trace=fsync,fdatasync,fchown,fchownat",
            "-o",
        ])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_flowerbed"))
        .args(["own", "tree"])
        .current_dir(env.env.path())
        .env("NO_COLOR", "1")
        .env("FLOWERBED_STATE_DIR", env.state())
        .output()
        .expect("strace is installed");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let journals = env.journal_files();
    let journal = journals[0].file_name().unwrap().to_str().unwrap();
    let state = format!("{}>)", env.state().display());
    // Each line: PID call(fd<path>, ...) = result.
    let calls: Vec<String> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(_, call)| call.trim_start().to_owned()))
        .filter(|call| !call.starts_with("+++") && !call.starts_with("---"))
        .collect();
    let changes: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].starts_with("fchown"))
        .collect();
    assert_eq!(changes.len(), 4, "{calls:#?}");
    let journal_syncs: Vec<usize> = (0..calls.len())
        .filter(|&i| {
            (calls[i].starts_with("fsync(") || calls[i].starts_with("fdatasync("))
                && calls[i].contains(journal)
        })
        .collect();
    let (first, last) = (changes[0], changes[changes.len() - 1]);
    assert_eq!(journal_syncs.len(), 2, "{calls:#?}");
    assert!(
        journal_syncs[0] < first && calls[journal_syncs[0]].starts_with("fsync("),
        "the new journal is not fully synced before the first change: {calls:#?}"
    );
    assert!(
        calls[..first]
            .iter()
            .any(|call| call.starts_with("fsync(") && call.contains(&state)),
        "the journal's folder is not synced before the first change: {calls:#?}"
    );
    assert!(journal_syncs[1] > last, "{calls:#?}");
}
