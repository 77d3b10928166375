//! Volley's generator: k6's executors and option names, flows that run
//! iterations, and a metric store that folds every sample into mergeable
//! per-window summaries, so memory depends on series, never on samples.
//!
//! # Layout
//! - [`cli`] → [`app`]: the command line and its commands; [`run`]: running
//!   a plan (outputs, stream, start barrier, engine, summary, exit code).
//! - [`config`]: the scenario file → a validated [`config::TestPlan`].
//! - [`executor`]: the seven k6 executors (plans are pure, runs drive VUs).
//! - [`engine`]: runs a plan: scenarios, the window clock, stops, totals.
//! - [`flow`]: what one iteration does (`noop`, `http`, the IM flows, the
//!   token manager, `setup`).
//! - [`data`]: test data files (`data:`), read once, shared by every VU.
//! - [`metrics`]: series registry and per-thread shards, drained per window.
//! - [`control`]: live control of a running test (pause, resume, scale,
//!   stop) and its HTTP API.
//! - [`threshold`]: k6 threshold expressions, evaluated on merged totals.
//! - [`summary`]: the text summary and k6's summary-export JSON.
//! - [`stream`]: streaming mode, windows to a `volley-exporter`.
//! - [`clock`]: the wall clock that stamps windows (the exporter's, with one).
//! - [`start`]: `--wait-for`, the synchronized start (through the exporter or Redis).
//! - [`console`], [`progress`]: terminal output while a test runs.
//! - [`preset`]: `volley ws-ping` / `volley im-e2e`, the IM presets.
//! - [`demo`]: `volley demo`, a real test against in-process testbed targets.
//! - [`har`]: `volley import har`, a browser recording → a scenario file.
//!
//! Data flow: executor → [`engine::ScenarioRun::iterate`] → flow → metrics
//! shards → (every window) [`volley_window::WindowReport`] → run totals →
//! thresholds and summary; and to `--out` (the embedded exporter pipeline)
//! and `--exporter` ([`stream`]).

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod data;
pub mod demo;
pub mod engine;
pub mod executor;
pub mod flow;
pub mod har;
pub mod metrics;
pub mod preset;
pub mod progress;
pub mod run;
pub mod start;
pub mod stream;
pub mod summary;
pub mod threshold;

/// Exit codes, as k6 uses them.
pub mod exit {
    /// Everything ran and every threshold held.
    pub const OK: i32 = 0;
    /// A threshold failed (or aborted the test).
    pub const THRESHOLDS_FAILED: i32 = 99;
    /// The scenario file or the flags are invalid; nothing ran.
    pub const INVALID_CONFIG: i32 = 104;
    /// The setup flow did not finish within `setupTimeout`.
    pub const SETUP_TIMEOUT: i32 = 100;
    /// The setup flow failed (k6's code for an exception in the script).
    pub const SCRIPT_EXCEPTION: i32 = 107;
    /// Stopped by Ctrl-C / SIGTERM (the summary was still printed).
    pub const EXTERNAL_ABORT: i32 = 105;
    /// The generator itself failed (runtime, I/O).
    pub const INTERNAL: i32 = 103;
    /// The test ran and its thresholds held, but not everything measured
    /// was stored by the outputs (or acknowledged by the exporter) within
    /// `--out-flush-timeout`. Not a code k6 uses.
    pub const OUTPUT_INCOMPLETE: i32 = 112;
}
