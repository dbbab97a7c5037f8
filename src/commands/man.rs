//! `flowerbed man`

use std::path::Path;

use anyhow::Result;

use crate::cli::meta;
use crate::error::Outcome;
use crate::output::Printer;

pub fn run(out_dir: Option<&Path>, printer: &Printer) -> Result<Outcome> {
    match out_dir {
        None => meta::man_page(&mut std::io::stdout().lock())?,
        Some(dir) => {
            meta::write_man_pages(dir)?;
            printer.info(&format!("man pages written to {}", dir.display()))?;
        }
    }
    Ok(Outcome::Success)
}
