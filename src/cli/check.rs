//! `flowerbed check`

use std::path::PathBuf;

use clap::{Args, ValueEnum};

const CHECK_HELP: &str = "\
Rules: mount sources exist (Docker would create root-owned directories) and are absolute;
files named by flags (--ssl-*, --root-certificates, --database, ...) are inside a mount and
readable by the container's UID through every parent directory (mode bits, groups, POSIX
ACLs); the state folder is writable; private keys are not open to others; the CA key is not
mounted; certificate and key match, chain to the CA the clients trust, are in date, and
cover the names clients dial (and 127.0.0.1 in subprocess isolation); TLS is on for both
sides of each link that the release lets be TLS (1.13's serverapp/clientapp and 1.21's
superexec have none); CA files hold a certificate; SELinux labels when enforcing.
Compose files are normalized by Docker Compose v2 when it is on PATH (else by flowerbed's
own reader, which says so); scripts are parsed as shell, with $PWD and $(pwd) meaning
--workdir. Every rule: flowerbed check --list-rules. Across hosts (a folder made with --role):
the server certificate covers every --public-address (superlink), and the names a bundle
recorded for it cover the address the supernodes dial, issued by the CA they trust
(supernode).

Exit codes: 0 clean (warnings allowed), 1 findings, 2 bad input.

Examples:
  flowerbed check deploy
  flowerbed check site-b                                         # unpacked supernode bundle
  flowerbed check --compose compose.yaml --format sarif > flowerbed.sarif
  flowerbed check --compose compose.yml --compose with-tls.yml    # merged in order
  flowerbed check --run-script deploy/run.sh --json
  flowerbed check --compose compose.yaml --id-shift 100000     # rootless Docker
  flowerbed check --live                                         # every Flower container
  flowerbed check --live myproject superlink-1 --json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    /// The rule list as Markdown (with --list-rules; README's list is this).
    #[value(hide = true)]
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelinuxMode {
    /// Read the host's state from /sys/fs/selinux.
    Auto,
    Enforcing,
    Off,
}

#[derive(Debug, Args)]
#[command(after_help = CHECK_HELP)]
pub struct CheckArgs {
    /// A deployment folder made by `flowerbed quickstart` or `render` (default: .).
    #[arg(value_name = "DIR", conflicts_with_all = ["compose", "run_script"])]
    pub dir: Option<PathBuf>,

    /// Check this compose file (ours or hand-written) instead; repeat to merge several in
    /// order, as `docker compose -f A -f B` does.
    #[arg(long, value_name = "FILE", conflicts_with = "run_script")]
    pub compose: Vec<PathBuf>,

    /// Check the `docker run` commands of this script instead.
    #[arg(long, value_name = "FILE")]
    pub run_script: Option<PathBuf>,

    /// With --run-script: the directory the script runs in, for relative mount sources and
    /// `$PWD` / `$(pwd)` (default: the script's folder).
    #[arg(long, value_name = "DIR", requires = "run_script")]
    pub workdir: Option<PathBuf>,

    /// Container UID for services that state no user.
    #[arg(long, default_value_t = crate::FLOWER_UID)]
    pub uid: u32,

    /// Container GID for services that state no group.
    #[arg(long, default_value_t = crate::FLOWER_GID)]
    pub gid: u32,

    /// Rootless Docker / userns-remap: the host UID that container UID 1 maps to (the
    /// subuid start), optionally `:GID_START`.
    #[arg(long, value_name = "START[:GID_START]")]
    pub id_shift: Option<String>,

    /// With --id-shift: the daemon uses userns-remap (container ID n is START + n) rather
    /// than rootless Docker (n is START + n - 1).
    #[arg(long, requires = "id_shift")]
    pub remap: bool,

    /// Inspect live containers through the Docker API instead: names, IDs or Compose
    /// project names (none: every container that runs a Flower component).
    #[arg(long, num_args = 0.., value_name = "CONTAINER|PROJECT", conflicts_with_all = ["dir", "compose", "run_script"])]
    pub live: Option<Vec<String>>,

    /// With --live: how many log lines to read from each container.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub log_lines: usize,

    /// Whether to apply the SELinux labelling rule.
    #[arg(long, value_enum, default_value_t = SelinuxMode::Auto)]
    pub selinux: SelinuxMode,

    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Print every rule (id, severity, one line) and exit.
    #[arg(long, hide = true, conflicts_with_all = ["dir", "compose", "run_script", "live"])]
    pub list_rules: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 nothing wrong, 1 problems found (listed).\n\nExamples:\n  flowerbed doctor\n  DOCKER_HOST=unix:///run/user/1000/docker.sock flowerbed doctor --json"
)]
pub struct DoctorArgs {
    /// Container UID to map to the host (rootless Docker / userns-remap).
    #[arg(long, default_value_t = crate::FLOWER_UID)]
    pub uid: u32,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
