//! The user's app in the deployment (`--app`): the Dockerfiles per release × isolation
//! (snapshots), which components get an app image, Compose v2 accepting `build:`
//! sections, quickstart writing it all, and `wheels` with a stand-in pip.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flowerbed::deploy::{self, Isolation, PROFILES, Settings, app};
use flowerbed::render::{compose, dockerfile, script};

use crate::deploy::{compose_config_ok, docker_compose};
use crate::testenv::TestEnv;

const FAKE_DIR: &str = "/srv/flower deploy";
const FAKE_APP: &str = "/srv/my app";

const PYPROJECT: &str = r#"[project]
name = "my-app"
dependencies = ["flwr[simulation]>=1.13", "sortedcontainers>=2.4", "pandas; python_version >= '3.10'"]

[tool.flwr.app]
publisher = "me"
"#;

fn settings(version: &str, superlink: Isolation, supernode: Isolation) -> Settings {
    let mut settings = Settings::defaults(PathBuf::from(FAKE_DIR));
    settings.flower_version = version.into();
    settings.superlink_isolation = superlink;
    settings.supernode_isolation = supernode;
    settings.supernodes = 1;
    settings.app = Some(PathBuf::from(FAKE_APP));
    settings
}

/// Every app file, the compose file's services and run.sh's build lines, for a snapshot.
fn renders(settings: &Settings, wheels: bool) -> String {
    let deployment = deploy::build(settings).unwrap();
    let project = app::parse(Path::new(FAKE_APP), PYPROJECT, deployment.profile).unwrap();
    let mut out = String::new();
    for (path, contents, _) in dockerfile::app_files(&deployment, &project, wheels).unwrap() {
        let _ = write!(out, "==> {} <==\n{contents}\n", path.display());
    }
    out.push_str("==> compose.yaml <==\n");
    out.push_str(&compose::render(&deployment).unwrap());
    let run = script::render_run(&deployment).unwrap();
    out.push_str("\n==> run.sh (build lines) <==\n");
    for line in run.lines().filter(|line| line.starts_with("docker build")) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn components(settings: &Settings) -> Vec<(String, &'static str, String)> {
    let deployment = deploy::build(settings).unwrap();
    deployment
        .services
        .iter()
        .filter_map(|service| {
            let image = deployment.app.as_ref()?.for_service(service)?;
            Some((service.name.clone(), image.component, image.image.clone()))
        })
        .collect()
}

#[test]
fn dockerfiles_per_release_and_isolation() {
    for profile in PROFILES {
        for isolation in [Isolation::Subprocess, Isolation::Process] {
            let name = format!("app-{}-{}", profile.version, isolation.name());
            insta::assert_snapshot!(
                name,
                renders(&settings(profile.version, isolation, isolation), false)
            );
        }
    }
    let mixed = settings("1.42.0", Isolation::Subprocess, Isolation::Process);
    insta::assert_snapshot!("app-1.42.0-mixed-offline", renders(&mixed, true));
}

#[test]
fn the_components_that_run_app_code_get_the_app_image() {
    let proc = |v| settings(v, Isolation::Process, Isolation::Process);
    let sub = |v| settings(v, Isolation::Subprocess, Isolation::Subprocess);
    let image = |component: &str, version: &str| format!("flowerbed/{component}-app:{version}");
    assert_eq!(
        components(&proc("1.13.1")),
        [
            ("serverapp".into(), "serverapp", image("serverapp", "1.13.1")),
            ("clientapp-1".into(), "clientapp", image("clientapp", "1.13.1")),
        ]
    );
    for version in ["1.21.0", "1.42.0"] {
        assert_eq!(
            components(&proc(version)),
            [
                (
                    "superexec-serverapp".into(),
                    "superexec",
                    image("superexec", version)
                ),
                (
                    "superexec-clientapp-1".into(),
                    "superexec",
                    image("superexec", version)
                ),
            ]
        );
        assert_eq!(
            components(&sub(version)),
            [
                ("superlink".into(), "superlink", image("superlink", version)),
                ("supernode-1".into(), "supernode", image("supernode", version)),
            ]
        );
    }
    // The superlink keeps Flower's image in process isolation, and builds FROM it otherwise.
    let deployment = deploy::build(&proc("1.42.0")).unwrap();
    assert_eq!(deployment.services[0].image, "flwr/superlink:1.42.0");
    let mut pushed = sub("1.42.0");
    pushed.push_to = Some("registry.example.org:5000/team".into());
    pushed.image_repo = "flowerbed-local".into();
    let deployment = deploy::build(&pushed).unwrap();
    let images = &deployment.app.as_ref().unwrap().images;
    assert_eq!(images[0].base, "flowerbed-local/superlink:1.42.0");
    assert_eq!(
        images[0].image,
        "registry.example.org:5000/team/flowerbed/superlink-app:1.42.0"
    );
    let lines = dockerfile::command_lines(&deployment).unwrap();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[3],
        "docker push registry.example.org:5000/team/flowerbed/supernode-app:1.42.0"
    );
}

#[test]
fn compose_v2_accepts_the_build_sections() {
    let Some(binary) = docker_compose() else { return };
    let env = TestEnv::new();
    let dir = env.join("it's a deploy");
    std::fs::create_dir_all(dir.join(app::DOCKERFILES_DIR)).unwrap();
    for (superlink, supernode) in [
        (Isolation::Process, Isolation::Process),
        (Isolation::Subprocess, Isolation::Subprocess),
    ] {
        for version in ["1.13.1", "1.42.0"] {
            let mut settings = settings(version, superlink, supernode);
            settings.dir.clone_from(&dir);
            let deployment = deploy::build(&settings).unwrap();
            let file = dir.join("compose.yaml");
            std::fs::write(&file, compose::render(&deployment).unwrap()).unwrap();
            compose_config_ok(&binary, &file);
            let out = std::process::Command::new(&binary)
                .arg("-f")
                .arg(&file)
                .args(["config", "--format", "json"])
                .output()
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for image in &deployment.app.as_ref().unwrap().images {
                let service = deployment
                    .services
                    .iter()
                    .find(|s| s.image == image.image)
                    .unwrap();
                let build = &json["services"][&service.name]["build"];
                assert_eq!(build["context"], dir.to_str().unwrap(), "{version}");
                assert_eq!(
                    build["dockerfile"],
                    format!("{}/{}.Dockerfile", app::DOCKERFILES_DIR, image.component)
                );
                assert_eq!(json["services"][&service.name]["image"], image.image.as_str());
            }
        }
    }
}

fn write_app(dir: &Path, pyproject: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("pyproject.toml"), pyproject).unwrap();
}

/// A process-isolation quickstart in `deploy/` of the app in `my-app/`.
fn quickstart_with_app() -> TestEnv {
    let env = TestEnv::new();
    write_app(&env.join("my-app"), PYPROJECT);
    env.flowerbed([
        "quickstart",
        "deploy",
        "--no-own",
        "--isolation",
        "process",
        "--app",
        "my-app",
    ])
    .assert()
    .success();
    env
}

#[test]
fn quickstart_with_an_app_writes_dockerfiles_and_a_dockerignore() {
    let env = quickstart_with_app();
    let dockerfile = std::fs::read_to_string(env.join("deploy/app-images/superexec.Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("FROM flwr/superexec:1.42.0\n"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("'sortedcontainers>=2.4'"), "{dockerfile}");
    assert!(!dockerfile.contains("simulation"), "{dockerfile}");
    assert!(dockerfile.ends_with("USER 49999:49999\n"), "{dockerfile}");
    let ignore = std::fs::read_to_string(env.join("deploy/.dockerignore")).unwrap();
    assert_eq!(
        ignore.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(),
        ["*", "!app-wheels"]
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.join("deploy/flowerbed.json")).unwrap()).unwrap();
    assert_eq!(saved["app"], env.join("my-app").to_str().unwrap());
    // A second run changes nothing; check rebuilds the same model.
    let again = env
        .flowerbed(["quickstart", "deploy", "--no-own"])
        .output()
        .unwrap();
    assert!(again.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(said.contains("up to date"), "{said}");
}

#[test]
fn the_deployment_readme_and_the_orchestrators_name_the_app_images() {
    let env = quickstart_with_app();
    // The README gives the three steps in the order a user runs them.
    let readme = std::fs::read_to_string(env.join("deploy/README.md")).unwrap();
    let at = |needle: &str| {
        readme
            .find(needle)
            .unwrap_or_else(|| panic!("README lacks {needle:?}:\n{readme}"))
    };
    let (wheels, build, up) = (at("flowerbed wheels"), at("docker build"), at("docker compose"));
    assert!(wheels < build && build < up, "{readme}");

    // Swarm and Kubernetes pull: the images carry the registry's name, and the build and
    // push commands are printed for every app image.
    for format in ["swarm", "kubernetes"] {
        let out = env
            .flowerbed([
                "render",
                format,
                "deploy",
                "--push-to",
                "registry.example.org:5000/team",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rendered = String::from_utf8_lossy(&out.stdout);
        let image = "registry.example.org:5000/team/flowerbed/superexec-app:1.42.0";
        assert!(
            rendered.contains(&format!("image: {image}")),
            "{format}: {rendered}"
        );
        assert!(
            !rendered.contains("image: flwr/superexec"),
            "{format}: {rendered}"
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("docker build --file ") && said.contains(&format!("docker push {image}")),
            "{format}: {said}"
        );
        // stdout is the rendered file alone, ready for `> stack.yaml`.
        assert!(rendered.starts_with("# Flower 1.42.0 "), "{format}: {rendered}");
    }
}

/// A `python3` that answers `-m pip download` by writing one wheel per requirement into
/// `--dest` and recording its arguments.
fn stand_in_pip(env: &TestEnv) -> PathBuf {
    let bin = env.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("python3");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\ndest=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in --dest) dest=$2; shift;; sortedcontainers*) : > \"$dest/sortedcontainers-2.4.0-py2.py3-none-any.whl\";; esac\n  shift\ndone\n",
            log = env.join("pip-args").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn wheels_downloads_for_the_images_python_and_rewrites_the_dockerfiles() {
    let env = TestEnv::new();
    write_app(
        &env.join("my-app"),
        &PYPROJECT.replace(", \"pandas; python_version >= '3.10'\"", ""),
    );
    env.flowerbed(["quickstart", "deploy", "--no-own", "--app", "my-app"])
        .assert()
        .success();
    let bin = stand_in_pip(&env);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    env.flowerbed([
        "wheels",
        "deploy",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_17_x86_64",
    ])
    .env("PATH", &path)
    .assert()
    .success();
    let args = std::fs::read_to_string(env.join("pip-args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    for expected in [
        "download",
        "--only-binary=:all:",
        "3.11",
        "manylinux_2_17_x86_64",
        "sortedcontainers>=2.4",
    ] {
        assert!(args.contains(&expected), "{expected}: {args:?}");
    }
    assert!(!args.iter().any(|arg| arg.starts_with("flwr")), "{args:?}");
    assert!(
        env.join("deploy/app-wheels/sortedcontainers-2.4.0-py2.py3-none-any.whl")
            .is_file()
    );
    for component in ["superlink", "supernode"] {
        let text =
            std::fs::read_to_string(env.join(format!("deploy/app-images/{component}.Dockerfile"))).unwrap();
        assert!(text.contains("COPY app-wheels/ /tmp/app-wheels/"), "{text}");
        assert!(text.contains("--no-index --find-links /tmp/app-wheels"), "{text}");
    }
    // No staging folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(env.join("deploy"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".app-wheels"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn check_ids(env: &TestEnv, docker_host: Option<&str>) -> (i32, Vec<String>, serde_json::Value) {
    let mut command = env.flowerbed(["check", "deploy", "--json"]);
    if let Some(host) = docker_host {
        command.env("DOCKER_HOST", host);
    }
    let out = command.output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["id"].as_str().unwrap().to_string())
        .filter(|id| id.starts_with("app-"))
        .collect();
    (out.status.code().unwrap(), ids, report)
}

#[test]
fn check_finds_stale_dockerfiles_missing_wheels_and_unbuilt_images() {
    let env = TestEnv::new();
    write_app(&env.join("my-app"), PYPROJECT);
    env.flowerbed([
        "quickstart",
        "deploy",
        "--no-own",
        "--insecure",
        "--app",
        "my-app",
    ])
    .assert()
    .success();
    // Without a daemon the images are not asked about; the files are as rendered.
    let no_daemon = Some("unix:///nonexistent/docker.sock");
    let (code, ids, report) = check_ids(&env, no_daemon);
    assert_eq!((code, ids.as_slice()), (0, &[] as &[String]), "{report}");

    // The app gains a dependency: both Dockerfiles are stale, and say how to re-render.
    write_app(
        &env.join("my-app"),
        &PYPROJECT.replace(
            "\"sortedcontainers>=2.4\"",
            "\"sortedcontainers>=2.4\", \"tabulate\"",
        ),
    );
    let (code, ids, report) = check_ids(&env, no_daemon);
    assert_eq!(code, 1, "{report}");
    assert_eq!(ids, ["app-dockerfile-stale", "app-dockerfile-stale"], "{report}");
    assert!(report.to_string().contains("render compose"), "{report}");
    // ... and the build that follows, for each stale image.
    let fixes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["id"] == "app-dockerfile-stale")
        .map(|finding| finding["fix"].as_str().unwrap())
        .collect();
    for fix in &fixes {
        assert!(
            fix.contains("then rebuild the image: `docker build --file "),
            "{fix}"
        );
    }
    assert_ne!(fixes[0], fixes[1], "each finding names its own image");

    // A wheel folder without tabulate's wheel (and the Dockerfiles re-rendered for it).
    std::fs::create_dir(env.join("deploy/app-wheels")).unwrap();
    for name in [
        "sortedcontainers-2.4.0-py2.py3-none-any.whl",
        "pandas-2.2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ] {
        std::fs::write(env.join("deploy/app-wheels").join(name), "").unwrap();
    }
    env.flowerbed([
        "render",
        "compose",
        "deploy",
        "--out",
        "deploy/compose.yaml",
        "--force",
    ])
    .assert()
    .success();
    let (code, ids, report) = check_ids(&env, no_daemon);
    assert_eq!(
        (code, ids.as_slice()),
        (1, &["app-wheel-missing".to_string()] as &[String]),
        "{report}"
    );
    assert!(report.to_string().contains("tabulate"), "{report}");

    // With a daemon: the images this test never built are findings with the build command.
    let docker_answers = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ID}}"])
        .output()
        .is_ok_and(|out| out.status.success());
    if docker_answers {
        std::fs::write(env.join("deploy/app-wheels/tabulate-0.9.0-py3-none-any.whl"), "").unwrap();
        let (code, ids, report) = check_ids(&env, None);
        assert_eq!(code, 1, "{report}");
        assert_eq!(ids, ["app-image-not-built", "app-image-not-built"], "{report}");
        assert!(report.to_string().contains("docker build --file"), "{report}");
    } else {
        eprintln!("SKIPPED (part): no Docker daemon answers, app-image-not-built not exercised");
    }
}
