//! The per-VU HTTP client on hyper's connection API.
//!
//! One keep-alive connection per VU and origin, driven directly through
//! `hyper::client::conn`: no pool checkout, no per-request URL re-parsing
//! by a higher-level client. HTTPS offers HTTP/2 and HTTP/1.1 by ALPN and
//! speaks what the server picks (as k6 does); plain HTTP is HTTP/1.1.
//! Bytes are counted below TLS by a wrapper around the socket, so
//! `data_sent` / `data_received` are exact.

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where a connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `https`?
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Bytes moved by one connection.
#[derive(Default, Debug)]
pub struct ByteCounts {
    sent: AtomicU64,
    received: AtomicU64,
}

impl ByteCounts {
    /// `(sent, received)` so far.
    pub fn get(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

/// A socket that counts what passes through it.
struct Counting<T> {
    inner: T,
    counts: Arc<ByteCounts>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.counts.received.fetch_add(n, Ordering::Relaxed);
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &res {
            self.counts.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &res {
            self.counts.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// hyper's request sender, for the protocol the connection speaks.
pub enum Sender {
    /// HTTP/1.1.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2 (negotiated by ALPN).
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// True once the connection can take no more requests.
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// True for HTTP/2 (requests carry their absolute URI).
    pub fn is_h2(&self) -> bool {
        matches!(self, Sender::H2(_))
    }

    /// Waits until a request can be sent.
    pub async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    /// Sends a request (after [`Sender::ready`]).
    pub async fn send_request(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

/// An open keep-alive connection.
pub struct Connection {
    /// Where it goes.
    pub origin: Origin,
    /// hyper's request sender.
    pub sender: Sender,
    /// Its byte counters.
    pub counts: Arc<ByteCounts>,
}

/// How long connecting took, for `http_req_connecting` / `_tls_handshaking`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectTimings {
    /// TCP connect.
    pub connecting: Duration,
    /// TLS handshake (zero for plain HTTP).
    pub tls: Duration,
}

/// Opens a connection to `origin` (dialling `dial` instead when the
/// `hosts` option maps it; TLS still names the origin's host), from the
/// source address `local` when given (`--local-ips`).
pub async fn connect(
    origin: &Origin,
    dial: Option<(&str, u16)>,
    tls: &tokio_rustls::TlsConnector,
    local: Option<IpAddr>,
) -> io::Result<(Connection, ConnectTimings)> {
    let start = Instant::now();
    let (host, port) = dial.unwrap_or((&origin.host, origin.port));
    let tcp = crate::flow::net::connect(host, port, local).await?;
    tcp.set_nodelay(true)?;
    let connected = Instant::now();
    let counts = Arc::new(ByteCounts::default());
    let io = Counting { inner: tcp, counts: counts.clone() };
    let handshake_err = |e: hyper::Error| io::Error::other(e);
    let (sender, tls_time) = if origin.tls {
        let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = tls.connect(name, io).await?;
        let tls_time = connected.elapsed();
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let sender = if h2 {
            let (sender, conn) =
                http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.map_err(handshake_err)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(handshake_err)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(sender)
        };
        (sender, tls_time)
    } else {
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(handshake_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        (Sender::H1(sender), Duration::ZERO)
    };
    let timings = ConnectTimings { connecting: connected - start, tls: tls_time };
    Ok((Connection { origin: origin.clone(), sender, counts }, timings))
}

/// TLS settings for a flow: the Mozilla root store, or no verification at
/// all for `insecureSkipTLSVerify` (test environments with self-signed
/// certs); ALPN offers HTTP/2 unless `http1_only`.
pub fn tls_connector(insecure: bool, http1_only: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let mut config = if insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols =
        if http1_only { vec![b"http/1.1".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Accepts any certificate (k6's `insecureSkipTLSVerify`).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
