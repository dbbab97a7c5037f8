//! `certs` refuses bad input: exit 2, one line naming the culprit, nothing on disk changed
//! (unwritable folders and a disk that fills midway included).

use std::os::unix::fs::PermissionsExt;
use std::process::Command as Process;

use crate::testenv::{TestEnv, assert_bad_input, snapshot};

use super::generate;

// ---- bad input: exit 2, one line naming the culprit, nothing on disk changed ----

/// Run flowerbed in `env`, assert bad input naming `culprit`, and that the tree is unchanged.
fn assert_refused(env: &TestEnv, args: &[&str], culprit: &str) {
    let before = env.snapshot();
    let out = env.flowerbed(args).output().unwrap();
    assert_bad_input(&out, culprit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
}

/// Like [`assert_refused`] for clap usage errors, which print a usage block after the line.
fn assert_usage_error(env: &TestEnv, args: &[&str], culprit: &str) {
    let before = env.snapshot();
    let out = env.flowerbed(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(culprit),
        "{args:?} does not name {culprit}: {stderr}"
    );
    assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
}

#[test]
fn bad_inputs_are_refused_without_changes() {
    let env = TestEnv::new();
    generate(&env, &[]);
    std::fs::write(
        env.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(env.join("noise.bin"), [0x30u8, 0x82, 0xff, 0xff, 1, 2, 3]).unwrap();
    std::fs::write(env.join("empty.pem"), "").unwrap();
    std::fs::write(
        env.join("encrypted.key"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(env.join("a-file"), "x").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), env.join("linked")).unwrap();
    write_expired_ca(&env);

    assert_refused(&env, &["certs", "inspect", "garbage.pem"], "garbage.pem");
    assert_refused(&env, &["certs", "inspect", "noise.bin"], "noise.bin");
    assert_refused(&env, &["certs", "inspect", "empty.pem"], "empty.pem");
    assert_refused(&env, &["certs", "inspect", "encrypted.key"], "encrypted");
    assert_refused(&env, &["certs", "inspect", "deploy"], "deploy");
    assert_refused(&env, &["certs", "inspect", "missing.pem"], "missing.pem");
    assert_refused(&env, &["certs", "generate", "a-file"], "a-file");
    assert_refused(&env, &["certs", "generate", "linked"], "linked");
    assert_refused(&env, &["certs", "generate", "deploy"], "deploy/");
    assert_refused(
        &env,
        &["certs", "generate", "new", "--name", "bad name"],
        "--name",
    );
    assert_refused(
        &env,
        &["certs", "generate", "new", "--name", "superlink:9092"],
        "superlink:9092",
    );
    assert_refused(&env, &["certs", "generate", "new", "--name", "*.org"], "*.org");
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/superlink-certificates/server.pem",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "not a CA",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/ca/ca.crt",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "--ca-key",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "nope.crt",
            "--ca-key",
            "deploy/ca/ca.key",
        ],
        "nope.crt",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "expired/ca.crt",
            "--ca-key",
            "expired/ca.key",
        ],
        "expired",
    );
    assert_refused(&env, &["certs", "verify", "a-file"], "a-file");
    assert_refused(&env, &["certs", "verify", "linked"], "no certificates found");
    assert_refused(
        &env,
        &[
            "certs",
            "verify",
            "--ca",
            "garbage.pem",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ],
        "garbage.pem",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "verify",
            "--ca",
            "deploy/ca/ca.crt",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/ca/ca.crt",
        ],
        "holds no private key",
    );
    assert_usage_error(
        &env,
        &["certs", "generate", "new", "--key-type", "dsa-1024"],
        "dsa-1024",
    );
    assert_usage_error(&env, &["certs", "generate", "new", "--days", "0"], "--days");
    assert_usage_error(
        &env,
        &["certs", "generate", "new", "--ca-cert", "deploy/ca/ca.crt"],
        "--ca-key",
    );
    assert_usage_error(&env, &["certs", "verify", "--ca", "deploy/ca/ca.crt"], "--cert");
    assert!(!env.join("new").exists());
}

fn write_expired_ca(env: &TestEnv) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir(env.join("expired")).unwrap();
    std::fs::write(env.join("expired/ca.crt"), cert.pem()).unwrap();
    std::fs::write(env.join("expired/ca.key"), key.serialize_pem()).unwrap();
}

#[test]
fn unwritable_dir_is_refused_for_non_root() {
    // As root every directory is writable, so run as nobody over a root-owned folder.
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(env.join("locked")).unwrap();
    std::fs::set_permissions(env.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    let before = env.snapshot();
    let out = Process::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["certs", "generate", "locked"])
        .current_dir(env.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv (util-linux) runs the binary as nobody");
    assert_bad_input(&out, "locked: not writable");
    assert_eq!(env.snapshot(), before);
}

/// A tiny tmpfs, unmounted (by path, ours only) when dropped.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// `pages_free` 4 KiB pages left free after filling; None where mounting is refused.
    fn new(pages_free: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Process::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let fs = Self { dir };
        // Fill all but `pages_free` pages.
        std::fs::write(
            fs.dir.path().join("filler"),
            vec![0u8; usize::try_from((16 - pages_free) * 4096).unwrap()],
        )
        .unwrap();
        Some(fs)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn disk_full_midway_leaves_nothing_half_written() {
    let Some(fs) = TinyFs::new(3) else {
        panic!("cannot mount a tmpfs: the tests need root (as `make test` runs them)");
    };
    let before = snapshot(fs.dir.path());
    let out = crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy"])
        .output()
        .unwrap();
    assert_bad_input(&out, "No space left on device");
    assert_eq!(
        snapshot(fs.dir.path()),
        before,
        "a failed write must leave no file or folder behind"
    );
    // With an existing set and --force, a failure keeps the old files byte-identical.
    std::fs::remove_file(fs.dir.path().join("filler")).unwrap();
    crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy"])
        .assert()
        .success();
    std::fs::write(fs.dir.path().join("filler"), vec![0u8; 5 * 4096]).unwrap();
    let before = snapshot(fs.dir.path());
    let out = crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy", "--force"])
        .output()
        .unwrap();
    assert_bad_input(&out, "No space left on device");
    assert_eq!(snapshot(fs.dir.path()), before);
}
