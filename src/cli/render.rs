//! `render FORMAT`: one subcommand per format the renderers offer (`render::FORMATS`, each
//! with its one-line description), all taking [`RenderArgs`]. A format with options of its
//! own, or help of its own, has them here; any other needs nothing in this file.

use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};

use super::deploy::RenderArgs;
use crate::render::{self, Format};

const RENDER_HELP: &str = "\
Settings not given here come from DIR/flowerbed.json (written by quickstart and --out).
Certificates are found in DIR in either layout (split: superlink-certificates/,
supernode-certificates/; flat: Flower's single folder, mounted file by file).

Examples:
  flowerbed render compose deploy --out deploy/compose.yaml
  flowerbed render docker-run deploy --isolation process > run.sh
  flowerbed render docker-run deploy --teardown > stop.sh
  flowerbed render flwr-config deploy >> ~/.flwr/config.toml
  flowerbed render compose deploy --flower-version 1.13.1 --insecure --image-repo flowerbed-local
  flowerbed render compose deploy --supernode-auth --out deploy/compose.yaml
  flowerbed render swarm deploy --out deploy/stack.yaml
  flowerbed render kubernetes deploy --namespace flower --out deploy/flower.k8s.yaml
  flowerbed render compose link --role superlink --public-address flower.example.org
  flowerbed render docker-run nodes --role supernode --superlink-address flower.example.org:8000";

const SWARM_HELP: &str = "\
Settings not given here come from DIR/flowerbed.json (written by quickstart and --out).
Each certificate file becomes a Swarm secret (file: its absolute path in DIR) mounted where
the flags name it, owned by --uid/--gid inside the container, mode 0400 for the private key
and 0444 for certificates. --state keeps the superlink's database on the named volume
\"state\". In subprocess isolation the supernodes are one replicated service, \"supernode\",
each replica reading the partition of its task slot; with --supernode-auth (a key each) or
in process isolation (a runner each) they are one service each. --placement applies to the
superlink, whose state volume and published port live on the node it runs on.

Examples:
  flowerbed render swarm deploy --out deploy/stack.yaml
  docker stack deploy -c deploy/stack.yaml flowerbed
  flowerbed render swarm deploy --state --placement node.role==manager
  flowerbed render swarm deploy --isolation process --placement 'node.labels.flower==link'";

const KUBERNETES_HELP: &str = "\
Settings not given here come from DIR/flowerbed.json (written by quickstart and --out).
With TLS the certificates in DIR are read now and embedded in Secrets (superlink-tls for
the superlink, flower-ca for the rest): the output holds the private key, so --out writes
it with mode 0600. Pods run as --uid/--gid (fsGroup too) with a read-only root filesystem.
The supernode StatefulSet takes each pod's index as its partition-id (Kubernetes 1.28+).

Examples:
  flowerbed render kubernetes deploy --out deploy/flower.k8s.yaml
  kubectl apply -f deploy/flower.k8s.yaml
  flowerbed render kubernetes deploy --namespace fl-lab --state --supernodes 4
  flowerbed render kubernetes deploy --insecure --isolation process | kubectl apply -f -";

/// Options only `render swarm` takes.
#[derive(Debug, Default, Args)]
pub struct SwarmArgs {
    /// Placement constraint for the superlink, e.g. node.role==manager (repeatable).
    #[arg(long, value_name = "CONSTRAINT")]
    pub placement: Vec<String>,
}

/// Options only `render kubernetes` takes.
#[derive(Debug, Default, Args)]
pub struct KubernetesArgs {
    /// Namespace of every object [default: the project name].
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
}

/// A parsed `render FORMAT ...`.
#[derive(Debug)]
pub struct RenderCommand {
    pub format: &'static Format,
    pub args: RenderArgs,
    pub swarm: SwarmArgs,
    pub kubernetes: KubernetesArgs,
}

/// The formats `render` offers, in the renderers' order.
fn offered() -> impl Iterator<Item = (&'static Format, &'static str)> {
    render::FORMATS
        .iter()
        .filter_map(|format| format.about.map(|about| (*format, about)))
}

impl Subcommand for RenderCommand {
    fn augment_subcommands(command: Command) -> Command {
        offered().fold(command, |command, (format, about)| {
            let sub = RenderArgs::augment_args(Command::new(format.name));
            let sub = match format.name {
                "swarm" => SwarmArgs::augment_args(sub).after_help(SWARM_HELP),
                "kubernetes" => KubernetesArgs::augment_args(sub).after_help(KUBERNETES_HELP),
                _ => sub.after_help(RENDER_HELP),
            };
            // Last: the argument structs' own doc comments would otherwise describe it.
            command.subcommand(sub.about(about).long_about(None))
        })
    }

    fn augment_subcommands_for_update(command: Command) -> Command {
        Self::augment_subcommands(command)
    }

    fn has_subcommand(name: &str) -> bool {
        offered().any(|(format, _)| format.name == name)
    }
}

impl FromArgMatches for RenderCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let format = offered()
            .map(|(format, _)| format)
            .find(|format| format.name == name)
            .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))?;
        Ok(Self {
            format,
            args: RenderArgs::from_arg_matches(sub)?,
            swarm: match name {
                "swarm" => SwarmArgs::from_arg_matches(sub)?,
                _ => SwarmArgs::default(),
            },
            kubernetes: match name {
                "kubernetes" => KubernetesArgs::from_arg_matches(sub)?,
                _ => KubernetesArgs::default(),
            },
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::{Cli, Command};

    /// The subcommands are the table's: each offered format parses to itself, the teardown
    /// script is no subcommand, and nothing else is offered.
    #[test]
    fn render_offers_exactly_the_formats_of_the_table() {
        let cli = Cli::command();
        let render = cli.find_subcommand("render").unwrap();
        let mut names: Vec<&str> = render
            .get_subcommands()
            .map(clap::Command::get_name)
            .filter(|name| *name != "help")
            .collect();
        let mut offered: Vec<&str> = super::offered().map(|(format, _)| format.name).collect();
        names.sort_unstable();
        offered.sort_unstable();
        assert_eq!(names, offered);
        assert!(!offered.contains(&"teardown") && offered.contains(&"compose"));
        for name in offered {
            let parsed = Cli::try_parse_from(["flowerbed", "render", name, "DIR"]).unwrap();
            let Command::Render(command) = parsed.command else {
                panic!("render {name} parsed as another command");
            };
            assert_eq!(command.format.name, name);
        }
    }
}
