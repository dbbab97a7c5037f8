//! Hardened containers, judged by the tools that read the files: compose-lint (a security
//! linter for Compose files) over every rendered compose file, Compose v2's own reading of
//! the hardening keys, and the flags and refusals that set them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use flowerbed::deploy::{self, Settings};
use flowerbed::render::compose;

use crate::deploy::{docker_compose, matrix};
use crate::orchestrators::tool;
use crate::testenv::TestEnv;

/// compose-lint from PATH; CI installs it, so there its absence fails the test.
fn compose_lint() -> Option<PathBuf> {
    tool("compose-lint", "pip install compose-lint", |_| true)
}

/// compose-lint's findings for `file`: `(rule id, message)`.
fn lint(binary: &Path, file: &Path) -> Vec<(String, String)> {
    let out = Process::new(binary)
        .args(["check", "--format", "json", "--fail-on", "critical"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compose-lint failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            let text = |key: &str| finding[key].as_str().unwrap().to_string();
            (text("rule_id"), text("message"))
        })
        .collect()
}

fn lint_rules(binary: &Path, file: &Path) -> BTreeSet<String> {
    lint(binary, file).into_iter().map(|(rule, _)| rule).collect()
}

/// The one finding hardening cannot remove: images are named by tag, not digest.
const DIGEST_PIN: &str = "CL-0019";
/// "Credential-shaped argument with a literal value": raised for the supernode
/// authentication flags, whose value is the path of the mounted key file (relative to the
/// working directory, which the linter does not take for a path), never the key itself.
const CREDENTIAL_ARGUMENT: &str = "CL-0020";

#[test]
fn compose_lint_finds_only_the_missing_digest_pin_in_every_hardened_file() {
    let Some(binary) = compose_lint() else { return };
    let env = TestEnv::new();
    let mut cases = matrix(&env.join("deploy"));
    for (name, base) in matrix(&env.join("deploy")).into_iter().step_by(8) {
        let mut auth = base;
        auth.supernode_auth = auth.security == flowerbed::deploy::Security::Tls;
        auth.state = true;
        cases.push((format!("{name}-auth-state"), auth));
    }
    for (name, settings) in cases {
        let file = env.join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            compose::render(&deploy::build(&settings).unwrap()).unwrap(),
        )
        .unwrap();
        let mut rules = BTreeSet::new();
        for (rule, message) in lint(&binary, &file) {
            if rule == CREDENTIAL_ARGUMENT {
                assert!(settings.supernode_auth, "{name}: {message}");
                let flag = ["'--auth-supernode-private-key'", "'--auth-superlink-private-key'"]
                    .into_iter()
                    .find(|flag| message.contains(flag));
                assert!(flag.is_some(), "{name}: {message}");
            } else {
                rules.insert(rule);
            }
        }
        assert_eq!(rules, BTreeSet::from([DIGEST_PIN.to_string()]), "{name}");
    }
}

#[test]
fn without_hardening_compose_lint_sees_what_hardening_fixes() {
    let Some(binary) = compose_lint() else { return };
    let env = TestEnv::new();
    let mut settings = Settings::defaults(env.join("deploy"));
    settings.no_harden = true;
    let file = env.join("plain.yaml");
    std::fs::write(
        &file,
        compose::render(&deploy::build(&settings).unwrap()).unwrap(),
    )
    .unwrap();
    let rules = lint_rules(&binary, &file);
    // The linter is a working judge: the same file unhardened has findings beyond the pin.
    assert!(rules.len() > 1 && rules.contains(DIGEST_PIN), "{rules:?}");
}

/// Compose v2's normalized reading of `service` in the compose file `dir/compose.yaml`.
fn compose_service(binary: &Path, dir: &Path, service: &str) -> serde_json::Value {
    let out = Process::new(binary)
        .arg("-f")
        .arg(dir.join("compose.yaml"))
        .args(["config", "--format", "json"])
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    config["services"][service].clone()
}

#[test]
fn compose_reads_the_hardening_and_the_limits_the_flags_set() {
    let Some(binary) = docker_compose() else { return };
    let env = TestEnv::new();
    env.flowerbed([
        "quickstart",
        "deploy",
        "-q",
        "--isolation",
        "process",
        "--memory-limit",
        "512m",
        "--pids-limit",
        "256",
        "--cpus",
        "0.5",
    ])
    .assert()
    .success();
    let dir = env.join("deploy");
    for name in [
        "superlink",
        "superexec-serverapp",
        "supernode-1",
        "superexec-clientapp-2",
    ] {
        let service = compose_service(&binary, &dir, name);
        assert_eq!(service["cap_drop"], serde_json::json!(["ALL"]), "{name}");
        assert_eq!(
            service["security_opt"],
            serde_json::json!(["no-new-privileges:true"]),
            "{name}"
        );
        assert_eq!(service["read_only"], true, "{name}");
        assert_eq!(service["mem_limit"], "536870912", "{name}");
        assert_eq!(service["pids_limit"], 256, "{name}");
        assert_eq!(service["cpus"], 0.5, "{name}");
        let tmpfs: Vec<&str> = service["tmpfs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry.as_str().unwrap())
            .collect();
        for path in ["/app/.flwr", "/app/.cache", "/app/.config", "/tmp", "/var/tmp"] {
            assert!(
                tmpfs.contains(&format!("{path}:uid=49999,gid=49999,mode=0700").as_str()),
                "{name}: {tmpfs:?}"
            );
        }
    }
    // The limits are kept in the folder: a later render without the flags keeps them.
    let saved = std::fs::read_to_string(dir.join("flowerbed.json")).unwrap();
    assert!(
        saved.contains("\"memory-limit\": 536870912") && saved.contains("\"millicpus\": 500"),
        "{saved}"
    );

    // --no-harden sticks until --harden.
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--no-harden",
        "--out",
        "deploy/compose.yaml",
        "--force",
    ])
    .assert()
    .success();
    let plain = compose_service(&binary, &dir, "superlink");
    assert!(
        plain.get("cap_drop").is_none() && plain.get("read_only").is_none(),
        "{plain}"
    );
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--out",
        "deploy/compose.yaml",
        "--force",
    ])
    .assert()
    .success();
    assert!(
        compose_service(&binary, &dir, "superlink")
            .get("read_only")
            .is_none()
    );
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--harden",
        "--out",
        "deploy/compose.yaml",
        "--force",
    ])
    .assert()
    .success();
    assert_eq!(compose_service(&binary, &dir, "superlink")["read_only"], true);
}

#[test]
fn the_run_script_hardens_every_container() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "-q"]).assert().success();
    let script = std::fs::read_to_string(env.join("deploy/run.sh")).unwrap();
    let runs = script.matches("docker run ").count();
    assert_eq!(runs, 3, "{script}");
    for option in [
        "--cap-drop ALL",
        "--security-opt no-new-privileges:true",
        "--read-only",
        "--tmpfs '/app/.flwr:uid=49999,gid=49999,mode=0700'",
        "--memory 4g",
        "--pids-limit 1024",
        "--cpus 2",
    ] {
        assert_eq!(script.matches(option).count(), runs, "{option}");
    }
    // check reads the hardened script back and finds nothing wrong.
    env.flowerbed(["check", "deploy"]).assert().code(0);
}

#[test]
fn swarm_and_kubernetes_harden_by_default_and_not_with_no_harden() {
    use flowerbed::render::{kubernetes, swarm};

    use crate::orchestrators::fake_material;

    let mut settings = Settings::defaults("/srv/deploy".into());
    settings.superlink_isolation = flowerbed::deploy::Isolation::Process;
    settings.supernode_isolation = flowerbed::deploy::Isolation::Process;
    for harden in [true, false] {
        settings.no_harden = !harden;
        let deployment = deploy::build(&settings).unwrap();
        let stack = swarm::render(&deployment, &swarm::SwarmOptions::default()).unwrap();
        let manifests = kubernetes::render_with(&deployment, "flower", &fake_material(&deployment)).unwrap();
        let services = deployment.services.len();
        // Every service, and no more (the kubernetes runners share their supernode's pod).
        assert_eq!(
            stack.matches("read_only: true").count(),
            if harden { services } else { 0 }
        );
        assert_eq!(
            stack.matches("type: tmpfs").count(),
            if harden { 5 * services } else { 0 }
        );
        assert_eq!(
            stack.matches("pids: 1024").count(),
            if harden { services } else { 0 }
        );
        let locked = manifests.matches("readOnlyRootFilesystem: true").count();
        assert_eq!(locked > 0, harden, "{manifests}");
        assert_eq!(manifests.matches("mountPath: /var/tmp").count(), locked);
        assert_eq!(manifests.matches("memory: 4Gi").count(), locked);
        assert_eq!(manifests.matches("memory: 256Mi").count(), locked);
    }
}

#[test]
fn pinned_images_leave_compose_lint_nothing_to_report() {
    let env = TestEnv::new();
    let mut settings = Settings::defaults(env.join("deploy"));
    settings.superlink_isolation = flowerbed::deploy::Isolation::Process;
    settings.supernode_isolation = flowerbed::deploy::Isolation::Process;
    let mut deployment = deploy::build(&settings).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned: std::collections::BTreeMap<String, String> = deployment
        .pulled_images()
        .into_iter()
        .map(|image| (image.to_string(), format!("{image}@{digest}")))
        .collect();
    assert_eq!(pinned.len(), 3, "superlink, superexec, supernode: {pinned:?}");
    deployment.pin_images(&pinned);
    for service in &deployment.services {
        assert!(
            service.image.ends_with(&format!(":1.42.0@{digest}")),
            "{}",
            service.image
        );
    }
    let Some(binary) = compose_lint() else { return };
    let file = env.join("pinned.yaml");
    std::fs::write(&file, compose::render(&deployment).unwrap()).unwrap();
    assert_eq!(lint_rules(&binary, &file), BTreeSet::new());
}

#[test]
fn image_digest_without_a_daemon_warns_and_keeps_the_tags() {
    let env = TestEnv::new();
    let out = env
        .flowerbed(["quickstart", "deploy", "--no-own", "--image-digest"])
        .env(
            "DOCKER_HOST",
            format!("unix://{}", env.join("no-daemon.sock").display()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--image-digest: no Docker daemon answers") && said.contains("keeps its tag"),
        "{said}"
    );
    let compose = std::fs::read_to_string(env.join("deploy/compose.yaml")).unwrap();
    assert!(
        compose.contains("image: flwr/superlink:1.42.0\n") && !compose.contains("@sha256"),
        "{compose}"
    );
    let saved = std::fs::read_to_string(env.join("deploy/flowerbed.json")).unwrap();
    assert!(saved.contains("\"image-digest\": true"), "{saved}");
}

/// checkov (a static analyser with Kubernetes rules) from PATH; CI installs it (in
/// `.venv/checkov`), so there its absence fails the test.
fn checkov() -> Option<PathBuf> {
    tool("checkov", "pip install checkov", |_| true)
}

/// The Kubernetes rules checkov fails on the manifest `files` (named one by one: checkov
/// passes over folders whose name starts with a dot, as temporary folders' do).
fn checkov_failures(binary: &Path, files: &[PathBuf]) -> BTreeSet<String> {
    let mut command = Process::new(binary);
    command.args([
        "--framework",
        "kubernetes",
        "--skip-download",
        "--quiet",
        "--compact",
        "-o",
        "json",
    ]);
    for file in files {
        command.arg("-f").arg(file);
    }
    let out = command.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("checkov: {err}: {}", String::from_utf8_lossy(&out.stderr)));
    let reports = report.as_array().cloned().unwrap_or_else(|| vec![report]);
    let mut failed = BTreeSet::new();
    for report in &reports {
        let checks = report["results"]["failed_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        failed.extend(
            checks
                .iter()
                .map(|check| check["check_id"].as_str().unwrap().to_string()),
        );
    }
    failed
}

/// What checkov may still report on hardened manifests, each for a reason (README):
/// no NetworkPolicy is rendered, images are pulled only when missing (`IfNotPresent`, so
/// locally built images work), tags rather than digests without `--image-digest`, and
/// liveness/readiness probes on the superlink only.
const CHECKOV_EXPLAINED: [&str; 5] = ["CKV2_K8S_6", "CKV_K8S_15", "CKV_K8S_43", "CKV_K8S_8", "CKV_K8S_9"];

#[test]
fn checkov_finds_only_the_explained_rules_in_hardened_kubernetes_manifests() {
    use flowerbed::render::kubernetes;

    use crate::orchestrators::fake_material;

    let Some(binary) = checkov() else { return };
    let env = TestEnv::new();
    let explained: BTreeSet<String> = CHECKOV_EXPLAINED.iter().map(ToString::to_string).collect();
    let mut files = Vec::new();
    // Each release in both isolation modes, TLS, with state and supernode authentication.
    for (name, mut settings) in matrix(Path::new("/srv/deploy")).into_iter().step_by(2) {
        if settings.superlink_isolation != settings.supernode_isolation {
            continue;
        }
        settings.state = true;
        settings.supernode_auth = true;
        let deployment = deploy::build(&settings).unwrap();
        let file = env.join(format!("{name}.yaml"));
        let text = kubernetes::render_with(&deployment, "flower", &fake_material(&deployment)).unwrap();
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    assert_eq!(files.len(), 10, "each release, both isolation modes");
    let failed = checkov_failures(&binary, &files);
    // The rules ran: the explained ones are reported.
    assert!(failed.contains("CKV_K8S_8"), "{failed:?}");
    assert!(
        failed.is_subset(&explained),
        "unexplained: {:?}",
        failed.difference(&explained)
    );

    // The judge works: the same manifests unhardened fail the rules hardening answers.
    let plain = env.join("plain.yaml");
    let mut settings = Settings::defaults("/srv/deploy".into());
    settings.no_harden = true;
    let deployment = deploy::build(&settings).unwrap();
    let text = kubernetes::render_with(&deployment, "flower", &fake_material(&deployment)).unwrap();
    std::fs::write(&plain, text).unwrap();
    let failed = checkov_failures(&binary, &[plain]);
    for rule in [
        "CKV_K8S_20",
        "CKV_K8S_22",
        "CKV_K8S_37",
        "CKV_K8S_11",
        "CKV_K8S_13",
    ] {
        assert!(
            failed.contains(rule),
            "{rule} not reported unhardened: {failed:?}"
        );
    }
}
