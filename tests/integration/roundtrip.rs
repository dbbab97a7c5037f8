//! Render -> read back: every compose file flowerbed renders, read by `check`'s compose
//! reader, yields exactly the containers of the model it was rendered from. The same for
//! the `docker run` script and the script reader.

use std::path::PathBuf;

use flowerbed::check::{self, ContainerSpec};
use flowerbed::deploy::{self, Isolation, Security, Settings};
use flowerbed::render::{compose, script};
use proptest::prelude::*;

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (
        0..deploy::profile::PROFILES.len(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1u32..5,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            "deploy",
            "my deploy",
            "it's here",
            "cost $5",
            "back`tick`",
            "dollar$HOME",
        ]),
    )
        .prop_map(
            |(profile, process_link, process_node, tls, supernodes, state, selinux, folder)| {
                let mut settings = Settings::defaults(PathBuf::from("/srv/flower").join(folder));
                settings.flower_version = deploy::profile::PROFILES[profile].version.to_string();
                settings.superlink_isolation = if process_link {
                    Isolation::Process
                } else {
                    Isolation::Subprocess
                };
                settings.supernode_isolation = if process_node {
                    Isolation::Process
                } else {
                    Isolation::Subprocess
                };
                settings.security = if tls { Security::Tls } else { Security::Insecure };
                settings.supernodes = supernodes;
                settings.state = state;
                settings.selinux = selinux;
                settings
            },
        )
}

/// One mount as both sides must agree on it: source, target, read-only, SELinux label.
type MountView = (PathBuf, String, bool, bool);
/// One container: name, uid, gid, arguments, mounts.
type ContainerView = (String, u32, u32, Vec<String>, Vec<MountView>);

/// What both sides must agree on, per container, in a comparable form.
fn comparable(specs: &[ContainerSpec]) -> Vec<ContainerView> {
    let mut out: Vec<_> = specs
        .iter()
        .map(|spec| {
            let mut mounts: Vec<_> = spec
                .mounts
                .iter()
                .map(|m| (m.source.clone(), m.target.clone(), m.read_only, m.selinux_label))
                .collect();
            mounts.sort();
            // A default no side uses, so a user left out shows.
            let id = spec.identity(1, 1);
            (spec.name.clone(), id.uid, id.gid, spec.args.clone(), mounts)
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compose_round_trips_the_model(settings in settings_strategy()) {
        let deployment = deploy::build(&settings).unwrap();
        let yaml = compose::render(&deployment).unwrap();
        let read = check::compose::parse(&yaml, &settings.dir).unwrap();
        prop_assert_eq!(comparable(&read), comparable(&check::model::specs(&deployment)));
    }

    #[test]
    fn run_script_round_trips_the_model(settings in settings_strategy()) {
        let deployment = deploy::build(&settings).unwrap();
        let text = script::render_run(&deployment).unwrap();
        let mut read = check::script::parse(&text, &settings.dir).unwrap();
        // The script names containers PROJECT-SERVICE.
        for spec in &mut read {
            spec.name = spec.name.trim_start_matches(&format!("{}-", deployment.project)).to_string();
        }
        prop_assert_eq!(comparable(&read), comparable(&check::model::specs(&deployment)));
    }
}
