//! Issue 21's runner links in `check`: a ClientApp runner's link to its supernode left
//! plain in a TLS deployment (warning), the two ends disagreeing (error), and TLS asked
//! where the release has none (an error naming the release). Each situation is built from
//! flowerbed's own rendered compose.yaml, then the suggested fix is applied and checked.

use crate::check::check;
use crate::testenv::TestEnv;

fn quickstart(env: &TestEnv, version: &str) -> std::path::PathBuf {
    env.flowerbed([
        "quickstart",
        "deploy",
        "-q",
        "--isolation",
        "process",
        "--flower-version",
        version,
    ])
    .assert()
    .success();
    env.join("deploy/compose.yaml")
}

fn findings<'a>(report: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// The supernodes' Runtime API server flags, as the compose file spells them.
const RUNTIME_SERVER_FLAGS: [&str; 3] = [
    "    - --ssl-ca-certfile\n    - runtime-certificates/ca.crt\n",
    "    - --ssl-certfile\n    - runtime-certificates/server.pem\n",
    "    - --ssl-keyfile\n    - runtime-certificates/server.key\n",
];
const RUNNER_TLS: &str =
    "    - --root-certificates\n    - certificates/ca.crt\n    - --runtime-api-address\n    - supernode-";
const RUNNER_PLAIN: &str = "    - --insecure\n    - --runtime-api-address\n    - supernode-";

#[test]
fn a_plain_runtime_link_on_1_42_is_a_warning_and_half_plain_an_error_until_fixed() {
    let env = TestEnv::new();
    let compose = quickstart(&env, "1.42.0");
    let path = compose.to_str().unwrap();
    let rendered = std::fs::read_to_string(&compose).unwrap();
    assert_eq!(rendered.matches(RUNNER_TLS).count(), 2, "{rendered}");
    let (code, ids, _) = check(&env, &["--compose", path]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));

    // Both ends plain: the release could encrypt it, so a warning per runner.
    let mut plain = rendered.replace(RUNNER_TLS, RUNNER_PLAIN);
    for flags in RUNTIME_SERVER_FLAGS {
        plain = plain.replace(flags, "");
    }
    std::fs::write(&compose, &plain).unwrap();
    let (_, _, report) = check(&env, &["--compose", path]);
    let left_plain = findings(&report, "link-left-plain");
    assert_eq!(left_plain.len(), 2, "{report:#}");
    assert_eq!(left_plain[0]["severity"], "warning");
    assert!(
        left_plain[0]["message"]
            .as_str()
            .unwrap()
            .contains("Flower 1.42.0 can encrypt this link"),
        "{report:#}"
    );
    assert!(findings(&report, "tls-mismatch").is_empty(), "{report:#}");

    // Half of the fix (the runners trust the CA, the supernodes still serve plain text):
    // the runners would retry forever.
    std::fs::write(&compose, plain.replace(RUNNER_PLAIN, RUNNER_TLS)).unwrap();
    let (code, _, report) = check(&env, &["--compose", path]);
    assert_eq!(code, 1);
    let mismatch = findings(&report, "tls-mismatch");
    assert_eq!(mismatch.len(), 2, "{report:#}");
    let fix = mismatch[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("--ssl-certfile") && fix.contains("supernode-"),
        "{fix}"
    );

    // The whole fix (the flags the fix names, as quickstart renders them): clean again.
    std::fs::write(&compose, &rendered).unwrap();
    let (code, ids, _) = check(&env, &["--compose", path]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
}

#[test]
fn tls_on_the_runtime_link_of_1_21_is_an_error_naming_the_release_until_fixed() {
    let env = TestEnv::new();
    let compose = quickstart(&env, "1.21.0");
    let path = compose.to_str().unwrap();
    let rendered = std::fs::read_to_string(&compose).unwrap();
    let plain = "    - --insecure\n    - --plugin-type\n    - clientapp\n";
    assert_eq!(rendered.matches(plain).count(), 2, "{rendered}");
    let (code, ids, _) = check(&env, &["--compose", path]);
    assert_eq!((code, ids), (0, Vec::<String>::new()), "plain is all 1.21 can do");

    let asked =
        "    - --root-certificates\n    - certificates/ca.crt\n    - --plugin-type\n    - clientapp\n";
    std::fs::write(&compose, rendered.replacen(plain, asked, 1)).unwrap();
    let (code, _, report) = check(&env, &["--compose", path]);
    assert_eq!(code, 1);
    let unsupported = findings(&report, "tls-unsupported");
    assert_eq!(unsupported.len(), 1, "{report:#}");
    assert_eq!(unsupported[0]["severity"], "error");
    let message = unsupported[0]["message"].as_str().unwrap();
    assert!(message.contains("Flower 1.21.0"), "{message}");
    assert_eq!(
        unsupported[0]["fix"].as_str().unwrap(),
        "add --insecure (and drop --root-certificates)"
    );

    // The fix: --insecure back in place of --root-certificates.
    std::fs::write(&compose, &rendered).unwrap();
    let (code, ids, _) = check(&env, &["--compose", path]);
    assert_eq!((code, ids), (0, Vec::<String>::new()));
}
