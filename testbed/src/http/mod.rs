//! `volley-testbed http`: the HTTP target.
//!
//! hyper's HTTP/1.1 server with keep-alive (HTTP/2 too over TLS, when the
//! client picks it by ALPN), one task per connection on the caller's
//! runtime. Every answered request is counted by status code, so
//! tests can compare what the generator reports with what the server saw;
//! connections are counted per client address, and `/peer` answers the
//! client's address (see [`crate::peers`]).

pub mod auth;
mod routes;
pub mod shop;
mod stats;
mod tls;

pub use auth::AuthConfig;
pub use routes::{Route, JSON_DOC};
pub use stats::HttpStats;

use crate::peers::PeerCounts;
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

/// The largest request body the shop reads.
const MAX_BODY: usize = 64 << 20;

/// A running HTTP testbed.
pub struct HttpTestbed {
    addr: SocketAddr,
    scheme: &'static str,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// What every connection's handler reads.
struct Shared {
    counters: Counters,
    auth: auth::Auth,
    peers: PeerCounts,
    shop: shop::Shop,
}

impl Shared {
    fn snapshot(&self) -> HttpStats {
        HttpStats {
            auth: self.auth.counters.snapshot(),
            peers: self.peers.snapshot(),
            shop: self.shop.stats(),
            ..self.counters.snapshot()
        }
    }
}

fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

fn json_answer((status, body): auth::Answer) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

impl HttpTestbed {
    /// Binds `addr` and starts serving plain HTTP on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<HttpTestbed> {
        Self::start_with(addr, None, AuthConfig::default()).await
    }

    /// Like [`HttpTestbed::start`] with the token endpoints' settings, over
    /// TLS when `tls` is set.
    pub async fn start_with_auth(addr: SocketAddr, tls: bool, auth: AuthConfig) -> std::io::Result<HttpTestbed> {
        let acceptor = if tls { Some(tls::self_signed_acceptor()?) } else { None };
        Self::start_with(addr, acceptor, auth).await
    }

    /// Like [`HttpTestbed::start`], over TLS with a fresh self-signed
    /// certificate for `localhost` and `127.0.0.1` (clients must skip
    /// verification, as k6's `insecureSkipTLSVerify`).
    pub async fn start_tls(addr: SocketAddr) -> std::io::Result<HttpTestbed> {
        Self::start_with(addr, Some(tls::self_signed_acceptor()?), AuthConfig::default()).await
    }

    async fn start_with(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        auth: AuthConfig,
    ) -> std::io::Result<HttpTestbed> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            auth: auth::Auth::new(&auth),
            peers: PeerCounts::default(),
            shop: shop::Shop::default(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tasks.spawn(accept_loop(listener, tls, shared.clone(), stop.clone(), tasks.clone()));
        Ok(HttpTestbed { addr, scheme, shared, stop, tasks })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (or `https://ADDR` over TLS).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// What has been served so far.
    pub fn stats(&self) -> HttpStats {
        self.shared.snapshot()
    }

    /// Stops accepting, closes connections and waits for their tasks.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
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
        shared.peers.connected(peer.ip());
        let (shared, stop, tls) = (shared.clone(), stop.clone(), tls.clone());
        tasks.spawn(async move {
            match tls {
                None => serve(stream, false, peer, shared, stop).await,
                Some(acceptor) => {
                    // A failed handshake (a client that rejects the
                    // certificate) just closes this connection.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        serve(stream, h2, peer, shared, stop).await;
                    }
                }
            }
        });
    }
}

/// Serves one connection until the client closes it or the server stops.
async fn serve<S>(stream: S, h2: bool, peer: SocketAddr, shared: Arc<Shared>, stop: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(req, peer, shared.clone()));
    // The protocol is known (ALPN, or plain HTTP/1.1): no sniffing.
    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let counters = &shared.counters;
    let http2 = req.version() == http::Version::HTTP_2;
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
            let body = serde_json::to_vec(&shared.snapshot()).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
            // Not counted: reading the stats must not change them.
            return Ok(r);
        }
        Route::Peer => {
            shared.peers.requested(peer.ip());
            let body = serde_json::json!({"ip": peer.ip().to_string(), "port": peer.port()}).to_string();
            json_answer((200, body))
        }
        Route::Login => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            json_answer(shared.auth.login(&body))
        }
        Route::Refresh => json_answer(shared.auth.refresh(bearer(&req))),
        Route::Api => json_answer(shared.auth.api(bearer(&req))),
        Route::Shop(r) => {
            let (parts, body) = req.into_parts();
            // Bodies are bounded: a form or an upload of a test, not a file store.
            let limited = http_body_util::Limited::new(body, MAX_BODY);
            match limited.collect().await {
                Ok(b) => shared.shop.handle(r, &parts, &b.to_bytes()),
                Err(_) => routes::text(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            }
        }
        Route::BadRequest(why) => routes::text(StatusCode::BAD_REQUEST, why),
        Route::NotFound => routes::text(StatusCode::NOT_FOUND, "not found"),
    };
    counters.record(resp.status().as_u16(), http2);
    Ok(resp)
}
