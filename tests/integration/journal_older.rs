//! Journals written by earlier versions (no identity recorded), built byte by byte: judged
//! by the root entry's facts, refused or set aside when those disagree, removed by release
//! when they are another folder's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flowerbed::ownership::journal::{
    self, Frame, MAGIC, Record, SessionEnd, SessionInfo, crc32, encode_frame,
};

use crate::journal::{Env, assert_refused, owner, text};

/// Bytes of a journal as an earlier version wrote it: no identity in its session frame;
/// version 1 with its fixed-size records frame, or version 2 with a compact one.
fn older_journal(version: u8, root: &Path, records: &[Record], target: (u32, u32)) -> Vec<u8> {
    let meta = std::fs::symlink_metadata(root).unwrap();
    let mut bytes = MAGIC.to_vec();
    bytes[15] = version;
    let session = SessionInfo {
        tool: "flowerbed 0.1.0".into(),
        command: "own".into(),
        started: 1,
        root: root.display().to_string(),
        root_dev: meta.dev(),
        root_ino: meta.ino(),
        uid: target.0,
        gid: target.1,
        identity: None,
    };
    bytes.extend(encode_frame(&Frame::Session(session)));
    if version == 1 {
        let mut payload = u32::try_from(records.len()).unwrap().to_le_bytes().to_vec();
        for r in records {
            payload.extend(r.dev.to_le_bytes());
            payload.extend(r.ino.to_le_bytes());
            payload.extend(r.uid.to_le_bytes());
            payload.extend(r.gid.to_le_bytes());
            payload.extend(r.mode.to_le_bytes());
            payload.extend(u32::try_from(r.path.len()).unwrap().to_le_bytes());
            payload.extend(&r.path);
        }
        bytes.extend(frame(b'R', &payload));
    } else {
        bytes.extend(encode_frame(&Frame::Records(records.to_vec())));
    }
    bytes.extend(encode_frame(&Frame::End(SessionEnd {
        changed: records.len() as u64,
        finished: 2,
    })));
    bytes
}

/// A frame around `payload`, its checksum recomputed.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend(u32::try_from(payload.len()).unwrap().to_le_bytes());
    out.extend(payload);
    let crc = crc32(&out);
    out.extend(crc.to_le_bytes());
    out
}

fn record_of(root: &Path, rel: &str, uid: u32) -> Record {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let meta = std::fs::symlink_metadata(path).unwrap();
    Record {
        dev: meta.dev(),
        ino: meta.ino(),
        uid,
        gid: uid,
        mode: meta.mode(),
        path: rel.as_bytes().to_vec(),
    }
}

fn write_journal(env: &Env, root: &Path, bytes: &[u8]) -> PathBuf {
    journal::ensure_state_dir(&env.state(), None).unwrap();
    let path = env.journal_of(root);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn older_journals_are_judged_by_the_root_entrys_facts() {
    for version in [1_u8, 2] {
        let env = Env::new();
        // As an earlier own left it: 49999, the journal holding the owners before (1000).
        let tree = env.folder("tree", 49_999);
        let records = [record_of(&tree, "", 1000), record_of(&tree, "f", 1000)];
        let bytes = older_journal(version, &tree, &records, (49_999, 49_999));
        write_journal(&env, &tree, &bytes);
        let out = env.run(&["undo", "tree"]);
        assert_eq!(out.status.code(), Some(0), "version {version}: {}", text(&out));
        assert!(
            text(&out).contains("no identity recorded: matched by the root entry's owner and mode"),
            "{}",
            text(&out)
        );
        assert_eq!(owner(&tree), (1000, 1000));
        assert_eq!(owner(&tree.join("f")), (1000, 1000));

        // The same journal beside a folder the last own did not leave that way (2222):
        // another folder's. undo refuses, own sets it aside.
        let env = Env::new();
        let tree = env.folder("tree", 2222);
        let records = [record_of(&tree, "", 1000), record_of(&tree, "f", 1000)];
        let journal = write_journal(
            &env,
            &tree,
            &older_journal(version, &tree, &records, (49_999, 49_999)),
        );
        let before = env.snapshot();
        let out = env.run(&["undo", "tree"]);
        assert_refused(&out, &journal.display().to_string());
        assert!(text(&out).contains("not 49999:49999"), "{}", text(&out));
        assert_eq!(env.snapshot(), before);
        let out = env.run(&["own", "tree"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains("set aside journal"), "{}", text(&out));
        let out = env.run(&["undo", "tree"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(owner(&tree), (2222, 2222));

        // A root entry whose mode disagrees is another folder's too.
        let env = Env::new();
        let tree = env.folder("tree", 49_999);
        let mut root_entry = record_of(&tree, "", 1000);
        root_entry.mode ^= 0o070;
        let journal = write_journal(
            &env,
            &tree,
            &older_journal(version, &tree, &[root_entry], (49_999, 49_999)),
        );
        assert_refused(&env.run(&["undo", "tree"]), &journal.display().to_string());
    }
}

/// `release` of a folder whose inode's journal is another folder's does not retire it as
/// the tree's: it removes it as stale, and restores nothing from it.
#[test]
fn release_removes_a_journal_of_another_folder_as_stale() {
    let env = Env::new();
    let tree = env.folder("tree", 2222);
    let records = [record_of(&tree, "", 1000), record_of(&tree, "f", 1000)];
    let journal = write_journal(&env, &tree, &older_journal(2, &tree, &records, (49_999, 49_999)));
    let out = env.run(&["release", "--to", "3333:3333", "tree"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("removed 1 journal(s)"), "{}", text(&out));
    assert!(!stdout.contains("journal retired"), "{}", text(&out));
    assert!(!journal.exists());
    assert_eq!(owner(&tree), (3333, 3333));
    assert_eq!(owner(&tree.join("f")), (3333, 3333));
}
