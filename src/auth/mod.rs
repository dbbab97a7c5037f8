//! Supernode authentication keys: OpenSSH ECDSA key pairs on NIST P-384, the format every
//! supported Flower release loads (`cryptography`'s `load_ssh_private_key` /
//! `load_ssh_public_key`) and the curve Flower's own docs and `flwr supernode register` name.
//!
//! ```text
//! DIR/supernode-auth/supernode-N/{auth.key,auth.pub}   -> supernode-N only, read-only
//! DIR/superlink-auth/supernode-public-keys.csv          -> superlink, read-only (1.13, 1.21)
//! DIR/superlink-auth/{superlink.key,superlink.pub}      -> superlink, read-only (1.13)
//! DIR/register-supernodes.sh                            -> run on the host (1.35+)
//! ```
//! Across hosts, each supernode's pair is made on its own host (`quickstart --from-bundle`),
//! which writes the public keys alone for the way back; the superlink's host admits them:
//! ```text
//! DIR/supernode-public-keys/supernode-N.pub   (supernodes' host) -> send to the superlink's operator
//! DIR/admitted-supernodes/NAME.pub            (superlink's host) -> listed in the CSV / registered
//! DIR/bundles/FILE.json                       (superlink's host) -> each bundle made, for `check`
//! ```
//! Private keys are written mode 0600 through the same all-or-nothing [`WritePlan`] as TLS
//! keys. Keys already on disk are kept, so a re-run never locks a registered supernode out.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use serde::Serialize;
use ssh_key::private::{EcdsaKeypair, KeypairData};
use ssh_key::public::EcdsaPublicKey;
use ssh_key::{Algorithm, EcdsaCurve, LineEnding, PrivateKey, PublicKey};

use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PRIVATE, MODE_PUBLIC, WritePlan};

/// How a release authenticates supernodes (read off each release's `--help` and source).
/// Every scheme loads OpenSSH ECDSA keys (`load_ssh_private_key` / `load_ssh_public_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupernodeAuth {
    /// 1.13: the superlink needs `--auth-list-public-keys` (a CSV of the supernodes' public
    /// keys) plus its own pair (`--auth-superlink-private-key` / `-public-key`; the two
    /// sides derive an ECDH secret, so every key is on one curve); each supernode passes
    /// `--auth-supernode-private-key` and `--auth-supernode-public-key`.
    KnownKeysWithSuperlinkPair,
    /// 1.21: as 1.13, but the superlink's own pair is deprecated (supernodes sign with
    /// ECDSA), so only `--auth-list-public-keys`.
    KnownKeys,
    /// 1.35 and later: `--enable-supernode-auth` on the superlink, only
    /// `--auth-supernode-private-key` on the supernode (the public key is derived), and each
    /// public key is registered through the Control API with `flwr supernode register`.
    Registration,
}

/// Folder holding one sub-folder per supernode, each mounted into that supernode only.
pub const SUPERNODE_AUTH_DIR: &str = "supernode-auth";
/// Folder mounted into the superlink on releases that read key files (1.13, 1.21).
pub const SUPERLINK_AUTH_DIR: &str = "superlink-auth";
/// Where either folder appears in the container, relative to the working directory.
pub const AUTH_MOUNT: &str = "auth";
/// A supernode's private and public key.
pub const PRIVATE_KEY: &str = "auth.key";
pub const PUBLIC_KEY: &str = "auth.pub";
/// The supernodes' public keys, one OpenSSH line each (`--auth-list-public-keys`).
pub const KNOWN_KEYS: &str = "supernode-public-keys.csv";
/// The superlink's own pair (1.13 derives an ECDH secret with each supernode from it).
pub const SUPERLINK_PRIVATE_KEY: &str = "superlink.key";
pub const SUPERLINK_PUBLIC_KEY: &str = "superlink.pub";
/// Helper that registers every supernode's public key with the superlink (1.35+).
pub const REGISTER_SCRIPT: &str = "register-supernodes.sh";
/// On a supernodes' host: copies of their public keys, to send to the superlink's host.
pub const RETURN_DIR: &str = "supernode-public-keys";
/// On the superlink's host: the public keys of supernodes elsewhere, one file each.
pub const ADMITTED_DIR: &str = "admitted-supernodes";

pub mod admit;

/// Which keys a deployment folder makes, by where it runs.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// Superlink and supernodes on one host: every pair here.
    All { supernodes: u32 },
    /// The superlink alone: its own files, listing the admitted keys.
    Superlink,
    /// Supernodes alone: their pairs, and the public keys copied for the way back.
    /// `origin` names the bundle the folder came from (it ends each key's comment).
    Supernodes {
        supernodes: u32,
        origin: Option<&'a str>,
    },
}

/// The comment that ends supernode `index`'s public key: where it was made.
pub fn key_comment(origin: Option<&str>, index: u32) -> String {
    match origin {
        Some(origin) => format!("flowerbed:{origin}:supernode-{index}"),
        None => format!("flowerbed-supernode-{index}"),
    }
}

/// The folder of supernode `index` (from 1).
pub fn supernode_dir(root: &Path, index: u32) -> PathBuf {
    root.join(SUPERNODE_AUTH_DIR).join(format!("supernode-{index}"))
}

/// The folder mounted into the superlink.
pub fn superlink_dir(root: &Path) -> PathBuf {
    root.join(SUPERLINK_AUTH_DIR)
}

/// A new key pair in OpenSSH encoding; `comment` ends the public key's line.
pub struct KeyPair {
    pub private_openssh: String,
    pub public_openssh: String,
}

/// A new P-384 pair. The key comes from ring (the operating system's random source, and
/// its assembly for the curve), and is then written in OpenSSH's encoding.
pub fn generate(comment: &str) -> Result<KeyPair> {
    encode(&new_p384()?, comment)
}

/// A new P-384 key as PKCS#8, from ring's own generator: one scalar multiplication (rcgen's
/// would parse the document back and check it with a second one).
fn new_p384() -> Result<ring::pkcs8::Document> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| anyhow!("cannot generate an ECDSA P-384 key"))
}

/// `count` new P-384 keys, made on all the cores at once: each is a P-384 scalar
/// multiplication through ring's generic code, about a third of a millisecond.
fn new_p384_keys(count: usize) -> Result<Vec<ring::pkcs8::Document>> {
    let threads = count.min(crate::ownership::cores());
    if threads <= 1 {
        return (0..count).map(|_| new_p384()).collect();
    }
    // Thread `first` makes keys first, first + threads, ...; this thread is thread 0.
    let share = move |first: usize| {
        (first..count)
            .step_by(threads)
            .map(|_| new_p384())
            .collect::<Result<Vec<_>>>()
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|t| scope.spawn(move || share(t))).collect();
        let mut keys = share(0)?;
        for helper in helpers {
            keys.extend(helper.join().expect("key generation panicked")?);
        }
        Ok(keys)
    })
}

/// The OpenSSH encoding of the P-384 key `pkcs8`, its public line ending in `comment`.
fn encode(pkcs8: &ring::pkcs8::Document, comment: &str) -> Result<KeyPair> {
    let key = openssh_p384(pkcs8.as_ref(), comment)?;
    let private_openssh = key
        .to_openssh(LineEnding::LF)
        .map_err(|err| anyhow!("cannot encode an OpenSSH private key: {err}"))?
        .to_string();
    let mut public_openssh = key
        .public_key()
        .to_openssh()
        .map_err(|err| anyhow!("cannot encode an OpenSSH public key: {err}"))?;
    public_openssh.push('\n');
    Ok(KeyPair {
        private_openssh,
        public_openssh,
    })
}

/// The OpenSSH form of a P-384 key given as PKCS#8 (whose SEC1 part carries both the
/// private scalar and the public point).
fn openssh_p384(pkcs8_der: &[u8], comment: &str) -> Result<PrivateKey> {
    let malformed = |what: &str| anyhow!("cannot read the generated P-384 key: {what}");
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).map_err(|_| malformed("not PKCS#8"))?;
    let sec1 = sec1::EcPrivateKey::try_from(info.private_key).map_err(|_| malformed("not SEC1"))?;
    let secret = p384::SecretKey::from_slice(sec1.private_key).map_err(|_| malformed("bad scalar"))?;
    let public = sec1.public_key.ok_or_else(|| malformed("no public point"))?;
    let EcdsaPublicKey::NistP384(public) =
        EcdsaPublicKey::from_sec1_bytes(public).map_err(|_| malformed("bad public point"))?
    else {
        return Err(malformed("not on P-384"));
    };
    let pair = EcdsaKeypair::NistP384 {
        public,
        private: secret.into(),
    };
    PrivateKey::new(KeypairData::from(pair), comment)
        .map_err(|err| anyhow!("cannot make an OpenSSH private key: {err}"))
}

/// Whether the files of the pair in `dir` exist: (`private`, `public`).
fn pair_files(dir: &Path, private: &str, public: &str) -> (bool, bool) {
    (
        dir.join(private).symlink_metadata().is_ok(),
        dir.join(public).symlink_metadata().is_ok(),
    )
}

/// The public key of the pair in `dir` (`private`, `public`): read from disk when both
/// files exist, or made (from `fresh` while it has keys) and added to `plan` when neither
/// does. One without the other is refused rather than silently replaced.
fn pair_in(
    dir: &Path,
    (private, public): (&str, &str),
    comment: &str,
    fresh: &mut impl Iterator<Item = ring::pkcs8::Document>,
    plan: &mut WritePlan,
) -> Result<String> {
    let private_path = dir.join(private);
    let public_path = dir.join(public);
    let (has_private, has_public) = pair_files(dir, private, public);
    match (has_private, has_public) {
        (true, true) => {
            let text = std::fs::read_to_string(&public_path)
                .with_context(|| format!("{}: cannot read", public_path.display()))?;
            let key = PublicKey::from_openssh(text.trim())
                .map_err(|err| anyhow!("{}: not an OpenSSH public key ({err})", public_path.display()))?;
            if key.algorithm()
                != (Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP384,
                })
            {
                return Err(anyhow!(
                    "{}: a {} key; supernode authentication keys here are ECDSA P-384 (delete the folder to make a new pair)",
                    public_path.display(),
                    key.algorithm()
                ));
            }
            Ok(format!("{}\n", text.trim()))
        }
        (false, false) => {
            let pair = match fresh.next() {
                Some(pkcs8) => encode(&pkcs8, comment)?,
                None => generate(comment)?,
            };
            plan.dir(dir, MODE_DIR_PUBLIC);
            plan.file(&private_path, pair.private_openssh, MODE_PRIVATE);
            plan.file(&public_path, pair.public_openssh.clone(), MODE_PUBLIC);
            Ok(pair.public_openssh)
        }
        (true, false) | (false, true) => {
            let (present, missing) = if has_private {
                (&private_path, &public_path)
            } else {
                (&public_path, &private_path)
            };
            Err(anyhow!(
                "{}: its pair {} is missing; restore it, or delete {} to make a new pair",
                present.display(),
                missing.display(),
                dir.display()
            ))
        }
    }
}

/// Add to `plan` every authentication file the deployment in `root` needs and lacks, for
/// its `side`. Existing pairs are kept; the known-keys list (this host's supernodes, then
/// the admitted ones) is rewritten only when it would change.
pub fn plan_keys(root: &Path, side: Side<'_>, scheme: SupernodeAuth, plan: &mut WritePlan) -> Result<()> {
    let (supernodes, origin) = match side {
        Side::All { supernodes } => (supernodes, None),
        Side::Superlink => (0, None),
        Side::Supernodes { supernodes, origin } => (supernodes, origin),
    };
    let dirs: Vec<PathBuf> = (1..=supernodes).map(|index| supernode_dir(root, index)).collect();
    let new = dirs
        .iter()
        .filter(|dir| pair_files(dir, PRIVATE_KEY, PUBLIC_KEY) == (false, false))
        .count();
    let mut fresh = new_p384_keys(new)?.into_iter();
    let mut local = Vec::new();
    for (index, dir) in (1..).zip(&dirs) {
        local.push(pair_in(
            dir,
            (PRIVATE_KEY, PUBLIC_KEY),
            &key_comment(origin, index),
            &mut fresh,
            plan,
        )?);
    }
    if let Side::Supernodes { .. } = side {
        let back = root.join(RETURN_DIR);
        for (index, public) in (1..).zip(&local) {
            let path = back.join(format!("supernode-{index}.pub"));
            if std::fs::read_to_string(&path).ok().as_deref() != Some(public.as_str()) {
                plan.dir(&back, MODE_DIR_PUBLIC);
                plan.derived(path, public.clone(), MODE_PUBLIC);
            }
        }
        return Ok(());
    }
    plan_superlink_files(root, &local, &admit::read_admitted(root)?, scheme, plan)
}

/// The superlink's own files: its pair (1.13) and the known-keys CSV listing `local` then
/// `admitted` (1.13, 1.21); nothing from 1.35, where keys are registered instead.
pub(crate) fn plan_superlink_files(
    root: &Path,
    local: &[String],
    admitted: &[admit::Admitted],
    scheme: SupernodeAuth,
    plan: &mut WritePlan,
) -> Result<()> {
    if scheme == SupernodeAuth::Registration {
        return Ok(());
    }
    let superlink = superlink_dir(root);
    if scheme == SupernodeAuth::KnownKeysWithSuperlinkPair {
        pair_in(
            &superlink,
            (SUPERLINK_PRIVATE_KEY, SUPERLINK_PUBLIC_KEY),
            "flowerbed-superlink",
            &mut std::iter::empty(),
            plan,
        )?;
    }
    let mut known: String = local.concat();
    for key in admitted {
        known.push_str(&key.csv_line());
    }
    let csv = superlink.join(KNOWN_KEYS);
    if std::fs::read_to_string(&csv).ok().as_deref() != Some(known.as_str()) {
        plan.dir(&superlink, MODE_DIR_PUBLIC);
        plan.derived(csv, known, MODE_PUBLIC);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_openssh_p384_and_match() {
        let pair = generate("flowerbed-supernode-1").unwrap();
        assert!(
            pair.private_openssh
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(pair.public_openssh.starts_with("ecdsa-sha2-nistp384 "));
        assert!(pair.public_openssh.ends_with(" flowerbed-supernode-1\n"));
        let private = PrivateKey::from_openssh(pair.private_openssh.as_bytes()).unwrap();
        let public = PublicKey::from_openssh(pair.public_openssh.trim()).unwrap();
        assert_eq!(private.public_key().key_data(), public.key_data());
        assert!(!private.is_encrypted());
    }

    #[test]
    fn keys_made_at_once_are_as_many_as_asked_and_all_different() {
        for count in [0, 1, 2, 5] {
            let keys = new_p384_keys(count).unwrap();
            let mut publics: Vec<String> = keys
                .iter()
                .map(|pkcs8| encode(pkcs8, "c").unwrap().public_openssh)
                .collect();
            publics.sort();
            publics.dedup();
            assert_eq!(publics.len(), count);
        }
    }

    #[test]
    fn plan_writes_private_keys_0600_and_keeps_existing_pairs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut plan = WritePlan::new(false);
        plan_keys(
            tmp.path(),
            Side::All { supernodes: 2 },
            SupernodeAuth::KnownKeysWithSuperlinkPair,
            &mut plan,
        )
        .unwrap();
        let modes: Vec<_> = plan
            .files()
            .iter()
            .map(|f| (f.path.strip_prefix(tmp.path()).unwrap().to_path_buf(), f.mode))
            .collect();
        assert!(modes.contains(&(PathBuf::from("supernode-auth/supernode-2/auth.key"), 0o600)));
        assert!(modes.contains(&(PathBuf::from("superlink-auth/superlink.key"), 0o600)));
        assert!(modes.contains(&(PathBuf::from("superlink-auth/supernode-public-keys.csv"), 0o644)));
        plan.apply().unwrap();
        let csv = std::fs::read_to_string(tmp.path().join("superlink-auth").join(KNOWN_KEYS)).unwrap();
        assert_eq!(csv.lines().count(), 2);

        // A second run finds everything in place.
        let mut again = WritePlan::new(false);
        plan_keys(
            tmp.path(),
            Side::All { supernodes: 2 },
            SupernodeAuth::KnownKeysWithSuperlinkPair,
            &mut again,
        )
        .unwrap();
        assert!(again.files().is_empty());

        // A lone private key is refused, not replaced.
        std::fs::remove_file(supernode_dir(tmp.path(), 1).join(PUBLIC_KEY)).unwrap();
        let err = plan_keys(
            tmp.path(),
            Side::All { supernodes: 2 },
            SupernodeAuth::Registration,
            &mut WritePlan::new(true),
        )
        .unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }

    #[test]
    fn registration_needs_no_superlink_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut plan = WritePlan::new(false);
        plan_keys(
            tmp.path(),
            Side::All { supernodes: 1 },
            SupernodeAuth::Registration,
            &mut plan,
        )
        .unwrap();
        assert_eq!(plan.files().len(), 2);
        assert!(
            plan.files()
                .iter()
                .all(|f| f.path.starts_with(tmp.path().join(SUPERNODE_AUTH_DIR)))
        );
    }
}
