//! `type: ws-ping` and `type: im-e2e`: WebSocket IM scenarios (README, "WebSocket IM scenarios").
//!
//! A VU holds one authenticated connection across its iterations, so a
//! constant-vus scenario of N VUs holds N connections. One iteration is one
//! tick:
//! - `ws-ping`: send a PING, read until the tick (`pingInterval`) is over
//!   and the PONG came back (or `timeout`), record the round trip;
//! - `im-e2e`: VU slots pair up in allocation order, even sends to the next
//!   (odd) one. A sender sends one MSG per tick (`msgInterval`) while its
//!   receiver is online; every VU reads for the rest of the tick. Receivers
//!   de-duplicate by (sender, seq) ([`dedup`]) and record end-to-end latency
//!   from the `ts` the sender put in (same machine, same clock).
//!
//! A VU without a connection connects (and authenticates) at the start of
//! its iteration; a failure is counted and retried with a capped backoff,
//! so VUs come back when the server does. When the scenario ends,
//! receivers keep reading for up to `drain` until everything their sender
//! sent arrived; then `im_lost_total` = sent − uniquely received.
//!
//! # Layout
//! - [`config`]: the flow's options; [`protocol`]: frame templates.
//! - [`connect`]: TCP / TLS / handshake; [`dedup`]: seq windows;
//!   [`pairs`]: the sender/receiver table of a scenario.
//! - this file: the per-VU state machine.

pub mod config;
pub mod connect;
pub mod dedup;
pub mod pairs;
pub mod protocol;

use crate::config::reader::Obj;
use crate::flow::token::{TokenCache, TokenRefs};
use crate::flow::{FlowError, IterCtx};
use crate::metrics::builtin::*;
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use config::{Kind, TokenSource, WsConfig};
use connect::{ConnectError, Dial, WsStream};
use dedup::{Dedup, Seen};
use futures_util::{SinkExt, StreamExt};
use pairs::Pairs;
use protocol::{Incoming, Vars};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;
use volley_window::Tags;

pub use config::FIELDS;

/// A compiled IM flow.
pub struct WsFlow {
    /// Options.
    pub config: WsConfig,
    tls: tokio_rustls::TlsConnector,
    /// Bounds connection attempts in flight (`maxConnecting`). A handshake
    /// allocates far more than an open connection keeps; thousands at once
    /// would leave the allocator holding that peak for the whole test, and
    /// overflow the server's accept backlog.
    connecting: tokio::sync::Semaphore,
    /// Shared tokens the templates read (`token: "{{token}}"`).
    tokens: TokenRefs,
}

impl std::fmt::Debug for WsFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsFlow").field("kind", &self.config.kind).field("urls", &self.config.urls).finish()
    }
}

/// The series every VU of a scenario records into.
#[derive(Clone, Copy)]
struct Series {
    connect_ok: SeriesId,
    connect_fail: SeriesId,
    auth_ok: SeriesId,
    auth_fail: SeriesId,
    pong_rtt: SeriesId,
    sent: SeriesId,
    unique: SeriesId,
    dup: SeriesId,
    reorder: SeriesId,
    latency: SeriesId,
    lost: SeriesId,
}

/// What the VUs of one scenario share.
pub struct ScenarioState {
    series: Series,
    metrics: Metrics,
    tags: Tags,
    /// im-e2e only.
    pairs: Option<Pairs>,
}

/// What a VU does in its ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Pinger,
    Sender,
    Receiver,
}

/// One VU's connection and counters.
pub struct WsVu {
    conn: Option<WsStream>,
    scenario: Arc<ScenarioState>,
    role: Role,
    /// Scenario-local slot (allocation order).
    index: u64,
    /// User id (`userBase + VU number`).
    user: String,
    url: usize,
    local: Option<std::net::IpAddr>,
    next_ping_id: u64,
    pending_ping: Option<(u64, Instant)>,
    next_ping_at: Option<Instant>,
    seq: u64,
    dedup: Option<Box<Dedup>>,
    retry_at: Option<Instant>,
    failures: u32,
    /// Copies of the shared tokens (empty unless `token` reads one).
    tokens: Vec<TokenCache>,
}

impl WsFlow {
    /// Reads a `ws-ping` or `im-e2e` flow.
    pub fn parse(obj: &Obj, kind: Kind) -> Option<WsFlow> {
        let config = WsConfig::parse(obj, kind)?;
        let tls = crate::flow::http::client::tls_connector(config.insecure_tls, true);
        let connecting = tokio::sync::Semaphore::new(config.max_connecting);
        let mut refs: Vec<&str> = config.token.template().token_refs().collect();
        refs.extend(config.urls.iter().flat_map(|u| u.token_refs()));
        let tokens = TokenRefs::new(refs);
        Some(WsFlow { config, tls, connecting, tokens })
    }

    /// Shared tokens the templates read.
    pub fn token_refs(&self) -> &TokenRefs {
        &self.tokens
    }

    /// Environment variables the templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        self.config.env_refs()
    }

    /// Shared state for a scenario of up to `max_vus` VUs. Every counter is
    /// recorded once as zero, so a clean run shows `im_dup_total 0` rather
    /// than nothing.
    pub fn new_scenario(&self, max_vus: u64, tags: &Tags, metrics: &Metrics) -> Arc<ScenarioState> {
        let s = |def| metrics.series(def, tags.clone());
        let series = Series {
            connect_ok: s(WS_CONNECT_OK),
            connect_fail: s(WS_CONNECT_FAIL),
            auth_ok: s(WS_AUTH_OK),
            auth_fail: s(WS_AUTH_FAIL),
            pong_rtt: s(WS_PONG_RTT_MS),
            sent: s(IM_SENT_TOTAL),
            unique: s(IM_RECV_UNIQUE_TOTAL),
            dup: s(IM_DUP_TOTAL),
            reorder: s(IM_REORDER_TOTAL),
            latency: s(IM_E2E_LATENCY_MS),
            lost: s(IM_LOST_TOTAL),
        };
        let mut zeros = vec![series.connect_ok, series.connect_fail];
        if self.config.protocol.auth.is_some() {
            zeros.extend([series.auth_ok, series.auth_fail]);
        }
        let pairs = (self.config.kind == Kind::ImE2e).then(|| {
            zeros.extend([series.sent, series.unique, series.dup, series.reorder]);
            Pairs::new(max_vus)
        });
        for id in zeros {
            metrics.add(id, 0.0);
        }
        Arc::new(ScenarioState { series, metrics: metrics.clone(), tags: tags.clone(), pairs })
    }

    /// Records what is only known at the end: `im_lost_total`.
    pub fn finish(&self, scenario: &ScenarioState) {
        if let Some(pairs) = &scenario.pairs {
            scenario.metrics.add(scenario.series.lost, pairs.lost() as f64);
        }
    }

    /// A VU's state: its role, user id, gateway URL and source address are
    /// fixed here. The flow's own `localAddrs` win over the test's
    /// `--local-ips` (`local`).
    pub fn new_vu(&self, scenario: &Arc<ScenarioState>, vu: u64, index: u64, local: Option<IpAddr>) -> WsVu {
        let c = &self.config;
        let role = match (c.kind, index % 2) {
            (Kind::Ping, _) => Role::Pinger,
            (Kind::ImE2e, 0) => Role::Sender,
            (Kind::ImE2e, _) => Role::Receiver,
        };
        if let Some(slot) = scenario.pairs.as_ref().and_then(|p| p.slot(index)) {
            slot.vu.store(vu, Ordering::Relaxed);
        }
        let url =
            if c.role_pinned { (index % 2) as usize % c.urls.len() } else { rand::random::<usize>() % c.urls.len() };
        let local =
            if c.local_addrs.is_empty() { local } else { Some(c.local_addrs[(vu as usize) % c.local_addrs.len()]) };
        WsVu {
            conn: None,
            scenario: scenario.clone(),
            role,
            index,
            user: (c.user_base + vu).to_string(),
            url,
            local,
            next_ping_id: 0,
            pending_ping: None,
            next_ping_at: None,
            seq: 0,
            dedup: (role == Role::Receiver).then(|| Box::new(Dedup::new(c.dedup_window))),
            retry_at: None,
            failures: 0,
            tokens: self.tokens.caches(&scenario.tags, &scenario.metrics),
        }
    }

    /// One tick.
    pub async fn iterate(&self, vu: &mut WsVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        if vu.conn.is_none() {
            if let Some(at) = vu.retry_at.take() {
                sleep_until(at).await;
            }
            // Boxed: connecting (TCP, TLS, handshake, AUTH) is a large state
            // machine that must not stay inside every VU's tick while it reads.
            let opened = {
                let _permit = self.connecting.acquire().await.expect("the semaphore is never closed");
                Box::pin(self.open(vu, ctx)).await
            };
            if let Err(e) = opened {
                vu.failures += 1;
                let backoff = Duration::from_millis(250 << vu.failures.min(5)).min(Duration::from_secs(5));
                vu.retry_at = Some(Instant::now() + backoff.mul_f64(0.75 + rand::random::<f64>() * 0.5));
                return Err(FlowError::Step(e));
            }
            vu.failures = 0;
        }
        let c = &self.config;
        let start = Instant::now();
        let tick = if c.kind == Kind::Ping { c.ping_interval } else { c.msg_interval };
        let tick_end = start + tick;
        let result = self.tick(vu, ctx, start, tick_end).await;
        if result.is_err() {
            vu.disconnect();
        }
        if ctx.stopping.is_some_and(|s| s.is_cancelled()) && vu.conn.is_some() {
            Box::pin(self.wind_down(vu)).await;
        }
        result
    }

    async fn tick(&self, vu: &mut WsVu, ctx: &IterCtx<'_>, start: Instant, tick_end: Instant) -> Result<(), FlowError> {
        let c = &self.config;
        match vu.role {
            Role::Pinger => self.send_ping(vu, ctx).await?,
            Role::Sender | Role::Receiver => {
                if !c.ping_interval.is_zero() && vu.next_ping_at.is_none_or(|t| start >= t) {
                    vu.next_ping_at = Some(start + c.ping_interval);
                    self.send_ping(vu, ctx).await?;
                }
                if vu.role == Role::Sender {
                    self.send_msg(vu, ctx).await?;
                }
            }
        }
        // Read for the rest of the tick; a pinger also waits for its PONG.
        loop {
            let deadline = match (vu.role, vu.pending_ping) {
                (Role::Pinger, Some((_, sent))) => tick_end.max(sent + c.timeout),
                _ => tick_end,
            };
            if Instant::now() >= deadline {
                break;
            }
            self.read_one(vu, deadline).await?;
        }
        if vu.role == Role::Pinger {
            if let Some((id, _)) = vu.pending_ping.take() {
                return Err(FlowError::Step(format!(
                    "no PONG for PING {id} within {}",
                    crate::config::duration::format_duration(c.timeout)
                )));
            }
        }
        Ok(())
    }

    /// Reads frames until one arrives or `deadline`; handles it.
    async fn read_one(&self, vu: &mut WsVu, deadline: Instant) -> Result<(), FlowError> {
        let conn = vu.conn.as_mut().ok_or_else(|| FlowError::Step("not connected".into()))?;
        let frame = tokio::select! {
            f = conn.next() => f,
            _ = sleep_until(deadline) => return Ok(()),
        };
        match payload(frame).map_err(FlowError::Step)? {
            Some(data) => self.on_frame(vu, &data),
            None => Ok(()),
        }
    }

    fn on_frame(&self, vu: &mut WsVu, data: &[u8]) -> Result<(), FlowError> {
        let sc = vu.scenario.clone();
        let s = sc.series;
        match self.config.protocol.classify(data) {
            Incoming::Pong(id) => {
                if let Some((pending, sent)) = vu.pending_ping {
                    if id.is_none_or(|id| id == pending) {
                        vu.pending_ping = None;
                        sc.metrics.trend(s.pong_rtt, sent.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
            Incoming::Msg { from, seq, ts } => {
                let Some(dedup) = vu.dedup.as_mut() else { return Ok(()) };
                let seen = dedup.observe(&from, seq);
                let unit = self.config.protocol.ts_unit;
                sc.metrics.batch(|shard| match seen {
                    Seen::Duplicate => shard.add(s.dup, 1.0),
                    Seen::New | Seen::Reordered => {
                        shard.add(s.unique, 1.0);
                        if seen == Seen::Reordered {
                            shard.add(s.reorder, 1.0);
                        }
                        if let Some(ts) = ts {
                            shard.trend(s.latency, unit.to_ms((unit.now() as f64 - ts).max(0.0)));
                        }
                    }
                });
                if seen != Seen::Duplicate {
                    if let Some(slot) = sc.pairs.as_ref().and_then(|p| p.slot(vu.index)) {
                        slot.unique.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Incoming::AuthFail(reason) => {
                sc.metrics.add(s.auth_fail, 1.0);
                return Err(FlowError::Step(format!("authentication revoked: {reason}")));
            }
            Incoming::AuthOk | Incoming::Other => {}
        }
        Ok(())
    }

    async fn send_ping(&self, vu: &mut WsVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        vu.next_ping_id += 1;
        let id = vu.next_ping_id.to_string();
        let ts = self.config.protocol.ts_unit.now().to_string();
        let vars = Vars { user: &vu.user, ts: &ts, ping_id: &id, ..Vars::default() };
        let frame = self.render(&self.config.protocol.ping, ctx, &vars);
        // The clock starts before the write: the PONG may be back before
        // the send future returns.
        let sent_at = Instant::now();
        vu.send(frame).await?;
        vu.pending_ping = Some((vu.next_ping_id, sent_at));
        Ok(())
    }

    async fn send_msg(&self, vu: &mut WsVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        let sc = vu.scenario.clone();
        let Some(pairs) = &sc.pairs else { return Ok(()) };
        let Some(partner) = pairs.partner(vu.index) else { return Ok(()) };
        if !partner.online.load(Ordering::Acquire) {
            return Ok(());
        }
        let to = (self.config.user_base + partner.vu.load(Ordering::Relaxed)).to_string();
        let seq = (vu.seq + 1).to_string();
        let ts = self.config.protocol.ts_unit.now().to_string();
        let mut body = String::new();
        self.config.body.render_with(ctx, &[&vu.user, &to, &seq], &mut body);
        let vars = Vars { user: &vu.user, to: &to, seq: &seq, ts: &ts, body: &body, ..Vars::default() };
        let frame = self.render(&self.config.protocol.msg, ctx, &vars);
        vu.send(frame).await?;
        vu.seq += 1;
        if let Some(slot) = pairs.slot(vu.index) {
            slot.sent.fetch_add(1, Ordering::Relaxed);
        }
        sc.metrics.add(sc.series.sent, 1.0);
        Ok(())
    }

    fn render(&self, t: &crate::flow::template::Template, ctx: &IterCtx<'_>, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(t.source().len() + 32);
        t.render_with(ctx, &vars.values(), &mut out);
        out
    }

    /// Connects and authenticates.
    async fn open(&self, vu: &mut WsVu, ctx: &IterCtx<'_>) -> Result<(), String> {
        let c = &self.config;
        let sc = vu.scenario.clone();
        let s = sc.series;
        for t in &mut vu.tokens {
            t.ready().await.map_err(|e| e.to_string())?;
        }
        // The shared token (if any) is read here, at connect time: a
        // connection stays authenticated as it was opened.
        let (token, url) = {
            let ctx = &IterCtx { tokens: &vu.tokens, ..*ctx };
            let token = match &c.token {
                TokenSource::Template(t) => t.render(ctx),
                TokenSource::Sign(secret) => {
                    let secret = secret.render(ctx);
                    let now = volley_jwt::unix_now();
                    volley_jwt::Key::new(secret.as_bytes()).sign(&volley_jwt::Claims {
                        sub: vu.user.clone(),
                        iat: Some(now),
                        exp: Some(now + c.token_ttl.as_secs().max(1)),
                        nbf: None,
                    })
                }
            };
            (token, c.urls[vu.url].render(ctx))
        };
        let dial = Dial {
            url: &url,
            token: &token,
            auth: c.auth,
            query_param: &c.query_param,
            local: vu.local,
            tls: &self.tls,
        };
        let ws = match connect::within(c.timeout, "connecting", connect::connect(&dial)).await {
            Ok(ws) => ws,
            Err(ConnectError::Unauthorized(e)) => {
                sc.metrics.add(s.auth_fail, 1.0);
                return Err(format!("{url}: {e}"));
            }
            Err(ConnectError::Failed(e)) => {
                sc.metrics.add(s.connect_fail, 1.0);
                return Err(format!("{url}: {e}"));
            }
        };
        sc.metrics.add(s.connect_ok, 1.0);
        vu.conn = Some(ws);
        vu.pending_ping = None;
        if let Some(auth) = &c.protocol.auth {
            let vars = Vars { token: &token, user: &vu.user, ..Vars::default() };
            let frame = self.render(auth, ctx, &vars);
            let outcome = tokio::time::timeout(c.timeout, async {
                vu.send(frame).await.map_err(|e| e.to_string())?;
                loop {
                    let conn = vu.conn.as_mut().ok_or("not connected")?;
                    let Some(data) = payload(conn.next().await).map_err(|e| format!("{e} before AUTH_OK"))? else {
                        continue;
                    };
                    match c.protocol.classify(&data) {
                        Incoming::AuthOk => return Ok(()),
                        Incoming::AuthFail(reason) => return Err(format!("AUTH refused: {reason}")),
                        _ => continue,
                    }
                }
            })
            .await
            .unwrap_or_else(|_| {
                Err(format!("no AUTH_OK within {}", crate::config::duration::format_duration(c.timeout)))
            });
            if let Err(e) = outcome {
                sc.metrics.add(s.auth_fail, 1.0);
                vu.disconnect();
                return Err(format!("{url}: {e}"));
            }
            sc.metrics.add(s.auth_ok, 1.0);
        }
        if let Some(slot) = sc.pairs.as_ref().and_then(|p| p.slot(vu.index)) {
            slot.online.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The scenario ended: a receiver reads on until its sender's messages
    /// all arrived or `drain` is over; then the connection is closed.
    async fn wind_down(&self, vu: &mut WsVu) {
        let sc = vu.scenario.clone();
        let slot = sc.pairs.as_ref().and_then(|p| p.slot(vu.index));
        if vu.role == Role::Sender {
            if let Some(slot) = slot {
                slot.done.store(true, Ordering::Release);
            }
        }
        if vu.role == Role::Receiver {
            let partner = sc.pairs.as_ref().and_then(|p| p.partner(vu.index));
            let end = Instant::now() + self.config.drain;
            loop {
                let complete = match (slot, partner) {
                    (Some(me), Some(p)) => {
                        p.done.load(Ordering::Acquire)
                            && me.unique.load(Ordering::Relaxed) >= p.sent.load(Ordering::Relaxed)
                    }
                    _ => true,
                };
                let now = Instant::now();
                if complete || now >= end {
                    break;
                }
                if self.read_one(vu, end.min(now + Duration::from_millis(20))).await.is_err() {
                    break;
                }
            }
        }
        if let Some(mut conn) = vu.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(None)).await;
        }
        vu.disconnect();
    }
}

/// The payload of a data frame read from a connection; `None` for a control
/// frame; the reason when the connection is over.
fn payload(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<bytes::Bytes>, String> {
    match frame {
        Some(Ok(Message::Text(t))) => Ok(Some(t.into())),
        Some(Ok(Message::Binary(b))) => Ok(Some(b)),
        Some(Ok(Message::Close(f))) => {
            let why = f.map(|f| format!(" ({} {})", u16::from(f.code), f.reason)).unwrap_or_default();
            Err(format!("the server closed the connection{why}"))
        }
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("connection lost: {e}")),
        None => Err("connection lost".into()),
    }
}

impl WsVu {
    async fn send(&mut self, frame: String) -> Result<(), FlowError> {
        let conn = self.conn.as_mut().ok_or_else(|| FlowError::Step("not connected".into()))?;
        conn.send(Message::text(frame)).await.map_err(|e| FlowError::Step(format!("send failed: {e}")))
    }

    /// Drops the connection and marks the VU offline.
    fn disconnect(&mut self) {
        self.conn = None;
        self.pending_ping = None;
        if let Some(slot) = self.scenario.pairs.as_ref().and_then(|p| p.slot(self.index)) {
            slot.online.store(false, Ordering::Release);
        }
    }
}

impl Drop for WsVu {
    fn drop(&mut self) {
        if let Some(slot) = self.scenario.pairs.as_ref().and_then(|p| p.slot(self.index)) {
            slot.online.store(false, Ordering::Release);
            if self.role == Role::Sender {
                slot.done.store(true, Ordering::Release);
            }
        }
    }
}
