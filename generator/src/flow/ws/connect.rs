//! Opening one WebSocket connection: TCP from a chosen source address
//! ([`crate::flow::net`]), TLS for `wss://`, the handshake with the token in
//! a header or the query.
//!
//! Sized for many idle connections: small tungstenite buffers (it keeps
//! its whole read buffer resident once a frame arrived), and source
//! addresses bound without reserving a port.

use super::config::AuthMode;
use crate::flow::net;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Read buffer per connection (tungstenite's default is 128 KiB).
pub const WS_READ_BUFFER: usize = 4096;

/// A byte stream: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket.
pub type WsStream = WebSocketStream<Box<dyn Io>>;

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server refused the token at the handshake (401 or 403).
    Unauthorized(String),
    /// Anything else: DNS, TCP, TLS, handshake, timeout.
    Failed(String),
}

/// The client-side WebSocket settings.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// How to reach the server.
pub struct Dial<'a> {
    /// `ws://` or `wss://` URL.
    pub url: &'a str,
    /// The token and how it travels on the handshake.
    pub token: &'a str,
    /// Header, query or neither.
    pub auth: AuthMode,
    /// Query parameter name for [`AuthMode::Query`].
    pub query_param: &'a str,
    /// Source address to bind, if any.
    pub local: Option<IpAddr>,
    /// TLS settings for `wss://`.
    pub tls: &'a tokio_rustls::TlsConnector,
}

/// Connects and completes the WebSocket handshake.
pub async fn connect(dial: &Dial<'_>) -> Result<WsStream, ConnectError> {
    let fail = |m: String| ConnectError::Failed(m);
    let parsed = url::Url::parse(dial.url).map_err(|e| fail(format!("invalid URL {:?}: {e}", dial.url)))?;
    let tls = match parsed.scheme() {
        "ws" => false,
        "wss" => true,
        other => return Err(fail(format!("URL {:?} has scheme {other}, expected ws or wss", dial.url))),
    };
    let host = parsed.host_str().ok_or_else(|| fail(format!("URL {:?} has no host", dial.url)))?.to_string();
    let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
    let url = match dial.auth {
        AuthMode::Query => {
            let mut u = parsed.clone();
            u.query_pairs_mut().append_pair(dial.query_param, dial.token);
            u.to_string()
        }
        _ => dial.url.to_string(),
    };
    let mut request = url.as_str().into_client_request().map_err(|e| fail(format!("invalid URL: {e}")))?;
    if dial.auth == AuthMode::Header {
        let value = format!("Bearer {}", dial.token)
            .parse()
            .map_err(|_| fail("the token has characters not allowed in a header".into()))?;
        request.headers_mut().insert("authorization", value);
    }
    let addr = net::resolve(&host, port, dial.local).await.map_err(fail)?;
    let tcp = net::connect_addr(addr, dial.local).await.map_err(|e| fail(format!("cannot connect to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| fail(e.to_string()))?;
        Box::new(dial.tls.connect(name, tcp).await.map_err(|e| fail(format!("TLS handshake failed: {e}")))?)
    } else {
        Box::new(tcp)
    };
    match tokio_tungstenite::client_async_with_config(request, io, Some(ws_config())).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if matches!(r.status().as_u16(), 401 | 403) => {
            let body = r.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err(ConnectError::Unauthorized(format!("handshake refused with {}: {}", r.status(), body.trim())))
        }
        Err(e) => Err(fail(format!("WebSocket handshake failed: {e}"))),
    }
}

/// Waits at most `d` for `fut`.
pub async fn within<T>(
    d: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(d, fut).await {
        Ok(r) => r,
        Err(_) => {
            Err(ConnectError::Failed(format!("{what} timed out after {}", crate::config::duration::format_duration(d))))
        }
    }
}
