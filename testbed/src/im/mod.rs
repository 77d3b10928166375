//! `volley-testbed im`: the reference IM gateway (the README's default
//! protocol, see [`frames`]).
//!
//! - Checks the HS256 JWT at the handshake (header or query, when present:
//!   a bad or expired one is refused with 401) and at AUTH (AUTH_FAIL, close).
//! - Answers PING with PONG; routes MSG to the recipient's connection, on
//!   this gateway or, through Redis pub/sub, on another ([`router`]).
//! - Injects faults into deliveries and counts each one exactly ([`faults`],
//!   [`stats`]), so tests can check the generator's dup / reorder / lost
//!   counts against what really happened.
//! - `GET /stats` on the same port answers the counters as JSON, with the
//!   WebSocket connections per client address under `peers`.
//!
//! Connections use small WebSocket buffers (4 KiB) so one process holds
//! tens of thousands; several processes can share a port (`SO_REUSEPORT`).

pub mod conn;
pub mod faults;
pub mod frames;
pub mod router;
pub mod stats;

pub use faults::FaultPlan;
pub use stats::ImStats;

use crate::peers::{PeerCounts, PeerStats};
use router::Router;
use stats::Counters;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Per-connection WebSocket buffers: tungstenite keeps the whole read
/// buffer resident once a frame arrived, so its 128 KiB default would cost
/// 128 KiB per idle connection.
pub const WS_BUFFER: usize = 4096;

/// How a gateway is set up.
#[derive(Clone, Debug)]
pub struct ImConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The HS256 secret tokens are signed with.
    pub jwt_secret: String,
    /// Redis URL for routing across gateway instances.
    pub redis: Option<String>,
    /// Instance id (shown in logs and stats only).
    pub instance_id: u32,
    /// Faults to inject into deliveries.
    pub faults: FaultPlan,
    /// Set `SO_REUSEPORT` so several processes can serve one port.
    pub reuse_port: bool,
}

/// State shared by the connections of one gateway.
pub struct Shared {
    key: volley_jwt::Key,
    router: Arc<Router>,
    counters: Arc<Counters>,
    faults: FaultPlan,
    ws_config: WebSocketConfig,
    stop: CancellationToken,
    /// WebSocket connections per client address (this gateway's own).
    peers: PeerCounts,
}

/// A running gateway.
pub struct ImGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: TaskTracker,
}

impl ImGateway {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(config: ImConfig) -> anyhow::Result<ImGateway> {
        config.faults.validate().map_err(anyhow::Error::msg)?;
        let counters = Arc::new(Counters::default());
        let router = match &config.redis {
            Some(url) => Router::with_redis(url, counters.clone(), config.faults.delay)
                .await
                .map_err(|e| anyhow::anyhow!("--redis {}: {e}", redact_url(url)))?,
            None => Router::local(counters.clone(), config.faults.delay),
        };
        Self::start_with_router(config, router, counters).await
    }

    /// Like [`ImGateway::start`], sharing `other`'s routing table: two
    /// gateways in one process route to each other without Redis (the
    /// demo uses this).
    pub async fn start_sibling(config: ImConfig, other: &ImGateway) -> anyhow::Result<ImGateway> {
        Self::start_with_router(config, other.shared.router.clone(), other.shared.counters.clone()).await
    }

    async fn start_with_router(
        config: ImConfig,
        router: Arc<Router>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<ImGateway> {
        let listener = bind(config.listen, config.reuse_port)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key: volley_jwt::Key::new(config.jwt_secret.as_bytes()),
            router,
            counters,
            faults: config.faults,
            ws_config: WebSocketConfig::default()
                .read_buffer_size(WS_BUFFER)
                .write_buffer_size(0)
                .max_write_buffer_size(1 << 20)
                .max_message_size(Some(1 << 20))
                .max_frame_size(Some(1 << 20)),
            stop: CancellationToken::new(),
            peers: PeerCounts::default(),
        });
        let tasks = TaskTracker::new();
        let seed = (config.instance_id as u64) << 40;
        tasks.spawn(accept_loop(listener, shared.clone(), tasks.clone(), seed));
        Ok(ImGateway { addr, shared, tasks })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The counters so far (shared with siblings).
    pub fn stats(&self) -> ImStats {
        self.shared.counters.snapshot()
    }

    /// WebSocket connections per client address, on this gateway.
    pub fn peers(&self) -> BTreeMap<String, PeerStats> {
        self.shared.peers.snapshot()
    }

    /// Closes every connection and waits for their tasks.
    pub async fn shutdown(self) {
        self.shared.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    // A deep backlog: tens of thousands of clients connect at once.
    socket.listen(8192)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: TaskTracker, seed: u64) {
    let conn_seq = AtomicU64::new(0);
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let seed = seed + conn_seq.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(dispatch(stream, peer, shared.clone(), seed));
            }
            // Out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `GET /stats` gets the counters; anything else is a WebSocket handshake.
async fn dispatch(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, seed: u64) {
    const STATS: &[u8] = b"GET /stats";
    let mut head = [0u8; 11];
    for _ in 0..200 {
        match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return,
            Ok(n) if n < head.len() && STATS.starts_with(&head[..n]) => {
                // Could still be either: wait for the rest of the line.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(n) => {
                if n == head.len() && head.starts_with(STATS) && matches!(head[STATS.len()], b' ' | b'?') {
                    serve_stats(stream, &shared).await;
                    return;
                }
                break;
            }
        }
    }
    shared.peers.connected(peer.ip());
    conn::serve(stream, shared, seed).await;
}

async fn serve_stats(mut stream: TcpStream, shared: &Shared) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut stats = serde_json::to_value(shared.counters.snapshot()).expect("stats serialize");
    stats["peers"] = serde_json::to_value(shared.peers.snapshot()).expect("peers serialize");
    let body = stats.to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// `redis://user:pass@host` → `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_string(),
    }
}
