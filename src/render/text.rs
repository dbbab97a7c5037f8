//! Text a person reads (comment headers, the deployment's README), from minijinja
//! templates under `templates/`. The data in it comes from the model.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use minijinja::{Environment, syntax::SyntaxConfig};
use serde::Serialize;

use crate::deploy::{Deployment, Isolation, Security};
use crate::hints;

/// File name of the flwr connection snippet in a quickstart folder.
pub fn flwr_config_file(deployment: &Deployment) -> &'static str {
    if deployment
        .connection
        .as_ref()
        .is_none_or(|connection| connection.config_toml)
    {
        "flwr-config.toml"
    } else {
        "flwr-federation.toml"
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters"),
        );
        for (name, source) in [
            ("run-header", include_str!("../../templates/run-header.sh.j2")),
            ("stop-header", include_str!("../../templates/stop-header.sh.j2")),
            (
                "compose-header",
                include_str!("../../templates/compose-header.yaml.j2"),
            ),
            (
                "swarm-header",
                include_str!("../../templates/swarm-header.yaml.j2"),
            ),
            (
                "kubernetes-header",
                include_str!("../../templates/kubernetes-header.yaml.j2"),
            ),
            (
                "flwr-config-header",
                include_str!("../../templates/flwr-config-header.toml.j2"),
            ),
            ("readme", include_str!("../../templates/README.md.j2")),
            (
                "bundle-readme",
                include_str!("../../templates/bundle-README.md.j2"),
            ),
        ] {
            env.add_template(name, source).expect("templates parse");
        }
        env
    })
}

#[derive(Serialize)]
struct ServiceView<'a> {
    name: &'a str,
    image: &'a str,
}

#[derive(Serialize)]
struct View<'a> {
    version: &'a str,
    project: &'a str,
    network: &'a str,
    superlink_isolation: &'a str,
    supernode_isolation: &'a str,
    tls: bool,
    state: bool,
    supernodes: usize,
    user: String,
    services: Vec<ServiceView<'a>>,
    own_command: Option<String>,
    release_command: String,
    name: &'a str,
    config_toml: bool,
    flwr_config_file: &'a str,
    /// `superlink`, `supernode` or `all`.
    role: &'a str,
    has_superlink: bool,
    has_supernodes: bool,
    /// Role superlink: the addresses supernodes on other hosts dial.
    public_addresses: Vec<String>,
    /// The address the supernodes dial (`--superlink`).
    superlink_address: String,
    /// Supernodes authenticate with keys of their own; which files the superlink reads.
    supernode_auth: bool,
    superlink_auth_dir: bool,
    superlink_pair: bool,
    /// The supernodes' keys are registered through the Control API (1.35+).
    register_script: Option<&'static str>,
}

fn view(deployment: &Deployment) -> View<'_> {
    let isolation = |isolation: Isolation| isolation.name();
    View {
        version: deployment.flower_version(),
        project: &deployment.project,
        network: &deployment.network,
        superlink_isolation: isolation(deployment.superlink_isolation),
        supernode_isolation: isolation(deployment.supernode_isolation),
        tls: deployment.security == Security::Tls,
        state: deployment.state,
        supernodes: deployment
            .services
            .iter()
            .filter(|service| matches!(service.role, crate::deploy::Role::Supernode(_)))
            .count(),
        user: deployment.user.to_string(),
        services: deployment
            .services
            .iter()
            .map(|service| ServiceView {
                name: &service.name,
                image: &service.image,
            })
            .collect(),
        own_command: own_command(deployment),
        release_command: release_command(deployment),
        name: deployment
            .connection
            .as_ref()
            .map_or("", |connection| connection.name.as_str()),
        config_toml: deployment
            .connection
            .as_ref()
            .is_some_and(|connection| connection.config_toml),
        flwr_config_file: flwr_config_file(deployment),
        role: deployment.role.name(),
        has_superlink: deployment.role.has_superlink(),
        has_supernodes: deployment.role.has_supernodes(),
        public_addresses: deployment
            .public_addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        superlink_address: deployment
            .superlink_address
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        supernode_auth: deployment.supernodes_authenticate(),
        superlink_auth_dir: deployment.reads_known_keys(),
        superlink_pair: deployment.has_superlink_pair(),
        register_script: deployment
            .registers_supernodes()
            .then_some(crate::auth::REGISTER_SCRIPT),
    }
}

/// The command that hands what the containers must read or write to their user: mounted
/// folders that hold a private key or must be writable. `None` when there is nothing.
pub fn own_command(deployment: &Deployment) -> Option<String> {
    own_command_from(deployment, false)
}

/// [`own_command`]; `relocatable`: the paths relative to the deployment folder (`./...`),
/// for files that run wherever they are unpacked.
fn own_command_from(deployment: &Deployment, relocatable: bool) -> Option<String> {
    let paths = deployment.owned_paths();
    if paths.is_empty() {
        return None;
    }
    let shown: Vec<String> = paths
        .iter()
        .map(|path| match path.strip_prefix(&deployment.dir) {
            Ok(inside) if relocatable => format!("./{}", inside.to_string_lossy()),
            _ => path.to_string_lossy().into_owned(),
        })
        .collect();
    let user = deployment.user;
    hints::own_command(user.uid, user.gid, shown.iter().map(String::as_str))
}

/// Hands the deployment folder back to the user who ran sudo, so it can be deleted.
fn release_command(deployment: &Deployment) -> String {
    let dir = deployment.dir.to_string_lossy();
    let release = shlex::try_join(["sudo", "flowerbed", "release", &dir]).unwrap_or_default();
    let delete = shlex::try_join(["rm", "-rf", &dir]).unwrap_or_default();
    format!("{release} && {delete}")
}

/// What to do next after a deployment folder was written, one line each (the first
/// empty): the ownership hint, how to start it, how to connect or check it.
pub fn next_steps(dir: &std::path::Path, deployment: &Deployment, own: Option<&str>) -> Result<Vec<String>> {
    let quoted_dir = shlex::try_quote(&dir.to_string_lossy())?.into_owned();
    let mut lines = vec![String::new()];
    if let Some(own) = own {
        // Handing files to UID 49999 needs privileges flowerbed does not assume.
        lines.push(format!(
            "ownership not changed: the containers run as {}; run: {own}",
            deployment.user
        ));
    }
    lines.push(format!(
        "start:   cd {quoted_dir} && docker compose up -d   (or: sh run.sh)"
    ));
    let Some(connection) = &deployment.connection else {
        lines.push(format!("check:   {}", hints::check(&quoted_dir)));
        return Ok(lines);
    };
    lines.push(format!(
        "connect: add {} to {}, then `flwr run APP_DIR {} --stream`",
        flwr_config_file(deployment),
        if connection.config_toml {
            "~/.flwr/config.toml"
        } else {
            "your app's pyproject.toml"
        },
        connection.name
    ));
    if deployment.role == crate::deploy::DeploymentRole::Superlink {
        lines.push(format!(
            "supernodes on other hosts: {}",
            hints::bundle_supernode_out(&quoted_dir, &format!("{}-supernode.tar.gz", deployment.project))
        ));
    }
    Ok(lines)
}

/// The view every template reads, plus what only template `name` reads.
#[derive(Serialize)]
struct Extended<'a, E: Serialize> {
    #[serde(flatten)]
    view: View<'a>,
    #[serde(flatten)]
    extra: E,
}

/// Render template `name` over the deployment's view and `extra`, the facts only that
/// template has (nothing: `()`).
fn render_with(name: &str, deployment: &Deployment, extra: impl Serialize) -> Result<String> {
    render_data(
        name,
        Extended {
            view: view(deployment),
            extra,
        },
    )
}

fn render_data(name: &str, data: impl Serialize) -> Result<String> {
    environment()
        .get_template(name)
        .and_then(|template| template.render(minijinja::value::Serde(data)))
        .with_context(|| format!("cannot render the {name} template"))
}

/// Nothing beyond the deployment's view.
#[derive(Serialize)]
struct NoExtra {}

fn render(name: &str, deployment: &Deployment) -> Result<String> {
    render_with(name, deployment, NoExtra {})
}

/// `run.sh`'s header; `relocatable` for a script that runs wherever it is unpacked.
pub fn run_header(deployment: &Deployment, relocatable: bool) -> Result<String> {
    render_header("run-header", deployment, relocatable)
}

/// A header whose ownership hint names paths relative to the folder when `relocatable`.
fn render_header(name: &str, deployment: &Deployment, relocatable: bool) -> Result<String> {
    let mut view = view(deployment);
    view.own_command = own_command_from(deployment, relocatable);
    render_data(name, view)
}

pub fn stop_header(deployment: &Deployment) -> Result<String> {
    render("stop-header", deployment)
}

/// `compose.yaml`'s header; `relocatable` for a file that runs wherever it is unpacked.
pub fn compose_header(deployment: &Deployment, relocatable: bool) -> Result<String> {
    render_header("compose-header", deployment, relocatable)
}

/// The stack file's header; `replicated` when the supernodes are one replicated service.
pub fn swarm_header(deployment: &Deployment, replicated: bool) -> Result<String> {
    /// The supernodes are one replicated service.
    #[derive(Serialize)]
    struct Swarm {
        replicated_supernodes: bool,
    }
    render_with(
        "swarm-header",
        deployment,
        Swarm {
            replicated_supernodes: replicated,
        },
    )
}

/// The Kubernetes manifests' header; `namespace` is where they go.
pub fn kubernetes_header(deployment: &Deployment, namespace: &str) -> Result<String> {
    /// The namespace and the superlink port the flwr CLI dials.
    #[derive(Serialize)]
    struct Kubernetes<'a> {
        namespace: &'a str,
        control_port: String,
    }
    let control_port = deployment
        .connection
        .as_ref()
        .and_then(|connection| connection.address.port)
        .map(|port| port.to_string())
        .unwrap_or_default();
    render_with(
        "kubernetes-header",
        deployment,
        Kubernetes {
            namespace,
            control_port,
        },
    )
}

pub fn flwr_config_header(deployment: &Deployment) -> Result<String> {
    render("flwr-config-header", deployment)
}

/// The deployment folder's README.md.
pub fn readme(deployment: &Deployment) -> Result<String> {
    /// With `--app`: its project and the commands that build (and push) its images.
    #[derive(Serialize)]
    struct AppView {
        project: String,
        components: Vec<&'static str>,
        commands: Vec<String>,
        pushes: bool,
    }
    #[derive(Serialize)]
    struct App {
        app: Option<AppView>,
    }
    let app = match &deployment.app {
        Some(images) => Some(AppView {
            project: images.project.display().to_string(),
            components: images.images.iter().map(|image| image.component).collect(),
            commands: super::dockerfile::command_lines(deployment)?,
            pushes: images.registry.is_some(),
        }),
        None => None,
    };
    render_with("readme", deployment, App { app })
}

/// The README.md of a supernode bundle: what it is and the one command to run.
pub fn bundle_readme(deployment: &Deployment, folder: &str, file: &str) -> Result<String> {
    /// The bundle's folder name and archive file name.
    #[derive(Serialize)]
    struct Archive<'a> {
        bundle_folder: &'a str,
        bundle_file: &'a str,
        /// The supernodes need keys, secrets or certificates made on their own host.
        needs_host_material: bool,
        /// Among them, the runner links' secrets or Runtime API certificates.
        runner_material: bool,
    }
    render_with(
        "bundle-readme",
        deployment,
        Archive {
            bundle_folder: folder,
            bundle_file: file,
            needs_host_material: deployment.needs_host_material(),
            runner_material: deployment.needs_runner_material(),
        },
    )
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::deploy::{self, Settings};

    #[test]
    fn own_command_names_only_what_the_container_user_must_own() {
        let mut settings = Settings::defaults(PathBuf::from("/srv/my deploy"));
        let tls = deploy::build(&settings).unwrap();
        assert_eq!(
            own_command(&tls).as_deref(),
            Some("sudo flowerbed own '/srv/my deploy/superlink-certificates'")
        );
        settings.security = Security::Insecure;
        assert_eq!(own_command(&deploy::build(&settings).unwrap()), None);
        settings.state = true;
        settings.uid = 1000;
        settings.gid = 1000;
        assert_eq!(
            own_command(&deploy::build(&settings).unwrap()).as_deref(),
            Some("sudo flowerbed own --uid 1000 --gid 1000 '/srv/my deploy/state'")
        );
    }
}
