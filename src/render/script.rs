//! `docker run` scripts: POSIX `sh`, `set -eu`, every word quoted by `shlex`, one option or
//! Flower flag per line; and the matching teardown.

use std::fmt::Write as _;
use std::net::IpAddr;

use anyhow::{Context, Result};

use crate::auth;
use crate::deploy::{Deployment, Hardening, HealthCheck, Mount, MountPurpose, Port, Service};
use crate::hints;

use super::text;

/// The `docker` argv (without `docker`) that creates the network.
pub fn network_create(deployment: &Deployment) -> Vec<String> {
    vec!["network".into(), "create".into(), deployment.network.clone()]
}

/// The `docker` argv (without `docker`) that starts `service`, grouped into lines: each
/// inner vector is one line of the script.
pub fn run_lines(deployment: &Deployment, service: &Service) -> Vec<Vec<String>> {
    let mut lines: Vec<Vec<String>> = vec![vec!["run".into(), "--detach".into()]];
    let mut option = |name: &str, value: String| lines.push(vec![name.to_string(), value]);
    option("--name", service.container_name(&deployment.project));
    option("--network", deployment.network.clone());
    option("--network-alias", service.name.clone());
    option("--user", service.user.to_string());
    option("--restart", service.restart.to_string());
    for (key, value) in &service.labels {
        option("--label", format!("{key}={value}"));
    }
    for (key, value) in &service.environment {
        option("--env", format!("{key}={value}"));
    }
    for port in &service.ports {
        option("--publish", publish_spec(port));
    }
    for mount in &service.mounts {
        option("--volume", volume_spec(mount));
    }
    if let Some(health) = &service.health {
        // Docker runs a health command with the shell: one quoted string.
        option(
            "--health-cmd",
            shlex::try_join(health.command().iter().map(String::as_str)).unwrap_or_default(),
        );
        option("--health-interval", format!("{}s", HealthCheck::INTERVAL_SECONDS));
        option("--health-timeout", format!("{}s", HealthCheck::TIMEOUT_SECONDS));
        option("--health-retries", HealthCheck::RETRIES.to_string());
        option(
            "--health-start-period",
            format!("{}s", HealthCheck::START_PERIOD_SECONDS),
        );
    }
    if let Some(hardening) = &deployment.hardening {
        option("--cap-drop", Hardening::CAP_DROP.to_string());
        option("--security-opt", Hardening::NO_NEW_PRIVILEGES.to_string());
        let tmpfs_options = Hardening::tmpfs_options(service.user);
        for path in hardening.scratch {
            option("--tmpfs", format!("{path}:{tmpfs_options}"));
        }
        option("--memory", hardening.memory_text(false));
        option("--pids-limit", hardening.pids.to_string());
        option("--cpus", hardening.cpus_text());
        lines.push(vec!["--read-only".into()]);
    }
    lines.push(vec![service.image.clone()]);
    for flag in &service.flags {
        let mut line = vec![flag.name.to_string()];
        line.extend(flag.value.clone());
        lines.push(line);
    }
    lines
}

/// The teardown argvs (without `docker`), newest container first.
pub fn teardown_commands(deployment: &Deployment) -> Vec<Vec<String>> {
    let mut commands: Vec<Vec<String>> = deployment
        .services
        .iter()
        .rev()
        .map(|service| {
            vec![
                "rm".into(),
                "--force".into(),
                service.container_name(&deployment.project),
            ]
        })
        .collect();
    commands.push(vec!["network".into(), "rm".into(), deployment.network.clone()]);
    commands
}

fn publish_spec(port: &Port) -> String {
    match port.host_ip {
        IpAddr::V4(ip) => format!("{ip}:{}:{}", port.published, port.target),
        IpAddr::V6(ip) => format!("[{ip}]:{}:{}", port.published, port.target),
    }
}

/// `SRC:DST[:ro][,z]`; the settings refuse ':' in the deployment folder's path.
fn volume_spec(mount: &Mount) -> String {
    let mut options = Vec::new();
    if mount.read_only {
        options.push("ro");
    }
    if mount.selinux_relabel {
        options.push("z");
    }
    let mut spec = format!("{}:{}", mount.source.display(), mount.target);
    if !options.is_empty() {
        spec.push(':');
        spec.push_str(&options.join(","));
    }
    spec
}

/// Seconds `run.sh` waits for a service's health probe before giving up.
const READY_TIMEOUT_SECONDS: u32 = 60;

/// Shell lines that wait until `container` answers its health probe (so what dials it
/// connects at once instead of backing off), or stop the script after a minute.
fn wait_until_healthy(container: &str, health: &HealthCheck) -> Result<String> {
    let mut probe = vec!["docker".to_string(), "exec".into(), container.into()];
    probe.extend(health.command());
    let probe = probe
        .iter()
        .map(|word| quote(word))
        .collect::<Result<Vec<_>>>()?
        .join(" ");
    let name = quote(container)?;
    let tries = READY_TIMEOUT_SECONDS * 2;
    Ok(format!(
        "# Wait until {container} answers its health probe: what dials it then connects at once.\n\
         tries=0\n\
         until {probe} >/dev/null 2>&1; do\n\
         \x20 tries=$((tries + 1))\n\
         \x20 if [ \"$tries\" -ge {tries} ]; then echo \"{container} is not ready after {READY_TIMEOUT_SECONDS} s: docker logs {name}\" >&2; exit 1; fi\n\
         \x20 sleep 0.5\n\
         done\n"
    ))
}

fn quote(word: &str) -> Result<String> {
    shlex::try_quote(word)
        .map(std::borrow::Cow::into_owned)
        .with_context(|| format!("{word:?}: cannot be quoted for sh"))
}

/// Shell variable a relocatable script sets to its own folder.
const HERE_VARIABLE: &str = "here";

/// One word of a command as the script writes it: with a base folder, a word that starts
/// with that folder's path starts with `"$here"` instead, and the rest is quoted.
fn word_text(word: &str, base: Option<&str>) -> Result<String> {
    match base.and_then(|base| word.strip_prefix(base)) {
        Some(rest) if rest.starts_with('/') => Ok(format!("\"${HERE_VARIABLE}\"{}", quote(rest)?)),
        _ => quote(word),
    }
}

/// One command over several lines, continued with backslashes.
fn command_text(program: &str, lines: &[Vec<String>]) -> Result<String> {
    command_text_with_base(program, lines, None)
}

fn command_text_with_base(program: &str, lines: &[Vec<String>], base: Option<&str>) -> Result<String> {
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let words = line
            .iter()
            .map(|word| word_text(word, base))
            .collect::<Result<Vec<_>>>()?
            .join(" ");
        if index == 0 {
            out.push_str(program);
            out.push(' ');
        } else {
            out.push_str("  ");
        }
        out.push_str(&words);
        out.push_str(if index + 1 == lines.len() { "\n" } else { " \\\n" });
    }
    Ok(out)
}

/// `render docker-run`: `run.sh`.
pub const RUN: super::Format = super::Format {
    name: "docker-run",
    about: Some("A POSIX sh script that starts the deployment with `docker run`"),
    file_name: |_| "run.sh",
    mode: super::script_mode,
    in_folder: super::always,
    render: |deployment, _| render_run(deployment),
};

/// `render docker-run --teardown`: `stop.sh`.
pub const STOP: super::Format = super::Format {
    name: "teardown",
    about: None,
    file_name: |_| "stop.sh",
    mode: super::script_mode,
    in_folder: super::always,
    render: |deployment, _| render_stop(deployment),
};

/// `run.sh`: create the network, start every service.
pub fn render_run(deployment: &Deployment) -> Result<String> {
    render_run_with_base(deployment, None)
}

/// `run.sh` for a folder that moves (a bundle): mount sources inside the deployment folder
/// are found from the script's own folder when it runs.
pub fn render_run_relocatable(deployment: &Deployment) -> Result<String> {
    let base = deployment
        .dir
        .to_str()
        .context("the deployment folder's path is not UTF-8")?;
    render_run_with_base(deployment, Some(base))
}

fn render_run_with_base(deployment: &Deployment, base: Option<&str>) -> Result<String> {
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&text::run_header(deployment, base.is_some())?);
    out.push_str("set -eu\n");
    if base.is_some() {
        // Docker wants absolute mount sources: the folder this script was unpacked in.
        let _ = writeln!(
            out,
            "{HERE_VARIABLE}=$(CDPATH= cd -- \"$(dirname -- \"$0\")\" && pwd -P)"
        );
    }
    out.push('\n');
    let builds = super::dockerfile::build_commands(deployment);
    if !builds.is_empty() {
        let _ = writeln!(
            out,
            "# The app's images (Dockerfiles in app-images/; `{}` makes the builds offline)",
            hints::wheels(None)
        );
        for build in builds {
            out.push_str(&command_text_with_base("docker", &[build], base)?);
        }
        out.push('\n');
    }
    out.push_str(&command_text("docker", &[network_create(deployment)])?);
    for service in &deployment.services {
        out.push('\n');
        let _ = writeln!(out, "# {} ({})", service.name, service.program);
        out.push_str(&command_text_with_base(
            "docker",
            &run_lines(deployment, service),
            base,
        )?);
        let dialed = (deployment.services.iter()).any(|other| other.depends_on.contains(&service.name));
        if let Some(health) = service.health.as_ref().filter(|_| dialed) {
            out.push_str(&wait_until_healthy(
                &service.container_name(&deployment.project),
                health,
            )?);
        }
    }
    Ok(out)
}

/// `stop.sh`: remove every container, then the network. Safe to run twice.
pub fn render_stop(deployment: &Deployment) -> Result<String> {
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&text::stop_header(deployment)?);
    out.push_str("set -eu\n\n");
    for command in teardown_commands(deployment) {
        let line = command_text("docker", &[command])?;
        // A container or network that is already gone is not an error when tearing down.
        out.push_str(line.trim_end());
        out.push_str(" || true\n");
    }
    Ok(out)
}

/// `register-supernodes.sh`, for releases that register supernodes through the Control API
/// (1.35+ with supernode authentication): one `flwr supernode register` per public key,
/// against the deployment's `flwr` connection. `None` when the deployment has no such step.
pub fn render_register(deployment: &Deployment) -> Result<Option<String>> {
    let Some(connection) = deployment
        .connection
        .as_ref()
        .filter(|_| deployment.registers_supernodes())
    else {
        return Ok(None);
    };
    let mut out = String::from("#!/bin/sh\n");
    let _ = writeln!(
        out,
        "# Registers each supernode's public key with the superlink of {:?} (Flower {},\n\
         # started with --enable-supernode-auth, which refuses unregistered supernodes).\n\
         # Run it once the superlink is up and {} is in your flwr configuration.\n\
         # A key registered before is refused with \"Public key already in use\": harmless;\n\
         # the others are still tried, and the exit status says whether any failed.",
        deployment.project,
        deployment.flower_version(),
        text::flwr_config_file(deployment),
    );
    out.push_str("set -u\nfailed=0\n\n");
    for service in &deployment.services {
        for mount in service
            .mounts
            .iter()
            .filter(|mount| mount.purpose == MountPurpose::SupernodeAuthKey)
        {
            let public_key = mount.source.join(auth::PUBLIC_KEY);
            let _ = writeln!(out, "# {}", service.name);
            let command = command_text(
                "flwr",
                &[vec![
                    "supernode".into(),
                    "register".into(),
                    public_key.to_string_lossy().into_owned(),
                    connection.name.clone(),
                ]],
            )?;
            out.push_str(command.trim_end());
            out.push_str(" || failed=1\n");
        }
    }
    // Supernodes of other hosts, admitted with `supernodes admit`.
    let admitted = deployment.dir.join(auth::ADMITTED_DIR);
    let _ = writeln!(
        out,
        "\n# supernodes of other hosts (`{}`)\nfor key in {}/*.pub; do\n    [ -e \"$key\" ] || continue\n    flwr supernode register \"$key\" {} || failed=1\ndone",
        hints::supernodes_admit_bare(),
        shlex::try_quote(&admitted.to_string_lossy())?,
        shlex::try_quote(&connection.name)?
    );
    out.push_str("exit \"$failed\"\n");
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::deploy::{self, Settings};

    #[test]
    fn words_with_shell_metacharacters_stay_single_words() {
        let settings = Settings::defaults(PathBuf::from("/srv/it's a $HOME `x`"));
        let deployment = deploy::build(&settings).unwrap();
        let script = render_run(&deployment).unwrap();
        let line = script.lines().find(|l| l.contains("--volume")).unwrap();
        let words = shlex::split(line.trim_end_matches(" \\")).unwrap();
        assert_eq!(
            words,
            [
                "--volume",
                "/srv/it's a $HOME `x`/superlink-certificates:/app/certificates:ro"
            ]
        );
    }

    #[test]
    fn publish_brackets_ipv6() {
        let port = Port {
            host_ip: "::1".parse().unwrap(),
            published: 8000,
            target: 8000,
        };
        assert_eq!(publish_spec(&port), "[::1]:8000:8000");
    }
}
