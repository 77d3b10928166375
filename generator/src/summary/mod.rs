//! The end of a test: the k6-style text summary, the `--summary-export` JSON
//! and the advice when iterations were dropped.
//!
//! # Layout
//! - [`totals`]: run totals, merged from windows.
//! - [`stats`]: the trend columns (`summaryTrendStats`).
//! - [`format`](mod@format): k6-style number and time formatting.
//! - [`text`]: the text summary.
//! - [`export`]: k6's summary-export JSON.

pub mod export;
pub mod format;
pub mod stats;
pub mod text;
pub mod totals;
