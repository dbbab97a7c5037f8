//! `docker run` scripts call docker with exactly the model's argv (a recording stub stands
//! in for docker).

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use flowerbed::deploy::{self};
use flowerbed::render::script;

use crate::testenv::{TestEnv, flowerbed};

/// The end-of-call marker the stub writes after each invocation's arguments.
const CALL_END: &str = "--flowerbed-stub-end--";

/// A `docker` that records its argv (NUL-separated) and does nothing else.
fn docker_stub(env: &TestEnv) -> (PathBuf, PathBuf) {
    let bin = env.join("stub-bin");
    std::fs::create_dir(&bin).unwrap();
    let log = env.join("docker-calls");
    let stub = bin.join("docker");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\0' \"$arg\" >> \"$DOCKER_STUB_LOG\"; done\nprintf '%s\\0' '{CALL_END}' >> \"$DOCKER_STUB_LOG\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (bin, log)
}

fn recorded_calls(log: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(log).unwrap_or_default();
    let Some(body) = bytes.strip_suffix(&[0]) else {
        return Vec::new();
    };
    let mut calls = Vec::new();
    let mut current = Vec::new();
    for word in body.split(|b| *b == 0) {
        let word = String::from_utf8(word.to_vec()).unwrap();
        if word == CALL_END {
            calls.push(std::mem::take(&mut current));
        } else {
            current.push(word);
        }
    }
    calls
}

fn run_script(script: &Path, stub_bin: &Path, log: &Path, cwd: &Path) {
    let path = format!(
        "{}:{}",
        stub_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Process::new("sh")
        .arg(script)
        .env("PATH", path)
        .env("DOCKER_STUB_LOG", log)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn scripts_call_docker_with_exactly_the_model_argv() {
    let env = TestEnv::new();
    // Quotes, `$`, backticks and command substitutions must arrive verbatim, never run.
    let dir = env.join("we'ird \"q\" $(touch pwned) `touch pwned2` $HOME");
    for isolation in ["subprocess", "process"] {
        let _ = std::fs::remove_dir_all(&dir);
        flowerbed()
            .arg("quickstart")
            .arg(&dir)
            .args(["--isolation", isolation, "--state", "--supernodes", "2"])
            .assert()
            .success();
        let deployment = deploy::load(&dir).unwrap();
        let (stub_bin, log) = docker_stub(&env);
        run_script(&dir.join("run.sh"), &stub_bin, &log, env.path());
        let mut expected = vec![script::network_create(&deployment)];
        for service in &deployment.services {
            expected.push(script::run_lines(&deployment, service).concat());
            // The script waits for the superlink's health probe before what dials it.
            if let Some(health) = &service.health {
                let mut probe = vec!["exec".to_string(), service.container_name(&deployment.project)];
                probe.extend(health.command());
                expected.push(probe);
            }
        }
        assert_eq!(recorded_calls(&log), expected);
        // The folder's path arrives as one word, inside the mount specs.
        let calls = recorded_calls(&log);
        assert!(
            calls[1]
                .iter()
                .any(|word| word.starts_with(&format!("{}/", dir.display())))
        );

        std::fs::remove_file(&log).unwrap();
        run_script(&dir.join("stop.sh"), &stub_bin, &log, env.path());
        assert_eq!(recorded_calls(&log), script::teardown_commands(&deployment));
        std::fs::remove_dir_all(&stub_bin).unwrap();
        std::fs::remove_file(&log).unwrap();
    }
    for canary in ["pwned", "pwned2"] {
        assert!(
            !env.join(canary).exists(),
            "{canary}: a path in the script was executed"
        );
        assert!(!dir.join(canary).exists());
    }
}
