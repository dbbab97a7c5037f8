//! `certs verify`: will a supernode that trusts this CA accept this superlink?
//!
//! Each check is a small function that adds findings; a finding of severity `error` means
//! the handshake (or the superlink's start) would fail, `warning` means it will soon.

use std::path::PathBuf;

use anyhow::Result;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use super::material;
use super::names::SubjectName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub path: PathBuf,
    pub message: String,
}

/// The files and names to verify.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// The CA the supernodes trust (`--root-certificates`).
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    /// The superlink's private key; without it (a supernode operator never has it) the
    /// chain, dates and names are verified, not the key match.
    pub key_path: Option<PathBuf>,
    /// Other copies of the CA that must be identical (the superlink's `--ssl-ca-certfile`).
    pub ca_copies: Vec<PathBuf>,
    pub names: Vec<SubjectName>,
    pub warn_days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ca: PathBuf,
    pub cert: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    pub names: Vec<SubjectName>,
    pub ok: bool,
    pub findings: Vec<Finding>,
}

/// Read the three files (errors are bad input) and run every check.
pub fn verify(settings: &VerifySettings) -> Result<VerifyReport> {
    let ca_der = material::read_certificate(&settings.ca_path)?;
    let cert_der = material::read_certificate(&settings.cert_path)?;
    let key = settings
        .key_path
        .as_deref()
        .map(material::read_private_key)
        .transpose()?;
    let copies = settings
        .ca_copies
        .iter()
        .map(|path| Ok((path.clone(), material::read_certificate(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let ca = material::parse_certificate(&ca_der)?;
    let cert = material::parse_certificate(&cert_der)?;
    let now = OffsetDateTime::now_utc();

    let mut checks = Checks {
        settings,
        findings: Vec::new(),
    };
    checks.ca_is_ca(&ca);
    checks.ca_copies_match(&ca_der, &copies);
    let chained = checks.chains_to_ca(&cert, &ca);
    if let Some(key) = &key {
        checks.key_matches(key, &cert);
    }
    let in_date =
        checks.validity(&settings.ca_path, &ca, now) & checks.validity(&settings.cert_path, &cert, now);
    checks.server_usage(&cert);
    checks.names_covered(&cert);
    if chained && in_date {
        checks.webpki_accepts(&ca_der, &cert_der, now);
    }
    let mut findings = checks.findings;
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    Ok(VerifyReport {
        ca: settings.ca_path.clone(),
        cert: settings.cert_path.clone(),
        key: settings.key_path.clone(),
        names: settings.names.clone(),
        ok: !findings.iter().any(|f| f.severity == Severity::Error),
        findings,
    })
}

struct Checks<'s> {
    settings: &'s VerifySettings,
    findings: Vec<Finding>,
}

impl Checks<'_> {
    fn add(&mut self, id: &'static str, severity: Severity, path: &std::path::Path, message: String) {
        self.findings.push(Finding {
            id,
            severity,
            path: path.to_path_buf(),
            message,
        });
    }

    fn ca_is_ca(&mut self, ca: &X509Certificate<'_>) {
        let path = self.settings.ca_path.clone();
        if !ca.is_ca() {
            self.add(
                "ca-not-ca",
                Severity::Error,
                &path,
                "not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
            );
            return;
        }
        if let Ok(Some(usage)) = ca.key_usage() {
            if !usage.value.key_cert_sign() {
                self.add(
                    "ca-key-usage",
                    Severity::Error,
                    &path,
                    "CA key usage lacks keyCertSign, so it may not sign certificates".into(),
                );
            }
        }
    }

    fn ca_copies_match(&mut self, ca_der: &[u8], copies: &[(PathBuf, Vec<u8>)]) {
        for (path, der) in copies {
            if der != ca_der {
                let message = format!(
                    "differs from {} (the superlink and the supernodes must trust the same CA)",
                    self.settings.ca_path.display()
                );
                self.add("ca-copy-mismatch", Severity::Error, path, message);
            }
        }
    }

    fn chains_to_ca(&mut self, cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
        let path = self.settings.cert_path.clone();
        if cert.issuer() != ca.subject() {
            let message = format!(
                "issued by \"{}\", not by the CA \"{}\" in {}",
                cert.issuer(),
                ca.subject(),
                self.settings.ca_path.display()
            );
            self.add("chain-issuer", Severity::Error, &path, message);
            return false;
        }
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            let message = format!(
                "signature does not verify with the key of {}",
                self.settings.ca_path.display()
            );
            self.add("chain-signature", Severity::Error, &path, message);
            return false;
        }
        true
    }

    fn key_matches(&mut self, key: &rcgen::KeyPair, cert: &X509Certificate<'_>) {
        if !material::key_matches_certificate(key, cert) {
            let path = self.settings.key_path.clone().unwrap_or_default();
            let message = format!("does not belong to {}", self.settings.cert_path.display());
            self.add("key-mismatch", Severity::Error, &path, message);
        }
    }

    /// Returns whether `cert` is valid now.
    fn validity(&mut self, path: &std::path::Path, cert: &X509Certificate<'_>, now: OffsetDateTime) -> bool {
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        if now < not_before {
            self.add(
                "not-yet-valid",
                Severity::Error,
                path,
                format!("not valid before {}", material::format_time(not_before)),
            );
            return false;
        }
        if now > not_after {
            self.add(
                "expired",
                Severity::Error,
                path,
                format!("expired on {}", material::format_time(not_after)),
            );
            return false;
        }
        let days_left = (not_after - now).whole_days();
        if days_left < i64::from(self.settings.warn_days) {
            self.add(
                "expiring",
                Severity::Warning,
                path,
                format!("expires in {days_left} days, on {}", not_after.date()),
            );
        }
        true
    }

    fn server_usage(&mut self, cert: &X509Certificate<'_>) {
        let path = self.settings.cert_path.clone();
        if cert.is_ca() {
            self.add(
                "server-is-ca",
                Severity::Warning,
                &path,
                "the server certificate is itself a CA certificate".into(),
            );
        }
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            if !eku.value.server_auth && !eku.value.any {
                self.add(
                    "server-eku",
                    Severity::Error,
                    &path,
                    "extended key usage lacks serverAuth, so TLS clients refuse it".into(),
                );
            }
        }
    }

    fn names_covered(&mut self, cert: &X509Certificate<'_>) {
        let have = material::subject_names(cert);
        let path = self.settings.cert_path.clone();
        for wanted in &self.settings.names {
            if !have.iter().any(|san| san.covers(wanted)) {
                let listed = have
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "no subject alternative name covers {wanted} (it has: {}); a supernode dialing {wanted} will refuse it",
                    if listed.is_empty() { "none" } else { &listed }
                );
                self.add("name-not-covered", Severity::Error, &path, message);
            }
        }
    }

    /// A full path validation as a TLS client library does it, to catch what the
    /// individual checks do not (unsupported algorithms, malformed extensions, ...).
    fn webpki_accepts(&mut self, ca_der: &[u8], cert_der: &[u8], now: OffsetDateTime) {
        let ca_der = CertificateDer::from(ca_der);
        let cert_der = CertificateDer::from(cert_der);
        let result = webpki::anchor_from_trusted_cert(&ca_der).and_then(|anchor| {
            let end_entity = webpki::EndEntityCert::try_from(&cert_der)?;
            let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
            end_entity
                .verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &[anchor],
                    &[],
                    UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
                    webpki::KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map(|_| ())
        });
        if let Err(err) = result {
            let path = self.settings.cert_path.clone();
            self.add(
                "chain-rejected",
                Severity::Error,
                &path,
                format!("a TLS client would reject the chain: {err}"),
            );
        }
    }
}
