//! What the superlink's host keeps about the bundles it handed out (those with supernode
//! authentication), so `check` can match admitted keys to them.

use std::path::Path;

use anyhow::{Context, Result};

use crate::fsutil;

/// Folder of the superlink deployment recording each bundle with supernode authentication
/// (`FILE.json`, one per archive name), so `check` can match admitted keys to the bundles
/// handed out.
pub const BUNDLES_DIR: &str = "bundles";

/// What the superlink's host records about a bundle it made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BundleRecord {
    pub id: String,
    /// The archive's file name.
    pub file: String,
    pub supernodes: u32,
}

/// The bundles recorded in the superlink deployment `dir`, by id.
pub fn recorded_bundles(dir: &Path) -> Result<Vec<BundleRecord>> {
    fsutil::files_with_extension(&dir.join(BUNDLES_DIR), "json")
        .unwrap_or_default()
        .iter()
        .map(|path| {
            let text = crate::fsutil::read_regular_text(
                path,
                crate::fsutil::TEXT_LIMIT,
                crate::fsutil::Links::Refuse,
            )?;
            serde_json::from_str(&text).with_context(|| format!("{}: not a bundle record", path.display()))
        })
        .collect()
}
