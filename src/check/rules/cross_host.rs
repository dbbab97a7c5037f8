//! Rules for deployments split across hosts, from flowerbed's own model: on the superlink's
//! host, the server certificate covers every public address; on a supernode's host, the
//! names the bundle recorded for the server certificate cover the address the supernodes
//! dial, and the CA is the one that issued it.

use std::path::Path;

use super::{Findings, renew_fix};
use crate::bundle::{METADATA_FILE, SuperlinkCertificate};
use crate::deploy::{Deployment, DeploymentRole, Role, Security};
use crate::hints;
use crate::tls::layout::SERVER_CERT;
use crate::tls::material;
use crate::tls::names::SubjectName;
use crate::tls::verify::Severity;

/// Every cross-host rule that applies to `deployment`'s role.
pub fn check(deployment: &Deployment, findings: &mut Findings) {
    if deployment.security != Security::Tls {
        return;
    }
    match deployment.role {
        DeploymentRole::Superlink => public_addresses_covered(deployment, findings),
        DeploymentRole::Supernode => superlink_address_covered(deployment, findings),
        DeploymentRole::All => {}
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The superlink's server certificate names every public address.
fn public_addresses_covered(deployment: &Deployment, findings: &mut Findings) {
    let Some(superlink) = deployment
        .services
        .iter()
        .find(|service| service.role == Role::Superlink)
    else {
        return;
    };
    let Some(cert_path) = superlink
        .mounts
        .iter()
        .flat_map(|mount| mount.files().unwrap_or_default())
        .find(|file| file.name == SERVER_CERT)
        .map(|file| file.source)
    else {
        return;
    };
    // A missing or unreadable certificate is reported by the mount and TLS rules.
    let Ok(der) = material::read_certificate(&cert_path) else {
        return;
    };
    let Ok(cert) = material::parse_certificate(&der) else {
        return;
    };
    let covered = material::subject_names(&cert);
    let hosts: Vec<SubjectName> = deployment
        .public_addresses
        .iter()
        .map(|address| address.host.clone())
        .collect();
    let shown: Vec<String> = covered.iter().map(ToString::to_string).collect();
    for address in &deployment.public_addresses {
        if covered.iter().any(|name| name.covers(&address.host)) {
            continue;
        }
        findings.add(
            "public-address-not-covered",
            Some(Severity::Error),
            &superlink.name,
            Some(cert_path.as_path()),
            format!(
                "the server certificate does not cover the public address {address}, which supernodes on other hosts dial: their TLS handshake fails (it covers: {})",
                list(&shown)
            ),
            Some(renew_fix(&cert_path, &hosts)),
        );
    }
}

/// The supernodes dial a name the superlink's certificate covers, as the bundle recorded
/// it, and trust the CA that issued it.
fn superlink_address_covered(deployment: &Deployment, findings: &mut Findings) {
    let Some(supernode) = deployment
        .services
        .iter()
        .find(|service| matches!(service.role, Role::Supernode(_)))
    else {
        return;
    };
    let Some(address) = &deployment.superlink_address else {
        return;
    };
    let host = address.host.clone();
    let metadata_path = deployment.dir.join(METADATA_FILE);
    let metadata = match crate::fsutil::read_regular_text(
        &metadata_path,
        crate::fsutil::TEXT_LIMIT,
        crate::fsutil::Links::Refuse,
    ) {
        Ok(text) => SuperlinkCertificate::from_json(&text),
        Err(err) if err.is_not_found() => {
            findings.add(
                "superlink-names-unknown",
                Some(Severity::Warning),
                &supernode.name,
                Some(metadata_path.as_path()),
                format!(
                    "no record of the names the superlink's certificate covers, so whether it covers {host} was not checked"
                ),
                Some(format!(
                    "on the superlink's host: {} (or make this folder from a bundle: {})",
                    hints::certs_verify_name(&host.to_string()),
                    hints::bundle_supernode()
                )),
            );
            return;
        }
        Err(err) => Err(anyhow::Error::new(err)),
    };
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(err) => {
            findings.add(
                "superlink-names-unreadable",
                Some(Severity::Error),
                &supernode.name,
                Some(metadata_path.as_path()),
                format!("{err:#}"),
                Some(format!(
                    "make a new bundle on the superlink's host: {}",
                    hints::bundle_supernode()
                )),
            );
            return;
        }
    };
    let covered: Vec<SubjectName> = metadata
        .names
        .iter()
        .filter_map(|name| SubjectName::parse(name).ok())
        .collect();
    if !covered.iter().any(|name| name.covers(&host)) {
        findings.add(
                "superlink-address-not-covered",
                Some(Severity::Error),
                &supernode.name,
                Some(metadata_path.as_path()),
                format!(
                "the supernodes dial {address}, but the superlink's certificate does not cover {host}: the TLS handshake fails (it covers: {})",
                list(&metadata.names)
            ),
                Some(format!(
                "dial a name it covers ({}), or on the superlink's host add {} {host}, renew the certificate and make a new bundle",
                hints::flag::SUPERLINK_ADDRESS,
                hints::flag::PUBLIC_ADDRESS
            )),
            );
    }
    ca_matches(
        deployment,
        supernode.name.as_str(),
        &metadata,
        &metadata_path,
        findings,
    );
}

/// The CA the supernodes trust is the one the bundle recorded as the issuer.
fn ca_matches(
    deployment: &Deployment,
    service: &str,
    metadata: &SuperlinkCertificate,
    metadata_path: &Path,
    findings: &mut Findings,
) {
    let Some(ca_path) = deployment
        .services
        .iter()
        .flat_map(|service| &service.mounts)
        .flat_map(|mount| mount.files().unwrap_or_default())
        .map(|file| file.source)
        .next()
    else {
        return;
    };
    let Ok(der) = material::read_certificate(&ca_path) else {
        return; // reported by the mount and flag-file rules
    };
    let actual = material::fingerprint(&der);
    if actual != metadata.ca_certificate_sha256 {
        findings.add(
            "ca-mismatch",
            Some(Severity::Error),
            service,
            Some(ca_path.as_path()),
            format!(
                "not the CA that issued the superlink's certificate (SHA-256 {actual}; {} records {})",
                metadata_path.display(),
                metadata.ca_certificate_sha256
            ),
            Some("use the ca.crt from the superlink's bundle".into()),
        );
    }
}
