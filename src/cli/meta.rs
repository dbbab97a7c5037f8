//! What clap makes from the command-line types besides parsing them for a command: the
//! usage error or help it prints, shell completions and man pages.

use std::path::Path;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

use super::Cli;
use crate::error::Outcome;

/// The parsed command line, or (after clap printed help, the version or a usage error) the
/// outcome to exit with: help and version are successes, a usage error is bad input.
pub fn parse() -> Result<Cli, Outcome> {
    Cli::try_parse().map_err(|err| {
        let _ = err.print();
        if err.use_stderr() {
            Outcome::BadInput
        } else {
            Outcome::Success
        }
    })
}

/// The completion script for `shell`, rendered in memory (clap_complete panics on a write
/// error, so a closed pipe is left to the caller's ordinary write).
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "flowerbed", &mut script);
    script
}

/// The top-level man page.
pub fn man_page(out: &mut dyn std::io::Write) -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(out)?;
    Ok(())
}

/// A man page per command, written into `dir` (made if missing).
pub fn write_man_pages(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create directory", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("{}: cannot write man pages", dir.display()))
}
