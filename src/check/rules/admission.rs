//! Supernode authentication across hosts, on the superlink's host: every bundle handed out
//! has had its supernodes' keys admitted, and every admitted key came from one of those
//! bundles. A key nobody can account for is a supernode nobody vouched for.

use super::{Findings, quote};
use crate::auth::admit::read_admitted;
use crate::bundle::pack::recorded_bundles;
use crate::deploy::Deployment;
use crate::tls::verify::Severity;

/// The admission rules for a superlink deployment with supernode authentication.
pub fn check(deployment: &Deployment, findings: &mut Findings) {
    if !(deployment.role.has_superlink() && deployment.supernode_auth.is_some()) {
        return;
    }
    let dir = &deployment.dir;
    // Unreadable records or keys: the admitting command and the superlink say so.
    let (Ok(bundles), Ok(admitted)) = (recorded_bundles(dir), read_admitted(dir)) else {
        return;
    };
    for bundle in &bundles {
        let count = admitted
            .iter()
            .filter(|key| key.origin.as_deref() == Some(bundle.id.as_str()))
            .count();
        if count < bundle.supernodes as usize {
            findings.add(
                "supernodes-not-admitted",
                Some(Severity::Warning),
                "superlink",
                Some(&dir.join(crate::bundle::pack::BUNDLES_DIR).join(format!("{}.json", bundle.id))),
                format!(
                    "bundle {} ({}) runs {} supernode(s), {count} of whose keys are admitted: the superlink refuses the others",
                    bundle.id, bundle.file, bundle.supernodes
                ),
                Some(format!(
                    "on the supernodes' host, `flowerbed quickstart --from-bundle {}` writes their public keys to supernode-public-keys/; bring that folder here and run `flowerbed supernodes admit {} supernode-public-keys`",
                    bundle.file,
                    quote(dir)
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
                ""
            };
            findings.add(
                "supernode-key-unknown",
                Some(Severity::Warning),
                "superlink",
                Some(&key.path),
                format!(
                    "an admitted supernode key that no bundle made here produced: whoever holds its private key can join the federation; if nobody vouches for it, remove it{registered}"
                ),
                Some(format!(
                    "rm {} && flowerbed quickstart {}",
                    quote(&key.path),
                    quote(dir)
                )),
            );
        }
    }
}
