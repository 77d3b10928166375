//! The metrics Volley emits itself, with k6's names, types and units.

use volley_window::{MetricKind, Unit};

/// A metric's name, type and unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDef {
    /// Metric name, e.g. `http_req_duration`.
    pub name: &'static str,
    /// k6 metric type.
    pub kind: MetricKind,
    /// What the values measure.
    pub unit: Unit,
}

const fn def(name: &'static str, kind: MetricKind, unit: Unit) -> MetricDef {
    MetricDef { name, kind, unit }
}

use MetricKind::{Counter, Gauge, Rate, Trend};

/// Completed iterations.
pub const ITERATIONS: MetricDef = def("iterations", Counter, Unit::None);
/// Time one complete iteration took.
pub const ITERATION_DURATION: MetricDef = def("iteration_duration", Trend, Unit::Time);
/// Iterations an arrival-rate executor could not start (no free VU).
pub const DROPPED_ITERATIONS: MetricDef = def("dropped_iterations", Counter, Unit::None);
/// Actual minus scheduled start of open-model iterations.
pub const ITERATION_START_LAG: MetricDef = def("iteration_start_lag", Trend, Unit::Time);
/// VUs running iterations or waiting for one.
pub const VUS: MetricDef = def("vus", Gauge, Unit::None);
/// VUs allocated.
pub const VUS_MAX: MetricDef = def("vus_max", Gauge, Unit::None);
/// Check outcomes.
pub const CHECKS: MetricDef = def("checks", Rate, Unit::None);
/// HTTP requests made.
pub const HTTP_REQS: MetricDef = def("http_reqs", Counter, Unit::None);
/// Request sent to response fully received.
pub const HTTP_REQ_DURATION: MetricDef = def("http_req_duration", Trend, Unit::Time);
/// Request sent to first response byte.
pub const HTTP_REQ_WAITING: MetricDef = def("http_req_waiting", Trend, Unit::Time);
/// TCP connect time (0 on a reused connection).
pub const HTTP_REQ_CONNECTING: MetricDef = def("http_req_connecting", Trend, Unit::Time);
/// TLS handshake time (0 on a reused or plain connection).
pub const HTTP_REQ_TLS_HANDSHAKING: MetricDef = def("http_req_tls_handshaking", Trend, Unit::Time);
/// Share of requests that failed (status >= 400 or no response).
pub const HTTP_REQ_FAILED: MetricDef = def("http_req_failed", Rate, Unit::None);
/// Bytes written to the network.
pub const DATA_SENT: MetricDef = def("data_sent", Counter, Unit::Data);
/// Bytes read from the network.
pub const DATA_RECEIVED: MetricDef = def("data_received", Counter, Unit::Data);

/// Every built-in metric, in the order the summary lists them when present.
pub const ALL: &[MetricDef] = &[
    CHECKS,
    DATA_RECEIVED,
    DATA_SENT,
    DROPPED_ITERATIONS,
    HTTP_REQ_CONNECTING,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQ_TLS_HANDSHAKING,
    HTTP_REQ_WAITING,
    HTTP_REQS,
    ITERATION_DURATION,
    ITERATION_START_LAG,
    ITERATIONS,
    VUS,
    VUS_MAX,
];

/// Looks a built-in metric up by name.
pub fn find(name: &str) -> Option<MetricDef> {
    ALL.iter().copied().find(|d| d.name == name)
}
