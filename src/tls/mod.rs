//! TLS material for Flower: generation, inspection, verification.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub mod generate;
pub mod inspect;
pub mod layout;
pub mod material;
pub mod names;
pub mod renew;
pub mod runtime;
pub mod verify;

pub use layout::{Layout, LayoutKind};
pub use names::SubjectName;

/// Key algorithms `certs generate` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Ed25519,
}

impl KeyType {
    /// Command-line names, in the order `--help` lists them.
    pub const NAMES: [&'static str; 6] = [
        "ecdsa-p256",
        "ecdsa-p384",
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ed25519",
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

impl KeyType {
    /// Releases that refuse this key type, when some do: Flower's gRPC-era transport
    /// (BoringSSL) fails Ed25519 handshakes with NO_COMMON_SIGNATURE_ALGORITHMS; the
    /// HTTPS transport of 1.41 and later accepts it.
    pub fn compatibility_note(self) -> Option<&'static str> {
        match self {
            KeyType::Ed25519 => Some(
                "ed25519 works with Flower 1.41 and later only; older releases (gRPC) refuse the handshake \
                 (NO_COMMON_SIGNATURE_ALGORITHMS): use ecdsa-p256 for them",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::Rsa2048,
            KeyType::Rsa3072,
            KeyType::Rsa4096,
            KeyType::Ed25519,
        ]
        .into_iter()
        .find(|kind| kind.name() == text)
        .ok_or_else(|| {
            format!(
                "unknown key type {text:?} (expected one of {})",
                Self::NAMES.join(", ")
            )
        })
    }
}
