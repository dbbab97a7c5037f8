//! TLS material for Flower: generation, inspection, verification.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

pub mod generate;
pub mod inspect;
pub mod layout;
pub mod material;
pub mod names;
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
}

impl KeyType {
    /// Command-line names, in the order `--help` lists them.
    pub const NAMES: [&'static str; 5] = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
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
