//! File capabilities: a change of owner clears `security.capability`, so `own` journals it
//! (synced before the change, like the rest of the entry) and `undo` puts it back; `release`,
//! which keeps no journal, leaves such a program alone (see `attacks.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::ownership::{OwnEnv, owner};
use crate::testenv::{stderr, stdout};

/// What `getcap` says of `path` (empty: no capabilities).
fn getcap(path: &Path) -> String {
    let out = std::process::Command::new("getcap")
        .arg(path)
        .output()
        .expect("getcap is installed (libcap2-bin)");
    assert!(
        out.status.success(),
        "getcap {}: {}",
        path.display(),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A small executable with `cap_net_raw+ep`.
fn capable_program(path: &Path) {
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let set = std::process::Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(path)
        .status()
        .expect("setcap is installed (libcap2-bin)");
    assert!(set.success());
    assert!(getcap(path).contains("cap_net_raw=ep"), "{}", getcap(path));
}

fn all_output(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn own_then_undo_puts_file_capabilities_back() {
    let env = OwnEnv::new();
    std::fs::create_dir(env.tree().join("bin")).unwrap();
    let programs = [env.tree().join("ping-like"), env.tree().join("bin/raw-socket")];
    for program in &programs {
        capable_program(program);
    }
    // An executable without capabilities is changed as always.
    let plain = env.tree().join("bin/plain");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = env.run(["own", "--dry-run", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("2 files with capabilities, to be journaled"),
        "{}",
        all_output(&out)
    );
    assert!(getcap(&programs[0]).contains("cap_net_raw=ep"));

    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("(2 files with capabilities, journaled;"),
        "{}",
        all_output(&out)
    );
    for program in &programs {
        assert_eq!(owner(program), (49_999, 49_999));
        // The kernel cleared them with the change of owner: only the journal has them.
        assert_eq!(getcap(program), "", "{}", program.display());
    }
    assert_eq!(owner(&plain), (49_999, 49_999));

    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("(2 files' capabilities put back)"),
        "{}",
        all_output(&out)
    );
    for program in &programs {
        assert_eq!(owner(program), (0, 0));
        assert!(getcap(program).contains("cap_net_raw=ep"), "{}", getcap(program));
        assert_eq!(
            std::fs::metadata(program).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }
    assert_eq!(owner(&plain), (0, 0));
    assert!(env.journal_files().is_empty());
}

#[test]
fn capabilities_are_on_disk_before_the_change_that_clears_them() {
    let env = OwnEnv::new();
    let program = env.tree().join("ping-like");
    capable_program(&program);
    // Killed (SIGKILL, no cleanup) right after its second change: the tree, then the program.
    let out = env
        .command(["own", "tree"])
        .env("FLOWERBED_TEST_KILL_AFTER", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "not killed: {}", all_output(&out));
    assert_eq!(owner(&program), (49_999, 49_999));
    assert_eq!(getcap(&program), "");
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    assert_eq!(owner(&program), (0, 0));
    assert!(
        getcap(&program).contains("cap_net_raw=ep"),
        "{}",
        getcap(&program)
    );
}

#[test]
fn capabilities_set_again_since_own_are_not_replaced() {
    let env = OwnEnv::new();
    let program = env.tree().join("ping-like");
    capable_program(&program);
    let out = env.run(["own", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", all_output(&out));
    // Someone puts the owner back by hand and gives the program other capabilities: undo
    // has no owner to restore there (so nothing clears them) and does not replace them.
    std::os::unix::fs::chown(&program, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let set = std::process::Command::new("setcap")
        .arg("cap_net_bind_service+ep")
        .arg(&program)
        .status()
        .unwrap();
    assert!(set.success());
    let out = env.run(["undo", "tree"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("ping-like: capabilities not put back: it has other capabilities now"),
        "{}",
        all_output(&out)
    );
    assert_eq!(owner(&env.tree()), (0, 0));
    assert!(
        getcap(&program).contains("cap_net_bind_service=ep"),
        "{}",
        getcap(&program)
    );
    // The journal is kept: something was not put back.
    assert_eq!(env.journal_files().len(), 1);
}
