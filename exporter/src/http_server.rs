//! Serving Volley's small HTTP APIs (the exporter's health, report and
//! fleet control; the generator's control API) so that no client can hold
//! them: at most `max_connections` at once (a connection beyond is closed at
//! once and counted), request headers must arrive within `header_timeout`,
//! a connection lives at most `connection_timeout`, and an accept error
//! (say, out of file descriptors) backs off with the shared retry policy
//! instead of spinning.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use volley_window::retry::Backoff;

/// Bounds of one listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a request's headers to arrive (also the keep-alive idle time).
    pub header_timeout: Duration,
    /// Longest life of one connection.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(60),
        }
    }
}

/// What a listener refused so far.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Connections closed because `max_connections` were open.
    pub over_limit: AtomicU64,
    /// Accept errors.
    pub accept_errors: AtomicU64,
}

/// Serves `handler` on `listener` until `stop`.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    refusals: Arc<Refusals>,
    stop: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                backoff.succeeded();
                tcp
            }
            Err(_) => {
                refusals.accept_errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(backoff.failed()) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refusals.over_limit.fetch_add(1, Ordering::Relaxed);
            continue; // dropped: closed at once
        };
        let (handler, limits) = (handler.clone(), limits.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let answer = handler(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Reads until the server closes; what it sent.
    async fn until_closed(tcp: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn slow_and_surplus_clients_cannot_hold_the_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(5),
        };
        let refusals = Arc::new(Refusals::default());
        let stop = CancellationToken::new();
        let answer = |_req| async { Response::new(Full::new(Bytes::from_static(b"ok"))) };
        tokio::spawn(serve(listener, limits, refusals.clone(), stop.clone(), answer));
        // Two clients send half a request and stall.
        let mut slow = Vec::new();
        for _ in 0..2 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            slow.push(tcp);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A third is over the limit: closed without an answer.
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert_eq!(until_closed(&mut third).await, "");
        assert_eq!(refusals.over_limit.load(Ordering::Relaxed), 1);
        // The stalled ones are closed once their headers are overdue.
        for tcp in &mut slow {
            let answer = until_closed(tcp).await;
            assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
        }
        // And the listener serves again.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = until_closed(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"), "{answer}");
        stop.cancel();
    }
}
