//! The supernode's side of a bundle: `quickstart --from-bundle`, its plain `sh` run, and
//! `check` there flagging an address the certificate lacks; the across-hosts help.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use crate::deploy::{compose_config_ok, docker_compose};
use crate::testenv::{TestEnv, assert_bad_input, yaml};

use super::{PUBLIC, bundle, check, command_flag, run_fix, service_names, superlink, superlink_isolated};

/// A `docker` that records each call's argv, one NUL-separated word at a time.
fn docker_stub(env: &TestEnv) -> (PathBuf, PathBuf) {
    let bin = env.join("stub-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.join("docker-calls");
    let stub = bin.join("docker");
    std::fs::write(
        &stub,
        "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\0' \"$arg\" >> \"$DOCKER_STUB_LOG\"; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (bin, log)
}

fn run_with_stub(script: &Path, env: &TestEnv) -> Vec<String> {
    let (bin, log) = docker_stub(env);
    let _ = std::fs::remove_file(&log);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Process::new("sh")
        .arg(script)
        .env("PATH", path)
        .env("DOCKER_STUB_LOG", &log)
        .current_dir(env.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&log).unwrap();
    bytes
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8(w.to_vec()).unwrap())
        .collect()
}

#[test]
fn from_bundle_round_trip_and_plain_sh_run() {
    let env = TestEnv::new();
    // Subprocess isolation: the supernodes need nothing made on their host, so the bundle
    // runs with Docker alone too.
    superlink_isolated(&env, "subprocess");
    let site = bundle(&env, &[]);
    let readme = bundle_readme(&site);
    assert!(readme.contains("Or with Docker alone"), "{readme}");

    // Plain Docker, no flowerbed: unpacked anywhere, run.sh mounts from its own folder.
    let plain = env.join("plain 'dir' $x");
    std::fs::create_dir(&plain).unwrap();
    let status = Process::new("tar")
        .arg("-xzf")
        .arg(&site)
        .arg("-C")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    let words = run_with_stub(&plain.join("flowerbed-supernode/run.sh"), &env);
    let volume = format!(
        "{}/flowerbed-supernode/supernode-certificates:/app/certificates:ro",
        plain.display()
    );
    assert!(words.contains(&volume), "{words:?}");
    assert!(words.contains(&format!("{PUBLIC}:8000")));
    // And the unpacked folder checks clean as it is.
    let relative = plain
        .join("flowerbed-supernode")
        .strip_prefix(env.path())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (code, ids, _) = check(&env, &relative);
    assert_eq!((code, ids), (0, Vec::<String>::new()));

    // With flowerbed: DIR defaults to the bundle's folder name.
    let out = env
        .flowerbed(["quickstart", "--from-bundle", "site.tar.gz"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = env.join("flowerbed-supernode");
    for file in [
        "supernode-certificates/ca.crt",
        "superlink-certificate.json",
        "compose.yaml",
        "run.sh",
        "stop.sh",
        "README.md",
        "flowerbed.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(!dir.join("flwr-config.toml").exists());
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::metadata(dir.join("run.sh")).unwrap().mode() & 0o7777,
        0o755
    );
    // Rendered for this folder: absolute mount sources, the public address dialed.
    let compose = yaml(&std::fs::read_to_string(dir.join("compose.yaml")).unwrap());
    assert_eq!(
        compose["services"]["supernode-1"]["volumes"][0]["source"].as_str(),
        dir.join("supernode-certificates").to_str()
    );
    assert_eq!(
        command_flag(&compose["services"]["supernode-2"], "--superlink").as_deref(),
        Some("flower.example.org:8000")
    );
    let words = run_with_stub(&dir.join("run.sh"), &env);
    assert!(words.contains(&format!(
        "{}:/app/certificates:ro",
        dir.join("supernode-certificates").display()
    )));
    let (code, ids, _) = check(&env, "flowerbed-supernode");
    assert_eq!((code, ids), (0, Vec::<String>::new()));
    if let Some(binary) = docker_compose() {
        compose_config_ok(&binary, &dir.join("compose.yaml"));
    }
    // `own` works on the unpacked folder (and `release` hands it back).
    env.flowerbed(["own", "flowerbed-supernode"]).assert().success();
    assert_eq!(std::fs::metadata(dir.join("run.sh")).unwrap().uid(), 49_999);
    env.flowerbed(["release", "flowerbed-supernode"])
        .assert()
        .success();

    // Flags override the bundle's settings; a non-empty target is refused, unchanged.
    env.flowerbed([
        "quickstart",
        "--from-bundle",
        "site.tar.gz",
        "two",
        "--supernodes",
        "1",
        "--image-repo",
        "flowerbed-local",
    ])
    .assert()
    .success();
    let compose = yaml(&std::fs::read_to_string(env.join("two/compose.yaml")).unwrap());
    assert_eq!(service_names(&compose), ["supernode-1"]);
    assert!(
        compose["services"]["supernode-1"]["image"]
            .as_str()
            .unwrap()
            .starts_with("flowerbed-local/supernode:")
    );
    let before = env.snapshot();
    let out = env
        .flowerbed(["quickstart", "--from-bundle", "site.tar.gz", "two"])
        .output()
        .unwrap();
    assert_bad_input(&out, "not empty");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn check_on_the_supernode_side_flags_an_address_the_certificate_lacks() {
    let env = TestEnv::new();
    superlink(&env);
    // The operator is told to dial an address the superlink's certificate does not cover.
    let out = env
        .flowerbed([
            "bundle",
            "supernode",
            "link",
            "--out",
            "wrong.tar.gz",
            "--superlink-address",
            "198.51.100.9",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not cover 198.51.100.9"));
    env.flowerbed(["quickstart", "--from-bundle", "wrong.tar.gz", "wrong"])
        .assert()
        .success();
    let (code, ids, report) = check(&env, "wrong");
    assert_eq!(code, 1);
    assert_eq!(ids, ["superlink-address-not-covered"]);
    assert!(
        report["findings"][0]["message"]
            .as_str()
            .unwrap()
            .contains(PUBLIC)
    );
    // Dialing a covered name instead makes it clean.
    env.flowerbed(["quickstart", "wrong", "--superlink-address", PUBLIC, "--force"])
        .assert()
        .success();
    let (code, ids, _) = check(&env, "wrong");
    assert_eq!((code, ids), (0, Vec::<String>::new()));
    // A CA that did not issue the superlink's certificate is a finding too.
    env.flowerbed(["certs", "generate", "other"]).assert().success();
    std::fs::copy(
        env.join("other/supernode-certificates/ca.crt"),
        env.join("wrong/supernode-certificates/ca.crt"),
    )
    .unwrap();
    let (code, ids, _) = check(&env, "wrong");
    assert_eq!((code, ids), (1, vec!["ca-mismatch".to_string()]));
}

#[test]
fn help_shows_the_across_hosts_examples() {
    for command in ["bundle supernode", "quickstart"] {
        let mut cmd = crate::testenv::flowerbed();
        cmd.args(command.split(' ')).arg("--help");
        let text = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        assert!(text.contains("--from-bundle"), "{command}: {text}");
        assert!(text.contains("--superlink-address"), "{command}: {text}");
    }
}

fn bundle_readme(site: &Path) -> String {
    let out = Process::new("tar")
        .arg("-xzOf")
        .arg(site)
        .arg("flowerbed-supernode/README.md")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The one finding of `check` on `dir`: its id and fix.
fn only_finding(env: &TestEnv, dir: &str) -> (String, String) {
    let (code, ids, report) = check(env, dir);
    assert_eq!((code, ids.len()), (1, 1), "{report}");
    let finding = &report["findings"][0];
    (
        finding["id"].as_str().unwrap().to_string(),
        finding["fix"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_process_bundle_gets_runner_material_made_on_this_host_and_check_fixes_it() {
    let env = TestEnv::new();
    let link = superlink(&env);
    let site = bundle(&env, &[]);
    env.flowerbed(["quickstart", "--from-bundle"])
        .arg(&site)
        .arg("node")
        .assert()
        .success();
    let dir = env.join("node");
    let read = |path: &str| std::fs::read(dir.join(path)).unwrap();
    // The bundle's README says Docker alone cannot start it.
    assert!(bundle_readme(&site).contains("`run.sh` alone cannot"));
    // This host's own Runtime CA: its key stays private and unmounted; the runners trust
    // its certificate, which is not the superlink's CA.
    let ca_key = std::fs::metadata(dir.join("runtime-ca/ca.key")).unwrap();
    assert_eq!(ca_key.mode() & 0o777, 0o600);
    assert_eq!(read("runner-certificates/ca.crt"), read("runtime-ca/ca.crt"));
    assert_ne!(read("runtime-ca/ca.crt"), read("supernode-certificates/ca.crt"));
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    assert!(
        !compose.contains("runtime-ca"),
        "the Runtime CA's folder is mounted"
    );
    assert!(!compose.contains("--insecure"), "{compose}");
    for n in 1..=2 {
        let runtime = dir.join(format!("supernode-runtime-certificates/supernode-{n}"));
        let verify = Process::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-verify_hostname"])
            .arg(format!("supernode-{n}"))
            .arg("-CAfile")
            .arg(dir.join("runner-certificates/ca.crt"))
            .arg(runtime.join("server.pem"))
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stdout)
        );
        // Each link's secret is made here: 64 hex digits, none shared with the superlink's host.
        let secret = read(&format!("superexec-auth/supernode-{n}/secret"));
        assert_eq!(secret.len(), 64);
        assert_ne!(
            secret,
            std::fs::read(link.join("superexec-auth/superlink/secret")).unwrap()
        );
    }
    let (code, ids, report) = check(&env, "node");
    assert_eq!((code, ids), (0, Vec::<String>::new()), "{report}");

    // The runners trusting the wrong CA (the superlink's) is found, and its fix works.
    std::fs::copy(
        dir.join("supernode-certificates/ca.crt"),
        dir.join("runner-certificates/ca.crt"),
    )
    .unwrap();
    let (code, ids, report) = check(&env, "node");
    assert_eq!(code, 1, "{report}");
    assert!(ids.iter().all(|id| id == "chain-issuer"), "{report}");
    let fix = report["findings"][0]["fix"].as_str().unwrap().to_string();
    assert!(fix.contains("&& flowerbed quickstart"), "{fix}");
    run_fix(&env, &fix);
    let (code, ids, report) = check(&env, "node");
    assert_eq!((code, ids), (0, Vec::<String>::new()), "{report}");

    // The Runtime CA lost: quickstart makes a new one and reissues every supernode's
    // certificate from it, so the runners trust what the supernodes serve.
    std::fs::remove_dir_all(dir.join("runtime-ca")).unwrap();
    env.flowerbed(["quickstart", "node"]).assert().success();
    let (code, ids, report) = check(&env, "node");
    assert_eq!((code, ids), (0, Vec::<String>::new()), "{report}");
    assert_eq!(read("runner-certificates/ca.crt"), read("runtime-ca/ca.crt"));

    // A Runtime key that does not match its certificate: reissued by the fix.
    let runtime = |n: u32| dir.join(format!("supernode-runtime-certificates/supernode-{n}/server.key"));
    std::fs::copy(runtime(2), runtime(1)).unwrap();
    let (id, fix) = only_finding(&env, "node");
    assert_eq!(id, "key-mismatch");
    assert!(fix.contains("flowerbed quickstart"), "{fix}");
    run_fix(&env, &fix);
    let (code, ids, report) = check(&env, "node");
    assert_eq!((code, ids), (0, Vec::<String>::new()), "{report}");
    assert_ne!(
        std::fs::read(runtime(1)).unwrap(),
        std::fs::read(runtime(2)).unwrap()
    );
}
