//! Deployments of Flower: settings, release profiles, and the one model every renderer
//! (and `check`) reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::hints;

pub mod address;
pub mod app;
pub mod builder;
pub mod component;
pub mod model;
pub mod profile;
pub mod settings;

pub use address::Address;
pub use component::Component;
pub use model::{
    AppImage, AppImages, Connection, Deployment, Dial, Flag, Hardening, HealthCheck, Identity, Mount,
    MountPurpose, MountedFile, Port, Role, Service, SourceKind,
};
pub use profile::{Generation, PROFILES, Profile};
pub use settings::{
    CertLayout, DeploymentRole, Isolation, MAX_SUPERNODES, MIN_MEMORY_LIMIT, MIN_MILLICPUS, MIN_PIDS_LIMIT,
    Refusal, SETTINGS_FILE, STATE_DIR, Security, Settings,
};

/// Validate `settings` and build its deployment (nothing on disk is looked at).
pub fn build(settings: &Settings) -> Result<Deployment> {
    settings.validate()?;
    let profile = settings.profile()?;
    Ok(builder::build(settings, profile))
}

/// Rebuild the deployment a folder was made with, from its `flowerbed.json`.
pub fn load(dir: &Path) -> Result<Deployment> {
    build(&load_settings(dir)?)
}

/// The settings saved in `dir`, which must have them.
pub fn load_settings(dir: &Path) -> Result<Settings> {
    let dir = std::path::absolute(dir).with_context(|| format!("{}: cannot resolve", dir.display()))?;
    Settings::read(&dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no {SETTINGS_FILE} (not a folder made by {})",
            dir.display(),
            hints::made_by()
        )
    })
}

/// Refuse to render a deployment whose mount sources are missing: Docker would create a
/// missing source as an empty root-owned folder, which breaks file mounts and TLS alike.
pub fn require_sources(deployment: &Deployment, dir: &Path) -> Result<()> {
    require_sources_planned(deployment, dir, &[])
}

/// [`require_sources`], counting a mount whose files are in `planned` (about to be
/// written by the same plan) as present.
pub fn require_sources_planned(deployment: &Deployment, dir: &Path, planned: &[PathBuf]) -> Result<()> {
    let Some((mount, service)) = deployment
        .missing_sources()
        .into_iter()
        .find(|(mount, _)| !planned.iter().any(|path| path.starts_with(&mount.source)))
    else {
        return Ok(());
    };
    let what = match mount.kind {
        SourceKind::File => "file",
        SourceKind::Directory => "folder",
    };
    let quoted_dir = shlex::try_quote(&dir.to_string_lossy())
        .unwrap_or_default()
        .into_owned();
    let fix = if deployment.role == DeploymentRole::Supernode && mount.purpose == MountPurpose::CaCertificate
    {
        format!(
            "copy the superlink's CA certificate there (a bundle from `{}` on the superlink's host carries it: `{}`) or pass {}",
            hints::bundle_supernode(),
            hints::from_bundle("FILE"),
            hints::flag::INSECURE
        )
    } else if matches!(
        mount.purpose,
        MountPurpose::SupernodeAuthKey | MountPurpose::KnownSupernodeKeys | MountPurpose::SuperlinkAuthKeys
    ) {
        format!(
            "run `{}`, or {} (both generate the missing keys)",
            hints::quickstart_with_auth(&quoted_dir),
            hints::render_out()
        )
    } else if matches!(
        mount.purpose,
        MountPurpose::RuntimeServerCertificates
            | MountPurpose::RuntimeCaCertificate
            | MountPurpose::SuperexecAuthSecret
    ) {
        format!(
            "run `{}`, or {} (both generate what is missing)",
            hints::quickstart(&quoted_dir),
            hints::render_out()
        )
    } else if mount.purpose == MountPurpose::State {
        let quoted = shlex::try_quote(&mount.source.to_string_lossy())
            .unwrap_or_default()
            .into_owned();
        let source = mount.source.to_string_lossy();
        let own = hints::own_command(deployment.user.uid, deployment.user.gid, [source.as_ref()])
            .unwrap_or_default();
        format!("create it (`mkdir {quoted}`) and hand it to the container user (`{own}`)")
    } else {
        format!(
            "run `{}` or pass {}",
            hints::certs_generate(&quoted_dir),
            hints::flag::INSECURE
        )
    };
    Err(anyhow::anyhow!(
        "{}: missing {what} mounted into {} at {}: {fix}",
        mount.source.display(),
        service.name,
        mount.target
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn settings() -> Settings {
        Settings::defaults(PathBuf::from("/srv/flower"))
    }

    /// A missing state folder's fix hands it to the deployment's own user, which is not
    /// always Flower's 49999.
    #[test]
    fn a_missing_state_folder_is_handed_to_the_deployments_user() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::defaults(dir.path().to_path_buf());
        settings.security = Security::Insecure;
        settings.state = true;
        for (uid, want) in [
            (49_999, "`sudo flowerbed own "),
            (1000, "`sudo flowerbed own --uid 1000 --gid 1000 "),
        ] {
            (settings.uid, settings.gid) = (uid, uid);
            let err = require_sources(&build(&settings).unwrap(), dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want) && err.contains("mkdir "), "{err}");
        }
    }

    #[test]
    fn default_deployment_has_superlink_and_two_supernodes() {
        let deployment = build(&settings()).unwrap();
        let names: Vec<_> = deployment.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["superlink", "supernode-1", "supernode-2"]);
        let superlink = deployment.service("superlink").unwrap();
        assert_eq!(
            superlink.flag("--host").unwrap().value.as_deref(),
            Some("0.0.0.0")
        );
        assert_eq!(
            superlink.mounts[0].source,
            PathBuf::from("/srv/flower/superlink-certificates")
        );
        assert!(superlink.mounts[0].read_only);
        assert_eq!(superlink.image, "flwr/superlink:1.42.0");
        assert_eq!(superlink.user.to_string(), "49999:49999");
        assert_eq!(
            deployment.connection.as_ref().unwrap().address.to_string(),
            "127.0.0.1:8000"
        );
    }

    #[test]
    fn process_mode_adds_runners_per_release() {
        let mut s = settings();
        s.superlink_isolation = Isolation::Process;
        s.supernode_isolation = Isolation::Process;
        s.supernodes = 1;
        let newest = build(&s).unwrap();
        let names: Vec<_> = newest.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "superlink",
                "superexec-serverapp",
                "supernode-1",
                "superexec-clientapp-1"
            ]
        );
        assert_eq!(
            newest.service("superexec-serverapp").unwrap().args(),
            [
                "--root-certificates",
                "certificates/ca.crt",
                "--runtime-api-address",
                "superlink:8000",
                "--superexec-auth-secret-file",
                "superexec-auth/secret"
            ]
        );
        // Every link TLS: the supernode serves its Runtime API with its own certificate,
        // its runner trusts the CA; each link has its own secret folder.
        let supernode = newest.service("supernode-1").unwrap();
        assert_eq!(
            supernode.flag("--ssl-certfile").unwrap().value.as_deref(),
            Some("runtime-certificates/server.pem")
        );
        let clientapp = newest.service("superexec-clientapp-1").unwrap();
        assert!(clientapp.flag("--insecure").is_none());
        assert!(clientapp.flag("--root-certificates").is_some());
        let secret_dirs = |name: &str| -> Vec<PathBuf> {
            newest
                .service(name)
                .unwrap()
                .mounts
                .iter()
                .filter(|m| m.purpose == MountPurpose::SuperexecAuthSecret)
                .map(|m| m.source.clone())
                .collect()
        };
        assert_eq!(secret_dirs("supernode-1"), secret_dirs("superexec-clientapp-1"));
        assert_eq!(secret_dirs("superlink"), secret_dirs("superexec-serverapp"));
        assert_ne!(secret_dirs("superlink"), secret_dirs("supernode-1"));
        s.flower_version = "1.35.0".into();
        let mid = build(&s).unwrap();
        assert!(
            mid.service("supernode-1")
                .unwrap()
                .flag("--appio-ssl-certfile")
                .is_some()
        );
        s.flower_version = "1.21.0".into();
        let appio = build(&s).unwrap();
        let runner = appio.service("superexec-clientapp-1").unwrap();
        assert!(runner.flag("--insecure").is_some());
        assert!(runner.flag("--superexec-auth-secret-file").is_none());
        s.flower_version = "1.13.1".into();
        let seed = build(&s).unwrap();
        let serverapp = seed.service("serverapp").unwrap();
        assert_eq!(serverapp.image, "flwr/serverapp:1.13.1");
        assert_eq!(
            serverapp.args(),
            ["--serverappio-api-address", "superlink:9091", "--insecure"]
        );
        assert_eq!(
            seed.service("clientapp-1").unwrap().args(),
            ["--clientappio-api-address", "supernode-1:9094", "--insecure"]
        );
    }

    #[test]
    fn mounts_list_the_files_they_carry_never_the_ca_key() {
        for layout in [CertLayout::Split, CertLayout::Flat] {
            let mut s = settings();
            s.cert_layout = layout;
            let deployment = build(&s).unwrap();
            let superlink = deployment.service("superlink").unwrap();
            let files: Vec<_> = superlink
                .mounts
                .iter()
                .flat_map(|mount| mount.files().unwrap())
                .collect();
            let targets: Vec<_> = files.iter().map(|f| f.target.as_str()).collect();
            assert_eq!(
                targets,
                [
                    "/app/certificates/ca.crt",
                    "/app/certificates/server.pem",
                    "/app/certificates/server.key"
                ],
                "{layout:?}"
            );
            let private: Vec<_> = files.iter().filter(|f| f.private).map(|f| f.name).collect();
            assert_eq!(private, ["server.key"], "{layout:?}");
            assert!(files.iter().all(|f| f.source.starts_with("/srv/flower")));
            assert!(files.iter().all(|f| !f.source.ends_with("ca.key")));
            let node = deployment.service("supernode-1").unwrap();
            let ca: Vec<_> = node.mounts.iter().flat_map(|m| m.files().unwrap()).collect();
            assert_eq!(ca.len(), 1);
            assert_eq!(ca[0].target, "/app/certificates/ca.crt");
        }
        let mut s = settings();
        s.state = true;
        let deployment = build(&s).unwrap();
        let state = deployment.services[0].mounts.last().unwrap();
        assert_eq!(state.purpose, MountPurpose::State);
        assert!(state.files().is_none());
    }

    fn names(deployment: &Deployment) -> Vec<&str> {
        deployment.services.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn roles_split_the_services() {
        let mut s = settings();
        s.superlink_isolation = Isolation::Process;
        s.supernode_isolation = Isolation::Process;
        s.supernodes = 1;
        s.role = DeploymentRole::Superlink;
        s.public_addresses = vec![Address::parse("flower.example.org").unwrap()];
        let link = build(&s).unwrap();
        assert_eq!(names(&link), ["superlink", "superexec-serverapp"]);
        let ports = &link.service("superlink").unwrap().ports;
        assert_eq!(ports.len(), 1, "Fleet and Control share 8000 in 1.42");
        assert_eq!(
            (ports[0].host_ip.to_string(), ports[0].published),
            ("0.0.0.0".into(), 8000)
        );
        assert_eq!(
            link.connection.as_ref().unwrap().address.to_string(),
            "127.0.0.1:8000"
        );
        s.flower_version = "1.13.1".into();
        let seed = build(&s).unwrap();
        let published: Vec<_> = seed.services[0]
            .ports
            .iter()
            .map(|p| format!("{}:{}", p.host_ip, p.published))
            .collect();
        assert_eq!(published, ["127.0.0.1:9093", "0.0.0.0:9092"]);

        s.flower_version = "1.42.0".into();
        s.role = DeploymentRole::Supernode;
        s.public_addresses.clear();
        s.superlink_address = Some(Address::parse("[2001:db8::1]").unwrap());
        let node = build(&s).unwrap();
        assert_eq!(names(&node), ["supernode-1", "superexec-clientapp-1"]);
        let supernode = node.service("supernode-1").unwrap();
        assert_eq!(
            supernode.flag("--superlink").unwrap().value.as_deref(),
            Some("[2001:db8::1]:8000")
        );
        assert!(supernode.depends_on.is_empty());
        assert!(node.connection.is_none());
        // Each host makes its own links' material: the supernode serves its Runtime API
        // with a certificate from this host's Runtime CA, which its runner alone trusts
        // (never the superlink's CA), and the link has a secret of this host's own.
        assert_eq!(
            supernode.flag("--ssl-certfile").unwrap().value.as_deref(),
            Some("runtime-certificates/server.pem")
        );
        assert_eq!(
            supernode
                .flag("--superexec-auth-secret-file")
                .unwrap()
                .value
                .as_deref(),
            Some("superexec-auth/secret")
        );
        let runner = node.service("superexec-clientapp-1").unwrap();
        assert_eq!(
            runner.flag("--root-certificates").unwrap().value.as_deref(),
            Some("certificates/ca.crt")
        );
        let trusted: Vec<_> = runner
            .mounts
            .iter()
            .filter(|m| {
                matches!(
                    m.purpose,
                    MountPurpose::CaCertificate | MountPurpose::RuntimeCaCertificate
                )
            })
            .map(|m| (m.purpose, m.source.clone()))
            .collect();
        assert_eq!(
            trusted,
            [(
                MountPurpose::RuntimeCaCertificate,
                PathBuf::from("/srv/flower/runner-certificates")
            )]
        );
        assert!(
            runner
                .mounts
                .iter()
                .all(|m| !m.source.ends_with("supernode-certificates"))
        );
        assert!(runner.flag("--superexec-auth-secret-file").is_some());
        assert_eq!(
            node.owned_paths(),
            [
                Path::new("/srv/flower/superexec-auth/supernode-1"),
                Path::new("/srv/flower/supernode-runtime-certificates/supernode-1"),
            ]
        );
        // The superlink's host: its runner link gets its secret too.
        s.role = DeploymentRole::Superlink;
        s.superlink_address = None;
        s.public_addresses = vec![Address::parse("flower.example.org").unwrap()];
        let link = build(&s).unwrap();
        for name in ["superlink", "superexec-serverapp"] {
            let service = link.service(name).unwrap();
            assert!(service.flag("--superexec-auth-secret-file").is_some(), "{name}");
        }
    }

    #[test]
    fn supernode_auth_flags_and_mounts_follow_the_release() {
        let mut s = settings();
        s.supernode_auth = true;
        s.superlink_isolation = Isolation::Process;
        s.supernode_isolation = Isolation::Process;
        let expected: [(&str, &[&str], &[&str]); 3] = [
            (
                "1.13.1",
                &[
                    "--auth-list-public-keys",
                    "--auth-superlink-private-key",
                    "--auth-superlink-public-key",
                ],
                &["--auth-supernode-private-key", "--auth-supernode-public-key"],
            ),
            (
                "1.21.0",
                &["--auth-list-public-keys"],
                &["--auth-supernode-private-key", "--auth-supernode-public-key"],
            ),
            (
                "1.42.0",
                &["--enable-supernode-auth"],
                &["--auth-supernode-private-key"],
            ),
        ];
        for (version, superlink_flags, supernode_flags) in expected {
            s.flower_version = version.into();
            let deployment = build(&s).unwrap();
            let auth_flags = |service: &Service| -> Vec<&str> {
                service
                    .flags
                    .iter()
                    .map(|flag| flag.name)
                    .filter(|name| name.contains("-auth") && !name.contains("superexec"))
                    .collect()
            };
            assert_eq!(auth_flags(&deployment.services[0]), superlink_flags, "{version}");
            for service in &deployment.services[1..] {
                let auth_mounts: Vec<_> = service
                    .mounts
                    .iter()
                    .filter(|m| m.purpose == MountPurpose::SupernodeAuthKey)
                    .collect();
                if let Role::Supernode(index) = service.role {
                    assert_eq!(auth_flags(service), supernode_flags, "{version}");
                    // Its own key folder, read-only, and nobody else's.
                    assert_eq!(auth_mounts.len(), 1);
                    assert!(auth_mounts[0].read_only);
                    assert_eq!(
                        auth_mounts[0].source,
                        PathBuf::from(format!("/srv/flower/supernode-auth/supernode-{index}"))
                    );
                } else {
                    assert!(auth_mounts.is_empty(), "{version} {}", service.name);
                    assert!(auth_flags(service).is_empty(), "{version} {}", service.name);
                }
            }
        }
        s.security = Security::Insecure;
        let err = build(&s).unwrap_err();
        assert_eq!(
            err.downcast_ref::<Refusal>(),
            Some(&Refusal::AuthNeedsTls),
            "{err}"
        );
    }

    #[test]
    fn image_repo_and_tag_override() {
        let mut s = settings();
        s.image_repo = "flowerbed-local".into();
        s.image_tag = Some("dev".into());
        let deployment = build(&s).unwrap();
        assert_eq!(deployment.services[1].image, "flowerbed-local/supernode:dev");
    }

    #[test]
    fn missing_sources_are_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Settings::defaults(tmp.path().to_path_buf());
        let deployment = build(&s).unwrap();
        let missing = deployment.missing_sources();
        // superlink-certificates and supernode-certificates (shared by both supernodes).
        assert_eq!(missing.len(), 2);
        let err = require_sources(&deployment, tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("superlink-certificates") && err.contains("certs generate"),
            "{err}"
        );
    }
}
