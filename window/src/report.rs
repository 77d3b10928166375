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
#[serde(try_from = "UncheckedHealth")]
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
///
/// Deserializing checks that the window lies in the range every sink can
/// timestamp (nanoseconds since the epoch in 64 bits) and lasts at most
/// [`MAX_WINDOW_MS`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "UncheckedReport")]
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

/// The latest window start accepted (year 2255): nanosecond timestamps of
/// every later instant overflow 64 bits in OTLP.
pub const MAX_START_UNIX_MS: u64 = 9_000_000_000_000;
/// The longest window accepted: one hour.
pub const MAX_WINDOW_MS: u64 = 3_600_000;

/// A window report as read, before its bounds are checked.
#[derive(Deserialize)]
#[serde(rename = "WindowReport")]
struct UncheckedReport {
    generator: String,
    test_id: String,
    seq: u64,
    start_unix_ms: u64,
    len_ms: u64,
    series: Vec<SeriesWindow>,
    health: HealthRecord,
}

impl TryFrom<UncheckedReport> for WindowReport {
    type Error = String;

    fn try_from(u: UncheckedReport) -> Result<Self, String> {
        if u.start_unix_ms > MAX_START_UNIX_MS {
            return Err(format!("window start {} ms is beyond {MAX_START_UNIX_MS}", u.start_unix_ms));
        }
        if u.len_ms > MAX_WINDOW_MS {
            return Err(format!("window length {} ms exceeds {MAX_WINDOW_MS}", u.len_ms));
        }
        Ok(Self {
            generator: u.generator,
            test_id: u.test_id,
            seq: u.seq,
            start_unix_ms: u.start_unix_ms,
            len_ms: u.len_ms,
            series: u.series,
            health: u.health,
        })
    }
}

/// A health record as read, before its numbers are checked.
#[derive(Deserialize)]
#[serde(rename = "HealthRecord")]
struct UncheckedHealth {
    rss_bytes: u64,
    cpu_seconds: f64,
    active_vus: u64,
    dropped_iterations: u64,
    start_lag_p99_ms: Option<f64>,
    windows_buffered: u64,
    windows_dropped: u64,
}

impl TryFrom<UncheckedHealth> for HealthRecord {
    type Error = String;

    fn try_from(u: UncheckedHealth) -> Result<Self, String> {
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        if !finite(u.cpu_seconds) || !u.start_lag_p99_ms.is_none_or(finite) {
            return Err(format!(
                "health: cpu seconds {} and start lag {:?} must be finite and not negative",
                u.cpu_seconds, u.start_lag_p99_ms
            ));
        }
        Ok(Self {
            rss_bytes: u.rss_bytes,
            cpu_seconds: u.cpu_seconds,
            active_vus: u.active_vus,
            dropped_iterations: u.dropped_iterations,
            start_lag_p99_ms: u.start_lag_p99_ms,
            windows_buffered: u.windows_buffered,
            windows_dropped: u.windows_dropped,
        })
    }
}
