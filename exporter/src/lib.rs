//! Volley's exporter: merges window reports from any number of generators
//! and writes them to InfluxDB and OTLP.
//!
//! The same library runs embedded in a generator (`volley run --out …`) and
//! in the `volley-exporter` daemon.
//!
//! # Layout
//! - [`out`]: the `--out` syntax.
//! - [`merge`]: per (test, window) merging across generators, flush and
//!   finalization rules, deduplication of resent reports.
//! - [`sink`]: destinations ([`sink::influx`], [`sink::otlp`],
//!   [`sink::file`]) and the per-sink worker with its bounded queue and
//!   retries.
//! - [`pipeline`]: reports in, merged windows out to every sink.
//! - [`ingest`]: the WebSocket server generators stream to (token, TLS,
//!   frame checks, acknowledgements).
//! - [`barrier`]: the common start of generators run with `--wait-for`.
//! - [`thresholds`]: a test's thresholds judged on its fleet's merged data
//!   (aborts and the final verdict sent back to the generators).
//! - [`control`]: live control over HTTP (k6's `/v1/status`), for one
//!   generator or, through the exporter, a whole test.
//! - [`observe`]: in-process consumers of merged windows (alerts, report).
//! - [`alert`]: alert rules on the merged data, posted to a webhook
//!   (`--alert-rules`).
//! - [`report`]: the self-contained HTML report.
//! - [`health`]: `/ready`, `/stats` and `/report` over HTTP.
//! - [`http_server`]: the bounded HTTP serving loop of every small API.
//! - [`selfmetrics`]: the exporter's own counters through the OpenTelemetry SDK.
//! - [`daemon`]: the `volley-exporter` command.
//! - [`secret`]: tokens and passwords that never show in logs.
//! - [`timefmt`]: time stamps as text.

pub mod alert;
pub mod barrier;
pub mod control;
pub mod daemon;
pub mod health;
pub mod http_server;
pub mod ingest;
pub mod merge;
pub mod observe;
pub mod out;
pub mod pipeline;
pub mod report;
pub mod secret;
pub mod selfmetrics;
pub mod sink;
pub mod thresholds;
pub mod timefmt;

pub use out::OutSpec;

/// Where a background part (a sink, the ingest server, the alerts) reports
/// a problem: a line for the operator's log.
pub type Log = std::sync::Arc<dyn Fn(String) + Send + Sync>;
pub use pipeline::{Pipeline, PipelineConfig, PipelineReport};
