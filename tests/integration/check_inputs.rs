//! `check` on real-world inputs: flowerbed's own renders for every release and isolation,
//! and files in the shapes Flower publishes (compose plus TLS overlay, `docker run`
//! snippets), each read with Docker Compose v2 on PATH and with it hidden.

use std::path::{Path, PathBuf};

use crate::testenv::{APP, TestEnv, chown_tree, set_mode};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/check");

/// Copy fixture folder `name` (dot files too) into the env's folder.
fn fixture(env: &TestEnv, name: &str) -> PathBuf {
    let from = Path::new(FIXTURES).join(name);
    for entry in walkdir::WalkDir::new(&from) {
        let entry = entry.unwrap();
        let to = env.path().join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    set_mode(env.path(), 0o755);
    env.path().to_path_buf()
}

/// Whether Docker Compose v2 is on PATH, or hidden from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compose {
    Present,
    Hidden,
}

/// A PATH holding nothing at all: no docker, no docker-compose.
fn empty_path() -> &'static Path {
    static EMPTY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// `check --json ARGS` with Compose present or hidden; (exit code, finding ids, report).
/// Asserts that the input was read the way `compose` says (the note names the fallback).
fn check_with(env: &TestEnv, compose: Compose, args: &[&str]) -> (i32, Vec<String>, serde_json::Value) {
    let mut all = vec!["check", "--selinux", "off", "--json"];
    all.extend_from_slice(args);
    let mut command = env.flowerbed(all);
    if compose == Compose::Hidden {
        command.env("PATH", empty_path());
    }
    let out = command.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no JSON: {}", String::from_utf8_lossy(&out.stderr)));
    if args.contains(&"--compose") {
        let fallback = report["notes"].as_array().is_some_and(|notes| {
            notes
                .iter()
                .any(|n| n.as_str().unwrap().contains("Compose v2 not found"))
        });
        assert_eq!(fallback, compose == Compose::Hidden, "{compose:?}: {report}");
    }
    let ids = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    (out.status.code().unwrap(), ids, report)
}

const BOTH: [Compose; 2] = [Compose::Present, Compose::Hidden];

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
    for version in flowerbed::deploy::PROFILES.iter().map(|profile| profile.version) {
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

/// Flower-style TLS files: ca.crt, server.pem, server.key (and ca.key) in certificates/,
/// handed to UID 49999 as `own` would.
fn flower_certificates(env: &TestEnv) {
    env.flowerbed(["certs", "generate", "certificates", "--flat"])
        .assert()
        .success();
    chown_tree(&env.join("certificates"), APP, APP);
}

#[test]
fn flower_style_compose_with_tls_overlay_has_no_false_tls_mismatch() {
    let env = TestEnv::new();
    fixture(&env, "flower-compose");
    flower_certificates(&env);
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yml"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
        let (code, ids, report) = check_with(
            &env,
            compose,
            &["--compose", "compose.yml", "--compose", "with-tls.yml"],
        );
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
        // The overlay's secrets became mounts, and its command replaced the base's.
        let superlink_secret = env.join("certificates/server.key");
        set_mode(&superlink_secret, 0o640);
        let (code, ids, report) = check_with(
            &env,
            compose,
            &["--compose", "compose.yml", "--compose", "with-tls.yml"],
        );
        assert_eq!(
            (code, ids),
            (0, vec!["key-too-open".to_string()]),
            "{compose:?}: {report}"
        );
        set_mode(&superlink_secret, 0o600);
    }
}

#[test]
fn an_unknown_release_makes_a_tls_difference_a_warning() {
    let env = TestEnv::new();
    fixture(&env, "flower-compose");
    flower_certificates(&env);
    let mut command = env.flowerbed([
        "check",
        "--selinux",
        "off",
        "--json",
        "--compose",
        "compose.yml",
        "--compose",
        "with-tls.yml",
    ]);
    let out = command.env("FLWR_VERSION", "nightly").output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    let findings: Vec<(&str, &str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["service"].as_str().unwrap(),
                f["id"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [("superexec-serverapp", "tls-mismatch", "warning")],
        "{report}"
    );
}

#[test]
fn dotenv_interpolates_tags_and_sources() {
    let env = TestEnv::new();
    let dir = fixture(&env, "dotenv");
    std::fs::create_dir(dir.join("state-from-dotenv")).unwrap();
    chown_tree(&dir.join("state-from-dotenv"), APP, APP);
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
    }
    // Without .env the default applies, and that folder does not exist.
    std::fs::remove_file(dir.join(".env")).unwrap();
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!(code, 1, "{report}");
        assert!(
            ids.contains(&"mount-source-missing".to_string()),
            "{compose:?}: {report}"
        );
        assert!(
            report["findings"][0]["path"]
                .as_str()
                .unwrap()
                .ends_with("state-without-dotenv"),
            "{report}"
        );
    }
}

#[test]
fn extends_brings_the_mounts_of_the_base_service() {
    let env = TestEnv::new();
    let dir = fixture(&env, "extends");
    env.flowerbed(["certs", "generate", "certificates", "--flat"])
        .assert()
        .success();
    std::fs::remove_file(dir.join("certificates/ca.key")).unwrap();
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
        assert_eq!(report["services"], serde_json::json!(["supernode-1"]));
    }
    // The base's mount really is what the rules read: take its source away.
    std::fs::rename(dir.join("certificates"), dir.join("moved")).unwrap();
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!(
            (code, ids),
            (1, vec!["mount-source-missing".to_string()]),
            "{compose:?}: {report}"
        );
    }
}

#[test]
fn include_resolves_paths_against_the_included_file() {
    let env = TestEnv::new();
    let dir = fixture(&env, "include");
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(ids, ["mount-source-missing"], "{compose:?}: {report}");
        assert_eq!(
            report["findings"][0]["path"].as_str().map(PathBuf::from),
            Some(dir.join("superlink/state")),
            "{report}"
        );
        assert_eq!(
            report["services"],
            serde_json::json!(["superlink", "supernode-1"])
        );
    }
    // The fix as printed (mkdir, then own) makes the check clean.
    let fix = {
        let (_, _, report) = check_with(&env, Compose::Hidden, &["--compose", "compose.yaml"]);
        report["findings"][0]["fix"].as_str().unwrap().to_string()
    };
    let (mkdir, own) = fix.split_once(" && ").unwrap();
    let mkdir = shlex::split(mkdir).unwrap();
    std::process::Command::new(&mkdir[0])
        .args(&mkdir[1..])
        .current_dir(env.path())
        .status()
        .unwrap();
    let own = shlex::split(own.strip_prefix("sudo ").unwrap()).unwrap();
    env.flowerbed(&own[1..]).assert().success();
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--compose", "compose.yaml"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
    }
}

#[test]
fn check_dir_finds_every_compose_file_name() {
    for name in ["compose.yml", "docker-compose.yaml", "docker-compose.yml"] {
        let env = TestEnv::new();
        let dir = fixture(&env, "include");
        std::fs::rename(dir.join("compose.yaml"), dir.join(name)).unwrap();
        let (code, ids, report) = check_json(&env, &["."]);
        assert_eq!(
            (code, ids),
            (1, vec!["mount-source-missing".to_string()]),
            "{name}: {report}"
        );
    }
}

/// A `docker` on PATH that reports an old client (and nothing else).
fn old_docker_client(env: &TestEnv) -> PathBuf {
    let bin = env.join("old-docker-bin");
    std::fs::create_dir(&bin).unwrap();
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Docker version 20.10.24, build 297e128' && exit 0\nexit 1\n",
    )
    .unwrap();
    set_mode(&docker, 0o755);
    bin
}

/// The seed's `docker run` steps, set up in `env`: certificates and a state folder as a
/// fresh `certs generate` leaves them (root-owned, key 0600).
fn docker_run_site(env: &TestEnv) -> PathBuf {
    let dir = fixture(env, "docker-run");
    env.flowerbed(["certs", "generate", "."]).assert().success();
    std::fs::create_dir(dir.join("state")).unwrap();
    dir
}

#[test]
fn docker_run_snippets_expand_pwd_and_resolve_root() {
    let env = TestEnv::new();
    let dir = docker_run_site(&env);
    for compose in BOTH {
        let (code, _, report) = check_with(&env, compose, &["--run-script", "run.sh"]);
        assert_eq!(code, 1, "{report}");
        let found: Vec<(&str, &str, &str)> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["service"].as_str().unwrap(),
                    f["id"].as_str().unwrap(),
                    f["path"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        let key = dir.join("superlink-certificates/server.key");
        let state = dir.join("state");
        // The real failures: the key and the "$(pwd)" state folder, not "unmounted" flags;
        // the supernode runs as root (-u root), which reads anything.
        assert_eq!(
            found,
            [
                ("superlink", "not-readable", key.to_str().unwrap()),
                ("superlink", "state-not-writable", state.to_str().unwrap()),
            ],
            "{compose:?}: {report}"
        );
    }
    // Apply both fixes as printed, then check again.
    let (_, _, report) = check_json(&env, &["--run-script", "run.sh"]);
    for finding in report["findings"].as_array().unwrap() {
        let fix = finding["fix"].as_str().unwrap();
        let words = shlex::split(fix.strip_prefix("sudo ").unwrap()).unwrap();
        env.flowerbed(&words[1..]).assert().success();
    }
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--run-script", "run.sh"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
    }
}

#[test]
fn workdir_is_where_pwd_and_relative_sources_point() {
    let env = TestEnv::new();
    docker_run_site(&env);
    let elsewhere = env.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (code, ids, report) = check_json(
        &env,
        &["--run-script", "run.sh", "--workdir", elsewhere.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{report}");
    // Nothing the script mounts exists under the other folder.
    assert_eq!(
        ids,
        [
            "mount-source-missing",
            "mount-source-missing",
            "mount-source-missing"
        ],
        "{report}"
    );
    let first = report["findings"][0]["path"].as_str().unwrap();
    assert!(first.starts_with(elsewhere.to_str().unwrap()), "{first}");
    let out = env
        .flowerbed(["check", "--run-script", "run.sh", "--workdir", "missing-dir"])
        .output()
        .unwrap();
    crate::testenv::assert_bad_input(&out, "--workdir missing-dir");
}

#[test]
fn relative_sources_are_refused_only_by_an_old_docker_client() {
    let env = TestEnv::new();
    let dir = docker_run_site(&env);
    chown_tree(&dir.join("superlink-certificates"), APP, APP);
    chown_tree(&dir.join("state"), APP, APP);
    let old = old_docker_client(&env);
    let with_old_client = |env: &TestEnv| {
        let out = env
            .flowerbed(["check", "--selinux", "off", "--json", "--run-script", "run.sh"])
            .env("PATH", &old)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code().unwrap(), report)
    };
    // Docker 23+ (the one here) and no Docker at all: relative sources are fine.
    for compose in BOTH {
        let (code, ids, report) = check_with(&env, compose, &["--run-script", "run.sh"]);
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{compose:?}: {report}");
    }
    let (code, report) = with_old_client(&env);
    assert_eq!(code, 1, "{report}");
    let finding = &report["findings"][0];
    assert_eq!(finding["id"], "mount-source-relative", "{report}");
    assert_eq!(report["findings"].as_array().unwrap().len(), 1, "{report}");
    let fix = finding["fix"].as_str().unwrap();
    let value = format!("{}/superlink-certificates:/app/certificates/:ro", dir.display());
    let absolute = format!("-v {}", shlex::try_quote(&value).unwrap());
    assert_eq!(fix, absolute, "the fix keeps :ro");
    // Apply it to the script and check again: clean, and the mount is still read-only
    // (a writable certificate mount would be a finding of its own).
    let script = std::fs::read_to_string(dir.join("run.sh")).unwrap();
    let fixed = script.replace("-v ./superlink-certificates/:/app/certificates/:ro", fix);
    assert_ne!(fixed, script);
    std::fs::write(dir.join("run.sh"), fixed).unwrap();
    let (code, report) = with_old_client(&env);
    assert_eq!(
        (code, report["findings"].as_array().unwrap().len()),
        (0, 0),
        "{report}"
    );
}

#[test]
fn user_names_resolve_or_warn() {
    let env = TestEnv::new();
    let dir = env.path();
    set_mode(dir, 0o755);
    std::fs::create_dir(dir.join("state")).unwrap();
    let compose = |user: &str| {
        std::fs::write(
            dir.join("compose.yaml"),
            format!(
                "services:\n  superlink:\n    image: flwr/superlink:1.42.0\n    user: {user}\n    command: [--insecure, --database, state/state.db]\n    volumes: [./state:/app/state]\n"
            ),
        )
        .unwrap();
    };
    for (user, expected, uid) in [
        ("root", vec![], None),
        ("\"0\"", vec![], None),
        ("\"0:0\"", vec![], None),
        ("app", vec!["state-not-writable"], Some(APP)),
        ("\"49999:49999\"", vec!["state-not-writable"], Some(APP)),
        ("\"1000:1000\"", vec!["state-not-writable"], Some(1000)),
        ("bob", vec!["user-unresolved", "state-not-writable"], Some(APP)),
    ] {
        compose(user);
        for mode in BOTH {
            let (_, ids, report) = check_with(&env, mode, &["--compose", "compose.yaml"]);
            let mut ids = ids;
            ids.sort_by_key(|id| id != "user-unresolved");
            assert_eq!(ids, expected, "user {user} ({mode:?}): {report}");
            if let Some(uid) = uid {
                let message = report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["id"] == "state-not-writable")
                    .unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(message.starts_with(&format!("UID {uid} ")), "{message}");
            }
            if user == "bob" {
                let warning = report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["id"] == "user-unresolved")
                    .unwrap();
                assert_eq!(warning["severity"], "warning");
                let text = warning["message"].as_str().unwrap();
                assert!(
                    text.contains("\"bob\"") && text.contains("assumed UID 49999"),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn an_unreadable_ca_is_an_error_naming_the_file() {
    let env = TestEnv::new();
    let dir = fixture(&env, "extends");
    env.flowerbed(["certs", "generate", "certificates", "--flat"])
        .assert()
        .success();
    let ca = dir.join("certificates/ca.crt");
    let good = std::fs::read(&ca).unwrap();
    let private_key = std::fs::read(dir.join("certificates/ca.key")).unwrap();
    std::fs::remove_file(dir.join("certificates/ca.key")).unwrap();
    for (what, bytes, reason) in [
        ("garbage", b"not a certificate at all".to_vec(), "neither PEM nor"),
        ("empty", Vec::new(), "empty file"),
        ("a private key", private_key, "holds no certificate"),
        ("too large", vec![b'A'; 2 << 20], "over the 1.0 MiB limit"),
    ] {
        std::fs::write(&ca, &bytes).unwrap();
        let (code, ids, report) = check_json(&env, &["--compose", "compose.yaml"]);
        assert_eq!(
            (code, ids),
            (1, vec!["ca-unreadable".to_string()]),
            "{what}: {report}"
        );
        let finding = &report["findings"][0];
        assert_eq!(
            finding["path"].as_str().map(PathBuf::from),
            Some(ca.clone()),
            "{what}"
        );
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains("--root-certificates") && message.contains(reason),
            "{what}: {message}"
        );
    }
    // The fix: the real CA certificate back in place.
    std::fs::write(&ca, good).unwrap();
    let (code, ids, report) = check_json(&env, &["--compose", "compose.yaml"]);
    assert_eq!((code, ids), (0, Vec::<String>::new()), "{report}");
}

#[test]
fn readme_lists_exactly_the_rule_table() {
    let out = crate::testenv::flowerbed()
        .args(["check", "--list-rules", "--format", "markdown"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split_once("<!-- rules:start -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- rules:end -->"))
        .map(|(section, _)| section)
        .expect("README has the rule list markers");
    assert_eq!(
        section, listed,
        "regenerate with: flowerbed check --list-rules --format markdown"
    );
    // SARIF's rules are the same table.
    let env = TestEnv::new();
    fixture(&env, "include");
    let out = env
        .flowerbed([
            "check",
            "--selinux",
            "off",
            "--format",
            "sarif",
            "--compose",
            "compose.yaml",
        ])
        .output()
        .unwrap();
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<String> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| format!("`{}`", rule["id"].as_str().unwrap()))
        .collect();
    let listed_ids: Vec<String> = listed
        .lines()
        .map(|line| line.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(ids, listed_ids);
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "mount-source-missing");
}
