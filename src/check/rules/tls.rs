//! TLS rules over the whole deployment: both sides of each link agree on TLS (per
//! release: which links can be TLS at all), CA files hold a certificate, and the superlink's
//! certificate chains to the CA its clients trust, matches its key, is in date and covers
//! the names they dial.

use std::path::{Path, PathBuf};

use super::super::spec::{Component, ContainerSpec};
use super::{CheckSettings, Finding, Findings, Out, deployment_root, quote};
use crate::hints;
use crate::tls::names::SubjectName;
use crate::tls::verify::Severity;

/// Of those, the ones naming the CA certificate a component trusts.
pub(super) const CA_FLAGS: [&str; 2] = ["--root-certificates", "--ssl-ca-certfile"];
/// A CA file must hold a certificate: garbage, an empty file, a private key or a file far
/// too large for one makes every TLS handshake fail. Unreadable to us (after `own` it may
/// be the container's alone) is left to the TLS rules, which say so.
pub(super) fn ca_certificate(out: &mut Out<'_>, host: &Path, flag: &str) {
    if std::fs::File::open(host).is_err() {
        return;
    }
    if let Err(err) = crate::tls::material::read_certificate(host) {
        let message = format!("{err:#}");
        let reason = message
            .strip_prefix(&format!("{}: ", host.display()))
            .unwrap_or(&message)
            .to_string();
        out.add(
            "ca-unreadable",
            Severity::Error,
            Some(host),
            format!("{flag} names this file as the CA certificate, but it is not one: {reason}"),
            Some(format!(
                "copy the CA's ca.crt here ({} writes it)",
                hints::certs_generate_bare()
            )),
        );
    }
}

/// The address a component dials for the superlink, and the host part of it.
pub(crate) fn dial_host(address: &str) -> Option<String> {
    let without_scheme = address.split("://").last().unwrap_or(address);
    if let Some(rest) = without_scheme.strip_prefix('[') {
        return rest.split(']').next().map(str::to_string);
    }
    Some(
        without_scheme
            .rsplit_once(':')
            .map_or(without_scheme, |(host, _)| host)
            .to_string(),
    )
}

/// The superlink and each component that dials it, with the host it dials: supernodes by
/// `--superlink`, app runners by their API address when that names the superlink.
pub(crate) fn superlink_clients(
    specs: &[ContainerSpec],
) -> Option<(&ContainerSpec, Vec<(&ContainerSpec, String)>)> {
    let superlink = specs.iter().find(|s| s.role == Some(Component::Superlink))?;
    let clients = specs
        .iter()
        .filter_map(|spec| {
            let address = match spec.role? {
                Component::Supernode => spec.flag_value("--superlink"),
                Component::Superexec | Component::Serverapp => [
                    "--runtime-api-address",
                    "--appio-api-address",
                    "--serverappio-api-address",
                ]
                .into_iter()
                .find_map(|flag| spec.flag_value(flag)),
                _ => None,
            }?;
            let host = dial_host(address)?;
            let dials_superlink =
                spec.role == Some(Component::Supernode) || host == superlink.name || superlink_aliases(&host);
            dials_superlink.then_some((spec, host))
        })
        .collect();
    Some((superlink, clients))
}

/// The names the superlink's certificate must cover: each host a TLS client dials it by,
/// and 127.0.0.1 when its own subprocesses dial it; each once, in the order found.
pub(crate) fn dialed_names(
    superlink: &ContainerSpec,
    clients: &[(&ContainerSpec, String)],
) -> Vec<SubjectName> {
    let mut names: Vec<SubjectName> = Vec::new();
    let subprocess = superlink
        .flag_value("--isolation")
        .is_none_or(|mode| mode == "subprocess");
    let loopback = subprocess.then(|| SubjectName::parse("127.0.0.1").expect("valid"));
    let dialed = clients
        .iter()
        .filter(|(client, _)| uses_tls(client))
        .filter_map(|(_, host)| SubjectName::parse(host).ok());
    // The superlink's own superexec children dial 127.0.0.1.
    for name in dialed.chain(loopback) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Whether a component speaks TLS (it is not started with `--insecure`).
pub(crate) fn uses_tls(spec: &ContainerSpec) -> bool {
    !spec.has_flag("--insecure")
}

/// Deployment-wide TLS rules: both sides agree on TLS, and the superlink's certificate is
/// one every client would accept under the name it dials.
pub fn check_tls(specs: &[ContainerSpec], settings: &CheckSettings, findings: &mut Findings) {
    let Some((superlink, clients)) = superlink_clients(specs) else {
        return;
    };
    let superlink_tls = uses_tls(superlink);
    for (client, _) in &clients {
        if let Some(finding) = tls_mismatch(superlink, client) {
            findings.push(finding);
        }
    }
    if !superlink_tls {
        return;
    }
    let (Some(cert), Some(key)) = (
        superlink
            .flag_value("--ssl-certfile")
            .and_then(|v| superlink.host_path(v))
            .map(|(_, p)| p),
        superlink
            .flag_value("--ssl-keyfile")
            .and_then(|v| superlink.host_path(v))
            .map(|(_, p)| p),
    ) else {
        return;
    };
    let names = dialed_names(superlink, &clients);
    // Check against every CA a client trusts (one per distinct file).
    let mut cas: Vec<(String, PathBuf)> = clients
        .iter()
        .filter_map(|(client, _)| {
            let ca = client.flag_value("--root-certificates")?;
            Some((client.name.clone(), client.host_path(ca)?.1))
        })
        .collect();
    let server_ca = superlink
        .flag_value("--ssl-ca-certfile")
        .and_then(|v| superlink.host_path(v))
        .map(|(_, path)| path);
    if cas.is_empty() {
        if let Some(ca) = &server_ca {
            cas.push((superlink.name.clone(), ca.clone()));
        }
    }
    let served = Served {
        server: superlink,
        cert: &cert,
        key: &key,
        names: &names,
    };
    verify_served(&served, cas, settings, findings, |id, path, ca| match id {
        "expired" | "expiring" if path == ca => Some(new_ca_fix(&cert, &names)),
        "name-not-covered" | "expired" | "expiring" => Some(renew_fix(&cert, &names)),
        "chain-issuer" | "chain-signature" => trusted_ca_fix(&cert, ca, server_ca.as_deref()),
        _ => None,
    });
}

/// A TLS server's certificate and key, and the names its clients dial it by.
pub(super) struct Served<'a> {
    pub server: &'a ContainerSpec,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub names: &'a [SubjectName],
}

/// Verify `served` as each client in `cas` (client name, host path of the CA it trusts)
/// would: chain, key match, dates and names. `fix(id, path, ca)` gives a finding's fix.
pub(super) fn verify_served(
    served: &Served<'_>,
    mut cas: Vec<(String, PathBuf)>,
    settings: &CheckSettings,
    findings: &mut Findings,
    fix: impl Fn(&str, &Path, &Path) -> Option<String>,
) {
    let (cert, key) = (served.cert, served.key);
    cas.sort_by(|a, b| a.1.cmp(&b.1));
    cas.dedup_by(|a, b| a.1 == b.1);
    for (client, ca) in cas {
        if !(ca.is_file() && cert.is_file() && key.is_file()) {
            continue; // missing files are their own findings
        }
        // After `own`, only the container's UID (and root) may read the key: that is right,
        // and not a finding, but it means we cannot look inside.
        let unreadable = [ca.as_path(), cert, key]
            .into_iter()
            .find(|path| nix::unistd::access(*path, nix::unistd::AccessFlags::R_OK).is_err());
        if let Some(path) = unreadable {
            findings.add(
                "tls-not-verified",
                Some(Severity::Warning),
                &served.server.name,
                Some(path),
                format!(
                    "not readable by UID {}, so chain, key match, expiry and names were not checked",
                    nix::unistd::geteuid()
                ),
                Some(format!("run the check as root ({})", hints::check_as_root())),
            );
            continue;
        }
        let verify_settings = crate::tls::verify::VerifySettings {
            ca_path: ca.clone(),
            cert_path: cert.to_path_buf(),
            key_path: Some(key.to_path_buf()),
            ca_copies: Vec::new(),
            names: served.names.to_vec(),
            warn_days: settings.warn_days,
        };
        match crate::tls::verify::verify(&verify_settings) {
            Ok(report) => {
                for finding in report.findings {
                    findings.add(
                        finding.id,
                        Some(finding.severity),
                        &served.server.name,
                        Some(finding.path.as_path()),
                        format!("{} (as trusted by {client})", finding.message),
                        fix(finding.id, &finding.path, &ca),
                    );
                }
            }
            Err(err) => findings.add(
                "tls-unreadable",
                Some(Severity::Error),
                &served.server.name,
                Some(cert),
                format!("{err:#}"),
                None,
            ),
        }
    }
}

/// Whether `client` and the superlink agree on TLS for the link between them. Supernodes
/// dial the Fleet API, which can always be TLS. App runners dial the ServerAppIo / Runtime
/// API, whose TLS depends on the release: none in 1.13 and 1.21, `--appio-ssl-*` in 1.35,
/// the `--ssl-*` flags from 1.41 on.
fn tls_mismatch(superlink: &ContainerSpec, client: &ContainerSpec) -> Option<Finding> {
    let client_tls = uses_tls(client);
    let finding = |severity, message: String, fix: &str| {
        Finding::new(
            "tls-mismatch",
            Some(severity),
            &client.name,
            None,
            message,
            Some(fix.to_string()),
        )
    };
    if client.role == Some(Component::Supernode) {
        let superlink_tls = uses_tls(superlink);
        return (client_tls != superlink_tls).then(|| {
            if superlink_tls {
                finding(
                    Severity::Error,
                    "runs with --insecure but the superlink serves TLS: it will retry forever".into(),
                    "replace --insecure with --root-certificates pointing at the CA",
                )
            } else {
                finding(
                    Severity::Error,
                    "expects TLS but the superlink runs with --insecure: it will retry forever".into(),
                    "use --insecure on both sides, or TLS on both",
                )
            }
        });
    }
    let Some(profile) = client.profile.or(superlink.profile) else {
        // A release we cannot name: whether this link can be TLS at all is unknown (it
        // cannot before 1.35), so a difference is worth a look but not a failure.
        let superlink_tls = uses_tls(superlink);
        return (client_tls != superlink_tls).then(|| {
            finding(
                Severity::Warning,
                format!(
                    "{} but the superlink {}; whether this release's ServerApp link can use TLS is unknown (it cannot before Flower 1.35), so this may be right",
                    if client_tls { "expects TLS" } else { "runs with --insecure" },
                    if superlink_tls { "serves TLS" } else { "runs with --insecure" },
                ),
                "name the release in the image tag (flwr/superexec:1.42.0) to have this checked",
            )
        });
    };
    let served_tls = uses_tls(superlink)
        && profile
            .superlink_app_io_tls_flag()
            .is_some_and(|flag| superlink.has_flag(flag));
    if client_tls == served_tls {
        return None;
    }
    let version = profile.version;
    Some(if !profile.app_io_can_be_tls() {
        finding(
            Severity::Error,
            format!(
                "expects TLS, but in Flower {version} the ServerApp link has no TLS: the component refuses to start without --insecure"
            ),
            "add --insecure (and drop --root-certificates)",
        )
    } else if client_tls {
        finding(
            Severity::Error,
            format!(
                "expects TLS but the superlink serves its ServerApp API (Flower {version}) in plain text: it will retry forever"
            ),
            if profile.superlink_app_io_tls_flag() == Some("--appio-ssl-certfile") {
                "give the superlink --appio-ssl-ca-certfile, --appio-ssl-certfile and --appio-ssl-keyfile, or use --insecure on both sides"
            } else {
                "use --insecure on both sides, or TLS on both"
            },
        )
    } else {
        finding(
            Severity::Error,
            format!(
                "runs with --insecure but the superlink serves its ServerApp API (Flower {version}) over TLS: it will retry forever"
            ),
            "replace --insecure with --root-certificates pointing at the CA",
        )
    })
}

fn superlink_aliases(host: &str) -> bool {
    host.contains("superlink")
}

/// A client trusts a CA that did not issue the server certificate: copy over the one that
/// did, when the deployment holds it (the superlink's copy, or the CA folder).
fn trusted_ca_fix(cert: &Path, trusted: &Path, server_ca: Option<&Path>) -> Option<String> {
    use crate::tls::material::{parse_certificate, read_certificate};
    let cert_der = read_certificate(cert).ok()?;
    let server = parse_certificate(&cert_der).ok()?;
    let folder = cert.parent().unwrap_or(Path::new("."));
    let candidates = [
        server_ca.map(Path::to_path_buf),
        Some(super::deployment_root(folder).join("ca/ca.crt")),
    ];
    let issuer = candidates.into_iter().flatten().find(|path| {
        path != trusted
            && read_certificate(path).is_ok_and(|der| {
                parse_certificate(&der).is_ok_and(|ca| {
                    server.issuer() == ca.subject() && server.verify_signature(Some(ca.public_key())).is_ok()
                })
            })
    })?;
    Some(format!("cp {} {}", super::quote(&issuer), super::quote(trusted)))
}

/// The command that gives `cert` a fresh certificate covering `names`: `certs renew` (same
/// CA, current names kept, so supernodes need nothing new) where the CA is at hand, which is
/// flowerbed's layout (`ca/` beside the certificate folders) or Flower's own (`ca.key` beside
/// `server.pem`).
pub fn renew_fix(cert: &Path, names: &[SubjectName]) -> String {
    let folder = cert.parent().unwrap_or(Path::new("."));
    let root = deployment_root(folder);
    let target = if root.join("ca/ca.key").is_file() {
        root
    } else {
        folder
    };
    hints::certs_renew(&quote(target), &extra_names(names))
}

/// For a CA that has expired (or soon will): a new CA and certificate, which every
/// supernode must then be given.
fn new_ca_fix(cert: &Path, names: &[SubjectName]) -> String {
    let folder = cert.parent().unwrap_or(Path::new("."));
    let root = deployment_root(folder);
    let command = if root.join("ca/ca.key").is_file() {
        hints::certs_generate_new_ca(&quote(root), false, &extra_names(names))
    } else {
        hints::certs_generate_new_ca(&quote(folder), true, &extra_names(names))
    };
    format!("{command} (a new CA: give every supernode the new ca.crt)")
}

/// The names beyond the defaults every certificate covers, each one shell word.
fn extra_names(names: &[SubjectName]) -> Vec<String> {
    names
        .iter()
        .map(ToString::to_string)
        .filter(|name| !crate::tls::layout::DEFAULT_NAMES.contains(&name.as_str()))
        .map(|name| shlex::try_quote(&name).unwrap_or_default().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_hosts() {
        assert_eq!(dial_host("superlink:9092").as_deref(), Some("superlink"));
        assert_eq!(dial_host("https://[::1]:8000").as_deref(), Some("::1"));
        assert_eq!(dial_host("10.0.0.1").as_deref(), Some("10.0.0.1"));
    }
}
