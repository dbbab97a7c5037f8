//! Supernode authentication against real Flower releases: the keys `--supernode-auth`
//! writes load with each release's own loaders, are kept like TLS keys, and a real
//! superlink started with the rendered flags admits our supernodes and refuses others
//! (1.13.1 / 1.21.0: by the known-keys list; 1.35+: only after `register-supernodes.sh`).

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use flowerbed::deploy::profile::SupernodeAuth;
use flowerbed::deploy::{self, Deployment, Generation, Profile, Service, Settings};

use crate::flower::{Running, assert_covers_releases, free_port, per_release, release_venv};
use crate::testenv::TestEnv;

/// Loads every key of a deployment folder the way release `argv[1]` does at start-up (the
/// supernode's and superlink's own functions) and checks each supernode's public key is
/// one the superlink will know.
const LOADER: &str = r#"
import argparse, sys
from pathlib import Path
version, root, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
link = root / "superlink-auth"
if version == "1.13.1":
    from flwr.client.supernode.app import _try_setup_client_authentication as node_keys
    from flwr.server.app import _try_setup_node_authentication
    from flwr.common.secure_aggregation.crypto.symmetric_encryption import public_key_to_bytes
    known, link_private, link_public = _try_setup_node_authentication(argparse.Namespace(
        auth_list_public_keys=str(link / "supernode-public-keys.csv"),
        auth_superlink_private_key=str(link / "superlink.key"),
        auth_superlink_public_key=str(link / "superlink.pub"),
    ), (b"ca", b"cert", b"key"))
    assert link_private.curve.name == "secp384r1"
    assert public_key_to_bytes(link_private.public_key()) == public_key_to_bytes(link_public)
elif version == "1.21.0":
    from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication as node_keys
    from flwr.server.app import _try_load_public_keys_node_authentication
    from flwr.common.secure_aggregation.crypto.symmetric_encryption import public_key_to_bytes
    known = _try_load_public_keys_node_authentication(argparse.Namespace(
        auth_list_public_keys=str(link / "supernode-public-keys.csv"),
        auth_superlink_private_key=None,
        auth_superlink_public_key=None,
    ))
    assert not link.joinpath("superlink.key").exists()
else:
    from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication as node_keys
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes
    known = {try_load_public_key(root / f"supernode-auth/supernode-{i}/auth.pub") for i in range(1, count + 1)}
    assert not link.exists()
assert len(known) == count, known
for i in range(1, count + 1):
    folder = root / f"supernode-auth/supernode-{i}"
    private, public = node_keys(argparse.Namespace(
        auth_supernode_private_key=str(folder / "auth.key"),
        auth_supernode_public_key=str(folder / "auth.pub"),
    ))
    assert private.curve.name == "secp384r1", private.curve.name
    assert public_key_to_bytes(private.public_key()) == public_key_to_bytes(public)
    assert public_key_to_bytes(public) in known
print("LOADED", count)
"#;

fn quickstart(env: &TestEnv, name: &str, version: &str, extra: &[&str]) -> PathBuf {
    env.flowerbed([
        "quickstart",
        name,
        "--supernode-auth",
        "-q",
        "--flower-version",
        version,
    ])
    .args(extra)
    .assert()
    .success();
    env.join(name)
}

fn keys_load_with_the_release(version: &str) {
    let venv = release_venv(version);
    let env = TestEnv::new();
    // As root (the tests run as root) quickstart hands the key folders to UID 49999.
    let dir = quickstart(&env, "deploy", version, &["--supernodes", "3"]);
    for index in 1..=3 {
        let folder = dir.join(format!("supernode-auth/supernode-{index}"));
        let private = std::fs::metadata(folder.join("auth.key")).unwrap();
        let public = std::fs::metadata(folder.join("auth.pub")).unwrap();
        assert_eq!(
            private.mode() & 0o7777,
            0o600,
            "{version}: supernode-{index}/auth.key"
        );
        assert_eq!(public.mode() & 0o7777, 0o644);
        if nix::unistd::geteuid().is_root() {
            assert_eq!((private.uid(), private.gid()), (49_999, 49_999), "{version}");
        }
    }
    if version == "1.13.1" {
        let superlink_key = std::fs::metadata(dir.join("superlink-auth/superlink.key")).unwrap();
        assert_eq!(superlink_key.mode() & 0o7777, 0o600);
    }
    let out = Process::new(venv.join("bin/python"))
        .args(["-c", LOADER, version])
        .arg(&dir)
        .arg("3")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("LOADED 3"),
        "Flower {version} could not load the keys: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // `check` is content with the result (keys private, each in its own supernode only).
    let check = env.flowerbed(["check", "deploy", "--json"]).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        !report.contains("auth-key-mounted") && !report.contains("key-too-open"),
        "{report}"
    );
}

per_release!(KEY_TESTS, keys_load_with_the_release;
    keys_load_with_flower_1_13_1 => "1.13.1",
    keys_load_with_flower_1_21_0 => "1.21.0",
    keys_load_with_flower_1_35_0 => "1.35.0",
    keys_load_with_flower_1_41_0 => "1.41.0",
    keys_load_with_flower_1_42_0 => "1.42.0",
);

/// A host folder standing for `service`'s container: each mount target below `/app` is a
/// symlink to the mount's source, so the rendered relative paths resolve as in Docker.
fn container_dir(env: &TestEnv, service: &Service) -> PathBuf {
    let cwd = env.join(format!("as-{}", service.name));
    for mount in &service.mounts {
        let inside = mount.target.strip_prefix("/app/").unwrap();
        let link = cwd.join(inside);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(&mount.source, &link).unwrap();
    }
    std::fs::create_dir_all(&cwd).unwrap();
    cwd
}

/// The rendered arguments with the in-network superlink address swapped for loopback, and
/// the listening addresses moved to free ports (appended: argparse keeps the last value).
fn host_args(service: &Service, superlink: &str, listen: &[(&str, String)]) -> Vec<String> {
    let mut args = service.args();
    if let Some(at) = args.iter().position(|arg| arg == "--superlink") {
        args[at + 1] = superlink.to_string();
    }
    for (flag, value) in listen {
        args.push((*flag).to_string());
        args.push(value.clone());
    }
    // Releases run side by side on this host: the health service gets a port of its own.
    if let Some(at) = args.iter().position(|arg| arg == "--health-server-address") {
        args[at + 1] = format!("127.0.0.1:{}", free_port());
    }
    args
}

fn start(venv: &Path, env: &TestEnv, service: &Service, args: &[String], log: &str) -> Running {
    let cwd = container_dir(env, service);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Running::start(venv, service.program, &args, &cwd, log)
}

fn wait_for(mut what: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// A deployment folder made by quickstart, and a second one whose supernode key the first
/// has never seen (a stranger).
fn deployment_and_stranger(env: &TestEnv, version: &str) -> (Deployment, Deployment) {
    let dir = quickstart(env, "deploy", version, &["--no-own"]);
    let stranger = quickstart(env, "stranger", version, &["--no-own"]);
    let load = |dir: &Path| {
        let settings = Settings::read(dir).unwrap().unwrap();
        deploy::build(&settings).unwrap()
    };
    (load(&dir), load(&stranger))
}

/// 1.13.1 and 1.21.0: the superlink reads the known keys at start-up.
fn known_keys_admit_ours_and_refuse_a_stranger(version: &str) {
    let venv = release_venv(version);
    let env = TestEnv::new();
    let (deployment, stranger) = deployment_and_stranger(&env, version);
    let fleet = format!("127.0.0.1:{}", free_port());
    let control_flag = if version == "1.13.1" {
        "--exec-api-address"
    } else {
        "--control-api-address"
    };
    let superlink_service = deployment.service("superlink").unwrap();
    let superlink = start(
        &venv,
        &env,
        superlink_service,
        &host_args(
            superlink_service,
            &fleet,
            &[
                ("--fleet-api-address", fleet.clone()),
                ("--serverappio-api-address", format!("127.0.0.1:{}", free_port())),
                (control_flag, format!("127.0.0.1:{}", free_port())),
            ],
        ),
        "superlink.log",
    );
    assert!(
        wait_for(
            || superlink
                .log()
                .contains("Node authentication enabled with 2 known public keys"),
            Duration::from_secs(60)
        ),
        "Flower {version} superlink did not enable authentication:\n{}",
        superlink.log()
    );
    let node_flags = |service: &Service| {
        host_args(
            service,
            &fleet,
            &[("--clientappio-api-address", format!("127.0.0.1:{}", free_port()))],
        )
    };
    let ours = deployment.service("supernode-1").unwrap();
    let _ours = start(&venv, &env, ours, &node_flags(ours), "supernode-1.log");
    let admitted = wait_for(
        || {
            let log = superlink.log();
            log.contains("AuthenticateServerInterceptor: Created node_id")
                || log.contains("[Fleet.CreateNode] Created node_id")
                || log.contains("[Fleet.PullMessages]")
                || log.contains("[Fleet.PullTaskIns]")
        },
        Duration::from_secs(60),
    );
    assert!(
        admitted,
        "Flower {version} did not admit our supernode:\n{}",
        superlink.log()
    );

    // The stranger's own folder (key and CA of another deployment) is not trusted here; give
    // it this deployment's CA so only the key differs.
    let stranger_service = stranger.service("supernode-1").unwrap();
    let mut stranger_service = stranger_service.clone();
    for mount in &mut stranger_service.mounts {
        if mount.target.ends_with("/certificates") {
            mount.source = deployment.dir.join("supernode-certificates");
        }
    }
    stranger_service.name = "stranger".into();
    let mut refused = start(
        &venv,
        &env,
        &stranger_service,
        &node_flags(&stranger_service),
        "stranger.log",
    );
    assert!(
        wait_for(
            || refused.log().contains("UNAUTHENTICATED"),
            Duration::from_secs(60)
        ),
        "Flower {version} did not refuse a supernode with an unknown key:\n{}",
        refused.log()
    );
    let _ = refused.exited();
}

per_release!(KNOWN_KEYS_TESTS, known_keys_admit_ours_and_refuse_a_stranger;
    flower_1_13_1_admits_known_supernodes_only => "1.13.1",
    flower_1_21_0_admits_known_supernodes_only => "1.21.0",
);

/// Node statuses the superlink reports through `flwr supernode list` for connection `name`.
fn node_statuses(venv: &Path, flwr_home: &Path, name: &str) -> Vec<String> {
    let Ok(out) = Process::new(venv.join("bin/flwr"))
        .args(["supernode", "list", name, "--format", "json"])
        .env("FLWR_HOME", flwr_home)
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(start) = text.find('{') else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text[start..]) else {
        return Vec::new();
    };
    value["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|node| node["status"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// 1.35+: the superlink refuses an unregistered supernode; the rendered
/// `register-supernodes.sh` registers the keys, after which the supernode comes online.
fn registration_admits_after_register(version: &str) {
    let venv = release_venv(version);
    let env = TestEnv::new();
    let (deployment, _) = deployment_and_stranger(&env, version);
    let superlink_service = deployment.service("superlink").unwrap();
    let runtime = free_port();
    // 1.35 keeps Fleet and Control on ports of their own; later releases serve all on one.
    let profile = Profile::find(version).unwrap();
    let (fleet_port, control_port, listen) = if profile.generation == Generation::HostPort {
        let fleet = free_port();
        let control = free_port();
        (
            fleet,
            control,
            vec![
                ("--host", "127.0.0.1".to_string()),
                ("--port", runtime.to_string()),
                ("--fleet-api-address", format!("127.0.0.1:{fleet}")),
                ("--control-api-address", format!("127.0.0.1:{control}")),
            ],
        )
    } else {
        (
            runtime,
            runtime,
            vec![
                ("--host", "127.0.0.1".to_string()),
                ("--port", runtime.to_string()),
            ],
        )
    };
    let fleet = format!("127.0.0.1:{fleet_port}");
    let superlink = start(
        &venv,
        &env,
        superlink_service,
        &host_args(superlink_service, &fleet, &listen),
        "superlink.log",
    );
    // The flwr CLI on the host, as the deployment's README says: its connection snippet.
    let flwr_home = env.join("flwr-home");
    std::fs::create_dir_all(&flwr_home).unwrap();
    std::fs::write(
        flwr_home.join("config.toml"),
        format!(
            "[superlink]\ndefault = \"flowerbed\"\n\n[superlink.flowerbed]\naddress = \"127.0.0.1:{control_port}\"\nroot-certificates = \"{}\"\n",
            deployment.dir.join("supernode-certificates/ca.crt").display()
        ),
    )
    .unwrap();
    assert!(
        wait_for(
            || Process::new(venv.join("bin/flwr"))
                .args(["supernode", "list", "flowerbed"])
                .env("FLWR_HOME", &flwr_home)
                .output()
                .is_ok_and(|out| out.status.success()),
            Duration::from_secs(60)
        ),
        "Flower {version} superlink did not come up:\n{}",
        superlink.log()
    );
    let node = deployment.service("supernode-1").unwrap();
    let node_args = host_args(node, &fleet, &[("--port", free_port().to_string())]);

    // Before registration: refused ("Failed to activate SuperNode", code 2004; 1.42 exits
    // with code 305, 1.35's main thread dies while its Runtime API lingers).
    let mut early = start(&venv, &env, node, &node_args, "supernode-early.log");
    assert!(
        wait_for(
            || early.exited() || early.log().contains("Failed to activate SuperNode"),
            Duration::from_secs(60)
        ),
        "Flower {version}: an unregistered supernode was not refused:\n{}",
        early.log()
    );
    assert!(
        node_statuses(&venv, &flwr_home, "flowerbed").is_empty(),
        "Flower {version} knows a node before registration"
    );
    drop(early);

    // The rendered helper registers both supernodes' keys.
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = deployment.dir.join("register-supernodes.sh");
    let out = Process::new("sh")
        .arg(&script)
        .env("PATH", &path)
        .env("FLWR_HOME", &flwr_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "register-supernodes.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        node_statuses(&venv, &flwr_home, "flowerbed").len(),
        2,
        "Flower {version}: both keys registered"
    );

    // After registration the same supernode, same flags, comes online.
    std::fs::remove_dir_all(env.join("as-supernode-1")).unwrap();
    let late = start(&venv, &env, node, &node_args, "supernode-late.log");
    assert!(
        wait_for(
            || node_statuses(&venv, &flwr_home, "flowerbed")
                .iter()
                .any(|s| s == "online"),
            Duration::from_secs(90)
        ),
        "Flower {version}: the registered supernode did not come online:\n{}\n{}",
        late.log(),
        superlink.log()
    );
}

per_release!(REGISTRATION_TESTS, registration_admits_after_register;
    flower_1_35_0_admits_supernodes_after_registration => "1.35.0",
    flower_1_41_0_admits_supernodes_after_registration => "1.41.0",
    flower_1_42_0_admits_supernodes_after_registration => "1.42.0",
);

/// A release added to the profile table fails here until it has its key-loading test and
/// the admission test of its authentication scheme above.
#[test]
fn every_release_has_its_auth_tests() {
    let releases = |registers: bool| {
        Profile::all()
            .iter()
            .filter(move |p| (p.supernode_auth() == SupernodeAuth::Registration) == registers)
            .map(|p| p.version)
    };
    let all = Profile::all().iter().map(|p| p.version);
    assert_covers_releases("keys_load_with_flower_*", KEY_TESTS, all);
    assert_covers_releases(
        "*_admits_known_supernodes_only",
        KNOWN_KEYS_TESTS,
        releases(false),
    );
    assert_covers_releases(
        "*_admits_supernodes_after_registration",
        REGISTRATION_TESTS,
        releases(true),
    );
}
