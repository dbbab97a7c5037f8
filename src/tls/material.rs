//! Reading certificates and private keys from PEM or DER files, and describing them.
//!
//! Parsing is kept in pure functions over bytes (`parse_blocks`, `describe_*`) so the
//! fuzz targets and the file readers share one code path.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use rcgen::{KeyPair, PublicKeyData};
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use super::names::SubjectName;
use crate::fsutil;

/// What kind of object a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    Certificate,
    PrivateKey,
    CertificateRequest,
}

/// One DER object from a file, with the PEM label it came under (if any).
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    pub der: Vec<u8>,
}

/// Split file contents into DER objects: PEM blocks in order, or one DER object.
pub fn parse_blocks(bytes: &[u8]) -> Result<Vec<Block>> {
    let text_start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    if bytes[text_start..].starts_with(b"-----BEGIN") {
        let mut blocks = Vec::new();
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|err| anyhow!("malformed PEM ({err})"))?;
            let kind = match pem.label.as_str() {
                "CERTIFICATE" | "TRUSTED CERTIFICATE" => BlockKind::Certificate,
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => BlockKind::PrivateKey,
                "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => BlockKind::CertificateRequest,
                "ENCRYPTED PRIVATE KEY" => {
                    bail!("encrypted private keys are not supported (decrypt it with openssl first)")
                }
                "EC PARAMETERS" => continue,
                other => bail!("unsupported PEM block {other:?}"),
            };
            blocks.push(Block {
                kind,
                der: pem.contents,
            });
        }
        if blocks.is_empty() {
            bail!("no PEM blocks found");
        }
        return Ok(blocks);
    }
    if bytes.is_empty() {
        bail!("empty file");
    }
    // DER: a certificate, else a private key.
    if X509Certificate::from_der(bytes).is_ok() {
        return Ok(vec![Block {
            kind: BlockKind::Certificate,
            der: bytes.to_vec(),
        }]);
    }
    if parse_private_key(bytes).is_ok() {
        return Ok(vec![Block {
            kind: BlockKind::PrivateKey,
            der: bytes.to_vec(),
        }]);
    }
    bail!("neither PEM nor a DER certificate or private key")
}

/// Read a regular file of at most 1 MiB and split it into blocks; errors name the file.
/// FIFOs, devices and directories are refused before anything is read from them.
pub fn read_blocks(path: &Path) -> Result<Vec<Block>> {
    let bytes = fsutil::read_regular(path, fsutil::CERTIFICATE_LIMIT, fsutil::Links::Follow)?;
    parse_blocks(&bytes).with_context(|| format!("{}: not a certificate or key", path.display()))
}

/// The first certificate in a file, as DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>> {
    let blocks = read_blocks(path)?;
    let block = blocks
        .into_iter()
        .find(|b| b.kind == BlockKind::Certificate)
        .ok_or_else(|| anyhow!("{}: holds no certificate", path.display()))?;
    X509Certificate::from_der(&block.der)
        .map_err(|err| anyhow!("{}: malformed certificate ({err})", path.display()))?;
    Ok(block.der)
}

/// The private key in a file.
pub fn read_private_key(path: &Path) -> Result<KeyPair> {
    let blocks = read_blocks(path)?;
    let block = blocks
        .into_iter()
        .find(|b| b.kind == BlockKind::PrivateKey)
        .ok_or_else(|| anyhow!("{}: holds no private key", path.display()))?;
    parse_private_key(&block.der).with_context(|| format!("{}: unreadable private key", path.display()))
}

/// A private key from DER (PKCS#8, SEC1 or PKCS#1).
///
/// ring loads PKCS#8 only: a SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) key is
/// wrapped in a PKCS#8 envelope first, unchanged inside; ring then checks all of it.
pub fn parse_private_key(der: &[u8]) -> Result<KeyPair> {
    use rustls_pki_types::PrivateKeyDer;
    let key_der = PrivateKeyDer::try_from(der)
        .map_err(|err| anyhow!("not a PKCS#8, SEC1 or PKCS#1 private key ({err})"))?;
    let wrapped = match &key_der {
        PrivateKeyDer::Sec1(sec1) => Some(sec1_as_pkcs8(sec1.secret_sec1_der())?),
        PrivateKeyDer::Pkcs1(pkcs1) => Some(pkcs1_as_pkcs8(pkcs1.secret_pkcs1_der())?),
        _ => None,
    };
    let loaded = match &wrapped {
        Some(pkcs8) => KeyPair::try_from(pkcs8.as_slice()),
        None => KeyPair::try_from(&key_der),
    };
    loaded.map_err(|err| anyhow!("unsupported or malformed private key ({err})"))
}

/// OID of `id-ecPublicKey` (RFC 5480) and of `rsaEncryption` (RFC 8017).
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const P256: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A SEC1 key in PKCS#8; the curve comes from the key's parameters, or from the length of
/// its private scalar when they are left out.
fn sec1_as_pkcs8(der: &[u8]) -> Result<Vec<u8>> {
    use pkcs8::der::Encode;
    let key = sec1::EcPrivateKey::try_from(der).map_err(|err| anyhow!("malformed EC private key ({err})"))?;
    let curve = match (
        key.parameters.and_then(sec1::EcParameters::named_curve),
        key.private_key.len(),
    ) {
        (Some(curve), _) => curve,
        (None, 32) => P256,
        (None, 48) => P384,
        (None, _) => bail!("EC private key on an unknown curve"),
    };
    let algorithm = pkcs8::AlgorithmIdentifierRef {
        oid: EC_PUBLIC_KEY,
        parameters: Some((&curve).into()),
    };
    let info = pkcs8::PrivateKeyInfo::new(algorithm, der);
    info.to_der()
        .map_err(|err| anyhow!("cannot re-encode the EC private key ({err})"))
}

/// A PKCS#1 RSA key in PKCS#8.
fn pkcs1_as_pkcs8(der: &[u8]) -> Result<Vec<u8>> {
    use pkcs8::der::Encode;
    let algorithm = pkcs8::AlgorithmIdentifierRef {
        oid: RSA_ENCRYPTION,
        parameters: Some(pkcs8::der::asn1::AnyRef::NULL),
    };
    let info = pkcs8::PrivateKeyInfo::new(algorithm, der);
    info.to_der()
        .map_err(|err| anyhow!("cannot re-encode the RSA private key ({err})"))
}

/// Parse a DER certificate (for callers holding bytes already read).
pub fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|err| anyhow!("malformed certificate ({err})"))
}

/// Algorithm and size of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    pub algorithm: String,
    pub bits: usize,
}

impl std::fmt::Display for KeyDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} bits", self.algorithm, self.bits)
    }
}

pub fn describe_spki(spki: &SubjectPublicKeyInfo<'_>) -> KeyDescription {
    let oid = &spki.algorithm.algorithm;
    let bits = spki.parsed().map_or(0, |key| key.key_size());
    let algorithm = if *oid == OID_PKCS1_RSAENCRYPTION {
        "RSA".to_string()
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|params| params.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => "ECDSA P-256".to_string(),
            Some(c) if c == OID_NIST_EC_P384 => "ECDSA P-384".to_string(),
            Some(c) => format!("ECDSA ({c})"),
            None => "ECDSA".to_string(),
        }
    } else if *oid == OID_SIG_ED25519 {
        "Ed25519".to_string()
    } else {
        oid.to_id_string()
    };
    let bits = match algorithm.as_str() {
        "ECDSA P-256" | "Ed25519" => 256,
        "ECDSA P-384" => 384,
        _ => bits,
    };
    KeyDescription { algorithm, bits }
}

impl KeyDescription {
    /// The `certs generate` key type that makes a key like this one, if there is one.
    pub fn key_type(&self) -> Option<super::KeyType> {
        use super::KeyType;
        match (self.algorithm.as_str(), self.bits) {
            ("ECDSA P-256", _) => Some(KeyType::EcdsaP256),
            ("ECDSA P-384", _) => Some(KeyType::EcdsaP384),
            ("Ed25519", _) => Some(KeyType::Ed25519),
            ("RSA", 2048) => Some(KeyType::Rsa2048),
            ("RSA", 3072) => Some(KeyType::Rsa3072),
            ("RSA", 4096) => Some(KeyType::Rsa4096),
            _ => None,
        }
    }
}

/// The SubjectPublicKeyInfo of a private key, as DER.
pub fn key_spki_der(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

pub fn describe_key(key: &KeyPair) -> KeyDescription {
    let spki_der = key_spki_der(key);
    match SubjectPublicKeyInfo::from_der(&spki_der) {
        Ok((_, spki)) => describe_spki(&spki),
        Err(_) => KeyDescription {
            algorithm: "unknown".into(),
            bits: 0,
        },
    }
}

/// Does `key` belong to the certificate `cert`?
pub fn key_matches_certificate(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    let spki_der = key_spki_der(key);
    match SubjectPublicKeyInfo::from_der(&spki_der) {
        Ok((_, spki)) => spki.subject_public_key.data == cert.public_key().subject_public_key.data,
        Err(_) => false,
    }
}

/// SHA-256 over `der`, as colon-separated upper-case hex (openssl's `-fingerprint` style).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The SANs of a certificate that flowerbed understands (DNS and IP).
pub fn subject_names(cert: &X509Certificate<'_>) -> Vec<SubjectName> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(SubjectName::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Some(SubjectName::Ip(std::net::IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).ok()?,
                ))),
                16 => Some(SubjectName::Ip(std::net::IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).ok()?,
                ))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A certificate time as RFC 3339 (UTC), the way scripts want it.
pub fn format_time(moment: time::OffsetDateTime) -> String {
    moment
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| moment.to_string())
}
