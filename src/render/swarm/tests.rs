use std::path::PathBuf;

use super::*;
use crate::deploy::{self, Settings};

fn settings() -> Settings {
    let mut settings = Settings::defaults(PathBuf::from("/srv/flower"));
    settings.supernodes = 3;
    settings
}

fn replicas(settings: &Settings) -> Option<u32> {
    let deployment = deploy::build(settings).unwrap();
    replicated_supernodes(&deployment).map(|(first, count)| {
        assert_eq!(first.role, Role::Supernode(1));
        count
    })
}

#[test]
fn subprocess_supernodes_are_one_replicated_service() {
    assert_eq!(replicas(&settings()), Some(3));
    let deployment = deploy::build(&settings()).unwrap();
    let text = render(&deployment, &SwarmOptions::default()).unwrap();
    assert!(text.contains("\n  supernode:\n"), "{text}");
    assert!(!text.contains("supernode-1:"), "{text}");
    assert!(text.contains("replicas: 3"), "{text}");
    assert!(
        text.contains("docker service scale flowerbed_supernode=K"),
        "{text}"
    );
}

#[test]
fn process_isolation_and_supernode_auth_keep_a_service_each() {
    let mut process = settings();
    process.supernode_isolation = Isolation::Process;
    assert_eq!(replicas(&process), None);
    let mut auth = settings();
    auth.supernode_auth = true;
    assert_eq!(replicas(&auth), None);
    let deployment = deploy::build(&auth).unwrap();
    let text = render(&deployment, &SwarmOptions::default()).unwrap();
    for index in 1..=3 {
        assert!(text.contains(&format!("\n  supernode-{index}:\n")), "{text}");
    }
    assert!(!text.contains("FLOWERBED_SLOT:"), "{text}");
}

#[test]
fn the_replica_script_escapes_every_dollar_for_compose() {
    assert_eq!(
        replica_script("flower-supernode", 2).unwrap(),
        "exec flower-supernode \"$$@\" --node-config \
         \"partition-id=$$((FLOWERBED_SLOT - 1)) num-partitions=2\""
    );
    // A program name the shell would split is quoted.
    assert!(
        replica_script("my program", 2)
            .unwrap()
            .starts_with("exec 'my program' ")
    );
}
