//! Kubernetes Secrets keep the superexec links apart: the superlink's link secret reaches
//! the superlink and its ServerApp runner only, never a supernode pod.

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
    let secret = |name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == "Secret" && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Secret {name}"))["stringData"]["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        secret("superexec-auth-superlink"),
        "content of /srv/deploy/superexec-auth/superlink/secret"
    );
    assert!(
        secret("superexec-auth-supernode").starts_with("content of /srv/deploy/superexec-auth/supernode-")
    );
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
            .filter(|name| name.starts_with("superexec-auth"))
            .collect()
    };
    assert_eq!(mounted("superlink"), ["superexec-auth-superlink"]);
    assert_eq!(mounted("superexec-serverapp"), ["superexec-auth-superlink"]);
    assert_eq!(mounted("supernode"), ["superexec-auth-supernode"]);
}
