//! The writer: when to refresh, who may, and what happens when something
//! fails.
//!
//! One iteration of the flow is one step of the writer: hold (or try to
//! take) the lease, store a token that could not be stored before, refresh
//! if the current token is due, then sleep until the next thing to do —
//! the refresh time, the next lease renewal (a third of the lease), the
//! next retry — or the end of the scenario, whichever comes first.
//!
//! Failures never end the iteration with an error: the manager's job is to
//! keep going. A failed refresh counts `token_refresh_fail` and is retried
//! after `retry`, doubling up to `retryMax`. A refresh that worked while
//! Redis did not is used in this process at once and stored in Redis as
//! soon as Redis answers again. A holder that loses Redis keeps refreshing
//! for its own process (the token must not lapse); a standby stays idle
//! until it can take the lease.

use super::fleet::RedisTarget;
use super::store::Token;
use super::{ManagerVu, TokenManagerFlow};
use crate::flow::{FlowError, IterCtx};
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

/// The process's writer state (one per token-manager flow).
pub struct Writer {
    /// This process's lease value.
    id: String,
    conn: Option<MultiplexedConnection>,
    /// Holds the fleet-wide lease (always, without Redis).
    holder: bool,
    /// A token this process refreshed but Redis has not got yet.
    unpublished: Option<Token>,
    /// Consecutive failures, for the backoff.
    failures: u32,
    /// No new attempt before this.
    retry_at: Option<Instant>,
    /// Whether the last Redis call failed (to report an outage once).
    redis_down: bool,
}

impl Writer {
    /// A writer that holds nothing yet.
    pub fn new() -> Writer {
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        Writer {
            id: format!("{host}-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            conn: None,
            holder: false,
            unpublished: None,
            failures: 0,
            retry_at: None,
            redis_down: false,
        }
    }

    async fn conn(&mut self, redis: &RedisTarget) -> Result<&mut MultiplexedConnection, String> {
        if self.conn.is_none() {
            self.conn = Some(redis.connect().await?);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    /// Gives the lease up if held.
    pub async fn release(&mut self, redis: &RedisTarget) {
        if !self.holder {
            return;
        }
        let id = self.id.clone();
        if let Ok(conn) = self.conn(redis).await {
            let _ = redis.release(conn, &id).await;
        }
        self.holder = false;
    }

    /// The retry delay after the failures so far: the shared policy's step,
    /// without jitter (one writer per fleet holds the lease, so no crowd
    /// retries together).
    fn backoff(&self, cfg: &super::config::ManagerConfig) -> Duration {
        volley_window::retry::step(cfg.retry, cfg.retry_max, self.failures)
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

/// What the lease step found.
enum Lease {
    Held,
    Standby,
    /// Redis did not answer.
    Unknown(String),
}

impl TokenManagerFlow {
    /// One step of the writer (one iteration of the flow).
    pub async fn iterate(&self, vu: &mut ManagerVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        let cfg = &self.cfg;
        let Some(shared) = self.shared.get() else {
            return Err(FlowError::Step(format!("token-manager {} was not started", cfg.name)));
        };
        // Another VU of this process is the writer: this one only waits.
        let Ok(mut w) = self.writer.try_lock() else {
            idle(ctx, Instant::now() + cfg.lease).await;
            return Ok(());
        };
        let now = Instant::now();
        let mut wake = now + cfg.lease / 3;
        let mut reachable = true;
        if let Some(redis) = &shared.redis {
            match self.lease(&mut w, redis).await {
                Lease::Held => {}
                Lease::Standby => {
                    idle(ctx, now + cfg.lease / 4).await;
                    return Ok(());
                }
                Lease::Unknown(e) => {
                    reachable = false;
                    if !w.redis_down {
                        w.redis_down = true;
                        shared.console.warn(&format!(
                            "token-manager {}: Redis at {} unreachable ({e}); {}",
                            cfg.name,
                            redis.shown,
                            if w.holder {
                                "this generator keeps refreshing for itself and stores the token when Redis is back"
                            } else {
                                "standing by until it answers"
                            }
                        ));
                    }
                    if !w.holder {
                        // A standby retries only once per lease period, so
                        // when Redis is back the writer from before the
                        // outage (retrying sooner, with the newest token)
                        // gets the lease again.
                        idle(ctx, now + cfg.lease).await;
                        return Ok(());
                    }
                    wake = now + cfg.retry.max(Duration::from_millis(200));
                }
            }
        }

        // A token refreshed while Redis was away goes in first.
        if let (Some(redis), Some(token), true) = (&shared.redis, w.unpublished.clone(), reachable) {
            match self.publish(&mut w, redis, &token).await {
                Ok(()) => {
                    w.unpublished = None;
                    vu.metrics.add(vu.ok, 1.0);
                }
                Err(e) => {
                    vu.metrics.add(vu.fail, 1.0);
                    shared.console.warn(&format!("token-manager {}: storing the token failed: {e}", cfg.name));
                }
            }
        }

        let due = self.due();
        let now = Instant::now();
        if now >= due && w.retry_at.is_none_or(|r| now >= r) {
            match self.fetch(vu, ctx).await {
                Ok(token) => {
                    let first = self.store.current().is_none();
                    self.store.offer(token.clone());
                    w.failures = 0;
                    w.retry_at = None;
                    let stored = match (&shared.redis, reachable) {
                        (None, _) => Ok(()),
                        (Some(_), false) => Err("Redis unreachable".to_string()),
                        (Some(redis), true) => self.publish(&mut w, redis, &token).await,
                    };
                    match stored {
                        Ok(()) => {
                            w.unpublished = None;
                            vu.metrics.add(vu.ok, 1.0);
                        }
                        Err(e) => {
                            vu.metrics.add(vu.fail, 1.0);
                            w.unpublished = Some(token.clone());
                            if reachable {
                                shared.console.warn(&format!(
                                    "token-manager {}: new token in use here, storing it in Redis failed: {e}",
                                    cfg.name
                                ));
                            }
                        }
                    }
                    if first {
                        shared.console.info(&format!(
                            "token-manager {}: first token {} (lifetime {}, refreshed every {})",
                            cfg.name,
                            volley_jwt::redact(&token.value),
                            crate::config::duration::format_duration(token.lifetime),
                            crate::config::duration::format_duration(token.lifetime.mul_f64(cfg.refresh_at)),
                        ));
                    }
                }
                Err(e) => {
                    vu.metrics.add(vu.fail, 1.0);
                    w.failures += 1;
                    let delay = w.backoff(cfg);
                    w.retry_at = Some(Instant::now() + delay);
                    // The first failure of a run of failures, then every tenth.
                    if w.failures == 1 || w.failures.is_multiple_of(10) {
                        shared.console.warn(&format!(
                            "token-manager {}: refresh failed ({} in a row): {e}; retrying in {}",
                            cfg.name,
                            w.failures,
                            crate::config::duration::format_duration(delay)
                        ));
                    }
                }
            }
        }
        wake = wake.min(self.due().max(Instant::now()));
        if let Some(r) = w.retry_at {
            wake = wake.min(r);
        }
        if w.unpublished.is_some() {
            wake = wake.min(Instant::now() + w.backoff(cfg).max(Duration::from_millis(100)));
        }
        drop(w);
        idle(ctx, wake).await;
        Ok(())
    }

    /// When the current token is due for refresh (now when there is none).
    fn due(&self) -> Instant {
        match self.store.current() {
            Some(t) => {
                let before_expiry = t.lifetime.mul_f64(1.0 - self.cfg.refresh_at);
                t.expires.checked_sub(before_expiry).unwrap_or_else(Instant::now)
            }
            None => Instant::now(),
        }
    }

    /// Renews the lease, or tries to take it; a generator that just took
    /// it first reads the token Redis holds, so a takeover keeps the
    /// schedule instead of refreshing at once.
    async fn lease(&self, w: &mut Writer, redis: &RedisTarget) -> Lease {
        let (id, lease, was_holder) = (w.id.clone(), self.cfg.lease, w.holder);
        let result: Result<bool, String> = async {
            let conn = w.conn(redis).await?;
            if was_holder && redis.renew(conn, &id, lease).await? {
                return Ok(true);
            }
            if redis.acquire(conn, &id, lease).await? {
                if let Some(t) = redis.load(conn).await? {
                    self.store.offer(t);
                }
                return Ok(true);
            }
            Ok(false)
        }
        .await;
        let console = &self.shared.get().expect("started").console;
        match result {
            Ok(held) => {
                if w.redis_down {
                    w.redis_down = false;
                    console.info(&format!("token-manager {}: Redis at {} answers again", self.cfg.name, redis.shown));
                }
                if held != was_holder {
                    console.info(&format!(
                        "token-manager {}: {}",
                        self.cfg.name,
                        if held { "this generator is the writer (holds the lease)" } else { "lease lost, standing by" }
                    ));
                }
                w.holder = held;
                if held {
                    Lease::Held
                } else {
                    Lease::Standby
                }
            }
            Err(e) => {
                w.conn = None;
                Lease::Unknown(e)
            }
        }
    }

    async fn publish(&self, w: &mut Writer, redis: &RedisTarget, token: &Token) -> Result<(), String> {
        let result = async { redis.publish(w.conn(redis).await?, token).await }.await;
        if result.is_err() {
            w.conn = None;
        }
        result
    }

    /// Gets a new token: through `refresh` while the current token is
    /// usable, through `login` otherwise or when refresh fails.
    async fn fetch(&self, vu: &mut ManagerVu, ctx: &IterCtx<'_>) -> Result<Token, String> {
        let usable = self.store.current().is_some_and(|t| t.usable(Instant::now()));
        if let (Some(flow), Some(state), true) = (&self.refresh, vu.refresh.as_mut(), usable) {
            match self.ask(flow, state, ctx, "refresh").await {
                Ok(t) => return Ok(t),
                Err(e) => {
                    if let Some(shared) = self.shared.get() {
                        shared.console.warn(&format!("token-manager {}: {e}; logging in instead", self.cfg.name));
                    }
                }
            }
        }
        self.ask(&self.login, &mut vu.login, ctx, "login").await
    }

    async fn ask(
        &self,
        flow: &crate::flow::http::HttpFlow,
        state: &mut crate::flow::http::HttpVu,
        ctx: &IterCtx<'_>,
        what: &str,
    ) -> Result<Token, String> {
        let (status, body) = flow.fetch(state, ctx).await.map_err(|e| format!("{what}: {e}"))?;
        if status == 0 {
            return Err(format!("{what}: no response"));
        }
        if !(200..300).contains(&status) {
            return Err(format!("{what} answered {status}: {}", snippet(&body)));
        }
        parse_token(&body, &self.cfg).map_err(|e| format!("{what} response: {e}"))
    }
}

/// The token and its lifetime from a response body.
pub fn parse_token(body: &[u8], cfg: &super::config::ManagerConfig) -> Result<Token, String> {
    use super::config::Lifetime;
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let token = cfg
        .token_path
        .get(&doc)
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("no token (a non-empty string) at {}", cfg.token_path))?;
    let lifetime = match &cfg.lifetime {
        Lifetime::Fixed(d) => *d,
        Lifetime::FromResponse { path, millis } => {
            let n = path
                .get(&doc)
                .and_then(|v| v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| {
                    format!("no positive number at {path} (set lifetimePath, or lifetime for a fixed lifetime)")
                })?;
            if *millis {
                Duration::from_secs_f64(n / 1e3)
            } else {
                Duration::from_secs_f64(n)
            }
        }
    };
    Ok(Token::new(token, lifetime, lifetime))
}

/// The start of a refused response, for a log line (never a token: only
/// non-2xx bodies get here, and they are cut short).
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        s.push('…');
    }
    s
}

/// Sleeps until `until` or the end of the scenario.
async fn idle(ctx: &IterCtx<'_>, until: Instant) {
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(until));
    match ctx.stopping {
        Some(stop) => {
            tokio::select! {
                _ = sleep => {}
                _ = stop.cancelled() => {}
            }
        }
        None => sleep.await,
    }
}
