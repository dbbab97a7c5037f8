//! `flowerbed render ...` and `flowerbed quickstart`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::deploy::Profile;

/// `--flower-version`'s help, from the profile table.
fn flower_version_help() -> String {
    format!(
        "Flower release to deploy [default: the newest supported, {}] [supported: {}]",
        Profile::newest().version,
        Profile::supported_list()
    )
}

/// Where app code runs (flag value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// The superlink / supernode starts the app itself, inside its container.
    Subprocess,
    /// A separate container (superexec; serverapp/clientapp for 1.13) runs the app.
    Process,
}

/// Which side of a federation a deployment runs (flag value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// The superlink (and its ServerApp runner); supernodes on other hosts dial it.
    Superlink,
    /// Supernodes (and their ClientApp runners) dialing a superlink on another host.
    Supernode,
    /// Superlink and supernodes together on this host.
    All,
}

/// Deployment settings shared by every renderer and quickstart. Each is optional so that
/// a deployment folder's saved settings (flowerbed.json) fill in what is not given.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(long, value_name = "VERSION", help = flower_version_help())]
    pub flower_version: Option<String>,

    /// Isolation of both superlink and supernodes [default: subprocess].
    #[arg(long, value_enum, value_name = "MODE")]
    pub isolation: Option<IsolationArg>,

    /// Isolation of the superlink only (overrides --isolation).
    #[arg(long, value_enum, value_name = "MODE")]
    pub superlink_isolation: Option<IsolationArg>,

    /// Isolation of the supernodes only (overrides --isolation).
    #[arg(long, value_enum, value_name = "MODE")]
    pub supernode_isolation: Option<IsolationArg>,

    /// Use TLS with the certificates in DIR (the default).
    #[arg(long, conflicts_with = "insecure")]
    pub tls: bool,

    /// No TLS: every component runs with --insecure.
    #[arg(long)]
    pub insecure: bool,

    /// Number of supernodes [default: 2].
    #[arg(long, value_name = "N")]
    pub supernodes: Option<u32>,

    /// Keep the superlink's database in DIR/state (must be writable by the container user).
    #[arg(long)]
    pub state: bool,

    /// Image repository prefix replacing `flwr` (e.g. flowerbed-local, or a mirror).
    #[arg(long, value_name = "PREFIX")]
    pub image_repo: Option<String>,

    /// Image tag [default: the Flower release].
    #[arg(long, value_name = "TAG")]
    pub image_tag: Option<String>,

    /// Compose project name, network name and flwr connection name [default: flowerbed].
    #[arg(long, value_name = "NAME")]
    pub project_name: Option<String>,

    /// Host address the flwr CLI's port is published on [default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub publish_address: Option<IpAddr>,

    /// Add `:z` SELinux labels to every bind mount.
    #[arg(long)]
    pub selinux: bool,

    /// UID the containers run as [default: 49999].
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,

    /// GID the containers run as [default: 49999].
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,

    /// Let Flower install app dependencies at run time (needs the internet; 1.35.0+).
    #[arg(long)]
    pub install_app_dependencies: bool,

    /// Which side of the federation runs here: the superlink, the supernodes, or both
    /// on one host [default: all].
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: Option<RoleArg>,

    /// Role superlink: a DNS name or IP address supernodes on other hosts dial, with an
    /// optional port [default port: the release's Fleet port] (repeatable). Quickstart adds
    /// each host to the server certificate; IPv6 in brackets: [2001:db8::1]:8000. The
    /// superlink publishes its Fleet port on every address of this host (from 1.41 that
    /// port also serves the flwr CLI, so --publish-address does not narrow it).
    #[arg(long = "public-address", value_name = "HOST[:PORT]")]
    pub public_addresses: Vec<String>,

    /// Role supernode: the superlink's public address the supernodes dial, instead of the
    /// service name `superlink` [default port: the release's Fleet port].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub superlink_address: Option<String>,
    /// Supernode authentication (needs TLS): one ECDSA P-384 key pair per supernode in
    /// DIR/supernode-auth/, each mounted only into its supernode, and the release's flags
    /// (1.35+: --enable-supernode-auth, then register-supernodes.sh registers the keys).
    #[arg(long)]
    pub supernode_auth: bool,

    /// Your Flower app's project folder (with pyproject.toml): the components that run its
    /// code get images of their own with its [project].dependencies (flwr excepted), built
    /// FROM the deployment's images; one Dockerfile each in DIR/app-images/.
    #[arg(long, value_name = "PROJECT_DIR")]
    pub app: Option<PathBuf>,

    /// With --app: the registry the app images are pushed to, for swarm and kubernetes
    /// (image names REGISTRY/PROJECT/COMPONENT-app:TAG).
    #[arg(long, value_name = "REGISTRY")]
    pub push_to: Option<String>,

    /// Harden every container (the default): all capabilities dropped, no-new-privileges,
    /// a read-only root filesystem with tmpfs scratch folders for what Flower writes
    /// (/app/.flwr, /app/.cache, /app/.config, /tmp, /var/tmp), memory and process limits.
    #[arg(long, conflicts_with = "no_harden")]
    pub harden: bool,

    /// Run the containers unhardened, for debugging (kept in flowerbed.json until --harden).
    #[arg(long)]
    pub no_harden: bool,

    /// Memory limit of each hardened container: bytes, or a number with k, m or g
    /// (binary units) [default: 4g].
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Process and thread limit of each hardened container [default: 1024].
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<u32>,

    /// CPU limit of each hardened container, in CPUs (2, 0.5) [default: 2]; raise it for
    /// the containers that train (supernodes, or their ClientApp runners).
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,

    /// Pin every Flower image to its registry digest (NAME:TAG@sha256:...) as the local
    /// Docker engine knows it; an image it lacks, or built locally without one, keeps its
    /// tag with a warning. Kept in flowerbed.json.
    #[arg(long)]
    pub image_digest: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The deployment folder (certificates, state); mounts use its absolute path.
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub deploy: DeployArgs,

    /// Write to FILE (and save the settings in DIR/flowerbed.json) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// docker-run only: render the matching teardown script instead.
    #[arg(long)]
    pub teardown: bool,

    /// Replace FILE or a different DIR/flowerbed.json.
    #[arg(long)]
    pub force: bool,
}

pub const QUICKSTART_HELP: &str = "\
Writes into DIR: certificates (superlink-certificates/, supernode-certificates/, ca/),
compose.yaml, run.sh, stop.sh, the flwr connection snippet, README.md and flowerbed.json.
Needs no Docker. Existing files are left alone unless --force (which keeps existing
certificates and rewrites the rest). Settings not given here come from DIR/flowerbed.json
when DIR already has one.

Across hosts: --role superlink --public-address HOST[:PORT] on the superlink's host (each
host joins the server certificate), then `flowerbed bundle supernode` for each supernode
operator, who runs `flowerbed quickstart --from-bundle FILE.tar.gz [DIR]` (DIR defaults to
the bundle's folder name). A bundle is unpacked into a new folder, all or nothing; entries
that are links, devices or lead outside it are refused.

--supernode-auth writes one key pair per supernode (OpenSSH ECDSA P-384; private keys 0600)
into supernode-auth/supernode-N/, mounted read-only into that supernode only. Flower 1.13.1
and 1.21.0 read the supernodes' public keys from superlink-auth/ (1.13.1 also the
superlink's own pair); from 1.35.0 the superlink runs with --enable-supernode-auth and
register-supernodes.sh runs `flwr supernode register` for each public key.

Examples:
  flowerbed quickstart deploy
  flowerbed quickstart deploy --isolation process --state --supernodes 3
  flowerbed quickstart deploy --flower-version 1.13.1 --image-repo flowerbed-local --dry-run
  flowerbed quickstart link --role superlink --public-address flower.example.org --public-address 203.0.113.7
  flowerbed quickstart --from-bundle flowerbed-supernode.tar.gz nodes
  flowerbed quickstart deploy --supernode-auth   # superlink up, then: sh register-supernodes.sh";

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// The deployment folder to create (or complete); with --from-bundle, a new folder
    /// [default there: the bundle's folder name].
    #[arg(value_name = "DIR", required_unless_present = "from_bundle")]
    pub dir: Option<PathBuf>,

    #[command(flatten)]
    pub deploy: DeployArgs,

    /// A further DNS name or IP address the server certificate must cover (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,

    /// Lay down a supernode deployment from a bundle made by `flowerbed bundle supernode`.
    #[arg(long, value_name = "FILE.tar.gz", conflicts_with = "names")]
    pub from_bundle: Option<PathBuf>,

    /// Rewrite files that already exist (existing certificates are kept).
    #[arg(long)]
    pub force: bool,

    /// Leave ownership alone even when running as root (print the `own` command instead).
    #[arg(long)]
    pub no_own: bool,

    /// Print what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

const BUNDLE_HELP: &str = "\
DIR is a superlink deployment (quickstart --role superlink --public-address ...). The archive
holds one folder: the CA certificate (supernode-certificates/ca.crt; never a private key),
compose.yaml, run.sh and stop.sh for the supernodes only, dialing the superlink's public
address, flowerbed.json, superlink-certificate.json (the names the server certificate covers,
so `flowerbed check` can tell on the supernode's host whether the address it dials is one
of them) and a README. Entries are owned by 0:0 with modes 0644/0755 and a fixed time, so
the same inputs give the same bytes. FILE is written atomically; an existing one only with
--force.

Examples:
  flowerbed bundle supernode link --out flowerbed-supernode.tar.gz
  flowerbed bundle supernode link --out site-b.tar.gz --supernodes 1 --superlink-address 203.0.113.7
  flowerbed quickstart --from-bundle site-b.tar.gz site-b      # on the supernode's host
  tar -xzf site-b.tar.gz && sh flowerbed-supernode/run.sh      # or without flowerbed";

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pack what a supernode operator needs (CA certificate, compose.yaml, run.sh dialing
    /// the superlink's public address, README) into a .tar.gz, without any private key.
    #[command(after_help = BUNDLE_HELP)]
    Supernode(BundleArgs),
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The superlink deployment folder.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The archive to write (gzip-compressed tar).
    #[arg(long, value_name = "FILE.tar.gz")]
    pub out: PathBuf,

    /// Number of supernodes the bundle runs [default: the superlink deployment's].
    #[arg(long, value_name = "N")]
    pub supernodes: Option<u32>,

    /// The address the supernodes dial [default: the first --public-address].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub superlink_address: Option<String>,

    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

const ADMIT_HELP: &str = "\
Takes in the public keys a supernodes' host sent back (its DIR/supernode-public-keys/, made
by `quickstart --from-bundle`): each FILE is a .pub file or a folder of them. A file that
holds a private key, or a key other than ECDSA P-384, is refused and nothing changes. Each
new key is kept in DIR/admitted-supernodes/; a key already admitted (or one of DIR's own
supernodes) is reported and not added again. Flower 1.13 and 1.21 read the known keys at
start: the CSV is rewritten, and the superlink must restart to load new keys. From 1.35
keys are registered with the running superlink: DIR/register-supernodes.sh registers every
admitted key.

Examples:
  flowerbed supernodes admit link site-b-keys/            # the folder the site sent back
  flowerbed supernodes admit link --dry-run site-b-keys/supernode-1.pub";

#[derive(Debug, Subcommand)]
pub enum SupernodesCommand {
    /// Admit supernodes of other hosts: take in their public keys, refusing any private key.
    #[command(after_help = ADMIT_HELP)]
    Admit(AdmitArgs),
}

#[derive(Debug, Args)]
pub struct AdmitArgs {
    /// The superlink deployment folder (made with --supernode-auth).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Public key files (.pub), or folders of them.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,

    /// Show what would be written; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

const WHEELS_HELP: &str = "\
Downloads the app's [project].dependencies (flwr excepted) with `pip download` on this host
into DIR/app-wheels/, as wheels for the Python and platform of the deployment's images
(asked of the image itself with `docker run`, unless --python-version is given), then
rewrites the Dockerfiles in DIR/app-images/ to install with --no-index --find-links from
that folder: the builds need no network. The folder is filled in a staging folder and moved
into place whole; an existing one is replaced.

Examples:
  flowerbed wheels deploy                       # the app saved by quickstart --app
  flowerbed wheels deploy --app ../my-app --python-version 3.11
  docker compose -f deploy/compose.yaml build   # then: up -d";

/// `flowerbed wheels DIR`.
#[derive(Debug, Args)]
#[command(after_help = WHEELS_HELP)]
pub struct WheelsArgs {
    /// The deployment folder (made with quickstart --app or render --app --out).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    /// The app's project folder [default: the one DIR/flowerbed.json records].
    #[arg(long, value_name = "PROJECT_DIR")]
    pub app: Option<PathBuf>,

    /// The images' Python as MAJOR.MINOR [default: asked of the image].
    #[arg(long, value_name = "X.Y")]
    pub python_version: Option<String>,

    /// A wheel platform tag the images accept, e.g. manylinux_2_17_x86_64 (repeatable)
    /// [default: the manylinux tags of the image's architecture and glibc].
    #[arg(long = "platform", value_name = "TAG")]
    pub platforms: Vec<String>,
}
