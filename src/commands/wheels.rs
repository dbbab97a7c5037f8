//! `flowerbed wheels DIR`: the app's dependencies as wheels in `DIR/app-wheels/`, for the
//! images' Python and platform, then the Dockerfiles rewritten to install from there only.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, anyhow};

use crate::cli::deploy::WheelsArgs;
use crate::config;
use crate::deploy::{self, app};
use crate::error::{Error, Outcome};
use crate::fsutil::WritePlan;
use crate::hints;
use crate::output::Printer;
use crate::render::dockerfile;

/// What the wheels are for.
struct Target {
    python_version: String,
    platforms: Vec<String>,
}

/// The oldest glibc manylinux wheels name (`manylinux_2_17` is `manylinux2014`).
const OLDEST_GLIBC_MINOR: u32 = 17;

/// The manylinux tags an image with glibc `2.MINOR` on `arch` accepts, newest first, with
/// the legacy alias of 2.17.
fn manylinux_tags(arch: &str, glibc_minor: u32) -> Vec<String> {
    let mut tags: Vec<String> = (OLDEST_GLIBC_MINOR..=glibc_minor.max(OLDEST_GLIBC_MINOR))
        .rev()
        .map(|minor| format!("manylinux_2_{minor}_{arch}"))
        .collect();
    tags.push(format!("manylinux2014_{arch}"));
    tags
}

/// Ask the image itself: its Python, its architecture, its glibc.
fn ask_image(image: &str) -> Result<Target> {
    let script = "import platform, sys, sysconfig\n\
                  print('%d.%d' % sys.version_info[:2])\n\
                  print(sysconfig.get_platform())\n\
                  print(platform.libc_ver()[1])";
    let output = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python",
            image,
            "-c",
            script,
        ])
        .output()
        .with_context(|| {
            format!(
                "docker: cannot run it to ask {image} for its Python (or pass {})",
                hints::python_of_image()
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(anyhow!(
            "{image}: cannot ask the image for its Python ({}); pass {}",
            stderr.lines().last().unwrap_or("docker run failed").trim(),
            hints::python_of_image()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let (Some(version), Some(platform), glibc) = (lines.next(), lines.next(), lines.next()) else {
        return Err(anyhow!("{image}: its Python printed no version and platform"));
    };
    let arch = platform
        .strip_prefix("linux-")
        .ok_or_else(|| anyhow!("{image}: platform {platform:?} is not Linux"))?;
    let glibc_minor = glibc
        .and_then(|text| text.trim().strip_prefix("2."))
        .and_then(|minor| minor.parse().ok())
        .unwrap_or(OLDEST_GLIBC_MINOR);
    Ok(Target {
        python_version: version.trim().to_string(),
        platforms: manylinux_tags(arch, glibc_minor),
    })
}

/// `pip download` into `dest`: binary wheels only (what a build without network and
/// without compilers can install), for the target's Python and platforms.
fn download(project: &app::AppProject, target: &Target, dest: &Path) -> Result<()> {
    let mut command = Command::new("python3");
    command.args([
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        &target.python_version,
    ]);
    for platform in &target.platforms {
        command.args(["--platform", platform]);
    }
    command.arg("--dest").arg(dest);
    command.args(project.dependencies.iter().map(|d| d.requirement.as_str()));
    let output = command
        .output()
        .context("python3: cannot run `python3 -m pip` on this host (pip downloads the wheels)")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|line| line.contains("ERROR"))
            .or_else(|| stderr.lines().last())
            .unwrap_or("pip failed")
            .trim()
            .to_string();
        return Err(anyhow!(
            "{}: pip download failed for Python {}: {reason}",
            project.pyproject().display(),
            target.python_version
        ));
    }
    Ok(())
}

pub fn run(args: &WheelsArgs, printer: &Printer) -> Result<Outcome> {
    let request = config::wheels_request(args)?;
    let deployment = deploy::build(&request.settings)?;
    let images = deployment.app.as_ref().expect("wheels_request requires an app");
    let project = app::read(&images.project, deployment.profile)?;
    let dir = deployment.dir.clone();
    // Refuses something that is not a folder at the wheel folder's name.
    let replacing = dockerfile::wheels_present(&dir)?;
    let base = images
        .images
        .first()
        .map(|image| image.base.clone())
        .ok_or_else(|| Error::Usage(format!("{}: no service runs app code here", dir.display())))?;
    let mut target = if let Some(version) = &request.python_version {
        Target {
            python_version: version.clone(),
            platforms: manylinux_tags(std::env::consts::ARCH, OLDEST_GLIBC_MINOR),
        }
    } else {
        ask_image(&base)?
    };
    if !request.platforms.is_empty() {
        target.platforms.clone_from(&request.platforms);
    }

    // Download beside the folder, then move it into place whole.
    let staging = tempfile::Builder::new()
        .prefix(".app-wheels.")
        .tempdir_in(&dir)
        .with_context(|| format!("{}: cannot make a staging folder", dir.display()))?;
    download(&project, &target, staging.path())?;
    let count = std::fs::read_dir(staging.path())?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".whl"))
        .count();

    // The Dockerfiles that install from the folder land with it.
    let mut plan = WritePlan::new(true);
    for (path, contents, mode) in dockerfile::app_files(&deployment, &project, true)? {
        if std::fs::read(&path).ok().as_deref() != Some(contents.as_bytes()) {
            plan.file(path, contents, mode);
        }
    }
    plan.preflight()?;
    let dest = dir.join(app::WHEELS_DIR);
    let staged = staging.keep();
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    if replacing {
        let old = tempfile::Builder::new()
            .prefix(".app-wheels.old.")
            .tempdir_in(&dir)?
            .keep();
        std::fs::rename(&dest, old.join("wheels"))?;
        std::fs::rename(&staged, &dest)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&staged, &dest)
            .with_context(|| format!("{}: cannot move the wheels into place", dest.display()))?;
    }
    printer.info(&format!(
        "{}: {count} wheel{} for Python {} ({}){}",
        dest.display(),
        if count == 1 { "" } else { "s" },
        target.python_version,
        target.platforms.first().map_or("any", String::as_str),
        if replacing {
            ", replacing the old folder"
        } else {
            ""
        }
    ))?;
    for path in plan.apply()? {
        printer.info(&format!(
            "wrote {} (installs from {}/ only)",
            path.display(),
            app::WHEELS_DIR
        ))?;
    }
    for line in dockerfile::command_lines(&deployment)? {
        printer.info(&format!("next: {line}"))?;
    }
    Ok(Outcome::Success)
}
