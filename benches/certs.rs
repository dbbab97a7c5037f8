//! `make bench`: time to write a full certificate set with flowerbed, against Flower's
//! openssl recipe (RSA-4096 CA and server keys, a CSR, signing) run in the same process.
//!
//! Both sides are whole commands (process start-up included), each run several times;
//! the median is reported, and the ratio recipe / flowerbed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Flower's generate script, step by step (its certificate.conf SANs as an extension file).
fn openssl_recipe(dir: &Path) {
    std::fs::write(
        dir.join("certificate.conf"),
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=DNS:localhost,IP:::1,IP:127.0.0.1\n",
    )
    .unwrap();
    let steps: [&[&str]; 5] = [
        &["genrsa", "-out", "ca.key", "4096"],
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "ca.key",
            "-sha256",
            "-subj",
            "/C=DE/ST=HH/O=Flower/CN=Flower CA",
            "-days",
            "365",
            "-out",
            "ca.crt",
        ],
        &["genrsa", "-out", "server.key", "4096"],
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/C=DE/ST=HH/O=Flower/CN=localhost",
            "-config",
            "certificate.conf",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "certificate.conf",
            "-extensions",
            "ext",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
            .status;
        assert!(status.success(), "openssl {args:?}");
    }
}

fn flowerbed(dir: &Path, key_type: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_flowerbed"))
        .args(["certs", "generate", "-q", "--key-type", key_type])
        .arg(dir.join("set"))
        .output()
        .unwrap()
        .status;
    assert!(status.success());
}

fn median(runs: usize, mut work: impl FnMut(&Path)) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let start = Instant::now();
            work(dir.path());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    // `cargo bench` passes --bench; a filter argument may follow. Nothing to parse.
    let recipe = median(5, openssl_recipe);
    let default_set = median(31, |dir| flowerbed(dir, "ecdsa-p256"));
    let rsa_set = median(5, |dir| flowerbed(dir, "rsa-4096"));
    let ratio = |d: Duration| recipe.as_secs_f64() / d.as_secs_f64();
    println!("certs generate (median wall time, whole commands)");
    println!("  openssl recipe (RSA-4096, Flower's script): {recipe:>10.2?}   baseline");
    println!(
        "  flowerbed ecdsa-p256 (default):              {default_set:>10.2?}   {:.1}x faster (target >= 50x)",
        ratio(default_set)
    );
    println!(
        "  flowerbed rsa-4096:                          {rsa_set:>10.2?}   {:.1}x faster",
        ratio(rsa_set)
    );
}
