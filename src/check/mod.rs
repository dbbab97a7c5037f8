//! `check`: will this deployment start? Host-side rules over the containers a deployment
//! runs, read from flowerbed's own model, a compose file, a `docker run` script, or live
//! containers.

pub mod app;
pub mod compose;
pub mod compose_files;
pub mod live;
pub mod model;
pub mod perm;
pub mod report;
pub mod rules;
pub mod script;
pub mod spec;

pub use report::CheckReport;
pub use rules::{CheckSettings, Finding, Findings, IdShift};
pub use spec::ContainerSpec;

use std::path::Path;

use crate::tls::SubjectName;

/// What the rules read besides the containers' specs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extra<'a> {
    /// flowerbed's own model, for the cross-host rules.
    pub deployment: Option<&'a crate::deploy::Deployment>,
    /// Live containers, for their state and logs.
    pub live: &'a [crate::docker::LiveContainer],
    /// With `--app`: the app's project, Dockerfiles, wheels and images as found now.
    pub app: Option<&'a app::AppFacts>,
}

/// Run every rule (per container, TLS, cross-host, live) and sort the findings once.
pub fn run(
    source: String,
    specs: &[ContainerSpec],
    extra: Extra<'_>,
    settings: &CheckSettings,
) -> CheckReport {
    let mut findings = Findings::default();
    for spec in specs {
        rules::check_container(spec, settings, &mut findings);
    }
    rules::check_tls(specs, settings, &mut findings);
    rules::check_runtime_links(specs, settings, &mut findings);
    if let Some(deployment) = extra.deployment {
        // Across hosts: public addresses (superlink) and the address dialed (supernode).
        rules::cross_host::check(deployment, &mut findings);
        rules::admission::check(deployment, &mut findings);
        if let Some(facts) = extra.app {
            app::check(deployment, facts, &mut findings);
        }
    }
    for container in extra.live {
        rules::live::state_findings(container, &mut findings);
    }
    CheckReport::new(
        source,
        specs.iter().map(|s| s.name.clone()).collect(),
        findings.into_sorted(),
    )
}

/// Whether SELinux is enforcing on this host.
pub fn selinux_enforcing() -> bool {
    std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok_and(|v| v.trim() == "1")
}

/// Compose file names Docker Compose looks for in a folder, in its order.
const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// The containers of the deployment in `dir`, when it holds one: flowerbed's model from
/// flowerbed.json, else its compose file. `None` when there is none or it cannot be read.
pub fn deployment_specs(dir: &Path) -> Option<Vec<ContainerSpec>> {
    if dir.join(crate::deploy::SETTINGS_FILE).is_file() {
        return crate::deploy::load(dir)
            .ok()
            .map(|deployment| model::specs(&deployment));
    }
    COMPOSE_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .and_then(|path| compose::read(&[path]).ok().map(|(specs, _)| specs))
}

/// The names the deployment's TLS clients dial the superlink by, which its certificate
/// must cover (the same selection the TLS rules judge it by).
pub fn superlink_names(specs: &[ContainerSpec]) -> Vec<SubjectName> {
    match rules::superlink_clients(specs) {
        Some((superlink, clients)) if rules::uses_tls(superlink) => rules::dialed_names(superlink, &clients),
        _ => Vec::new(),
    }
}
