//! What a bundle records about the superlink: the names its server certificate covers and
//! the fingerprints that tie the bundle's CA to it, so `check` on the supernode's host can
//! tell whether the address it dials is covered, without the server's key or certificate.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};

use crate::deploy::Settings;
use crate::tls::material::{self, fingerprint};
use crate::tls::{Layout, LayoutKind, SubjectName, layout};

/// The file in the bundle's folder that holds [`SuperlinkCertificate`].
pub const METADATA_FILE: &str = "superlink-certificate.json";

/// The recorded facts about the superlink's server certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuperlinkCertificate {
    /// DNS names and IP addresses the server certificate covers (its SANs).
    pub names: Vec<String>,
    /// SHA-256 of the server certificate (DER), to match it against the live one.
    pub server_certificate_sha256: String,
    /// SHA-256 of the CA certificate (DER) that issued it: the one in the bundle.
    pub ca_certificate_sha256: String,
    /// End of the server certificate's validity (RFC 3339).
    pub not_after: String,
}

impl SuperlinkCertificate {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("metadata serializes");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| anyhow!("not a {METADATA_FILE} ({err})"))
    }
}

/// Where the bundle's CA certificate sits below its folder (the split layout's).
pub fn ca_path_in_bundle() -> String {
    format!("{}/{}", layout::SUPERNODE_DIR, layout::CA_CERT)
}

/// The superlink deployment's CA certificate (PEM, to ship), the facts about its server
/// certificate, and the names that certificate covers.
pub fn certificate_facts(
    dir: &Path,
    saved: &Settings,
) -> Result<(Vec<u8>, SuperlinkCertificate, Vec<SubjectName>)> {
    let layout = Layout::detect(dir).unwrap_or_else(|| Layout::new(dir, LayoutKind::from(saved.cert_layout)));
    let ca_path = layout.supernode_ca_cert();
    let ca_pem = std::fs::read(&ca_path).with_context(|| format!("{}: cannot read", ca_path.display()))?;
    let ca_der = material::read_certificate(&ca_path)?;
    let server_path = layout.server_cert();
    let server_der = material::read_certificate(&server_path).with_context(|| {
        format!(
            "the server certificate's names go into the bundle (run as root if {} belongs to the container user)",
            server_path.display()
        )
    })?;
    let server = material::parse_certificate(&server_der)?;
    let names = material::subject_names(&server);
    let not_after = server.validity().not_after.to_datetime();
    let facts = SuperlinkCertificate {
        names: names.iter().map(ToString::to_string).collect(),
        server_certificate_sha256: fingerprint(&server_der),
        ca_certificate_sha256: fingerprint(&ca_der),
        not_after: material::format_time(not_after),
    };
    Ok((ca_pem, facts, names))
}
