//! What a user asks of a deployment, validated, and how it is kept in the deployment folder.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fsutil;
use crate::hints::flag;
use crate::tls::LayoutKind;

use super::address::Address;
use super::profile::Profile;

/// File in the deployment folder that records the settings a deployment was made with.
pub const SETTINGS_FILE: &str = "flowerbed.json";
/// Folder in the deployment folder that holds the superlink's database with `--state`.
pub const STATE_DIR: &str = "state";
/// Project name when none is given.
pub const DEFAULT_PROJECT: &str = "flowerbed";
/// Image repository prefix of Flower's official images.
pub const DEFAULT_IMAGE_REPO: &str = "flwr";
/// Supernodes when none is given.
pub const DEFAULT_SUPERNODES: u32 = 2;
/// More supernodes than this on one host is a typo, not a deployment.
pub const MAX_SUPERNODES: u32 = 999;
/// Each hardened container's memory limit unless `--memory-limit` says otherwise: room for
/// a ClientApp's training in subprocess isolation, a cap on a runaway one.
pub const DEFAULT_MEMORY_LIMIT: u64 = 4 << 30;
/// The smallest memory limit accepted: below it Flower's Python processes cannot start.
pub const MIN_MEMORY_LIMIT: u64 = 64 << 20;
/// Each hardened container's process and thread limit unless `--pids-limit` says otherwise
/// (gRPC's thread pools stay far below it).
pub const DEFAULT_PIDS_LIMIT: u32 = 1024;
/// The smallest process limit accepted: Flower's servers start a few dozen threads.
pub const MIN_PIDS_LIMIT: u32 = 64;
/// Each hardened container's CPU limit (thousandths of a CPU) unless `--cpus` says
/// otherwise: two CPUs.
pub const DEFAULT_MILLICPUS: u32 = 2000;
/// The smallest CPU limit accepted (a tenth of a CPU).
pub const MIN_MILLICPUS: u32 = 100;

/// Where the ServerApp / ClientApp code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// The superlink / supernode starts the app process itself, inside its own container.
    Subprocess,
    /// A separate container (superexec, or serverapp/clientapp in 1.13) runs the app.
    Process,
}

impl Isolation {
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Subprocess => "subprocess",
            Isolation::Process => "process",
        }
    }
}

/// Which side of a federation a deployment runs: one host with everything, or the
/// superlink's host and the supernodes' hosts apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentRole {
    /// The superlink (and its ServerApp runner) only; supernodes dial a public address.
    Superlink,
    /// Supernodes (and their ClientApp runners) only, dialing a superlink elsewhere.
    Supernode,
    /// Superlink and supernodes on one host and one Docker network.
    #[default]
    All,
}

impl DeploymentRole {
    pub fn name(self) -> &'static str {
        match self {
            DeploymentRole::Superlink => "superlink",
            DeploymentRole::Supernode => "supernode",
            DeploymentRole::All => "all",
        }
    }

    /// Whether the deployment runs the superlink.
    pub fn has_superlink(self) -> bool {
        self != DeploymentRole::Supernode
    }

    /// Whether the deployment runs supernodes.
    pub fn has_supernodes(self) -> bool {
        self != DeploymentRole::Superlink
    }
}

/// TLS with the certificates layout, or plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    Tls,
    Insecure,
}

/// The certificate layout a deployment mounts (mirrors [`LayoutKind`], which is not
/// deserializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertLayout {
    Split,
    Flat,
}

impl From<CertLayout> for LayoutKind {
    fn from(layout: CertLayout) -> Self {
        match layout {
            CertLayout::Split => LayoutKind::Split,
            CertLayout::Flat => LayoutKind::Flat,
        }
    }
}

impl From<LayoutKind> for CertLayout {
    fn from(kind: LayoutKind) -> Self {
        match kind {
            LayoutKind::Split => CertLayout::Split,
            LayoutKind::Flat => CertLayout::Flat,
        }
    }
}

/// Everything a deployment is built from. `dir` is absolute; the rest is what
/// `flowerbed.json` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    #[serde(skip)]
    pub dir: PathBuf,
    pub flower_version: String,
    pub superlink_isolation: Isolation,
    pub supernode_isolation: Isolation,
    pub security: Security,
    pub cert_layout: CertLayout,
    pub supernodes: u32,
    pub state: bool,
    pub image_repo: String,
    pub image_tag: Option<String>,
    pub project_name: String,
    pub publish_address: IpAddr,
    pub selinux: bool,
    pub uid: u32,
    pub gid: u32,
    /// Let Flower install app dependencies at run time (`uv sync`, needs the internet).
    pub install_app_dependencies: bool,
    /// Which side of the federation this deployment runs (folders made before roles
    /// existed hold everything).
    #[serde(default)]
    pub role: DeploymentRole,
    /// Role superlink: the names or IPs (with ports) supernodes on other hosts dial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_addresses: Vec<Address>,
    /// Role supernode: where the supernodes dial the superlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superlink_address: Option<Address>,
    /// Supernodes prove who they are with a key pair of their own (needs TLS). Left out of
    /// `flowerbed.json` when off, so folders made before it existed read the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub supernode_auth: bool,
    /// The user's Flower app project (absolute): the components that run its code get an
    /// image of their own with its dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<PathBuf>,
    /// Registry the app images are pushed to (orchestrators pull them from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_to: Option<String>,
    /// Containers run unhardened (`--no-harden`, for debugging). Left out of
    /// `flowerbed.json` when off, so folders made before hardening existed get it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_harden: bool,
    /// Memory limit of each hardened container in bytes [default: `DEFAULT_MEMORY_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<u64>,
    /// Process limit of each hardened container [default: `DEFAULT_PIDS_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u32>,
    /// CPU limit of each hardened container, thousandths of a CPU [default: `DEFAULT_MILLICPUS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u32>,
    /// Name each image by its registry digest as the local Docker engine knows it
    /// (`--image-digest`); images it has no digest for keep their tag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_digest: bool,
    /// A supernodes' folder made from a bundle: the bundle's id, which ends the comment of
    /// each supernode key made here so the superlink's host can tell where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

impl Settings {
    /// The defaults for a deployment in `dir`.
    pub fn defaults(dir: PathBuf) -> Self {
        Self {
            dir,
            flower_version: Profile::newest().version.to_string(),
            superlink_isolation: Isolation::Subprocess,
            supernode_isolation: Isolation::Subprocess,
            security: Security::Tls,
            cert_layout: CertLayout::Split,
            supernodes: DEFAULT_SUPERNODES,
            state: false,
            image_repo: DEFAULT_IMAGE_REPO.to_string(),
            image_tag: None,
            project_name: DEFAULT_PROJECT.to_string(),
            publish_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            selinux: false,
            uid: crate::FLOWER_UID,
            gid: crate::FLOWER_GID,
            install_app_dependencies: false,
            role: DeploymentRole::All,
            public_addresses: Vec::new(),
            superlink_address: None,
            supernode_auth: false,
            app: None,
            push_to: None,
            no_harden: false,
            memory_limit: None,
            pids_limit: None,
            millicpus: None,
            image_digest: false,
            bundle: None,
        }
    }

    /// The profile of `flower_version`, or the error listing the supported ones.
    pub fn profile(&self) -> Result<&'static Profile> {
        Profile::find(&self.flower_version).ok_or_else(|| {
            Refusal::UnsupportedRelease {
                given: self.flower_version.clone(),
            }
            .into()
        })
    }

    /// Image tag: the override, or the Flower release.
    pub fn tag(&self) -> &str {
        self.image_tag.as_deref().unwrap_or(&self.flower_version)
    }

    /// Check every value that does not depend on the disk.
    pub fn validate(&self) -> Result<()> {
        let profile = self.profile()?;
        if self.supernodes == 0 || self.supernodes > MAX_SUPERNODES {
            return Err(Refusal::SupernodeCount {
                count: self.supernodes,
            }
            .into());
        }
        validate_project_name(&self.project_name)?;
        validate_image_repo(&self.image_repo)?;
        if let Some(tag) = &self.image_tag {
            validate_image_tag(tag)?;
        }
        if self.install_app_dependencies && !profile.has_runtime_dependency_installation() {
            return Err(Refusal::NoAppDependencyInstall {
                version: profile.version,
            }
            .into());
        }
        self.validate_role()?;
        if self.supernode_auth && self.security == Security::Insecure {
            return Err(Refusal::AuthNeedsTls.into());
        }
        validate_dir_path(&self.dir)?;
        self.validate_app()?;
        if let Some(bytes) = self.memory_limit.filter(|bytes| *bytes < MIN_MEMORY_LIMIT) {
            return Err(Refusal::MemoryLimit { bytes }.into());
        }
        if let Some(count) = self.pids_limit.filter(|count| *count < MIN_PIDS_LIMIT) {
            return Err(Refusal::PidsLimit { count }.into());
        }
        if let Some(millicpus) = self.millicpus.filter(|millicpus| *millicpus < MIN_MILLICPUS) {
            return Err(Refusal::Cpus { millicpus }.into());
        }
        Ok(())
    }

    /// `--app` and `--push-to`: the project path goes into build contexts and scripts
    /// like the folder's own; a registry is an image repository prefix.
    fn validate_app(&self) -> Result<()> {
        if let Some(app) = &self.app {
            validate_dir_path(app).map_err(|err| Error::InvalidFlag {
                flag: flag::APP,
                message: err.to_string(),
            })?;
        }
        if let Some(registry) = &self.push_to {
            if self.app.is_none() {
                return Err(Error::InvalidFlag {
                    flag: flag::PUSH_TO,
                    message: format!(
                        "names where the app images go; there are none without {} PROJECT_DIR",
                        flag::APP
                    ),
                }
                .into());
            }
            validate_image_repo(registry).map_err(|err| Error::InvalidFlag {
                flag: flag::PUSH_TO,
                message: err.to_string(),
            })?;
        }
        Ok(())
    }

    /// Each role has what it needs and nothing that belongs to another role.
    fn validate_role(&self) -> Result<()> {
        let role = self.role.name();
        if self.role != DeploymentRole::Superlink && !self.public_addresses.is_empty() {
            return Err(Refusal::PublicAddressesOutsideSuperlink { role }.into());
        }
        if self.role != DeploymentRole::Supernode && self.superlink_address.is_some() {
            return Err(Refusal::SuperlinkAddressOutsideSupernode { role }.into());
        }
        match self.role {
            DeploymentRole::Superlink if self.public_addresses.is_empty() => {
                Err(Refusal::NoPublicAddress.into())
            }
            DeploymentRole::Supernode if self.superlink_address.is_none() => {
                Err(Refusal::NoSuperlinkAddress.into())
            }
            _ => Ok(()),
        }
    }

    /// The settings as stored in `flowerbed.json`.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("settings serialize");
        text.push('\n');
        text
    }

    /// Read `DIR/flowerbed.json`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SETTINGS_FILE);
        let text = match fsutil::read_regular_text(&path, fsutil::TEXT_LIMIT, fsutil::Links::Refuse) {
            Ok(text) => text,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let mut settings: Settings = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a flowerbed settings file", path.display()))?;
        settings.dir = dir.to_path_buf();
        Ok(Some(settings))
    }
}

/// A settings value refused before anything is built, as a fact about the deployment;
/// `config` words it for the user in terms of the flag that sets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unsupported Flower release {given:?}")]
    UnsupportedRelease { given: String },
    #[error("{count} supernodes is out of range (1 to {MAX_SUPERNODES})")]
    SupernodeCount { count: u32 },
    #[error("Flower {version} has no runtime installation of app dependencies")]
    NoAppDependencyInstall { version: &'static str },
    #[error("supernode authentication needs TLS")]
    AuthNeedsTls,
    #[error("only a superlink deployment has public addresses; this one has role {role}")]
    PublicAddressesOutsideSuperlink { role: &'static str },
    #[error("only a supernode deployment dials a superlink address; this one has role {role}")]
    SuperlinkAddressOutsideSupernode { role: &'static str },
    #[error("a superlink deployment needs the address supernodes on other hosts dial")]
    NoPublicAddress,
    #[error("a supernode deployment needs the superlink's public address")]
    NoSuperlinkAddress,
    #[error("{name:?} is not a valid project name")]
    ProjectName { name: String },
    #[error("{repo:?}: {why}")]
    ImageRepo { repo: String, why: &'static str },
    #[error("{tag:?} is not a valid image tag")]
    ImageTag { tag: String },
    #[error("a memory limit of {bytes} bytes is below the minimum ({MIN_MEMORY_LIMIT} bytes)")]
    MemoryLimit { bytes: u64 },
    #[error("a process limit of {count} is below the minimum ({MIN_PIDS_LIMIT})")]
    PidsLimit { count: u32 },
    #[error("a CPU limit of {millicpus} thousandths is below the minimum ({MIN_MILLICPUS})")]
    Cpus { millicpus: u32 },
}

/// Compose's rule for project names: lower-case letters, digits, `-` and `_`, starting with
/// a letter or digit. It also keeps the name usable as a `flwr` connection name (no dots).
pub fn validate_project_name(name: &str) -> Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Refusal::ProjectName {
            name: name.to_string(),
        }
        .into())
    }
}

/// An image repository prefix such as `flwr`, `registry.example.org:5000/mirror/flwr` or
/// `flowerbed-local`: Docker reference path components joined by `/`.
fn validate_image_repo(repo: &str) -> Result<()> {
    let invalid = |why: &'static str| -> anyhow::Error {
        Refusal::ImageRepo {
            repo: repo.to_string(),
            why,
        }
        .into()
    };
    if repo.is_empty() {
        return Err(invalid("empty"));
    }
    let mut components = repo.split('/');
    let mut first = true;
    for component in &mut components {
        // The first component may be a registry host with a port.
        let allowed = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-')
                || (first && c == ':')
        };
        let registry_like = first && (component.contains('.') || component.contains(':'));
        if component.is_empty()
            || !component
                .chars()
                .all(|c| allowed(c) || (registry_like && c.is_ascii_uppercase()))
        {
            return Err(invalid(
                "not an image repository (lower-case letters, digits, '.', '_', '-', separated by '/')",
            ));
        }
        first = false;
    }
    Ok(())
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_image_tag(tag: &str) -> Result<()> {
    let valid = tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Refusal::ImageTag { tag: tag.to_string() }.into())
    }
}

/// A deployment folder's path ends up in mounts, YAML and shell: refuse what none of them
/// can carry faithfully.
pub fn validate_dir_path(dir: &Path) -> Result<()> {
    let Some(text) = dir.to_str() else {
        return Err(anyhow::anyhow!(
            "{}: the folder's path is not valid UTF-8",
            dir.display()
        ));
    };
    if !dir.is_absolute() {
        return Err(anyhow::anyhow!("{text}: the folder's path must be absolute"));
    }
    if text.chars().any(char::is_control) {
        return Err(anyhow::anyhow!(
            "{text:?}: the folder's path contains a newline or other control character, which a mount cannot carry safely; rename the folder"
        ));
    }
    // `docker run -v SRC:DST` and Compose's short syntax split on ':'.
    if text.contains(':') {
        return Err(anyhow::anyhow!(
            "{text}: the folder's path contains ':', which Docker's volume syntax cannot carry; rename the folder"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_compose_rules() {
        for good in ["flowerbed", "a", "0x", "fl-ower_bed"] {
            validate_project_name(good).unwrap();
        }
        for bad in ["", "Flower", "-x", "_x", "a.b", "a b", "ä"] {
            assert!(validate_project_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_repos_and_tags() {
        for good in [
            "flwr",
            "flowerbed-local",
            "registry.example.org:5000/mirror/flwr",
            "a/b",
        ] {
            validate_image_repo(good).unwrap();
        }
        for bad in ["", "Flwr", "a//b", "a/", "a b", "a:b/c:d"] {
            assert!(validate_image_repo(bad).is_err(), "{bad}");
        }
        for good in ["1.42.0", "latest", "_x", "1.42.0-py3.11"] {
            validate_image_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a b", "a:b"] {
            assert!(validate_image_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dir_paths_that_cannot_be_carried_are_refused() {
        validate_dir_path(Path::new("/srv/a b/'q'/$x/`y`")).unwrap();
        for bad in ["relative", "/a\nb", "/a:b", "/a\tb"] {
            assert!(validate_dir_path(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_round_trip_through_json() {
        let settings = Settings::defaults(PathBuf::from("/srv/x"));
        let text = settings.to_json();
        let mut back: Settings = serde_json::from_str(&text).unwrap();
        back.dir = PathBuf::from("/srv/x");
        assert_eq!(back, settings);
    }

    #[test]
    fn roles_need_their_addresses_and_refuse_the_others() {
        let address = |text: &str| Address::parse(text).unwrap();
        let mut settings = Settings::defaults(PathBuf::from("/srv/x"));
        settings.validate().unwrap();
        settings.role = DeploymentRole::Superlink;
        let refusal = |settings: &Settings| settings.validate().unwrap_err().downcast::<Refusal>().unwrap();
        assert_eq!(refusal(&settings), Refusal::NoPublicAddress);
        settings.public_addresses = vec![address("flower.example.org")];
        settings.validate().unwrap();
        settings.superlink_address = Some(address("flower.example.org"));
        assert_eq!(
            refusal(&settings),
            Refusal::SuperlinkAddressOutsideSupernode { role: "superlink" }
        );
        settings.role = DeploymentRole::Supernode;
        assert_eq!(
            refusal(&settings),
            Refusal::PublicAddressesOutsideSuperlink { role: "supernode" }
        );
        settings.public_addresses.clear();
        settings.validate().unwrap();
        settings.superlink_address = None;
        assert_eq!(refusal(&settings), Refusal::NoSuperlinkAddress);
    }

    #[test]
    fn settings_without_a_role_are_all() {
        let mut json: serde_json::Value =
            serde_json::from_str(&Settings::defaults(PathBuf::from("/srv/x")).to_json()).unwrap();
        assert_eq!(json["role"], "all");
        assert!(json.get("public-addresses").is_none());
        json.as_object_mut().unwrap().remove("role");
        let back: Settings = serde_json::from_value(json).unwrap();
        assert_eq!(back.role, DeploymentRole::All);
    }

    #[test]
    fn unsupported_version_lists_supported_ones() {
        let mut settings = Settings::defaults(PathBuf::from("/srv/x"));
        settings.flower_version = "1.0.0".into();
        let refusal = settings.validate().unwrap_err().downcast::<Refusal>().unwrap();
        assert_eq!(
            refusal,
            Refusal::UnsupportedRelease {
                given: "1.0.0".into()
            }
        );
    }
}
