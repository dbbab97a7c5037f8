//! Kubernetes Secrets keep the superexec links and the supernodes apart: the superlink's
//! link secret reaches the superlink and its ServerApp runner only, and each supernode's
//! pod mounts its own link secret and Runtime API key, never another supernode's.

use flowerbed::deploy::{self, Isolation, Settings};
use flowerbed::render::kubernetes::{self, Material};
use serde_json::Value;

/// The manifests' objects as JSON, each mounted file given its own text (`content of
/// PATH`), so a test can tell which file a Secret carries.
fn labelled_objects(deployment: &flowerbed::deploy::Deployment) -> Vec<Value> {
    let mut material = Material::new();
    for mount in deployment.services.iter().flat_map(|service| &service.mounts) {
        for file in mount.files().unwrap_or_default() {
            let text = format!("content of {}", file.source.display());
            material.insert(file.source, text);
        }
    }
    let objects = kubernetes::objects(deployment, "flower", &material).unwrap();
    (objects.iter())
        .map(|object| serde_json::to_value(object).unwrap())
        .collect()
}

#[test]
fn each_superexec_link_has_a_secret_of_its_own() {
    let mut settings = Settings::defaults("/srv/deploy".into());
    settings.superlink_isolation = Isolation::Process;
    settings.supernode_isolation = Isolation::Process;
    let deployment = deploy::build(&settings).unwrap();
    let objects = labelled_objects(&deployment);
    let secret = |name: &str, key: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == "Secret" && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Secret {name}"))["stringData"][key]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        secret("superexec-auth-superlink", "secret"),
        "content of /srv/deploy/superexec-auth/superlink/secret"
    );
    for n in 1..=2 {
        assert_eq!(
            secret(&format!("superexec-auth-supernode-{n}"), "secret"),
            format!("content of /srv/deploy/superexec-auth/supernode-{n}/secret")
        );
        assert_eq!(
            secret(&format!("supernode-runtime-tls-{n}"), "server.key"),
            format!("content of /srv/deploy/supernode-runtime-certificates/supernode-{n}/server.key")
        );
    }
    // Which of the link and Runtime Secrets each workload's pods mount.
    let mounted = |name: &str| -> Vec<String> {
        secret_volumes(&objects, name)
            .into_iter()
            .filter(|name| name.starts_with("superexec-auth") || name.starts_with("supernode-runtime"))
            .collect()
    };
    assert_eq!(mounted("superlink"), ["superexec-auth-superlink"]);
    assert_eq!(mounted("superexec-serverapp"), ["superexec-auth-superlink"]);
    for n in 1..=2 {
        assert_eq!(
            mounted(&format!("supernode-{n}")),
            [
                format!("superexec-auth-supernode-{n}"),
                format!("supernode-runtime-tls-{n}")
            ]
        );
    }
    // One StatefulSet of one per supernode, each pod under the shared headless Service.
    let service = objects
        .iter()
        .find(|object| object["kind"] == "Service" && object["metadata"]["name"] == "supernode")
        .unwrap();
    for n in 1..=2 {
        let set = objects
            .iter()
            .find(|object| {
                object["kind"] == "StatefulSet" && object["metadata"]["name"] == format!("supernode-{n}")
            })
            .unwrap();
        assert_eq!(set["spec"]["replicas"], 1);
        let labels = &set["spec"]["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &labels[key], value,
                "supernode-{n}'s pod is not under the Service"
            );
        }
        let args = set["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains(&format!("partition-id={}", n - 1)), "{args}");
    }
}

/// Which Secrets the pods of workload `name` mount, and where each container mounts them.
fn secret_volumes(objects: &[Value], name: &str) -> Vec<String> {
    let workload = objects
        .iter()
        .find(|object| {
            ["StatefulSet", "Deployment"].contains(&object["kind"].as_str().unwrap_or_default())
                && object["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no workload {name}"));
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|volume| volume["secret"]["secretName"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn each_supernode_key_pair_is_a_secret_of_its_own_in_every_release() {
    for profile in deploy::PROFILES {
        let mut settings = Settings::defaults("/srv/deploy".into());
        settings.flower_version = profile.version.into();
        settings.supernode_auth = true;
        settings.supernodes = 3;
        let deployment = deploy::build(&settings).unwrap();
        let objects = labelled_objects(&deployment);
        let version = profile.version;
        for n in 1..=3 {
            let secret = objects
                .iter()
                .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == format!("supernode-auth-{n}"))
                .unwrap_or_else(|| panic!("{version}: no Secret supernode-auth-{n}"));
            let data = secret["stringData"].as_object().unwrap();
            assert!(
                data.values().all(|text| text
                    .as_str()
                    .unwrap()
                    .contains(&format!("/supernode-auth/supernode-{n}/"))),
                "{version}: supernode-auth-{n} holds another supernode's file: {data:?}"
            );
            // Its pod mounts its own key pair and no other supernode's.
            let mounted = secret_volumes(&objects, &format!("supernode-{n}"));
            let auth: Vec<&String> = mounted
                .iter()
                .filter(|s| s.starts_with("supernode-auth"))
                .collect();
            assert_eq!(auth, [&format!("supernode-auth-{n}")], "{version}");
            let volume = objects
                .iter()
                .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == format!("supernode-{n}"))
                .unwrap()["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == format!("supernode-auth-{n}"))
                .cloned()
                .unwrap();
            assert_eq!(volume["secret"]["defaultMode"], 0o440, "{version}");
        }
        // The superlink reads the admitted keys (1.13 with its own pair, 1.21); from 1.35
        // keys are registered through the Control API instead.
        let superlink = secret_volumes(&objects, "superlink");
        let expected: &[&str] = match version {
            "1.13.1" => &["superlink-auth", "superlink-tls"],
            "1.21.0" => &["superlink-tls", "supernode-public-keys"],
            _ => &["superlink-tls"],
        };
        assert_eq!(superlink, expected, "{version}");
        assert!(
            !superlink.iter().any(|s| s.starts_with("supernode-auth")),
            "{version}"
        );
    }
}

#[test]
fn render_kubernetes_supernode_auth_writes_a_private_file_that_says_how_to_register() {
    use std::os::unix::fs::MetadataExt;

    use crate::testenv::TestEnv;

    let env = TestEnv::new();
    env.flowerbed(["quickstart", "qs", "--supernode-auth", "--no-own"])
        .assert()
        .success();
    env.flowerbed(["render", "kubernetes", "qs", "--out", "qs/k.yaml"])
        .assert()
        .success();
    let file = env.join("qs/k.yaml");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    // 1.42 registers keys through the Control API: the header says how.
    assert!(text.contains("sh register-supernodes.sh"), "{}", &text[..800]);
    // Each supernode's private key is in the file once, under its own Secret.
    for n in 1..=2 {
        let key =
            std::fs::read_to_string(env.join(format!("qs/supernode-auth/supernode-{n}/auth.key"))).unwrap();
        // A line of the key's random body (YAML indents the block; the first lines of
        // every OpenSSH key are alike).
        let line = key.lines().nth(3).unwrap();
        assert_eq!(text.matches(line).count(), 1, "supernode-{n}");
    }
}
