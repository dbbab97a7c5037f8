//! `flowerbed man`

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Outcome;
use crate::output::Printer;

pub fn run(out_dir: Option<&Path>, printer: &Printer) -> Result<Outcome> {
    let command = Cli::command();
    match out_dir {
        None => {
            clap_mangen::Man::new(command).render(&mut std::io::stdout().lock())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create directory", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("{}: cannot write man pages", dir.display()))?;
            printer.info(&format!("man pages written to {}", dir.display()))?;
        }
    }
    Ok(Outcome::Success)
}
