//! `render swarm` and `render kubernetes` refuse bad input (exit 2, nothing changed), and
//! their help shows examples for both orchestrators.

use crate::testenv::{TestEnv, assert_bad_input};

/// Each bad input: exit 2, one line naming the culprit, the folder unchanged.
#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let env = TestEnv::new();
    env.flowerbed(["quickstart", "deploy", "--no-own"])
        .assert()
        .success();
    env.flowerbed(["quickstart", "lab_1", "--insecure", "--project-name", "lab_1"])
        .assert()
        .success();
    std::fs::create_dir(env.join("empty")).unwrap();
    env.flowerbed(["certs", "generate", "keyless"]).assert().success();
    std::fs::remove_file(env.join("keyless/superlink-certificates/server.key")).unwrap();
    std::fs::write(env.join("taken.yaml"), "x").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["render", "kubernetes", "empty", "--tls"], "certs generate"),
        (
            &["render", "kubernetes", "empty", "--tls", "--out", "k.yaml"],
            "certs generate",
        ),
        (&["render", "swarm", "empty", "--tls"], "certs generate"),
        (
            &["render", "kubernetes", "keyless", "--out", "k.yaml"],
            "server.key",
        ),
        (
            &["render", "kubernetes", "deploy", "--namespace", "Bad_NS"],
            "--namespace",
        ),
        (
            &[
                "render",
                "kubernetes",
                "deploy",
                "--namespace=x-",
                "--out",
                "k.yaml",
            ],
            "--namespace",
        ),
        (
            &["render", "kubernetes", "lab_1", "--out", "k.yaml"],
            "--namespace",
        ),
        (
            &[
                "render",
                "swarm",
                "deploy",
                "--placement",
                "bogus",
                "--out",
                "s.yaml",
            ],
            "--placement",
        ),
        (
            &["render", "swarm", "deploy", "--placement", "node.colour==red"],
            "--placement",
        ),
        (
            &["render", "swarm", "deploy", "--placement", "node.role=="],
            "--placement",
        ),
        (
            &["render", "swarm", "deploy", "--out", "taken.yaml"],
            "already exists",
        ),
        (&["render", "kubernetes", "deploy", "--teardown"], "--teardown"),
        (
            &["render", "swarm", "deploy", "--supernodes", "0"],
            "--supernodes",
        ),
    ];
    for (args, culprit) in cases {
        let before = env.snapshot();
        let out = env.flowerbed(*args).output().unwrap();
        assert_bad_input(&out, culprit);
        assert_eq!(env.snapshot(), before, "{args:?} changed the disk");
    }
}

#[test]
fn help_shows_examples_for_both_orchestrators() {
    for (command, example) in [
        ("swarm", "docker stack deploy -c deploy/stack.yaml flowerbed"),
        ("kubernetes", "kubectl apply -f deploy/flower.k8s.yaml"),
    ] {
        let out = crate::testenv::flowerbed()
            .args(["render", command, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(example), "{command}: {text}");
    }
    let out = crate::testenv::flowerbed()
        .args(["render", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("swarm") && text.contains("kubernetes"), "{text}");
}
