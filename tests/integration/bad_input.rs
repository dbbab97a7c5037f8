//! The bad-input matrix: every command, fed what a user gets wrong. Each row must exit 2,
//! print one error naming the culprit, and leave the tree (and a folder outside it that a
//! symlink points to) identical in bytes, owners and modes. The rows that need a journal
//! forged first are in `journal_refusals.rs`.

use std::os::unix::fs::PermissionsExt;

use crate::testenv::{TestEnv, snapshot};

/// How a row is run.
#[derive(Clone, Copy)]
enum As {
    Root,
    /// As UID/GID 65534 (`nobody`), through setpriv.
    Nobody,
    /// With DOCKER_HOST pointing at a socket that does not exist.
    NoDaemon,
}

struct Row {
    args: &'static [&'static str],
    culprit: &'static str,
    who: As,
}

const fn row(args: &'static [&'static str], culprit: &'static str) -> Row {
    Row {
        args,
        culprit,
        who: As::Root,
    }
}

const MATRIX: &[Row] = &[
    // certs generate
    row(&["certs", "generate", "a-file"], "a-file: not a directory"),
    row(&["certs", "generate", "linked"], "linked: is a symbolic link"),
    row(&["certs", "generate", "deploy"], "already exists"),
    row(&["certs", "generate", "new", "--name", "bad name"], "--name"),
    row(&["certs", "generate", "new", "--name", "host:8000"], "host:8000"),
    row(&["certs", "generate", "new", "--name", "*.org"], "*.org"),
    row(&["certs", "generate", "new", "--name", "999.1.1.1"], "999.1.1.1"),
    row(
        &["certs", "generate", "new", "--key-type", "dsa-1024"],
        "dsa-1024",
    ),
    row(&["certs", "generate", "new", "--days", "0"], "--days"),
    row(
        &["certs", "generate", "new", "--ca-cert", "deploy/ca/ca.crt"],
        "--ca-key",
    ),
    row(
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/superlink-certificates/server.pem",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "not a CA certificate",
    ),
    row(
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "deploy/ca/ca.crt",
            "--ca-key",
            "deploy/superlink-certificates/server.key",
        ],
        "--ca-key",
    ),
    row(
        &[
            "certs",
            "generate",
            "new",
            "--ca-cert",
            "nope.crt",
            "--ca-key",
            "deploy/ca/ca.key",
        ],
        "nope.crt",
    ),
    // certs inspect / verify
    row(&["certs", "inspect", "garbage.pem"], "garbage.pem"),
    row(&["certs", "inspect", "empty.pem"], "empty.pem"),
    row(&["certs", "inspect", "missing.pem"], "missing.pem"),
    row(&["certs", "inspect", "deploy"], "deploy: is a directory"),
    row(&["certs", "inspect", "fifo.pem"], "fifo.pem: is a FIFO"),
    row(
        &["certs", "inspect", "/dev/zero"],
        "/dev/zero: is a character device",
    ),
    row(
        &[
            "certs",
            "verify",
            "--ca",
            "fifo.pem",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ],
        "fifo.pem: is a FIFO",
    ),
    row(&["certs", "verify", "a-file"], "a-file"),
    row(&["certs", "verify", "empty-dir"], "no certificates found"),
    row(
        &[
            "certs",
            "verify",
            "--ca",
            "garbage.pem",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/superlink-certificates/server.key",
        ],
        "garbage.pem",
    ),
    row(
        &[
            "certs",
            "verify",
            "--ca",
            "deploy/ca/ca.crt",
            "--cert",
            "deploy/superlink-certificates/server.pem",
            "--key",
            "deploy/ca/ca.crt",
        ],
        "holds no private key",
    ),
    // own / undo / release / journal
    row(&["own", "missing-path"], "missing-path"),
    row(&["own", "/"], "/: refusing"),
    row(&["own", "/etc"], "/etc: refusing"),
    row(&["own", "linked"], "linked: is a symbolic link"),
    row(&["own", "linked/"], "linked/: is a symbolic link"),
    row(&["release", "linked/."], "linked/.: is a symbolic link"),
    row(&["own", "/var/lib/dpkg"], "/var/lib/dpkg: refusing"),
    row(&["own", "/var/lib/apt/lists"], "/var/lib/apt/lists: refusing"),
    row(&["own", "/root"], "/root: refusing"),
    row(&["own", "/root/.bashrc"], "/root/.bashrc: refusing"),
    row(&["own", "deploy", "--uid", "abc"], "--uid"),
    row(&["own", "deploy", "--uid", "4294967295"], "--uid"),
    row(&["own", "deploy", "--gid", "4294967295"], "--gid"),
    row(&["release", "deploy", "--to", "4294967295"], "4294967295"),
    row(&["undo", "empty-dir"], "no journal"),
    row(&["undo", "missing-path"], "missing-path"),
    row(&["release", "deploy", "--to", "no-such-user"], "no-such-user"),
    row(&["journal", "show", "missing-path"], "missing-path"),
    Row {
        args: &["own", "deploy"],
        culprit: "needs root",
        who: As::Nobody,
    },
    // --app and wheels
    row(
        &["quickstart", "new", "--app", "app-none"],
        "app-none/pyproject.toml: missing",
    ),
    row(
        &["quickstart", "new", "--app", "app-broken"],
        "app-broken/pyproject.toml: not valid TOML",
    ),
    row(&["quickstart", "new", "--app", "app-pin"], "Flower 1.42.0"),
    row(&["quickstart", "new", "--app", "a-file"], "a-file: not a folder"),
    row(
        &["render", "compose", "qs", "--push-to", "registry.example.org"],
        "--push-to",
    ),
    row(
        &["render", "compose", "app-qs", "--out", "app-qs/c.yaml"],
        "app-wheels: not a folder",
    ),
    row(&["wheels", "app-qs"], "app-wheels: not a folder"),
    row(&["wheels", "qs"], "--app"),
    row(&["wheels", "app-qs", "--python-version", "3"], "--python-version"),
    row(&["wheels", "app-qs", "--platform", "Any Linux"], "--platform"),
    // quickstart / render
    row(&["quickstart", "a-file"], "a-file: not a directory"),
    row(&["quickstart", "new", "--supernodes", "0"], "--supernodes"),
    row(&["quickstart", "new", "--flower-version", "9.9.9"], "9.9.9"),
    row(&["quickstart", "new", "--project-name", "Bad!"], "--project-name"),
    row(&["quickstart", "new", "--insecure", "--tls"], "--insecure"),
    row(&["quickstart", "new", "--memory-limit", "4gb"], "--memory-limit"),
    row(&["quickstart", "new", "--memory-limit", "1m"], "--memory-limit"),
    row(&["quickstart", "new", "--pids-limit", "8"], "--pids-limit"),
    row(&["quickstart", "new", "--cpus", "0.01"], "--cpus"),
    row(&["quickstart", "new", "--cpus", "two"], "--cpus"),
    row(&["quickstart", "new", "--harden", "--no-harden"], "--harden"),
    row(
        &["render", "compose", "qs", "--memory-limit=-1"],
        "--memory-limit",
    ),
    row(&["quickstart", "new\nline"], "newline"),
    row(&["quickstart", "qs", "--isolation", "process"], "already exists"),
    row(&["render", "compose", "empty-dir"], "certs generate"),
    row(
        &["render", "compose", "qs", "--out", "qs/compose.yaml"],
        "already exists",
    ),
    row(&["render", "flwr-config", "empty-dir"], "superlink-certificates"),
    // roles, public addresses, bundles
    row(
        &[
            "quickstart",
            "new",
            "--role",
            "superlink",
            "--public-address",
            "bad name",
        ],
        "--public-address",
    ),
    row(
        &[
            "quickstart",
            "new",
            "--role",
            "superlink",
            "--public-address",
            "host:99999",
        ],
        "host:99999",
    ),
    row(
        &[
            "quickstart",
            "new",
            "--role",
            "superlink",
            "--public-address",
            "[::1",
        ],
        "--public-address",
    ),
    row(&["quickstart", "new", "--role", "superlink"], "--public-address"),
    row(
        &["quickstart", "new", "--role", "supernode"],
        "--superlink-address",
    ),
    row(
        &["quickstart", "new", "--public-address", "flower.example.org"],
        "--public-address",
    ),
    row(
        &[
            "quickstart",
            "new",
            "--role",
            "supernode",
            "--superlink-address",
            "flower.example.org",
            "--public-address",
            "flower.example.org",
        ],
        "--public-address",
    ),
    row(
        &[
            "quickstart",
            "new",
            "--role",
            "supernode",
            "--superlink-address",
            "x.org",
        ],
        "supernode-certificates",
    ),
    row(
        &[
            "render",
            "compose",
            "node",
            "--superlink-address",
            "*.example.org",
        ],
        "--superlink-address",
    ),
    row(
        &["render", "compose", "qs", "--superlink-address", "x.org"],
        "--superlink-address",
    ),
    row(&["render", "flwr-config", "node"], "flwr-config"),
    // supernodes admit
    row(
        &["supernodes", "admit", "link", "key.pub"],
        "link: not a superlink deployment with supernode authentication",
    ),
    row(&["supernodes", "admit", "missing", "key.pub"], "missing"),
    row(
        &["supernodes", "admit", "link-auth", "no-such.pub"],
        "no-such.pub",
    ),
    row(
        &["supernodes", "admit", "link-auth", "key.pub", "private.pub"],
        "private.pub: holds a private key",
    ),
    row(
        &["supernodes", "admit", "link-auth", "ed25519.pub"],
        "ed25519.pub: a ssh-ed25519 key",
    ),
    row(
        &["supernodes", "admit", "link-auth", "empty-dir"],
        "empty-dir: a folder with no .pub file",
    ),
    row(
        &["supernodes", "admit", "link-auth", "garbage.pem"],
        "garbage.pem: not an OpenSSH public key",
    ),
    row(&["supernodes", "admit", "link-auth", "fifo.pem"], "fifo.pem"),
    row(
        &["bundle", "supernode", "link", "--out", "existing.tar.gz"],
        "existing.tar.gz: already exists",
    ),
    row(&["bundle", "supernode", "qs", "--out", "b.tar.gz"], "role all"),
    row(
        &[
            "bundle",
            "supernode",
            "link",
            "--out",
            "b.tar.gz",
            "--superlink-address",
            "a:b:c",
        ],
        "--superlink-address",
    ),
    row(
        &[
            "bundle",
            "supernode",
            "link",
            "--out",
            "b.tar.gz",
            "--supernodes",
            "0",
        ],
        "--supernodes",
    ),
    row(
        &["bundle", "supernode", "link", "--out", "no-dir/b.tar.gz"],
        "no-dir",
    ),
    row(&["quickstart", "--from-bundle", "garbage.pem"], "garbage.pem"),
    row(
        &["quickstart", "--from-bundle", "missing.tar.gz"],
        "missing.tar.gz",
    ),
    row(&["quickstart", "--from-bundle", "good.tar.gz", "qs"], "not empty"),
    row(
        &["quickstart", "--from-bundle", "good.tar.gz", "a-file"],
        "a-file",
    ),
    row(
        &[
            "quickstart",
            "--from-bundle",
            "good.tar.gz",
            "new",
            "--role",
            "superlink",
        ],
        "--role",
    ),
    // supernode authentication
    row(
        &["quickstart", "new", "--supernode-auth", "--insecure"],
        "--supernode-auth: needs TLS",
    ),
    row(
        &[
            "render",
            "compose",
            "qs",
            "--supernode-auth",
            "--insecure",
            "--out",
            "qs/a.yaml",
        ],
        "--supernode-auth: needs TLS",
    ),
    row(
        &["render", "compose", "qs", "--supernode-auth"],
        "supernode-auth/supernode-1",
    ),
    row(
        &["render", "kubernetes", "qs", "--supernode-auth"],
        "supernode-auth/supernode-1",
    ),
    row(
        &["quickstart", "half-pair", "--supernode-auth", "--force"],
        "is missing",
    ),
    // check / doctor
    row(&["check", "--compose", "broken.yaml"], "broken.yaml"),
    row(&["check", "--compose", "empty.yaml"], "no services"),
    row(&["check", "--compose", "missing.yaml"], "missing.yaml"),
    row(&["check", "--run-script", "no-docker.sh"], "no `docker run`"),
    row(&["check", "a-file"], "a-file: not a directory"),
    row(&["check", "--compose", "fifo.pem"], "fifo.pem: is a FIFO"),
    row(
        &["check", "--run-script", "/dev/zero"],
        "/dev/zero: is a character device",
    ),
    row(&["check", "fifo-dir"], "fifo-dir/compose.yaml: is a FIFO"),
    row(&["check", "empty-dir"], "no deployment found"),
    row(
        &["check", "--compose", "ok.yaml", "--id-shift", "0"],
        "--id-shift",
    ),
    Row {
        args: &["check", "--live"],
        culprit: "DOCKER_HOST",
        who: As::NoDaemon,
    },
    Row {
        args: &["check", "--live", "superlink"],
        culprit: "DOCKER_HOST",
        who: As::NoDaemon,
    },
    // the rest of the CLI
    row(&["completions", "nosh"], "nosh"),
    row(&["man", "--out-dir", "a-file"], "a-file"),
    row(&["no-such-command"], "no-such-command"),
];

fn fixture(env: &TestEnv, elsewhere: &std::path::Path) {
    std::fs::set_permissions(env.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.flowerbed(["certs", "generate", "deploy"]).assert().success();
    env.flowerbed(["quickstart", "qs", "--no-own"]).assert().success();
    std::fs::write(env.join("a-file"), "x").unwrap();
    std::fs::create_dir(env.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink(elsewhere, env.join("linked")).unwrap();
    std::fs::write(elsewhere.join("outside.txt"), "outside").unwrap();
    std::fs::write(
        env.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(env.join("empty.pem"), "").unwrap();
    let fifo = nix::sys::stat::Mode::from_bits_truncate(0o644);
    nix::unistd::mkfifo(&env.join("fifo.pem"), fifo).unwrap();
    std::fs::create_dir(env.join("fifo-dir")).unwrap();
    nix::unistd::mkfifo(&env.join("fifo-dir/compose.yaml"), fifo).unwrap();
    std::fs::write(env.join("broken.yaml"), "services: [").unwrap();
    std::fs::write(env.join("empty.yaml"), "name: x\n").unwrap();
    std::fs::write(env.join("ok.yaml"), "services:\n  a:\n    image: nginx\n").unwrap();
    std::fs::write(env.join("no-docker.sh"), "echo hi\n").unwrap();
    // Apps: none, broken, pinning another flwr, and a deployment whose wheel folder is a file.
    let app_toml = |deps: &str| format!("[project]\nname = \"x\"\ndependencies = {deps}\n[tool.flwr.app]\n");
    std::fs::create_dir(env.join("app-none")).unwrap();
    std::fs::create_dir(env.join("app-broken")).unwrap();
    std::fs::write(env.join("app-broken/pyproject.toml"), "[project\n").unwrap();
    std::fs::create_dir(env.join("app-pin")).unwrap();
    std::fs::write(env.join("app-pin/pyproject.toml"), app_toml("[\"flwr==1.13.1\"]")).unwrap();
    std::fs::create_dir(env.join("app-good")).unwrap();
    std::fs::write(
        env.join("app-good/pyproject.toml"),
        app_toml("[\"sortedcontainers\"]"),
    )
    .unwrap();
    env.flowerbed(["quickstart", "app-qs", "--no-own", "--app", "app-good"])
        .assert()
        .success();
    std::fs::write(env.join("app-qs/app-wheels"), "not a folder").unwrap();
    // A supernode key folder holding only the private half of its pair.
    std::fs::create_dir_all(env.join("half-pair/supernode-auth/supernode-1")).unwrap();
    std::fs::write(env.join("half-pair/supernode-auth/supernode-1/auth.key"), "x").unwrap();
    env.flowerbed([
        "quickstart",
        "link",
        "--no-own",
        "--role",
        "superlink",
        "--public-address",
        "flower.example.org",
    ])
    .assert()
    .success();
    env.flowerbed([
        "quickstart",
        "link-auth",
        "--no-own",
        "--role",
        "superlink",
        "--public-address",
        "flower.example.org",
        "--supernode-auth",
    ])
    .assert()
    .success();
    env.flowerbed(["bundle", "supernode", "link", "--out", "good.tar.gz"])
        .assert()
        .success();
    std::fs::write(env.join("existing.tar.gz"), "keep me").unwrap();
    // Keys for `supernodes admit`: a good one, a private one named .pub, a foreign type.
    let pair = flowerbed::auth::generate("flowerbed:abc:supernode-1").unwrap();
    std::fs::write(env.join("key.pub"), pair.public_openssh).unwrap();
    std::fs::write(env.join("private.pub"), pair.private_openssh).unwrap();
    std::fs::write(
        env.join("ed25519.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmd2pXwPyw7BEXiDYe3jJx2yRWb6qD6H0xwT5yS9Dm2 x\n",
    )
    .unwrap();
    env.flowerbed(["quickstart", "--from-bundle", "good.tar.gz", "node"])
        .assert()
        .success();
}

#[test]
fn every_bad_input_exits_2_names_the_culprit_and_changes_nothing() {
    assert!(MATRIX.len() >= 40, "the matrix has {} rows", MATRIX.len());
    let env = TestEnv::new();
    let elsewhere = tempfile::tempdir().unwrap();
    fixture(&env, elsewhere.path());
    let bin = assert_cmd::cargo::cargo_bin("flowerbed");
    for row in MATRIX {
        let before = (env.snapshot(), snapshot(elsewhere.path()));
        let mut command = match row.who {
            As::Nobody => {
                let mut c = std::process::Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                    .arg(&bin);
                c
            }
            _ => std::process::Command::new(&bin),
        };
        command
            .args(row.args)
            .current_dir(env.path())
            .env("NO_COLOR", "1")
            .env("FLOWERBED_STATE_DIR", env.state.path());
        if matches!(row.who, As::NoDaemon) {
            command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{:?}: expected exit 2, stderr: {stderr}",
            row.args
        );
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("flowerbed: ") || first.starts_with("error: "),
            "{:?}: the first line is not an error: {stderr}",
            row.args
        );
        if first.starts_with("flowerbed: ") {
            // One error line; a parser's excerpt of the input may follow, indented under it.
            assert!(
                stderr
                    .trim_end()
                    .lines()
                    .skip(1)
                    .all(|line| line.starts_with("  ")),
                "{:?}: not one error line: {stderr}",
                row.args
            );
        }
        assert!(
            stderr.contains(row.culprit),
            "{:?}: does not name {:?}: {stderr}",
            row.args,
            row.culprit
        );
        assert!(
            out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("wrote"),
            "{:?}",
            row.args
        );
        assert_eq!(
            (env.snapshot(), snapshot(elsewhere.path())),
            before,
            "{:?} changed the disk",
            row.args
        );
    }
}
