//! Private keys in openssl's traditional forms (SEC1 `EC PRIVATE KEY`, PKCS#1 `RSA PRIVATE
//! KEY`) are read as well as PKCS#8 ones: `certs inspect` describes them, and an existing CA
//! with such a key signs a server certificate that openssl accepts.

use std::path::Path;

use crate::testenv::{TestEnv, openssl};

/// The public key's SHA-256 as `certs inspect` prints it, computed by openssl.
fn public_key_sha256(key: &str, cwd: &Path) -> String {
    openssl(
        &[
            "pkey", "-in", key, "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
        cwd,
    );
    let digest = String::from_utf8(openssl(&["dgst", "-sha256", "-r", "pub.der"], cwd)).unwrap();
    let hex = digest.split_whitespace().next().unwrap().to_ascii_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn traditional_key_forms_are_inspected_and_sign_certificates() {
    let env = TestEnv::new();
    let dir = env.path();
    openssl(
        &["ecparam", "-genkey", "-name", "prime256v1", "-out", "p256.key"],
        dir,
    );
    openssl(
        &[
            "ecparam",
            "-genkey",
            "-name",
            "secp384r1",
            "-noout",
            "-out",
            "p384.key",
        ],
        dir,
    );
    openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"], dir);
    for (key, header, description) in [
        (
            "p256.key",
            "-----BEGIN EC PARAMETERS-----",
            "ECDSA P-256 256 bits",
        ),
        (
            "p384.key",
            "-----BEGIN EC PRIVATE KEY-----",
            "ECDSA P-384 384 bits",
        ),
        ("rsa.key", "-----BEGIN RSA PRIVATE KEY-----", "RSA 2048 bits"),
    ] {
        let text = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(
            text.starts_with(header),
            "{key} is not in the traditional form: {text}"
        );
        let out = env.flowerbed(["certs", "inspect", key]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("key:                  {description}")),
            "{stdout}"
        );
        let expected = public_key_sha256(key, dir);
        assert!(
            stdout.contains(&format!("public key sha256:    {expected}")),
            "{key}: expected {expected}: {stdout}"
        );

        // The same key as the CA's: flowerbed signs with it, openssl verifies the result.
        let ca = format!("{key}.crt");
        let subject = format!("/CN=CA from {key}");
        openssl(
            &[
                "req", "-new", "-x509", "-key", key, "-subj", &subject, "-days", "30", "-out", &ca,
            ],
            dir,
        );
        let target = format!("signed-by-{key}");
        env.flowerbed(["certs", "generate", &target, "--ca-cert", &ca, "--ca-key", key])
            .assert()
            .success();
        let server = format!("{target}/superlink-certificates/server.pem");
        let verified = String::from_utf8(openssl(&["verify", "-CAfile", &ca, &server], dir)).unwrap();
        assert!(verified.trim_end().ends_with(": OK"), "{verified}");
    }
}
