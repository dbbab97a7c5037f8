//! `certs generate|inspect|verify`, judged by openssl.

use std::process::Command as Process;

use crate::testenv::{TestEnv, assert_bad_input, mode_of, openssl_text, snapshot};

mod refusals;
mod verify;

fn generate(env: &TestEnv, extra: &[&str]) {
    let mut args = vec!["certs", "generate", "deploy"];
    args.extend_from_slice(extra);
    env.flowerbed(args).assert().success();
}

#[test]
fn split_layout_is_accepted_by_openssl() {
    let env = TestEnv::new();
    generate(
        &env,
        &[
            "--name",
            "flower.example.org",
            "--name",
            "10.1.2.3",
            "--name",
            "*.fl.example.org",
        ],
    );
    let dir = env.join("deploy");
    for rel in [
        "superlink-certificates/ca.crt",
        "superlink-certificates/server.pem",
        "supernode-certificates/ca.crt",
        "ca/ca.crt",
    ] {
        assert_eq!(mode_of(&dir.join(rel)), 0o644, "{rel}");
    }
    assert_eq!(mode_of(&dir.join("superlink-certificates/server.key")), 0o600);
    assert_eq!(mode_of(&dir.join("ca/ca.key")), 0o600);
    assert_eq!(mode_of(&dir.join("ca")), 0o700);
    // The CA key must never sit in a folder a container mounts.
    assert!(!dir.join("superlink-certificates/ca.key").exists());
    assert!(!dir.join("supernode-certificates/ca.key").exists());
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("superlink-certificates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["ca.crt", "server.key", "server.pem"]);

    let verified = openssl_text(
        &[
            "verify",
            "-CAfile",
            "supernode-certificates/ca.crt",
            "superlink-certificates/server.pem",
        ],
        &dir,
    );
    assert!(verified.trim().ends_with("OK"), "{verified}");
    // openssl as a TLS client would: the name checks too.
    for (flag, name) in [
        ("-verify_hostname", "superlink"),
        ("-verify_hostname", "localhost"),
        ("-verify_hostname", "flower.example.org"),
        ("-verify_hostname", "a.fl.example.org"),
        ("-verify_ip", "127.0.0.1"),
        ("-verify_ip", "::1"),
        ("-verify_ip", "10.1.2.3"),
    ] {
        openssl_text(
            &[
                "verify",
                "-CAfile",
                "ca/ca.crt",
                flag,
                name,
                "superlink-certificates/server.pem",
            ],
            &dir,
        );
    }
    let refused = Process::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "ca/ca.crt",
            "-verify_hostname",
            "other.example.org",
        ])
        .arg("superlink-certificates/server.pem")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a name not given must not be covered");

    let server = openssl_text(
        &[
            "x509",
            "-in",
            "superlink-certificates/server.pem",
            "-noout",
            "-text",
        ],
        &dir,
    );
    assert!(server.contains("DNS:localhost"), "{server}");
    assert!(server.contains("IP Address:127.0.0.1"));
    assert!(server.contains("IP Address:0:0:0:0:0:0:0:1"));
    assert!(server.contains("DNS:superlink"));
    assert!(server.contains("TLS Web Server Authentication"));
    assert!(server.contains("Digital Signature"));
    assert!(server.contains("CA:FALSE"));
    let ca = openssl_text(&["x509", "-in", "ca/ca.crt", "-noout", "-text"], &dir);
    assert!(ca.contains("X509v3 Basic Constraints: critical"), "{ca}");
    assert!(ca.contains("CA:TRUE"));
    assert!(ca.contains("Certificate Sign"));

    let key_pub = openssl_text(
        &["pkey", "-in", "superlink-certificates/server.key", "-pubout"],
        &dir,
    );
    let cert_pub = openssl_text(
        &[
            "x509",
            "-in",
            "superlink-certificates/server.pem",
            "-noout",
            "-pubkey",
        ],
        &dir,
    );
    assert_eq!(key_pub, cert_pub, "server.key must belong to server.pem");
    let ca_key_pub = openssl_text(&["pkey", "-in", "ca/ca.key", "-pubout"], &dir);
    let ca_pub = openssl_text(&["x509", "-in", "ca/ca.crt", "-noout", "-pubkey"], &dir);
    assert_eq!(ca_key_pub, ca_pub);

    // Every copy of the CA is the same certificate.
    let ca_bytes = std::fs::read(dir.join("ca/ca.crt")).unwrap();
    assert_eq!(
        std::fs::read(dir.join("superlink-certificates/ca.crt")).unwrap(),
        ca_bytes
    );
    assert_eq!(
        std::fs::read(dir.join("supernode-certificates/ca.crt")).unwrap(),
        ca_bytes
    );
}

#[test]
fn every_key_type_verifies_with_openssl() {
    for (key_type, expect) in [
        ("ecdsa-p256", "256 bit"),
        ("ecdsa-p384", "384 bit"),
        ("rsa-2048", "2048 bit"),
        ("rsa-3072", "3072 bit"),
        ("rsa-4096", "4096 bit"),
        ("ed25519", "ED25519"),
    ] {
        let env = TestEnv::new();
        generate(&env, &["--key-type", key_type]);
        let dir = env.join("deploy");
        let verified = openssl_text(
            &[
                "verify",
                "-CAfile",
                "ca/ca.crt",
                "superlink-certificates/server.pem",
            ],
            &dir,
        );
        assert!(verified.trim().ends_with("OK"), "{key_type}: {verified}");
        let text = openssl_text(
            &[
                "x509",
                "-in",
                "superlink-certificates/server.pem",
                "-noout",
                "-text",
            ],
            &dir,
        );
        assert!(text.contains(expect), "{key_type}: {text}");
        if key_type.starts_with("rsa") {
            assert!(
                text.contains("Key Encipherment"),
                "RSA server keys need keyEncipherment"
            );
        } else {
            assert!(!text.contains("Key Encipherment"), "EC keys never encipher");
        }
        openssl_text(
            &[
                "pkey",
                "-in",
                "superlink-certificates/server.key",
                "-check",
                "-noout",
            ],
            &dir,
        );
    }
}

#[test]
fn days_sets_validity() {
    let env = TestEnv::new();
    generate(&env, &["--days", "30"]);
    let dir = env.join("deploy");
    // Valid 29 days from now, no longer valid 31 days from now.
    openssl_text(
        &[
            "x509",
            "-in",
            "superlink-certificates/server.pem",
            "-noout",
            "-checkend",
            &(29 * 86_400).to_string(),
        ],
        &dir,
    );
    let expired_later = Process::new("openssl")
        .args([
            "x509",
            "-in",
            "superlink-certificates/server.pem",
            "-noout",
            "-checkend",
        ])
        .arg((31 * 86_400).to_string())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!expired_later.status.success());
}

#[test]
fn serial_numbers_are_random() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "a"]).assert().success();
    env.flowerbed(["certs", "generate", "b"]).assert().success();
    let serial = |rel: &str| openssl_text(&["x509", "-in", rel, "-noout", "-serial"], env.path());
    let serials = [
        serial("a/ca/ca.crt"),
        serial("a/superlink-certificates/server.pem"),
        serial("b/ca/ca.crt"),
        serial("b/superlink-certificates/server.pem"),
    ];
    for (i, a) in serials.iter().enumerate() {
        for b in &serials[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn flat_layout_matches_flowers_script() {
    let env = TestEnv::new();
    env.flowerbed([
        "certs",
        "generate",
        "certificates",
        "--flat",
        "--key-type",
        "rsa-2048",
    ])
    .assert()
    .success();
    let dir = env.join("certificates");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["ca.crt", "ca.key", "server.csr", "server.key", "server.pem"]
    );
    assert_eq!(mode_of(&dir.join("ca.key")), 0o600);
    assert_eq!(mode_of(&dir.join("server.key")), 0o600);
    openssl_text(&["req", "-in", "server.csr", "-noout", "-verify"], &dir);
    let verified = openssl_text(&["verify", "-CAfile", "ca.crt", "server.pem"], &dir);
    assert!(verified.trim().ends_with("OK"));
    env.flowerbed(["certs", "verify", "certificates"])
        .assert()
        .success();
}

#[test]
fn existing_ca_signs_a_new_server_certificate_without_touching_the_ca() {
    let env = TestEnv::new();
    generate(&env, &[]);
    let ca_before = snapshot(&env.join("deploy/ca"));
    let old_server = std::fs::read(env.join("deploy/superlink-certificates/server.pem")).unwrap();
    env.flowerbed([
        "certs",
        "generate",
        "deploy",
        "--force",
        "--ca-cert",
        "deploy/ca/ca.crt",
        "--ca-key",
        "deploy/ca/ca.key",
        "--name",
        "renewed.example.org",
    ])
    .assert()
    .success();
    assert_eq!(
        snapshot(&env.join("deploy/ca")),
        ca_before,
        "the CA must stay byte-identical"
    );
    let new_server = std::fs::read(env.join("deploy/superlink-certificates/server.pem")).unwrap();
    assert_ne!(new_server, old_server);
    let dir = env.join("deploy");
    openssl_text(
        &[
            "verify",
            "-CAfile",
            "ca/ca.crt",
            "-verify_hostname",
            "renewed.example.org",
            "superlink-certificates/server.pem",
        ],
        &dir,
    );
    env.flowerbed([
        "certs",
        "verify",
        "deploy",
        "--name",
        "renewed.example.org",
        "--name",
        "superlink",
    ])
    .assert()
    .success();
}

#[test]
fn refusing_to_overwrite_leaves_files_identical() {
    let env = TestEnv::new();
    generate(&env, &[]);
    let before = env.snapshot();
    let out = env.flowerbed(["certs", "generate", "deploy"]).output().unwrap();
    assert_bad_input(&out, "already exists");
    assert_bad_input(&out, "--force");
    assert_eq!(env.snapshot(), before);
    // With --force everything is replaced, keys still 0600.
    env.flowerbed(["certs", "generate", "deploy", "--force"])
        .assert()
        .success();
    assert_ne!(env.snapshot(), before);
    assert_eq!(
        mode_of(&env.join("deploy/superlink-certificates/server.key")),
        0o600
    );
}

#[test]
fn dry_run_writes_nothing() {
    let env = TestEnv::new();
    let out = env
        .flowerbed(["certs", "generate", "deploy", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would write deploy/superlink-certificates/server.key (mode 0600)"),
        "{text}"
    );
    assert!(!env.join("deploy").exists());
}
