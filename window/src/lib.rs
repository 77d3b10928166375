//! The data that leaves a generator: per-window, per-series summaries that
//! can be merged exactly across windows and across machines.
//!
//! A generator never keeps samples. Every measurement is folded into an
//! [`Aggregate`] of its series for the current window; a closed window becomes
//! a [`WindowReport`]. Run totals, fleet totals and the exporter's merged
//! windows are all built with the same [`Aggregate::merge`], which is why a
//! percentile computed from merged data equals the percentile of all samples
//! (within the sketch's relative accuracy), and why memory depends on the
//! number of series, never on the number of samples.
//!
//! # Layout
//! - [`sketch`]: the DDSketch wrapper with Volley's fixed bucket mapping
//!   (OpenTelemetry exponential-histogram scale 6).
//! - [`series`]: metric kinds, units, tags and the series key.
//! - [`aggregate`]: what one series holds for one window, and how two merge.
//! - [`report`]: the window report and the per-generator health record.
//! - [`threshold`]: k6 thresholds, judged on merged aggregates (by a
//!   generator on its own run, by the exporter on a fleet's).
//! - [`wire`]: the generator ↔ exporter protocol frames; [`parts`]: windows
//!   split over several frames and joined again.
//! - [`control`]: live control of a running test (pause, resume, scale,
//!   stop) and its status.
//! - [`duration`]: k6 duration strings, read the same way by every binary.
//! - [`retry`]: the one backoff and retriable-status rule of every retry.
//! - [`allocator`]: jemalloc for the long-running binaries ([`jemalloc!`]).

pub mod aggregate;
pub mod allocator;
pub mod control;
pub mod duration;
pub mod parts;
pub mod report;
pub mod retry;
pub mod series;
pub mod sketch;
pub mod threshold;
pub mod wire;

pub use aggregate::{Aggregate, MergeError};
pub use report::{HealthRecord, SeriesWindow, WindowReport};
pub use series::{MetricKind, SeriesKey, Tags, Unit};
pub use sketch::{Buckets, Sketch};
