//! The network side of `volley-exporter`: generators connect over WebSocket
//! (optionally TLS), authenticate with a bearer token, and stream window
//! reports (see `volley_window::wire`).
//!
//! Anything wrong on a connection — a wrong token, a frame that does not
//! decode, an oversized frame, an unknown protocol version, a window claiming
//! another generator — is counted, logged without secrets, and ends that
//! connection only; the exporter keeps serving the others.

use crate::barrier::{Barriers, Decision};
use crate::control::{Answers, FleetControl};
use crate::merge::Ingest as Merged;
use crate::pipeline::Pipeline;
use crate::secret::constant_time_eq;
use crate::secret::Secret;
use crate::thresholds::{Decision as Fleet, FleetThresholds};
use crate::Log;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use volley_window::control::Command;
use volley_window::wire::{self, Hello, ToExporter, ToGenerator};

/// How long a client has to finish the handshake and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a session waiting for room in the outputs' queues looks again.
const BACKPRESSURE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Acknowledgements queued per connection before further ones are dropped
/// (the generator then resends those windows after a reconnect, harmlessly).
const ACK_QUEUE: usize = 1024;
/// A session that sends nothing (not even the ping a quiet generator sends
/// every 15 s) for this long is closed; its generator reconnects if alive.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Refused connections logged per [`REJECTION_PERIOD`].
const REJECTIONS_LOGGED: u32 = 20;
const REJECTION_PERIOD: Duration = Duration::from_secs(10);

/// The rejection log's current period.
struct Rejections {
    since: std::time::Instant,
    logged: u32,
    suppressed: u64,
}

/// Longest generator id or test id accepted in a hello.
const MAX_ID_BYTES: usize = 256;

/// Counters of the ingest side.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Connections accepted (TCP).
    pub connections: AtomicU64,
    /// Generators that said hello.
    pub sessions: AtomicU64,
    /// Handshakes refused for a missing or wrong token.
    pub auth_failures: AtomicU64,
    /// Connections closed for a bad frame (malformed, oversized, wrong
    /// version, protocol violation) or a failed TLS/WebSocket handshake.
    pub rejected: AtomicU64,
    /// Window reports received.
    pub windows: AtomicU64,
    /// Window parts received (windows larger than one frame).
    pub parts: AtomicU64,
    /// Connections closed at once, or hellos refused, because a limit
    /// (connections, tests) was reached.
    pub over_limit: AtomicU64,
    /// Acknowledgements that could not be queued.
    pub acks_dropped: AtomicU64,
    /// Generators that disconnected without a goodbye and did not come back
    /// within the late horizon: the test went on without them.
    pub lost: AtomicU64,
}

impl IngestStats {
    /// A plain snapshot, for logs and tests.
    pub fn snapshot(&self) -> [(&'static str, u64); 9] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("connections", g(&self.connections)),
            ("sessions", g(&self.sessions)),
            ("auth_failures", g(&self.auth_failures)),
            ("rejected", g(&self.rejected)),
            ("windows", g(&self.windows)),
            ("parts", g(&self.parts)),
            ("over_limit", g(&self.over_limit)),
            ("acks_dropped", g(&self.acks_dropped)),
            ("lost", g(&self.lost)),
        ]
    }
}

type ConnKey = (String, String);

/// Bounds on what generators may make the exporter hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest frame accepted (announced in the welcome).
    pub max_frame: usize,
    /// Connections open at once; more are closed at once and counted.
    pub max_connections: usize,
    /// Tests with generators connected at once; a hello for one more is
    /// refused and counted.
    pub max_tests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_frame: wire::DEFAULT_MAX_FRAME, max_connections: 20_000, max_tests: 100 }
    }
}

/// The ingest server state.
pub struct Ingest {
    pipeline: Arc<Pipeline>,
    token: Secret,
    max_frame: usize,
    max_tests: usize,
    open: Arc<tokio::sync::Semaphore>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Mutex<HashMap<ConnKey, (u64, mpsc::Sender<ToGenerator>)>>,
    /// The last connection of each generator that has not said goodbye, for
    /// telling a generator that reconnected from one that is gone (entries
    /// leave on the goodbye or when the generator is declared lost).
    last_conn: Mutex<HashMap<ConnKey, u64>>,
    next_conn: AtomicU64,
    /// How long a generator may be away without a goodbye before it is lost.
    lost_after: Duration,
    /// Counters.
    pub stats: IngestStats,
    /// Synchronized starts (`--wait-for`).
    pub barriers: Barriers,
    /// Fleet-wide thresholds (an observer of the pipeline).
    pub thresholds: Arc<FleetThresholds>,
    /// Fleet control commands awaiting the generators' answers.
    pub control: FleetControl,
    log: Log,
    rejections: Mutex<Rejections>,
}

impl Ingest {
    /// Ingest feeding `pipeline`. The pipeline's acknowledgement hook must
    /// call [`Ingest::acknowledge`] (see `daemon`).
    pub fn new(
        pipeline: Arc<Pipeline>,
        token: Secret,
        limits: Limits,
        tls: Option<tokio_rustls::TlsAcceptor>,
        lost_after: Duration,
        log: Log,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me: &std::sync::Weak<Ingest>| {
            let me = me.clone();
            let notify: crate::thresholds::Notify = Arc::new(move |test_id: &str, decision: Fleet| {
                if let Some(ingest) = me.upgrade() {
                    ingest.tell_test(test_id, decision);
                }
            });
            let thresholds = FleetThresholds::new(notify, log.clone());
            pipeline.observe(thresholds.clone());
            Self {
                pipeline,
                token,
                max_frame: limits.max_frame,
                max_tests: limits.max_tests,
                open: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
                tls,
                conns: Mutex::new(HashMap::new()),
                last_conn: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(0),
                lost_after,
                rejections: Mutex::new(Rejections { since: std::time::Instant::now(), logged: 0, suppressed: 0 }),
                stats: IngestStats::default(),
                barriers: Barriers::default(),
                thresholds,
                control: FleetControl::default(),
                log,
            }
        })
    }

    /// Sends a fleet decision to every connected generator of a test.
    fn tell_test(&self, test_id: &str, decision: Fleet) {
        let msg = match decision {
            Fleet::Abort { reason } => ToGenerator::Abort { reason },
            Fleet::Verdict { outcomes, generators } => ToGenerator::Verdict { outcomes, generators },
        };
        for ((test, generator), (_, tx)) in self.conns.lock().iter() {
            // A full queue means a stuck connection; the generator then
            // falls back to judging its own share, and says so.
            if test == test_id && tx.try_send(msg.clone()).is_err() {
                (self.log)(format!(
                    "test {test_id}: could not tell {generator} the fleet's decision (its queue is full)"
                ));
            }
        }
    }

    /// Sends an acknowledgement to the generators of stored reports.
    pub fn acknowledge(&self, test_id: &str, reports: &[(String, u64)]) {
        let mut by_gen: HashMap<&str, Vec<u64>> = HashMap::new();
        for (g, seq) in reports {
            by_gen.entry(g).or_default().push(*seq);
        }
        let conns = self.conns.lock();
        for (g, seqs) in by_gen {
            if let Some((_, tx)) = conns.get(&(test_id.to_string(), g.to_string())) {
                if tx.try_send(ToGenerator::Ack { seqs }).is_err() {
                    self.stats.acks_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Accepts connections until `shutdown`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        self.stats.connections.fetch_add(1, Ordering::Relaxed);
                        let Ok(permit) = self.open.clone().try_acquire_owned() else {
                            self.stats.over_limit.fetch_add(1, Ordering::Relaxed);
                            continue; // dropped: closed at once
                        };
                        let _ = tcp.set_nodelay(true);
                        let me = self.clone();
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            me.connection(tcp, shutdown).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        (self.log)(format!("accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn connection(self: Arc<Self>, tcp: TcpStream, shutdown: CancellationToken) {
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        let vanished = match self.tls.clone() {
            Some(acceptor) => match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => self.session(tls, &peer, shutdown.clone()).await,
                _ => {
                    self.reject(&peer, "TLS handshake failed");
                    None
                }
            },
            None => self.session(tcp, &peer, shutdown.clone()).await,
        };
        if let Some((key, me)) = vanished {
            if !shutdown.is_cancelled() {
                tokio::spawn(self.clone().watch_return(key, me));
            }
        }
    }

    /// A generator went away without a goodbye (killed, machine lost, or a
    /// network break it will recover from). If it has not reconnected within
    /// the late horizon — after which nothing it resends could be merged —
    /// it is lost: logged, counted, and its windows are no longer waited for,
    /// so the others' windows flush and the run summary is written when they
    /// finish.
    async fn watch_return(self: Arc<Self>, key: ConnKey, me: u64) {
        tokio::time::sleep(self.lost_after).await;
        let back = self.conns.lock().contains_key(&key) || self.last_conn.lock().get(&key) != Some(&me);
        if back {
            return;
        }
        self.last_conn.lock().remove(&key);
        self.stats.lost.fetch_add(1, Ordering::Relaxed);
        let (test_id, generator) = key;
        (self.log)(format!(
            "test {test_id}: generator {generator} is lost: it disconnected without a goodbye and is not back after {} s; the test goes on without it",
            self.lost_after.as_secs_f64()
        ));
        self.pipeline.finish_generator(&test_id, &generator);
    }

    fn reject(&self, peer: &str, why: &str) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        self.log_rejection(format!("rejected {peer}: {why}"));
    }

    /// Logs a refused connection, at most [`REJECTIONS_LOGGED`] per
    /// [`REJECTION_PERIOD`]: a flood of bad clients is counted in full
    /// (`rejected`, `auth_failures`) but cannot fill the log.
    fn log_rejection(&self, line: String) {
        let mut r = self.rejections.lock();
        let now = std::time::Instant::now();
        if now.duration_since(r.since) >= REJECTION_PERIOD {
            if r.suppressed > 0 {
                (self.log)(format!(
                    "{} more refused connections in {} s were not logged (all are counted)",
                    r.suppressed,
                    REJECTION_PERIOD.as_secs()
                ));
            }
            *r = Rejections { since: now, logged: 0, suppressed: 0 };
        }
        if r.logged < REJECTIONS_LOGGED {
            r.logged += 1;
            (self.log)(line);
        } else {
            r.suppressed += 1;
        }
    }

    /// Serves one connection. Returns the generator and connection when it
    /// ended without a goodbye after a hello.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        peer: &str,
        shutdown: CancellationToken,
    ) -> Option<(ConnKey, u64)> {
        let token = self.token.clone();
        // The error type is tungstenite's; its size is not ours to choose.
        #[allow(clippy::result_large_err)]
        let authorized = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let given = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            let given = given.strip_prefix("Bearer ").unwrap_or("");
            if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
                Ok(resp)
            } else {
                let mut r = ErrorResponse::new(Some("missing or wrong token".into()));
                *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                Err(r)
            }
        };
        let cfg = WebSocketConfig::default()
            .max_message_size(Some(self.max_frame))
            .max_frame_size(Some(self.max_frame))
            .read_buffer_size(16 << 10);
        let mut ws = match tokio::time::timeout(
            HELLO_TIMEOUT,
            tokio_tungstenite::accept_hdr_async_with_config(stream, authorized, Some(cfg)),
        )
        .await
        {
            Ok(Ok(ws)) => ws,
            Ok(Err(WsError::Http(resp))) if resp.status() == 401 => {
                self.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                self.log_rejection(format!("rejected {peer}: missing or wrong token"));
                return None;
            }
            Ok(Err(e)) => {
                self.reject(peer, &format!("WebSocket handshake failed: {e}"));
                return None;
            }
            Err(_) => {
                self.reject(peer, "no WebSocket handshake within 10 s");
                return None;
            }
        };

        let hello = match tokio::time::timeout(HELLO_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => match wire::decode::<ToExporter>(&b, self.max_frame) {
                Ok(ToExporter::Hello(h)) => h,
                Ok(_) => {
                    self.close(ws, peer, CloseCode::Protocol, "the first message must be a hello").await;
                    return None;
                }
                Err(e) => {
                    self.close(ws, peer, CloseCode::Policy, &e.to_string()).await;
                    return None;
                }
            },
            Ok(Some(Err(e))) => {
                self.reject(peer, &ws_error(&e));
                return None;
            }
            Ok(_) => {
                self.close(ws, peer, CloseCode::Protocol, "the first message must be a binary hello").await;
                return None;
            }
            Err(_) => {
                self.close(ws, peer, CloseCode::Policy, "no hello within 10 s").await;
                return None;
            }
        };
        let Hello { generator, test_id, .. } = hello;
        if let Err(why) = check_ids(&generator, &test_id) {
            self.close(ws, peer, CloseCode::Protocol, &why).await;
            return None;
        }
        if !self.pipeline.has_test(&test_id) && self.pipeline.tests() >= self.max_tests {
            self.stats.over_limit.fetch_add(1, Ordering::Relaxed);
            let why = format!("this exporter already holds {} tests (--max-tests)", self.max_tests);
            self.close(ws, peer, CloseCode::Again, &why).await;
            return None;
        }
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        self.pipeline.register(&test_id, &generator);
        let key = (test_id.clone(), generator.clone());
        let (tx, mut rx) = mpsc::channel(ACK_QUEUE);
        let me = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().insert(key.clone(), (me, tx));
        self.last_conn.lock().insert(key.clone(), me);
        let welcome = ToGenerator::Welcome {
            exporter: format!("volley-exporter {}", env!("CARGO_PKG_VERSION")),
            clock_unix_ms: crate::merge::unix_now_ms(),
            max_frame_bytes: self.max_frame as u64,
        };
        if ws.send(Message::Binary(wire::encode(&welcome).into())).await.is_err() {
            self.unregister(&key, me);
            return Some((key, me));
        }
        let mut said_goodbye = false;
        let mut parts = volley_window::parts::Joiner::default();
        let mut heard = tokio::time::Instant::now();
        loop {
            // Backpressure: while an output's queue is full, the next frame
            // stays unread (in TCP buffers, then in the generator's bounded
            // buffer, unacknowledged); acknowledgements still go out.
            let room = self.pipeline.has_room();
            tokio::select! {
                _ = tokio::time::sleep(BACKPRESSURE_POLL), if !room => heard = tokio::time::Instant::now(),
                _ = tokio::time::sleep_until(heard + IDLE_TIMEOUT), if room => {
                    self.unregister(&key, me);
                    self.close(ws, peer, CloseCode::Policy, "nothing received for 60 s").await;
                    return (!said_goodbye).then_some((key, me));
                }
                msg = ws.next(), if room => match msg.inspect(|_| heard = tokio::time::Instant::now()) {
                    Some(Ok(Message::Binary(b))) => match wire::decode::<ToExporter>(&b, self.max_frame) {
                        Ok(ToExporter::Window(report)) => {
                            if let Err(why) = self.window(report, &generator, &test_id) {
                                self.unregister(&key, me);
                                self.close(ws, peer, CloseCode::Policy, &why).await;
                                return (!said_goodbye).then_some((key, me));
                            }
                        }
                        Ok(ToExporter::WindowPart { report, part, parts: n }) => {
                            self.stats.parts.fetch_add(1, Ordering::Relaxed);
                            let joined = parts.add(report, part, n, b.len());
                            if let Err(why) = joined.and_then(|w| w.map_or(Ok(()), |w| self.window(w, &generator, &test_id))) {
                                self.unregister(&key, me);
                                self.close(ws, peer, CloseCode::Policy, &why).await;
                                return (!said_goodbye).then_some((key, me));
                            }
                        }
                        Ok(ToExporter::Goodbye { .. }) => {
                            said_goodbye = true;
                            // Nothing to watch for after a goodbye: the map
                            // only holds generators that may come back.
                            self.last_conn.lock().remove(&key);
                            self.pipeline.finish_generator(&test_id, &generator);
                        }
                        Ok(ToExporter::Ready { expected }) => self.ready(&test_id, &generator, expected),
                        Ok(ToExporter::Status { id, result }) => self.control.answer(id, &generator, result),
                        Ok(ToExporter::Thresholds { sets }) => match self.thresholds.register(&test_id, &generator, &sets) {
                            Ok(None) => {}
                            Ok(Some(reason)) => self.tell_test_one(&key, ToGenerator::Abort { reason }),
                            Err(e) => (self.log)(format!(
                                "test {test_id}: {generator} sent a threshold this exporter cannot judge ({e}); the fleet's thresholds are not judged"
                            )),
                        },
                        Ok(ToExporter::Hello(_)) => {
                            self.unregister(&key, me);
                            self.close(ws, peer, CloseCode::Protocol, "a second hello").await;
                            return (!said_goodbye).then_some((key, me));
                        }
                        Err(e) => {
                            self.unregister(&key, me);
                            self.close(ws, peer, CloseCode::Policy, &e.to_string()).await;
                            return (!said_goodbye).then_some((key, me));
                        }
                    },
                    Some(Ok(Message::Text(_))) => {
                        self.unregister(&key, me);
                        self.close(ws, peer, CloseCode::Unsupported, "text messages are not part of the protocol").await;
                        return (!said_goodbye).then_some((key, me));
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {} // ping/pong: answered by tungstenite
                    Some(Err(e)) => {
                        self.reject(peer, &ws_error(&e));
                        break;
                    }
                },
                Some(out) = rx.recv() => {
                    if ws.send(Message::Binary(wire::encode(&out).into())).await.is_err() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "exporter stopping".into() })).await;
                    break;
                }
            }
        }
        self.unregister(&key, me);
        (!said_goodbye).then_some((key, me))
    }

    /// Merges one whole window of this session's generator.
    fn window(&self, report: volley_window::WindowReport, generator: &str, test_id: &str) -> Result<(), String> {
        if report.generator != generator || report.test_id != test_id {
            return Err("a window of another generator or test".into());
        }
        self.stats.windows.fetch_add(1, Ordering::Relaxed);
        // Acknowledgements come back through the pipeline, after the sinks
        // stored what they cover.
        match self.pipeline.offer(report) {
            Merged::TooLate => (self.log)(format!("{generator}: a window arrived after its late horizon and is lost")),
            Merged::OffClock => (self.log)(format!(
                "{generator}: a window stamped more than {} s ahead of this exporter's clock is refused and lost",
                crate::merge::MAX_AHEAD.as_secs()
            )),
            _ => {}
        }
        Ok(())
    }

    /// A generator waits for the common start of its test.
    fn ready(&self, test_id: &str, generator: &str, expected: u32) {
        let tell = |g: &str, msg: ToGenerator| {
            if let Some((_, tx)) = self.conns.lock().get(&(test_id.to_string(), g.to_string())) {
                // A full queue means a stuck connection: the generator says
                // ready again after its reconnect and is answered then.
                let _ = tx.try_send(msg);
            }
        };
        match self.barriers.ready(test_id, generator, expected) {
            Decision::Wait { ready } => {
                (self.log)(format!("test {test_id}: {generator} is ready ({ready} of {expected})"));
            }
            Decision::Release { generators, in_ms, ready } => {
                (self.log)(format!("test {test_id}: {ready} generators ready; they start together in {in_ms} ms"));
                for g in &generators {
                    tell(g, ToGenerator::Start { in_ms, late_ms: 0, ready });
                }
            }
            Decision::Start { in_ms, late_ms, ready } => {
                if late_ms > 0 {
                    (self.log)(format!(
                        "test {test_id}: {generator} became ready {:.1} s after the synchronized start; its load starts late",
                        late_ms as f64 / 1000.0
                    ));
                }
                tell(generator, ToGenerator::Start { in_ms, late_ms, ready });
            }
        }
    }

    /// Sends `command` to every connected generator of `test_id` and
    /// waits (at most [`crate::control::ANSWER_TIMEOUT`]) for their answers.
    pub async fn command(&self, test_id: &str, command: Command) -> Result<Answers, String> {
        let targets: Vec<(String, mpsc::Sender<ToGenerator>)> = self
            .conns
            .lock()
            .iter()
            .filter(|((t, _), _)| t == test_id)
            .map(|((_, g), (_, tx))| (g.clone(), tx.clone()))
            .collect();
        if targets.is_empty() {
            return Err(format!("no generator of test {test_id:?} is connected"));
        }
        let id = self.control.open(targets.iter().map(|(g, _)| g.clone()).collect())?;
        for (_, tx) in &targets {
            // A full queue: that generator shows as unanswered.
            let _ = tx.try_send(ToGenerator::Control { id, command: command.clone() });
        }
        Ok(self.control.collect(id, crate::control::ANSWER_TIMEOUT).await)
    }

    fn tell_test_one(&self, key: &ConnKey, msg: ToGenerator) {
        if let Some((_, tx)) = self.conns.lock().get(key) {
            let _ = tx.try_send(msg);
        }
    }

    fn unregister(&self, key: &ConnKey, me: u64) {
        let mut conns = self.conns.lock();
        if conns.get(key).is_some_and(|(id, _)| *id == me) {
            conns.remove(key);
        }
    }

    async fn close<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut ws: tokio_tungstenite::WebSocketStream<S>,
        peer: &str,
        code: CloseCode,
        why: &str,
    ) {
        self.reject(peer, why);
        let reason: String = why.chars().take(120).collect();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), ws.close(Some(CloseFrame { code, reason: reason.into() })))
                .await;
    }
}

fn ws_error(e: &WsError) -> String {
    match e {
        WsError::Capacity(c) => format!("oversized frame: {c}"),
        other => format!("connection error: {other}"),
    }
}

/// A hello's ids must be non-empty, bounded, and storable as InfluxDB tags.
fn check_ids(generator: &str, test_id: &str) -> Result<(), String> {
    for (what, id) in [("generator id", generator), ("test id", test_id)] {
        if id.len() > MAX_ID_BYTES {
            return Err(format!("hello: the {what} is longer than {MAX_ID_BYTES} bytes"));
        }
        crate::sink::influx::line::storable(id).map_err(|e| format!("hello: the {what} {e}"))?;
    }
    Ok(())
}
