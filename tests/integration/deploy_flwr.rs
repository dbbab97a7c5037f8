//! Every flag a profile renders is one its Flower release really has: each rendered
//! component is started with exactly the rendered arguments in a venv of that release and
//! must get past argument parsing and keep running, and each flag must appear literally in
//! that program's `--help` (argparse would also accept an unambiguous prefix).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowerbed::deploy::{self, Isolation, Profile, Security, Service, Settings};
use flowerbed::render::flwr_config;

use crate::flower::{assert_covers_releases, per_release};
use crate::testenv::{TestEnv, flowerbed};

/// Components bind fixed ports (the rendered ones), so only one variant runs at a time.
static PORTS: Mutex<()> = Mutex::new(());

/// How long a component may take to import and parse its arguments on a busy machine.
const PARSE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long it must then stay up (certificate, flag-combination and TLS checks run here).
const GRACE: Duration = Duration::from_secs(2);
const MARKER: &str = "FLOWERBED-ARGUMENTS-PARSED";

/// Runs a console script by name, printing a marker once argparse has accepted the
/// arguments, so "still running" is never mistaken for "parsed" on a slow machine.
const WRAPPER: &str = r#"
import argparse, sys
from importlib.metadata import entry_points
original = argparse.ArgumentParser.parse_args
def parse_args(self, *args, **kwargs):
    parsed = original(self, *args, **kwargs)
    print("\nFLOWERBED-ARGUMENTS-PARSED", file=sys.stderr, flush=True)
    return parsed
argparse.ArgumentParser.parse_args = parse_args
program = sys.argv[1]
sys.argv = [program] + sys.argv[2:]
(entry,) = entry_points(group="console_scripts", name=program)
sys.exit(entry.load()())
"#;

/// The venv of `version`, made (once, cached) by the project's script. In CI a venv that
/// cannot be made is a failure; elsewhere (offline) the test says it skipped.
fn venv(version: &str) -> Option<PathBuf> {
    if version == Profile::newest().version {
        if let Some(pinned) = std::env::var_os("FLOWERBED_FLWR_VENV") {
            return Some(PathBuf::from(pinned));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Process::new(root.join("scripts/flwr-venv.sh"))
        .arg(version)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        return Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()));
    }
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "cannot make the flwr {version} venv: {why}"
    );
    eprintln!("SKIPPED: no flwr {version} venv ({why})");
    None
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-letter
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn help_text(venv: &Path, program: &str) -> String {
    let out = Process::new(venv.join("bin").join(program))
        .arg("--help")
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} --help failed");
    strip_ansi(&String::from_utf8_lossy(&out.stdout))
}

/// `--flag` appears as a whole word (not only as a prefix of a longer flag).
fn help_has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before_ok = help[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-'));
        let after_ok = help[at + flag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        before_ok && after_ok
    })
}

/// Deployments that together use every flag of a profile: each isolation mode with each
/// transport, with state, runtime dependency installation on in two of the four (where
/// the release has it), so both its "disable" and "allow" flags are started, and supernode
/// authentication in both TLS ones.
fn variants(profile: &Profile, dir: &Path) -> Vec<(String, Vec<Service>)> {
    let install_exists = profile.has_runtime_dependency_installation();
    let combos = [
        (Isolation::Subprocess, Security::Tls, false),
        (Isolation::Process, Security::Tls, install_exists),
        (Isolation::Subprocess, Security::Insecure, install_exists),
        (Isolation::Process, Security::Insecure, false),
    ];
    combos
        .into_iter()
        .map(|(isolation, security, install)| {
            let mut settings = Settings::defaults(dir.to_path_buf());
            settings.flower_version = profile.version.to_string();
            settings.superlink_isolation = isolation;
            settings.supernode_isolation = isolation;
            settings.security = security;
            settings.state = true;
            settings.supernodes = 1;
            settings.install_app_dependencies = install;
            settings.supernode_auth = security == Security::Tls;
            let deployment = deploy::build(&settings).unwrap();
            let name = format!(
                "{} {isolation:?} {security:?} install={install} auth={}",
                profile.version, settings.supernode_auth
            );
            (name, deployment.services)
        })
        .collect()
}

/// A component in its own process group, stopped with its children when dropped.
struct Component {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Component {
    fn start(venv: &Path, service: &Service, cwd: &Path) -> Self {
        let log = cwd.join(format!("{}.log", service.name));
        let file = std::fs::File::create(&log).unwrap();
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Process::new(venv.join("bin/python"))
            .arg("-c")
            .arg(WRAPPER)
            .arg(service.program)
            .args(service.args())
            .current_dir(cwd)
            .env("PATH", path)
            .env("HOME", cwd)
            .env("FLWR_HOME", cwd.join("flwr-home"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .process_group(0)
            .spawn()
            .unwrap();
        Self {
            name: service.name.clone(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        // Only this component's own process group (itself and what it spawned).
        let group = nix::unistd::Pid::from_raw(-i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A supernode with `--auth-supernode-private-key` whose key nobody registered: 1.35+
/// refuse it once it dials (the registration itself is tested in `supernode_auth`).
fn refused_unregistered(log: &str) -> bool {
    log.contains("Failed to activate SuperNode")
}

/// Start every component of one variant together (as a deployment would) and judge each:
/// it must print the parse marker, then stay up for [`GRACE`].
fn run_variant(venv: &Path, name: &str, services: &[Service], workdir: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    let mut components: Vec<Component> = services
        .iter()
        .map(|service| Component::start(venv, service, workdir))
        .collect();
    let mut parsed_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut judged: Vec<String> = Vec::new();
    let started = Instant::now();
    while judged.len() < components.len() {
        for component in &mut components {
            if judged.contains(&component.name) {
                continue;
            }
            let log = component.log();
            let parsed = log.contains(MARKER);
            if let Some(status) = component.child.try_wait().unwrap() {
                judged.push(component.name.clone());
                // Parsed, then lost a fixed port to something else on this machine: the
                // flags were accepted, which is what this test is about.
                // ("address already in use" from the OS; 1.21's supernode words it "Port in
                // server address ... is already in use".)
                if parsed && log.to_ascii_lowercase().contains("already in use") {
                    eprintln!(
                        "{name} [{}]: port busy after parsing; flags accepted",
                        component.name
                    );
                } else if parsed && refused_unregistered(&log) {
                    eprintln!(
                        "{name} [{}]: refused as unregistered after parsing; flags accepted",
                        component.name
                    );
                } else {
                    let when = if parsed { "after" } else { "before" };
                    failures.push(format!(
                        "{name} [{}] exited with {status} {when} parsing its arguments:\n{log}",
                        component.name
                    ));
                }
            } else if parsed {
                let at = *parsed_at
                    .entry(component.name.clone())
                    .or_insert_with(Instant::now);
                if at.elapsed() >= GRACE {
                    judged.push(component.name.clone());
                }
            } else if started.elapsed() >= PARSE_TIMEOUT {
                judged.push(component.name.clone());
                failures.push(format!(
                    "{name} [{}] never finished parsing:\n{log}",
                    component.name
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    failures
}

/// Flower's own code reads the rendered connection: `flwr config list` for config.toml
/// (1.35+), the CLI's federation validators for the pyproject.toml table (earlier).
const FEDERATION_CHECK: &str = r#"
import sys, tomllib
from pathlib import Path
from flwr.cli.config_utils import validate_federation_in_project_config, validate_certificate_in_federation_config
config = tomllib.loads(Path(sys.argv[1]).read_text())
name, federation = validate_federation_in_project_config(sys.argv[2], config)
insecure, root_certificates = validate_certificate_in_federation_config(Path("."), federation)
print(name, federation["address"], "insecure" if insecure else "tls", len(root_certificates or b""))
"#;

fn check_connection(venv: &Path, profile: &Profile, env: &TestEnv) {
    let dir = env.join("deployment");
    flowerbed()
        .args(["certs", "generate", "-q"])
        .arg(&dir)
        .assert()
        .success();
    for security in [Security::Tls, Security::Insecure] {
        let mut settings = Settings::defaults(dir.clone());
        settings.flower_version = profile.version.to_string();
        settings.security = security;
        settings.project_name = "lab-1".into();
        let deployment = deploy::build(&settings).unwrap();
        let snippet = flwr_config::render(&deployment).unwrap();
        let home = env.join(format!("flwr-home-{security:?}"));
        std::fs::create_dir_all(&home).unwrap();
        let out = if profile.uses_flwr_config_toml() {
            std::fs::write(home.join("config.toml"), &snippet).unwrap();
            Process::new(venv.join("bin/flwr"))
                .args(["config", "list"])
                .env("FLWR_HOME", &home)
                .output()
                .unwrap()
        } else {
            let pyproject = home.join("pyproject.toml");
            std::fs::write(&pyproject, &snippet).unwrap();
            Process::new(venv.join("bin/python"))
                .args(["-c", FEDERATION_CHECK])
                .arg(&pyproject)
                .arg("lab-1")
                .output()
                .unwrap()
        };
        let stdout = strip_ansi(&String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "Flower {} rejected {snippet}: {stdout}{}",
            profile.version,
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = if profile.uses_flwr_config_toml() {
            "lab-1".to_string()
        } else if security == Security::Tls {
            format!("lab-1 {} tls", deployment.connection.as_ref().unwrap().address)
        } else {
            format!(
                "lab-1 {} insecure 0",
                deployment.connection.as_ref().unwrap().address
            )
        };
        assert!(stdout.contains(&expected), "Flower {}: {stdout}", profile.version);
    }
}

/// Real authentication keys at `auth/`: what the superlink's and the supernode's rendered
/// flags name, side by side (one process each, as in their containers).
fn auth_files(profile: &Profile, auth: &Path) {
    let mut settings = Settings::defaults(auth.with_file_name("auth-source"));
    settings.flower_version = profile.version.to_string();
    settings.supernode_auth = true;
    settings.supernodes = 1;
    let mut plan = flowerbed::fsutil::WritePlan::new(false);
    let side = flowerbed::auth::Side::All { supernodes: 1 };
    flowerbed::auth::plan_keys(&settings.dir, side, profile.supernode_auth(), &mut plan).unwrap();
    plan.apply().unwrap();
    std::fs::create_dir_all(auth).unwrap();
    for folder in [
        flowerbed::auth::supernode_dir(&settings.dir, 1),
        flowerbed::auth::superlink_dir(&settings.dir),
    ] {
        for entry in std::fs::read_dir(&folder).into_iter().flatten() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), auth.join(entry.file_name())).unwrap();
        }
    }
}

fn check_profile(version: &str) {
    let Some(venv) = venv(version) else { return };
    let profile = Profile::find(version).unwrap();
    let env = TestEnv::new();
    check_connection(&venv, profile, &env);
    let workdir = env.join("work");
    std::fs::create_dir_all(workdir.join("state")).unwrap();
    // Real certificates where the rendered relative paths point (the container's /app).
    flowerbed()
        .args(["certs", "generate", "--flat", "-q"])
        .arg(workdir.join("certificates"))
        .assert()
        .success();
    auth_files(profile, &workdir.join("auth"));
    // The supernode's own Runtime API certificate and the runner links' shared secret.
    let runtime = workdir.join(flowerbed::deploy::model::RUNTIME_CERT_MOUNT);
    std::fs::create_dir_all(&runtime).unwrap();
    for file in ["ca.crt", "server.pem", "server.key"] {
        std::fs::copy(workdir.join("certificates").join(file), runtime.join(file)).unwrap();
    }
    let secret = workdir.join(flowerbed::superexec_auth::SECRET_MOUNT);
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(
        secret.join(flowerbed::superexec_auth::SECRET),
        flowerbed::superexec_auth::generate().unwrap(),
    )
    .unwrap();

    let mut helps: BTreeMap<&str, String> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    for (name, services) in variants(profile, &workdir) {
        for service in &services {
            let help = helps
                .entry(service.program)
                .or_insert_with(|| help_text(&venv, service.program));
            for flag in &service.flags {
                if !help_has_flag(help, flag.name) {
                    failures.push(format!(
                        "{name} [{}]: {} is not in {} --help",
                        service.name, flag.name, service.program
                    ));
                }
            }
        }
        // Only start argument lists not already proven.
        let fresh: Vec<Service> = services
            .into_iter()
            .filter(|service| {
                let key = (service.program.to_string(), service.args());
                let new = !seen.contains(&key);
                if new {
                    seen.push(key);
                }
                new
            })
            .collect();
        if fresh.is_empty() {
            continue;
        }
        let _ports = PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A fresh database each time: a superlink stopped during its first schema migration
        // leaves one the next superlink cannot migrate.
        let state = workdir.join("state");
        std::fs::remove_dir_all(&state).unwrap();
        std::fs::create_dir(&state).unwrap();
        failures.extend(run_variant(&venv, &name, &fresh, &workdir));
    }
    assert!(
        failures.is_empty(),
        "Flower {version} refused rendered flags:\n{}",
        failures.join("\n---\n")
    );
}

per_release!(FLAG_TESTS, check_profile;
    flags_of_1_13_1_are_accepted => "1.13.1",
    flags_of_1_21_0_are_accepted => "1.21.0",
    flags_of_1_35_0_are_accepted => "1.35.0",
    flags_of_1_41_0_are_accepted => "1.41.0",
    flags_of_1_42_0_are_accepted => "1.42.0",
);

/// A release added to the profile table fails here until it has its flag test above.
#[test]
fn every_release_has_a_flag_test() {
    let releases = Profile::all().iter().map(|profile| profile.version);
    assert_covers_releases("flags_of_*_are_accepted", FLAG_TESTS, releases);
}

#[test]
fn help_flag_matching_is_whole_word() {
    let help = "  --ssl-ca-certfile X\n  --insecure   Run\n[--host HOST]";
    assert!(help_has_flag(help, "--insecure"));
    assert!(help_has_flag(help, "--host"));
    assert!(!help_has_flag(help, "--ssl-ca"));
    assert!(!help_has_flag(help, "--ssl"));
}
