//! Shared helpers: a temp tree, the flowerbed binary, snapshots of a tree's bytes and modes,
//! owners and modes set and read, openssl, YAML, a command's output as text.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;

/// A temporary folder that tests build trees in.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    /// Where `own` journals go for commands run through this env (outside `dir`).
    pub state: tempfile::TempDir,
}

impl TestEnv {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `flowerbed` with the given arguments, run in this folder, colour off.
    pub fn flowerbed<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = flowerbed();
        cmd.current_dir(self.path())
            .env("FLOWERBED_STATE_DIR", self.state.path())
            .args(args);
        cmd
    }

    /// Every entry below the folder with its type, owner, mode and content.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(self.path())
    }
}

pub fn flowerbed() -> Command {
    let mut cmd = Command::cargo_bin("flowerbed").expect("binary built");
    cmd.env("NO_COLOR", "1");
    cmd
}

/// What a tree looks like, entry by entry: enough to prove "nothing on disk changed".
pub type Snapshot = BTreeMap<PathBuf, EntryState>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub kind: &'static str,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub content: Vec<u8>,
}

pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.expect("walk");
        let meta = entry.path().symlink_metadata().expect("lstat");
        let kind = if meta.file_type().is_symlink() {
            "symlink"
        } else if meta.is_dir() {
            "dir"
        } else if meta.is_file() {
            "file"
        } else {
            "other"
        };
        let content = match kind {
            "file" => std::fs::read(entry.path()).unwrap_or_default(),
            "symlink" => std::fs::read_link(entry.path())
                .map(|t| t.into_os_string().into_encoded_bytes())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        out.insert(
            rel,
            EntryState {
                kind,
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
                content,
            },
        );
    }
    out
}

/// Assert the command failed as bad input: exit 2, one `flowerbed:` line naming `culprit`.
pub fn assert_bad_input(output: &std::process::Output, culprit: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "expected exit 2, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "no error message");
    let error_line = lines
        .iter()
        .find(|l| l.starts_with("flowerbed: ") || l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(
        error_line.contains(culprit),
        "error line does not name {culprit:?}: {stderr}"
    );
}

/// The UID and GID Flower's images run as.
pub const APP: u32 = 49_999;

/// Give everything under `path` (and `path` itself, never through a link) to `uid:gid`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    for entry in walkdir::WalkDir::new(path) {
        std::os::unix::fs::lchown(entry.unwrap().path(), Some(uid), Some(gid)).unwrap();
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The permission bits of `path` (through a link).
pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Run openssl with `args` in `cwd`; panic with its stderr on failure; its stdout.
pub fn openssl(args: &[&str], cwd: &Path) -> Vec<u8> {
    let out = Process::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`openssl`]'s stdout as text.
pub fn openssl_text(args: &[&str], cwd: &Path) -> String {
    String::from_utf8_lossy(&openssl(args, cwd)).into_owned()
}

/// Parse YAML (one document) into JSON values, for comparisons.
pub fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
