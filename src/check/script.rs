//! Read the `docker run` commands of a shell script (a rendered `run.sh` or a hand-written
//! one) into container specs. Lines are joined at trailing backslashes and split with
//! shell quoting rules; lines that are not `docker run` are ignored.

use std::path::Path;

use anyhow::{Context, Result, anyhow};

use super::spec::{ContainerSpec, MountKind, MountSpec, Role};

/// `docker run` options that take a value (the rest are switches).
const VALUED: [&str; 40] = [
    "-v",
    "--volume",
    "--mount",
    "-u",
    "--user",
    "--name",
    "-w",
    "--workdir",
    "-e",
    "--env",
    "--env-file",
    "-p",
    "--publish",
    "--network",
    "--net",
    "--network-alias",
    "--restart",
    "--entrypoint",
    "-l",
    "--label",
    "--hostname",
    "-h",
    "--add-host",
    "--security-opt",
    "--cap-add",
    "--cap-drop",
    "--ulimit",
    "--log-driver",
    "--log-opt",
    "-m",
    "--memory",
    "--cpus",
    "--pull",
    "--platform",
    "--health-cmd",
    "--health-interval",
    "--stop-signal",
    "--group-add",
    "--tmpfs",
    "--userns",
];

/// Parse a script's text (pure: shared with the fuzz target).
pub fn parse(script: &str) -> Result<Vec<ContainerSpec>> {
    let mut specs = Vec::new();
    let mut logical = String::new();
    for line in script.lines() {
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let words = shlex::split(logical.trim()).unwrap_or_default();
        logical.clear();
        if let Some(spec) = docker_run(&words)? {
            specs.push(spec);
        }
    }
    if specs.is_empty() {
        return Err(anyhow!("no `docker run` commands found"));
    }
    Ok(specs)
}

pub fn read(path: &Path) -> Result<Vec<ContainerSpec>> {
    let text =
        crate::fsutil::read_regular_text(path, crate::fsutil::TEXT_LIMIT, crate::fsutil::Links::Follow)?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

fn docker_run(words: &[String]) -> Result<Option<ContainerSpec>> {
    let start = words
        .windows(2)
        .position(|pair| pair[0].rsplit('/').next() == Some("docker") && pair[1] == "run");
    let Some(start) = start else { return Ok(None) };
    let mut rest = words[start + 2..].iter();
    let mut spec = ContainerSpec {
        name: String::new(),
        image: None,
        role: None,
        profile: None,
        uid: None,
        gid: None,
        working_dir: "/app".into(),
        mounts: Vec::new(),
        args: Vec::new(),
    };
    let mut entrypoint = None;
    while let Some(word) = rest.next() {
        if !word.starts_with('-') || word == "-" {
            spec.image = Some(word.clone());
            spec.args = rest.cloned().collect();
            break;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (word.as_str(), None),
        };
        let value = if VALUED.contains(&flag) {
            match inline {
                Some(value) => Some(value),
                None => Some(
                    rest.next()
                        .cloned()
                        .ok_or_else(|| anyhow!("`{flag}` without a value"))?,
                ),
            }
        } else {
            inline
        };
        let Some(value) = value else { continue };
        match flag {
            "-v" | "--volume" => spec.mounts.extend(volume(&value)),
            "--mount" => spec.mounts.extend(mount(&value)),
            "-u" | "--user" => {
                let (uid, gid) = value
                    .split_once(':')
                    .map_or((value.as_str(), None), |(u, g)| (u, Some(g)));
                spec.uid = uid.parse().ok();
                spec.gid = gid.and_then(|g| g.parse().ok());
            }
            "--name" => spec.name = value,
            "-w" | "--workdir" => spec.working_dir = value,
            "--entrypoint" => entrypoint = Some(value),
            _ => {}
        }
    }
    let Some(image) = spec.image.clone() else {
        return Err(anyhow!("`docker run` without an image"));
    };
    if spec.name.is_empty() {
        spec.name.clone_from(&image);
    }
    spec.profile = crate::deploy::Profile::from_image(&image);
    spec.role = Role::guess(&image)
        .or_else(|| entrypoint.as_deref().and_then(Role::guess))
        .or_else(|| Role::guess(&spec.name));
    Ok(Some(spec))
}

fn volume(value: &str) -> Option<MountSpec> {
    let parts: Vec<&str> = value.splitn(3, ':').collect();
    let (source, target, options) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return None,
    };
    if !(source.starts_with('/') || source.starts_with('.')) {
        return None; // named volume
    }
    let options: Vec<&str> = options.split(',').collect();
    Some(MountSpec {
        source: source.into(),
        written_relative: !source.starts_with('/'),
        target: target.to_string(),
        read_only: options.contains(&"ro"),
        kind: MountKind::Bind,
        selinux_label: options.iter().any(|o| *o == "z" || *o == "Z"),
    })
}

/// `--mount type=bind,source=/x,target=/y,readonly`
fn mount(value: &str) -> Option<MountSpec> {
    let mut kind = "volume";
    let (mut source, mut target, mut read_only) = (None, None, false);
    for field in value.split(',') {
        let (key, val) = field.split_once('=').map_or((field, ""), |(k, v)| (k, v));
        match key {
            "type" => kind = if val == "bind" { "bind" } else { "other" },
            "source" | "src" => source = Some(val.to_string()),
            "target" | "destination" | "dst" => target = Some(val.to_string()),
            "readonly" | "ro" => read_only = val.is_empty() || val == "true" || val == "1",
            _ => {}
        }
    }
    if kind != "bind" {
        return None;
    }
    let source = source?;
    Some(MountSpec {
        written_relative: !source.starts_with('/'),
        source: source.into(),
        target: target?,
        read_only,
        kind: MountKind::Bind,
        selinux_label: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_run_lines() {
        let script = r"#!/bin/sh
set -eu
docker network create flower
docker run -d \
  --name superlink \
  --network flower \
  --user 49999:49999 \
  -v '/srv/my certs/superlink-certificates:/app/certificates:ro' \
  --mount type=bind,source=/srv/state,target=/app/state \
  flwr/superlink:1.42.0 \
  --ssl-keyfile certificates/server.key \
  --database state/state.db
docker run --rm -d --name=supernode-1 -v ./ca:/app/ca:ro flwr/supernode:1.42.0 --insecure
";
        let specs = parse(script).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "superlink");
        assert_eq!(specs[0].role, Some(Role::Superlink));
        assert_eq!(specs[0].uid, Some(49_999));
        assert_eq!(
            specs[0].mounts[0].source,
            std::path::PathBuf::from("/srv/my certs/superlink-certificates")
        );
        assert!(specs[0].mounts[0].read_only);
        assert!(!specs[0].mounts[1].read_only);
        assert_eq!(specs[0].flag_value("--database"), Some("state/state.db"));
        assert_eq!(specs[1].name, "supernode-1");
        assert!(specs[1].mounts[0].written_relative);
        assert!(specs[1].has_flag("--insecure"));
    }

    #[test]
    fn no_docker_run_is_an_error() {
        assert!(parse("echo hello\n").is_err());
        assert!(parse("docker run --name x\n").is_err());
    }
}
