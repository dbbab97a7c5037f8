//! `flowerbed doctor`: what this machine's Docker set-up means for UID 49999.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use crate::cli::check::DoctorArgs;
use crate::docker::{self, ImageUser};
use crate::error::Outcome;
use crate::hints;
use crate::output::{Printer, Style};

#[derive(Debug, Serialize)]
struct DaemonReport {
    server_version: Option<String>,
    api_version: String,
    security_options: Vec<String>,
    rootless: bool,
    userns_remap: bool,
    /// The host UID/GID that container UID/GID `--uid` runs as.
    host_uid: Option<u32>,
    host_gid: Option<u32>,
    images: Vec<ImageUser>,
}

#[derive(Debug, Serialize)]
struct OwnershipReport {
    root: bool,
    sudo: bool,
    docker_socket_writable: bool,
    /// What to run to hand folders to the container's UID.
    how: String,
}

#[derive(Debug, Serialize)]
struct DoctorReport {
    docker_host: String,
    daemon: Option<DaemonReport>,
    daemon_error: Option<String>,
    selinux_enforcing: bool,
    /// The Docker client's version (`docker --version`; no daemon needed).
    docker_client: Option<String>,
    compose: Option<String>,
    ownership: OwnershipReport,
    problems: Vec<String>,
}

fn compose_version() -> Option<String> {
    let try_command = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    try_command("docker", &["compose", "version"]).or_else(|| try_command("docker-compose", &["version"]))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn socket_writable() -> bool {
    let host = docker::docker_host();
    host.strip_prefix("unix://").is_some_and(|socket| {
        nix::unistd::access(
            Path::new(socket),
            nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
        )
        .is_ok()
    })
}

pub fn run(args: &DoctorArgs, printer: &Printer) -> Result<Outcome> {
    let mut problems = Vec::new();
    let daemon_result = docker::block_on(async {
        let daemon = docker::Daemon::connect().await?;
        let facts = daemon.facts().await?;
        let security_options = daemon.security_options().await?;
        let images = daemon.flower_images().await?;
        anyhow::Ok((daemon.api_version(), facts, security_options, images))
    })?;
    let (daemon, daemon_error) = match daemon_result {
        Ok((api_version, facts, security_options, images)) => {
            let shift = super::daemon_id_shift(&facts);
            if shift.is_some_and(|s| s.uid_start.is_none()) {
                problems.push(
                    "the daemon is user-namespaced but no subordinate ID range was found in /etc/subuid"
                        .into(),
                );
            }
            if images.is_empty() {
                problems
                    .push("no local Flower images (superlink, supernode, superexec) on this daemon".into());
            }
            let shift = shift.unwrap_or_default();
            (
                Some(DaemonReport {
                    server_version: facts.server_version.clone(),
                    api_version,
                    security_options,
                    rootless: facts.rootless,
                    userns_remap: facts.userns_remap,
                    host_uid: Some(shift.host_uid(args.uid)),
                    host_gid: Some(shift.host_gid(args.uid)),
                    images,
                }),
                None,
            )
        }
        Err(err) => {
            problems.push(format!("{err:#}"));
            (None, Some(format!("{err:#}")))
        }
    };
    let compose = compose_version();
    if compose.is_none() {
        problems.push("Docker Compose v2 not found (`docker compose` or `docker-compose`)".into());
    }
    let root = nix::unistd::geteuid().is_root();
    let sudo = on_path("sudo");
    let docker_socket_writable = socket_writable();
    let how = if root || docker_socket_writable || sudo {
        hints::own_ways(root, docker_socket_writable)
    } else {
        problems.push("cannot change ownership: not root, no sudo, no access to the Docker socket".into());
        "none available".to_string()
    };
    let report = DoctorReport {
        docker_host: docker::docker_host(),
        daemon,
        daemon_error,
        selinux_enforcing: crate::check::selinux_enforcing(),
        docker_client: crate::docker::client_version().map(|v| v.to_string()),
        compose,
        ownership: OwnershipReport {
            root,
            sudo,
            docker_socket_writable,
            how,
        },
        problems,
    };
    let outcome = if report.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::Findings
    };
    if args.json {
        printer.json(&report)?;
    } else {
        print_text(&report, args.uid, printer)?;
    }
    Ok(outcome)
}

fn print_text(report: &DoctorReport, uid: u32, printer: &Printer) -> std::io::Result<()> {
    let line = |label: &str, value: &str| printer.result(&format!("{:<22}{value}", format!("{label}:")));
    line("docker host", &report.docker_host)?;
    line(
        "docker client",
        report.docker_client.as_deref().unwrap_or("not found"),
    )?;
    match &report.daemon {
        Some(daemon) => {
            line(
                "daemon",
                &format!(
                    "Docker {} (API {} negotiated)",
                    daemon.server_version.as_deref().unwrap_or("?"),
                    daemon.api_version
                ),
            )?;
            line("security options", &daemon.security_options.join(", "))?;
            let mode = match (daemon.rootless, daemon.userns_remap) {
                (true, _) => "rootless",
                (_, true) => "userns-remap",
                _ => "none (container UIDs are host UIDs)",
            };
            line("user namespace", mode)?;
            if let Some(host_uid) = daemon.host_uid {
                line(&format!("container UID {uid}"), &format!("host UID {host_uid}"))?;
            }
            if daemon.images.is_empty() {
                line("Flower images", "none")?;
            }
            for image in &daemon.images {
                let user = if image.user.is_empty() {
                    "root (unset)"
                } else {
                    &image.user
                };
                line(
                    "Flower image",
                    &format!("{} runs as {user}", image.tags.join(", ")),
                )?;
            }
        }
        None => line("daemon", &printer.paint(Style::Error, "unreachable"))?,
    }
    line(
        "SELinux",
        if report.selinux_enforcing {
            "enforcing (mounts need :z)"
        } else {
            "not enforcing"
        },
    )?;
    line("compose", report.compose.as_deref().unwrap_or("not found"))?;
    line("change ownership", &report.ownership.how)?;
    for problem in &report.problems {
        printer.result(&format!("{} {problem}", printer.paint(Style::Warn, "problem:")))?;
    }
    if report.problems.is_empty() {
        printer.result(&printer.paint(Style::Ok, "ok: nothing in the way"))?;
    }
    Ok(())
}
