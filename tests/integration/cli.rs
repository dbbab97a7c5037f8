//! The command line as a whole: help, version, completions, man page, exit codes.

use crate::testenv::{TestEnv, flowerbed};

#[test]
fn help_lists_commands_and_examples() {
    let out = flowerbed().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in ["certs", "completions", "man", "Examples:", "Exit codes"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn unknown_flag_exits_2() {
    let out = flowerbed().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = flowerbed().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("certs"), "{shell} completion lacks subcommands");
    }
}

#[test]
fn bash_completion_is_valid_bash() {
    let out = flowerbed().args(["completions", "bash"]).output().unwrap();
    let env = TestEnv::new();
    let script = env.join("flowerbed.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn man_page_renders_and_writes_files() {
    let out = flowerbed().arg("man").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH flowerbed"));
    let env = TestEnv::new();
    env.flowerbed(["man", "--out-dir", "man"]).assert().success();
    assert!(env.join("man/flowerbed.1").is_file());
    assert!(env.join("man/flowerbed-certs-generate.1").is_file());
}

#[test]
fn broken_pipe_is_quiet() {
    // `flowerbed completions bash | head -c1`: the writer sees EPIPE and must exit quietly.
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' completions bash | head -c 1 >/dev/null; exit ${{PIPESTATUS:-0}}",
            bin.display()
        ))
        .output()
        .unwrap();
    assert!(out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
