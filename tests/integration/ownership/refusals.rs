//! `own`, `undo` and `release` refuse bad input: exit 2, one line naming the culprit,
//! nothing changed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::testenv::{assert_bad_input, stderr, stdout};

use super::{OwnEnv, owner};

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
