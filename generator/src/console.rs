//! Everything the generator prints to the terminal while a test runs.
//!
//! Warnings and the live progress share stderr; on a terminal the progress
//! block is redrawn in place, so a warning first erases it. The summary goes
//! to stdout.

use parking_lot::Mutex;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

/// Shared terminal output.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    tty: bool,
    quiet: bool,
    start: Instant,
    /// Lines of progress currently drawn (to erase before other output).
    drawn: Mutex<usize>,
}

/// Where a background part (outputs, stream, control API) reports a
/// problem.
pub use volley_exporter::Log;

impl Console {
    /// A console on stderr; `quiet` hides progress (warnings still show).
    pub fn new(quiet: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                tty: std::io::stderr().is_terminal(),
                quiet,
                start: Instant::now(),
                drawn: Mutex::new(0),
            }),
        }
    }

    /// True when stderr is a terminal (progress is redrawn in place).
    pub fn is_tty(&self) -> bool {
        self.inner.tty
    }

    /// True when progress is hidden.
    pub fn is_quiet(&self) -> bool {
        self.inner.quiet
    }

    /// Prints a warning line, k6-style: `WARN[0012] message`.
    pub fn warn(&self, message: &str) {
        self.line("WARN", message);
    }

    /// A log function that prints warnings here (what the outputs, the
    /// stream and the control API report through).
    pub fn warn_log(&self) -> Log {
        let console = self.clone();
        Arc::new(move |m: String| console.warn(&m))
    }

    /// Prints an informational line.
    pub fn info(&self, message: &str) {
        self.line("INFO", message);
    }

    fn line(&self, level: &str, message: &str) {
        let mut drawn = self.inner.drawn.lock();
        let mut err = std::io::stderr().lock();
        erase(&mut err, &mut drawn);
        let secs = self.inner.start.elapsed().as_secs();
        let _ = writeln!(err, "{level}[{secs:04}] {message}");
    }

    /// Replaces the progress block (terminal) or prints it (otherwise).
    pub fn progress(&self, lines: &[String]) {
        if self.inner.quiet {
            return;
        }
        let mut drawn = self.inner.drawn.lock();
        let mut err = std::io::stderr().lock();
        erase(&mut err, &mut drawn);
        for l in lines {
            let _ = writeln!(err, "{l}");
        }
        if self.inner.tty {
            *drawn = lines.len();
        }
        let _ = err.flush();
    }

    /// Leaves the last progress block on screen and stops redrawing over it.
    pub fn release_progress(&self) {
        *self.inner.drawn.lock() = 0;
    }
}

fn erase(err: &mut impl Write, drawn: &mut usize) {
    if *drawn > 0 {
        // Up `drawn` lines, clear to the end of the screen.
        let _ = write!(err, "\x1b[{}A\x1b[J", *drawn);
        *drawn = 0;
    }
}

/// Prints configuration problems, one per line, each with its field path.
pub fn report_invalid(errors: &crate::config::reader::ConfigErrors) {
    eprintln!(
        "ERROR invalid configuration ({} problem{}):",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
    }
}

/// Reports one configuration problem (a flag, an output) and returns the
/// exit code for it: the one path for errors found after the file loaded.
pub fn invalid(problem: impl std::fmt::Display) -> i32 {
    eprintln!("ERROR invalid configuration (1 problem):\n  {problem}");
    crate::exit::INVALID_CONFIG
}
