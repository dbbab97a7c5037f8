//! Each supernode's own Runtime API server certificate, issued by the deployment's CA (or,
//! in a supernode-only folder on another host, by a CA of that folder's own).
//!
//! In process isolation a ClientApp runner dials its supernode's Runtime API by service
//! name (`supernode-N`), or on loopback where it shares the supernode's network (a
//! Kubernetes pod), so the certificate names exactly those. Each supernode gets its own
//! key, in a folder mounted into it alone. Certificates already there are kept, as
//! supernode keys are; a half-present folder is refused rather than silently replaced.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use time::OffsetDateTime;

use super::KeyType;
use super::generate::{ExistingCa, SigningCa, new_key, private_key_pem, server_params};
use super::layout::{CA_CERT, CA_KEY, Layout, SERVER_CERT, SERVER_KEY};
use super::names::SubjectName;
use crate::fsutil::{MODE_DIR_PRIVATE, MODE_DIR_PUBLIC, MODE_PRIVATE, MODE_PUBLIC, WritePlan};

/// How long a supernode's Runtime API certificate is valid (capped by the CA's end).
const DAYS: u32 = 365;

/// The names supernode `index`'s Runtime API certificate covers: its service name (the
/// host name the runner dials), then loopback.
pub fn supernode_names(index: u32) -> Vec<SubjectName> {
    [
        format!("supernode-{index}").as_str(),
        "localhost",
        "127.0.0.1",
        "::1",
    ]
    .iter()
    .map(|name| SubjectName::parse(name).expect("supernode names are valid"))
    .collect()
}

/// Add to `plan` the Runtime API certificate of each supernode `1..=supernodes` that has
/// none yet, signed by `ca`; with `reissue`, of every supernode (`ca` is new, so the ones
/// there chain to a CA nobody trusts any more).
pub fn plan_supernode_certificates(
    layout: &Layout,
    supernodes: u32,
    ca: &SigningCa,
    reissue: bool,
    plan: &mut WritePlan,
) -> Result<()> {
    for index in 1..=supernodes {
        let dir = layout.supernode_runtime_dir(index);
        let there = present(&dir)?;
        if there && !reissue {
            continue;
        }
        plan_one(&dir, &supernode_names(index), ca, there, plan)
            .with_context(|| format!("supernode-{index}: cannot issue its Runtime API certificate"))?;
    }
    Ok(())
}

/// How long a supernode-only folder's own Runtime CA is valid.
const LOCAL_CA_DAYS: u32 = 3650;

/// The CA that issues the Runtime API certificates of a supernode-only folder (no
/// deployment CA key on this host): the one in `runtime-ca/` if there is one, else a new
/// one planned there. Either way its certificate is planned into `runner-certificates/`
/// for the ClientApp runners, unless an identical copy is there already.
pub fn plan_local_ca(layout: &Layout, plan: &mut WritePlan) -> Result<(SigningCa, bool)> {
    let dir = layout.runtime_ca_dir();
    let existing = ExistingCa {
        cert_path: dir.join(CA_CERT),
        key_path: dir.join(CA_KEY),
    };
    let fresh = existing.key_path.symlink_metadata().is_err();
    let ca = if fresh {
        if existing.cert_path.symlink_metadata().is_ok() {
            return Err(anyhow!(
                "{}: a CA certificate without its key; restore {CA_KEY}, or delete the folder to make a new Runtime CA (every supernode's Runtime certificate is then issued again)",
                dir.display()
            ));
        }
        let (ca, key_pem, _) = SigningCa::new(KeyType::EcdsaP256, OffsetDateTime::now_utc(), LOCAL_CA_DAYS)?;
        plan.dir(&dir, MODE_DIR_PRIVATE)
            .file(&existing.cert_path, ca.pem().to_string(), MODE_PUBLIC)
            .file(&existing.key_path, key_pem, MODE_PRIVATE);
        ca
    } else {
        SigningCa::load(&existing)?
    };
    // The runners' copy is always this CA's: flowerbed's own file, replaced when it differs.
    let copy = layout.runner_ca_dir().join(CA_CERT);
    plan.dir(layout.runner_ca_dir(), MODE_DIR_PUBLIC);
    if std::fs::read(&copy).ok().as_deref() != Some(ca.pem().as_bytes()) {
        plan.derived(copy, ca.pem().to_string(), MODE_PUBLIC);
    }
    Ok((ca, fresh))
}

/// Whether `dir` already holds a complete certificate set; a partial set is an error.
fn present(dir: &Path) -> Result<bool> {
    let exists = |name: &str| dir.join(name).symlink_metadata().is_ok();
    let found: Vec<&str> = [CA_CERT, SERVER_CERT, SERVER_KEY]
        .into_iter()
        .filter(|name| exists(name))
        .collect();
    match found.len() {
        0 => Ok(false),
        3 => Ok(true),
        _ => Err(anyhow!(
            "{}: holds only {} of ca.crt, server.pem, server.key; restore the rest, or delete the folder to issue a new set",
            dir.display(),
            found.join(", ")
        )),
    }
}

/// Plan one certificate set in `dir`; `replace`: over the one there (flowerbed's own).
fn plan_one(
    dir: &Path,
    names: &[SubjectName],
    ca: &SigningCa,
    replace: bool,
    plan: &mut WritePlan,
) -> Result<()> {
    let key_type = KeyType::EcdsaP256;
    let key = new_key(key_type)?;
    let mut params = server_params(names, key_type, OffsetDateTime::now_utc(), DAYS)?;
    params.not_after = params.not_after.min(ca.not_after);
    let cert = params
        .signed_by(&key, &ca.issuer)
        .context("cannot sign the certificate")?;
    plan.dir(
        dir.parent().expect("a supernode folder has a parent"),
        MODE_DIR_PUBLIC,
    )
    .dir(dir, MODE_DIR_PUBLIC);
    let files = [
        (CA_CERT, ca.pem.clone(), MODE_PUBLIC),
        (SERVER_CERT, cert.pem(), MODE_PUBLIC),
        (SERVER_KEY, private_key_pem(&key, key_type)?, MODE_PRIVATE),
    ];
    for (name, contents, mode) in files {
        if replace {
            plan.derived(dir.join(name), contents, mode);
        } else {
            plan.file(dir.join(name), contents, mode);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;
    use crate::tls::generate::{GenerateSettings, generate, names_with_defaults};
    use crate::tls::layout::LayoutKind;

    #[test]
    fn each_supernode_gets_its_own_key_and_openssl_verifies_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let generated = generate(&GenerateSettings {
            dir: tmp.path().to_path_buf(),
            layout: LayoutKind::Split,
            names: names_with_defaults(&[]),
            key_type: KeyType::EcdsaP256,
            days: 30,
            existing_ca: None,
            force: false,
        })
        .unwrap();
        let layout = Layout::new(tmp.path(), LayoutKind::Split);
        let mut plan = generated.plan;
        plan_supernode_certificates(&layout, 2, &generated.ca, false, &mut plan).unwrap();
        plan.apply().unwrap();
        let ca = layout.ca_cert();
        for index in 1..=2u32 {
            let dir = layout.supernode_runtime_dir(index);
            let mode = std::fs::metadata(dir.join(SERVER_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let verify = |host: &str| {
                Command::new("openssl")
                    .args([
                        "verify",
                        "-purpose",
                        "sslserver",
                        "-verify_hostname",
                        host,
                        "-CAfile",
                    ])
                    .arg(&ca)
                    .arg(dir.join(SERVER_CERT))
                    .output()
                    .unwrap()
                    .status
                    .success()
            };
            assert!(verify(&format!("supernode-{index}")), "supernode-{index}");
            assert!(
                !verify(&format!("supernode-{}", 3 - index)),
                "another supernode's name"
            );
            assert!(!verify("superlink"), "the superlink's name");
        }
        let key = |index| std::fs::read(layout.supernode_runtime_dir(index).join(SERVER_KEY)).unwrap();
        assert_ne!(key(1), key(2));

        // A second run keeps them; a half-present folder is refused.
        let signing = SigningCa::load(&crate::tls::generate::ExistingCa {
            cert_path: layout.ca_cert(),
            key_path: layout.ca_key(),
        })
        .unwrap();
        let mut again = WritePlan::new(false);
        plan_supernode_certificates(&layout, 2, &signing, false, &mut again).unwrap();
        assert!(again.files().is_empty());
        std::fs::remove_file(layout.supernode_runtime_dir(2).join(SERVER_KEY)).unwrap();
        let err =
            plan_supernode_certificates(&layout, 2, &signing, false, &mut WritePlan::new(true)).unwrap_err();
        assert!(err.to_string().contains("holds only"), "{err}");
    }
}
