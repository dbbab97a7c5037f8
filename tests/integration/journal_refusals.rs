//! Bad input for `undo` and friends that needs a journal made first: journals edited, cut,
//! forged (checksums recomputed) or swapped for another folder's, and a journal folder
//! someone else owns. Each exits 2 with one line naming the culprit and changes nothing.

use crate::testenv::{TestEnv, snapshot};

/// `undo` fed a journal that was edited, cut, forged or swapped for another folder's: exit
/// 2, one line naming the journal, nothing changed (the journal is kept).
#[test]
fn undo_refuses_edited_cut_forged_and_foreign_journals() {
    use flowerbed::ownership::journal::{self, Capability, Frame, MAGIC, Record, SessionEnd, encode_frame};
    use std::os::unix::fs::MetadataExt;

    let env = TestEnv::new();
    let run = |args: &[&str]| {
        env.flowerbed(args)
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .output()
            .unwrap()
    };
    for name in ["t", "u"] {
        std::fs::create_dir_all(env.join(name).join("sub")).unwrap();
        std::fs::write(env.join(name).join("sub/f"), name).unwrap();
    }
    std::fs::write(env.join("victim"), "outside").unwrap();
    for name in ["t", "u"] {
        assert_eq!(run(&["own", name]).status.code(), Some(0));
    }
    let journal_of = |name: &str| {
        let meta = std::fs::metadata(env.join(name)).unwrap();
        env.state
            .path()
            .join(format!("own-{:x}-{:x}.journal", meta.dev(), meta.ino()))
    };
    let (t_journal, u_journal) = (journal_of("t"), journal_of("u"));
    let good = std::fs::read(&t_journal).unwrap();
    let (frames, _) = journal::parse(&good).unwrap();
    let session = encode_frame(&frames[0]);
    let Frame::Records(records) = &frames[1] else {
        panic!("records expected")
    };
    // A journal of t's run holding these records, the end frame saying `changed`.
    let forged = |records: Vec<Record>, changed: u64| {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(&session);
        bytes.extend(encode_frame(&Frame::Records(records)));
        bytes.extend(encode_frame(&Frame::End(SessionEnd { changed, finished: 2 })));
        bytes
    };
    let with_path = |path: &[u8]| {
        let mut bad = records.clone();
        bad.push(Record {
            path: path.to_vec(),
            uid: 0,
            mode: 0o104_755,
            ..records[0].clone()
        });
        forged(bad.clone(), bad.len() as u64)
    };
    // t's run with a capabilities frame for `path`, put before the session or after it.
    let with_capability = |path: &[u8], before_session: bool| {
        let capabilities = encode_frame(&Frame::Capabilities(vec![Capability {
            dev: records[0].dev,
            ino: records[0].ino,
            path: path.to_vec(),
            // A version-2 `vfs_cap_data` granting nothing.
            value: [0x00, 0x00, 0x00, 0x02].into_iter().chain([0; 16]).collect(),
        }]));
        let mut bytes = MAGIC.to_vec();
        if before_session {
            bytes.extend(&capabilities);
        }
        bytes.extend(&session);
        if !before_session {
            bytes.extend(&capabilities);
        }
        bytes.extend(encode_frame(&Frame::Records(records.clone())));
        bytes.extend(encode_frame(&Frame::End(SessionEnd {
            changed: records.len() as u64,
            finished: 2,
        })));
        bytes
    };
    let mut flipped = good.clone();
    flipped[MAGIC.len() + session.len() + 12] ^= 0x20;
    let first_records_end = MAGIC.len() + session.len() + 20;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("edited", flipped, "corrupt"),
        (
            "cut to 16 bytes",
            good[..16].to_vec(),
            "before its first complete frame",
        ),
        (
            "cut to 30 bytes",
            good[..30].to_vec(),
            "before its first complete frame",
        ),
        (
            "cut to 200 bytes",
            good[..200].to_vec(),
            "before its first complete frame",
        ),
        (
            "cut inside its first records frame",
            good[..first_records_end].to_vec(),
            "inside the first records frame",
        ),
        (
            "missing frames",
            forged(records.clone(), records.len() as u64 + 3),
            "do not cover",
        ),
        (
            "another folder's",
            std::fs::read(&u_journal).unwrap(),
            "belongs to another folder",
        ),
        ("path ../victim", with_path(b"../victim"), "`..` component"),
        (
            "path sub/../../victim",
            with_path(b"sub/../../victim"),
            "`..` component",
        ),
        ("absolute path", with_path(b"/etc/passwd"), "is absolute"),
        ("empty component", with_path(b"sub//f"), "empty component"),
        ("dot component", with_path(b"./sub"), "`.` component"),
        (
            "capability path ../victim",
            with_capability(b"../victim", false),
            "capability path \"../victim\"",
        ),
        (
            "capability path absolute",
            with_capability(b"/usr/bin/ping", false),
            "is absolute",
        ),
        (
            "capabilities before any session",
            with_capability(b"sub/f", true),
            "capabilities before any session",
        ),
    ];
    for (what, bytes, reason) in cases {
        std::fs::write(&t_journal, &bytes).unwrap();
        let before = (env.snapshot(), snapshot(env.state.path()));
        for args in [&["undo", "t"][..], &["undo", "--skip-changed", "t"]] {
            let out = run(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
            assert!(stderr.starts_with("flowerbed: "), "{what}: {stderr}");
            assert!(
                stderr.contains(&t_journal.display().to_string()) && stderr.contains(reason),
                "{what}: does not name the journal and {reason:?}: {stderr}"
            );
            assert_eq!(
                (env.snapshot(), snapshot(env.state.path())),
                before,
                "{what}: something changed"
            );
        }
    }
    // The real journal still undoes.
    std::fs::write(&t_journal, &good).unwrap();
    assert_eq!(run(&["undo", "t"]).status.code(), Some(0));
}

/// A journal folder someone else owns is refused by every command that reads or writes it.
#[test]
fn a_journal_folder_owned_by_another_user_is_refused() {
    let env = TestEnv::new();
    std::fs::create_dir(env.join("t")).unwrap();
    assert_eq!(
        env.flowerbed(["own", "t"]).output().unwrap().status.code(),
        Some(0)
    );
    std::os::unix::fs::chown(env.state.path(), Some(1000), Some(1000)).unwrap();
    let state = env.state.path().display().to_string();
    for args in [
        &["undo", "t"][..],
        &["own", "t"],
        &["journal", "list"],
        &["journal", "prune"],
        &["release", "--to", "0:0", "t"],
    ] {
        let before = (env.snapshot(), snapshot(env.state.path()));
        let out = env.flowerbed(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&state) && stderr.contains("UID 1000"),
            "{args:?}: {stderr}"
        );
        assert_eq!((env.snapshot(), snapshot(env.state.path())), before, "{args:?}");
    }
    std::os::unix::fs::chown(env.state.path(), Some(0), Some(0)).unwrap();
    assert_eq!(
        env.flowerbed(["undo", "t"]).output().unwrap().status.code(),
        Some(0)
    );
}
