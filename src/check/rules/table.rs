//! Every rule `check` has: its id, default severity and a one-line description. SARIF's
//! `rules`, `check --list-rules` and README's rule list are printed from this table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::tls::verify::Severity;

/// One rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

const fn error(id: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        severity: Severity::Error,
        summary,
    }
}

const fn warning(id: &'static str, summary: &'static str) -> Rule {
    Rule {
        id,
        severity: Severity::Warning,
        summary,
    }
}

/// The rules, grouped by concern.
pub const RULES: &[Rule] = &[
    // mounts
    error(
        "mount-source-missing",
        "A bind-mount source does not exist: Docker would create it as an empty root-owned folder.",
    ),
    error(
        "mount-source-relative",
        "A `docker run` mount source is relative and the Docker client here (before 23) refuses it.",
    ),
    error(
        "mount-kind-mismatch",
        "A flag names a file, but the path inside the mount is a folder.",
    ),
    error(
        "flag-file-unmounted",
        "A file a flag names is inside no mount, so the container cannot see it.",
    ),
    error(
        "flag-file-missing",
        "A file a flag names does not exist in its mount.",
    ),
    error(
        "not-readable",
        "The container's UID cannot read a file its flags name (mode bits, groups, ACLs, every parent).",
    ),
    warning(
        "user-unresolved",
        "A user name is neither root, a number nor one of the image's users; a UID was assumed.",
    ),
    warning(
        "certs-mount-writable",
        "A folder holding certificates or keys is mounted read-write.",
    ),
    // keys
    error(
        "key-too-open",
        "A private key or secret is readable by others or by a group that is not the container's (its own group: a warning).",
    ),
    warning(
        "key-owner",
        "A private key belongs to another UID than the container's.",
    ),
    error(
        "ca-key-mounted",
        "The CA's private key is mounted into a container: anyone in it can sign certificates.",
    ),
    error(
        "auth-key-mounted",
        "An authentication private key is mounted into a container whose flags do not use it.",
    ),
    // state
    warning(
        "state-unmounted",
        "--database is inside no mount: the state is lost with the container.",
    ),
    error("state-read-only", "--database is on a read-only mount."),
    error(
        "state-not-writable",
        "The container's UID cannot create files in the database's folder or write the database.",
    ),
    // selinux
    error(
        "selinux-label",
        "SELinux is enforcing and a bind mount has no :z/:Z label.",
    ),
    // tls
    error(
        "tls-mismatch",
        "A component and the server it dials (superlink, or a supernode's Runtime API) disagree on TLS for a link that, in that release, can be TLS (a warning when the release is unknown).",
    ),
    error(
        "tls-unsupported",
        "TLS is asked on a link the release cannot encrypt (the message names the release).",
    ),
    warning(
        "link-left-plain",
        "In a TLS deployment, an app runner's link is plain text though the release can encrypt it.",
    ),
    warning(
        "tls-not-verified",
        "The TLS files are not readable by the caller, so chain, key, expiry and names were not checked.",
    ),
    error(
        "tls-unreadable",
        "The server certificate or key cannot be read as TLS material.",
    ),
    error(
        "ca-unreadable",
        "A file named as the CA certificate holds no certificate (garbage, empty, a private key, too large).",
    ),
    error("ca-not-ca", "The CA certificate is not a CA (basic constraints)."),
    error(
        "ca-key-usage",
        "The CA certificate may not sign certificates (key usage).",
    ),
    error(
        "ca-copy-mismatch",
        "A copy of the CA certificate differs from the CA.",
    ),
    error(
        "chain-issuer",
        "The server certificate was not issued by the CA the clients trust.",
    ),
    error(
        "chain-signature",
        "The server certificate's signature does not verify against the CA.",
    ),
    error(
        "chain-rejected",
        "A TLS library rejects the chain from the server certificate to the CA.",
    ),
    error(
        "key-mismatch",
        "The server's private key does not belong to its certificate.",
    ),
    error("not-yet-valid", "A certificate is not valid yet."),
    error("expired", "A certificate has expired."),
    warning("expiring", "A certificate expires within the warning period."),
    warning("server-is-ca", "The server certificate is itself a CA."),
    error(
        "server-eku",
        "The server certificate's extended key usage does not allow TLS server authentication.",
    ),
    error(
        "name-not-covered",
        "The server certificate does not cover a name the clients dial.",
    ),
    // cross-host
    warning(
        "supernodes-not-admitted",
        "A bundle made with supernode authentication has supernodes whose keys are not admitted yet.",
    ),
    warning(
        "supernode-key-unknown",
        "An admitted supernode key came from no bundle this superlink made.",
    ),
    warning(
        "admission-unreadable",
        "A bundle record or an admitted key cannot be read, so bundles and keys were not compared.",
    ),
    error(
        "public-address-not-covered",
        "The superlink's certificate does not cover a public address that other hosts dial.",
    ),
    warning(
        "superlink-names-unknown",
        "A supernode site has no record of the names the superlink's certificate covers.",
    ),
    error(
        "superlink-names-unreadable",
        "A supernode site's record of the superlink's certificate cannot be read.",
    ),
    error(
        "superlink-address-not-covered",
        "The supernodes dial an address the superlink's certificate does not cover.",
    ),
    error(
        "ca-mismatch",
        "The CA the supernodes trust is not the one that issued the superlink's certificate.",
    ),
    // app images (--app)
    error(
        "app-project-unreadable",
        "The app's pyproject.toml cannot be read, is not a Flower app, or pins another flwr than the release.",
    ),
    error(
        "app-dockerfile-stale",
        "An app image's Dockerfile is missing or does not install what the app's pyproject.toml lists today.",
    ),
    error(
        "app-wheel-missing",
        "The wheel folder has no wheel of a dependency the offline build installs.",
    ),
    error(
        "app-image-not-built",
        "An app image the deployment runs is not on the Docker daemon.",
    ),
    // live
    error(
        "container-exited",
        "A live container exited with a non-zero code.",
    ),
    error(
        "log-permission-denied",
        "A live container's log shows a permission error.",
    ),
    error("log-tls-failure", "A live container's log shows a TLS failure."),
];

/// The rule with this id; every finding's id is one of these.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}

/// The table as a Markdown list (README's rule list is exactly this).
pub fn markdown() -> String {
    RULES.iter().fold(String::new(), |mut out, rule| {
        let severity = match rule.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "- `{}` ({severity}): {}", rule.id, rule.summary);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        for (index, rule) in RULES.iter().enumerate() {
            assert!(
                rule.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                rule.id
            );
            assert!(
                !RULES[..index].iter().any(|other| other.id == rule.id),
                "{}",
                rule.id
            );
            assert!(rule.summary.ends_with('.') && !rule.summary.contains('\n'));
        }
    }
}
