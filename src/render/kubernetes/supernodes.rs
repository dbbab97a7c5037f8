//! The supernodes' workloads. Without material of their own, one StatefulSet of N: each
//! pod's index (the `apps.kubernetes.io/pod-index` label, Kubernetes 1.28+) becomes its
//! `partition-id`. When each supernode has Secrets of its own (its Runtime API key, its
//! runner link's superexec secret), a StatefulSet of one per supernode instead, so each pod
//! mounts its own Secrets and no other supernode's. Either way, in process isolation each
//! pod carries its ClientApp runner as a second container dialing the supernode on loopback.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::objects::{
    EnvVar, EnvVarSource, FieldRef, LabelSelector, Object, PodTemplate, StatefulSet, StatefulSetSpec,
};
use super::{Container, label_map, metadata, per_supernode_secrets, pod_template, selector, service_object};
use crate::deploy::model::{NODE_CONFIG_FLAG, node_config};
use crate::deploy::profile::SUPERNODE_APPIO_PORT;
use crate::deploy::{Address, Deployment, Role, Service};

/// Pod label Kubernetes (1.28+) sets to a StatefulSet pod's index.
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Environment variable carrying that index into the supernode's arguments.
const POD_INDEX_ENV: &str = "FLOWERBED_POD_INDEX";
/// The label every supernode pod carries when each supernode is a workload of its own.
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// The headless Service the supernodes' pods are named under, and their StatefulSet(s).
pub(super) fn objects(deployment: &Deployment, namespace: &str) -> Result<Vec<Object>> {
    let supernodes: Vec<&Service> = deployment
        .services
        .iter()
        .filter(|service| matches!(service.role, Role::Supernode(_)))
        .collect();
    let count = u32::try_from(supernodes.len())?;
    let mut service = service_object(deployment, namespace, "supernode", &[SUPERNODE_APPIO_PORT], true);
    if !per_supernode_secrets(deployment) {
        let first = supernodes.first().context("no supernode in the deployment")?;
        let args = first
            .flags
            .iter()
            .flat_map(|flag| {
                let value = if flag.name == NODE_CONFIG_FLAG {
                    Some(node_config(format!("$({POD_INDEX_ENV})"), count))
                } else {
                    flag.value.clone()
                };
                std::iter::once(flag.name.to_string()).chain(value)
            })
            .collect();
        let env = vec![EnvVar {
            name: POD_INDEX_ENV.to_string(),
            value_from: EnvVarSource {
                field_ref: FieldRef {
                    field_path: format!("metadata.labels['{POD_INDEX_LABEL}']"),
                },
            },
        }];
        let containers = pod_containers(deployment, first, args, env);
        let template = pod_template(deployment, "supernode", &containers);
        return Ok(vec![
            Object::Service(service),
            stateful_set(deployment, namespace, "supernode", count, template),
        ]);
    }
    // The Service selects every supernode's pod by the label they share.
    service.spec.selector = label_map([
        (COMPONENT_LABEL, "supernode"),
        ("app.kubernetes.io/instance", &deployment.project),
    ]);
    let mut objects = vec![Object::Service(service)];
    for supernode in supernodes {
        let containers = pod_containers(deployment, supernode, supernode.args(), Vec::new());
        let mut template = pod_template(deployment, &supernode.name, &containers);
        (template.metadata.labels).insert(COMPONENT_LABEL.to_string(), "supernode".to_string());
        objects.push(stateful_set(deployment, namespace, &supernode.name, 1, template));
    }
    Ok(objects)
}

/// A supernode's container (with `args`, `env`) and, in process isolation, its ClientApp
/// runner's, which reaches it on loopback (same pod, same network namespace).
fn pod_containers<'a>(
    deployment: &'a Deployment,
    supernode: &'a Service,
    args: Vec<String>,
    env: Vec<EnvVar>,
) -> Vec<Container<'a>> {
    let Role::Supernode(index) = supernode.role else {
        unreachable!("only supernodes are given")
    };
    let mut containers = vec![Container {
        name: "supernode",
        service: supernode,
        args,
        env,
        ports: Vec::new(),
    }];
    if let Some(runner) = deployment
        .services
        .iter()
        .find(|service| service.role == Role::ClientAppRunner(index))
    {
        // The runner shares the supernode's pod: it dials the app API on loopback.
        let beside = runner.dials.as_ref().map(|dial| {
            (
                dial.flag,
                Address::ip(Ipv4Addr::LOCALHOST.into(), dial.address.port_or(0)),
            )
        });
        let args = runner
            .flags
            .iter()
            .flat_map(|flag| {
                let value = match &beside {
                    Some((dial_flag, address)) if *dial_flag == flag.name => Some(address.to_string()),
                    _ => flag.value.clone(),
                };
                std::iter::once(flag.name.to_string()).chain(value)
            })
            .collect();
        let name = runner
            .name
            .strip_suffix(&format!("-{index}"))
            .unwrap_or(&runner.name);
        containers.push(Container {
            name,
            service: runner,
            args,
            env: Vec::new(),
            ports: Vec::new(),
        });
    }
    containers
}

fn stateful_set(
    deployment: &Deployment,
    namespace: &str,
    name: &str,
    replicas: u32,
    template: PodTemplate,
) -> Object {
    Object::StatefulSet(StatefulSet {
        api_version: "apps/v1",
        kind: "StatefulSet",
        metadata: metadata(deployment, namespace, name),
        spec: StatefulSetSpec {
            // Supernodes do not depend on each other: start them all at once.
            pod_management_policy: Some("Parallel"),
            replicas,
            selector: LabelSelector {
                match_labels: selector(deployment, name),
            },
            service_name: "supernode".to_string(),
            template,
            volume_claim_templates: Vec::new(),
        },
    })
}
