//! Real Flower accepts our certificates: a native `flower-superlink` with them, and a
//! `flower-supernode` trusting our CA, over loopback. The release is pinned by the
//! Makefile (`FLWR_VERSION`), installed into a project-local venv by `make test`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use crate::testenv::TestEnv;

/// A venv with flwr `version`, made (once, cached) by the project's script.
pub(crate) fn release_venv(version: &str) -> PathBuf {
    let out = Process::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flwr-venv.sh"))
        .arg(version)
        .output()
        .expect("scripts/flwr-venv.sh runs");
    assert!(
        out.status.success(),
        "installing flwr {version} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Real-Flower tests, one per release, each named after its release so CI output says
/// which one failed: `per_release!(LIST, check; test_name => "1.13.1", ...)` defines the
/// tests and `LIST`, their (test, release) pairs, which a guard test holds against the
/// profile table with [`assert_covers_releases`] (`macro_rules!` cannot make a test name
/// from the table's version strings, so the list is written out and guarded instead).
macro_rules! per_release {
    ($list:ident, $check:path; $($name:ident => $version:literal),+ $(,)?) => {
        const $list: &[(&str, &str)] = &[$((stringify!($name), $version)),+];
        $(
            #[test]
            fn $name() {
                $check($version);
            }
        )+
    };
}
pub(crate) use per_release;

/// Panics unless `tests` (test name, release) covers exactly `releases`, each once, with the
/// release spelled in its test's name: a release added to the profile table with no test of
/// its own, or a test left for a release the table dropped.
pub(crate) fn assert_covers_releases<'a>(
    what: &str,
    tests: &[(&str, &str)],
    releases: impl IntoIterator<Item = &'a str>,
) {
    let wanted: Vec<&str> = releases.into_iter().collect();
    let covered: Vec<&str> = tests.iter().map(|&(_, version)| version).collect();
    let mut gaps = Vec::new();
    for version in wanted.iter().filter(|v| !covered.contains(v)) {
        gaps.push(format!("{version} has no test"));
    }
    for (i, (name, version)) in tests.iter().enumerate() {
        if !wanted.contains(version) {
            gaps.push(format!("{name}: {version} is not in the table"));
        } else if covered[..i].contains(version) {
            gaps.push(format!("{name}: {version} has a test already"));
        }
        if !name.contains(&version.replace('.', "_")) {
            gaps.push(format!("{name} runs {version}"));
        }
    }
    assert!(
        gaps.is_empty(),
        "{what}: the per_release! list and the profile table (Profile::all()) differ: {}",
        gaps.join("; ")
    );
}

#[test]
fn release_coverage_guard_fails_on_a_gap() {
    let tests = [("a_1_13_1", "1.13.1"), ("a_1_21_0", "1.21.0")];
    assert_covers_releases("ok", &tests, ["1.13.1", "1.21.0"]);
    for (tests, releases) in [
        (&tests[..1], &["1.13.1", "1.21.0"][..]),
        (&tests[..], &["1.13.1"][..]),
        (
            &[("a_1_13_1", "1.13.1"), ("b_1_13_1", "1.13.1")][..],
            &["1.13.1"][..],
        ),
        (&[("a_1_13_1", "1.21.0")][..], &["1.21.0"][..]),
    ] {
        let gap = std::panic::catch_unwind(|| {
            assert_covers_releases("gap", tests, releases.iter().copied());
        });
        assert!(gap.is_err(), "{tests:?} passed for {releases:?}");
    }
}

/// The venv holding the pinned flwr release; missing means the test setup is broken.
fn flwr_venv() -> PathBuf {
    let venv = std::env::var_os("FLOWERBED_FLWR_VENV").map_or_else(
        || {
            let newest = flowerbed::deploy::Profile::newest().version;
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(".venv/flwr-{newest}"))
        },
        PathBuf::from,
    );
    assert!(
        venv.join("bin/flower-superlink").is_file(),
        "no flwr venv at {} (run `make test`, which installs it)",
        venv.display()
    );
    venv
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Flower process in its own process group, stopped (with its children) when dropped.
pub(crate) struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    pub(crate) fn start(venv: &Path, program: &str, args: &[&str], cwd: &Path, log_name: &str) -> Self {
        let log = cwd.join(log_name);
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Process::new(venv.join("bin").join(program))
            .args(args)
            .current_dir(cwd)
            // The superlink spawns `flower-superexec` by name.
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("FLWR_HOME", cwd.join("flwr-home"))
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .process_group(0)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has ended (its status is then collected).
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Our own process group only: the component and the superexec children it spawned.
        let pgid = nix::unistd::Pid::from_raw(-i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Nodes the superlink reports as online, asked through the `flwr` CLI over TLS.
fn online_nodes(venv: &Path, flwr_home: &Path) -> Option<usize> {
    let out = Process::new(venv.join("bin/flwr"))
        .args(["supernode", "list", "local", "--format", "json"])
        .env("FLWR_HOME", flwr_home)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find('{')?;
    let value: serde_json::Value = serde_json::from_str(&text[start..]).ok()?;
    Some(
        value["nodes"]
            .as_array()?
            .iter()
            .filter(|node| node["status"] == "online")
            .count(),
    )
}

fn write_flwr_config(flwr_home: &Path, address: &str, ca: &Path) {
    std::fs::create_dir_all(flwr_home).unwrap();
    std::fs::write(
        flwr_home.join("config.toml"),
        format!(
            "[superlink]\ndefault = \"local\"\n\n[superlink.local]\naddress = \"{address}\"\nroot-certificates = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
}

/// Start a superlink with `dir`'s certificates, a supernode dialing `dial_host`, and report
/// whether the superlink lists the node online within `wait` (asked via `cli_host`).
fn supernode_registers(
    env: &TestEnv,
    layout_dir: &Path,
    dial_host: &str,
    cli_host: &str,
    wait: Duration,
) -> bool {
    let venv = flwr_venv();
    let port = free_port();
    let node_port = free_port();
    let certs = layout_dir.join("superlink-certificates");
    let ca = layout_dir.join("supernode-certificates/ca.crt");
    let superlink = Running::start(
        &venv,
        "flower-superlink",
        &[
            "--ssl-ca-certfile",
            certs.join("ca.crt").to_str().unwrap(),
            "--ssl-certfile",
            certs.join("server.pem").to_str().unwrap(),
            "--ssl-keyfile",
            certs.join("server.key").to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--disable-runtime-dependency-installation",
        ],
        env.path(),
        "superlink.log",
    );
    let supernode = Running::start(
        &venv,
        "flower-supernode",
        &[
            "--superlink",
            &format!("{dial_host}:{port}"),
            "--root-certificates",
            ca.to_str().unwrap(),
            "--port",
            &node_port.to_string(),
        ],
        env.path(),
        "supernode.log",
    );
    let flwr_home = env.join("flwr-cli");
    write_flwr_config(&flwr_home, &format!("{cli_host}:{port}"), &ca);
    let deadline = Instant::now() + wait;
    let mut registered = false;
    while Instant::now() < deadline {
        if online_nodes(&venv, &flwr_home).unwrap_or(0) >= 1 {
            registered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !registered {
        eprintln!(
            "superlink log:\n{}\nsupernode log:\n{}",
            superlink.log(),
            supernode.log()
        );
    }
    registered
}

fn accepted_with_key_type(key_type: &str) {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "deploy", "--key-type", key_type])
        .assert()
        .success();
    assert!(
        supernode_registers(
            &env,
            &env.join("deploy"),
            "127.0.0.1",
            "127.0.0.1",
            Duration::from_secs(60)
        ),
        "a supernode trusting our CA did not register with a superlink using our {key_type} certificate"
    );
}

#[test]
fn flower_accepts_default_key_type() {
    accepted_with_key_type("ecdsa-p256");
}

#[test]
fn flower_accepts_rsa_4096() {
    accepted_with_key_type("rsa-4096");
}

#[test]
fn flower_rejects_a_certificate_missing_the_dialed_name() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "deploy"]).assert().success();
    let dir = env.join("deploy");
    // A server certificate from the same CA that covers only `localhost`, not 127.0.0.1.
    let certs = dir.join("superlink-certificates");
    let status = Process::new("openssl")
        .args([
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "narrow.csr",
        ])
        .current_dir(&certs)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        certs.join("san.ext"),
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let status = Process::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            "narrow.csr",
            "-CA",
            "../ca/ca.crt",
            "-CAkey",
            "../ca/ca.key",
        ])
        .args([
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ])
        .current_dir(&certs)
        .status()
        .unwrap();
    assert!(status.success());

    // flowerbed predicts it...
    let out = env
        .flowerbed(["certs", "verify", "deploy", "--name", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no subject alternative name covers 127.0.0.1"));

    // ...and Flower's handshake agrees: dialing 127.0.0.1 never registers, while the CLI
    // dialing the covered name `localhost` reaches the superlink fine.
    assert!(
        !supernode_registers(&env, &dir, "127.0.0.1", "localhost", Duration::from_secs(20)),
        "the supernode registered although the certificate does not cover 127.0.0.1"
    );
    let supernode_log = std::fs::read_to_string(env.join("supernode.log")).unwrap();
    assert!(
        supernode_log.contains("CERTIFICATE_VERIFY_FAILED")
            || supernode_log.contains("certificate verify failed")
            || supernode_log.contains("SSL"),
        "expected a TLS verification failure in the supernode log:\n{supernode_log}"
    );
}

#[test]
fn flower_accepts_ed25519() {
    accepted_with_key_type("ed25519");
}

/// Flower 1.13.1, the seed-era release: gRPC on 9091-9093, no `flwr supernode list`, so
/// the superlink's own record of the node is the evidence.
fn seed_era_registers(key_type: &str) -> (bool, String) {
    let venv = release_venv("1.13.1");
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "deploy", "--key-type", key_type])
        .assert()
        .success();
    let certs = env.join("deploy/superlink-certificates");
    let ca = env.join("deploy/supernode-certificates/ca.crt");
    let fleet = free_port();
    let superlink = Running::start(
        &venv,
        "flower-superlink",
        &[
            "--ssl-ca-certfile",
            certs.join("ca.crt").to_str().unwrap(),
            "--ssl-certfile",
            certs.join("server.pem").to_str().unwrap(),
            "--ssl-keyfile",
            certs.join("server.key").to_str().unwrap(),
            "--fleet-api-address",
            &format!("127.0.0.1:{fleet}"),
            "--serverappio-api-address",
            &format!("127.0.0.1:{}", free_port()),
            "--exec-api-address",
            &format!("127.0.0.1:{}", free_port()),
        ],
        env.path(),
        "superlink.log",
    );
    let supernode = Running::start(
        &venv,
        "flower-supernode",
        &[
            "--superlink",
            &format!("127.0.0.1:{fleet}"),
            "--root-certificates",
            ca.to_str().unwrap(),
            "--clientappio-api-address",
            &format!("127.0.0.1:{}", free_port()),
        ],
        env.path(),
        "supernode.log",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if superlink.log().contains("[Fleet.CreateNode] Created node_id") {
            return (true, superlink.log());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    (false, format!("{}\n{}", superlink.log(), supernode.log()))
}

#[test]
fn seed_era_flower_accepts_the_default_key_type() {
    let (registered, log) = seed_era_registers("ecdsa-p256");
    assert!(registered, "Flower 1.13.1 did not register a supernode:\n{log}");
}

#[test]
fn seed_era_flower_refuses_ed25519_as_documented() {
    let (registered, log) = seed_era_registers("ed25519");
    assert!(!registered, "Flower 1.13.1 unexpectedly accepted ed25519");
    assert!(log.contains("NO_COMMON_SIGNATURE_ALGORITHMS"), "{log}");
}
