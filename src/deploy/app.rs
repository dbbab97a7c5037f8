//! The user's own Flower app: what its `pyproject.toml` asks to be installed (read with a
//! TOML parser, each dependency with a PEP 508 parser), and the refusals that keep the
//! image's Flower the release's.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Result;
use pep508_rs::pep440_rs::Version;
use pep508_rs::{PackageName, Requirement, VersionOrUrl};

use crate::error::Error;
use crate::fsutil;

use super::profile::Profile;

/// The project file of a Flower app.
pub const PYPROJECT: &str = "pyproject.toml";
/// Folder in the deployment folder with the app's dependencies as wheels (`flowerbed wheels`).
pub const WHEELS_DIR: &str = "app-wheels";
/// Folder in the deployment folder with one Dockerfile per app image.
pub const DOCKERFILES_DIR: &str = "app-images";
/// Keeps the deployment folder (private keys, state) out of the build context: only the
/// wheel folder is sent to the builder.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// A Flower app's project, as far as its images need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProject {
    /// The project folder (absolute).
    pub dir: PathBuf,
    /// `[project].name`.
    pub name: String,
    /// `[project].dependencies` without `flwr`, in the file's order.
    pub dependencies: Vec<Dependency>,
}

/// One requirement of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The requirement as pip takes it (PEP 508, markers kept: pip evaluates them).
    pub requirement: String,
    /// The distribution's normalized name (`scikit-learn`), as wheel file names carry it
    /// with `_` for `-`.
    pub name: String,
}

impl AppProject {
    pub fn pyproject(&self) -> PathBuf {
        self.dir.join(PYPROJECT)
    }
}

fn refuse(message: String) -> anyhow::Error {
    Error::InvalidFlag {
        flag: crate::hints::flag::APP,
        message,
    }
    .into()
}

/// The first line of a parser's message (several lines point at the column with carets).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

/// Read the app project in `dir` for a deployment of `profile`'s release. Refuses a folder
/// without a readable, valid pyproject.toml, a project that is not a Flower app, and a
/// `flwr` requirement the release does not satisfy.
pub fn read(dir: &Path, profile: &Profile) -> Result<AppProject> {
    match dir.metadata() {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(refuse(format!(
                "{}: not a folder (give the app's project folder, the one with {PYPROJECT})",
                dir.display()
            )));
        }
        Err(err) => return Err(refuse(format!("{}: {err}", dir.display()))),
    }
    let path = dir.join(PYPROJECT);
    let text = match fsutil::read_regular_text(&path, fsutil::TEXT_LIMIT, fsutil::Links::Follow) {
        Ok(text) => text,
        Err(err) if err.is_not_found() => {
            return Err(refuse(format!(
                "{}: missing (a Flower app's project folder has one; `flwr new` makes it)",
                path.display()
            )));
        }
        Err(err) => return Err(refuse(err.to_string())),
    };
    parse(dir, &text, profile)
}

/// [`read`] over the file's text.
pub fn parse(dir: &Path, text: &str, profile: &Profile) -> Result<AppProject> {
    let path = dir.join(PYPROJECT);
    let shown = path.display();
    let document = toml_edit::DocumentMut::from_str(text).map_err(|err| {
        let line = err.span().map_or(0, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        });
        refuse(format!(
            "{shown}: not valid TOML (line {line}: {})",
            first_line(err.message())
        ))
    })?;
    if document
        .get("tool")
        .and_then(|tool| tool.get("flwr"))
        .and_then(|flwr| flwr.get("app"))
        .is_none_or(|app| !app.is_table_like())
    {
        return Err(refuse(format!(
            "{shown}: not a Flower app (no [tool.flwr.app] table)"
        )));
    }
    let project = document
        .get("project")
        .filter(|project| project.is_table_like())
        .ok_or_else(|| refuse(format!("{shown}: no [project] table")))?;
    let name = project
        .get("name")
        .and_then(|name| name.as_str())
        .ok_or_else(|| refuse(format!("{shown}: [project].name is missing or not a string")))?
        .to_string();
    let mut dependencies = Vec::new();
    if let Some(listed) = project.get("dependencies") {
        let array = listed.as_array().ok_or_else(|| {
            refuse(format!(
                "{shown}: [project].dependencies is not an array of strings"
            ))
        })?;
        for value in array {
            let text = value.as_str().ok_or_else(|| {
                refuse(format!(
                    "{shown}: [project].dependencies holds a value that is not a string"
                ))
            })?;
            if let Some(dependency) = dependency(&shown.to_string(), text, profile)? {
                dependencies.push(dependency);
            }
        }
    }
    Ok(AppProject {
        dir: dir.to_path_buf(),
        name,
        dependencies,
    })
}

/// One requirement: `None` for `flwr` itself (the image has it), after checking that the
/// release satisfies the app's pin.
fn dependency(shown: &str, text: &str, profile: &Profile) -> Result<Option<Dependency>> {
    let requirement = Requirement::<pep508_rs::VerbatimUrl>::from_str(text).map_err(|err| {
        refuse(format!(
            "{shown}: dependency {text:?} is not a PEP 508 requirement ({})",
            first_line(&err.message.to_string())
        ))
    })?;
    let flwr = PackageName::from_str("flwr").expect("a valid name");
    if requirement.name == flwr {
        let release = Version::from_str(profile.version).expect("profile versions are PEP 440");
        let satisfied = match &requirement.version_or_url {
            None => true,
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.contains(&release),
            Some(VersionOrUrl::Url(_)) => false,
        };
        if !satisfied {
            return Err(refuse(format!(
                "{shown}: the app requires {text:?}, but this deployment runs Flower {} (its images' flwr stays {}); change the app's pin or pass {}",
                profile.version,
                profile.version,
                crate::hints::flag::FLOWER_VERSION
            )));
        }
        return Ok(None);
    }
    Ok(Some(Dependency {
        requirement: requirement.to_string(),
        name: requirement.name.to_string(),
    }))
}

/// The distribution name a wheel's file name starts with, normalized as [`Dependency::name`]
/// (`scikit_learn-1.5.0-cp311-...whl` is `scikit-learn`).
pub fn wheel_distribution(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".whl")?;
    let name = stem.split('-').next()?;
    PackageName::from_str(name).ok().map(|name| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newest() -> &'static Profile {
        Profile::newest()
    }

    fn project(dependencies: &str) -> String {
        format!(
            "[project]\nname = \"demo\"\ndependencies = {dependencies}\n\n[tool.flwr.app]\npublisher = \"me\"\n"
        )
    }

    fn parsed(dependencies: &str, profile: &Profile) -> Result<AppProject> {
        parse(Path::new("/srv/app"), &project(dependencies), profile)
    }

    #[test]
    fn flwr_is_dropped_and_the_rest_kept_in_order() {
        let app = parsed(
            r#"["flwr[simulation]>=1.20,<2.0", "Scikit_Learn>=1.5", "torch; sys_platform == 'linux'", "sortedcontainers"]"#,
            newest(),
        )
        .unwrap();
        assert_eq!(app.name, "demo");
        let names: Vec<_> = app.dependencies.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["scikit-learn", "torch", "sortedcontainers"]);
        assert_eq!(app.dependencies[0].requirement, "scikit-learn>=1.5");
        assert!(
            app.dependencies[1]
                .requirement
                .contains("sys_platform == 'linux'")
        );
    }

    #[test]
    fn a_flwr_pin_the_release_does_not_meet_names_both_versions() {
        let seed = Profile::find("1.13.1").unwrap();
        parsed(r#"["flwr==1.13.1"]"#, seed).unwrap();
        parsed(r#"["flwr>=1.13,<1.14"]"#, seed).unwrap();
        parsed(r#"["flwr~=1.13.0"]"#, seed).unwrap();
        let err = parsed(r#"["flwr>=1.20"]"#, seed).unwrap_err().to_string();
        assert!(
            err.starts_with("--app: /srv/app/pyproject.toml: the app requires \"flwr>=1.20\"")
                && err.contains("Flower 1.13.1"),
            "{err}"
        );
        let err = parsed(r#"["flwr @ https://example.org/flwr.whl"]"#, newest())
            .unwrap_err()
            .to_string();
        assert!(err.contains("Flower 1.42.0"), "{err}");
    }

    #[test]
    fn bad_projects_are_one_line_refusals() {
        let dir = Path::new("/srv/app");
        let cases = [
            ("[project\nname = 1", "not valid TOML (line 1:"),
            ("[project]\nname = \"x\"\n", "not a Flower app"),
            ("[tool.flwr.app]\n", "no [project] table"),
            (
                "[project]\nname = \"x\"\ndependencies = \"numpy\"\n[tool.flwr.app]\n",
                "not an array of strings",
            ),
            (
                "[project]\nname = \"x\"\ndependencies = [\"numpy >>= 1\"]\n[tool.flwr.app]\n",
                "is not a PEP 508 requirement",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(dir, text, newest()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{text:?}: {err}");
        }
    }

    #[test]
    fn wheel_file_names_give_normalized_distributions() {
        assert_eq!(
            wheel_distribution("scikit_learn-1.5.0-cp311-cp311-manylinux_2_17_x86_64.whl").as_deref(),
            Some("scikit-learn")
        );
        assert_eq!(
            wheel_distribution("sortedcontainers-2.4.0-py2.py3-none-any.whl").as_deref(),
            Some("sortedcontainers")
        );
        assert_eq!(wheel_distribution("numpy-2.0.tar.gz"), None);
    }
}
