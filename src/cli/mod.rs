//! Command-line types (clap derive) and nothing else: no module below the CLI knows clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

pub mod certs;
pub mod check;
pub mod deploy;
pub mod meta;
pub mod ownership;
pub mod render;

const AFTER_HELP: &str = "\
Examples:
  flowerbed certs generate deploy          TLS material laid out for Flower's containers
  flowerbed certs verify deploy            will a supernode accept this superlink?
  flowerbed certs inspect deploy/superlink-certificates/server.pem
  flowerbed quickstart deploy              certificates, compose.yaml, run.sh, flwr config
  flowerbed render compose deploy --isolation process --flower-version 1.13.1
  flowerbed quickstart link --role superlink --public-address flower.example.org
  flowerbed bundle supernode link --out site.tar.gz   what a supernode operator needs, no keys
  flowerbed quickstart --from-bundle site.tar.gz      on the supernode's host
  flowerbed check --compose compose.yaml   will these containers start?
  flowerbed doctor                         what this Docker set-up means for UID 49999
  sudo flowerbed own deploy/state          hand a folder to Flower's UID 49999, journaled
  sudo flowerbed undo deploy/state         put owners and modes back exactly
  sudo flowerbed release deploy            hand it to yourself before deleting it

Exit codes: 0 success, 1 findings (verify/check), 2 bad input or failure (nothing changed).";

/// Prepare Docker volumes, TLS material and deployments for Flower.
///
/// Flower's images run as UID 49999; flowerbed generates certificates with the names and
/// file layout Flower expects and keeps private keys private.
#[derive(Debug, Parser)]
#[command(name = "flowerbed", version, about, long_about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour (NO_COLOR in the environment also turns it off).
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,
}

/// `--color WHEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorArg {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate, inspect and verify TLS certificates for a Flower deployment.
    #[command(subcommand)]
    Certs(certs::CertsCommand),

    /// Render a deployment (docker run script, compose file, flwr connection).
    #[command(subcommand)]
    Render(render::RenderCommand),

    /// Create a complete deployment folder: certificates, compose.yaml, run.sh, README.
    #[command(after_help = deploy::QUICKSTART_HELP)]
    Quickstart(deploy::QuickstartArgs),

    /// Download the app's dependencies as wheels into DIR/app-wheels/, for offline image builds.
    Wheels(deploy::WheelsArgs),

    /// Pack a deployment for another host (a supernode operator's bundle).
    #[command(subcommand)]
    Bundle(deploy::BundleCommand),

    /// Admit supernodes of other hosts (their public keys) to a superlink deployment.
    #[command(subcommand)]
    Supernodes(deploy::SupernodesCommand),

    /// Predict permission and TLS failures of a deployment from the host side.
    Check(check::CheckArgs),

    /// Report the Docker set-up: daemon, user namespaces, SELinux, Compose, Flower images.
    Doctor(check::DoctorArgs),
    /// Give every entry under PATH to the container's UID:GID (49999:49999), journaled.
    #[command(after_help = ownership::OWN_AFTER_HELP)]
    Own(ownership::OwnArgs),

    /// Restore the owners and modes recorded by `own`.
    #[command(after_help = ownership::UNDO_AFTER_HELP)]
    Undo(ownership::UndoArgs),

    /// Hand a tree to the person running flowerbed (the sudo caller), e.g. before deleting it.
    #[command(after_help = ownership::RELEASE_AFTER_HELP)]
    Release(ownership::ReleaseArgs),

    /// Show what `own` has recorded.
    #[command(subcommand, after_help = ownership::JOURNAL_AFTER_HELP)]
    Journal(ownership::JournalCommand),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  flowerbed completions bash > /etc/bash_completion.d/flowerbed")]
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },

    /// Write the man pages (flowerbed.1 and one per subcommand).
    #[command(after_help = "Example:\n  flowerbed man --out-dir /usr/local/share/man/man1")]
    Man {
        /// Write the pages into this directory instead of printing flowerbed.1 to stdout.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}
