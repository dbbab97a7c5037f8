//! `flowerbed check`

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::check::{self, ContainerSpec};
use crate::cli::check::{CheckArgs, Format};
use crate::config;
use crate::deploy::Deployment;
use crate::error::Outcome;
use crate::hints;
use crate::output::Printer;

use super::daemon_id_shift;

/// Compose's own default file names, in the order it looks for them.
const COMPOSE_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// What `check` reads: the containers, whether they come from a `docker run` script,
/// flowerbed's model when there is one, and notes on how it was read.
struct Input {
    specs: Vec<ContainerSpec>,
    from_script: bool,
    deployment: Option<Deployment>,
    notes: Vec<String>,
}

fn compose_input(files: &[PathBuf]) -> Result<Input> {
    let (specs, note) = check::compose::read(files)?;
    Ok(Input {
        specs,
        from_script: false,
        deployment: None,
        notes: note.into_iter().collect(),
    })
}

fn script_input(file: &Path, workdir: Option<&Path>) -> Result<Input> {
    Ok(Input {
        specs: check::script::read(file, workdir)?,
        from_script: true,
        deployment: None,
        notes: Vec::new(),
    })
}

/// The containers of a deployment folder.
fn folder_input(dir: &Path) -> Result<Input> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    // Anything at these names is read (and a FIFO or device refused by the bounded reader),
    // not skipped as if it were missing.
    let present = |path: &Path| path.symlink_metadata().is_ok();
    // A folder made by quickstart/render: rebuild the very model the renderers used.
    if present(&dir.join(crate::deploy::SETTINGS_FILE)) {
        let settings = crate::deploy::load_settings(dir)?;
        let mut deployment = crate::deploy::build(&settings)?;
        // Rendered with --image-digest: the same pins, so the app Dockerfiles' pinned
        // `FROM` lines are what check expects too.
        if settings.image_digest {
            crate::docker::pin_images(&mut deployment);
        }
        return Ok(Input {
            specs: check::model::specs(&deployment),
            from_script: false,
            deployment: Some(deployment),
            notes: Vec::new(),
        });
    }
    if let Some(compose) = COMPOSE_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|f| present(f))
    {
        return compose_input(&[compose]);
    }
    let script = dir.join("run.sh");
    if present(&script) {
        return script_input(&script, None);
    }
    bail!(
        "{}: no deployment found (no compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml or run.sh; make one with `{}`)",
        dir.display(),
        hints::quickstart(&dir.display().to_string())
    )
}

/// What the app rules read: the project and Dockerfiles as rendered now, the wheel
/// folder's distributions, and which app images the Docker daemon has (when one answers).
fn app_facts(deployment: &Deployment) -> Option<check::app::AppFacts> {
    let images = deployment.app.as_ref()?;
    let project =
        crate::deploy::app::read(&images.project, deployment.profile).map_err(|err| format!("{err:#}"));
    let wheels_dir = deployment.dir.join(crate::deploy::app::WHEELS_DIR);
    let wheels = wheels_dir.is_dir().then(|| {
        std::fs::read_dir(&wheels_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| {
                        crate::deploy::app::wheel_distribution(&entry.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let expected_files = match &project {
        Ok(project) => crate::render::dockerfile::app_files(deployment, project, wheels.is_some())
            .map(|files| {
                files
                    .into_iter()
                    .map(|(path, contents, _)| (path, contents))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let names: Vec<String> = images.images.iter().map(|image| image.image.clone()).collect();
    let images_built = crate::docker::daemon_configured()
        .then(|| {
            crate::docker::block_on(async {
                let daemon = crate::docker::Daemon::connect().await?;
                let mut built = Vec::new();
                for name in names {
                    let present = daemon.has_image(&name).await;
                    built.push((name, present));
                }
                anyhow::Ok(built)
            })
            .ok()
            .and_then(Result::ok)
        })
        .flatten();
    Some(check::app::AppFacts {
        project,
        expected_files,
        wheels,
        images_built,
    })
}

/// `check --list-rules`: the rule table in the chosen format.
fn list_rules(args: &CheckArgs, printer: &Printer) -> Result<Outcome> {
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Json | Format::Sarif => printer.json(&check::rules::RULES)?,
        Format::Markdown => {
            let text = check::rules::table::markdown();
            printer.result(text.trim_end())?;
        }
        Format::Text => {
            for rule in check::rules::RULES {
                let label = printer.severity_label(rule.severity);
                printer.result(&format!("{:<32}{label:<8} {}", rule.id, rule.summary))?;
            }
        }
    }
    Ok(Outcome::Success)
}

pub fn run(args: &CheckArgs, printer: &Printer) -> Result<Outcome> {
    if args.list_rules {
        return list_rules(args, printer);
    }
    if let Some(targets) = &args.live {
        return run_live(args, targets, printer);
    }
    let (source, input) = if !args.compose.is_empty() {
        let names: Vec<String> = args.compose.iter().map(|f| f.display().to_string()).collect();
        (names.join(" + "), compose_input(&args.compose)?)
    } else if let Some(file) = &args.run_script {
        if let Some(workdir) = args.workdir.as_deref().filter(|dir| !dir.is_dir()) {
            bail!("{} {}: not a directory", hints::flag::WORKDIR, workdir.display());
        }
        (
            file.display().to_string(),
            script_input(file, args.workdir.as_deref())?,
        )
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        (dir.display().to_string(), folder_input(&dir)?)
    };
    let settings = config::check::settings(args, input.from_script)?;
    let app_facts = input.deployment.as_ref().and_then(app_facts);
    let extra = check::Extra {
        deployment: input.deployment.as_ref(),
        live: &[],
        app: app_facts.as_ref(),
    };
    let mut report = check::run(source, &input.specs, extra, &settings);
    report.notes = input.notes;
    print(&report, args, printer)?;
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

pub fn print(report: &check::CheckReport, args: &CheckArgs, printer: &Printer) -> std::io::Result<()> {
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Text | Format::Markdown => check::report::print_text(report, printer),
        Format::Json => printer.json(report),
        Format::Sarif => printer.json(&check::report::sarif(report)),
    }
}

fn run_live(args: &CheckArgs, targets: &[String], printer: &Printer) -> Result<Outcome> {
    let (containers, facts) = crate::docker::block_on(async {
        let daemon = crate::docker::Daemon::connect().await?;
        let facts = daemon.facts().await?;
        let containers = daemon.containers(targets, args.log_lines).await?;
        anyhow::Ok((containers, facts))
    })??;
    if containers.is_empty() {
        bail!(
            "no Flower containers found on the Docker daemon at {} (name them: {})",
            crate::docker::docker_host(),
            hints::check_live_name()
        );
    }
    let mut settings = config::check::settings(args, false)?;
    if args.id_shift.is_none() {
        if let Some(shift) = daemon_id_shift(&facts) {
            settings.id_shift = shift;
        }
    }
    let specs: Vec<ContainerSpec> = containers.iter().map(check::live::to_spec).collect();
    let extra = check::Extra {
        deployment: None,
        live: &containers,
        app: None,
    };
    let report = check::run(
        format!("live containers on {}", crate::docker::docker_host()),
        &specs,
        extra,
        &settings,
    );
    print(&report, args, printer)?;
    Ok(if report.ok {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}
