//! Where every line of output goes: stdout for results, stderr for progress and warnings.
//!
//! Writes return `io::Result` so that a closed pipe (`flowerbed ... | head`) ends the
//! program quietly instead of panicking; `app::main` maps `BrokenPipe` to exit 0.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

/// How loud to be and whether to paint, decided once from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// -1 for `-q`, 0 normally, 1+ for `-v`.
    pub verbosity: i8,
    /// ANSI colour on stderr/stdout.
    pub color: bool,
}

/// Colour choice from `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Roles of painted text.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Ok,
    Warn,
    Error,
    Dim,
    Bold,
}

impl Printer {
    pub fn new(verbosity: i8, choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stdout().is_terminal()
            }
        };
        Self { verbosity, color }
    }

    /// A printer for tests and library callers: normal verbosity, no colour.
    pub fn plain() -> Self {
        Self {
            verbosity: 0,
            color: false,
        }
    }

    pub fn quiet(&self) -> bool {
        self.verbosity < 0
    }

    /// Paint `text` when colour is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
        let code = match style {
            Style::Ok => "32",
            Style::Warn => "33",
            Style::Error => "31",
            Style::Dim => "2",
            Style::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// A result line on stdout (printed even with `-q`: it is the answer).
    pub fn result(&self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")
    }

    /// An informational line on stdout, hidden by `-q`.
    pub fn info(&self, line: &str) -> io::Result<()> {
        if self.quiet() {
            return Ok(());
        }
        self.result(line)
    }

    /// Extra detail on stderr, shown only with `-v`.
    pub fn detail(&self, line: &str) {
        if self.verbosity > 0 {
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
    }

    /// A warning on stderr, hidden by `-q`.
    pub fn warn(&self, line: &str) {
        if !self.quiet() {
            let label = self.paint(Style::Warn, "warning:");
            let _ = writeln!(io::stderr().lock(), "{label} {line}");
        }
    }

    /// `error` or `warning`, painted, for finding lines.
    pub fn severity_label(&self, severity: crate::tls::verify::Severity) -> String {
        match severity {
            crate::tls::verify::Severity::Error => self.paint(Style::Error, "error"),
            crate::tls::verify::Severity::Warning => self.paint(Style::Warn, "warning"),
        }
    }

    /// The steps of a write plan, one line each (`would ` in front for a dry run). A dry
    /// run's plan is its answer; steps taken are progress, hidden by `-q`.
    pub fn plan_steps(&self, steps: &[crate::fsutil::PlanStep], dry_run: bool) -> io::Result<()> {
        let verb = if dry_run { "would " } else { "" };
        for step in steps {
            let line = format!(
                "{verb}{} {} (mode {})",
                step.action,
                step.path.display(),
                step.mode
            );
            if dry_run {
                self.result(&line)?;
            } else {
                self.info(&line)?;
            }
        }
        Ok(())
    }

    /// Pretty JSON on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> io::Result<()> {
        let mut out = io::stdout().lock();
        // `io::Error::from` keeps a write error's kind (a closed pipe stays BrokenPipe).
        serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
        writeln!(out)
    }
}
