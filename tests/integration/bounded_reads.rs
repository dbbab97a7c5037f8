//! Files flowerbed reads because a user named them are read only when they are regular
//! files, and only up to a limit: a FIFO must not hang a command, a device or a huge
//! (sparse) file must not fill memory. Each command runs under a deadline and a cap on its
//! address space (so a regression fails the test instead of hanging it or exhausting the
//! machine), and its peak RSS is read back from wait4.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::testenv::TestEnv;

/// What a command did: exit code, stderr, peak RSS in KiB.
struct Finished {
    code: Option<i32>,
    stderr: String,
    max_rss_kib: i64,
}

const DEADLINE: Duration = Duration::from_secs(20);
/// Far above what a bounded read needs, far below what an unbounded one takes.
const ADDRESS_SPACE_CAP: u64 = 1 << 30;
const RSS_LIMIT_KIB: i64 = 64 * 1024;

const FIFO: &str = "is a FIFO, not a regular file";
const DEVICE: &str = "is a character device, not a regular file";
const CERT_TOO_LARGE: &str = "is 1.0 GiB, over the 1.0 MiB limit";
const TEXT_TOO_LARGE: &str = "is 1.0 GiB, over the 16 MiB limit";

/// Run flowerbed with `args` in `env`, killing it if it outlives the deadline.
// The child is reaped by wait4 (to read its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_bounded(env: &TestEnv, args: &[&str]) -> Finished {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("flowerbed"));
    command
        .args(args)
        .current_dir(env.path())
        .env("NO_COLOR", "1")
        .env("FLOWERBED_STATE_DIR", env.state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let cap = nix::libc::rlimit {
                rlim_cur: ADDRESS_SPACE_CAP,
                rlim_max: ADDRESS_SPACE_CAP,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_AS, &raw const cap) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    // A forked child starts with the test process's resident pages counted in its peak
    // (the high-water mark survives exec), so the peak is judged against what a child that
    // does nothing reports when forked the same way just before.
    let inherited_kib = inherited_rss_kib();
    let mut child = command.spawn().expect("spawn flowerbed");
    let pid = i32::try_from(child.id()).unwrap();
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let waited = unsafe { nix::libc::wait4(pid, &raw mut status, nix::libc::WNOHANG, &raw mut usage) };
        assert!(waited >= 0, "wait4 failed");
        if waited == pid {
            break;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            unsafe { nix::libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
            panic!("{args:?}: still running after {DEADLINE:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Finished {
        code: nix::libc::WIFEXITED(status).then(|| nix::libc::WEXITSTATUS(status)),
        stderr,
        max_rss_kib: usage.ru_maxrss - inherited_kib,
    }
}

#[allow(clippy::zombie_processes)]
/// The peak RSS `true` reports when forked (through a `pre_exec` hook, as flowerbed is).
fn inherited_rss_kib() -> i64 {
    let mut command = Command::new("true");
    // SAFETY: the hook does nothing; it only makes the spawn a fork, as above.
    unsafe {
        command.pre_exec(|| Ok(()));
    }
    let child = command.spawn().expect("spawn true");
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { nix::libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    usage.ru_maxrss
}

/// The command exits 2 with one error line naming `path` and ending in `what`, in bounded memory.
fn assert_refused(env: &TestEnv, args: &[&str], path: &str, what: &str) {
    let finished = run_bounded(env, args);
    assert_eq!(
        finished.code,
        Some(2),
        "{args:?}: expected exit 2, stderr: {}",
        finished.stderr
    );
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {}", finished.stderr);
    assert!(
        lines[0].starts_with("flowerbed: ") && lines[0].contains(&format!("{path}: {what}")),
        "{args:?}: expected \"{path}: {what}\" in: {}",
        finished.stderr
    );
    assert!(
        finished.max_rss_kib < RSS_LIMIT_KIB,
        "{args:?}: peak RSS {} KiB",
        finished.max_rss_kib
    );
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// A sparse file of `len` bytes: no disk used.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Every file a user can name to `certs` and `check`, as a FIFO, /dev/zero and a sparse
/// 1 GiB file.
#[test]
fn fifos_devices_and_huge_files_are_refused_without_hanging() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "deploy"]).assert().success();
    for name in ["fifo.pem", "fifo.yaml", "fifo.sh"] {
        mkfifo(&env.join(name));
    }
    for name in ["big.pem", "big.yaml", "big.sh"] {
        sparse(&env.join(name), 1 << 30);
    }
    let cert = "deploy/superlink-certificates/server.pem";
    let key = "deploy/superlink-certificates/server.key";
    let ca = "deploy/ca/ca.crt";
    for (file, what) in [
        ("fifo.pem", FIFO),
        ("/dev/zero", DEVICE),
        ("/dev/stdin", DEVICE),
        ("big.pem", CERT_TOO_LARGE),
    ] {
        assert_refused(&env, &["certs", "inspect", file], file, what);
        assert_refused(
            &env,
            &["certs", "verify", "--ca", file, "--cert", cert, "--key", key],
            file,
            what,
        );
        assert_refused(
            &env,
            &["certs", "verify", "--ca", ca, "--cert", file, "--key", key],
            file,
            what,
        );
        assert_refused(
            &env,
            &["certs", "verify", "--ca", ca, "--cert", cert, "--key", file],
            file,
            what,
        );
        assert_refused(
            &env,
            &[
                "certs",
                "generate",
                "new",
                "--ca-cert",
                file,
                "--ca-key",
                "deploy/ca/ca.key",
            ],
            file,
            what,
        );
        assert_refused(
            &env,
            &["certs", "generate", "new", "--ca-cert", ca, "--ca-key", file],
            file,
            what,
        );
    }
    for (flag, fifo, big) in [
        ("--compose", "fifo.yaml", "big.yaml"),
        ("--run-script", "fifo.sh", "big.sh"),
    ] {
        assert_refused(&env, &["check", flag, fifo], fifo, FIFO);
        assert_refused(&env, &["check", flag, "/dev/zero"], "/dev/zero", DEVICE);
        assert_refused(&env, &["check", flag, big], big, TEXT_TOO_LARGE);
    }
    assert!(!env.join("new").exists(), "a refused generate wrote files");
}

/// `certs verify DIR` and `check DIR` read files found inside the folder: a FIFO there is
/// refused by name too, not waited on and not mistaken for a missing file.
#[test]
fn fifos_inside_a_deployment_folder_are_refused_without_hanging() {
    let env = TestEnv::new();
    env.flowerbed(["certs", "generate", "deploy"]).assert().success();
    let supernode_ca = env.join("deploy/supernode-certificates/ca.crt");
    std::fs::remove_file(&supernode_ca).unwrap();
    mkfifo(&supernode_ca);
    assert_refused(
        &env,
        &["certs", "verify", "deploy"],
        "deploy/supernode-certificates/ca.crt",
        FIFO,
    );

    for name in ["compose.yaml", "run.sh"] {
        let dir = env.join(name.replace('.', "-"));
        std::fs::create_dir(&dir).unwrap();
        mkfifo(&dir.join(name));
        let shown = format!("{}/{name}", dir.file_name().unwrap().to_string_lossy());
        assert_refused(&env, &["check", &dir.to_string_lossy()], &shown, FIFO);
    }

    env.flowerbed(["quickstart", "qs", "--no-own"]).assert().success();
    let settings = env.join("qs/flowerbed.json");
    std::fs::remove_file(&settings).unwrap();
    mkfifo(&settings);
    assert_refused(&env, &["check", "qs"], "qs/flowerbed.json", FIFO);
}
