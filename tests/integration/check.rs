//! `check`: each rule passes on a good tree and fails on a broken one; the seed's failure
//! is predicted with its fix, and the fix makes the check clean.

use std::path::Path;

use crate::testenv::{APP, TestEnv, assert_bad_input, chown_tree, set_mode};

/// A TLS deployment in `deploy/`: certificates, a state folder, and a compose file with
/// a superlink (process isolation, SQLite state) and two supernodes.
fn deployment(env: &TestEnv, isolation: &str) -> std::path::PathBuf {
    env.flowerbed(["certs", "generate", "deploy"]).assert().success();
    let dir = env.join("deploy");
    set_mode(env.path(), 0o755);
    std::fs::create_dir(dir.join("state")).unwrap();
    chown_tree(&dir.join("superlink-certificates"), APP, APP);
    chown_tree(&dir.join("state"), APP, APP);
    write_compose(&dir, isolation, "superlink:9092", "");
    dir
}

fn write_compose(dir: &Path, isolation: &str, dial: &str, supernode_tls: &str) {
    let d = dir.display();
    let supernode_tls = if supernode_tls.is_empty() {
        "--root-certificates\n      - certificates/ca.crt".to_string()
    } else {
        supernode_tls.to_string()
    };
    let compose = format!(
        r"services:
  superlink:
    image: flwr/superlink:1.42.0
    command:
      - --isolation
      - {isolation}
      - --ssl-ca-certfile
      - certificates/ca.crt
      - --ssl-certfile
      - certificates/server.pem
      - --ssl-keyfile
      - certificates/server.key
      - --database
      - state/state.db
    volumes:
      - {d}/superlink-certificates:/app/certificates:ro
      - {d}/state:/app/state
  supernode-1:
    image: flwr/supernode:1.42.0
    command:
      - --superlink
      - {dial}
      - {supernode_tls}
    volumes:
      - {d}/supernode-certificates:/app/certificates:ro
"
    );
    std::fs::write(dir.join("compose.yaml"), compose).unwrap();
}

/// Run `check --json` on the folder; return (exit code, finding ids).
pub fn check(env: &TestEnv, args: &[&str]) -> (i32, Vec<String>, serde_json::Value) {
    let mut all = vec!["check", "--selinux", "off", "--json"];
    all.extend_from_slice(args);
    let out = env.flowerbed(all).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr)));
    let ids = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    (out.status.code().unwrap(), ids, report)
}

#[test]
fn a_good_deployment_is_clean() {
    let env = TestEnv::new();
    deployment(&env, "process");
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
    let out = env
        .flowerbed(["check", "deploy", "--selinux", "off"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: 2 service(s)"));
}

#[test]
fn seed_failure_is_predicted_with_the_fix_and_the_fix_works() {
    // Flower's documented failure: a root-owned 0600 server.key mounted for UID 49999.
    let env = TestEnv::new();
    let dir = deployment(&env, "subprocess");
    chown_tree(&dir.join("superlink-certificates"), 0, 0);
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"not-readable".to_string()), "{ids:?}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "not-readable")
        .unwrap();
    assert!(
        finding["path"]
            .as_str()
            .unwrap()
            .ends_with("superlink-certificates/server.key")
    );
    let fix = finding["fix"].as_str().unwrap();
    assert_eq!(
        fix,
        format!(
            "sudo flowerbed own {}",
            dir.join("superlink-certificates").display()
        )
    );
    // Run the fix as printed (we are root here, so without `sudo`), then check again.
    let state = tempfile::tempdir().unwrap();
    let words = shlex::split(fix.strip_prefix("sudo ").unwrap()).unwrap();
    assert_eq!(words[0], "flowerbed");
    env.flowerbed(&words[1..])
        .env("FLOWERBED_STATE_DIR", state.path())
        .assert()
        .success();
    let key = std::fs::metadata(dir.join("superlink-certificates/server.key")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&key),
            std::os::unix::fs::MetadataExt::gid(&key)
        ),
        (APP, APP)
    );
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
}

#[test]
fn rule_missing_parent_search_bit() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    let inner = dir.join("superlink-certificates/inner");
    std::fs::create_dir(&inner).unwrap();
    std::fs::rename(
        dir.join("superlink-certificates/server.key"),
        inner.join("server.key"),
    )
    .unwrap();
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        compose.replace("certificates/server.key", "certificates/inner/server.key"),
    )
    .unwrap();
    set_mode(&inner, 0o700); // owned by root: 49999 cannot search it
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"not-readable".to_string()));
    let message = report["findings"][0]["message"].as_str().unwrap();
    assert!(message.contains("inner lacks search (x)"), "{message}");
    chown_tree(&inner, APP, APP);
    assert_eq!(check(&env, &["deploy"]).0, 0);
}

#[test]
fn rule_missing_mount_source() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    std::fs::remove_dir_all(dir.join("state")).unwrap();
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"mount-source-missing".to_string()), "{ids:?}");
}

#[test]
fn rule_state_folder_must_be_writable() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    chown_tree(&dir.join("state"), 0, 0);
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"state-not-writable".to_string()), "{ids:?}");
    // A database file owned by 49999 in a root-owned folder is still not enough.
    std::fs::write(dir.join("state/state.db"), "").unwrap();
    std::os::unix::fs::lchown(dir.join("state/state.db"), Some(APP), Some(APP)).unwrap();
    assert!(
        check(&env, &["deploy"])
            .1
            .contains(&"state-not-writable".to_string())
    );
    chown_tree(&dir.join("state"), APP, APP);
    assert_eq!(check(&env, &["deploy"]).0, 0);
}

#[test]
fn rule_private_key_not_open_to_others() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    let key = dir.join("superlink-certificates/server.key");
    // Readable by everyone: an error, as ssh and PostgreSQL refuse such keys.
    set_mode(&key, 0o644);
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (1, vec!["key-too-open".to_string()]), "{report}");
    assert_eq!(report["findings"][0]["severity"], "error");
    // Readable by the container's own group (49999): a warning only.
    set_mode(&key, 0o640);
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (0, vec!["key-too-open".to_string()]), "{report}");
    assert_eq!(report["findings"][0]["severity"], "warning");
    // Readable by a group that is not the container's: an error again.
    std::os::unix::fs::lchown(&key, Some(APP), Some(0)).unwrap();
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (1, vec!["key-too-open".to_string()]), "{report}");
    let message = report["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("group 0, which is not the container's group 49999"),
        "{message}"
    );
    // The fix it prints makes the check clean.
    let fix = report["findings"][0]["fix"].as_str().unwrap();
    assert_eq!(fix, format!("chmod 600 {}", key.display()));
    set_mode(&key, 0o600);
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
}

#[test]
fn rule_ca_key_must_not_be_mounted() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    std::fs::copy(dir.join("ca/ca.key"), dir.join("superlink-certificates/ca.key")).unwrap();
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"ca-key-mounted".to_string()), "{ids:?}");
    // Renamed, it is still recognised as the key of the CA certificate beside it.
    std::fs::rename(
        dir.join("superlink-certificates/ca.key"),
        dir.join("superlink-certificates/signing.key"),
    )
    .unwrap();
    assert!(check(&env, &["deploy"]).1.contains(&"ca-key-mounted".to_string()));
}

#[test]
fn rule_certificate_mounts_read_only() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        compose.replace(
            "supernode-certificates:/app/certificates:ro",
            "supernode-certificates:/app/certificates",
        ),
    )
    .unwrap();
    let (_, ids, _) = check(&env, &["deploy"]);
    assert_eq!(ids, vec!["certs-mount-writable"]);
}

#[test]
fn rule_san_must_cover_the_dialed_name() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    write_compose(&dir, "process", "flower.example.org:9092", "");
    let (code, ids, report) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert_eq!(ids, vec!["name-not-covered"]);
    let fix = report["findings"][0]["fix"].as_str().unwrap();
    assert!(fix.contains("--name flower.example.org"), "{fix}");
}

#[test]
fn rule_tls_on_both_sides() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    write_compose(&dir, "process", "superlink:9092", "--insecure");
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!(code, 1);
    assert_eq!(ids, vec!["tls-mismatch"]);
}

#[test]
fn rule_flag_file_must_be_mounted_and_present() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        compose.replace("- certificates/server.pem", "- /elsewhere/server.pem"),
    )
    .unwrap();
    assert!(
        check(&env, &["deploy"])
            .1
            .contains(&"flag-file-unmounted".to_string())
    );
    std::fs::write(
        dir.join("compose.yaml"),
        compose.replace("- certificates/server.pem", "- certificates/absent.pem"),
    )
    .unwrap();
    assert!(
        check(&env, &["deploy"])
            .1
            .contains(&"flag-file-missing".to_string())
    );
}

#[test]
fn rule_selinux_labels_when_enforcing() {
    let env = TestEnv::new();
    deployment(&env, "process");
    let out = env
        .flowerbed(["check", "deploy", "--selinux", "enforcing", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] == "selinux-label")
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rule_rootless_shift_changes_who_reads() {
    // With rootless Docker, container UID 49999 is host UID start + 49998.
    let env = TestEnv::new();
    deployment(&env, "process");
    let (code, ids, report) = check(&env, &["deploy", "--id-shift", "100000"]);
    assert_eq!(code, 1);
    assert!(ids.contains(&"not-readable".to_string()), "{ids:?}");
    assert!(report.to_string().contains("UID 149998 cannot read"), "{report}");
    // userns-remap counts from the range start: container 49999 is host start + 49999.
    let (code, _, report) = check(&env, &["deploy", "--id-shift", "100000", "--remap"]);
    assert_eq!(code, 1);
    assert!(report.to_string().contains("UID 149999 cannot read"), "{report}");
}

#[test]
fn sarif_output_names_rules_and_results() {
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    chown_tree(&dir.join("superlink-certificates"), 0, 0);
    let out = env
        .flowerbed(["check", "deploy", "--format", "sarif", "--selinux", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["name"], "flowerbed");
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "not-readable");
    assert_eq!(sarif["runs"][0]["results"][0]["level"], "error");
}

#[test]
fn check_bad_inputs() {
    let env = TestEnv::new();
    std::fs::write(env.join("broken.yaml"), "services: [").unwrap();
    std::fs::write(env.join("empty.yaml"), "name: x\n").unwrap();
    std::fs::write(env.join("no-docker.sh"), "echo hi\n").unwrap();
    std::fs::write(env.join("file"), "x").unwrap();
    std::fs::create_dir(env.join("empty-dir")).unwrap();
    for (args, culprit) in [
        (vec!["check", "--compose", "broken.yaml"], "broken.yaml"),
        (vec!["check", "--compose", "empty.yaml"], "no services"),
        (vec!["check", "--compose", "missing.yaml"], "missing.yaml"),
        (vec!["check", "--run-script", "no-docker.sh"], "no `docker run`"),
        (vec!["check", "file"], "file: not a directory"),
        (vec!["check", "empty-dir"], "no deployment found"),
        (
            vec!["check", "--compose", "broken.yaml", "--id-shift", "x"],
            "broken.yaml",
        ),
    ] {
        let before = env.snapshot();
        let out = env.flowerbed(&args).output().unwrap();
        assert_bad_input(&out, culprit);
        assert_eq!(env.snapshot(), before);
    }
    env.flowerbed(["check", "--compose", "x.yaml", "--run-script", "y.sh"])
        .assert()
        .code(2);
    std::fs::write(env.join("ok.yaml"), "services:\n  a:\n    image: nginx\n").unwrap();
    let out = env
        .flowerbed(["check", "--compose", "ok.yaml", "--id-shift", "0"])
        .output()
        .unwrap();
    assert_bad_input(&out, "--id-shift");
}

#[test]
fn live_and_doctor_without_a_daemon() {
    let env = TestEnv::new();
    let out = env
        .flowerbed(["check", "--live"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_bad_input(&out, "DOCKER_HOST");
    let out = env
        .flowerbed(["doctor", "--json"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an unreachable daemon is a problem doctor reports"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["docker_host"], "unix:///nonexistent/docker.sock");
    assert!(report["daemon"].is_null());
    assert!(
        report["daemon_error"]
            .as_str()
            .unwrap()
            .contains("cannot reach the Docker daemon")
    );
}

#[test]
fn a_non_root_caller_is_told_tls_was_not_verified() {
    // After `own`, the key is 49999's and 0600: right for the container, unreadable to us.
    let env = TestEnv::new();
    let dir = deployment(&env, "process");
    for rel in ["", "ca"] {
        set_mode(&dir.join(rel), 0o755);
    }
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["check", "deploy", "--selinux", "off", "--json"])
        .current_dir(env.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report}");
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tls-not-verified"]);
}

#[test]
fn rule_auth_keys_private_and_only_where_used() {
    let env = TestEnv::new();
    set_mode(env.path(), 0o755);
    env.flowerbed(["quickstart", "deploy", "--supernode-auth", "-q"])
        .assert()
        .success();
    let dir = env.join("deploy");
    let (code, ids, _) = check(&env, &["deploy"]);
    assert_eq!(
        (code, ids),
        (0, Vec::<String>::new()),
        "quickstart's layout is clean"
    );

    // Group/others may read a supernode's key: the existing private-key rule says so.
    let key = dir.join("supernode-auth/supernode-1/auth.key");
    set_mode(&key, 0o640);
    let (_, ids, report) = check(&env, &["deploy"]);
    assert_eq!(ids, vec!["key-too-open"], "{report}");
    assert_eq!(report["findings"][0]["service"], "supernode-1");
    set_mode(&key, 0o600);

    // Keys mounted where no flag uses them: the whole key folder into one supernode (so it
    // holds supernode-2's key too), and supernode-1's folder into the superlink.
    let d = dir.display();
    std::fs::write(
        dir.join("wrong.yaml"),
        format!(
            r"services:
  superlink:
    image: flwr/superlink:1.42.0
    command: [--ssl-ca-certfile, certificates/ca.crt, --ssl-certfile, certificates/server.pem,
              --ssl-keyfile, certificates/server.key, --enable-supernode-auth]
    volumes:
      - {d}/superlink-certificates:/app/certificates:ro
      - {d}/supernode-auth/supernode-1:/app/auth:ro
  supernode-1:
    image: flwr/supernode:1.42.0
    command: [--superlink, superlink:8000, --root-certificates, certificates/ca.crt,
              --auth-supernode-private-key, keys/supernode-1/auth.key]
    volumes:
      - {d}/supernode-certificates:/app/certificates:ro
      - {d}/supernode-auth:/app/keys:ro
"
        ),
    )
    .unwrap();
    let (code, _, report) = check(&env, &["--compose", "deploy/wrong.yaml"]);
    assert_eq!(code, 1, "{report}");
    let misplaced: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "auth-key-mounted")
        .map(|f| {
            (
                f["service"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        misplaced,
        vec![
            (
                "superlink".to_string(),
                format!("{d}/supernode-auth/supernode-1/auth.key")
            ),
            (
                "supernode-1".to_string(),
                format!("{d}/supernode-auth/supernode-2/auth.key")
            ),
        ],
        "{report}"
    );
}
