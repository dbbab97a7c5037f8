//! `certs inspect`: what is inside certificates, keys and requests.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;
use x509_parser::prelude::FromDer;

use super::material::{self, BlockKind, KeyDescription};
use super::names::SubjectName;

/// One object found in a file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inspected {
    Certificate(Box<CertificateDetails>),
    PrivateKey(KeyDetails),
    CertificateRequest(RequestDetails),
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateDetails {
    pub path: PathBuf,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    pub names: Vec<SubjectName>,
    pub key: KeyDescription,
    pub signature_algorithm: String,
    pub sha256: String,
    pub is_ca: bool,
    pub self_signed: bool,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyDetails {
    pub path: PathBuf,
    pub key: KeyDescription,
    /// SHA-256 of the public key (SubjectPublicKeyInfo): equal for a key and its certificate.
    pub public_key_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestDetails {
    pub path: PathBuf,
    pub subject: String,
    pub key: KeyDescription,
}

/// Inspect every object in a file.
pub fn inspect_file(path: &Path) -> Result<Vec<Inspected>> {
    let blocks = material::read_blocks(path)?;
    blocks
        .iter()
        .map(|block| inspect_block(path, block.kind, &block.der))
        .collect::<Result<Vec<_>>>()
        .map_err(|err| err.context(format!("{}", path.display())))
}

/// Inspect one DER object (pure: used by the file reader and the fuzz targets).
pub fn inspect_block(path: &Path, kind: BlockKind, der: &[u8]) -> Result<Inspected> {
    Ok(match kind {
        BlockKind::Certificate => Inspected::Certificate(Box::new(certificate_details(path, der)?)),
        BlockKind::PrivateKey => {
            let key = material::parse_private_key(der)?;
            Inspected::PrivateKey(KeyDetails {
                path: path.to_path_buf(),
                key: material::describe_key(&key),
                public_key_sha256: material::fingerprint(&material::key_spki_der(&key)),
            })
        }
        BlockKind::CertificateRequest => {
            let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
                .map_err(|err| anyhow::anyhow!("malformed certificate request ({err})"))?;
            Inspected::CertificateRequest(RequestDetails {
                path: path.to_path_buf(),
                subject: csr.certification_request_info.subject.to_string(),
                key: material::describe_spki(&csr.certification_request_info.subject_pki),
            })
        }
    })
}

fn certificate_details(path: &Path, der: &[u8]) -> Result<CertificateDetails> {
    let cert = material::parse_certificate(der)?;
    let validity = cert.validity();
    let not_after = validity.not_after.to_datetime();
    let now = time::OffsetDateTime::now_utc();
    let key_usage = match cert.key_usage() {
        Ok(Some(ext)) => key_usage_names(ext.value),
        _ => Vec::new(),
    };
    let extended_key_usage = match cert.extended_key_usage() {
        Ok(Some(ext)) => extended_key_usage_names(ext.value),
        _ => Vec::new(),
    };
    Ok(CertificateDetails {
        path: path.to_path_buf(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: material::format_time(validity.not_before.to_datetime()),
        not_after: material::format_time(not_after),
        days_left: (not_after - now).whole_days(),
        names: material::subject_names(&cert),
        key: material::describe_spki(cert.public_key()),
        signature_algorithm: signature_name(&cert),
        sha256: material::fingerprint(der),
        is_ca: cert.is_ca(),
        self_signed: cert.subject() == cert.issuer(),
        key_usage,
        extended_key_usage,
    })
}

fn signature_name(cert: &x509_parser::prelude::X509Certificate<'_>) -> String {
    let oid = &cert.signature_algorithm.algorithm;
    x509_parser::oid_registry::OidRegistry::default()
        .with_crypto()
        .with_x509()
        .with_pkcs1()
        .get(oid)
        .map_or_else(|| oid.to_id_string(), |entry| entry.sn().to_string())
}

fn key_usage_names(usage: &x509_parser::extensions::KeyUsage) -> Vec<String> {
    [
        (usage.digital_signature(), "digitalSignature"),
        (usage.non_repudiation(), "nonRepudiation"),
        (usage.key_encipherment(), "keyEncipherment"),
        (usage.data_encipherment(), "dataEncipherment"),
        (usage.key_agreement(), "keyAgreement"),
        (usage.key_cert_sign(), "keyCertSign"),
        (usage.crl_sign(), "cRLSign"),
        (usage.encipher_only(), "encipherOnly"),
        (usage.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_string())
    .collect()
}

fn extended_key_usage_names(usage: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names = Vec::new();
    for (set, name) in [
        (usage.any, "any"),
        (usage.server_auth, "serverAuth"),
        (usage.client_auth, "clientAuth"),
        (usage.code_signing, "codeSigning"),
        (usage.email_protection, "emailProtection"),
        (usage.time_stamping, "timeStamping"),
        (usage.ocsp_signing, "OCSPSigning"),
    ] {
        if set {
            names.push(name.to_string());
        }
    }
    names.extend(usage.other.iter().map(x509_parser::der_parser::Oid::to_id_string));
    names
}
