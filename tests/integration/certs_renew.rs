//! `certs renew`: a new server certificate from the folder's own CA that openssl accepts
//! against the `ca.crt` the supernodes already have, with the replaced files' owner and
//! mode, journaled so that `undo` restores exactly; refused (exit 2, nothing changed)
//! whenever the renewed certificate would not be trusted or would outlive its CA.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command as Process;

use crate::testenv::{TestEnv, assert_bad_input};

fn openssl(args: &[&str]) -> String {
    let out = Process::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn generate(env: &TestEnv, args: &[&str]) {
    env.flowerbed(["certs", "generate", "deploy", "-q"].iter().chain(args))
        .assert()
        .success();
}

fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

fn sans(cert: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ])
}

fn renew_json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let out = env
        .flowerbed(["certs", "renew", "deploy", "--json"].iter().chain(args))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn renewed_certificate_is_trusted_by_the_old_ca_copy_and_keeps_owner_mode_and_names() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: handing files to UID 49999 needs root");
        return;
    }
    let env = TestEnv::new();
    generate(
        &env,
        &["--name", "flower.example.org", "--key-type", "ecdsa-p384"],
    );
    let cert = env.join("deploy/superlink-certificates/server.pem");
    let key = env.join("deploy/superlink-certificates/server.key");
    let supernode_ca = env.join("deploy/supernode-certificates/ca.crt");
    // The operator let the container's group read the key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before_own = env.snapshot();
    env.flowerbed(["own", "deploy", "-q"]).assert().success();
    let ca_before = std::fs::read(&supernode_ca).unwrap();
    let (cert_before, key_before) = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
    let names_before = sans(&cert);

    let report = renew_json(&env, &["--name", "10.1.2.3"]);
    assert_eq!(report["key_type"], "ecdsa-p384", "{report}");

    // New certificate and key, the same CA copies, byte for byte.
    assert_ne!(std::fs::read(&cert).unwrap(), cert_before);
    assert_ne!(std::fs::read(&key).unwrap(), key_before);
    assert_eq!(std::fs::read(&supernode_ca).unwrap(), ca_before);
    // openssl: the supernodes' old ca.crt accepts it for the service name, and the key fits.
    let verified = openssl(&[
        "verify",
        "-CAfile",
        supernode_ca.to_str().unwrap(),
        "-verify_hostname",
        "superlink",
        cert.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let cert_key = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert_eq!(cert_key, key_pub, "the new key belongs to the new certificate");
    assert!(openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"]).contains("P-384"));
    // The names stay, the new one joins them.
    let names_after = sans(&cert);
    assert!(names_after.contains("DNS:flower.example.org"), "{names_after}");
    assert!(names_after.contains("IP Address:10.1.2.3"), "{names_after}");
    assert!(!names_before.contains("10.1.2.3"));
    // Owner and mode are those of the files replaced.
    assert_eq!(owner_and_mode(&cert), (49999, 49999, 0o644));
    assert_eq!(owner_and_mode(&key), (49999, 49999, 0o640));

    // One undo of the tree restores exactly what was there before `own`.
    env.flowerbed(["undo", "deploy", "-q"]).assert().success();
    let after_undo = env.snapshot();
    for (path, was) in &before_own {
        let now = &after_undo[path];
        assert_eq!(
            (now.uid, now.gid, now.mode),
            (was.uid, was.gid, was.mode),
            "{}",
            path.display()
        );
    }
}

#[test]
fn renew_follows_the_ca_and_the_flat_layout() {
    let env = TestEnv::new();
    // A CA with ten days left: the default renewal ends with it, a longer one is refused.
    generate(&env, &["--flat", "--days", "10"]);
    let cert = env.join("deploy/server.pem");
    let report = renew_json(&env, &[]);
    let not_after = report["renewed"]["not_after"].as_str().unwrap();
    let ca_end = openssl(&[
        "x509",
        "-in",
        env.join("deploy/ca.crt").to_str().unwrap(),
        "-noout",
        "-enddate",
    ]);
    assert!(!not_after.is_empty() && !ca_end.is_empty());
    let checked = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-checkend",
        &(9 * 86_400 - 3_600).to_string(),
    ]);
    assert!(checked.contains("will not expire"), "{checked}");
    openssl(&[
        "verify",
        "-CAfile",
        env.join("deploy/ca.crt").to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);

    let before = env.snapshot();
    let out = env
        .flowerbed(["certs", "renew", "deploy", "--days", "30"])
        .output()
        .unwrap();
    assert_bad_input(&out, "ca.crt");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--days 9"));
    assert_eq!(env.snapshot(), before, "nothing changed");
}

#[test]
fn renew_refuses_what_the_supernodes_would_not_trust() {
    let env = TestEnv::new();
    generate(&env, &[]);
    env.flowerbed(["certs", "generate", "other", "-q"])
        .assert()
        .success();
    let before = env.snapshot();

    // A dry run plans the two files and writes nothing.
    let out = env
        .flowerbed(["certs", "renew", "deploy", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("server.pem") && plan.contains("server.key"),
        "{plan}"
    );
    assert_eq!(env.snapshot(), before);

    let refused = |culprit: &str| {
        let before = env.snapshot();
        let out = env.flowerbed(["certs", "renew", "deploy"]).output().unwrap();
        assert_bad_input(&out, culprit);
        assert_eq!(env.snapshot(), before, "nothing changed ({culprit})");
    };
    // The supernodes trust a CA copy that is not the CA in ca/.
    let supernode_ca = env.join("deploy/supernode-certificates/ca.crt");
    let own_ca = std::fs::read(&supernode_ca).unwrap();
    std::fs::copy(env.join("other/ca/ca.crt"), &supernode_ca).unwrap();
    refused("supernode-certificates/ca.crt");
    std::fs::write(&supernode_ca, &own_ca).unwrap();
    // ca/ holds a CA that did not sign the current certificate.
    let (ca_cert, ca_key) = (env.join("deploy/ca/ca.crt"), env.join("deploy/ca/ca.key"));
    let (cert_bytes, key_bytes) = (std::fs::read(&ca_cert).unwrap(), std::fs::read(&ca_key).unwrap());
    std::fs::copy(env.join("other/ca/ca.crt"), &ca_cert).unwrap();
    std::fs::copy(env.join("other/ca/ca.key"), &ca_key).unwrap();
    refused("server.pem");
    // A CA key that is not the CA certificate's.
    std::fs::write(&ca_cert, &cert_bytes).unwrap();
    refused("ca.key");
    // No CA key at all.
    std::fs::remove_file(&ca_key).unwrap();
    refused("ca.key");
    std::fs::write(&ca_key, &key_bytes).unwrap();
    // No certificate to renew.
    let out = env.flowerbed(["certs", "renew", "other/ca"]).output().unwrap();
    assert_bad_input(&out, "other/ca");
}
