//! Parsed arguments become settings here, and nowhere else: flags over a deployment
//! folder's saved settings (`flowerbed.json`) over the defaults.
//!
//! The command modules hand their clap structs to this module and get plain settings back
//! (`deploy::Settings`, renderer options); the layers below never see clap.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::cli::ColorArg;
use crate::cli::deploy::{BundleArgs, DeployArgs, IsolationArg, RenderArgs, RoleArg, WheelsArgs};
use crate::cli::render::RenderCommand;
use crate::deploy::{
    Address, CertLayout, DeploymentRole, Isolation, MAX_SUPERNODES, MIN_MEMORY_LIMIT, MIN_MILLICPUS,
    MIN_PIDS_LIMIT, Profile, Refusal, Security, Settings,
};
use crate::error::Error;
use crate::output::ColorChoice;
use crate::render::kubernetes::KubernetesOptions;
use crate::render::swarm::{self, SwarmOptions};
use crate::render::{self, Format};
use crate::tls::Layout;

pub mod certs;
pub mod check;
pub mod ownership;

impl From<RoleArg> for DeploymentRole {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Superlink => DeploymentRole::Superlink,
            RoleArg::Supernode => DeploymentRole::Supernode,
            RoleArg::All => DeploymentRole::All,
        }
    }
}

impl From<IsolationArg> for Isolation {
    fn from(arg: IsolationArg) -> Self {
        match arg {
            IsolationArg::Subprocess => Isolation::Subprocess,
            IsolationArg::Process => Isolation::Process,
        }
    }
}

/// `--color` as the printer takes it.
pub fn color_choice(arg: ColorArg) -> ColorChoice {
    match arg {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    }
}

/// Parse a `HOST[:PORT]` flag value; the error names the flag and the value.
pub fn parse_address(flag: &'static str, text: &str) -> Result<Address> {
    Address::parse(text).map_err(|err| {
        Error::InvalidFlag {
            flag,
            message: err.to_string(),
        }
        .into()
    })
}

/// A refused setting, worded for the user in terms of the flag that sets it (every other
/// error passes through unchanged).
pub fn in_flag_terms(err: anyhow::Error) -> anyhow::Error {
    match err.chain().next().and_then(|top| top.downcast_ref::<Refusal>()) {
        Some(refusal) => flag_error(refusal).into(),
        None => err,
    }
}

fn flag_error(refusal: &Refusal) -> Error {
    let (flag, message) = match refusal {
        Refusal::UnsupportedRelease { given } => (
            "--flower-version",
            format!("unsupported Flower release {given:?} (supported: {})", Profile::supported_list()),
        ),
        Refusal::SupernodeCount { count } => ("--supernodes", format!("{count} is out of range (1 to {MAX_SUPERNODES})")),
        Refusal::NoAppDependencyInstall { version } => (
            "--install-app-dependencies",
            format!("Flower {version} has no runtime installation of app dependencies (1.35.0 and later do)"),
        ),
        Refusal::AuthNeedsTls => (
            "--supernode-auth",
            "needs TLS (Flower refuses supernode authentication over plain text); drop --insecure".into(),
        ),
        Refusal::PublicAddressesOutsideSuperlink { role } => (
            "--public-address",
            format!("only a superlink deployment (--role superlink) has public addresses; this one has role {role}"),
        ),
        Refusal::SuperlinkAddressOutsideSupernode { role } => (
            "--superlink-address",
            format!(
                "only a supernode deployment (--role supernode) dials a superlink address; this one has role {role}"
            ),
        ),
        Refusal::NoPublicAddress => (
            "--public-address",
            "a superlink deployment needs the address supernodes on other hosts dial (--public-address HOST[:PORT], repeatable)".into(),
        ),
        Refusal::NoSuperlinkAddress => (
            "--superlink-address",
            "a supernode deployment needs the superlink's public address (--superlink-address HOST[:PORT], or --from-bundle)".into(),
        ),
        Refusal::ProjectName { name } => (
            "--project-name",
            format!(
                "{name:?} is not a valid project name (lower-case letters, digits, '-' and '_', starting with a letter or digit)"
            ),
        ),
        Refusal::ImageRepo { repo, why } => ("--image-repo", format!("{repo:?}: {why}")),
        Refusal::ImageTag { tag } => ("--image-tag", format!("{tag:?} is not a valid image tag")),
        Refusal::MemoryLimit { bytes } => (
            "--memory-limit",
            format!("{bytes} bytes is below the minimum of {}m", MIN_MEMORY_LIMIT >> 20),
        ),
        Refusal::PidsLimit { count } => ("--pids-limit", format!("{count} is below the minimum of {MIN_PIDS_LIMIT}")),
        Refusal::Cpus { millicpus } => (
            "--cpus",
            format!(
                "{} is below the minimum of {}",
                f64::from(*millicpus) / 1000.0,
                f64::from(MIN_MILLICPUS) / 1000.0
            ),
        ),
    };
    Error::InvalidFlag { flag, message }
}

/// The deployment folder as an absolute path; it must be a folder if it exists.
pub fn deployment_dir(dir: &Path, must_exist: bool) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))?;
    match absolute.symlink_metadata() {
        Ok(_) if absolute.is_dir() => Ok(absolute),
        Ok(_) => Err(Error::NotADirectory { path: absolute }.into()),
        Err(_) if !must_exist => Ok(absolute),
        Err(err) => Err(anyhow!("{}: {err}", absolute.display())),
    }
}

/// Flags over the folder's saved settings over the defaults.
pub fn merge_settings(dir: PathBuf, args: &DeployArgs, saved: Option<Settings>) -> Result<Settings> {
    let mut settings = saved.unwrap_or_else(|| Settings::defaults(dir.clone()));
    settings.dir = dir;
    if let Some(version) = &args.flower_version {
        settings.flower_version.clone_from(version);
    }
    if let Some(isolation) = args.isolation {
        settings.superlink_isolation = isolation.into();
        settings.supernode_isolation = isolation.into();
    }
    if let Some(isolation) = args.superlink_isolation {
        settings.superlink_isolation = isolation.into();
    }
    if let Some(isolation) = args.supernode_isolation {
        settings.supernode_isolation = isolation.into();
    }
    if args.tls {
        settings.security = Security::Tls;
    }
    if args.insecure {
        settings.security = Security::Insecure;
    }
    if let Some(count) = args.supernodes {
        settings.supernodes = count;
    }
    settings.state |= args.state;
    settings.selinux |= args.selinux;
    settings.install_app_dependencies |= args.install_app_dependencies;
    settings.supernode_auth |= args.supernode_auth;
    if let Some(repo) = &args.image_repo {
        settings.image_repo.clone_from(repo);
    }
    if args.image_tag.is_some() {
        settings.image_tag.clone_from(&args.image_tag);
    }
    if let Some(name) = &args.project_name {
        settings.project_name.clone_from(name);
    }
    if let Some(address) = args.publish_address {
        settings.publish_address = address;
    }
    if let Some(uid) = args.uid {
        settings.uid = uid;
    }
    if let Some(gid) = args.gid {
        settings.gid = gid;
    }
    if let Some(role) = args.role {
        settings.role = role.into();
    }
    if !args.public_addresses.is_empty() {
        settings.public_addresses = args
            .public_addresses
            .iter()
            .map(|text| parse_address("--public-address", text))
            .collect::<Result<_>>()?;
    }
    if let Some(text) = &args.superlink_address {
        settings.superlink_address = Some(parse_address("--superlink-address", text)?);
    }
    if let Some(app) = &args.app {
        let absolute = std::path::absolute(app).map_err(|err| Error::InvalidFlag {
            flag: "--app",
            message: format!("{}: {err}", app.display()),
        })?;
        settings.app = Some(absolute);
    }
    if args.push_to.is_some() {
        settings.push_to.clone_from(&args.push_to);
    }
    settings.image_digest |= args.image_digest;
    if args.harden {
        settings.no_harden = false;
    }
    if args.no_harden {
        settings.no_harden = true;
    }
    if let Some(text) = &args.memory_limit {
        settings.memory_limit = Some(parse_size(text).ok_or_else(|| Error::InvalidFlag {
            flag: "--memory-limit",
            message: format!("{text:?} is not a size (bytes, or a number with k, m or g: 512m, 4g)"),
        })?);
    }
    if args.pids_limit.is_some() {
        settings.pids_limit = args.pids_limit;
    }
    if let Some(text) = &args.cpus {
        settings.millicpus = Some(parse_millicpus(text).ok_or_else(|| Error::InvalidFlag {
            flag: "--cpus",
            message: format!("{text:?} is not a number of CPUs (2, 0.5)"),
        })?);
    }
    Ok(settings)
}

/// Settings for `render`: the folder must exist; certificates are found in either layout.
pub fn render_settings(dir: &Path, args: &DeployArgs) -> Result<Settings> {
    let dir = deployment_dir(dir, true)?;
    let saved = Settings::read(&dir)?;
    let mut settings = merge_settings(dir, args, saved)?;
    if let Some(layout) = Layout::detect(&settings.dir) {
        settings.cert_layout = layout.kind.into();
    }
    Ok(settings)
}

/// Stand-in folder a bundle's deployment is built in: the relocatable renderers write
/// every path below it relative to the files themselves, so it never appears.
pub const BUNDLE_BASE: &str = "/flowerbed-bundle";

/// The supernode side of a superlink deployment's settings, for `bundle supernode`.
pub fn bundle_settings(superlink: &Settings, args: &BundleArgs) -> Result<Settings> {
    let address = match &args.superlink_address {
        Some(text) => parse_address("--superlink-address", text)?,
        None => superlink
            .public_addresses
            .first()
            .cloned()
            .context("--superlink-address: the superlink deployment records no public address")?,
    };
    let defaults = Settings::defaults(PathBuf::from(BUNDLE_BASE));
    Ok(Settings {
        dir: PathBuf::from(BUNDLE_BASE),
        role: DeploymentRole::Supernode,
        public_addresses: Vec::new(),
        superlink_address: Some(address),
        supernodes: args.supernodes.unwrap_or(superlink.supernodes),
        // What only the superlink has, or only this host knows, is left at the defaults.
        state: false,
        cert_layout: CertLayout::Split,
        publish_address: defaults.publish_address,
        ..superlink.clone()
    })
}

/// The settings a `--from-bundle` quickstart lays down: the bundle's saved supernode
/// settings, moved to `dir`, under the flags.
pub fn from_bundle_settings(dir: &Path, args: &DeployArgs, mut saved: Settings) -> Result<Settings> {
    saved.dir = dir.to_path_buf();
    let mut settings = merge_settings(dir.to_path_buf(), args, Some(saved))?;
    if settings.role != DeploymentRole::Supernode {
        return Err(Error::InvalidFlag {
            flag: "--role",
            message: "a bundle lays down a supernode deployment".into(),
        }
        .into());
    }
    settings.cert_layout = CertLayout::Split;
    Ok(settings)
}

/// What `render` was asked for: the shared arguments, the format (`docker-run
/// --teardown` is the teardown script) and the options only some formats read.
pub fn render_request(command: &RenderCommand) -> Result<(&RenderArgs, &'static Format, render::Options)> {
    let args = &command.args;
    for constraint in &command.swarm.placement {
        swarm::validate_placement(constraint).map_err(|err| Error::InvalidFlag {
            flag: "--placement",
            message: err.to_string(),
        })?;
    }
    let mut format = command.format;
    if args.teardown {
        if format.name != "docker-run" {
            return Err(
                Error::Usage("--teardown: only `render docker-run` has a teardown script".into()).into(),
            );
        }
        format = render::format("teardown").expect("docker-run has a teardown format");
    }
    let options = render::Options {
        swarm: SwarmOptions {
            placement: command.swarm.placement.clone(),
        },
        kubernetes: KubernetesOptions {
            namespace: command.kubernetes.namespace.clone(),
        },
    };
    Ok((args, format, options))
}

/// What `wheels` was asked for: the deployment's settings (with `--app` over the saved
/// project) and the wheels' target when given.
pub struct WheelsRequest {
    pub settings: Settings,
    /// `MAJOR.MINOR`.
    pub python_version: Option<String>,
    pub platforms: Vec<String>,
}

/// `wheels DIR [--app P] [--python-version X.Y] [--platform TAG]...`.
pub fn wheels_request(args: &WheelsArgs) -> Result<WheelsRequest> {
    let dir = deployment_dir(&args.dir, true)?;
    let mut settings = Settings::read(&dir)?.ok_or_else(|| {
        anyhow!(
            "{}: no {} (make the deployment first: `flowerbed quickstart DIR --app PROJECT_DIR`)",
            dir.display(),
            crate::deploy::SETTINGS_FILE
        )
    })?;
    settings.dir = dir;
    if let Some(app) = &args.app {
        settings.app = Some(std::path::absolute(app).map_err(|err| Error::InvalidFlag {
            flag: "--app",
            message: format!("{}: {err}", app.display()),
        })?);
    }
    if settings.app.is_none() {
        return Err(Error::InvalidFlag {
            flag: "--app",
            message: format!(
                "{}: the deployment has no app (pass --app PROJECT_DIR, or make it with `quickstart --app`)",
                settings.dir.display()
            ),
        }
        .into());
    }
    if let Some(version) = &args.python_version {
        let valid = version.split_once('.').is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|part| !part.is_empty() && part.len() <= 3 && part.chars().all(|c| c.is_ascii_digit()))
        });
        if !valid {
            return Err(Error::InvalidFlag {
                flag: "--python-version",
                message: format!("{version:?} is not MAJOR.MINOR (e.g. 3.11)"),
            }
            .into());
        }
    }
    for platform in &args.platforms {
        if platform.is_empty()
            || !platform
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::InvalidFlag {
                flag: "--platform",
                message: format!("{platform:?} is not a wheel platform tag (e.g. manylinux_2_17_x86_64)"),
            }
            .into());
        }
    }
    Ok(WheelsRequest {
        settings,
        python_version: args.python_version.clone(),
        platforms: args.platforms.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::PROFILES;

    fn worded(refusal: Refusal) -> String {
        in_flag_terms(refusal.into()).to_string()
    }

    #[test]
    fn refused_settings_name_their_flag() {
        let err = worded(Refusal::UnsupportedRelease {
            given: "1.0.0".into(),
        });
        assert!(
            err.starts_with("--flower-version: unsupported Flower release \"1.0.0\"")
                && err.contains(&format!("{}, {}", PROFILES[0].version, PROFILES[1].version)),
            "{err}"
        );
        let err = worded(Refusal::AuthNeedsTls);
        assert!(
            err.starts_with("--supernode-auth: needs TLS") && err.ends_with("drop --insecure"),
            "{err}"
        );
        let err = worded(Refusal::PublicAddressesOutsideSuperlink { role: "supernode" });
        assert!(
            err.starts_with("--public-address") && err.contains("role supernode"),
            "{err}"
        );
        assert!(worded(Refusal::NoSuperlinkAddress).starts_with("--superlink-address"));
        assert!(worded(Refusal::NoPublicAddress).starts_with("--public-address"));
        // Anything else passes through as it was.
        assert_eq!(in_flag_terms(anyhow!("other")).to_string(), "other");
    }
}

/// A size as Docker writes it: bytes, or a whole number with `k`, `m` or `g` (binary
/// units, either case). `None` for anything else, or a size that overflows.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()?.to_ascii_lowercase() {
        b'k' => (&text[..text.len() - 1], 10),
        b'm' => (&text[..text.len() - 1], 20),
        b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A number of CPUs (`2`, `0.5`, at most three decimals) in thousandths.
fn parse_millicpus(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 3 || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return None;
    }
    let fraction: u32 = format!("{fraction:0<3}").parse().ok()?;
    whole
        .parse::<u32>()
        .ok()?
        .checked_mul(1000)?
        .checked_add(fraction)
}

#[cfg(test)]
mod size_tests {
    use super::{parse_millicpus, parse_size};

    #[test]
    fn cpus_read_as_docker_writes_them() {
        assert_eq!(parse_millicpus("2"), Some(2000));
        assert_eq!(parse_millicpus("0.5"), Some(500));
        assert_eq!(parse_millicpus("1.25"), Some(1250));
        for bad in ["", ".5", "2.", "1.2345", "-1", "a", "1e3", "9999999"] {
            assert_eq!(parse_millicpus(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_read_as_docker_writes_them() {
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in [
            "",
            "g",
            "4gb",
            "-1g",
            "1.5g",
            " 4g",
            "4 g",
            "99999999999999999999g",
            "16777216000000g",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
