//! The window report: everything one generator measured in one window.

use crate::aggregate::Aggregate;
use crate::series::{MetricKind, SeriesKey, Unit};
use serde::{Deserialize, Serialize};

/// One series in a window report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesWindow {
    /// Metric name and tags.
    pub key: SeriesKey,
    /// What the values measure.
    pub unit: Unit,
    /// The window's summary of this series.
    pub value: Aggregate,
}

impl SeriesWindow {
    /// The series' metric type.
    pub fn kind(&self) -> MetricKind {
        self.value.kind()
    }
}

/// A generator's own state, sent with every window so that a saturated load
/// machine can be told apart from a slow target.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HealthRecord {
    /// Resident set size in bytes at window close.
    pub rss_bytes: u64,
    /// CPU seconds (user + system) the process used during the window.
    pub cpu_seconds: f64,
    /// VUs busy or waiting for work at window close.
    pub active_vus: u64,
    /// Iterations dropped during the window (all scenarios).
    pub dropped_iterations: u64,
    /// 99th percentile of open-model start lag in the window, milliseconds.
    pub start_lag_p99_ms: Option<f64>,
    /// Windows waiting for the exporter's acknowledgement (streaming mode).
    pub windows_buffered: u64,
    /// Windows dropped because that buffer was full, since the run started.
    pub windows_dropped: u64,
}

/// Everything one generator measured during one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowReport {
    /// Which generator produced the report.
    pub generator: String,
    /// Which test run it belongs to.
    pub test_id: String,
    /// Per-generator sequence number, from 0, without gaps.
    pub seq: u64,
    /// Window start, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// Window length in milliseconds (the last window of a run may be shorter).
    pub len_ms: u64,
    /// Every series that recorded something in the window, and every gauge.
    pub series: Vec<SeriesWindow>,
    /// The generator's health at window close.
    pub health: HealthRecord,
}
