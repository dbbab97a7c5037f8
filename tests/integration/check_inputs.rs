//! `check` on real-world inputs: flowerbed's own renders for every release and isolation,
//! and files in the shapes Flower publishes (compose plus TLS overlay, `docker run`
//! snippets), each read with Docker Compose v2 on PATH and with it hidden.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::testenv::TestEnv;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `check --json ARGS` in `env`; (exit code, finding ids, report).
fn check_json(env: &TestEnv, args: &[&str]) -> (i32, Vec<String>, serde_json::Value) {
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
fn process_mode_app_runners_of_releases_without_app_tls_are_clean() {
    // 1.13's flwr-serverapp/flwr-clientapp and 1.21's superexec refuse TLS: --insecure on
    // them is right even though the superlink serves TLS on the Fleet API.
    for version in ["1.13.1", "1.21.0", "1.35.0", "1.42.0"] {
        let env = TestEnv::new();
        set_mode(env.path(), 0o755);
        env.flowerbed([
            "quickstart",
            "deploy",
            "--flower-version",
            version,
            "--isolation",
            "process",
            "-q",
        ])
        .assert()
        .success();
        let (code, ids, report) = check_json(&env, &["deploy"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{version}: {report}");
    }
}
