//! The slice of the Kubernetes API the manifests use, as serde types.
//!
//! Every struct declares its fields in the byte order of their serialized names (upper
//! case before lower case): the manifests were first written from `serde_json::Value`,
//! whose maps are sorted, and this keeps their text as it was. A field left out is one
//! the manifests never write; an optional one is skipped when unset.

use std::collections::BTreeMap;

use serde::Serialize;

/// Label key → value, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// One document of the manifests.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    Secret(Secret),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    /// File name → text; the API server encodes it into `data`.
    pub string_data: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    /// `None` for a headless Service.
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<&'static str>,
    pub ports: Vec<ServicePort>,
    pub selector: Labels,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub protocol: &'static str,
    pub target_port: u16,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSet {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: StatefulSetSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<&'static str>,
    pub replicas: u32,
    pub selector: LabelSelector,
    pub service_name: String,
    pub template: PodTemplate,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: Labels,
}

#[derive(Debug, Clone, Serialize)]
pub struct PersistentVolumeClaim {
    pub metadata: ObjectMeta,
    pub spec: PersistentVolumeClaimSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimSpec {
    pub access_modes: Vec<&'static str>,
    pub resources: StorageResources,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageResources {
    pub requests: StorageRequest,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageRequest {
    pub storage: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodTemplate {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub automount_service_account_token: bool,
    pub containers: Vec<Container>,
    pub security_context: PodSecurityContext,
    /// Written even when empty, as it always was.
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    pub fs_group: u32,
    pub run_as_group: u32,
    pub run_as_non_root: bool,
    pub run_as_user: u32,
    pub seccomp_profile: SeccompProfile,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub type_: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    pub image: String,
    pub image_pull_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Written even when empty, as it always was.
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value_from: EnvVarSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub field_ref: FieldRef,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
    pub protocol: &'static str,
}

/// A gRPC health or TCP probe, with the timing of readiness or liveness.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<PortAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<u32>,
    pub period_seconds: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<PortAction>,
}

/// The port of a `grpc` or `tcpSocket` probe.
#[derive(Debug, Clone, Serialize)]
pub struct PortAction {
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub allow_privilege_escalation: bool,
    pub capabilities: Capabilities,
    pub read_only_root_filesystem: bool,
    pub run_as_non_root: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub drop: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub limits: ResourceList,
    pub requests: ResourceList,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceList {
    pub cpu: String,
    pub memory: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub mount_path: String,
    pub name: String,
    /// Unset for scratch folders, which were always written without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDir>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
}

/// `emptyDir: {}`: the node's default medium, no size limit.
#[derive(Debug, Clone, Serialize)]
pub struct EmptyDir {}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeSource {
    pub default_mode: u32,
    pub items: Vec<KeyToPath>,
    pub secret_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
}

#[cfg(test)]
mod tests {
    use crate::deploy::{self, DeploymentRole, Isolation, Settings};
    use crate::render::kubernetes::{Material, objects};

    /// Each object's keys come out as `serde_json::Value` (sorted maps) writes them.
    #[test]
    fn fields_are_declared_in_serialized_order() {
        for (process, state, no_harden, role) in [
            (false, true, false, DeploymentRole::All),
            (true, false, false, DeploymentRole::All),
            (true, true, true, DeploymentRole::Superlink),
        ] {
            let mut settings = Settings::defaults("/srv/deploy".into());
            if process {
                settings.superlink_isolation = Isolation::Process;
                settings.supernode_isolation = Isolation::Process;
            }
            settings.state = state;
            settings.no_harden = no_harden;
            settings.role = role;
            if role == DeploymentRole::Superlink {
                settings.public_addresses = vec![deploy::Address::parse("flower.example.org").unwrap()];
            }
            let deployment = deploy::build(&settings).unwrap();
            let mut material = Material::new();
            for mount in deployment.services.iter().flat_map(|service| &service.mounts) {
                for file in mount.files().unwrap_or_default() {
                    material.insert(file.source, "text".into());
                }
            }
            for object in objects(&deployment, "flower", &material).unwrap() {
                let typed = serde_json::to_string(&object).unwrap();
                let sorted = serde_json::to_value(&object).unwrap().to_string();
                assert_eq!(typed, sorted);
            }
        }
    }
}
