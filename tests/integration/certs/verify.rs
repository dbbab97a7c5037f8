//! `certs inspect` and `certs verify` (and `--json`), judged by openssl: fingerprints,
//! names, expiry, mismatched CA copies, exit codes.

use std::path::Path;

use crate::testenv::{TestEnv, openssl_text};

use super::generate;

#[test]
fn json_reports_paths_fingerprints_names_and_expiry() {
    let env = TestEnv::new();
    let out = env
        .flowerbed(["certs", "generate", "deploy", "--json", "--name", "10.0.0.7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.contains(&"deploy/superlink-certificates/server.key"));
    assert_eq!(
        report["names"][4],
        serde_json::json!({"type": "ip", "value": "10.0.0.7"})
    );
    let fingerprint = openssl_text(
        &[
            "x509",
            "-in",
            "superlink-certificates/server.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        &env.join("deploy"),
    );
    assert_eq!(
        fingerprint
            .trim()
            .trim_start_matches("sha256 Fingerprint=")
            .trim_start_matches("SHA256 Fingerprint="),
        report["server"]["sha256"].as_str().unwrap()
    );
    assert!(report["server"]["not_after"].as_str().unwrap().len() >= 20);
}

#[test]
fn inspect_reads_openssl_made_material() {
    // Flower's own recipe: RSA-4096 keys made by openssl.
    let env = TestEnv::new();
    let dir = env.path();
    openssl_text(&["genrsa", "-out", "ca.key", "2048"], dir);
    openssl_text(
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "ca.key",
            "-sha256",
            "-subj",
            "/O=Flower/CN=Flower CA",
            "-days",
            "30",
            "-out",
            "ca.crt",
        ],
        dir,
    );
    let out = env
        .flowerbed(["certs", "inspect", "ca.crt", "ca.key"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("O=Flower, CN=Flower CA"), "{text}");
    assert!(text.contains("RSA 2048 bits"));
    assert!(text.contains("CA:                   yes"));
    let json = env
        .flowerbed(["certs", "inspect", "--json", "ca.crt", "ca.key"])
        .output()
        .unwrap();
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(items[0]["kind"], "certificate");
    assert_eq!(items[0]["is_ca"], true);
    assert_eq!(items[1]["kind"], "private-key");
    assert_eq!(items[1]["key"]["bits"], 2048);
    // DER input too.
    openssl_text(
        &["x509", "-in", "ca.crt", "-outform", "DER", "-out", "ca.der"],
        dir,
    );
    let der = env
        .flowerbed(["certs", "inspect", "--json", "ca.der"])
        .output()
        .unwrap();
    let der_items: serde_json::Value = serde_json::from_slice(&der.stdout).unwrap();
    assert_eq!(der_items[0]["sha256"], items[0]["sha256"]);
}

#[test]
fn verify_answers_with_exit_codes() {
    let env = TestEnv::new();
    generate(&env, &[]);
    generate_other(&env);
    env.flowerbed(["certs", "verify", "deploy"]).assert().code(0);
    // A name the supernodes dial that no SAN covers.
    let out = env
        .flowerbed(["certs", "verify", "deploy", "--name", "superlink.example.org"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name-not-covered"));
    // Key of another certificate.
    let out = env
        .flowerbed([
            "certs",
            "verify",
            "--ca",
            "deploy/ca/ca.crt",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "other/superlink-certificates/server.key",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["findings"][0]["id"], "key-mismatch");
    // A server certificate of another CA.
    let out = env
        .flowerbed([
            "certs",
            "verify",
            "--ca",
            "other/ca/ca.crt",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain-issuer"));
    // A "CA" that is not a CA.
    let out = env
        .flowerbed([
            "certs",
            "verify",
            "--ca",
            "other/superlink-certificates/server.pem",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ca-not-ca"));
    // Expiry within --warn-days is a warning, not a failure.
    let out = env
        .flowerbed(["certs", "verify", "deploy", "--warn-days", "400"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning[expiring]"));
}

#[test]
fn verify_flags_mismatched_ca_copies() {
    let env = TestEnv::new();
    generate(&env, &[]);
    generate_other(&env);
    std::fs::copy(
        env.join("other/ca/ca.crt"),
        env.join("deploy/superlink-certificates/ca.crt"),
    )
    .unwrap();
    let out = env.flowerbed(["certs", "verify", "deploy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ca-copy-mismatch"));
}

#[test]
fn verify_flags_an_expired_certificate() {
    let env = TestEnv::new();
    generate(&env, &[]);
    let dir = env.join("deploy");
    write_expired_server_cert(&dir);
    let out = env
        .flowerbed(["certs", "verify", "deploy", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"expired"), "{ids:?}");
}

fn generate_other(env: &TestEnv) {
    env.flowerbed(["certs", "generate", "other"]).assert().success();
}

/// Replace the server certificate with one of the same key and CA that expired yesterday.
fn write_expired_server_cert(dir: &Path) {
    let ca_pem = std::fs::read_to_string(dir.join("ca/ca.crt")).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca/ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let server_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(dir.join("superlink-certificates/server.key")).unwrap(),
    )
    .unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["superlink".to_string(), "localhost".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("superlink-certificates/server.pem"), cert.pem()).unwrap();
}
