//! The pods' templates: each container with the model's arguments, its probes and its
//! mounts, the pod's volumes, and the locked-down security contexts.

use std::collections::BTreeMap;
use std::path::Path;

use crate::deploy::model::SERVICE_LABEL;
use crate::deploy::profile::HealthProbe;
use crate::deploy::{Deployment, Hardening, HealthCheck, Identity, Service};

use super::objects::{
    self, Capabilities, ContainerPort, EmptyDir, EnvVar, KeyToPath, ObjectMeta, PodSecurityContext, PodSpec,
    PodTemplate, PortAction, Probe, ResourceList, Resources, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use super::{labels, secret_for};

/// What each hardened container asks the scheduler to reserve.
const REQUESTED_CPU: &str = "100m";
const REQUESTED_MEMORY: &str = "256Mi";
/// Secret volumes: the files are root-owned with group fsGroup inside the pod, so the
/// container user (runAsUser 49999, not root) reads them through the group bit. 0440 says
/// so explicitly rather than relying on kubelet widening 0400 for fsGroup; other users get
/// nothing.
const SECRET_MODE: u32 = 0o440;

/// A container for `service`: the model's arguments (after `rewrite`), its mounts as
/// Secret or claim mounts, and the locked-down security context.
pub(super) struct Container<'a> {
    pub name: &'a str,
    pub service: &'a Service,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub ports: Vec<u16>,
}

/// The `emptyDir` volume standing for a scratch folder: its path as a name
/// (`/app/.flwr` → `app-flwr`).
fn scratch_volume(path: &str) -> String {
    let words: Vec<&str> = path.split(['/', '.']).filter(|word| !word.is_empty()).collect();
    words.join("-")
}

impl Container<'_> {
    fn to_object(&self, hardening: Option<&Hardening>) -> objects::Container {
        let scratch = hardening.map_or(&[][..], |hardening| hardening.scratch);
        let mut mounts: Vec<VolumeMount> = scratch
            .iter()
            .map(|path| VolumeMount {
                mount_path: (*path).to_string(),
                name: scratch_volume(path),
                read_only: None,
            })
            .collect();
        for (volume, path) in volume_mounts(self.service) {
            let read_only = Some(volume != "state");
            mounts.push(VolumeMount {
                mount_path: path,
                name: volume,
                read_only,
            });
        }
        // The kubelet probes from outside the container: gRPC health or TCP, natively.
        let probe = |period_seconds| {
            let health = self.service.health.as_ref()?;
            let (grpc, tcp_socket) = match health.probe {
                HealthProbe::Grpc { port, .. } => (Some(PortAction { port }), None),
                HealthProbe::Tcp(port) => (None, Some(PortAction { port })),
            };
            Some(Probe {
                failure_threshold: None,
                grpc,
                initial_delay_seconds: None,
                period_seconds,
                tcp_socket,
            })
        };
        // The kubelet's probes cost the container nothing: readiness often, so what
        // dials the superlink's Service finds it soon.
        let readiness_probe = probe(2);
        let liveness_probe = probe(HealthCheck::INTERVAL_SECONDS * 2).map(|alive| Probe {
            failure_threshold: Some(HealthCheck::RETRIES),
            initial_delay_seconds: Some(HealthCheck::START_PERIOD_SECONDS),
            ..alive
        });
        let security_context = hardening.map(|_| SecurityContext {
            allow_privilege_escalation: false,
            capabilities: Capabilities {
                drop: vec![Hardening::CAP_DROP],
            },
            read_only_root_filesystem: true,
            run_as_non_root: true,
        });
        // Requests are what the scheduler reserves: a floor an idle Flower component
        // stays under, so a small cluster still places every pod; limits are the cap.
        let resources = hardening.map(|hardening| Resources {
            limits: ResourceList {
                cpu: hardening.cpus_text(),
                memory: hardening.memory_text(true),
            },
            requests: ResourceList {
                cpu: REQUESTED_CPU.to_string(),
                memory: REQUESTED_MEMORY.to_string(),
            },
        });
        objects::Container {
            args: self.args.clone(),
            env: self.env.clone(),
            image: self.service.image.clone(),
            image_pull_policy: "IfNotPresent",
            liveness_probe,
            name: self.name.to_string(),
            ports: (self.ports.iter())
                .map(|&container_port| ContainerPort {
                    container_port,
                    protocol: "TCP",
                })
                .collect(),
            readiness_probe,
            resources,
            security_context,
            volume_mounts: mounts,
        }
    }
}

/// `(volume name, mount path)` for each Secret or state volume `service` needs; a Secret
/// is mounted as the folder its files' targets share, so the flags' paths resolve.
fn volume_mounts(service: &Service) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for mount in &service.mounts {
        let entry = match (secret_for(mount.purpose, service), mount.files()) {
            (Some(secret), Some(files)) => {
                let folder = files
                    .first()
                    .and_then(|file| Path::new(&file.target).parent())
                    .map_or_else(|| mount.target.clone(), |p| p.display().to_string());
                (secret, folder)
            }
            _ => ("state".to_string(), mount.target.clone()),
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// The pod's volumes: an `emptyDir` per scratch folder and each Secret with the files the
/// containers' mounts carry (key = file name, path = name in the mounted folder).
fn pod_volumes(services: &[&Service], hardening: Option<&Hardening>) -> Vec<Volume> {
    let mut items: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
    let mounts = services
        .iter()
        .flat_map(|service| service.mounts.iter().map(move |mount| (mount, *service)));
    for (mount, service) in mounts {
        let (Some(secret), Some(files)) = (secret_for(mount.purpose, service), mount.files()) else {
            continue;
        };
        for file in files {
            let path = Path::new(&file.target)
                .file_name()
                .map_or_else(|| file.name.to_string(), |n| n.to_string_lossy().into_owned());
            items.entry(secret.clone()).or_default().insert(file.name, path);
        }
    }
    let scratch = hardening.map_or(&[][..], |hardening| hardening.scratch);
    let mut volumes: Vec<Volume> = scratch
        .iter()
        .map(|path| Volume {
            empty_dir: Some(EmptyDir {}),
            name: scratch_volume(path),
            secret: None,
        })
        .collect();
    for (secret, files) in items {
        let items = files
            .into_iter()
            .map(|(key, path)| KeyToPath {
                key: key.to_string(),
                path,
            })
            .collect();
        volumes.push(Volume {
            empty_dir: None,
            name: secret.clone(),
            secret: Some(SecretVolumeSource {
                default_mode: SECRET_MODE,
                items,
                secret_name: secret,
            }),
        });
    }
    volumes
}

pub(super) fn pod_template(
    deployment: &Deployment,
    workload: &str,
    containers: &[Container<'_>],
) -> PodTemplate {
    let Identity { uid, gid } = deployment.user;
    let mut labels = labels(deployment, workload);
    labels.extend(containers[0].service.labels.clone());
    // One pod template stands for every supernode: it is named after the workload.
    labels.insert(SERVICE_LABEL.to_string(), workload.to_string());
    let services: Vec<&Service> = containers.iter().map(|c| c.service).collect();
    let hardening = deployment.hardening.as_ref();
    PodTemplate {
        metadata: ObjectMeta {
            labels,
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            automount_service_account_token: false,
            containers: (containers.iter())
                .map(|container| container.to_object(hardening))
                .collect(),
            security_context: PodSecurityContext {
                fs_group: gid,
                run_as_group: gid,
                run_as_non_root: true,
                run_as_user: uid,
                seccomp_profile: SeccompProfile {
                    type_: "RuntimeDefault",
                },
            },
            volumes: pod_volumes(&services, hardening),
        },
    }
}
