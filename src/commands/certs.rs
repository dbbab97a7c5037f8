//! `flowerbed certs generate|inspect|verify|renew`

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::certs::{CertsCommand, GenerateArgs, InspectArgs, RenewArgs, VerifyArgs};
use crate::config;
use crate::error::Outcome;
use crate::fsutil::shell_word;
use crate::hints;
use crate::output::{Printer, Style};
use crate::tls::inspect::Inspected;
use crate::tls::renew::{self, ReplacedFile};
use crate::tls::verify::Severity;
use crate::tls::{Layout, LayoutKind, generate, inspect, verify};

pub fn run(command: CertsCommand, printer: &Printer) -> Result<Outcome> {
    match command {
        CertsCommand::Generate(args) => run_generate(&args, printer),
        CertsCommand::Inspect(args) => run_inspect(&args, printer),
        CertsCommand::Verify(args) => run_verify(&args, printer),
        CertsCommand::Renew(args) => run_renew(&args, printer),
    }
}

/// Folders that belong to someone else (after `own`, the container's UID) keep their owner
/// for the files just written into them: as root, each such folder is handed to its owner
/// again, journaled like `own` (only the new files change, and `undo` puts them back).
/// Returns the folders and owners kept.
fn keep_folder_owners(files: &[PathBuf], printer: &Printer) -> Result<Vec<(PathBuf, u32, u32)>> {
    let folder_of = |file: &Path| match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let me = nix::unistd::geteuid().as_raw();
    let mut folders: Vec<PathBuf> = files.iter().map(|file| folder_of(file)).collect();
    folders.sort();
    folders.dedup();
    let mut kept = Vec::new();
    for folder in folders {
        let Ok(meta) = std::fs::metadata(&folder) else {
            continue;
        };
        let (uid, gid) = (meta.uid(), meta.gid());
        let differs = files
            .iter()
            .filter(|file| folder_of(file) == folder)
            .any(|file| std::fs::symlink_metadata(file).is_ok_and(|m| (m.uid(), m.gid()) != (uid, gid)));
        if uid == me || !differs {
            continue;
        }
        if me != 0 {
            let shown = folder.to_string_lossy();
            printer.warn(&format!(
                "{}: belongs to UID {uid}, but the files just written are yours; run `{}`",
                folder.display(),
                hints::own_command(uid, gid, [shown.as_ref()]).unwrap_or_default()
            ));
            continue;
        }
        // Inside a tree that `own` already journaled for this owner, that journal gets a
        // new run (one `undo` of the tree restores everything); otherwise the folder gets
        // a journal of its own.
        let root = journaled_ancestor(&folder, (uid, gid)).unwrap_or_else(|| folder.clone());
        hand_over(&root, uid, gid).with_context(|| {
            format!(
                "{}: the new files could not be given to its owner {uid}:{gid}",
                folder.display()
            )
        })?;
        kept.push((root, uid, gid));
    }
    Ok(kept)
}

/// Give `path` to `uid:gid` through `own`, so the change is journaled and `undo` puts it back.
fn hand_over(path: &Path, uid: u32, gid: u32) -> Result<()> {
    crate::ownership::own(&crate::ownership::ReownSettings {
        paths: vec![path.to_path_buf()],
        target: crate::ownership::Target { uid, gid },
        allow_hardlinks: false,
        dry_run: false,
        progress: false,
        wait: crate::ownership::LockWait::Wait,
    })
    .map(drop)
}

/// The nearest folder holding `folder` (itself included) that has an ownership journal and
/// belongs to `owner`.
fn journaled_ancestor(folder: &Path, owner: (u32, u32)) -> Option<PathBuf> {
    let absolute = std::path::absolute(folder).ok()?;
    absolute
        .ancestors()
        .take_while(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| (m.uid(), m.gid()) == owner))
        .find(|dir| crate::ownership::journal_for(dir).is_ok())
        .map(|dir| {
            // Keep the caller's spelling where the journaled folder is the one it named.
            if dir == absolute {
                folder.to_path_buf()
            } else {
                dir.to_path_buf()
            }
        })
}

fn run_renew(args: &RenewArgs, printer: &Printer) -> Result<Outcome> {
    let renewal = renew::plan(&config::certs::renew_settings(args)?)?;
    let generated = &renewal.generated;
    for warning in &generated.report.warnings {
        printer.warn(warning);
    }
    generated.plan.preflight()?;
    if args.dry_run {
        let steps = generated.plan.steps();
        if args.json {
            printer.json(&serde_json::json!({
                "dry_run": true,
                "steps": steps,
                "previous": renewal.previous,
                "replaced": renewal.replaced,
            }))?;
        } else {
            printer.plan_steps(&steps, true)?;
        }
        return Ok(Outcome::Success);
    }
    generated.plan.apply()?;
    restore_modes(&renewal.replaced, printer)?;
    let kept = keep_folder_owners(&generated.report.files, printer)?;
    keep_file_owners(&renewal.replaced, printer)?;
    let report = &generated.report;
    if args.json {
        printer.json(&serde_json::json!({
            "renewed": report.server,
            "previous": renewal.previous,
            "names": report.names,
            "key_type": report.key_type,
            "ca": report.ca,
            "replaced": renewal.replaced,
        }))?;
        return Ok(Outcome::Success);
    }
    let names = print_written(report, &kept, printer)?;
    printer.result(&format!(
        "renewed the server certificate for {names} ({}): valid until {} (was {}), sha256 {}; signed by the same CA, so supernodes need nothing new",
        report.key_type, report.server.not_after, renewal.previous.not_after, report.server.sha256
    ))?;
    printer.info("next: restart the superlink so that it loads the new certificate (for a compose deployment: `docker compose restart superlink` in its folder)")?;
    Ok(Outcome::Success)
}

/// Each renewed file gets the mode of the file it replaced (a key never readable by others).
fn restore_modes(replaced: &[ReplacedFile], printer: &Printer) -> Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, fchmod};
    for file in replaced {
        let (mode, tightened) = renew::kept_mode(&file.path, file.mode);
        if tightened {
            printer.warn(&format!(
                "{}: was readable by every user (mode {:04o}); the renewed key is {mode:04o}",
                file.path.display(),
                file.mode
            ));
        }
        // The file was just renamed into place by us; opened without following a link, so
        // a link swapped in since is refused rather than followed.
        let fd = open(
            &file.path,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("{}: cannot open to set its mode", file.path.display()))?;
        fchmod(&fd, Mode::from_bits_truncate(mode))
            .with_context(|| format!("{}: cannot set mode {mode:04o}", file.path.display()))?;
    }
    Ok(())
}

/// A replaced file whose owner was not its folder's (so the folder hand-over did not
/// cover it) is given back to its own previous owner, journaled like `own`.
fn keep_file_owners(replaced: &[ReplacedFile], printer: &Printer) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    for file in replaced {
        let Ok(meta) = std::fs::symlink_metadata(&file.path) else {
            continue;
        };
        if (meta.uid(), meta.gid()) == (file.uid, file.gid) {
            continue;
        }
        if me != 0 {
            let shown = file.path.to_string_lossy();
            printer.warn(&format!(
                "{}: belonged to {}:{}, but the renewed file is yours; run `{}`",
                file.path.display(),
                file.uid,
                file.gid,
                hints::own_command(file.uid, file.gid, [shown.as_ref()]).unwrap_or_default()
            ));
            continue;
        }
        hand_over(&file.path, file.uid, file.gid).with_context(|| {
            format!(
                "{}: the renewed file could not be given to its owner {}:{}",
                file.path.display(),
                file.uid,
                file.gid
            )
        })?;
    }
    Ok(())
}

/// The files written and the folders given back to their owner; returns the certificate's
/// names as one line.
fn print_written(
    report: &generate::GenerateReport,
    kept: &[(PathBuf, u32, u32)],
    printer: &Printer,
) -> Result<String> {
    for file in &report.files {
        printer.info(&format!("wrote {}", file.display()))?;
    }
    for (folder, uid, gid) in kept {
        printer.info(&format!(
            "ownership: the new files in {} belong to its owner {uid}:{gid} (journaled; `{}` puts it back)",
            folder.display(),
            hints::undo(&shell_word(folder))
        ))?;
    }
    Ok(report
        .names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", "))
}

fn run_generate(args: &GenerateArgs, printer: &Printer) -> Result<Outcome> {
    let settings = config::certs::generate_settings(args)?;
    let layout = Layout::new(&settings.dir, settings.layout);
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
    let kept = keep_folder_owners(&report.files, printer)?;
    if args.json {
        printer.json(report)?;
        return Ok(Outcome::Success);
    }
    let names = print_written(report, &kept, printer)?;
    printer.result(&format!(
        "server certificate for {names} ({}), valid until {}, sha256 {}",
        report.key_type, report.server.not_after, report.server.sha256
    ))?;
    if settings.layout == LayoutKind::Split && !report.ca_reused {
        printer.info(&format!(
            "keep {} private: it signs certificates and belongs in no container",
            layout.ca_key().display()
        ))?;
    }
    // As root into a fresh folder, the key is root's 0600: the container cannot read it
    // until `own` hands the folder over, so say so.
    let key_owner = std::fs::metadata(layout.server_key()).map(|m| m.uid());
    if nix::unistd::geteuid().is_root() && key_owner.is_ok_and(|uid| uid != crate::FLOWER_UID) {
        let folder = layout.superlink_dir();
        printer.info(&format!(
            "next: the superlink runs as {}:{} and cannot read {} yet; run `{}`",
            crate::FLOWER_UID,
            crate::FLOWER_GID,
            layout.server_key().display(),
            hints::own_command(
                crate::FLOWER_UID,
                crate::FLOWER_GID,
                [folder.to_string_lossy().as_ref()]
            )
            .unwrap_or_default()
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

fn run_verify(args: &VerifyArgs, printer: &Printer) -> Result<Outcome> {
    let settings = config::certs::verify_settings(args)?;
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
        let key = if report.key.is_some() {
            "matches its key, "
        } else {
            ""
        };
        printer.result(&format!(
            "{} {} chains to {}, {key}and covers {names}",
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
