//! The profile table as the one source of releases, and output per stream.

use std::process::Command as Process;

use flowerbed::deploy::{self, PROFILES};

use crate::testenv::{TestEnv, assert_bad_input};

/// A new release is one entry in the profile table: a copy of the newest under a new
/// version (the debug builds' test hook) is offered by `--help`, is the default, and
/// renders, and `check` knows its images, with no other change anywhere.
#[test]
fn a_new_profile_entry_is_all_a_new_release_needs() {
    const NEXT: &str = "9.99.0";
    let env = TestEnv::new();
    std::fs::create_dir(env.join("d")).unwrap();
    let with_next = |args: &[&str]| {
        let mut cmd = env.flowerbed(args);
        cmd.env(deploy::profile::TEST_EXTRA_RELEASE_ENV, NEXT);
        cmd.output().unwrap()
    };
    let help = with_next(&["render", "compose", "--help"]);
    let flat = String::from_utf8(help.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.contains(&format!("[default: the newest supported, {NEXT}]"))
            && flat.contains(&format!("{}, {NEXT}]", PROFILES[PROFILES.len() - 1].version)),
        "{flat}"
    );
    let own_help = String::from_utf8(with_next(&["own", "--help"]).stdout).unwrap();
    assert!(own_help.contains(&format!("flwr/superlink:{NEXT}")), "{own_help}");
    // The default release, and asked for by name.
    for args in [
        &["render", "compose", "d", "--insecure"][..],
        &["render", "compose", "d", "--insecure", "--flower-version", NEXT],
    ] {
        let out = with_next(args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let compose = String::from_utf8(out.stdout).unwrap();
        assert!(
            compose.contains(&format!("image: flwr/superlink:{NEXT}")),
            "{compose}"
        );
    }
    // Without the entry the release is unknown.
    let out = env
        .flowerbed(["render", "compose", "d", "--insecure", "--flower-version", NEXT])
        .output()
        .unwrap();
    assert_bad_input(&out, "--flower-version");
    // `check` reads the release off an image tag through the same table: `user: app`
    // resolves from the new release's profile, and only with the entry.
    std::fs::write(
        env.join("c.yaml"),
        format!("services:\n  superlink:\n    image: flwr/superlink:{NEXT}\n    user: app\n    command: [--insecure]\n"),
    )
    .unwrap();
    let check = ["check", "--compose", "c.yaml", "--json"];
    let known = String::from_utf8(with_next(&check).stdout).unwrap();
    assert!(!known.contains("user-unresolved"), "{known}");
    let unknown = String::from_utf8(env.flowerbed(check).output().unwrap().stdout).unwrap();
    assert!(unknown.contains("user-unresolved"), "{unknown}");
}

/// `--color auto` decides for each stream from that stream: warnings on stderr are painted
/// when stderr is a terminal, whatever stdout is, and not when only stdout is one.
#[test]
fn colour_on_stderr_is_decided_from_stderr() {
    let env = TestEnv::new();
    // The child's stdout or stderr is a pseudo-terminal, the other a pipe; python reports
    // what reached the terminal side and the pipe side.
    let script = r#"
import os, pty, subprocess, sys
tty_side = sys.argv[1]
main, sub = pty.openpty()
pipe = subprocess.PIPE
proc = subprocess.Popen(sys.argv[2:], stdout=sub if tty_side == "stdout" else pipe,
                        stderr=sub if tty_side == "stderr" else pipe, stdin=subprocess.DEVNULL)
os.close(sub)
piped = (proc.stderr if tty_side == "stdout" else proc.stdout).read()
proc.wait()
chunks = []
while True:
    try:
        chunk = os.read(main, 65536)
    except OSError:
        break
    if not chunk:
        break
    chunks.append(chunk)
sys.stdout.buffer.write(b"".join(chunks) + b"\0" + piped)
"#;
    let run = |tty_side: &str, dir: &str| -> (String, String) {
        let out = Process::new("python3")
            .args(["-c", script, tty_side])
            .arg(assert_cmd::cargo::cargo_bin("flowerbed"))
            // A warning on stderr: --name means nothing without new certificates.
            .args(["quickstart", dir, "--insecure", "--name", "x.example.org"])
            .current_dir(env.path())
            .env("FLOWERBED_STATE_DIR", env.state.path())
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (tty, piped) = text.split_once('\0').unwrap();
        (tty.to_string(), piped.to_string())
    };
    // Only stdout is a terminal: the warning on the stderr pipe is plain.
    let (_, stderr) = run("stdout", "a");
    assert!(stderr.contains("warning: --name is ignored"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "stderr painted although it is a pipe: {stderr}"
    );
    // Only stderr is a terminal: the warning there is painted.
    let (stderr, _) = run("stderr", "b");
    assert!(stderr.contains("--name is ignored"), "{stderr}");
    assert!(
        stderr.contains("\x1b[33mwarning:"),
        "stderr not painted on a terminal: {stderr}"
    );
}
