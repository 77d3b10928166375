//! `volley-testbed http`: the HTTP target.
//!
//! hyper's HTTP/1.1 server with keep-alive, one task per connection on the
//! caller's runtime. Every answered request is counted by status code, so
//! tests can compare what the generator reports with what the server saw.

mod routes;
mod stats;

pub use routes::{Route, JSON_DOC};
pub use stats::HttpStats;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use routes::route;
use stats::Counters;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running HTTP testbed.
pub struct HttpTestbed {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl HttpTestbed {
    /// Binds `addr` and starts serving on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<HttpTestbed> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept_loop(listener, counters.clone(), stop.clone(), tasks.clone()));
        Ok(HttpTestbed { addr, counters, stop, tasks })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What has been served so far.
    pub fn stats(&self) -> HttpStats {
        self.counters.snapshot()
    }

    /// Stops accepting, closes connections and waits for their tasks.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn accept_loop(listener: TcpListener, counters: Arc<Counters>, stop: CancellationToken, tasks: TaskTracker) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let (counters, stop) = (counters.clone(), stop.clone());
        tasks.spawn(async move {
            let service = service_fn(move |req| handle(req, counters.clone()));
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

async fn handle(req: Request<Incoming>, counters: Arc<Counters>) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = match route(req.method(), req.uri().path()) {
        Route::Root => routes::text(StatusCode::OK, "ok"),
        Route::Delay(d) => {
            tokio::time::sleep(d).await;
            routes::text(StatusCode::OK, "ok")
        }
        Route::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            routes::text(status, status.canonical_reason().unwrap_or("status"))
        }
        Route::Bytes(n) => routes::payload(n),
        Route::Json => routes::json(),
        Route::Echo => {
            let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let mut r = Response::new(Full::new(body));
            if let Some(ct) = content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            r
        }
        Route::Stats => {
            let body = serde_json::to_vec(&counters.snapshot()).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
            // Not counted: reading the stats must not change them.
            return Ok(r);
        }
        Route::BadRequest(why) => routes::text(StatusCode::BAD_REQUEST, why),
        Route::NotFound => routes::text(StatusCode::NOT_FOUND, "not found"),
    };
    counters.record(resp.status().as_u16());
    Ok(resp)
}
