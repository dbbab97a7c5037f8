//! Supernode authentication across hosts, for every release: the superlink's host makes no
//! supernode key; the supernodes' host makes its own from the bundle and sends the public
//! halves back; `supernodes admit` takes them in (idempotently, never a private key), and
//! `check` on the superlink's folder accounts for every bundle and every admitted key.

use std::os::unix::fs::MetadataExt;
use std::process::Command as Process;

use serde_json::Value;

use crate::testenv::{TestEnv, assert_bad_input};

use super::{PUBLIC, check, list, run_fix};

fn admit(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = vec!["supernodes", "admit", "link", "--json"];
    all.extend_from_slice(args);
    let out = env.flowerbed(all).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn known_keys(env: &TestEnv) -> Option<String> {
    std::fs::read_to_string(env.join("link/superlink-auth/supernode-public-keys.csv")).ok()
}

#[test]
fn keys_are_made_on_each_supernodes_host_and_admitted_on_the_superlinks_in_every_release() {
    for profile in flowerbed::deploy::PROFILES {
        let version = profile.version;
        let env = TestEnv::new();
        env.flowerbed(["quickstart", "link", "--role", "superlink", "--supernode-auth"])
            .args(["--public-address", PUBLIC, "--flower-version", version])
            .assert()
            .success();
        // No supernode's private key is made on the superlink's host.
        assert!(!env.join("link/supernode-auth").exists(), "{version}");
        env.flowerbed(["bundle", "supernode", "link", "--out", "site.tar.gz"])
            .assert()
            .success();
        for entry in list(&env.join("site.tar.gz")) {
            assert!(
                !String::from_utf8_lossy(&entry.contents).contains("PRIVATE KEY"),
                "{version}"
            );
            assert!(
                !entry.path.contains("supernode-auth/"),
                "{version}: {}",
                entry.path
            );
        }
        let (_, ids, _) = check(&env, "link");
        assert_eq!(ids, ["supernodes-not-admitted"], "{version}");

        // The supernodes' host: its own pairs, the public halves copied for the way back.
        env.flowerbed(["quickstart", "--from-bundle", "site.tar.gz", "node"])
            .assert()
            .success();
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(env.join("link/bundles/site.tar.gz.json")).unwrap(),
        )
        .unwrap();
        let bundle_id = record["id"].as_str().unwrap().to_string();
        for n in 1..=2 {
            let pair = env.join(format!("node/supernode-auth/supernode-{n}"));
            let key = std::fs::metadata(pair.join("auth.key")).unwrap();
            assert_eq!((key.mode() & 0o777, key.uid()), (0o600, 49_999), "{version}");
            let public = std::fs::read_to_string(pair.join("auth.pub")).unwrap();
            assert!(
                public
                    .trim_end()
                    .ends_with(&format!(" flowerbed:{bundle_id}:supernode-{n}")),
                "{version}: {public}"
            );
            let sent =
                std::fs::read_to_string(env.join(format!("node/supernode-public-keys/supernode-{n}.pub")));
            assert_eq!(sent.unwrap(), public, "{version}");
        }
        let (code, ids, report) = check(&env, "node");
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{version}: {report}");

        // Back on the superlink's host: a dry run changes nothing; admitting twice adds once.
        let before = env.snapshot();
        let dry = admit(&env, &["node/supernode-public-keys", "--dry-run"]);
        assert_eq!(dry["added"].as_array().unwrap().len(), 2, "{version}");
        assert_eq!(env.snapshot(), before, "{version}");
        let first = admit(&env, &["node/supernode-public-keys"]);
        assert_eq!(first["added"].as_array().unwrap().len(), 2, "{version}");
        let next = first["next"].as_str().unwrap();
        match version {
            "1.13.1" | "1.21.0" => {
                assert!(next.contains("restart"), "{version}: {next}");
                let csv = known_keys(&env).unwrap();
                assert_eq!(csv.lines().count(), 2, "{version}");
                for n in 1..=2 {
                    let sent = std::fs::read_to_string(
                        env.join(format!("node/supernode-public-keys/supernode-{n}.pub")),
                    );
                    // The key, without the comment (Flower's CSV reader splits at commas).
                    let sent = sent.unwrap();
                    let key: Vec<&str> = sent.split_whitespace().take(2).collect();
                    assert!(csv.lines().any(|line| line == key.join(" ")), "{version}: {csv}");
                }
            }
            _ => {
                assert!(next.contains("register-supernodes.sh"), "{version}: {next}");
                assert_eq!(known_keys(&env), None, "{version}");
                let script = std::fs::read_to_string(env.join("link/register-supernodes.sh")).unwrap();
                assert!(script.contains("admitted-supernodes/*.pub"), "{version}");
                let syntax = Process::new("sh")
                    .arg("-n")
                    .arg(env.join("link/register-supernodes.sh"))
                    .status();
                assert!(syntax.unwrap().success(), "{version}");
            }
        }
        let after = env.snapshot();
        let again = admit(&env, &["node/supernode-public-keys"]);
        assert!(again["added"].as_array().unwrap().is_empty(), "{version}");
        assert_eq!(again["already"].as_array().unwrap().len(), 2, "{version}");
        assert!(
            again["next"].is_null(),
            "{version}: nothing new, nothing to restart"
        );
        assert_eq!(env.snapshot(), after, "{version}");
        let (code, ids, report) = check(&env, "link");
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{version}: {report}");

        // A private key is refused whole, and nothing changes.
        let out = env
            .flowerbed([
                "supernodes",
                "admit",
                "link",
                "node/supernode-auth/supernode-1/auth.key",
            ])
            .output()
            .unwrap();
        assert_bad_input(&out, "holds a private key");
        assert_eq!(env.snapshot(), after, "{version}");

        // A key nobody handed out a bundle for: check names it, and its fix removes it.
        let stranger = flowerbed::auth::generate("someone@elsewhere").unwrap();
        std::fs::write(env.join("stranger.pub"), stranger.public_openssh).unwrap();
        admit(&env, &["stranger.pub"]);
        let (_, ids, report) = check(&env, "link");
        assert_eq!(ids, ["supernode-key-unknown"], "{version}: {report}");
        run_fix(&env, report["findings"][0]["fix"].as_str().unwrap());
        let (code, ids, report) = check(&env, "link");
        assert_eq!((code, ids), (0, Vec::<String>::new()), "{version}: {report}");
        if let Some(csv) = known_keys(&env) {
            assert_eq!(csv.lines().count(), 2, "{version}: the stranger left the CSV");
        }
    }
}

#[test]
fn admit_refuses_what_is_not_a_superlink_with_supernode_auth() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "plain", "--no-own"])
        .assert()
        .success();
    let key = flowerbed::auth::generate("x").unwrap();
    std::fs::write(env.join("k.pub"), key.public_openssh).unwrap();
    let before = env.snapshot();
    let out = env
        .flowerbed(["supernodes", "admit", "plain", "k.pub"])
        .output()
        .unwrap();
    assert_bad_input(&out, "not a superlink deployment with supernode authentication");
    let out = env
        .flowerbed(["supernodes", "admit", "missing", "k.pub"])
        .output()
        .unwrap();
    assert_bad_input(&out, "missing");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_supernodes_folder_made_without_a_bundle_and_a_bundle_made_again() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "link", "--role", "superlink", "--supernode-auth"])
        .args(["--public-address", PUBLIC])
        .assert()
        .success();
    // By hand, without a bundle: the superlink's CA copied in, keys made here.
    let ca = env.join("site/supernode-certificates");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::copy(env.join("link/supernode-certificates/ca.crt"), ca.join("ca.crt")).unwrap();
    env.flowerbed(["quickstart", "site", "--role", "supernode", "--supernode-auth"])
        .args(["--superlink-address", PUBLIC])
        .assert()
        .success();
    let public = std::fs::read_to_string(env.join("site/supernode-public-keys/supernode-1.pub")).unwrap();
    assert!(public.trim_end().ends_with(" flowerbed-supernode-1"), "{public}");
    // A re-run with one more supernode keeps the pairs and adds the third.
    env.flowerbed(["quickstart", "site", "--supernodes", "3", "--force"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(env.join("site/supernode-public-keys/supernode-1.pub")).unwrap(),
        public
    );
    assert!(env.join("site/supernode-public-keys/supernode-3.pub").is_file());

    // The same archive made again: one record, so one warning, not two.
    for _ in 0..2 {
        env.flowerbed(["bundle", "supernode", "link", "--out", "site.tar.gz", "--force"])
            .assert()
            .success();
    }
    let (_, ids, report) = check(&env, "link");
    assert_eq!(ids, ["supernodes-not-admitted"], "{report}");
}
