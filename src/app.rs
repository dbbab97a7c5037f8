//! Parse the command line, run the command, map the outcome to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, meta};
use crate::commands;
use crate::error::Outcome;
use crate::output::Printer;
use crate::ownership::interrupt::Interrupted;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match meta::parse() {
        Ok(cli) => cli,
        Err(outcome) => return outcome.into(),
    };
    match run(cli) {
        Ok(outcome) => outcome.into(),
        Err(err) if is_broken_pipe(&err) => Outcome::Success.into(),
        Err(err) => {
            let err = crate::config::in_flag_terms(err);
            let message = indent_continuation(&format!("{err:#}"));
            let _ = writeln!(io::stderr().lock(), "flowerbed: {message}");
            // Stopped by SIGINT/SIGTERM: the shell convention, 128 + the signal number.
            match err.chain().find_map(|cause| cause.downcast_ref::<Interrupted>()) {
                Some(interrupted) => ExitCode::from(interrupted.exit_code()),
                None => Outcome::BadInput.into(),
            }
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    let verbosity = if cli.global.quiet {
        -1
    } else {
        i8::try_from(cli.global.verbose).unwrap_or(i8::MAX)
    };
    let printer = Printer::new(verbosity, crate::config::color_choice(cli.global.color));
    match cli.command {
        Command::Certs(command) => commands::certs::run(command, &printer),
        Command::Render(command) => commands::deploy::render(&command, &printer),
        Command::Quickstart(args) => match &args.from_bundle {
            Some(archive) => commands::bundle::quickstart_from_bundle(&args, archive, &printer),
            None => commands::deploy::quickstart(&args, &printer),
        },
        Command::Wheels(args) => commands::wheels::run(&args, &printer),
        Command::Bundle(command) => commands::bundle::run(&command, &printer),
        Command::Supernodes(command) => commands::supernodes::run(&command, &printer),
        Command::Check(args) => commands::check::run(&args, &printer),
        Command::Doctor(args) => commands::doctor::run(&args, &printer),
        Command::Own(args) => commands::ownership::run_own(&args, &printer),
        Command::Undo(args) => commands::ownership::run_undo(&args, &printer),
        Command::Release(args) => commands::ownership::run_release(&args, &printer),
        Command::Journal(command) => commands::journal::run_journal(&command, &printer),
        Command::Completions { shell } => {
            // Rendered first, so a closed pipe is an ordinary BrokenPipe error (quiet exit 0).
            io::stdout().lock().write_all(&meta::completions(shell))?;
            Ok(Outcome::Success)
        }
        Command::Man { out_dir } => commands::man::run(out_dir.as_deref(), &printer),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
}

/// A message with several lines (a parser's excerpt of the input) keeps its real newlines;
/// each further line is indented, so none of them reads as an error line of its own.
fn indent_continuation(message: &str) -> String {
    message.trim_end().replace('\n', "\n  ")
}
