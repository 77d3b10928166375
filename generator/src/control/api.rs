//! The generator's control API: `volley run --address HOST:PORT` serves
//! k6's `GET /v1/status` and `PATCH /v1/status` for this generator, behind
//! the bearer token of `--control-token` (or `VOLLEY_CONTROL_TOKEN`).
//!
//! Numbers are this generator's own. To command every generator of a split
//! test at once, use the exporter's `/v1/status?testid=…` instead: it
//! scales by each generator's execution segment.

use super::{Live, Scope};
use crate::console::Log;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use volley_exporter::control::{authorized, error_document, read_command, status_document};
use volley_exporter::http_server::{Limits, Refusals};
use volley_exporter::secret::Secret;
use volley_window::control::Command;

/// Serves the API on `listener` until `stop`, within the bounds of
/// `volley_exporter::http_server` (connections, header and connection
/// timeouts, accept backoff). `log` hears every change.
pub async fn serve(listener: TcpListener, live: Arc<Live>, token: Secret, log: Log, stop: CancellationToken) {
    let token = Arc::new(token);
    let refusals = Arc::new(Refusals::default());
    volley_exporter::http_server::serve(listener, Limits::default(), refusals, stop, move |req| {
        let (live, token, log) = (live.clone(), token.clone(), log.clone());
        async move {
            let (code, body) = handle(req, &live, &token, &log).await;
            let mut resp = Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = code;
            resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
            resp
        }
    })
    .await
}

async fn handle(req: Request<hyper::body::Incoming>, live: &Live, token: &Secret, log: &Log) -> (StatusCode, String) {
    let fail = |code: StatusCode, title: &str, detail: &str| (code, error_document(code.as_u16(), title, detail));
    if req.uri().path() != "/v1/status" {
        return fail(StatusCode::NOT_FOUND, "Not found", "the control API serves /v1/status");
    }
    if !authorized(req.headers().get("authorization").and_then(|v| v.to_str().ok()), token) {
        return fail(StatusCode::UNAUTHORIZED, "Unauthorized", "missing or wrong bearer token");
    }
    let command = match read_command(req).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    match live.apply(&command, Scope::Local) {
        Ok(status) => {
            if command != Command::default() {
                log(format!("control API: {}", describe(&command)));
            }
            (StatusCode::OK, status_document(&status, Default::default()))
        }
        Err(e) => fail(StatusCode::CONFLICT, "Control error", &e),
    }
}

/// One line for the log: what an operator changed.
pub fn describe(c: &Command) -> String {
    let mut parts = Vec::new();
    match c.paused {
        Some(true) => parts.push("pause".to_string()),
        Some(false) => parts.push("resume".to_string()),
        None => {}
    }
    if let Some(vus) = c.vus {
        parts.push(match &c.scenario {
            Some(s) => format!("scale {s} to {vus} VUs"),
            None => format!("scale to {vus} VUs"),
        });
    }
    if c.stopped {
        parts.push("stop".to_string());
    }
    parts.join(", ")
}
