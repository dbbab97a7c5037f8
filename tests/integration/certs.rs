//! `certs generate|inspect|verify`, judged by openssl.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command as Process;

use crate::testenv::{TestEnv, assert_bad_input, snapshot};

/// Run openssl with `args`; panic with its stderr on failure.
fn openssl(args: &[&str], cwd: &Path) -> String {
    let out = Process::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

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

    let verified = openssl(
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
        openssl(
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

    let server = openssl(
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
    let ca = openssl(&["x509", "-in", "ca/ca.crt", "-noout", "-text"], &dir);
    assert!(ca.contains("X509v3 Basic Constraints: critical"), "{ca}");
    assert!(ca.contains("CA:TRUE"));
    assert!(ca.contains("Certificate Sign"));

    let key_pub = openssl(
        &["pkey", "-in", "superlink-certificates/server.key", "-pubout"],
        &dir,
    );
    let cert_pub = openssl(
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
    let ca_key_pub = openssl(&["pkey", "-in", "ca/ca.key", "-pubout"], &dir);
    let ca_pub = openssl(&["x509", "-in", "ca/ca.crt", "-noout", "-pubkey"], &dir);
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
        let verified = openssl(
            &[
                "verify",
                "-CAfile",
                "ca/ca.crt",
                "superlink-certificates/server.pem",
            ],
            &dir,
        );
        assert!(verified.trim().ends_with("OK"), "{key_type}: {verified}");
        let text = openssl(
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
        openssl(
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
    openssl(
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
    let serial = |rel: &str| openssl(&["x509", "-in", rel, "-noout", "-serial"], env.path());
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
    openssl(&["req", "-in", "server.csr", "-noout", "-verify"], &dir);
    let verified = openssl(&["verify", "-CAfile", "ca.crt", "server.pem"], &dir);
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
    openssl(
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
    let fingerprint = openssl(
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
    openssl(&["genrsa", "-out", "ca.key", "2048"], dir);
    openssl(
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
    openssl(
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

// ---- bad input: exit 2, one line naming the culprit, nothing on disk changed ----

/// Run flowerbed in `env`, assert bad input naming `culprit`, and that the tree is unchanged.
fn assert_refused(env: &TestEnv, args: &[&str], culprit: &str) {
    let before = env.snapshot();
    let out = env.flowerbed(args).output().unwrap();
    assert_bad_input(&out, culprit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
}

/// Like [`assert_refused`] for clap usage errors, which print a usage block after the line.
fn assert_usage_error(env: &TestEnv, args: &[&str], culprit: &str) {
    let before = env.snapshot();
    let out = env.flowerbed(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(culprit),
        "{args:?} does not name {culprit}: {stderr}"
    );
    assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
}

#[test]
fn bad_inputs_are_refused_without_changes() {
    let env = TestEnv::new();
    generate(&env, &[]);
    std::fs::write(
        env.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(env.join("noise.bin"), [0x30u8, 0x82, 0xff, 0xff, 1, 2, 3]).unwrap();
    std::fs::write(env.join("empty.pem"), "").unwrap();
    std::fs::write(
        env.join("encrypted.key"),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(env.join("a-file"), "x").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), env.join("linked")).unwrap();
    write_expired_ca(&env);

    assert_refused(&env, &["certs", "inspect", "garbage.pem"], "garbage.pem");
    assert_refused(&env, &["certs", "inspect", "noise.bin"], "noise.bin");
    assert_refused(&env, &["certs", "inspect", "empty.pem"], "empty.pem");
    assert_refused(&env, &["certs", "inspect", "encrypted.key"], "encrypted");
    assert_refused(&env, &["certs", "inspect", "deploy"], "deploy");
    assert_refused(&env, &["certs", "inspect", "missing.pem"], "missing.pem");
    assert_refused(&env, &["certs", "generate", "a-file"], "a-file");
    assert_refused(&env, &["certs", "generate", "linked"], "linked");
    assert_refused(&env, &["certs", "generate", "deploy"], "deploy/");
    assert_refused(
        &env,
        &["certs", "generate", "new", "--name", "bad name"],
        "--name",
    );
    assert_refused(
        &env,
        &["certs", "generate", "new", "--name", "superlink:9092"],
        "superlink:9092",
    );
    assert_refused(&env, &["certs", "generate", "new", "--name", "*.org"], "*.org");
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/superlink-certificates/server.pem",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "not a CA",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/ca/ca.crt",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "--ca-key",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "nope.crt",
            "--ca-key",
            "deploy/ca/ca.key",
        ],
        "nope.crt",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "expired/ca.crt",
            "--ca-key",
            "expired/ca.key",
        ],
        "expired",
    );
    assert_refused(&env, &["certs", "verify", "a-file"], "a-file");
    assert_refused(&env, &["certs", "verify", "linked"], "no certificates found");
    assert_refused(
        &env,
        &[
            "certs",
            "verify",
            "--ca",
            "garbage.pem",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ],
        "garbage.pem",
    );
    assert_refused(
        &env,
        &[
            "certs",
            "verify",
            "--ca",
            "deploy/ca/ca.crt",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/ca/ca.crt",
        ],
        "holds no private key",
    );
    assert_usage_error(
        &env,
        &["certs", "generate", "new", "--key-type", "dsa-1024"],
        "dsa-1024",
    );
    assert_usage_error(&env, &["certs", "generate", "new", "--days", "0"], "--days");
    assert_usage_error(
        &env,
        &["certs", "generate", "new", "--ca-cert", "deploy/ca/ca.crt"],
        "--ca-key",
    );
    assert_usage_error(&env, &["certs", "verify", "--ca", "deploy/ca/ca.crt"], "--cert");
    assert!(!env.join("new").exists());
}

fn write_expired_ca(env: &TestEnv) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir(env.join("expired")).unwrap();
    std::fs::write(env.join("expired/ca.crt"), cert.pem()).unwrap();
    std::fs::write(env.join("expired/ca.key"), key.serialize_pem()).unwrap();
}

#[test]
fn unwritable_dir_is_refused_for_non_root() {
    // As root every directory is writable, so run as nobody over a root-owned folder.
    let env = TestEnv::new();
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(env.join("locked")).unwrap();
    std::fs::set_permissions(env.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    let before = env.snapshot();
    let out = Process::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["certs", "generate", "locked"])
        .current_dir(env.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("setpriv (util-linux) runs the binary as nobody");
    assert_bad_input(&out, "locked: not writable");
    assert_eq!(env.snapshot(), before);
}

/// A tiny tmpfs, unmounted (by path, ours only) when dropped.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// `pages_free` 4 KiB pages left free after filling; None where mounting is refused.
    fn new(pages_free: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Process::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let fs = Self { dir };
        // Fill all but `pages_free` pages.
        std::fs::write(
            fs.dir.path().join("filler"),
            vec![0u8; usize::try_from((16 - pages_free) * 4096).unwrap()],
        )
        .unwrap();
        Some(fs)
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn disk_full_midway_leaves_nothing_half_written() {
    let Some(fs) = TinyFs::new(3) else {
        panic!("cannot mount a tmpfs: the tests need root (as `make test` runs them)");
    };
    let before = snapshot(fs.dir.path());
    let out = crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy"])
        .output()
        .unwrap();
    assert_bad_input(&out, "No space left on device");
    assert_eq!(
        snapshot(fs.dir.path()),
        before,
        "a failed write must leave no file or folder behind"
    );
    // With an existing set and --force, a failure keeps the old files byte-identical.
    std::fs::remove_file(fs.dir.path().join("filler")).unwrap();
    crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy"])
        .assert()
        .success();
    std::fs::write(fs.dir.path().join("filler"), vec![0u8; 5 * 4096]).unwrap();
    let before = snapshot(fs.dir.path());
    let out = crate::testenv::flowerbed()
        .current_dir(fs.dir.path())
        .args(["certs", "generate", "deploy", "--force"])
        .output()
        .unwrap();
    assert_bad_input(&out, "No space left on device");
    assert_eq!(snapshot(fs.dir.path()), before);
}
