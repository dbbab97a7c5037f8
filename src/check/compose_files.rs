//! Turn one or more Compose files into the single project the engine would run.
//!
//! With a Docker Compose v2 binary on PATH (`docker compose` or `docker-compose`), its own
//! `config --format json` does it: `.env`, interpolation, `extends`, `include`, profiles
//! and several `-f` files, exactly as `up` will. Without one, a small reader of our own
//! covers the common part: `.env` and environment interpolation, `include`, `extends`, and
//! files merged in order (mappings merged, `volumes`/`secrets` merged by target, other
//! lists replaced), relative paths resolved against the file that wrote them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// How deep `include` and `extends` may nest before we call it a loop.
const MAX_DEPTH: usize = 16;

/// A normalized project and how it was obtained.
#[derive(Debug)]
pub struct Project {
    pub model: Value,
    /// The Compose binary that normalized it (`docker compose`, `docker-compose`), or
    /// `None` when our own reader did.
    pub normalized_by: Option<String>,
}

/// The Compose v2 command on PATH, if any (`docker compose` first, as Docker documents).
fn compose_command() -> Option<Vec<&'static str>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).contains("v2"))
    };
    if works("docker", &["compose", "version"]) {
        Some(vec!["docker", "compose"])
    } else if works("docker-compose", &["version"]) {
        Some(vec!["docker-compose"])
    } else {
        None
    }
}

/// A Compose file's text, read only when it is a regular file within the text limit.
fn read_text(file: &Path) -> Result<String> {
    Ok(crate::fsutil::read_regular_text(
        file,
        crate::fsutil::TEXT_LIMIT,
        crate::fsutil::Links::Follow,
    )?)
}

fn names(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Normalize `files` (merged in order) into one project model.
pub fn load(files: &[PathBuf]) -> Result<Project> {
    // Refused by name before Compose is asked: anything but a regular file within the
    // limit (a FIFO would hang the reader, a huge file fill memory).
    for file in files {
        read_text(file)?;
    }
    let Some(command) = compose_command() else {
        return Ok(Project {
            model: builtin(files)?,
            normalized_by: None,
        });
    };
    let mut run = Command::new(command[0]);
    run.args(&command[1..]);
    for file in files {
        run.arg("-f").arg(file);
    }
    let out = run
        .args(["config", "--format", "json"])
        .output()
        .with_context(|| format!("{}: cannot run {}", names(files), command.join(" ")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = stderr
            .lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .unwrap_or("failed");
        bail!("{}: {} config: {reason}", names(files), command.join(" "));
    }
    let model = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: {} config printed no JSON", names(files), command.join(" ")))?;
    Ok(Project {
        model,
        normalized_by: Some(command.join(" ")),
    })
}

/// Our own reader: every file loaded (with its includes and extends) and merged in order.
fn builtin(files: &[PathBuf]) -> Result<Value> {
    let project_dir = files
        .first()
        .and_then(|file| std::path::absolute(file).ok())
        .and_then(|file| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let env = environment(&project_dir)?;
    let mut merged = Value::Object(Map::new());
    for file in files {
        let text = read_text(file)?;
        // As in Compose, relative paths in every -f file mean the project folder (the
        // first file's); an included file's mean its own folder.
        let model = normalize(&text, &project_dir, &env, 0).with_context(|| file.display().to_string())?;
        merge_files(&mut merged, model);
    }
    Ok(merged)
}

/// The variables interpolation sees: `.env` in the project folder, overridden by the
/// environment (as Compose does).
fn environment(project_dir: &Path) -> Result<HashMap<String, String>> {
    let mut env = HashMap::new();
    let dotenv = project_dir.join(".env");
    if dotenv.is_file() {
        for item in
            dotenvy::from_path_iter(&dotenv).with_context(|| format!("{}: cannot read", dotenv.display()))?
        {
            let (key, value) =
                item.with_context(|| format!("{}: not a valid .env file", dotenv.display()))?;
            env.insert(key, value);
        }
    }
    env.extend(std::env::vars());
    Ok(env)
}

/// One file's text as a model: interpolated, relative paths made absolute against `dir`,
/// `include` and `extends` resolved (pure apart from reading included files).
#[allow(clippy::implicit_hasher)] // one caller kind: the variables `environment` reads
pub fn normalize(text: &str, dir: &Path, env: &HashMap<String, String>, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        bail!("include/extends nested more than {MAX_DEPTH} deep");
    }
    let mut model: Value =
        serde_saphyr::from_str(text).map_err(|err| anyhow!("not a valid compose file: {err}"))?;
    if !model.is_object() {
        bail!("not a valid compose file: expected a mapping at the top");
    }
    interpolate(&mut model, env);
    absolutize(&mut model, dir);
    let includes = model
        .as_object_mut()
        .and_then(|top| top.remove("include"))
        .map(|value| match value {
            Value::Array(items) => items,
            other => vec![other],
        })
        .unwrap_or_default();
    let mut project = Value::Object(Map::new());
    for include in includes {
        let paths = match include {
            Value::String(path) => vec![Value::String(path)],
            Value::Object(mut entry) => match entry.remove("path") {
                Some(Value::Array(paths)) => paths,
                Some(path) => vec![path],
                None => bail!("include: an entry without a path"),
            },
            _ => bail!("include: expected a path or a mapping"),
        };
        for path in paths {
            let path = PathBuf::from(
                path.as_str()
                    .ok_or_else(|| anyhow!("include: a path must be text"))?,
            );
            let text = read_text(&path).with_context(|| format!("include {}", path.display()))?;
            let included_dir = path.parent().map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
            let child = normalize(&text, &included_dir, env, depth + 1)
                .with_context(|| format!("include {}", path.display()))?;
            merge_files(&mut project, child);
        }
    }
    resolve_extends(&mut model, env, depth)?;
    merge_files(&mut project, model);
    Ok(project)
}

/// `${VAR}`, `${VAR:-default}`, `$VAR` in every string (unset means empty, as Compose
/// warns and does).
fn interpolate(value: &mut Value, env: &HashMap<String, String>) {
    match value {
        Value::String(text) if text.contains('$') => {
            // First defaults for unset or empty variables (`${VAR:-default}`), then
            // whatever is still unset becomes empty.
            // `$$` is a literal `$`.
            let set = |name: &str| env.get(name).filter(|value| !value.is_empty()).cloned();
            let rest = |name: &str| Some(env.get(name).cloned().unwrap_or_default());
            let parts: Vec<String> = text
                .split("$$")
                .map(|part| {
                    let with_defaults = shellexpand::env_with_context_no_errors(part, set).into_owned();
                    shellexpand::env_with_context_no_errors(&with_defaults, rest).into_owned()
                })
                .collect();
            *text = parts.join("$");
        }
        Value::Array(items) => items.iter_mut().for_each(|item| interpolate(item, env)),
        Value::Object(map) => map.values_mut().for_each(|item| interpolate(item, env)),
        _ => {}
    }
}

fn is_relative_host_path(text: &str) -> bool {
    text.starts_with('.') || text.starts_with('~')
}

fn absolute(dir: &Path, text: &str) -> String {
    super::spec::resolve_host(dir, text)
        .to_string_lossy()
        .into_owned()
}

/// Relative host paths, made absolute against the folder of the file that wrote them
/// (they would mean something else once merged with a file elsewhere).
fn absolutize(model: &mut Value, dir: &Path) {
    let Some(top) = model.as_object_mut() else { return };
    if let Some(Value::Object(secrets)) = top.get_mut("secrets") {
        for secret in secrets.values_mut() {
            if let Some(Value::String(file)) = secret.get_mut("file") {
                *file = absolute(dir, file);
            }
        }
    }
    if let Some(Value::Array(includes)) = top.get_mut("include") {
        for include in includes {
            match include {
                Value::String(path) => *path = absolute(dir, path),
                Value::Object(entry) => match entry.get_mut("path") {
                    Some(Value::String(path)) => *path = absolute(dir, path),
                    Some(Value::Array(paths)) => {
                        for path in paths {
                            if let Value::String(text) = path {
                                *text = absolute(dir, text);
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let Some(Value::Object(services)) = top.get_mut("services") else {
        return;
    };
    for service in services.values_mut() {
        if let Some(Value::Object(extends)) = service.get_mut("extends") {
            if let Some(Value::String(file)) = extends.get_mut("file") {
                *file = absolute(dir, file);
            }
        }
        let Some(Value::Array(volumes)) = service.get_mut("volumes") else {
            continue;
        };
        for volume in volumes {
            match volume {
                Value::String(short) => {
                    if let Some((source, rest)) = short.split_once(':') {
                        if is_relative_host_path(source) {
                            *short = format!("{}:{rest}", absolute(dir, source));
                        }
                    }
                }
                Value::Object(long) => {
                    if let Some(Value::String(source)) = long.get_mut("source") {
                        if is_relative_host_path(source) {
                            *source = absolute(dir, source);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Replace each `extends:` by the service it names, with this one merged over it.
fn resolve_extends(model: &mut Value, env: &HashMap<String, String>, depth: usize) -> Result<()> {
    let Some(Value::Object(services)) = model.get("services").cloned() else {
        return Ok(());
    };
    let mut resolved = Map::new();
    for (name, service) in &services {
        resolved.insert(name.clone(), extended(name, service, &services, env, depth)?);
    }
    model["services"] = Value::Object(resolved);
    Ok(())
}

fn extended(
    name: &str,
    service: &Value,
    siblings: &Map<String, Value>,
    env: &HashMap<String, String>,
    depth: usize,
) -> Result<Value> {
    if depth > MAX_DEPTH {
        bail!("service {name}: extends nested more than {MAX_DEPTH} deep");
    }
    let mut service = service.clone();
    let Some(extends) = service.as_object_mut().and_then(|s| s.remove("extends")) else {
        return Ok(service);
    };
    let (base_name, file) = match &extends {
        Value::String(base) => (base.clone(), None),
        Value::Object(entry) => (
            entry
                .get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("service {name}: extends without a service"))?
                .to_string(),
            entry.get("file").and_then(Value::as_str).map(PathBuf::from),
        ),
        _ => bail!("service {name}: extends must name a service"),
    };
    let base = if let Some(file) = file {
        {
            let text = read_text(&file).with_context(|| format!("service {name}: extends"))?;
            let dir = file
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let other = normalize(&text, &dir, env, depth + 1)?;
            other["services"].get(&base_name).cloned().ok_or_else(|| {
                anyhow!(
                    "service {name}: extends {base_name}, which {} does not define",
                    file.display()
                )
            })?
        }
    } else {
        let base = siblings
            .get(&base_name)
            .ok_or_else(|| anyhow!("service {name}: extends {base_name}, which is not defined"))?;
        extended(&base_name, base, siblings, env, depth + 1)?
    };
    let mut merged = base;
    merge_service(&mut merged, service);
    Ok(merged)
}

/// A later file over an earlier one: services merged by name, other sections by key.
fn merge_files(into: &mut Value, later: Value) {
    let (Value::Object(into), Value::Object(later)) = (into, later) else {
        return;
    };
    for (key, value) in later {
        match (key.as_str(), into.get_mut(&key)) {
            ("services", Some(Value::Object(services))) => {
                if let Value::Object(later_services) = value {
                    for (name, service) in later_services {
                        match services.get_mut(&name) {
                            Some(existing) => merge_service(existing, service),
                            None => {
                                services.insert(name, service);
                            }
                        }
                    }
                }
            }
            (_, Some(existing @ Value::Object(_))) if value.is_object() => merge_mapping(existing, value),
            _ => {
                into.insert(key, value);
            }
        }
    }
}

/// One service over another, as Compose merges: `volumes` and `secrets` by target, the
/// command and other lists replaced, mappings merged.
fn merge_service(into: &mut Value, later: Value) {
    let (Value::Object(into), Value::Object(later)) = (into, later) else {
        return;
    };
    for (key, value) in later {
        let by_target = matches!(key.as_str(), "volumes" | "secrets");
        match into.get_mut(&key) {
            Some(Value::Array(existing)) if by_target => {
                if let Value::Array(items) = value {
                    for item in items {
                        let target = mount_target(&item);
                        existing.retain(|old| target.is_none() || mount_target(old) != target);
                        existing.push(item);
                    }
                }
            }
            Some(existing @ Value::Object(_)) if value.is_object() => merge_mapping(existing, value),
            _ => {
                into.insert(key, value);
            }
        }
    }
}

fn merge_mapping(into: &mut Value, later: Value) {
    let (Value::Object(into), Value::Object(later)) = (into, later) else {
        return;
    };
    for (key, value) in later {
        match into.get_mut(&key) {
            Some(existing @ Value::Object(_)) if value.is_object() => merge_mapping(existing, value),
            _ => {
                into.insert(key, value);
            }
        }
    }
}

/// The container path a `volumes` or `secrets` entry occupies.
fn mount_target(entry: &Value) -> Option<String> {
    match entry {
        Value::String(short) => {
            let mut parts = short.splitn(3, ':');
            let first = parts.next()?;
            Some(parts.next().unwrap_or(first).to_string())
        }
        Value::Object(long) => long
            .get("target")
            .or_else(|| long.get("source"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn later_files_merge_over_earlier_ones() {
        let base = normalize(
            "services:\n  superlink:\n    image: flwr/superlink:${TAG:-1.21.0}\n    command: [--insecure]\n    volumes: [./state:/app/state]\n",
            Path::new("/srv/a"),
            &env(&[]),
            0,
        )
        .unwrap();
        let overlay = normalize(
            "services:\n  superlink:\n    command: [--ssl-certfile, c.pem]\n    volumes: [./certs:/app/certificates:ro, ./other:/app/state]\nsecrets:\n  ca:\n    file: ./certs/ca.crt\n",
            Path::new("/srv/b"),
            &env(&[("TAG", "9")]),
            0,
        )
        .unwrap();
        let mut merged = base;
        merge_files(&mut merged, overlay);
        let superlink = &merged["services"]["superlink"];
        assert_eq!(superlink["image"], "flwr/superlink:1.21.0");
        assert_eq!(
            superlink["command"],
            serde_json::json!(["--ssl-certfile", "c.pem"])
        );
        assert_eq!(
            superlink["volumes"],
            serde_json::json!(["/srv/b/certs:/app/certificates:ro", "/srv/b/other:/app/state"])
        );
        assert_eq!(merged["secrets"]["ca"]["file"], "/srv/b/certs/ca.crt");
    }

    #[test]
    fn extends_within_a_file() {
        let model = normalize(
            "services:\n  base:\n    image: flwr/supernode:1.42.0\n    user: app\n    command: [--insecure]\n  supernode-1:\n    extends: base\n    command: [--superlink, superlink:8000]\n",
            Path::new("/srv"),
            &env(&[]),
            0,
        )
        .unwrap();
        let node = &model["services"]["supernode-1"];
        assert_eq!(node["image"], "flwr/supernode:1.42.0");
        assert_eq!(node["user"], "app");
        assert_eq!(
            node["command"],
            serde_json::json!(["--superlink", "superlink:8000"])
        );
        assert!(
            normalize("services:\n  a:\n    extends: a\n", Path::new("/"), &env(&[]), 0).is_err(),
            "a loop is an error, not a hang"
        );
    }
}
