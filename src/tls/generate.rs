//! `certs generate`: a CA and a server certificate, laid out the way Flower mounts them.
//!
//! Everything is built in memory first; the result is a [`WritePlan`] the caller applies
//! (or prints for `--dry-run`), so a failure leaves nothing half-written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::KeyType;
use super::layout::{Layout, LayoutKind};
use super::material::{self, fingerprint};
use super::names::SubjectName;
use crate::fsutil::{self, MODE_DIR_PRIVATE, MODE_DIR_PUBLIC, MODE_PRIVATE, MODE_PUBLIC, WritePlan};
use crate::hints::flag;

/// An existing CA to sign with instead of creating one.
#[derive(Debug, Clone)]
pub struct ExistingCa {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// Everything `certs generate` needs, free of command-line types.
#[derive(Debug, Clone)]
pub struct GenerateSettings {
    pub dir: PathBuf,
    pub layout: LayoutKind,
    /// Names the server certificate covers, defaults included, in order.
    pub names: Vec<SubjectName>,
    pub key_type: KeyType,
    pub days: u32,
    pub existing_ca: Option<ExistingCa>,
    pub force: bool,
}

/// One certificate that was (or would be) written.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    pub path: PathBuf,
    pub subject: String,
    pub sha256: String,
    pub not_after: String,
}

/// What `certs generate` produced, for the human summary and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    pub dir: PathBuf,
    pub layout: LayoutKind,
    pub key_type: KeyType,
    pub names: Vec<SubjectName>,
    pub ca: CertificateSummary,
    pub ca_reused: bool,
    pub server: CertificateSummary,
    pub files: Vec<PathBuf>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The planned files and their description.
pub struct Generated {
    pub plan: WritePlan,
    pub report: GenerateReport,
    /// The CA that signed them, to issue further server certificates in the same plan.
    pub ca: SigningCa,
}

/// A CA able to sign: its issuer, certificate (PEM) and end of validity.
pub struct SigningCa {
    pub(super) issuer: Issuer<'static, KeyPair>,
    pub(super) pem: String,
    pub(super) not_after: OffsetDateTime,
}

impl SigningCa {
    /// Load a CA from disk (`--ca-cert` / `--ca-key` rules: a CA, unexpired, key matching).
    pub fn load(existing: &ExistingCa) -> Result<Self> {
        let (issuer, pem, _, not_after) = load_existing_ca(existing, OffsetDateTime::now_utc())?;
        Ok(Self {
            issuer,
            pem,
            not_after,
        })
    }
}

impl SigningCa {
    /// A new self-signed CA valid for `days` from `now`, with its key (PEM) and its
    /// certificate (DER).
    pub fn new(key_type: KeyType, now: OffsetDateTime, days: u32) -> Result<(Self, String, Vec<u8>)> {
        let key = new_key(key_type)?;
        let params = ca_params(now, days)?;
        let cert = params
            .self_signed(&key)
            .context("cannot sign the CA certificate")?;
        let key_pem = private_key_pem(&key, key_type)?;
        let not_after = params.not_after;
        let ca = Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            not_after,
        };
        Ok((ca, key_pem, cert.der().to_vec()))
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// The names every server certificate covers, then `extra` (duplicates dropped).
pub fn names_with_defaults(extra: &[SubjectName]) -> Vec<SubjectName> {
    let mut names: Vec<SubjectName> = super::layout::DEFAULT_NAMES
        .iter()
        .map(|name| SubjectName::parse(name).expect("default names are valid"))
        .collect();
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Build the CA (or load it) and the server certificate, and plan their files.
pub fn generate(settings: &GenerateSettings) -> Result<Generated> {
    if settings.names.is_empty() {
        bail!("{}: the server certificate needs at least one name", flag::NAME);
    }
    check_target_dir(&settings.dir)?;
    let now = OffsetDateTime::now_utc();
    let mut warnings: Vec<String> = settings
        .key_type
        .compatibility_note()
        .map(str::to_string)
        .into_iter()
        .collect();

    let (ca_issuer, ca_cert_pem, ca_key_pem, ca_summary, ca_not_after) = match &settings.existing_ca {
        None => {
            let (ca, key_pem, der) = SigningCa::new(settings.key_type, now, settings.days)?;
            let summary = summarize(&der, Path::new(""))?;
            (ca.issuer, ca.pem, Some(key_pem), summary, ca.not_after)
        }
        Some(existing) => {
            let (issuer, pem, summary, not_after) = load_existing_ca(existing, now)?;
            (issuer, pem, None, summary, not_after)
        }
    };

    let server_key = new_key(settings.key_type)?;
    let mut server = server_params(&settings.names, settings.key_type, now, settings.days)?;
    if server.not_after > ca_not_after {
        warnings.push(format!(
            "the CA expires before {} days from now; the server certificate ends with it on {}",
            settings.days,
            ca_not_after.date()
        ));
        server.not_after = ca_not_after;
    }
    let server_cert = server
        .signed_by(&server_key, &ca_issuer)
        .context("cannot sign the server certificate")?;
    let server_cert_pem = server_cert.pem();
    let server_key_pem = private_key_pem(&server_key, settings.key_type)?;

    let layout = Layout::new(&settings.dir, settings.layout);
    let mut plan = WritePlan::new(settings.force);
    plan.dir(&settings.dir, MODE_DIR_PUBLIC);
    match settings.layout {
        LayoutKind::Split => {
            plan.dir(layout.superlink_dir(), MODE_DIR_PUBLIC)
                .dir(layout.supernode_dir(), MODE_DIR_PUBLIC);
            if let Some(ca_key_pem) = &ca_key_pem {
                plan.dir(layout.ca_dir(), MODE_DIR_PRIVATE)
                    .file(layout.ca_cert(), ca_cert_pem.clone(), MODE_PUBLIC)
                    .file(layout.ca_key(), ca_key_pem.clone(), MODE_PRIVATE);
            }
            plan_ca_copy(&mut plan, &layout.superlink_ca_cert(), &ca_cert_pem);
            plan.file(layout.server_cert(), server_cert_pem, MODE_PUBLIC)
                .file(layout.server_key(), server_key_pem, MODE_PRIVATE);
            plan_ca_copy(&mut plan, &layout.supernode_ca_cert(), &ca_cert_pem);
        }
        LayoutKind::Flat => {
            match &ca_key_pem {
                Some(ca_key_pem) => {
                    plan.file(layout.ca_cert(), ca_cert_pem.clone(), MODE_PUBLIC)
                        .file(layout.ca_key(), ca_key_pem.clone(), MODE_PRIVATE);
                }
                None => plan_ca_copy(&mut plan, &layout.ca_cert(), &ca_cert_pem),
            }
            // A request carries what the subject asks for; serial and issuer links are the CA's.
            let mut request = server.clone();
            request.serial_number = None;
            request.use_authority_key_identifier_extension = false;
            let csr = request
                .serialize_request(&server_key)
                .context("cannot build the certificate request")?
                .pem()
                .context("cannot encode the certificate request")?;
            plan.file(layout.server_csr(), csr, MODE_PUBLIC)
                .file(layout.server_key(), server_key_pem, MODE_PRIVATE)
                .file(layout.server_cert(), server_cert_pem, MODE_PUBLIC);
        }
    }

    let mut server_summary = summarize(server_cert.der(), &layout.server_cert())?;
    server_summary.path = layout.server_cert();
    let ca_path = match (&settings.existing_ca, settings.layout) {
        (Some(existing), _) => existing.cert_path.clone(),
        (None, _) => layout.ca_cert(),
    };
    let report = GenerateReport {
        dir: settings.dir.clone(),
        layout: settings.layout,
        key_type: settings.key_type,
        names: settings.names.clone(),
        ca: CertificateSummary {
            path: ca_path,
            ..ca_summary
        },
        ca_reused: settings.existing_ca.is_some(),
        server: server_summary,
        files: plan.files().iter().map(|f| f.path.clone()).collect(),
        warnings,
    };
    Ok(Generated {
        plan,
        report,
        ca: SigningCa {
            issuer: ca_issuer,
            pem: ca_cert_pem,
            not_after: ca_not_after,
        },
    })
}

/// A copy of the CA certificate, skipped when an identical one is already there.
fn plan_ca_copy(plan: &mut WritePlan, path: &Path, pem: &str) {
    let identical = fsutil::read_regular(path, fsutil::CERTIFICATE_LIMIT, fsutil::Links::Refuse)
        .is_ok_and(|existing| existing == pem.as_bytes());
    if !identical {
        plan.file(path, pem.to_string(), MODE_PUBLIC);
    }
}

fn check_target_dir(dir: &Path) -> Result<()> {
    match dir.symlink_metadata() {
        Ok(meta) if meta.file_type().is_symlink() => Err(crate::error::Error::SymlinkRefused {
            path: dir.to_path_buf(),
        }
        .into()),
        Ok(meta) if !meta.is_dir() => Err(crate::error::Error::NotADirectory {
            path: dir.to_path_buf(),
        }
        .into()),
        _ => Ok(()),
    }
}

fn signature_algorithm(key_type: KeyType) -> &'static SignatureAlgorithm {
    match key_type {
        KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        KeyType::Ed25519 => &rcgen::PKCS_ED25519,
    }
}

/// A fresh private key of the requested type.
///
/// ring makes the ECDSA and Ed25519 keys, from the operating system's CSPRNG (getrandom).
/// ring cannot make RSA keys: aws-lc makes those (seeding its own DRBG first, which costs
/// tens of milliseconds next to the hundreds an RSA key takes), and hands them to ring as
/// PKCS#8; ring does all the signing.
pub fn new_key(key_type: KeyType) -> Result<KeyPair> {
    use aws_lc_rs::rsa::KeySize;
    let alg = signature_algorithm(key_type);
    let key = match key_type {
        KeyType::Rsa2048 => rsa_key(alg, KeySize::Rsa2048),
        KeyType::Rsa3072 => rsa_key(alg, KeySize::Rsa3072),
        KeyType::Rsa4096 => rsa_key(alg, KeySize::Rsa4096),
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::Ed25519 => {
            KeyPair::generate_for(alg).map_err(anyhow::Error::new)
        }
    };
    key.with_context(|| format!("cannot generate a {key_type} key"))
}

fn rsa_key(alg: &'static SignatureAlgorithm, size: aws_lc_rs::rsa::KeySize) -> Result<KeyPair> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key =
        aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let pkcs8: Pkcs8V1Der<'static> = key
        .as_der()
        .map_err(|_| anyhow::anyhow!("cannot encode the RSA key"))?;
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
        alg,
    )?)
}

/// PEM of a private key in the form every TLS stack Flower uses can load.
///
/// Ed25519 keys come out of the crypto library as PKCS#8 v2 (RFC 5958, with the public
/// key attached), which OpenSSL 3.0 and BoringSSL refuse to load; they get the v1 form
/// (RFC 8410), which carries the same 32-byte private key.
pub(super) fn private_key_pem(key: &KeyPair, key_type: KeyType) -> Result<String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    if key_type != KeyType::Ed25519 {
        return Ok(key.serialize_pem());
    }
    let (_, document) = x509_parser::der_parser::parse_der(key.serialized_der())
        .map_err(|err| anyhow::anyhow!("cannot re-encode the Ed25519 key ({err})"))?;
    let private_key = match &document.content {
        BerObjectContent::Sequence(fields) => fields.get(2).and_then(|field| field.as_slice().ok()),
        _ => None,
    }
    .filter(|inner| inner.len() == 34 && inner.starts_with(&[0x04, 0x20]))
    .ok_or_else(|| anyhow::anyhow!("unexpected Ed25519 key encoding"))?;
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
    ];
    der.extend_from_slice(private_key);
    Ok(pem_encode("PRIVATE KEY", &der))
}

/// A random, positive 128-bit serial number (RFC 5280 allows up to 20 octets).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| anyhow::anyhow!("no randomness for a serial number ({err})"))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, days: u32) {
    // A minute of slack for clocks that disagree a little between host and containers.
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + Duration::days(i64::from(days));
}

fn ca_params(now: OffsetDateTime, days: u32) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let serial = random_serial()?;
    // A distinct name per CA: chain building matches issuers by name, so two flowerbed CAs
    // in one trust store must not look alike.
    let tag = hex::encode(&serial.to_bytes()[..4]);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "flowerbed");
    dn.push(DnType::CommonName, format!("flowerbed CA {tag}"));
    params.distinguished_name = dn;
    // pathlen 0: this CA signs server certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial);
    validity(&mut params, now, days);
    Ok(params)
}

pub(super) fn server_params(
    names: &[SubjectName],
    key_type: KeyType,
    now: OffsetDateTime,
    days: u32,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let common_name = names
        .iter()
        .find_map(|name| match name {
            SubjectName::Dns(dns) if !dns.starts_with('*') && dns != "localhost" => Some(dns.as_str()),
            _ => None,
        })
        .unwrap_or("superlink");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "flowerbed");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|name| match name {
            SubjectName::Dns(dns) => {
                Ok(SanType::DnsName(dns.clone().try_into().with_context(|| {
                    format!("{} {dns}: not an IA5 string", flag::NAME)
                })?))
            }
            SubjectName::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        })
        .collect::<Result<_>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    // RSA key exchange needs keyEncipherment; an EC key never enciphers (RFC 5480).
    params.key_usages = match key_type {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::Ed25519 => vec![KeyUsagePurpose::DigitalSignature],
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        }
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    validity(&mut params, now, days);
    Ok(params)
}

type LoadedCa = (
    Issuer<'static, KeyPair>,
    String,
    CertificateSummary,
    OffsetDateTime,
);

fn load_existing_ca(existing: &ExistingCa, now: OffsetDateTime) -> Result<LoadedCa> {
    let cert_path = &existing.cert_path;
    let der = material::read_certificate(cert_path)?;
    let cert = material::parse_certificate(&der)
        .with_context(|| format!("{} {}", flag::CA_CERT, cert_path.display()))?;
    if !cert.is_ca() {
        bail!(
            "{} {}: not a CA certificate (basicConstraints CA:TRUE is missing)",
            flag::CA_CERT,
            cert_path.display()
        );
    }
    let not_after = cert.validity().not_after.to_datetime();
    if not_after <= now {
        bail!(
            "{} {}: expired on {}",
            flag::CA_CERT,
            cert_path.display(),
            not_after.date()
        );
    }
    let key = material::read_private_key(&existing.key_path)?;
    if !material::key_matches_certificate(&key, &cert) {
        bail!(
            "{} {}: does not belong to {} {}",
            flag::CA_KEY,
            existing.key_path.display(),
            flag::CA_CERT,
            cert_path.display()
        );
    }
    let summary = summarize(&der, cert_path)?;
    let pem = pem_encode("CERTIFICATE", &der);
    let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
        .with_context(|| format!("{} {}: cannot use it to sign", flag::CA_CERT, cert_path.display()))?;
    Ok((issuer, pem, summary, not_after))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let block = pem::Pem::new(label, der);
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn summarize(der: &[u8], path: &Path) -> Result<CertificateSummary> {
    let cert = material::parse_certificate(der)?;
    Ok(CertificateSummary {
        path: path.to_path_buf(),
        subject: cert.subject().to_string(),
        sha256: fingerprint(der),
        not_after: material::format_time(cert.validity().not_after.to_datetime()),
    })
}
