//! The runner links of process isolation, per release: a ClientApp runner and the
//! supernode whose Runtime (ClientAppIo) API it dials agree on TLS, TLS is asked only where
//! the release has it, and a link the release could encrypt is not left plain in a
//! deployment that otherwise uses TLS. The ServerApp runner's link to the superlink is
//! checked for agreement by `tls-mismatch` (tls.rs); here only for being left plain.

use std::path::Path;

use super::super::spec::{Component, ContainerSpec};
use super::tls::{Served, verify_served};
use super::{CheckSettings, Finding, Findings, dial_host, quote};
use crate::deploy::Profile;
use crate::hints;
use crate::tls::names::SubjectName;
use crate::tls::verify::Severity;

/// The flags that address an app runner's Runtime API, newest first.
const ADDRESS_FLAGS: [&str; 4] = [
    "--runtime-api-address",
    "--appio-api-address",
    "--clientappio-api-address",
    "--serverappio-api-address",
];

fn uses_tls(spec: &ContainerSpec) -> bool {
    !spec.has_flag("--insecure")
}

/// Whether `name` (a Compose service, or a `docker run` container `PROJECT-NAME`) is `host`.
fn is_host(spec: &ContainerSpec, host: &str) -> bool {
    spec.name == host || spec.name.ends_with(&format!("-{host}"))
}

fn runner_address(spec: &ContainerSpec) -> Option<String> {
    matches!(
        spec.role,
        Some(Component::Superexec | Component::Clientapp | Component::Serverapp)
    )
    .then(|| ADDRESS_FLAGS.iter().find_map(|flag| spec.flag_value(flag)))
    .flatten()
    .and_then(dial_host)
}

pub fn check_runtime_links(specs: &[ContainerSpec], settings: &CheckSettings, findings: &mut Findings) {
    for runner in specs {
        let Some(host) = runner_address(runner) else {
            continue;
        };
        if let Some(supernode) = specs
            .iter()
            .find(|spec| spec.role == Some(Component::Supernode) && is_host(spec, &host))
        {
            match supernode_link(supernode, runner) {
                Some(finding) => findings.push(finding),
                None => verify_runtime_certificate(supernode, runner, &host, settings, findings),
            }
        } else if let Some(superlink) = specs
            .iter()
            .find(|spec| spec.role == Some(Component::Superlink) && is_host(spec, &host))
        {
            if let Some(finding) = superlink_link_plain(superlink, runner) {
                findings.push(finding);
            }
        }
    }
}

/// The TLS server flag the supernode gives its Runtime API, if any (any release's name
/// when the release is unknown).
fn serves_tls(supernode: &ContainerSpec, profile: Option<&Profile>) -> bool {
    match profile {
        Some(profile) => profile
            .supernode_runtime_tls_flags()
            .is_some_and(|[_, cert, _]| supernode.has_flag(cert)),
        None => ["--ssl-certfile", "--appio-ssl-certfile"]
            .iter()
            .any(|flag| supernode.has_flag(flag)),
    }
}

fn supernode_link(supernode: &ContainerSpec, runner: &ContainerSpec) -> Option<Finding> {
    let profile = runner.profile.or(supernode.profile);
    let runner_tls = uses_tls(runner);
    let served_tls = serves_tls(supernode, profile);
    let finding = |id, severity, service: &ContainerSpec, message: String, fix: String| {
        Some(Finding::new(
            id,
            Some(severity),
            &service.name,
            None,
            message,
            Some(fix),
        ))
    };
    let Some(profile) = profile else {
        return (runner_tls != served_tls).then(|| {
            Finding::new(
                "tls-mismatch",
                Some(Severity::Warning),
                &runner.name,
                None,
                format!(
                    "{} but {} serves its Runtime API {}; the release is unknown, so this is not checked further",
                    if runner_tls { "expects TLS" } else { "runs with --insecure" },
                    supernode.name,
                    if served_tls { "over TLS" } else { "in plain text" },
                ),
                Some("name the release in the image tag (flwr/superexec:1.42.0) to have this checked".into()),
            )
        });
    };
    let version = profile.version;
    if !profile.supernode_runtime_can_be_tls() {
        if runner_tls {
            return finding(
                "tls-unsupported",
                Severity::Error,
                runner,
                format!(
                    "expects TLS on its link to {}, but in Flower {version} the ClientApp runner has no TLS: it refuses to start without --insecure",
                    supernode.name
                ),
                "add --insecure (and drop --root-certificates)".into(),
            );
        }
        return None;
    }
    let [ca, cert, key] = profile.supernode_runtime_tls_flags()?;
    match (runner_tls, served_tls) {
        (true, false) => finding(
            "tls-mismatch",
            Severity::Error,
            runner,
            format!(
                "expects TLS but {} serves its Runtime API (Flower {version}) in plain text: it will retry forever",
                supernode.name
            ),
            format!(
                "give {} {ca}, {cert} and {key} (a certificate for the name {}), or use --insecure here",
                supernode.name,
                dial_host(&runner_address(runner)?)?
            ),
        ),
        (false, true) => finding(
            "tls-mismatch",
            Severity::Error,
            runner,
            format!(
                "runs with --insecure but {} serves its Runtime API (Flower {version}) over TLS: it will retry forever",
                supernode.name
            ),
            "replace --insecure with --root-certificates pointing at the CA".into(),
        ),
        // Plain on purpose in an `--insecure` deployment; left plain in a TLS one.
        (false, false) if uses_tls(supernode) => finding(
            "link-left-plain",
            Severity::Warning,
            runner,
            format!(
                "talks to {}'s Runtime API in plain text, though Flower {version} can encrypt this link",
                supernode.name
            ),
            format!(
                "give {} {ca}, {cert} and {key} with a certificate for its service name, and replace this runner's --insecure with --root-certificates ({} issues both)",
                supernode.name,
                hints::quickstart_bare()
            ),
        ),
        _ => None,
    }
}

/// A TLS link the two sides agree on: the supernode's Runtime certificate must chain to
/// the CA the runner trusts, match its key, be in date and cover the name the runner dials.
fn verify_runtime_certificate(
    supernode: &ContainerSpec,
    runner: &ContainerSpec,
    host: &str,
    settings: &CheckSettings,
    findings: &mut Findings,
) {
    let profile = runner.profile.or(supernode.profile);
    let Some([_, cert_flag, key_flag]) = profile.and_then(Profile::supernode_runtime_tls_flags) else {
        return;
    };
    if !(uses_tls(runner) && serves_tls(supernode, profile)) {
        return;
    }
    let host_file = |spec: &ContainerSpec, flag: &str| {
        spec.flag_value(flag)
            .and_then(|value| spec.host_path(value))
            .map(|(_, path)| path)
    };
    let (Some(cert), Some(key), Some(trusted), Ok(name)) = (
        host_file(supernode, cert_flag),
        host_file(supernode, key_flag),
        host_file(runner, "--root-certificates"),
        SubjectName::parse(host),
    ) else {
        return;
    };
    let names = [name];
    let served = Served {
        server: supernode,
        cert: &cert,
        key: &key,
        names: &names,
    };
    // `DIR/supernode-runtime-certificates/supernode-N/server.pem`: a new set is issued by
    // `quickstart` on DIR once the old one is gone.
    let folder = cert.parent().unwrap_or(&cert);
    let root = folder.parent().and_then(Path::parent).unwrap_or(folder);
    let reissue = format!("rm -r {} && {}", quote(folder), hints::quickstart(&quote(root)));
    verify_served(
        &served,
        vec![(runner.name.clone(), trusted)],
        settings,
        findings,
        // A new set from the CA the runner trusts (quickstart also puts that CA's copy
        // back where the runners read it). A CA's own expiry is the TLS rules' to fix.
        |id, path, ca| match id {
            "expired" | "expiring" if path == ca => None,
            "chain-issuer" | "chain-signature" | "name-not-covered" | "expired" | "expiring"
            | "key-mismatch" => Some(reissue.clone()),
            _ => None,
        },
    );
}

/// A ServerApp runner left on `--insecure` while the superlink uses TLS and the release
/// could serve its Runtime API over TLS too (1.35 without `--appio-ssl-*`).
fn superlink_link_plain(superlink: &ContainerSpec, runner: &ContainerSpec) -> Option<Finding> {
    let profile = runner.profile.or(superlink.profile)?;
    let flag = profile.superlink_app_io_tls_flag()?;
    let plain = !uses_tls(runner) && !superlink.has_flag(flag);
    (plain && uses_tls(superlink) && profile.app_io_can_be_tls()).then(|| {
        Finding::new(
            "link-left-plain",
            Some(Severity::Warning),
            &runner.name,
            None,
            format!(
                "talks to {}'s Runtime API in plain text, though Flower {} can encrypt this link",
                superlink.name, profile.version
            ),
            Some(format!(
                "give {} {flag} (with its key and CA flags), and replace this runner's --insecure with --root-certificates",
                superlink.name
            )),
        )
    })
}
