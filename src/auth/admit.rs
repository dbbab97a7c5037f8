//! Supernodes on other hosts, admitted on the superlink's host: their public keys (never a
//! private one) are kept one per file in `admitted-supernodes/`, from where the known-keys
//! CSV (1.13, 1.21) and the registration script (1.35+) take them.
//!
//! A key's comment says where it was made (`flowerbed:BUNDLE:supernode-N`, written by
//! `quickstart --from-bundle`), which names its file and lets `check` match admitted keys
//! to the bundles this host handed out. Admitting is idempotent: a key already admitted (or
//! one of this folder's own supernodes) is reported, not added again.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use ssh_key::{Algorithm, EcdsaCurve, PublicKey};

use super::{ADMITTED_DIR, PUBLIC_KEY, SupernodeAuth, plan_superlink_files, supernode_dir};
use crate::fsutil::{self, Links, MODE_DIR_PUBLIC, MODE_PUBLIC, WritePlan};

/// The most a public key file may hold (a few keys; anything larger is not one).
const KEY_FILE_LIMIT: u64 = 64 << 10;

/// One admitted public key.
#[derive(Debug, Clone, Serialize)]
pub struct Admitted {
    /// Its file in `admitted-supernodes/`.
    pub path: PathBuf,
    /// The bundle it was made from, when its comment says so (a hint: anyone can write a
    /// comment).
    pub origin: Option<String>,
    /// Which supernode of that bundle (`supernode-N`).
    pub node: Option<String>,
    /// The OpenSSH line as given, comment and newline included.
    #[serde(skip)]
    pub line: String,
    /// The key alone (OpenSSH text without a comment).
    #[serde(skip)]
    key: Vec<u8>,
}

impl Admitted {
    /// The key's line for Flower's known-keys CSV: without its comment, which Flower's
    /// CSV reader would split at a comma and then fail to load.
    pub fn csv_line(&self) -> String {
        format!("{}\n", String::from_utf8_lossy(&self.key))
    }
}

/// The bundle a key's comment names (`flowerbed:BUNDLE:supernode-N`), if it is a safe name.
fn origin_of(comment: &str) -> Option<(&str, &str)> {
    let mut parts = comment.strip_prefix("flowerbed:")?.splitn(2, ':');
    let (origin, node) = (parts.next()?, parts.next()?);
    let safe = |text: &str| {
        !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    (safe(origin) && safe(node)).then_some((origin, node))
}

/// The key material of `key` alone (algorithm and point; the comment is not part of it),
/// as its OpenSSH text without a comment.
fn key_bytes(key: &PublicKey) -> Vec<u8> {
    PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .unwrap_or_default()
        .into_bytes()
}

/// Parse one OpenSSH public key line: ECDSA P-384, what supernodes authenticate with.
fn parse_line(line: &str, path: &Path) -> Result<PublicKey> {
    let key = PublicKey::from_openssh(line)
        .map_err(|err| anyhow!("{}: not an OpenSSH public key ({err})", path.display()))?;
    if key.algorithm()
        != (Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        })
    {
        bail!(
            "{}: a {} key; supernodes authenticate with ECDSA P-384 keys",
            path.display(),
            key.algorithm()
        );
    }
    Ok(key)
}

/// The public keys in `path` (one per line), refusing the file whole if it holds a
/// private key or anything that is not a P-384 public key.
fn read_key_file(path: &Path) -> Result<Vec<(PublicKey, String)>> {
    let text = fsutil::read_regular_text(path, KEY_FILE_LIMIT, Links::Follow)?;
    if text.contains("PRIVATE KEY") {
        bail!(
            "{}: holds a private key; only public keys (.pub) leave a supernode's host",
            path.display()
        );
    }
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| Ok((parse_line(line, path)?, format!("{line}\n"))))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("{}: holds no public key", path.display());
    }
    Ok(keys)
}

/// The key files a FILE argument stands for: itself, or a folder's `*.pub` files.
fn key_files(given: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(given).with_context(|| format!("{}: cannot read", given.display()))?;
    if !meta.is_dir() {
        return Ok(vec![given.to_path_buf()]);
    }
    let files = fsutil::files_with_extension(given, "pub")
        .with_context(|| format!("{}: cannot list", given.display()))?;
    if files.is_empty() {
        bail!("{}: a folder with no .pub file", given.display());
    }
    Ok(files)
}

/// Every key admitted in `root`, by file name.
pub fn read_admitted(root: &Path) -> Result<Vec<Admitted>> {
    let paths = fsutil::files_with_extension(&root.join(ADMITTED_DIR), "pub").unwrap_or_default();
    let mut admitted = Vec::new();
    for path in paths {
        for (key, line) in read_key_file(&path)? {
            let origin = origin_of(key.comment());
            admitted.push(Admitted {
                origin: origin.map(|(origin, _)| origin.to_string()),
                node: origin.map(|(_, node)| node.to_string()),
                key: key_bytes(&key),
                line,
                path: path.clone(),
            });
        }
    }
    Ok(admitted)
}

/// What admitting would do, and the plan that does it.
pub struct AdmitPlan {
    pub plan: WritePlan,
    pub added: Vec<Admitted>,
    /// Keys given that were already admitted (or are this folder's own): given file, and
    /// where the key already is.
    pub already: Vec<(PathBuf, PathBuf)>,
}

/// Plan admitting the keys in `given` (files or folders of `.pub` files) into the superlink
/// folder `root`, whose own supernodes number `local_supernodes`, for `scheme`.
pub fn plan_admit(
    root: &Path,
    local_supernodes: u32,
    given: &[PathBuf],
    scheme: SupernodeAuth,
) -> Result<AdmitPlan> {
    let mut local = Vec::new();
    let mut known: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for index in 1..=local_supernodes {
        let path = supernode_dir(root, index).join(PUBLIC_KEY);
        for (key, line) in read_key_file(&path)? {
            known.push((key_bytes(&key), path.clone()));
            local.push(line);
        }
    }
    let mut admitted = read_admitted(root)?;
    known.extend(admitted.iter().map(|a| (a.key.clone(), a.path.clone())));
    let dir = root.join(ADMITTED_DIR);
    let mut added: Vec<Admitted> = Vec::new();
    let mut already = Vec::new();
    for file in given
        .iter()
        .map(|given| key_files(given))
        .collect::<Result<Vec<_>>>()?
        .concat()
    {
        for (key, line) in read_key_file(&file)? {
            let bytes = key_bytes(&key);
            if let Some((_, path)) = known.iter().find(|(known, _)| *known == bytes) {
                already.push((file.clone(), path.clone()));
                continue;
            }
            let origin = origin_of(key.comment());
            // A new key for a supernode that has one admitted: its key was replaced. The
            // old one is not revoked silently by adding the new one beside it.
            if let Some((bundle, node)) = origin {
                let same =
                    |a: &Admitted| a.origin.as_deref() == Some(bundle) && a.node.as_deref() == Some(node);
                if let Some(old) = admitted.iter().chain(&added).find(|a| same(a)) {
                    bail!(
                        "{}: a new key for {node} of bundle {bundle}, which has another admitted ({}); if its key was replaced, remove that file first (the old key stays valid until then)",
                        file.display(),
                        old.path.display()
                    );
                }
            }
            let stem = origin.map_or_else(
                || format!("key-{}", hex::encode(&Sha256::digest(&bytes)[..8])),
                |(origin, node)| format!("{origin}-{node}"),
            );
            // A name already taken by another key gets a number.
            let taken = |path: &Path| path.symlink_metadata().is_ok() || added.iter().any(|a| a.path == path);
            let mut path = dir.join(format!("{stem}.pub"));
            let mut n = 2;
            while taken(&path) {
                path = dir.join(format!("{stem}-{n}.pub"));
                n += 1;
            }
            known.push((bytes.clone(), path.clone()));
            added.push(Admitted {
                path,
                origin: origin.map(|(origin, _)| origin.to_string()),
                node: origin.map(|(_, node)| node.to_string()),
                line,
                key: bytes,
            });
        }
    }
    let mut plan = WritePlan::new(false);
    if !added.is_empty() {
        plan.dir(&dir, MODE_DIR_PUBLIC);
        for key in &added {
            plan.file(&key.path, key.line.clone(), MODE_PUBLIC);
        }
        admitted.extend(added.iter().cloned());
        plan_superlink_files(root, &local, &admitted, scheme, &mut plan)?;
    }
    Ok(AdmitPlan { plan, added, already })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{KNOWN_KEYS, Side, generate, plan_keys, superlink_dir};

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn admitting_is_idempotent_and_the_csv_lists_every_admitted_key() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("link");
        let mut plan = WritePlan::new(false);
        plan_keys(&root, Side::Superlink, SupernodeAuth::KnownKeys, &mut plan).unwrap();
        plan.apply().unwrap();
        assert_eq!(
            std::fs::read_to_string(superlink_dir(&root).join(KNOWN_KEYS)).unwrap(),
            ""
        );

        let site = tmp.path().join("site");
        let a = generate("flowerbed:b1:supernode-1").unwrap();
        let b = generate("someone@laptop").unwrap();
        write(&site.join("supernode-1.pub"), &a.public_openssh);
        write(&site.join("other.pub"), &b.public_openssh);
        let admit = plan_admit(&root, 0, std::slice::from_ref(&site), SupernodeAuth::KnownKeys).unwrap();
        let names: Vec<String> = admit
            .added
            .iter()
            .map(|a| a.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // A folder's files are read in name order: other.pub, then supernode-1.pub.
        assert_eq!(names[1], "b1-supernode-1.pub");
        assert!(
            names[0].starts_with("key-") && names[0].len() == "key-".len() + 16 + 4,
            "{names:?}"
        );
        admit.plan.apply().unwrap();
        let csv = std::fs::read_to_string(superlink_dir(&root).join(KNOWN_KEYS)).unwrap();
        assert_eq!(csv.lines().count(), 2);

        // Again: nothing added, both reported as there already.
        let again = plan_admit(&root, 0, &[site], SupernodeAuth::KnownKeys).unwrap();
        assert!(again.added.is_empty() && again.plan.files().is_empty());
        assert_eq!(again.already.len(), 2);
        // The same key under another comment is the same key.
        let renamed = a.public_openssh.replace("flowerbed:b1:supernode-1", "copied");
        write(&tmp.path().join("renamed.pub"), &renamed);
        let third = plan_admit(
            &root,
            0,
            &[tmp.path().join("renamed.pub")],
            SupernodeAuth::KnownKeys,
        )
        .unwrap();
        assert!(third.added.is_empty());
    }

    #[test]
    fn a_comment_never_reaches_the_csv_and_a_replaced_key_needs_the_old_one_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("link");
        // Flower splits the CSV at commas and loads each field as a key.
        let comma = generate("alice, lab B").unwrap();
        write(&tmp.path().join("comma.pub"), &comma.public_openssh);
        let admit = plan_admit(
            &root,
            0,
            &[tmp.path().join("comma.pub")],
            SupernodeAuth::KnownKeys,
        )
        .unwrap();
        admit.plan.apply().unwrap();
        let csv = std::fs::read_to_string(superlink_dir(&root).join(KNOWN_KEYS)).unwrap();
        assert!(!csv.contains(',') && !csv.contains("alice"), "{csv}");
        assert_eq!(csv.split_whitespace().count(), 2, "{csv}");

        // supernode-1 of bundle b1, then a different key claiming to be the same node.
        let first = generate("flowerbed:b1:supernode-1").unwrap();
        let second = generate("flowerbed:b1:supernode-1").unwrap();
        write(&tmp.path().join("first.pub"), &first.public_openssh);
        write(&tmp.path().join("second.pub"), &second.public_openssh);
        let admit = plan_admit(
            &root,
            0,
            &[tmp.path().join("first.pub")],
            SupernodeAuth::KnownKeys,
        )
        .unwrap();
        let kept = admit.added[0].path.clone();
        admit.plan.apply().unwrap();
        let err = plan_admit(
            &root,
            0,
            &[tmp.path().join("second.pub")],
            SupernodeAuth::KnownKeys,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("remove that file first"), "{err}");
        std::fs::remove_file(kept).unwrap();
        let admit = plan_admit(
            &root,
            0,
            &[tmp.path().join("second.pub")],
            SupernodeAuth::KnownKeys,
        )
        .unwrap();
        assert_eq!(admit.added.len(), 1);
    }

    #[test]
    fn a_private_key_or_a_foreign_key_type_is_refused_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let pair = generate("flowerbed:b1:supernode-1").unwrap();
        let private = tmp.path().join("auth.key");
        write(&private, &pair.private_openssh);
        let err = plan_admit(tmp.path(), 0, &[private], SupernodeAuth::Registration)
            .err()
            .unwrap();
        assert!(err.to_string().contains("holds a private key"), "{err}");
        let ed25519 = tmp.path().join("ed.pub");
        write(
            &ed25519,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmd2pXwPyw7BEXiDYe3jJx2yRWb6qD6H0xwT5yS9Dm2 x\n",
        );
        let err = plan_admit(tmp.path(), 0, &[ed25519], SupernodeAuth::Registration)
            .err()
            .unwrap();
        assert!(err.to_string().contains("ECDSA P-384"), "{err}");
        assert!(!tmp.path().join(ADMITTED_DIR).exists());
    }
}
