//! `check` output: text grouped by service, JSON, or SARIF 2.1.0 for CI annotations.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::rules::Finding;
use crate::output::{Printer, Style};
use crate::tls::verify::Severity;

/// The result of one `check` run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// What was checked (a folder, a compose file, a script, containers).
    pub source: String,
    pub services: Vec<String>,
    pub ok: bool,
    pub findings: Vec<Finding>,
    /// How the input was read, when that is worth saying (one line each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn new(source: String, services: Vec<String>, findings: Vec<Finding>) -> Self {
        Self {
            source,
            services,
            ok: !findings.iter().any(|f| f.severity == Severity::Error),
            findings,
            notes: Vec::new(),
        }
    }

    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

pub fn print_text(report: &CheckReport, printer: &Printer) -> std::io::Result<()> {
    let mut by_service: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for finding in &report.findings {
        by_service
            .entry(finding.service.as_str())
            .or_default()
            .push(finding);
    }
    for (service, findings) in &by_service {
        printer.result(&printer.paint(Style::Bold, &format!("{service}:")))?;
        for finding in findings {
            let label = printer.severity_label(finding.severity);
            let path = finding
                .path
                .as_ref()
                .map(|p| format!("{}: ", p.display()))
                .unwrap_or_default();
            printer.result(&format!("  {label}[{}] {path}{}", finding.id, finding.message))?;
            if let Some(fix) = &finding.fix {
                printer.result(&format!("    fix: {fix}"))?;
            }
        }
    }
    for note in &report.notes {
        printer.result(&format!("note: {note}"))?;
    }
    let warnings = report.findings.len() - report.errors();
    let summary = if report.findings.is_empty() {
        printer.paint(
            Style::Ok,
            &format!(
                "ok: {} service(s) in {} will start as far as the host can tell",
                report.services.len(),
                report.source
            ),
        )
    } else if report.ok {
        format!(
            "{} ({} warning(s)) in {}",
            printer.paint(Style::Ok, "ok"),
            warnings,
            report.source
        )
    } else {
        printer.paint(
            Style::Error,
            &format!(
                "{} error(s), {} warning(s) in {}",
                report.errors(),
                warnings,
                report.source
            ),
        )
    };
    printer.result(&summary)
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// SARIF 2.1.0: every rule of the table, one result per finding.
pub fn sarif(report: &CheckReport) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = super::rules::RULES
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "shortDescription": { "text": rule.summary },
                "defaultConfiguration": { "level": level(rule.severity) },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|finding| {
            let mut result = json!({
                "ruleId": finding.id,
                "level": level(finding.severity),
                "message": { "text": match &finding.fix {
                    Some(fix) => format!("{}: {} (fix: {fix})", finding.service, finding.message),
                    None => format!("{}: {}", finding.service, finding.message),
                }},
            });
            if let Some(path) = &finding.path {
                result["locations"] = json!([{ "physicalLocation": { "artifactLocation": { "uri": path.to_string_lossy() } } }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "flowerbed",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
