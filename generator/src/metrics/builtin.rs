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
/// Time a `group` of steps took (tag `group`: `::outer::inner`).
pub const GROUP_DURATION: MetricDef = def("group_duration", Trend, Unit::Time);
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

/// WebSocket connections established (handshake completed).
pub const WS_CONNECT_OK: MetricDef = def("ws_connect_ok", Counter, Unit::None);
/// WebSocket connection attempts that failed (TCP, TLS, handshake, timeout).
pub const WS_CONNECT_FAIL: MetricDef = def("ws_connect_fail", Counter, Unit::None);
/// Connections authenticated (AUTH_OK received).
pub const WS_AUTH_OK: MetricDef = def("ws_auth_ok", Counter, Unit::None);
/// Authentications refused (AUTH_FAIL, 401 at the handshake, or no AUTH_OK in time).
pub const WS_AUTH_FAIL: MetricDef = def("ws_auth_fail", Counter, Unit::None);
/// PING sent to PONG received, in milliseconds.
pub const WS_PONG_RTT_MS: MetricDef = def("ws_pong_rtt_ms", Trend, Unit::Time);
/// IM messages sent.
pub const IM_SENT_TOTAL: MetricDef = def("im_sent_total", Counter, Unit::None);
/// IM messages received for the first time (by sender and seq).
pub const IM_RECV_UNIQUE_TOTAL: MetricDef = def("im_recv_unique_total", Counter, Unit::None);
/// IM messages received again (same sender and seq).
pub const IM_DUP_TOTAL: MetricDef = def("im_dup_total", Counter, Unit::None);
/// IM messages received after a higher seq of the same sender.
pub const IM_REORDER_TOTAL: MetricDef = def("im_reorder_total", Counter, Unit::None);
/// Receive time minus send time of unique IM messages, in milliseconds.
pub const IM_E2E_LATENCY_MS: MetricDef = def("im_e2e_latency_ms", Trend, Unit::Time);
/// Sent minus uniquely received at the end of the test, after the drain period.
pub const IM_LOST_TOTAL: MetricDef = def("im_lost_total", Counter, Unit::None);
/// Tokens a token manager obtained and shared.
pub const TOKEN_REFRESH_OK: MetricDef = def("token_refresh_ok", Counter, Unit::None);
/// Token-manager attempts that failed (no token from the endpoint, or not
/// stored in Redis).
pub const TOKEN_REFRESH_FAIL: MetricDef = def("token_refresh_fail", Counter, Unit::None);
/// How long VUs waited for a usable shared token.
pub const TOKEN_WAIT: MetricDef = def("token_wait", Trend, Unit::Time);
/// Iterations that failed because no usable token came within `wait`.
pub const TOKEN_UNAVAILABLE: MetricDef = def("token_unavailable", Counter, Unit::None);
/// Whether a threshold holds so far (1) or fails (0), one series per
/// threshold (tags `metric`: the key as written, `threshold`: the
/// expression), evaluated on the run totals at every window close. Written to
/// the outputs so dashboards show thresholds live; not in the summary, which
/// lists thresholds itself.
pub const THRESHOLD: MetricDef = def("threshold", Gauge, Unit::None);

/// Every built-in metric, in the order the summary lists them when present.
pub const ALL: &[MetricDef] = &[
    CHECKS,
    DATA_RECEIVED,
    DATA_SENT,
    DROPPED_ITERATIONS,
    GROUP_DURATION,
    HTTP_REQ_CONNECTING,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQ_TLS_HANDSHAKING,
    HTTP_REQ_WAITING,
    HTTP_REQS,
    IM_DUP_TOTAL,
    IM_E2E_LATENCY_MS,
    IM_LOST_TOTAL,
    IM_RECV_UNIQUE_TOTAL,
    IM_REORDER_TOTAL,
    IM_SENT_TOTAL,
    ITERATION_DURATION,
    ITERATION_START_LAG,
    ITERATIONS,
    TOKEN_REFRESH_FAIL,
    TOKEN_REFRESH_OK,
    TOKEN_UNAVAILABLE,
    TOKEN_WAIT,
    VUS,
    VUS_MAX,
    WS_AUTH_FAIL,
    WS_AUTH_OK,
    WS_CONNECT_FAIL,
    WS_CONNECT_OK,
    WS_PONG_RTT_MS,
];

/// Looks a built-in metric up by name.
pub fn find(name: &str) -> Option<MetricDef> {
    ALL.iter().copied().find(|d| d.name == name)
}
