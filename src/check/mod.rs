//! `check`: will this deployment start? Host-side rules over the containers a deployment
//! runs, read from flowerbed's own model, a compose file, a `docker run` script, or live
//! containers.

pub mod compose;
pub mod compose_files;
pub mod cross_host;
pub mod live;
pub mod model;
pub mod perm;
pub mod report;
pub mod rules;
pub mod script;
pub mod spec;

pub use report::CheckReport;
pub use rules::{CheckSettings, Finding, IdShift};
pub use spec::ContainerSpec;

/// What the rules read besides the containers' specs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extra<'a> {
    /// flowerbed's own model, for the cross-host rules.
    pub deployment: Option<&'a crate::deploy::Deployment>,
    /// Live containers, for their state and logs.
    pub live: &'a [crate::docker::LiveContainer],
}

/// Run every rule (per container, TLS, cross-host, live) and sort the findings once.
pub fn run(
    source: String,
    specs: &[ContainerSpec],
    extra: Extra<'_>,
    settings: &CheckSettings,
) -> CheckReport {
    let mut findings = Vec::new();
    for spec in specs {
        rules::check_container(spec, settings, &mut findings);
    }
    rules::check_tls(specs, settings, &mut findings);
    if let Some(deployment) = extra.deployment {
        // Across hosts: public addresses (superlink) and the address dialed (supernode).
        cross_host::check(deployment, &mut findings);
    }
    for container in extra.live {
        live::state_findings(container, &mut findings);
    }
    findings.sort_by(|a, b| a.service.cmp(&b.service).then(b.severity.cmp(&a.severity)));
    CheckReport::new(source, specs.iter().map(|s| s.name.clone()).collect(), findings)
}

/// Whether SELinux is enforcing on this host.
pub fn selinux_enforcing() -> bool {
    std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok_and(|v| v.trim() == "1")
}
