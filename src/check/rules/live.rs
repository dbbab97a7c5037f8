//! What only a live container can tell: whether it exited with an error, and whether its
//! last log lines name a permission or TLS failure.

use super::Findings;
use crate::docker::LiveContainer;
use crate::tls::verify::Severity;

/// Log lines that name the problems flowerbed exists for.
const PERMISSION_MARKERS: [&str; 2] = ["Permission denied", "PermissionError"];
const TLS_MARKERS: [&str; 4] = [
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "SSLError",
    "hostname mismatch",
];

/// What the container's state and log say.
pub fn state_findings(container: &LiveContainer, findings: &mut Findings) {
    let mut add = |id: &'static str, severity: Severity, message: String| {
        findings.add(id, Some(severity), &container.name, None, message, None);
    };
    let failed = !container.running && container.exit_code.is_some_and(|code| code != 0);
    if failed {
        add(
            "container-exited",
            Severity::Error,
            format!(
                "{} with exit code {}",
                container.status,
                container.exit_code.unwrap_or_default()
            ),
        );
    }
    if let Some(line) = container
        .log_tail
        .iter()
        .rev()
        .find(|l| PERMISSION_MARKERS.iter().any(|m| l.contains(m)))
    {
        add(
            "log-permission-denied",
            Severity::Error,
            format!("its log says: {}", line.trim()),
        );
    }
    if let Some(line) = container
        .log_tail
        .iter()
        .rev()
        .find(|l| TLS_MARKERS.iter().any(|m| l.contains(m)))
    {
        add(
            "log-tls-failure",
            Severity::Error,
            format!("its log says: {}", line.trim()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::live::tests::container;

    #[test]
    fn exit_codes_and_logs_become_findings() {
        let mut findings = Findings::default();
        state_findings(
            &container(
                None,
                false,
                1,
                &["PermissionError: [Errno 13] Permission denied: 'certificates/server.key'"],
            ),
            &mut findings,
        );
        let ids: Vec<_> = findings.list().iter().map(|f| f.id).collect();
        assert_eq!(ids, ["container-exited", "log-permission-denied"]);
        let mut clean = Findings::default();
        state_findings(&container(None, true, 0, &["INFO all good"]), &mut clean);
        assert!(clean.list().is_empty());
    }
}
