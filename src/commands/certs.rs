//! `flowerbed certs generate|inspect|verify`

use std::path::PathBuf;

use anyhow::{Result, anyhow};

use crate::cli::certs::{CertsCommand, GenerateArgs, InspectArgs, VerifyArgs};
use crate::error::Outcome;
use crate::output::{Printer, Style};
use crate::tls::generate::{ExistingCa, GenerateSettings};
use crate::tls::inspect::Inspected;
use crate::tls::verify::{Severity, VerifySettings};
use crate::tls::{Layout, LayoutKind, SubjectName, generate, inspect, names, verify};

pub fn run(command: CertsCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        CertsCommand::Generate(args) => run_generate(&args, printer),
        CertsCommand::Inspect(args) => run_inspect(&args, printer),
        CertsCommand::Verify(args) => run_verify(&args, printer),
    }
}

/// `--name` values, each sorted into DNS or IP; the first invalid one is the error.
fn parse_names(values: &[String]) -> Result<Vec<SubjectName>> {
    names::parse_all(values.iter().map(String::as_str)).map_err(|err| anyhow!("--name: {err}"))
}

/// Turn `certs generate` flags into settings.
pub fn generate_settings(args: &GenerateArgs) -> Result<GenerateSettings> {
    let extra = parse_names(&args.names)?;
    Ok(GenerateSettings {
        dir: args.dir.clone(),
        layout: if args.flat {
            LayoutKind::Flat
        } else {
            LayoutKind::Split
        },
        names: generate::names_with_defaults(&extra),
        key_type: args.key_type,
        days: args.days,
        existing_ca: match (&args.ca_cert, &args.ca_key) {
            (Some(cert_path), Some(key_path)) => Some(ExistingCa {
                cert_path: cert_path.clone(),
                key_path: key_path.clone(),
            }),
            _ => None,
        },
        force: args.force,
    })
}

fn run_generate(args: &GenerateArgs, printer: &Printer) -> Result<Outcome> {
    let settings = generate_settings(args)?;
    let generated = generate::generate(&settings)?;
    for warning in &generated.report.warnings {
        printer.warn(warning);
    }
    if args.dry_run {
        generated.plan.preflight()?;
        let steps = generated.plan.steps();
        if args.json {
            printer
                .json(&serde_json::json!({ "dry_run": true, "steps": steps, "report": generated.report }))?;
        } else {
            printer.plan_steps(&steps, true)?;
        }
        return Ok(Outcome::Success);
    }
    generated.plan.apply()?;
    let report = &generated.report;
    if args.json {
        printer.json(report)?;
        return Ok(Outcome::Success);
    }
    for file in &report.files {
        printer.info(&format!("wrote {}", file.display()))?;
    }
    let names = report
        .names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    printer.result(&format!(
        "server certificate for {names} ({}), valid until {}, sha256 {}",
        report.key_type, report.server.not_after, report.server.sha256
    ))?;
    if settings.layout == LayoutKind::Split && !report.ca_reused {
        printer.info(&format!(
            "keep {} private: it signs certificates and belongs in no container",
            Layout::new(&settings.dir, settings.layout).ca_key().display()
        ))?;
    }
    Ok(Outcome::Success)
}

fn run_inspect(args: &InspectArgs, printer: &Printer) -> Result<Outcome> {
    // Read everything first: a bad file is an error before anything is printed.
    let mut all = Vec::new();
    for path in &args.files {
        all.extend(inspect::inspect_file(path)?);
    }
    if args.json {
        printer.json(&all)?;
        return Ok(Outcome::Success);
    }
    for (index, item) in all.iter().enumerate() {
        if index > 0 {
            printer.result("")?;
        }
        print_inspected(item, printer)?;
    }
    Ok(Outcome::Success)
}

fn print_inspected(item: &Inspected, printer: &Printer) -> std::io::Result<()> {
    let field = |name: &str, value: &str| printer.result(&format!("  {:<22}{value}", format!("{name}:")));
    match item {
        Inspected::Certificate(cert) => {
            printer.result(&printer.paint(Style::Bold, &format!("{}: certificate", cert.path.display())))?;
            field("subject", &cert.subject)?;
            field("issuer", &cert.issuer)?;
            field("serial", &cert.serial)?;
            field("not before", &cert.not_before)?;
            let expiry = if cert.days_left < 0 {
                printer.paint(Style::Error, &format!("{} (expired)", cert.not_after))
            } else {
                format!("{} ({} days left)", cert.not_after, cert.days_left)
            };
            field("not after", &expiry)?;
            let names = cert
                .names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            field("names", if names.is_empty() { "(none)" } else { &names })?;
            field("key", &cert.key.to_string())?;
            field("signature", &cert.signature_algorithm)?;
            field("CA", if cert.is_ca { "yes" } else { "no" })?;
            field("self-signed", if cert.self_signed { "yes" } else { "no" })?;
            if !cert.key_usage.is_empty() {
                field("key usage", &cert.key_usage.join(", "))?;
            }
            if !cert.extended_key_usage.is_empty() {
                field("extended key usage", &cert.extended_key_usage.join(", "))?;
            }
            field("sha256", &cert.sha256)
        }
        Inspected::PrivateKey(key) => {
            printer.result(&printer.paint(Style::Bold, &format!("{}: private key", key.path.display())))?;
            field("key", &key.key.to_string())?;
            field("public key sha256", &key.public_key_sha256)
        }
        Inspected::CertificateRequest(csr) => {
            printer.result(&printer.paint(
                Style::Bold,
                &format!("{}: certificate request", csr.path.display()),
            ))?;
            field("subject", &csr.subject)?;
            field("key", &csr.key.to_string())
        }
    }
}

/// Turn `certs verify` flags into settings: explicit files, or a folder's layout.
pub fn verify_settings(args: &VerifyArgs) -> Result<VerifySettings> {
    let names = if args.names.is_empty() {
        generate::names_with_defaults(&[])
    } else {
        parse_names(&args.names)?
    };
    let (ca_path, cert_path, key_path, ca_copies) = if let (Some(ca), Some(cert), Some(key)) =
        (&args.ca, &args.cert, &args.key)
    {
        (ca.clone(), cert.clone(), key.clone(), Vec::new())
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        if !dir.is_dir() {
            return Err(anyhow!("{}: not a directory", dir.display()));
        }
        let layout = Layout::detect(&dir).ok_or_else(|| {
                anyhow!(
                    "{}: no certificates found (expected superlink-certificates/server.pem or server.pem; make them with `flowerbed certs generate {}`)",
                    dir.display(),
                    dir.display()
                )
            })?;
        let copies = if layout.kind == LayoutKind::Split {
            vec![layout.superlink_ca_cert()]
        } else {
            Vec::new()
        };
        (
            layout.supernode_ca_cert(),
            layout.server_cert(),
            layout.server_key(),
            copies,
        )
    };
    Ok(VerifySettings {
        ca_path,
        cert_path,
        key_path,
        ca_copies,
        names,
        warn_days: args.warn_days,
    })
}

fn run_verify(args: &VerifyArgs, printer: &Printer) -> Result<Outcome> {
    let settings = verify_settings(args)?;
    let report = verify::verify(&settings)?;
    let outcome = if report.ok {
        Outcome::Success
    } else {
        Outcome::Findings
    };
    if args.json {
        printer.json(&report)?;
        return Ok(outcome);
    }
    for finding in &report.findings {
        let label = printer.severity_label(finding.severity);
        printer.result(&format!(
            "{label}[{}] {}: {}",
            finding.id,
            finding.path.display(),
            finding.message
        ))?;
    }
    let names = report
        .names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if report.ok {
        printer.result(&format!(
            "{} {} chains to {}, matches its key, and covers {names}",
            printer.paint(Style::Ok, "ok:"),
            report.cert.display(),
            report.ca.display()
        ))?;
    } else {
        let errors = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        printer.result(&format!(
            "{} {errors} problem(s): a supernode trusting {} would not accept {}",
            printer.paint(Style::Error, "fail:"),
            report.ca.display(),
            report.cert.display()
        ))?;
    }
    Ok(outcome)
}
