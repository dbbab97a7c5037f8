//! Read Compose files (ours or hand-written) into container specs: services' `user:`,
//! bind mounts in short and long syntax, file-based `secrets:`, and command flags.
//! [`super::compose_files`] first turns the files into one normalized project (through
//! Docker Compose itself when it is installed); relative host paths resolve against the
//! folder of the file that wrote them, as Compose does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

use crate::deploy::Profile;

use super::spec::{Component, ContainerSpec, MountKind, MountSpec, resolve_host};

#[derive(Debug, Deserialize, Default)]
struct ComposeFile {
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretDefinition>,
}

#[derive(Debug, Deserialize, Default)]
struct Service {
    image: Option<String>,
    build: Option<Build>,
    user: Option<Scalar>,
    command: Option<StringOrList>,
    entrypoint: Option<StringOrList>,
    working_dir: Option<String>,
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default)]
    secrets: Vec<ServiceSecret>,
}

/// `build: DIR` or `build: {context, dockerfile_inline, ...}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Build {
    Detailed {
        dockerfile_inline: Option<String>,
    },
    /// `build: DIR`.
    Context(serde::de::IgnoredAny),
}

impl Build {
    /// The image an inline Dockerfile starts `FROM` (Flower's examples build the
    /// superexec this way), to tell the release.
    fn base_image(&self) -> Option<&str> {
        let Build::Detailed {
            dockerfile_inline: Some(dockerfile),
        } = self
        else {
            return None;
        };
        dockerfile.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            words
                .next()
                .filter(|w| w.eq_ignore_ascii_case("FROM"))
                .and_then(|_| words.find(|w| !w.starts_with("--")))
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<Scalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Volume {
    Short(String),
    Long(LongVolume),
}

#[derive(Debug, Deserialize)]
struct LongVolume {
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    target: String,
    #[serde(default)]
    read_only: bool,
    bind: Option<BindOptions>,
}

#[derive(Debug, Deserialize)]
struct BindOptions {
    selinux: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ServiceSecret {
    Short(String),
    Long { source: String, target: Option<String> },
}

#[derive(Debug, Deserialize)]
struct SecretDefinition {
    file: Option<String>,
}

fn scalar_text(scalar: &Scalar) -> String {
    match scalar {
        Scalar::Number(n) => n.to_string(),
        Scalar::Text(t) => t.clone(),
    }
}

fn words(value: Option<&StringOrList>) -> Result<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(StringOrList::Many(items)) => Ok(items.iter().map(scalar_text).collect()),
        Some(StringOrList::One(text)) => {
            shlex::split(text).ok_or_else(|| anyhow!("cannot split command {text:?}"))
        }
    }
}

fn is_host_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

fn short_volume(spec: &str, base: &Path) -> Option<MountSpec> {
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    let (source, target, options) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return None, // anonymous volume
    };
    if !is_host_path(source) {
        return None; // a named volume, not a host path
    }
    let options: Vec<&str> = options.split(',').collect();
    Some(MountSpec {
        source: resolve_host(base, source),
        written: None,
        target: target.to_string(),
        read_only: options.contains(&"ro"),
        kind: MountKind::Bind,
        selinux_label: options.iter().any(|o| *o == "z" || *o == "Z"),
    })
}

/// Parse one compose file's YAML with our own reader (pure but for `include` and
/// `extends` files; the fuzz target calls this) into specs.
pub fn parse(yaml: &str, base: &Path) -> Result<Vec<ContainerSpec>> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    from_model(super::compose_files::normalize(yaml, base, &env, 0)?, base)
}

/// Specs from a normalized project model (interpolated, merged).
pub fn from_model(model: serde_json::Value, base: &Path) -> Result<Vec<ContainerSpec>> {
    let file: ComposeFile =
        serde_json::from_value(model).map_err(|err| anyhow!("not a valid compose file: {err}"))?;
    if file.services.is_empty() {
        return Err(anyhow!("no services defined"));
    }
    let mut specs = Vec::new();
    for (name, service) in &file.services {
        let mut mounts = Vec::new();
        for volume in &service.volumes {
            match volume {
                Volume::Short(text) => mounts.extend(short_volume(text, base)),
                Volume::Long(long) => {
                    let bind = long.kind.as_deref().is_none_or(|k| k == "bind");
                    let Some(source) = long.source.as_deref() else {
                        continue;
                    };
                    if !bind || !is_host_path(source) {
                        continue;
                    }
                    mounts.push(MountSpec {
                        source: resolve_host(base, source),
                        written: None,
                        target: long.target.clone(),
                        read_only: long.read_only,
                        kind: MountKind::Bind,
                        selinux_label: long.bind.as_ref().is_some_and(|b| b.selinux.is_some()),
                    });
                }
            }
        }
        for secret in &service.secrets {
            let (secret_name, target) = match secret {
                ServiceSecret::Short(secret_name) => (secret_name.as_str(), None),
                ServiceSecret::Long { source, target } => (source.as_str(), target.as_deref()),
            };
            let definition = file.secrets.get(secret_name).with_context(|| {
                format!("service {name}: secret {secret_name:?} is not defined at the top level")
            })?;
            let Some(secret_file) = definition.file.as_deref() else {
                continue;
            };
            let target = match target {
                Some(t) if t.starts_with('/') => t.to_string(),
                Some(t) => format!("/run/secrets/{t}"),
                None => format!("/run/secrets/{secret_name}"),
            };
            mounts.push(MountSpec {
                source: resolve_host(base, secret_file),
                written: None,
                target,
                read_only: true,
                kind: MountKind::Secret,
                selinux_label: false,
            });
        }
        let entrypoint = words(service.entrypoint.as_ref())?;
        let mut args: Vec<String> = words(service.command.as_ref())?;
        // A command that names the executable itself (`flower-superlink --insecure`).
        let executable = entrypoint.first().cloned().or_else(|| {
            args.first()
                .filter(|first| first.starts_with("flower-") || first.starts_with("flwr-"))
                .cloned()
        });
        if entrypoint.is_empty() && executable.is_some() {
            args.remove(0);
        } else if entrypoint.len() > 1 {
            args.splice(0..0, entrypoint[1..].iter().cloned());
        }
        let role = service
            .image
            .as_deref()
            .and_then(Component::guess)
            .or_else(|| executable.as_deref().and_then(Component::guess))
            .or_else(|| Component::guess(name));
        specs.push(ContainerSpec {
            name: name.clone(),
            image: service.image.clone(),
            role,
            profile: service
                .image
                .as_deref()
                .or_else(|| service.build.as_ref().and_then(Build::base_image))
                .and_then(Profile::from_image),
            user: service.user.as_ref().map(scalar_text),
            owner: None,
            working_dir: service.working_dir.clone().unwrap_or_else(|| "/app".into()),
            mounts,
            args,
        });
    }
    Ok(specs)
}

/// Read `files` (merged in order) into specs, and say how they were normalized.
pub fn read(files: &[PathBuf]) -> Result<(Vec<ContainerSpec>, Option<String>)> {
    let project = super::compose_files::load(files)?;
    let base: PathBuf = files
        .first()
        .and_then(|file| std::path::absolute(file).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let specs = from_model(project.model, &base).with_context(|| {
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    })?;
    let note = project.normalized_by.is_none().then(|| {
        "Docker Compose v2 not found (docker compose or docker-compose): read with flowerbed's own reader (.env, include, extends and several files; no profiles)".to_string()
    });
    Ok((specs, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAND_WRITTEN: &str = r#"
services:
  superlink:
    image: flwr/superlink:1.42.0
    user: "49999:49999"
    command:
      - --isolation
      - process
      - --ssl-ca-certfile=certificates/ca.crt
      - --ssl-certfile=certificates/server.pem
      - --ssl-keyfile=certificates/server.key
      - --database
      - state/state.db
    volumes:
      - ./superlink-certificates/:/app/certificates/:ro,z
      - type: bind
        source: ./state
        target: /app/state
      - data:/data
  supernode-1:
    image: flwr/supernode:1.42.0
    command: --superlink superlink:9092 --root-certificates /run/secrets/ca.crt
    secrets:
      - source: superlink-ca-certfile
        target: ca.crt
volumes:
  data: {}
secrets:
  superlink-ca-certfile:
    file: ./certificates/ca.crt
"#;

    #[test]
    fn reads_short_long_and_secret_mounts() {
        let specs = parse(HAND_WRITTEN, Path::new("/srv/flower")).unwrap();
        assert_eq!(specs.len(), 2);
        let superlink = &specs[0];
        assert_eq!(superlink.role, Some(Component::Superlink));
        assert_eq!(superlink.user.as_deref(), Some("49999:49999"));
        assert_eq!(superlink.mounts.len(), 2, "named volumes are not host paths");
        assert_eq!(
            superlink.mounts[0].source,
            PathBuf::from("/srv/flower/superlink-certificates")
        );
        assert!(superlink.mounts[0].read_only && superlink.mounts[0].selinux_label);
        assert!(!superlink.mounts[1].read_only);
        assert_eq!(
            superlink.flag_value("--ssl-keyfile"),
            Some("certificates/server.key")
        );
        let supernode = &specs[1];
        assert_eq!(supernode.flag_value("--superlink"), Some("superlink:9092"));
        assert_eq!(supernode.mounts[0].target, "/run/secrets/ca.crt");
        assert_eq!(supernode.mounts[0].kind, MountKind::Secret);
        let (_, host) = supernode.host_path("/run/secrets/ca.crt").unwrap();
        assert_eq!(host, PathBuf::from("/srv/flower/certificates/ca.crt"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse("services: [", Path::new("/")).is_err());
        assert!(parse("just: text", Path::new("/")).is_err());
        assert!(parse("services:\n  a:\n    secrets: [missing]\n", Path::new("/")).is_err());
    }
}
