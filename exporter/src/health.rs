//! The exporter's own health over plain HTTP (`--health-listen`), for
//! orchestrators and dashboards:
//!
//! - `GET /ready`: 200 while the exporter accepts generators and can store
//!   what they send; 503 once it is stopping (a load balancer stops sending
//!   new connections) or while an output is down and no spool holds its
//!   data (the body names the output).
//! - `GET /stats`: the ingest, merge and per-output counters as JSON.
//! - `GET /report?testid=ID`: the HTML report of a test merged so far (during
//!   or after it); without `testid`, the tests held, newest first.
//!
//! `/stats` and `/report` take the exporter token (bearer, or as the
//! password of Basic authentication in a browser) unless the exporter runs
//! with `--open-stats`; `/ready` is open, for orchestrators.

use crate::control::{authorized, error_document, fleet_status, read_command, status_document};
use crate::http_server::Limits;
use crate::ingest::Ingest;
use crate::pipeline::Pipeline;
use crate::report::html::Verdict;
use crate::report::Reports;
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoints report on.
pub struct Health {
    /// Ingest counters.
    pub ingest: Arc<Ingest>,
    /// Merge and sink counters.
    pub pipeline: Arc<Pipeline>,
    /// Cleared when the exporter starts stopping.
    pub ready: AtomicBool,
    /// Timelines of the most recent tests, for `/report`.
    pub reports: Arc<Reports>,
    /// `--control-token`: enables the fleet control API (`/v1/status`).
    pub control_token: Option<Secret>,
    /// The exporter token, required by `/stats` and `/report` (none with
    /// `--open-stats`).
    pub reader_token: Option<Secret>,
    /// What the HTTP listener refused.
    pub http: Arc<crate::http_server::Refusals>,
}

impl Health {
    /// The `/stats` document.
    pub fn stats_json(&self) -> String {
        let ingest: Vec<String> = self.ingest.stats.snapshot().iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let m = self.pipeline.merge_stats();
        let outputs: Vec<String> = self
            .pipeline
            .sink_stats()
            .iter()
            .map(|s| {
                let st = &s.stats;
                format!(
                    "{{\"name\":{},\"points\":{},\"writes\":{},\"retries\":{},\"spooled\":{},\"replayed\":{},\"dropped\":{},\"rejected\":{},\"points_rejected\":{},\"panics\":{},\"failing\":{}}}",
                    json_string(&s.name),
                    st.points_written,
                    st.writes,
                    st.retries,
                    st.spooled,
                    st.replayed,
                    st.dropped,
                    st.rejected,
                    st.points_rejected,
                    st.panics,
                    st.failing
                )
            })
            .collect();
        let barriers: Vec<String> = self
            .ingest
            .barriers
            .states()
            .iter()
            .map(|b| {
                let late: Vec<String> = b
                    .late
                    .iter()
                    .map(|(g, ms)| format!("{{\"generator\":{},\"late_ms\":{ms}}}", json_string(g)))
                    .collect();
                format!(
                    "{{\"test_id\":{},\"expected\":{},\"ready\":{},\"started\":{},\"late\":[{}]}}",
                    json_string(&b.test_id),
                    b.expected,
                    b.ready,
                    b.started,
                    late.join(",")
                )
            })
            .collect();
        format!(
            "{{\"ready\":{},\"http\":{{\"over_limit\":{},\"accept_errors\":{}}},\"ingest\":{{{}}},\"merge\":{{\"received\":{},\"merged\":{},\"late\":{},\"duplicates\":{},\"too_late\":{},\"off_clock\":{},\"series_dropped\":{},\"conflicts\":{},\"flushes\":{}}},\"outputs\":[{}],\"barriers\":[{}],\"thresholds\":{}}}",
            self.ready.load(Ordering::Relaxed),
            self.http.over_limit.load(Ordering::Relaxed),
            self.http.accept_errors.load(Ordering::Relaxed),
            ingest.join(","),
            m.received,
            m.merged,
            m.late,
            m.duplicates,
            m.too_late,
            m.off_clock,
            m.series_dropped,
            m.conflicts,
            m.flushes,
            outputs.join(","),
            barriers.join(","),
            serde_json::Value::Array(self.ingest.thresholds.stats())
        )
    }
}

/// `/ready`: accepting generators, and able to store what they send.
fn readiness(health: &Health) -> (StatusCode, String, &'static str) {
    if !health.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_string(), "text/plain");
    }
    let down = if health.pipeline.spools() { Vec::new() } else { health.pipeline.failing() };
    if down.is_empty() {
        (StatusCode::OK, "ready\n".to_string(), "text/plain")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("output down: {}\n", down.join(", ")), "text/plain")
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `/report?testid=…`: the page, or the list of tests held.
fn report(health: &Health, query: &str) -> (StatusCode, String, &'static str) {
    let test = url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "testid").map(|(_, v)| v.into_owned());
    let held = health.reports.tests();
    match test {
        Some(id) => {
            let source = "volley-exporter, merged across generators".to_string();
            // The fleet's verdict once the test is over.
            let verdicts = health.ingest.thresholds.verdict(&id).map(|(outcomes, _)| {
                outcomes
                    .into_iter()
                    .map(|o| Verdict { metric: o.key, expression: o.source, ok: o.ok, observed: o.observed })
                    .collect()
            });
            match health.reports.render(&id, source, verdicts, Vec::new()) {
                Some(page) => (StatusCode::OK, page, "text/html; charset=utf-8"),
                None => (
                    StatusCode::NOT_FOUND,
                    format!(
                        "no test {id:?} here; held: {}\n",
                        if held.is_empty() { "none".to_string() } else { held.join(", ") }
                    ),
                    "text/plain",
                ),
            }
        }
        None => {
            let items: String = held
                .iter()
                .map(|id| {
                    let q: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
                    format!("<li><a href=\"/report?testid={q}\">{}</a></li>", html_text(id))
                })
                .collect();
            (
                StatusCode::OK,
                format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Volley reports</title></head><body><h1>Tests</h1><ul>{items}</ul></body></html>\n"),
                "text/html; charset=utf-8",
            )
        }
    }
}

fn html_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `/v1/status?testid=…`: the fleet control API (see [`crate::control`]).
async fn fleet_control(
    health: &Health,
    req: hyper::Request<hyper::body::Incoming>,
) -> (StatusCode, String, &'static str) {
    const JSON: &str = "application/json";
    let fail = |code: StatusCode, title: &str, detail: &str| (code, error_document(code.as_u16(), title, detail), JSON);
    let Some(token) = &health.control_token else {
        return fail(
            StatusCode::NOT_FOUND,
            "Control API off",
            "start volley-exporter with --control-token (or VOLLEY_CONTROL_TOKEN) to control tests through it",
        );
    };
    if !authorized(req.headers().get("authorization").and_then(|v| v.to_str().ok()), token) {
        return fail(StatusCode::UNAUTHORIZED, "Unauthorized", "missing or wrong bearer token");
    }
    let query = req.uri().query().unwrap_or_default().to_string();
    let Some(test) =
        url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "testid").map(|(_, v)| v.into_owned())
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "testid: name the test to control (/v1/status?testid=…)",
        );
    };
    let command = match read_command(req).await {
        Ok(c) => c,
        Err((code, doc)) => return (code, doc, JSON),
    };
    let answers = match health.ingest.command(&test, command).await {
        Ok(a) => a,
        Err(e) => return fail(StatusCode::NOT_FOUND, "Not found", &e),
    };
    let refused: Vec<String> =
        answers.answered.iter().filter_map(|(g, r)| r.as_ref().err().map(|e| format!("{g}: {e}"))).collect();
    if !refused.is_empty() {
        return fail(StatusCode::CONFLICT, "Control error", &refused.join("; "));
    }
    let statuses: Vec<&volley_window::control::Status> =
        answers.answered.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let per_generator: Vec<serde_json::Value> = answers
        .answered
        .iter()
        .filter_map(|(g, r)| {
            let mut v = serde_json::to_value(r.as_ref().ok()?).ok()?;
            v["generator"] = serde_json::Value::String(g.clone());
            Some(v)
        })
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("generators".into(), serde_json::Value::Array(per_generator));
    extra.insert("unanswered".into(), serde_json::json!(answers.unanswered));
    (StatusCode::OK, status_document(&fleet_status(&statuses), extra), JSON)
}

/// Serves the endpoints until `stop`, within [`Limits`].
pub async fn serve(listener: TcpListener, health: Arc<Health>, stop: CancellationToken) {
    let refusals = health.http.clone();
    crate::http_server::serve(listener, Limits::default(), refusals, stop, move |req| {
        let health = health.clone();
        async move { answer(&health, req).await }
    })
    .await
}

async fn answer(health: &Health, req: hyper::Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let reading = path == "/report" || path == "/stats";
    if reading && !reader_authorized(req.headers().get("authorization").and_then(|v| v.to_str().ok()), health) {
        let mut resp = respond(StatusCode::UNAUTHORIZED, "the exporter token is required (Authorization: Bearer TOKEN, or any user name with the token as password)\n".into(), "text/plain");
        resp.headers_mut()
            .insert("www-authenticate", hyper::header::HeaderValue::from_static("Basic realm=\"volley-exporter\""));
        return resp;
    }
    let (status, body, kind) = match path.as_str() {
        "/v1/status" => fleet_control(health, req).await,
        "/report" => report(health, req.uri().query().unwrap_or_default()),
        "/ready" => readiness(health),
        "/stats" => (StatusCode::OK, health.stats_json(), "application/json"),
        _ => (StatusCode::NOT_FOUND, "not found: try /ready, /stats or /report\n".to_string(), "text/plain"),
    };
    respond(status, body, kind)
}

fn respond(status: StatusCode, body: String, kind: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(kind));
    resp
}

/// `/stats` and `/report` with the exporter token as a bearer token, or as
/// the password of HTTP Basic authentication (what a browser asks for);
/// open when no reader token is set.
fn reader_authorized(header: Option<&str>, health: &Health) -> bool {
    let Some(token) = &health.reader_token else { return true };
    if authorized(header, token) {
        return true;
    }
    use base64::Engine as _;
    let basic = header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok());
    let password =
        basic.as_deref().and_then(|b| std::str::from_utf8(b).ok()).and_then(|s| s.split_once(':')).map(|(_, p)| p);
    password.is_some_and(|p| crate::secret::constant_time_eq(p.as_bytes(), token.expose().as_bytes()))
}
