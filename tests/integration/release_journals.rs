//! `release PARENT` retires every journal of a folder inside the tree it hands over, each
//! under its own lock: one another run is writing is kept, and said to be.

use std::os::unix::fs::OpenOptionsExt;

use crate::ownership::{OwnEnv, journal_of, owner};
use crate::testenv::{stderr, stdout};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn release_of_a_parent_retires_the_journals_of_folders_at_every_depth() {
    let env = OwnEnv::new();
    // Enough folders that the walkers hand some over to each other.
    let mut inner = Vec::new();
    for i in 0..40 {
        let dir = env.tree().join(format!("g{i:02}/d/e"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), b"").unwrap();
        if i % 4 == 0 {
            inner.push(format!("tree/g{i:02}/d/e"));
        } else if i % 4 == 1 {
            inner.push(format!("tree/g{i:02}"));
        }
    }
    for path in &inner {
        let out = env.run(["own", path]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    // One folder inside already has the owner release gives: its journal goes too.
    let right = env.tree().join("g02/d");
    let out = env.run(["own", "--uid", "3333", "--gid", "3333", "tree/g02/d"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(owner(&right), (3333, 3333));
    assert_eq!(env.journal_files().len(), inner.len() + 1);

    let out = env.run(["release", "--json", "--to", "3333:3333", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["roots"][0]["inner_journals"].as_array().map(Vec::len),
        Some(inner.len() + 1),
        "{report}"
    );
    assert!(env.journal_files().is_empty(), "{:?}", env.journal_files());
    assert_eq!(owner(&env.tree().join("g00/d/e/f")), (3333, 3333));
}

#[test]
fn an_inner_journal_another_run_holds_is_kept_and_named() {
    let env = OwnEnv::new();
    std::fs::create_dir_all(env.tree().join("sub/deeper")).unwrap();
    std::fs::write(env.tree().join("sub/deeper/f"), b"").unwrap();
    for path in ["tree/sub/deeper", "tree/sub"] {
        let out = env.run(["own", path]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let held = journal_of(&env, &env.tree().join("sub/deeper"));
    let other = journal_of(&env, &env.tree().join("sub"));
    // Another run's lock on the inner journal, as `own tree/sub/deeper` takes it.
    let lock_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(held.with_extension("lock"))
        .unwrap();
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| errno)
        .unwrap();
    let out = env.run(["release", "--to", "0:0", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "journal {} of a path inside is in use by another run; kept",
            held.display()
        )),
        "{}",
        text(&out)
    );
    assert!(held.exists(), "a journal another run holds was removed");
    assert!(!other.exists());
    drop(lock);
    let out = env.run(["release", "--to", "0:0", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(env.journal_files().is_empty(), "{:?}", env.journal_files());
}
