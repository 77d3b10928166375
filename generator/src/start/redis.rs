//! The start barrier in Redis (`--wait-for N --wait-redis URL`): the
//! generators of a test agree on one common start through a Redis server
//! they all reach, for runs without a `volley-exporter`.
//!
//! Two keys per test id, both with the hash tag `{TEST_ID}` so they live in
//! one slot of a Redis Cluster (a script may only touch keys of one slot):
//! - `volley:{TEST_ID}:ready`: how many generators have become ready (INCR);
//! - `volley:{TEST_ID}:start`: the common start, `MILLIS,READY`: the Redis
//!   server's clock in milliseconds since the Unix epoch, and how many
//!   generators were ready when it was fixed.
//!
//! Joining is one script, so it is atomic: it counts this generator, reads
//! the server's clock, and when the count reaches N and no start exists yet
//! it fixes the start at that clock + the lead (1 s, the exporter's lead, so
//! every generator hears of it before it comes). There is no window where
//! the generator that completes the count could die between counting and
//! fixing the start, leaving the others waiting for nothing. A generator
//! that joins after the start was fixed (the count is past N) gets the start
//! from the same script: if it is still ahead it starts with the others,
//! otherwise at once, and says how late.
//!
//! The others poll (`GET` the start with the server's `TIME`, every 50 ms):
//! at most 20 tiny commands a second per waiting generator, one connection,
//! and nothing to miss — a pub/sub message sent while a subscriber
//! reconnects would be lost, a key is not. Every reading carries the
//! server's clock, which [`super::clock`] pins to this machine's monotonic
//! clock: the generators' own clocks need not agree.
//!
//! Both keys expire `--wait-timeout` + 1 h after the last join, so nothing
//! lingers; until then a test id names one barrier (a second run with the
//! same id would find the first run's start and begin late: give each run
//! its own id, as `--test-id` is meant to). A generator that gives up
//! before the start (timeout, Ctrl-C) takes its count back, so a generator
//! started again in its place is not counted twice.
//!
//! Errors: a URL that cannot be a Redis URL is a configuration error (exit
//! 104, before anything starts); a Redis that cannot be reached when the
//! generator joins ends the wait at once (exit 105, like a wait that times
//! out: the configuration may be right, the run did not happen). Once
//! joined, a failed poll is retried until `--wait-timeout`: the count is in
//! Redis already and the start will be there when it answers again. A
//! Redis that comes back empty (a restart without persistence) has lost
//! the count: a waiting generator that finds neither key joins again.
//! Credentials never appear in messages: the URL is shown without them.
//! `rediss://` is TLS, the server's certificate checked against the
//! system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR` override it).

use super::clock::ClockReading;
use super::StartSignal;
use crate::console::Console;
use crate::flow::token::fleet::shown_url;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How far ahead of the N-th ready generator the start is fixed.
pub const START_LEAD: Duration = volley_exporter::barrier::START_LEAD;
/// Time between two looks at the start while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long the keys outlive the wait.
pub const KEY_TTL_AFTER_WAIT: Duration = Duration::from_secs(3600);
/// Longest a single Redis call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts this generator, reads the clock, fixes the start when the count
/// reaches N. KEYS: ready, start. ARGV: N, key expiry (ms), lead (ms).
/// Returns `{count, TIME seconds, TIME microseconds, start or nil}`.
const JOIN: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local start = redis.call('GET', KEYS[2])
if not start and n >= tonumber(ARGV[1]) then
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
  start = string.format('%d,%d', ms, n)
  redis.call('SET', KEYS[2], start, 'PX', ARGV[2])
end
return {n, t[1], t[2], start or false}
";

/// Takes this generator's count back unless the start was fixed.
/// KEYS: ready, start.
const LEAVE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 and tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return -1
";

/// One test's barrier in one Redis.
pub struct RedisBarrier {
    client: redis::Client,
    /// The URL without credentials, for messages.
    shown: String,
    ready_key: String,
    start_key: String,
    expected: u32,
    ttl: Duration,
    /// Generators ready at the last look (for the timeout message).
    seen: AtomicU32,
    /// Whether this generator is counted in Redis.
    joined: AtomicBool,
    /// Whether the start was found (then nothing is taken back).
    started: AtomicBool,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisBarrier {
    /// Checks the URL (nothing connects yet). `wait_timeout` sets the keys'
    /// expiry.
    pub fn new(url: &str, test_id: &str, expected: u32, wait_timeout: Duration) -> Result<RedisBarrier, String> {
        let shown = shown_url(url);
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!("--wait-redis {shown}: must be a redis:// or rediss:// URL"));
        }
        let client = redis::Client::open(url).map_err(|e| format!("--wait-redis {shown}: {e}"))?;
        Ok(RedisBarrier {
            client,
            shown,
            ready_key: format!("volley:{{{test_id}}}:ready"),
            start_key: format!("volley:{{{test_id}}}:start"),
            expected,
            ttl: wait_timeout.saturating_add(KEY_TTL_AFTER_WAIT),
            seen: AtomicU32::new(0),
            joined: AtomicBool::new(false),
            started: AtomicBool::new(false),
            conn: Mutex::new(None),
        })
    }

    /// The Redis URL without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The keys this barrier uses: ready counter and start.
    pub fn keys(&self) -> (&str, &str) {
        (&self.ready_key, &self.start_key)
    }

    /// Generators of the test ready at the last look.
    pub fn ready_seen(&self) -> u32 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Joins the barrier and waits until the start is known. Errors end
    /// the wait (Redis unreachable when joining).
    pub async fn wait(&self, console: &Console) -> Result<StartSignal, String> {
        let (start, reading) = self.join().await.map_err(|e| self.unreachable(&e))?;
        if let Some(start) = start {
            return self.signal(&start, reading);
        }
        let mut warned = false;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let looked = match self.look().await {
                // No count and no start: Redis restarted empty (or the keys
                // were deleted). Count this generator again, so the fleet
                // still reaches N.
                Ok((None, None, _)) => {
                    console.warn(&format!(
                        "Redis at {} no longer holds the start barrier of this test (restarted?); joining it again",
                        self.shown
                    ));
                    self.join().await
                }
                Ok((start, _, reading)) => Ok((start, reading)),
                Err(e) => Err(e),
            };
            match looked {
                Ok((Some(start), reading)) => return self.signal(&start, reading),
                Ok((None, _)) => warned = false,
                Err(e) => {
                    // Counted already: the start will be there once Redis
                    // answers again, so keep trying until --wait-timeout.
                    if !warned {
                        console.warn(&format!(
                            "Redis at {} did not answer while waiting for the start ({e}); retrying",
                            self.shown
                        ));
                        warned = true;
                    }
                    *self.conn.lock() = None;
                }
            }
        }
    }

    /// Counts this generator (fixing the start if it is the N-th); returns
    /// the start if one is fixed, and the server's clock.
    async fn join(&self) -> Result<(Option<String>, ClockReading), String> {
        let mut conn = self.connection().await?;
        let ttl_ms = self.ttl.as_millis().min(i64::MAX as u128) as i64;
        let sent = Instant::now();
        let (count, secs, micros, start): (u32, u64, u64, Option<String>) = call(
            "join",
            redis::cmd("EVAL")
                .arg(JOIN)
                .arg(2)
                .arg(&self.ready_key)
                .arg(&self.start_key)
                .arg(self.expected)
                .arg(ttl_ms)
                .arg(START_LEAD.as_millis() as u64)
                .query_async(&mut conn),
        )
        .await?;
        let received = Instant::now();
        self.joined.store(true, Ordering::Relaxed);
        self.seen.store(count, Ordering::Relaxed);
        Ok((start, ClockReading::from_time(sent, received, secs, micros)))
    }

    /// Gives up waiting (timeout, Ctrl-C): takes this generator's count
    /// back unless the start was fixed. Best effort, bounded.
    pub async fn leave(&self) {
        if !self.joined.load(Ordering::Relaxed) || self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let mut leave = redis::cmd("EVAL");
        leave.arg(LEAVE).arg(2).arg(&self.ready_key).arg(&self.start_key);
        let _ = tokio::time::timeout(Duration::from_secs(1), leave.query_async::<i64>(&mut conn)).await;
    }

    /// One look: the start if fixed, the ready count, and the clock.
    async fn look(&self) -> Result<(Option<String>, Option<u32>, ClockReading), String> {
        let mut conn = self.connection().await?;
        let sent = Instant::now();
        let (start, ready, (secs, micros)): (Option<String>, Option<u32>, (u64, u64)) = call(
            "GET the start",
            redis::pipe()
                .cmd("GET")
                .arg(&self.start_key)
                .cmd("GET")
                .arg(&self.ready_key)
                .cmd("TIME")
                .query_async(&mut conn),
        )
        .await?;
        let received = Instant::now();
        if let Some(n) = ready {
            self.seen.store(n, Ordering::Relaxed);
        }
        Ok((start, ready, ClockReading::from_time(sent, received, secs, micros)))
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let existing = self.conn.lock().clone();
        match existing {
            Some(c) => Ok(c),
            None => {
                let c = self.connect().await?;
                *self.conn.lock() = Some(c.clone());
                Ok(c)
            }
        }
    }

    fn signal(&self, start: &str, reading: ClockReading) -> Result<StartSignal, String> {
        let (start_ms, ready) = parse_start(start).ok_or_else(|| {
            format!(
                "--wait-redis {}: key {} holds {start:?}, not a start written by volley",
                self.shown, self.start_key
            )
        })?;
        self.started.store(true, Ordering::Relaxed);
        let placed = reading.place(start_ms.saturating_mul(1000), Instant::now());
        Ok(StartSignal { at: placed.at, late: placed.late, ready })
    }

    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        call("connect", self.client.get_multiplexed_async_connection()).await
    }

    fn unreachable(&self, e: &str) -> String {
        format!("--wait-redis {}: cannot join the start barrier: {e}", self.shown)
    }
}

/// `MILLIS,READY` → (millis, ready).
fn parse_start(s: &str) -> Option<(u64, u32)> {
    let (ms, ready) = s.split_once(',')?;
    Some((ms.trim().parse().ok()?, ready.trim().parse().ok()?))
}

async fn call<T>(what: &str, fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {} s", CALL_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_test_id_in_one_cluster_slot() {
        let b = RedisBarrier::new("redis://127.0.0.1:6379/0", "checkout-7", 4, Duration::from_secs(600)).unwrap();
        assert_eq!(b.keys(), ("volley:{checkout-7}:ready", "volley:{checkout-7}:start"));
        assert_eq!(b.ttl, Duration::from_secs(4200));
    }

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let e = RedisBarrier::new("http://u:hunter22@host:6379", "t", 2, Duration::from_secs(1)).err().unwrap();
        assert_eq!(e, "--wait-redis http://host:6379: must be a redis:// or rediss:// URL");
        let b = RedisBarrier::new("redis://:hunter22@10.0.0.5:6380", "t", 2, Duration::from_secs(1)).unwrap();
        assert_eq!(b.shown(), "redis://10.0.0.5:6380");
    }

    #[test]
    fn the_start_value_holds_millis_and_the_ready_count() {
        assert_eq!(parse_start("1750000000123,4"), Some((1_750_000_000_123, 4)));
        assert_eq!(parse_start("1750000000123"), None);
        assert_eq!(parse_start("soon,4"), None);
    }
}
