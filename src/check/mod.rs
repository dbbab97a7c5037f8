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

/// Run every rule over `specs`.
pub fn run(source: String, specs: &[ContainerSpec], settings: &CheckSettings) -> CheckReport {
    let mut findings = Vec::new();
    for spec in specs {
        rules::check_container(spec, settings, &mut findings);
    }
    rules::check_tls(specs, settings, &mut findings);
    findings.sort_by(|a, b| a.service.cmp(&b.service).then(b.severity.cmp(&a.severity)));
    CheckReport::new(source, specs.iter().map(|s| s.name.clone()).collect(), findings)
}

/// Whether SELinux is enforcing on this host.
pub fn selinux_enforcing() -> bool {
    std::fs::read_to_string("/sys/fs/selinux/enforce").is_ok_and(|v| v.trim() == "1")
}
