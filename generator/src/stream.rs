//! Streaming mode: every closed window goes to a `volley-exporter` over
//! WebSocket (`--exporter ws://…` or `wss://…`), at least once.
//!
//! Windows wait in a bounded buffer until the exporter acknowledges them
//! (it does once they are stored). When the exporter is unreachable the test
//! goes on: one warning, reconnects with capped, jittered backoff, and on
//! every new connection everything unacknowledged is sent again (the
//! exporter deduplicates). A full buffer drops its oldest window and counts
//! it (`windows_dropped` in the health record). Nothing here can slow the
//! test: pushing a window never waits.

use crate::console::Log;
use crate::flow::http::client::tls_connector;
use crate::start::signal::StartSignal;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use volley_window::control::{Command, Status};
use volley_window::retry::Backoff;
use volley_window::threshold::{Outcome, SetSpec};
use volley_window::wire::{self, Hello, ToExporter, ToGenerator};
use volley_window::WindowReport;

/// How long a quiet connection waits before a WebSocket ping (well inside
/// the exporter's idle timeout).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Where and how to stream.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// `ws://host:port` or `wss://host:port`.
    pub url: String,
    /// The exporter's token.
    pub token: String,
    /// Unacknowledged windows kept before the oldest is dropped.
    pub buffer: usize,
    /// Accept any certificate from a `wss://` exporter.
    pub insecure_tls: bool,
    /// `--wait-for N`: say ready and wait for the exporter's common start.
    pub wait_for: Option<u32>,
    /// The test's thresholds, judged by the exporter on the fleet's merged
    /// data (empty: none). With any, the stream stays open after the last
    /// acknowledgement until the exporter's verdict arrives.
    pub thresholds: Vec<SetSpec>,
}

/// Applies a fleet control command and returns the status after it.
pub type ControlHandler = Arc<dyn Fn(&Command) -> Result<Status, String> + Send + Sync>;

/// The exporter's verdict on the fleet's thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetVerdict {
    /// Every threshold's outcome on the merged data.
    pub outcomes: Vec<Outcome>,
    /// How many generators' data it covers.
    pub generators: u32,
}

/// What streaming achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Windows the exporter acknowledged.
    pub acknowledged: u64,
    /// Windows still unacknowledged at the end.
    pub unacknowledged: u64,
    /// Windows dropped because the buffer was full.
    pub dropped: u64,
    /// Successful connections (more than one means reconnects).
    pub connections: u64,
    /// Series left out of windows because one alone exceeds the exporter's
    /// frame limit.
    pub series_dropped: u64,
}

#[derive(Default)]
struct Buffer {
    windows: VecDeque<WindowReport>,
    report: StreamReport,
}

struct Shared {
    cfg: StreamConfig,
    hello: Hello,
    buf: Mutex<Buffer>,
    new_window: Notify,
    closing: AtomicBool,
    closing_now: Notify,
    start: tokio::sync::watch::Sender<Option<StartSignal>>,
    /// Why the exporter aborted the test (fleet `abortOnFail`), once.
    abort: tokio::sync::watch::Sender<Option<String>>,
    verdict: Mutex<Option<FleetVerdict>>,
    /// Applies the exporter's fleet control commands.
    control: std::sync::OnceLock<ControlHandler>,
    /// The offset from this process's clock to the exporter's, measured at
    /// the first welcome (see [`crate::clock`]).
    clock_offset: tokio::sync::watch::Sender<Option<i64>>,
    /// The exporter's frame limit, from its welcome.
    max_frame: std::sync::atomic::AtomicUsize,
    log: Log,
}

/// A running stream to the exporter.
pub struct Streamer {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

enum SessionEnd {
    /// Everything acknowledged and goodbye said.
    Done,
    /// The connection broke; reconnect.
    Lost(String),
}

impl Streamer {
    /// Checks the URL and starts streaming on the current runtime.
    pub fn start(cfg: StreamConfig, hello: Hello, log: Log) -> Result<Self, String> {
        let url = url::Url::parse(&cfg.url).map_err(|e| format!("--exporter {}: not a URL: {e}", cfg.url))?;
        if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
            return Err(format!("--exporter {}: expected ws://HOST:PORT or wss://HOST:PORT", cfg.url));
        }
        if cfg.token.is_empty() {
            return Err("--exporter-token (or VOLLEY_EXPORTER_TOKEN): the exporter needs a token".into());
        }
        if cfg.buffer == 0 {
            return Err("--exporter-buffer: must be at least 1 window".into());
        }
        if cfg.wait_for == Some(0) {
            return Err("--wait-for: must be at least 1 generator".into());
        }
        let shared = Arc::new(Shared {
            cfg,
            hello,
            buf: Mutex::new(Buffer::default()),
            new_window: Notify::new(),
            closing: AtomicBool::new(false),
            closing_now: Notify::new(),
            start: tokio::sync::watch::channel(None).0,
            abort: tokio::sync::watch::channel(None).0,
            verdict: Mutex::new(None),
            control: std::sync::OnceLock::new(),
            clock_offset: tokio::sync::watch::channel(None).0,
            max_frame: std::sync::atomic::AtomicUsize::new(wire::DEFAULT_MAX_FRAME),
            log,
        });
        let task = tokio::spawn(run(shared.clone()));
        Ok(Self { shared, task: Mutex::new(Some(task)) })
    }

    /// Buffers a window for sending; stamps the buffer state into its health
    /// record. Never waits.
    pub fn push(&self, mut report: WindowReport) {
        {
            let mut b = self.shared.buf.lock();
            if b.windows.len() >= self.shared.cfg.buffer {
                b.windows.pop_front();
                b.report.dropped += 1;
            }
            report.health.windows_buffered = b.windows.len() as u64 + 1;
            report.health.windows_dropped = b.report.dropped;
            b.windows.push_back(report);
        }
        self.shared.new_window.notify_one();
    }

    /// Resolves with the common start once the exporter has agreed it
    /// (`--wait-for`); reconnects in between are handled by the stream.
    pub async fn wait_start(&self) -> StartSignal {
        let mut rx = self.shared.start.subscribe();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The offset from this process's clock to the exporter's, once the
    /// first welcome came; waits for it at most `wait` (`None`: the exporter
    /// was not reached, windows keep this machine's clock).
    pub async fn clock_offset(&self, wait: Duration) -> Option<i64> {
        let mut rx = self.shared.clock_offset.subscribe();
        let known = async {
            loop {
                if let Some(o) = *rx.borrow_and_update() {
                    return Some(o);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(wait, known).await.ok().flatten()
    }

    /// Lets the exporter's fleet control commands reach this run.
    pub fn set_control(&self, handler: ControlHandler) {
        let _ = self.shared.control.set(handler);
    }

    /// Resolves with the reason when the exporter aborts the test (a fleet
    /// threshold with `abortOnFail` failed on the merged data).
    pub async fn aborted(&self) -> String {
        let mut rx = self.shared.abort.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The exporter's verdict on the fleet's thresholds, once it came
    /// (after [`Streamer::finish`]).
    pub fn verdict(&self) -> Option<FleetVerdict> {
        self.shared.verdict.lock().clone()
    }

    /// Sends what is left and waits for its acknowledgement, for at most
    /// `deadline`; then, when everything was delivered and the exporter
    /// judges the thresholds, for its verdict for at most `verdict_wait`
    /// more; then stops.
    pub async fn finish(&self, deadline: Duration, verdict_wait: Duration) -> StreamReport {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.closing_now.notify_waiters();
        self.shared.new_window.notify_one();
        let task = self.task.lock().take();
        if let Some(mut task) = task {
            let until = tokio::time::Instant::now() + deadline;
            let delivered = async {
                while !self.shared.buf.lock().windows.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            let ended = tokio::select! {
                _ = &mut task => true,
                _ = tokio::time::timeout_at(until, delivered) => false,
            };
            if !ended {
                let wait_verdict = !self.shared.cfg.thresholds.is_empty() && self.shared.buf.lock().windows.is_empty();
                let rest = until.saturating_duration_since(tokio::time::Instant::now())
                    + if wait_verdict { verdict_wait } else { Duration::ZERO };
                if tokio::time::timeout(rest, &mut task).await.is_err() {
                    task.abort();
                    let _ = task.await;
                }
            }
        }
        let b = self.shared.buf.lock();
        StreamReport { unacknowledged: b.windows.len() as u64, ..b.report.clone() }
    }
}

async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut warned = false;
    loop {
        // At the end with nothing unacknowledged: done, even if the exporter
        // is unreachable for a goodbye (it then flushes by its grace period).
        if shared.closing.load(Ordering::Acquire) && shared.buf.lock().windows.is_empty() && warned {
            return;
        }
        let end = match connect(&shared).await {
            Ok(ws) => {
                shared.buf.lock().report.connections += 1;
                if warned {
                    let n = shared.buf.lock().windows.len();
                    (shared.log)(format!("exporter {} reachable again; sending {n} buffered windows", shared.cfg.url));
                    warned = false;
                }
                backoff.succeeded();
                session(&shared, ws).await
            }
            Err(e) => SessionEnd::Lost(e),
        };
        match end {
            SessionEnd::Done => return,
            SessionEnd::Lost(why) => {
                if !warned {
                    (shared.log)(format!(
                        "exporter {}: {why}; the test goes on, windows are kept (up to {}) and resent on reconnect",
                        shared.cfg.url, shared.cfg.buffer
                    ));
                    warned = true;
                }
                tokio::time::sleep(backoff.failed()).await;
            }
        }
    }
}

async fn connect(shared: &Shared) -> Result<Ws, String> {
    let url = url::Url::parse(&shared.cfg.url).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default().to_string();
    let tls = url.scheme() == "wss";
    let port = url.port().unwrap_or(if tls { 443 } else { 80 });
    let mut request = shared.cfg.url.as_str().into_client_request().map_err(|e| e.to_string())?;
    let auth = format!("Bearer {}", shared.cfg.token);
    request
        .headers_mut()
        .insert("authorization", auth.parse().map_err(|_| "the token has characters not allowed in a header")?);
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let stream = tls_connector(shared.cfg.insecure_tls, true)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (ws, _) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::client_async(request, io))
        .await
        .map_err(|_| "WebSocket handshake timed out".to_string())?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401 => {
                "the exporter refused the token (401)".to_string()
            }
            other => format!("WebSocket handshake failed: {other}"),
        })?;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: &ToExporter) -> Result<(), String> {
    ws.send(Message::Binary(wire::encode(msg).into())).await.map_err(|e| format!("connection lost: {e}"))
}

/// Records what the exporter's welcome says: its clock (the offset is
/// fixed by the first welcome, so windows keep one clock for the whole run;
/// a later one that disagrees by more than a second is only reported) and
/// its frame limit.
fn welcomed(shared: &Shared, sent_at: i64, clock_unix_ms: u64, max_frame_bytes: u64) {
    let offset = crate::clock::offset(sent_at, clock_unix_ms, crate::clock::unix_now_ms());
    let first = shared.clock_offset.send_if_modified(|o| o.is_none() && o.replace(offset).is_none());
    let used = shared.clock_offset.borrow().unwrap_or(offset);
    if !first && (offset - used).abs() > 1000 {
        (shared.log)(format!(
            "exporter {}: its clock now differs from the one windows are stamped on by {} ms; windows keep the clock of the test's start so they stay aligned",
            shared.cfg.url,
            offset - used
        ));
    }
    let limit =
        usize::try_from(max_frame_bytes).unwrap_or(usize::MAX).clamp(wire::MIN_MAX_FRAME, wire::DEFAULT_MAX_FRAME);
    shared.max_frame.store(limit, Ordering::Relaxed);
}

/// Sends one window in frames the exporter accepts: whole, or in parts.
async fn send_window(shared: &Shared, ws: &mut Ws, w: &WindowReport) -> Result<(), String> {
    let (frames, dropped) = volley_window::parts::frames(w, shared.max_frame.load(Ordering::Relaxed));
    if dropped > 0 {
        let total = {
            let mut b = shared.buf.lock();
            b.report.series_dropped += dropped as u64;
            b.report.series_dropped
        };
        (shared.log)(format!(
            "window {}: {dropped} series are each larger than the exporter's frame limit and were left out ({total} so far); raise the exporter's --max-frame-bytes",
            w.seq
        ));
    }
    for f in frames {
        ws.send(Message::Binary(f.into())).await.map_err(|e| format!("connection lost: {e}"))?;
    }
    Ok(())
}

async fn session(shared: &Shared, mut ws: Ws) -> SessionEnd {
    let sent_at = crate::clock::unix_now_ms();
    if let Err(e) = send(&mut ws, &ToExporter::Hello(shared.hello.clone())).await {
        return SessionEnd::Lost(e);
    }
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => match wire::decode::<ToGenerator>(&b, wire::DEFAULT_MAX_FRAME) {
            Ok(ToGenerator::Welcome { clock_unix_ms, max_frame_bytes, .. }) => {
                welcomed(shared, sent_at, clock_unix_ms, max_frame_bytes);
            }
            Ok(other) => return SessionEnd::Lost(format!("expected a welcome, got {other:?}")),
            Err(e) => return SessionEnd::Lost(format!("bad answer from the exporter: {e}")),
        },
        Ok(Some(Ok(Message::Close(f)))) => {
            return SessionEnd::Lost(format!(
                "the exporter closed the connection: {}",
                f.map(|f| f.reason.to_string()).unwrap_or_default()
            ))
        }
        Ok(_) => return SessionEnd::Lost("no welcome from the exporter".into()),
        Err(_) => return SessionEnd::Lost("no welcome within 5 s".into()),
    }
    if !shared.cfg.thresholds.is_empty() {
        if let Err(e) = send(&mut ws, &ToExporter::Thresholds { sets: shared.cfg.thresholds.clone() }).await {
            return SessionEnd::Lost(e);
        }
    }
    if let Some(expected) = shared.cfg.wait_for {
        if shared.start.borrow().is_none() {
            if let Err(e) = send(&mut ws, &ToExporter::Ready { expected }).await {
                return SessionEnd::Lost(e);
            }
        }
    }
    let mut sent_upto: Option<u64> = None;
    let mut goodbye_sent = false;
    loop {
        // Send everything not yet sent on this connection, in order.
        let pending: Vec<WindowReport> = {
            let b = shared.buf.lock();
            b.windows.iter().filter(|w| sent_upto.is_none_or(|s| w.seq > s)).cloned().collect()
        };
        for w in pending {
            let seq = w.seq;
            if let Err(e) = send_window(shared, &mut ws, &w).await {
                return SessionEnd::Lost(e);
            }
            sent_upto = Some(seq);
        }
        let closing = shared.closing.load(Ordering::Acquire);
        if closing && !goodbye_sent {
            let last_seq = sent_upto.or_else(|| shared.hello_last_seq());
            if let Err(e) = send(&mut ws, &ToExporter::Goodbye { last_seq }).await {
                return SessionEnd::Lost(e);
            }
            goodbye_sent = true;
        }
        let judged = shared.cfg.thresholds.is_empty() || shared.verdict.lock().is_some();
        if closing && judged && shared.buf.lock().windows.is_empty() {
            let _ = ws.close(None).await;
            return SessionEnd::Done;
        }
        tokio::select! {
            _ = shared.new_window.notified() => {}
            _ = shared.closing_now.notified(), if !closing => {}
            // Quiet (waiting at a barrier, long windows): show the exporter
            // the connection is alive before its idle timeout.
            _ = tokio::time::sleep(KEEPALIVE) => {
                if let Err(e) = ws.send(Message::Ping(Vec::new().into())).await {
                    return SessionEnd::Lost(format!("connection lost: {e}"));
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => match wire::decode::<ToGenerator>(&b, wire::DEFAULT_MAX_FRAME) {
                    Ok(ToGenerator::Ack { seqs }) => {
                        let mut b = shared.buf.lock();
                        let before = b.windows.len();
                        b.windows.retain(|w| !seqs.contains(&w.seq));
                        b.report.acknowledged += (before - b.windows.len()) as u64;
                    }
                    Ok(ToGenerator::Start { in_ms, late_ms, ready }) => {
                        let signal = StartSignal {
                            at: tokio::time::Instant::now() + Duration::from_millis(in_ms),
                            late: Duration::from_millis(late_ms),
                            ready,
                        };
                        // Only the first answer counts: a repeat after a
                        // reconnect must not move the start.
                        shared.start.send_if_modified(|s| s.is_none() && s.replace(signal).is_none());
                    }
                    Ok(ToGenerator::Abort { reason }) => {
                        shared.abort.send_if_modified(|a| a.is_none() && a.replace(reason).is_none());
                    }
                    Ok(ToGenerator::Verdict { outcomes, generators }) => {
                        *shared.verdict.lock() = Some(FleetVerdict { outcomes, generators });
                    }
                    Ok(ToGenerator::Control { id, command }) => {
                        let result = match shared.control.get() {
                            Some(apply) => apply(&command),
                            None => Err("this generator takes no control commands".into()),
                        };
                        if command != Command::default() {
                            let what = crate::control::api::describe(&command);
                            (shared.log)(match &result {
                                Ok(_) => format!("fleet control through the exporter: {what}"),
                                Err(e) => format!("fleet control through the exporter: {what} refused: {e}"),
                            });
                        }
                        if let Err(e) = send(&mut ws, &ToExporter::Status { id, result }).await {
                            return SessionEnd::Lost(e);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return SessionEnd::Lost(format!("bad message from the exporter: {e}")),
                },
                Some(Ok(Message::Close(f))) => {
                    return SessionEnd::Lost(format!(
                        "the exporter closed the connection: {}",
                        f.map(|f| f.reason.to_string()).unwrap_or_default()
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return SessionEnd::Lost(format!("connection lost: {e}")),
                None => return SessionEnd::Lost("connection closed".into()),
            },
        }
    }
}

impl Shared {
    /// With nothing sent on this connection, the last sequence number is
    /// the newest window still buffered (or none).
    fn hello_last_seq(&self) -> Option<u64> {
        self.buf.lock().windows.back().map(|w| w.seq)
    }
}
