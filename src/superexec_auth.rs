//! The shared secrets superexecs sign their Runtime API requests with
//! (`--superexec-auth-secret-file`, Flower 1.35 and later, process isolation only).
//!
//! One secret per link, so a supernode never holds the secret of the superlink or of
//! another supernode:
//! ```text
//! DIR/superexec-auth/superlink/secret      -> superlink and its ServerApp runner, read-only
//! DIR/superexec-auth/supernode-N/secret    -> supernode-N and its ClientApp runner, read-only
//! ```
//! Flower reads the file as exact raw bytes (`Path.read_bytes()`) and refuses an empty one,
//! so the secret is written without a trailing newline: 64 lowercase hex digits from the
//! operating system's CSPRNG, mode 0600 through the same all-or-nothing [`WritePlan`] as
//! every key. A secret already on disk is kept (both ends of the link read the same file).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::fsutil::{MODE_DIR_PUBLIC, MODE_PRIVATE, WritePlan};

/// Folder holding one sub-folder per link.
pub const SECRET_DIR: &str = "superexec-auth";
/// Where a link's folder appears in the container, relative to the working directory.
pub const SECRET_MOUNT: &str = "superexec-auth";
/// The secret's file name.
pub const SECRET: &str = "secret";
/// Random bytes in a secret (written as twice as many hex digits).
const SECRET_BYTES: usize = 32;

/// The folder of the superlink's link (`None`) or of supernode `index`'s (from 1).
pub fn secret_dir(root: &Path, supernode: Option<u32>) -> PathBuf {
    let link = supernode.map_or_else(|| "superlink".to_string(), |index| format!("supernode-{index}"));
    root.join(SECRET_DIR).join(link)
}

/// A fresh secret: exactly the bytes Flower will use, no newline.
pub fn generate() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| anyhow!("no randomness for a superexec secret ({err})"))?;
    Ok(hex::encode(bytes))
}

/// Add the secret of each folder in `dirs` to `plan` unless one is there already; an empty
/// file (which Flower refuses) or a link in its place is refused rather than replaced.
pub fn plan_secrets(dirs: &[PathBuf], plan: &mut WritePlan) -> Result<()> {
    for dir in dirs {
        let path = dir.join(SECRET);
        match path.symlink_metadata() {
            // Its size is enough: once handed to the container user it is not ours to read.
            Ok(meta) if !meta.file_type().is_file() => {
                return Err(anyhow!(
                    "{}: not a regular file where the superexec secret belongs; remove it",
                    path.display()
                ));
            }
            Ok(meta) if meta.len() == 0 => {
                return Err(anyhow!(
                    "{}: the superexec secret is empty, which Flower refuses; delete it to make a new one",
                    path.display()
                ));
            }
            Ok(_) => {}
            Err(_) => {
                plan.dir(dir, MODE_DIR_PUBLIC);
                plan.file(&path, generate()?, MODE_PRIVATE);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_are_64_hex_digits_without_newline_0600_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [secret_dir(tmp.path(), None), secret_dir(tmp.path(), Some(2))];
        let mut plan = WritePlan::new(false);
        plan_secrets(&dirs, &mut plan).unwrap();
        plan.apply().unwrap();
        let path = dirs[1].join(SECRET);
        assert!(path.ends_with("superexec-auth/supernode-2/secret"));
        let secret = std::fs::read(&path).unwrap();
        assert_eq!(secret.len(), 64);
        assert!(
            secret
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_ne!(std::fs::read(dirs[0].join(SECRET)).unwrap(), secret);

        let mut again = WritePlan::new(true);
        plan_secrets(&dirs, &mut again).unwrap();
        assert!(again.files().is_empty(), "an existing secret is kept");

        std::fs::write(&path, b"").unwrap();
        let err = plan_secrets(&dirs, &mut WritePlan::new(true)).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
