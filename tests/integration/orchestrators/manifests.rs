//! Kubernetes manifests judged by `kubernetes-validate` (offline schemas) and read back:
//! every Secret a container mounts exists, flags point into mounted folders, pods run as
//! the model's user.

use std::path::Path;
use std::process::Command as Process;

use flowerbed::deploy::{self, Deployment, Isolation, Security, Settings};
use flowerbed::render::kubernetes;
use serde_json::Value;

use super::{FAKE_DIR, KUBERNETES_VERSION, fake_material, state_settings, tool};
use crate::deploy::matrix;
use crate::testenv::{TestEnv, yaml};

#[test]
fn kubernetes_validate_accepts_every_manifest() {
    let Some(validate) = tool("kubernetes-validate", "pip install kubernetes-validate", |_| true) else {
        return;
    };
    let env = TestEnv::new();
    let mut cases = matrix(Path::new(FAKE_DIR));
    cases.push(("state".into(), state_settings(Path::new(FAKE_DIR))));
    // Supernode authentication in every release: a Secret per supernode's key pair.
    for profile in deploy::PROFILES {
        for isolation in [Isolation::Subprocess, Isolation::Process] {
            let mut settings = Settings::defaults(FAKE_DIR.into());
            settings.flower_version = profile.version.into();
            settings.supernode_auth = true;
            settings.superlink_isolation = isolation;
            settings.supernode_isolation = isolation;
            cases.push((format!("auth-{}-{}", profile.version, isolation.name()), settings));
        }
    }
    let mut files = Vec::new();
    for (name, settings) in &cases {
        let deployment = deploy::build(settings).unwrap();
        let text = kubernetes::render_with(&deployment, "flower", &fake_material(&deployment)).unwrap();
        let file = env.join(format!("{name}.yaml"));
        std::fs::write(&file, &text).unwrap();
        files.push(file);
        check_manifests(name, &deployment, &text);
    }
    // The oldest release the manifests need (1.28+ for the pod-index label, pinned to the
    // one the README names) and the three newest the validator bundles: its default (read
    // off its --help) and the two minors before.
    let help = Process::new(&validate).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    let newest = help
        .split("Defaults to")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("kubernetes-validate --help names its default version");
    let (major, minor) = newest
        .split('.')
        .take(2)
        .map(|part| part.parse::<u32>().unwrap())
        .collect::<Vec<_>>()
        .split_first()
        .map(|(major, rest)| (*major, rest[0]))
        .unwrap();
    let mut versions = vec![KUBERNETES_VERSION.to_string()];
    versions.extend((0..3).map(|back| format!("{major}.{}.0", minor - back)));
    for version in &versions {
        let mut cmd = Process::new(&validate);
        cmd.args(["--strict", "--quiet", "--kubernetes-version", version]);
        let out = cmd.args(&files).output().unwrap();
        assert!(
            out.status.success(),
            "kubernetes-validate ({version:?}) rejected: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The validator is not a rubber stamp: an unknown field fails strict validation.
    let broken = env.join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  nmae: y\n",
    )
    .unwrap();
    let out = Process::new(&validate)
        .args(["--strict", "--quiet"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// What the manifests must say whatever the validator thinks: identity, lockdown, flags.
fn check_manifests(name: &str, deployment: &Deployment, text: &str) {
    let docs: Vec<Value> = text.split("\n---\n").skip(1).map(yaml).collect();
    let find = |kind: &str, object: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == object)
            .unwrap_or_else(|| panic!("{name}: no {kind}/{object}"))
    };
    let tls = deployment.security == Security::Tls;
    let superlink = deployment.service("superlink").unwrap();
    let set = find("StatefulSet", "superlink");
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 49_999, "{name}");
    assert_eq!(pod["securityContext"]["fsGroup"], 49_999, "{name}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
    let container = &pod["containers"][0];
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    assert_eq!(
        args,
        superlink.args(),
        "{name}: superlink flags differ from the model"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == "/app/.flwr"), "{name}");
    if tls {
        let secret = find("Secret", kubernetes::SERVER_SECRET);
        let keys: Vec<&String> = secret["stringData"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ca.crt", "server.key", "server.pem"], "{name}");
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == kubernetes::SERVER_SECRET)
            .unwrap();
        assert_eq!(volume["secret"]["defaultMode"], 0o440);
        // The flags' relative paths resolve below the Secret's mount.
        for flag in ["--ssl-keyfile", "--ssl-certfile", "--ssl-ca-certfile"] {
            let path = superlink.flag(flag).unwrap().value.clone().unwrap();
            let (folder, file) = path.rsplit_once('/').unwrap();
            assert!(
                mounts
                    .iter()
                    .any(|m| m["mountPath"] == format!("/app/{folder}")
                        && m["name"] == kubernetes::SERVER_SECRET),
                "{name}: {path}"
            );
            assert!(
                volume["secret"]["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["path"] == file)
            );
        }
        assert!(!text.contains("ca.key"), "{name}: the CA key must never be read");
    } else {
        assert!(!docs.iter().any(|d| d["kind"] == "Secret"), "{name}");
    }
    let count = deployment
        .services
        .iter()
        .filter(|s| matches!(s.role, deploy::Role::Supernode(_)))
        .count();
    let process = deployment.supernode_isolation == Isolation::Process;
    let containers = |set: &Value| {
        set["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len()
    };
    let args = |set: &Value| -> Vec<String> {
        serde_json::from_value(set["spec"]["template"]["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    // Supernodes with Secrets of their own (a runner link's secret or Runtime API key) are
    // a StatefulSet each, with exactly the model's flags; otherwise one StatefulSet of N
    // with the partition from the pod's index.
    if docs.iter().any(|d| d["metadata"]["name"] == "supernode-1") {
        for n in 1..=count {
            let set = find("StatefulSet", &format!("supernode-{n}"));
            assert_eq!(set["spec"]["replicas"], 1, "{name}");
            let model = deployment.service(&format!("supernode-{n}")).unwrap();
            assert_eq!(args(set), model.args(), "{name}");
            assert_eq!(containers(set), if process { 2 } else { 1 }, "{name}");
        }
        assert!(
            !docs
                .iter()
                .any(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "supernode")
        );
    } else {
        let supernodes = find("StatefulSet", "supernode");
        assert_eq!(supernodes["spec"]["replicas"], count, "{name}");
        let node_args = args(supernodes);
        let model_args = deployment.service("supernode-1").unwrap().args();
        assert_eq!(node_args.len(), model_args.len(), "{name}");
        for (rendered, model) in node_args.iter().zip(&model_args) {
            if model.starts_with("partition-id=") {
                assert_eq!(
                    rendered,
                    &format!("partition-id=$(FLOWERBED_POD_INDEX) num-partitions={count}")
                );
            } else {
                assert_eq!(rendered, model, "{name}");
            }
        }
        assert_eq!(containers(supernodes), if process { 2 } else { 1 }, "{name}");
    }
    if settings_state(deployment) {
        assert_eq!(
            set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
            "state"
        );
    }
}

fn settings_state(deployment: &Deployment) -> bool {
    deployment
        .service("superlink")
        .unwrap()
        .flag("--database")
        .is_some()
}
