//! The write plan: a set of directories and files created together, checked against the
//! disk first, written under temporary names with their final modes, synced and renamed
//! into place, and rolled back as a whole if any step fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::MODE_DIR_PUBLIC;
use super::create::{
    Undo, create_dir_all_recorded, create_dir_exact, create_file_exact, sibling_name, sync_all, sync_dir,
    write_temp,
};
use crate::error::Error;

/// One file a plan will write.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
    /// Derived wholly from other files flowerbed keeps (a list it maintains): replaced
    /// without `force`, as nothing of the user's is in it.
    pub derived: bool,
}

/// What a plan will do to one path, for `--dry-run` and `--json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlanStep {
    pub action: &'static str,
    pub path: PathBuf,
    pub mode: String,
}

/// A set of directories and files to create together.
#[derive(Debug, Default)]
pub struct WritePlan {
    dirs: Vec<(PathBuf, u32)>,
    files: Vec<PlannedFile>,
    force: bool,
    /// [`WritePlan::new_dir`]: the folder created as a whole, and its mode.
    new_dir: Option<(PathBuf, u32)>,
}

impl WritePlan {
    /// `force` allows replacing files that already exist.
    pub fn new(force: bool) -> Self {
        Self {
            force,
            ..Self::default()
        }
    }

    /// A plan that creates the folder `dir` (missing, or empty) as a whole: everything the
    /// plan holds must lie below it, is written into a staging folder beside it, and that
    /// folder is renamed onto `dir` as the last step.
    pub fn new_dir(dir: impl Into<PathBuf>, mode: u32) -> Self {
        Self {
            new_dir: Some((dir.into(), mode)),
            ..Self::default()
        }
    }

    /// Ensure `path` is a directory, creating it with `mode` if missing.
    pub fn dir(&mut self, path: impl Into<PathBuf>, mode: u32) -> &mut Self {
        let path = path.into();
        if !self.dirs.iter().any(|(p, _)| *p == path) {
            self.dirs.push((path, mode));
        }
        self
    }

    /// Write `contents` to `path` with `mode`.
    pub fn file(&mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.files.push(PlannedFile {
            path: path.into(),
            contents: contents.into(),
            mode,
            derived: false,
        });
        self
    }

    /// Write `contents` to `path` with `mode`, replacing it even without `force`: a file
    /// flowerbed derives from others it keeps (the known supernode keys, say).
    pub fn derived(
        &mut self,
        path: impl Into<PathBuf>,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> &mut Self {
        self.files.push(PlannedFile {
            path: path.into(),
            contents: contents.into(),
            mode,
            derived: true,
        });
        self
    }

    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// The steps in order, for a dry run: what would be created or replaced.
    pub fn steps(&self) -> Vec<PlanStep> {
        let mut steps = Vec::new();
        if let Some((dir, mode)) = &self.new_dir {
            steps.push(PlanStep {
                action: "mkdir",
                path: dir.clone(),
                mode: format!("{mode:04o}"),
            });
        }
        for (dir, mode) in &self.dirs {
            // Below a new folder nothing exists yet.
            if self.new_dir.is_some() || !dir.is_dir() {
                steps.push(PlanStep {
                    action: "mkdir",
                    path: dir.clone(),
                    mode: format!("{mode:04o}"),
                });
            }
        }
        for file in &self.files {
            let action = if self.new_dir.is_none() && file.path.symlink_metadata().is_ok() {
                "replace"
            } else {
                "write"
            };
            steps.push(PlanStep {
                action,
                path: file.path.clone(),
                mode: format!("{:04o}", file.mode),
            });
        }
        steps
    }

    /// Check the plan against the disk without changing anything: no symlinks where we
    /// would write, directories are directories, and existing files only with `force`.
    pub fn preflight(&self) -> Result<()> {
        if let Some((dir, _)) = &self.new_dir {
            return self.preflight_new_dir(dir);
        }
        for (dir, _) in &self.dirs {
            match dir.symlink_metadata() {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::SymlinkRefused { path: dir.clone() }.into());
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(Error::NotADirectory { path: dir.clone() }.into());
                }
                Ok(_) => check_writable_dir(dir)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    let parent = existing_ancestor(dir)?;
                    check_writable_dir(&parent)?;
                }
                Err(err) => return Err(anyhow::Error::new(err).context(format!("{}", dir.display()))),
            }
        }
        for file in &self.files {
            match file.path.symlink_metadata() {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::SymlinkRefused {
                        path: file.path.clone(),
                    }
                    .into());
                }
                Ok(meta) if meta.is_dir() => {
                    return Err(anyhow::anyhow!(
                        "{}: is a directory, expected a file",
                        file.path.display()
                    ));
                }
                Ok(_) if !self.force && !file.derived => {
                    return Err(Error::AlreadyExists {
                        path: file.path.clone(),
                    }
                    .into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The new folder is missing or an empty folder, its parent a writable folder, and
    /// everything planned lies below it.
    fn preflight_new_dir(&self, dir: &Path) -> Result<()> {
        let below = |path: &Path| path.starts_with(dir) && path != dir;
        if let Some(path) = self
            .dirs
            .iter()
            .map(|(path, _)| path)
            .chain(self.files.iter().map(|file| &file.path))
            .find(|path| !below(path))
        {
            return Err(anyhow::anyhow!(
                "{}: outside the new folder {}",
                path.display(),
                dir.display()
            ));
        }
        match dir.symlink_metadata() {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(anyhow::Error::new(err).context(format!("{}", dir.display()))),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::SymlinkRefused {
                    path: dir.to_path_buf(),
                }
                .into());
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::NotADirectory {
                    path: dir.to_path_buf(),
                }
                .into());
            }
            Ok(_) => {
                let empty = fs::read_dir(dir)
                    .with_context(|| format!("{}: cannot read", dir.display()))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(anyhow::anyhow!(
                        "{}: already exists and is not empty; it must be a new folder",
                        dir.display()
                    ));
                }
            }
        }
        let parent = dir.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(anyhow::anyhow!(
                "{}: no such folder (create it first)",
                parent.display()
            ));
        }
        check_writable_dir(parent)
    }

    /// Write everything into a staging folder beside the new folder, then rename it into
    /// place; on any failure the staging folder goes and nothing else changed.
    fn apply_new_dir(&self, dir: &Path, mode: u32) -> Result<Vec<PathBuf>> {
        let parent = dir.parent().unwrap_or(Path::new("/"));
        let staging = tempfile::Builder::new()
            .prefix(".flowerbed-new-")
            .tempdir_in(parent)
            .with_context(|| format!("{}: cannot create a folder here", parent.display()))?;
        let staged = |path: &Path| staging.path().join(path.strip_prefix(dir).unwrap_or(path));
        for (path, dir_mode) in &self.dirs {
            create_dir_exact(&staged(path), *dir_mode)?;
        }
        for file in &self.files {
            let path = staged(&file.path);
            if let Some(parent) = path.parent() {
                if !parent.is_dir() {
                    create_dir_exact(parent, MODE_DIR_PUBLIC)?;
                }
            }
            create_file_exact(&path, &file.contents, file.mode)
                .with_context(|| format!("{}: cannot write", file.path.display()))?;
        }
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(mode))
            .with_context(|| format!("{}: cannot set mode", dir.display()))?;
        // The last step: an empty folder is replaced, a missing one appears, all at once.
        fs::rename(staging.path(), dir)
            .with_context(|| format!("{}: cannot move the new folder into place", dir.display()))?;
        let _ = staging.keep();
        sync_dir(parent);
        Ok(self.files.iter().map(|file| file.path.clone()).collect())
    }

    /// Apply the plan: all files land, or none do and the disk is as before.
    pub fn apply(&self) -> Result<Vec<PathBuf>> {
        self.preflight()?;
        if let Some((dir, mode)) = &self.new_dir {
            return self.apply_new_dir(dir, *mode);
        }
        let mut undo = Undo::default();
        match self.apply_inner(&mut undo) {
            Ok(paths) => {
                undo.commit();
                Ok(paths)
            }
            Err(err) => {
                undo.rollback();
                Err(err)
            }
        }
    }

    fn apply_inner(&self, undo: &mut Undo) -> Result<Vec<PathBuf>> {
        for (dir, mode) in &self.dirs {
            create_dir_all_recorded(dir, *mode, undo)?;
        }
        // Stage every file first, so a failure (disk full, permission) leaves no target touched.
        let mut staged = Vec::with_capacity(self.files.len());
        let mut handles = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let (temp, handle) = write_temp(&file.path, &file.contents, file.mode)?;
            undo.temps.push(temp.clone());
            staged.push((temp, file.path.clone()));
            handles.push((handle, &file.path));
        }
        sync_all(&handles)?;
        for (temp, target) in &staged {
            if target.symlink_metadata().is_ok() {
                let backup = sibling_name(target, ".flowerbed-old");
                fs::hard_link(target, &backup).with_context(|| {
                    format!("{}: cannot keep a backup before replacing it", target.display())
                })?;
                undo.backups.push((backup, target.clone()));
            } else {
                undo.created_files.push(target.clone());
            }
            fs::rename(temp, target)
                .with_context(|| format!("{}: cannot move into place", target.display()))?;
        }
        if let Some((_, target)) = staged.last() {
            if let Some(parent) = target.parent() {
                sync_dir(parent);
            }
        }
        Ok(staged.into_iter().map(|(_, target)| target).collect())
    }
}

fn check_writable_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|errno| anyhow::anyhow!("{}: not writable ({})", dir.display(), errno.desc()))
}

fn existing_ancestor(path: &Path) -> Result<PathBuf> {
    let mut current = path;
    loop {
        match current.parent() {
            Some(parent) if parent.as_os_str().is_empty() => return Ok(PathBuf::from(".")),
            Some(parent) => match parent.symlink_metadata() {
                Ok(meta) if meta.is_dir() => return Ok(parent.to_path_buf()),
                Ok(meta) if meta.file_type().is_symlink() && parent.is_dir() => {
                    return Ok(parent.to_path_buf());
                }
                Ok(_) => {
                    return Err(Error::NotADirectory {
                        path: parent.to_path_buf(),
                    }
                    .into());
                }
                Err(_) => current = parent,
            },
            None => return Ok(PathBuf::from("/")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::{MODE_DIR_PRIVATE, MODE_PRIVATE, MODE_PUBLIC};
    use std::ffi::OsString;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_private_files_with_exact_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let mut plan = WritePlan::new(false);
        plan.dir(tmp.path().join("a/b"), MODE_DIR_PRIVATE).file(
            tmp.path().join("a/b/key"),
            "secret",
            MODE_PRIVATE,
        );
        plan.apply().unwrap();
        let meta = fs::metadata(tmp.path().join("a/b/key")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(
            fs::metadata(tmp.path().join("a/b")).unwrap().mode() & 0o7777,
            0o700
        );
        assert_eq!(fs::read(tmp.path().join("a/b/key")).unwrap(), b"secret");
    }

    #[test]
    fn refuses_existing_without_force_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), "old").unwrap();
        let mut plan = WritePlan::new(false);
        plan.file(tmp.path().join("new"), "x", MODE_PUBLIC)
            .file(tmp.path().join("f"), "new", MODE_PUBLIC);
        let err = plan.apply().unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"old");
        assert!(!tmp.path().join("new").exists());
    }

    #[test]
    fn rolls_back_when_a_write_fails() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), "old").unwrap();
        let mut plan = WritePlan::new(true);
        plan.dir(tmp.path().join("sub"), MODE_DIR_PUBLIC)
            .file(tmp.path().join("sub/a"), "a", MODE_PUBLIC)
            .file(tmp.path().join("f"), "new", MODE_PUBLIC)
            // A file inside a path that is not a directory cannot be staged.
            .file(tmp.path().join("f/impossible"), "x", MODE_PUBLIC);
        assert!(plan.apply().is_err());
        assert_eq!(fs::read(tmp.path().join("f")).unwrap(), b"old");
        assert!(!tmp.path().join("sub").exists());
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![OsString::from("f")]);
    }

    #[test]
    fn a_new_folder_appears_whole_and_its_steps_are_what_is_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new");
        let mut plan = WritePlan::new_dir(&dir, MODE_DIR_PUBLIC);
        plan.file(dir.join("sub/key"), "k", MODE_PRIVATE)
            .file(dir.join("run.sh"), "#!/bin/sh\n", 0o755);
        plan.dir(dir.join("sub"), MODE_DIR_PRIVATE);
        let steps: Vec<_> = plan
            .steps()
            .iter()
            .map(|step| format!("{} {} {}", step.action, step.path.display(), step.mode))
            .collect();
        let shown = |rel: &str| dir.join(rel).display().to_string();
        assert_eq!(
            steps,
            [
                format!("mkdir {} 0755", dir.display()),
                format!("mkdir {} 0700", shown("sub")),
                format!("write {} 0600", shown("sub/key")),
                format!("write {} 0755", shown("run.sh")),
            ]
        );
        plan.apply().unwrap();
        let mode = |rel: &str| fs::metadata(dir.join(rel)).unwrap().mode() & 0o7777;
        assert_eq!(
            (mode(""), mode("sub"), mode("sub/key"), mode("run.sh")),
            (0o755, 0o700, 0o600, 0o755)
        );
        // Only the new folder appeared beside it: no staging leftovers.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        // A folder that is not empty is refused, unchanged.
        let err = plan.apply().unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(fs::read(dir.join("sub/key")).unwrap(), b"k");
        let mut outside = WritePlan::new_dir(tmp.path().join("other"), MODE_DIR_PUBLIC);
        outside.file(tmp.path().join("escape"), "x", MODE_PUBLIC);
        assert!(outside.apply().unwrap_err().to_string().contains("outside"));
        assert!(!tmp.path().join("other").exists() && !tmp.path().join("escape").exists());
    }

    #[test]
    fn refuses_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("link")).unwrap();
        let mut plan = WritePlan::new(false);
        plan.dir(tmp.path().join("link"), MODE_DIR_PUBLIC)
            .file(tmp.path().join("link/f"), "x", MODE_PUBLIC);
        let err = plan.apply().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
