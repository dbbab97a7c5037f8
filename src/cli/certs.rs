//! `flowerbed certs ...`

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};

use crate::tls::KeyType;

const GENERATE_HELP: &str = "\
Layout written into DIR:
  superlink-certificates/{ca.crt,server.pem,server.key}  mount read-only into the superlink
  supernode-certificates/ca.crt                         mount read-only into each supernode
  ca/{ca.crt,ca.key}                                    the CA: keep it, never mount it
With --flat, Flower's own single-folder layout instead: ca.crt ca.key server.csr server.key server.pem

Examples:
  flowerbed certs generate deploy
  flowerbed certs generate deploy --name flower.example.org --name 10.0.0.5
  flowerbed certs generate deploy --force --ca-cert deploy/ca/ca.crt --ca-key deploy/ca/ca.key --name new.example.org
  flowerbed certs generate certificates --flat --key-type rsa-4096";

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA and a server certificate laid out for Flower's containers.
    #[command(after_help = GENERATE_HELP)]
    Generate(GenerateArgs),

    /// Show what is inside certificates and private keys.
    #[command(
        after_help = "Examples:\n  flowerbed certs inspect deploy/superlink-certificates/server.pem\n  flowerbed certs inspect --json deploy/ca/ca.crt deploy/superlink-certificates/server.key"
    )]
    Inspect(InspectArgs),

    /// Answer "will a supernode accept this superlink?" (exit 0 yes, 1 no, 2 unreadable input).
    #[command(
        after_help = "Examples:\n  flowerbed certs verify deploy\n  flowerbed certs verify deploy --name superlink --name flower.example.org\n  flowerbed certs verify --ca ca.crt --cert server.pem --key server.key --json\n  flowerbed certs verify --ca ca.crt --cert server.pem --name flower.example.org"
    )]
    Verify(VerifyArgs),

    /// Issue a new server certificate from the folder's own CA (same names, same key type),
    /// keeping the owner and mode of the files it replaces: supernodes need nothing new.
    #[command(after_help = RENEW_HELP)]
    Renew(RenewArgs),
}

const RENEW_HELP: &str = "\
The CA (DIR/ca/ in flowerbed's layout, beside server.pem in Flower's) signs the new
certificate; every ca.crt stays as it is. Refused (nothing written) when the CA key is
absent, when that CA did not sign the current certificate, or when the CA ends before the
new certificate would. Restart the superlink afterwards so that it loads the new files.

Examples:
  flowerbed certs renew deploy
  flowerbed certs renew deploy --days 90 --name flower.example.org
  flowerbed certs renew deploy --dry-run";

fn key_type_parser() -> impl TypedValueParser<Value = KeyType> {
    PossibleValuesParser::new(KeyType::NAMES).map(|name| name.parse::<KeyType>().expect("listed names parse"))
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write into (created if missing).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    /// Write Flower's own single-folder layout (ca.crt ca.key server.csr server.key server.pem).
    #[arg(long)]
    pub flat: bool,

    /// A further DNS name or IP address the server certificate must cover (repeatable).
    /// Always covered: localhost, 127.0.0.1, ::1, superlink.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,

    /// Key algorithm for the CA and the server key. Default: with --force, the type of the
    /// server key being replaced; otherwise ecdsa-p256.
    #[arg(long, value_parser = key_type_parser())]
    pub key_type: Option<KeyType>,

    /// Validity of the certificates, in days from now.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,

    /// Sign with this existing CA certificate instead of creating a CA (needs --ca-key).
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,

    /// The private key of --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,

    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,

    /// Print what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the written paths, fingerprints, names and expiry as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The deployment folder (or Flower's single certificate folder) to renew in.
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    /// A further DNS name or IP address to cover (repeatable); the current names stay.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,

    /// Validity of the new certificate, in days from now; refused if the CA ends sooner.
    /// Default: 365, or as long as the CA has left when that is less.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: Option<u32>,

    /// Key algorithm of the new server key. Default: the current key's.
    #[arg(long, value_parser = key_type_parser())]
    pub key_type: Option<KeyType>,

    /// Print what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the renewal (new and previous fingerprint, expiry, files) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Certificate or key files (PEM or DER).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A folder with certificates (either layout, or Flower's own: ca.crt, server.pem and
    /// server.key in one folder). Default: the current folder.
    #[arg(value_name = "DIR", conflicts_with_all = ["ca", "cert", "key"])]
    pub dir: Option<PathBuf>,

    /// The CA certificate the supernodes trust.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub ca: Option<PathBuf>,

    /// The superlink's certificate.
    #[arg(long, value_name = "FILE", requires = "ca")]
    pub cert: Option<PathBuf>,

    /// The superlink's private key, to check it belongs to --cert (optional: without it the
    /// chain, dates and names are verified).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
    pub key: Option<PathBuf>,

    /// A name the supernodes dial, which a SAN must cover (repeatable).
    /// Default: the names the deployment in DIR dials (flowerbed.json or its compose file),
    /// else localhost, 127.0.0.1, ::1, superlink.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,

    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
