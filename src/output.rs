//! Where every line of output goes: stdout for results, stderr for progress and warnings.
//!
//! Writes return `io::Result` so that a closed pipe (`flowerbed ... | head`) ends the
//! program quietly instead of panicking; `app::main` maps `BrokenPipe` to exit 0.
//!
//! Text is painted with anstyle and written through anstream, which drops the styling per
//! stream: whether stdout gets colour is decided from stdout, and stderr's from stderr
//! (`auto`: a terminal, and neither `NO_COLOR` nor `TERM=dumb`).

use std::io::{self, Write};

use anstream::AutoStream;
use anstyle::{AnsiColor, Effects};
use serde::Serialize;

pub use anstream::ColorChoice;

/// How loud to be and whether to paint, decided once from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// -1 for `-q`, 0 normally, 1+ for `-v`.
    pub verbosity: i8,
    /// `--color`: each stream applies it for itself.
    pub color: ColorChoice,
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
    pub fn new(verbosity: i8, color: ColorChoice) -> Self {
        Self { verbosity, color }
    }

    /// A printer for tests and library callers: normal verbosity, no colour.
    pub fn plain() -> Self {
        Self {
            verbosity: 0,
            color: ColorChoice::Never,
        }
    }

    pub fn quiet(&self) -> bool {
        self.verbosity < 0
    }

    /// Paint `text` (the stream it is written to keeps or drops the paint).
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.color == ColorChoice::Never {
            return text.to_string();
        }
        let style = match style {
            Style::Ok => AnsiColor::Green.on_default(),
            Style::Warn => AnsiColor::Yellow.on_default(),
            Style::Error => AnsiColor::Red.on_default(),
            Style::Dim => anstyle::Style::new().effects(Effects::DIMMED),
            Style::Bold => anstyle::Style::new().effects(Effects::BOLD),
        };
        format!("{style}{text}{style:#}")
    }

    fn stdout(&self) -> AutoStream<io::StdoutLock<'static>> {
        AutoStream::new(io::stdout().lock(), self.color)
    }

    fn stderr(&self) -> AutoStream<io::StderrLock<'static>> {
        AutoStream::new(io::stderr().lock(), self.color)
    }

    /// A result line on stdout (printed even with `-q`: it is the answer).
    pub fn result(&self, line: &str) -> io::Result<()> {
        writeln!(self.stdout(), "{line}")
    }

    /// An informational line on stdout, hidden by `-q`.
    pub fn info(&self, line: &str) -> io::Result<()> {
        if self.quiet() {
            return Ok(());
        }
        self.result(line)
    }

    /// An informational line on stderr, hidden by `-q`: for commands whose stdout is a
    /// file being rendered.
    pub fn note(&self, line: &str) {
        if !self.quiet() {
            let _ = writeln!(self.stderr(), "{line}");
        }
    }

    /// Extra detail on stderr, shown only with `-v`.
    pub fn detail(&self, line: &str) {
        if self.verbosity > 0 {
            let _ = writeln!(self.stderr(), "{line}");
        }
    }

    /// A warning on stderr, hidden by `-q`.
    pub fn warn(&self, line: &str) {
        if !self.quiet() {
            let label = self.paint(Style::Warn, "warning:");
            let _ = writeln!(self.stderr(), "{label} {line}");
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
