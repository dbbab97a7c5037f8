//! Issue 16's small fixes around `check`: regenerated certificates keep their folder's owner
//! and key type, `certs verify` on Flower's own layouts, quiet output and closed pipes.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command as Process, Stdio};

use crate::testenv::{APP, TestEnv, stderr, stdout};

fn owner(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// The key algorithm `certs inspect --json` reports for `file`.
fn key_of(env: &TestEnv, file: &str) -> String {
    let out = env
        .flowerbed(["certs", "inspect", "--json", file])
        .output()
        .unwrap();
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    format!(
        "{} {}",
        items[0]["key"]["algorithm"].as_str().unwrap(),
        items[0]["key"]["bits"]
    )
}

#[test]
fn regenerating_into_a_folder_owned_by_the_container_keeps_its_owner_journaled() {
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.flowerbed(["quickstart", "deploy", "-q"]).assert().success();
    let key = env.join("deploy/superlink-certificates/server.key");
    assert_eq!(owner(&key), (APP, APP, 0o600));
    let out = env
        .flowerbed([
            "certs",
            "generate",
            "deploy",
            "--force",
            "--ca-cert",
            "deploy/ca/ca.crt",
            "--ca-key",
            "deploy/ca/ca.key",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("belong to its owner 49999:49999 (journaled"),
        "{}",
        stdout(&out)
    );
    // The new key is the container's and still private; the next check is clean.
    assert_eq!(owner(&key), (APP, APP, 0o600));
    assert_eq!(
        owner(&env.join("deploy/superlink-certificates/server.pem")).0,
        APP
    );
    let (code, ids, _) = crate::check::check(&env, &["deploy"]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
    // Journaled like `own`: undo puts the new files back to who wrote them (root); the
    // replaced files' entries are gone with them.
    let out = env
        .flowerbed(["undo", "--skip-changed", "deploy/superlink-certificates"])
        .output()
        .unwrap();
    assert_eq!(owner(&key), (0, 0, 0o600), "{}", stderr(&out));
}

#[test]
fn regenerating_keeps_the_key_type_unless_told_otherwise() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "k", "--key-type", "rsa-2048", "-q"])
        .assert()
        .success();
    env.flowerbed(["certs", "generate", "k", "--force", "-q"])
        .assert()
        .success();
    assert_eq!(key_of(&env, "k/superlink-certificates/server.pem"), "RSA 2048");
    assert_eq!(key_of(&env, "k/ca/ca.crt"), "RSA 2048");
    env.flowerbed([
        "certs",
        "generate",
        "k",
        "--force",
        "--key-type",
        "ecdsa-p384",
        "-q",
    ])
    .assert()
    .success();
    assert_eq!(
        key_of(&env, "k/superlink-certificates/server.pem"),
        "ECDSA P-384 384"
    );
    // A fresh folder still gets the default.
    env.flowerbed(["certs", "generate", "fresh", "-q"])
        .assert()
        .success();
    assert_eq!(
        key_of(&env, "fresh/superlink-certificates/server.pem"),
        "ECDSA P-256 256"
    );
}

#[test]
fn generating_as_root_into_a_fresh_folder_names_the_own_command_next() {
    let env = TestEnv::new();
    let out = env.flowerbed(["certs", "generate", "deploy"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let folder = env.join("deploy/superlink-certificates");
    let next = "run `sudo flowerbed own deploy/superlink-certificates`";
    assert!(stdout(&out).contains(next), "{}", stdout(&out));
    // Once the folder is the container's, regenerating keeps that and says nothing of own.
    env.flowerbed(["own", "deploy/superlink-certificates"])
        .assert()
        .success();
    let out = env
        .flowerbed(["certs", "generate", "deploy", "--force"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("sudo flowerbed own"), "{}", stdout(&out));
    assert_eq!(owner(&folder.join("server.key")), (APP, APP, 0o600));
}

/// Flower's own certs.yml output: RSA, one flat set in `superlink-certificates/`, SANs
/// `superlink`, `::1` and an IP, no `localhost`; beside a compose file whose supernodes dial
/// `superlink`.
fn flower_certificates(project: &Path) {
    let certs = project.join("superlink-certificates");
    std::fs::create_dir_all(&certs).unwrap();
    let openssl = |args: &[&str]| {
        let out = Process::new("openssl")
            .args(args)
            .current_dir(&certs)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/O=Flower/CN=Flower CA",
    ]);
    std::fs::write(
        certs.join("certificate.conf"),
        "subjectAltName=DNS:superlink,IP:::1,IP:10.0.0.5\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/O=Flower/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "7",
        "-days",
        "30",
        "-extfile",
        "certificate.conf",
        "-out",
        "server.pem",
    ]);
    std::fs::write(
        project.join("compose.yml"),
        r"services:
  superlink:
    image: flwr/superlink:1.42.0
    command: [--isolation, process, --ssl-ca-certfile, certificates/ca.crt,
              --ssl-certfile, certificates/server.pem, --ssl-keyfile, certificates/server.key]
    volumes:
      - ./superlink-certificates:/app/certificates:ro
  supernode-1:
    image: flwr/supernode:1.42.0
    command: [--superlink, superlink:8000, --root-certificates, certificates/ca.crt]
    volumes:
      - ./superlink-certificates/ca.crt:/app/certificates/ca.crt:ro
",
    )
    .unwrap();
}

#[test]
fn verify_takes_flower_layouts_and_the_names_the_deployment_dials() {
    let env = TestEnv::new();
    let project = env.join("project");
    flower_certificates(&project);
    // The project folder (no supernode-certificates/) and the flat folder itself.
    for dir in ["project", "project/superlink-certificates"] {
        let out = env.flowerbed(["certs", "verify", dir]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{dir}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("matches its key, and covers superlink"),
            "{}",
            stdout(&out)
        );
    }
    // Without a deployment around them, the default names apply, and localhost is missing.
    std::fs::remove_file(project.join("compose.yml")).unwrap();
    let out = env.flowerbed(["certs", "verify", "project"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("name-not-covered"), "{}", stdout(&out));
}

#[test]
fn verify_without_the_key_checks_chain_and_names() {
    let env = TestEnv::new();
    flower_certificates(&env.join("project"));
    let out = env
        .flowerbed([
            "certs",
            "verify",
            "--ca",
            "project/superlink-certificates/ca.crt",
            "--cert",
            "project/superlink-certificates/server.pem",
            "--name",
            "superlink",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("chains to"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("matches its key"), "{}", stdout(&out));
    // Another CA: the chain is refused, still without a key.
    env.flowerbed(["certs", "generate", "other", "-q"])
        .assert()
        .success();
    let out = env
        .flowerbed([
            "certs",
            "verify",
            "--ca",
            "other/ca/ca.crt",
            "--cert",
            "project/superlink-certificates/server.pem",
            "--name",
            "superlink",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("chain-issuer"), "{}", stdout(&out));
}

/// Run flowerbed with stdout on a pipe that is closed after the first bytes (as `| head`
/// does); return its exit code and stderr.
fn with_closed_pipe(env: &TestEnv, args: &[String]) -> (Option<i32>, String) {
    let mut child = Process::new(assert_cmd::cargo::cargo_bin("flowerbed"))
        .args(args)
        .current_dir(env.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0_u8; 16];
    out.read_exact(&mut first).unwrap();
    drop(out);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_closed_pipe_is_a_quiet_success() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "d", "-q"]).assert().success();
    // Far more than a pipe holds, so writing goes on after the reader is gone.
    for json in [true, false] {
        let mut args = vec!["certs".to_string(), "inspect".to_string()];
        if json {
            args.push("--json".into());
        }
        args.extend(std::iter::repeat_n(
            "d/superlink-certificates/server.pem".to_string(),
            400,
        ));
        let (code, err) = with_closed_pipe(&env, &args);
        assert_eq!((code, err.as_str()), (Some(0), ""), "json: {json}");
    }
}

#[test]
fn quickstart_quiet_prints_nothing() {
    let env = TestEnv::new();
    let out = env.flowerbed(["quickstart", "deploy", "-q"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("", ""));
    assert!(env.join("deploy/compose.yaml").is_file());
    // A second run has nothing to do, and -q does not say so either.
    let out = env.flowerbed(["quickstart", "deploy", "-q"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("", ""));
    let out = env.flowerbed(["quickstart", "deploy"]).output().unwrap();
    assert!(stdout(&out).contains("up to date"), "{}", stdout(&out));
    // Without -q the same run lists what it wrote.
    let out = env.flowerbed(["quickstart", "other"]).output().unwrap();
    assert!(stdout(&out).contains("write "), "{}", stdout(&out));
}

#[test]
fn a_parse_error_keeps_its_lines() {
    let env = TestEnv::new();
    std::fs::write(env.join("broken.yaml"), "services:\n  a: [\n  b: x\n").unwrap();
    let out = env
        .flowerbed(["check", "--compose", "broken.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("flowerbed: ") && err.contains("broken.yaml"),
        "{err}"
    );
    assert!(!err.contains("\\n"), "literal \\n in: {err}");
    // Every further line is indented under the error line.
    assert!(err.lines().skip(1).all(|line| line.starts_with("  ")), "{err}");
}
