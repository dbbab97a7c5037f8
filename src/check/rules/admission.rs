//! Supernode authentication across hosts, on the superlink's host: every bundle handed out
//! has had its supernodes' keys admitted, and every admitted key came from one of those
//! bundles. A key nobody can account for is a supernode nobody vouched for.

use super::{Findings, quote};
use crate::auth::admit::read_admitted;
use crate::bundle::records::recorded_bundles;
use crate::deploy::Deployment;
use crate::hints;
use crate::tls::verify::Severity;

/// The admission rules for a superlink deployment with supernode authentication.
pub fn check(deployment: &Deployment, findings: &mut Findings) {
    if !(deployment.role.has_superlink() && deployment.supernode_auth.is_some()) {
        return;
    }
    let dir = &deployment.dir;
    let (bundles, admitted) = match (recorded_bundles(dir), read_admitted(dir)) {
        (Ok(bundles), Ok(admitted)) => (bundles, admitted),
        (Err(err), _) | (_, Err(err)) => {
            findings.add(
                "admission-unreadable",
                Some(Severity::Warning),
                "superlink",
                None,
                format!("{err:#}: bundles and admitted keys were not compared"),
                None,
            );
            return;
        }
    };
    for bundle in &bundles {
        // Distinct supernodes of the bundle (by the node their key's comment names).
        let mut nodes: Vec<&str> = admitted
            .iter()
            .filter(|key| key.origin.as_deref() == Some(bundle.id.as_str()))
            .filter_map(|key| key.node.as_deref())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let count = nodes.len();
        if count < bundle.supernodes as usize {
            findings.add(
                "supernodes-not-admitted",
                Some(Severity::Warning),
                "superlink",
                Some(&dir.join(crate::bundle::records::BUNDLES_DIR).join(format!("{}.json", bundle.file))),
                format!(
                    "bundle {} ({}) runs {} supernode(s), {count} of whose keys are admitted: the superlink refuses the others",
                    bundle.id, bundle.file, bundle.supernodes
                ),
                Some(format!(
                    "on the supernodes' host, `{}` writes their public keys to supernode-public-keys/; bring that folder here and run `{}`",
                    hints::from_bundle(&quote(std::path::Path::new(&bundle.file))),
                    hints::supernodes_admit(&quote(dir), "supernode-public-keys")
                )),
            );
        }
    }
    for key in &admitted {
        let known = key
            .origin
            .as_deref()
            .is_some_and(|origin| bundles.iter().any(|bundle| bundle.id == origin));
        if !known {
            // From 1.35 a registered key lives in the superlink's state, not in this folder.
            let registered = if deployment.registers_supernodes() {
                " (once registered it stays so until `flwr supernode unregister`)"
            } else {
                " (the superlink keeps it until it restarts)"
            };
            findings.add(
                "supernode-key-unknown",
                Some(Severity::Warning),
                "superlink",
                Some(&key.path),
                format!(
                    "an admitted supernode key that no bundle made here produced: whoever holds its private key can join the federation; if nobody vouches for it, remove it{registered}"
                ),
                Some(format!("rm {} && {}", quote(&key.path), hints::quickstart(&quote(dir)))),
            );
        }
    }
}
