//! The exporter's own health over plain HTTP (`--health-listen`), for
//! orchestrators and dashboards:
//!
//! - `GET /ready`: 200 while the exporter accepts generators, 503 once it is
//!   stopping (a load balancer stops sending new connections).
//! - `GET /stats`: the ingest, merge and per-output counters as JSON.

use crate::ingest::Ingest;
use crate::pipeline::Pipeline;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
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
                    "{{\"name\":{},\"points\":{},\"writes\":{},\"retries\":{},\"spooled\":{},\"replayed\":{},\"dropped\":{},\"rejected\":{}}}",
                    json_string(&s.name),
                    st.points_written,
                    st.writes,
                    st.retries,
                    st.spooled,
                    st.replayed,
                    st.dropped,
                    st.rejected
                )
            })
            .collect();
        format!(
            "{{\"ready\":{},\"ingest\":{{{}}},\"merge\":{{\"received\":{},\"merged\":{},\"late\":{},\"duplicates\":{},\"too_late\":{},\"conflicts\":{},\"flushes\":{}}},\"outputs\":[{}]}}",
            self.ready.load(Ordering::Relaxed),
            ingest.join(","),
            m.received,
            m.merged,
            m.late,
            m.duplicates,
            m.too_late,
            m.conflicts,
            m.flushes,
            outputs.join(",")
        )
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

/// Serves the endpoints until `stop`.
pub async fn serve(listener: TcpListener, health: Arc<Health>, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = stop.cancelled() => return,
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let health = health.clone();
                async move {
                    let (status, body, kind) = match req.uri().path() {
                        "/ready" if health.ready.load(Ordering::Relaxed) => {
                            (StatusCode::OK, "ready\n".to_string(), "text/plain")
                        }
                        "/ready" => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_string(), "text/plain"),
                        "/stats" => (StatusCode::OK, health.stats_json(), "application/json"),
                        _ => (StatusCode::NOT_FOUND, "not found: try /ready or /stats\n".to_string(), "text/plain"),
                    };
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(kind));
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}
