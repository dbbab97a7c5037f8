//! Kubernetes Secrets keep the superexec links and the supernodes apart: the superlink's
//! link secret reaches the superlink and its ServerApp runner only, and each supernode's
//! pod mounts its own link secret and Runtime API key, never another supernode's.

use flowerbed::deploy::{self, Isolation, Settings};
use flowerbed::render::kubernetes::{self, Material};
use serde_json::Value;

#[test]
fn each_superexec_link_has_a_secret_of_its_own() {
    let mut settings = Settings::defaults("/srv/deploy".into());
    settings.superlink_isolation = Isolation::Process;
    settings.supernode_isolation = Isolation::Process;
    let deployment = deploy::build(&settings).unwrap();
    // Each file its own text, so the test can tell which file a Secret carries.
    let mut material = Material::new();
    for mount in deployment.services.iter().flat_map(|service| &service.mounts) {
        for file in mount.files().unwrap_or_default() {
            let text = format!("content of {}", file.source.display());
            material.insert(file.source, text);
        }
    }
    let objects: Vec<Value> = kubernetes::objects(&deployment, "flower", &material).unwrap();
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
    // Which Secrets each workload's pods mount.
    let mounted = |name: &str| -> Vec<String> {
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
            .find(|object| object["kind"] == "StatefulSet" && object["metadata"]["name"] == format!("supernode-{n}"))
            .unwrap();
        assert_eq!(set["spec"]["replicas"], 1);
        let labels = &set["spec"]["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&labels[key], value, "supernode-{n}'s pod is not under the Service");
        }
        let args = set["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains(&format!("partition-id={}", n - 1)), "{args}");
    }
}
