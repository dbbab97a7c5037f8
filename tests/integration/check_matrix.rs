//! The `check` matrix: for every supported release (the profile table, not a hand list) ×
//! isolation (both sides subprocess, both process, and both mixed orders) × TLS/insecure,
//! `quickstart` (as root: it hands folders to 49999; TLS variants with supernode
//! authentication keys) then `check` exits 0. Then each fault that applies is injected into
//! that deployment; `check` must report exactly the expected rule, and the fix it prints,
//! run for real, must make `check` exit 0 again. The folder (flowerbed's model), its
//! compose.yaml and its run.sh must each come to the same verdict.
//!
//! No Flower process starts: every variant lives in its own temp folder, a few run at once.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowerbed::deploy::PROFILES;

use crate::testenv::{APP, TestEnv};

/// The files quickstart renders, each read by `check` on its own.
const READINGS: [&[&str]; 2] = [
    &["--compose", "deploy/compose.yaml"],
    &["--run-script", "deploy/run.sh"],
];

/// One cell of the matrix.
#[derive(Debug, Clone)]
struct Variant {
    version: &'static str,
    superlink: &'static str,
    supernode: &'static str,
    tls: bool,
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} superlink={} supernode={} {}",
            self.version,
            self.superlink,
            self.supernode,
            if self.tls { "tls" } else { "insecure" }
        )
    }
}

fn variants() -> Vec<Variant> {
    let isolations = [
        ("subprocess", "subprocess"),
        ("process", "process"),
        ("subprocess", "process"),
        ("process", "subprocess"),
    ];
    let mut all = Vec::new();
    for profile in &PROFILES {
        for (superlink, supernode) in isolations {
            for tls in [true, false] {
                all.push(Variant {
                    version: profile.version,
                    superlink,
                    supernode,
                    tls,
                });
            }
        }
    }
    all
}

/// What is shared by every variant: a folder whose `bin/` puts `flowerbed` (this build) and a
/// pass-through `sudo` (the tests run as root) first on PATH, and a CA nobody trusts.
struct Shared {
    dir: tempfile::TempDir,
    foreign_ca: PathBuf,
}

impl Shared {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("flowerbed"), bin.join("flowerbed")).unwrap();
        std::fs::write(bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
        std::fs::set_permissions(bin.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let other = dir.path().join("other");
        let out = crate::testenv::flowerbed()
            .args(["certs", "generate", "-q"])
            .arg(&other)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self {
            foreign_ca: other.join("ca/ca.crt"),
            dir,
        }
    }

    fn path_env(&self) -> std::ffi::OsString {
        let mut path = self.dir.path().join("bin").into_os_string();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        path
    }
}

/// One deployment under test, with the commands it runs.
struct Cell<'a> {
    env: TestEnv,
    shared: &'a Shared,
    variant: Variant,
    dir: PathBuf,
}

type Outcome = Result<(), String>;

impl<'a> Cell<'a> {
    fn new(shared: &'a Shared, variant: Variant) -> Self {
        let env = TestEnv::new();
        std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = env.join("deploy");
        Self {
            env,
            shared,
            variant,
            dir,
        }
    }

    fn quickstart(&self) -> Outcome {
        let v = &self.variant;
        let mut args = vec![
            "quickstart",
            "deploy",
            "-q",
            "--state",
            "--flower-version",
            v.version,
            "--superlink-isolation",
            v.superlink,
            "--supernode-isolation",
            v.supernode,
        ];
        if v.tls {
            // Supernode authentication needs TLS: its keys join the TLS variants.
            args.push("--supernode-auth");
        } else {
            args.push("--insecure");
        }
        let out = self.env.flowerbed(&args).output().unwrap();
        if !out.status.success() {
            return Err(format!(
                "quickstart failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// `check --json` on one reading of the deployment: exit code and findings.
    fn check_reading(&self, reading: &[&str]) -> Result<(i32, Vec<serde_json::Value>), String> {
        let mut args = vec!["check", "--selinux", "off", "--json"];
        args.extend_from_slice(reading);
        let out = self.env.flowerbed(&args).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
            format!(
                "check {reading:?} printed no JSON: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((
            out.status.code().unwrap_or(-1),
            report["findings"].as_array().cloned().unwrap_or_default(),
        ))
    }

    /// `check` on flowerbed's model (the folder); the rendered compose file and run.sh must
    /// come to the same rule ids.
    fn check(&self) -> Result<(i32, Vec<serde_json::Value>), String> {
        let ids = |findings: &[serde_json::Value]| -> BTreeSet<String> {
            findings
                .iter()
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect()
        };
        let (code, findings) = self.check_reading(&["deploy"])?;
        for reading in READINGS {
            let (other_code, other) = self.check_reading(reading)?;
            if (other_code, ids(&other)) != (code, ids(&findings)) {
                return Err(format!(
                    "check {reading:?} disagrees with check deploy: exit {other_code} {} against exit {code} {}",
                    serde_json::Value::from(other),
                    serde_json::Value::from(findings)
                ));
            }
        }
        Ok((code, findings))
    }

    fn expect_clean(&self, after: &str) -> Outcome {
        let (code, findings) = self.check()?;
        if code != 0 || !findings.is_empty() {
            return Err(format!(
                "{after}: check exited {code} with {}",
                serde_json::Value::from(findings)
            ));
        }
        Ok(())
    }

    /// Run a suggested fix exactly as printed, through a shell, with `sudo` and `flowerbed`
    /// resolving to the pass-through and this build.
    fn run_fix(&self, fix: &str) -> Outcome {
        let out = Process::new("sh")
            .args(["-c", fix])
            .current_dir(self.env.path())
            .env("PATH", self.shared.path_env())
            .env("FLOWERBED_STATE_DIR", self.env.state.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "the fix `{fix}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// After `inject`, check reports `expected` and nothing else, as errors with a fix;
    /// each distinct fix, run for real, makes the check clean again.
    fn fault(&self, name: &str, expected: &str, inject: impl FnOnce(&Path)) -> Outcome {
        inject(&self.dir);
        let (code, findings) = self.check()?;
        let ids: BTreeSet<&str> = findings.iter().filter_map(|f| f["id"].as_str()).collect();
        if code != 1 || ids != BTreeSet::from([expected]) {
            return Err(format!(
                "{name}: expected exit 1 with only {expected}, got exit {code}: {}",
                serde_json::Value::from(findings)
            ));
        }
        if findings.iter().any(|f| f["fix"].as_str().is_none()) {
            return Err(format!(
                "{name}: {expected} comes without a fix: {}",
                serde_json::Value::from(findings)
            ));
        }
        let mut fixes: Vec<&str> = Vec::new();
        for fix in findings.iter().filter_map(|f| f["fix"].as_str()) {
            if !fixes.contains(&fix) {
                fixes.push(fix);
            }
        }
        for fix in fixes {
            self.run_fix(fix).map_err(|err| format!("{name}: {err}"))?;
        }
        self.expect_clean(&format!("{name}: after its fix"))
    }

    fn run(&self) -> Outcome {
        self.quickstart()?;
        self.expect_clean("right after quickstart")?;
        let state = self.dir.join("state");
        self.fault("missing state folder", "mount-source-missing", |_| {
            std::fs::remove_dir_all(&state).unwrap();
        })?;
        self.fault("root-owned state folder", "state-not-writable", |_| {
            std::os::unix::fs::lchown(&state, Some(0), Some(0)).unwrap();
        })?;
        if !self.variant.tls {
            return Ok(());
        }
        let key = self.dir.join("superlink-certificates/server.key");
        self.fault("root-owned 0600 key", "not-readable", |_| {
            std::os::unix::fs::lchown(&key, Some(0), Some(0)).unwrap();
        })?;
        self.fault("world-readable key", "key-too-open", |_| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        })?;
        self.fault("missing mount source", "mount-source-missing", |dir| {
            std::fs::remove_dir_all(dir.join("supernode-certificates")).unwrap();
        })?;
        self.fault("name not covered", "name-not-covered", |dir| {
            localhost_only_certificate(dir);
        })?;
        let auth_key = self.dir.join("supernode-auth/supernode-1/auth.key");
        self.fault("world-readable auth key", "key-too-open", |_| {
            std::fs::set_permissions(&auth_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        })?;
        self.fault("auth key readable by another group", "key-too-open", |_| {
            std::os::unix::fs::lchown(&auth_key, Some(APP), Some(0)).unwrap();
            std::fs::set_permissions(&auth_key, std::fs::Permissions::from_mode(0o640)).unwrap();
        })?;
        self.fault("root-owned auth key", "not-readable", |_| {
            std::os::unix::fs::lchown(&auth_key, Some(0), Some(0)).unwrap();
        })?;
        let foreign_ca = &self.shared.foreign_ca;
        self.fault("wrong CA", "chain-issuer", |dir| {
            std::fs::copy(foreign_ca, dir.join("supernode-certificates/ca.crt")).unwrap();
        })
    }
}

/// Replace the superlink's certificate (and key) with one the deployment's own CA signed
/// for `localhost` only, owned by 49999 like the rest of the folder.
fn localhost_only_certificate(dir: &Path) {
    let certs = dir.join("superlink-certificates");
    let ca = dir.join("ca");
    let openssl = |args: &[&str]| {
        let out = Process::new("openssl")
            .args(args)
            .current_dir(&certs)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(certs.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    let ca_cert = ca.join("ca.crt");
    let ca_key = ca.join("ca.key");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        ca_cert.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        "4242",
        "-days",
        "365",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    for name in ["san.ext", "server.csr"] {
        std::fs::remove_file(certs.join(name)).unwrap();
    }
    for name in ["server.key", "server.pem"] {
        std::os::unix::fs::lchown(certs.join(name), Some(APP), Some(APP)).unwrap();
    }
    std::fs::set_permissions(certs.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn every_release_isolation_and_transport_checks_clean_and_each_fault_is_found_and_fixed() {
    let shared = Shared::new();
    let all = variants();
    assert_eq!(all.len(), PROFILES.len() * 8);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(variant) = all.get(index) else { break };
                    let cell = Cell::new(&shared, variant.clone());
                    if let Err(err) = cell.run() {
                        failures.lock().unwrap().push(format!("{variant}: {err}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} variants failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
