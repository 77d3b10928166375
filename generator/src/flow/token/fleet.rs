//! The token in Redis: where it is kept, the writer's lease, and the
//! listener that keeps this process's copy current.
//!
//! Keys (with the default `key` of `volley:token:NAME`):
//! - `KEY`: the token itself, `SET KEY token PX ttl`, so anything that can
//!   `GET` a key (a k6 script with `k6/x/redis` during a migration, say)
//!   reads the current token and Redis drops it when it expires;
//! - `KEY:lifetime`: its whole lifetime in milliseconds, same expiry, so a
//!   writer taking over keeps the refresh schedule instead of starting anew;
//! - `KEY:lease`: the single writer's lease, `SET NX PX`, renewed while held;
//! - channel `KEY:updates` (or `channel`): every new token, as
//!   `{"token":"…","ttl_ms":N,"lifetime_ms":N}`.
//!
//! Every call is bounded by a timeout: a Redis that stops answering must
//! cost the manager a retry, never a stuck VU.

use super::store::{Token, TokenStore};
use crate::console::Console;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest any single Redis call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Where one token lives in Redis.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    client: redis::Client,
    /// The URL without credentials, for messages.
    pub shown: String,
    /// The token's key.
    pub key: String,
    lifetime_key: String,
    lease_key: String,
    /// Where new tokens are published.
    pub channel: String,
}

impl RedisTarget {
    /// Opens (lazily: nothing connects yet) the Redis at `url`.
    pub fn new(url: &str, key: &str, channel: Option<&str>) -> Result<RedisTarget, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{}: {e}", shown_url(url)))?;
        Ok(RedisTarget {
            client,
            shown: shown_url(url),
            key: key.to_string(),
            lifetime_key: format!("{key}:lifetime"),
            lease_key: format!("{key}:lease"),
            channel: channel.map_or_else(|| format!("{key}:updates"), str::to_string),
        })
    }

    /// A command connection.
    pub async fn connect(&self) -> Result<MultiplexedConnection, String> {
        bounded("connect", self.client.get_multiplexed_async_connection()).await
    }

    /// Takes the lease for `lease` if nobody holds it.
    pub async fn acquire(&self, conn: &mut MultiplexedConnection, id: &str, lease: Duration) -> Result<bool, String> {
        let set: Option<String> = bounded(
            "SET NX lease",
            redis::cmd("SET").arg(&self.lease_key).arg(id).arg("NX").arg("PX").arg(millis(lease)).query_async(conn),
        )
        .await?;
        Ok(set.is_some())
    }

    /// Extends the lease if `id` still holds it; false when it was lost.
    pub async fn renew(&self, conn: &mut MultiplexedConnection, id: &str, lease: Duration) -> Result<bool, String> {
        const RENEW: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let n: i64 = bounded(
            "renew lease",
            redis::cmd("EVAL").arg(RENEW).arg(1).arg(&self.lease_key).arg(id).arg(millis(lease)).query_async(conn),
        )
        .await?;
        Ok(n == 1)
    }

    /// Gives the lease up if `id` holds it, so a standby need not wait
    /// for it to expire.
    pub async fn release(&self, conn: &mut MultiplexedConnection, id: &str) -> Result<(), String> {
        const RELEASE: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        let _: i64 = bounded(
            "release lease",
            redis::cmd("EVAL").arg(RELEASE).arg(1).arg(&self.lease_key).arg(id).query_async(conn),
        )
        .await?;
        Ok(())
    }

    /// Stores `token` for the rest of its life and publishes it.
    pub async fn publish(&self, conn: &mut MultiplexedConnection, token: &Token) -> Result<(), String> {
        let ttl = millis(token.remaining());
        if ttl == 0 {
            return Err("the token expired before it could be stored".into());
        }
        let lifetime = millis(token.lifetime);
        let message = serde_json::json!({"token": &*token.value, "ttl_ms": ttl, "lifetime_ms": lifetime}).to_string();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&self.key)
            .arg(&*token.value)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("SET")
            .arg(&self.lifetime_key)
            .arg(lifetime)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message)
            .ignore();
        bounded("SET and PUBLISH the token", pipe.query_async::<()>(conn)).await
    }

    /// The token Redis holds now, if any.
    pub async fn load(&self, conn: &mut MultiplexedConnection) -> Result<Option<Token>, String> {
        let (value, ttl, lifetime): (Option<String>, i64, Option<u64>) = bounded(
            "GET the token",
            redis::pipe()
                .cmd("GET")
                .arg(&self.key)
                .cmd("PTTL")
                .arg(&self.key)
                .cmd("GET")
                .arg(&self.lifetime_key)
                .query_async(conn),
        )
        .await?;
        Ok(match value {
            Some(v) if ttl > 0 => {
                let ttl = Duration::from_millis(ttl as u64);
                let lifetime = lifetime.map_or(ttl, Duration::from_millis);
                Some(Token::new(&v, ttl, lifetime.max(ttl)))
            }
            _ => None,
        })
    }
}

/// Keeps `store` current from Redis until `stop`: every published token at
/// once, and a GET every `poll` in case a message was missed (a reconnect,
/// a Redis restart). Reconnects with a capped backoff; an outage is reported
/// once when it starts and once when it ends. The last token stays in use
/// meanwhile, until it expires.
pub async fn listen(
    target: RedisTarget,
    store: Arc<TokenStore>,
    poll: Duration,
    stop: CancellationToken,
    console: Console,
) {
    let mut backoff = Duration::from_millis(100);
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let result = tokio::select! {
            r = session(&target, &store, poll, &mut down_since, &console) => r,
            _ = stop.cancelled() => return,
        };
        if let Err(e) = result {
            if down_since.is_none() {
                console.warn(&format!(
                    "token-manager {}: Redis at {} unreachable ({e}); VUs keep the last token until it expires, retrying",
                    store.name(),
                    target.shown
                ));
                down_since = Some(std::time::Instant::now());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn session(
    target: &RedisTarget,
    store: &TokenStore,
    poll: Duration,
    down_since: &mut Option<std::time::Instant>,
    console: &Console,
) -> Result<(), String> {
    let pubsub = bounded("connect", target.client.get_async_pubsub()).await?;
    let (mut sink, mut messages) = pubsub.split();
    bounded("SUBSCRIBE", sink.subscribe(&target.channel)).await?;
    let mut conn = target.connect().await?;
    if let Some(t) = target.load(&mut conn).await? {
        store.offer(t);
    }
    if let Some(since) = down_since.take() {
        console.info(&format!(
            "token-manager {}: Redis at {} reachable again after {:.1}s",
            store.name(),
            target.shown,
            since.elapsed().as_secs_f64()
        ));
    }
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let msg = msg.ok_or("subscription closed")?;
                if let Some(t) = parse_message(msg.get_payload_bytes()) {
                    store.offer(t);
                }
            }
            _ = tick.tick() => {
                if let Some(t) = target.load(&mut conn).await? {
                    store.offer(t);
                }
            }
        }
    }
}

/// A published token; `None` for anything else on the channel.
fn parse_message(payload: &[u8]) -> Option<Token> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let token = v.get("token")?.as_str().filter(|t| !t.is_empty())?;
    let ttl = Duration::from_millis(v.get("ttl_ms")?.as_u64()?);
    let lifetime = v.get("lifetime_ms").and_then(|l| l.as_u64()).map_or(ttl, Duration::from_millis);
    Some(Token::new(token, ttl, lifetime.max(ttl)))
}

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {}s", CALL_TIMEOUT.as_secs())),
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// `redis://user:secret@host:6379/0` → `redis://host:6379/0`: credentials
/// never reach a log line.
pub fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_string(),
        },
        None => volley_jwt::redact(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_cut_from_urls() {
        assert_eq!(shown_url("redis://u:p%40ss@10.0.0.1:6380/2"), "redis://10.0.0.1:6380/2");
        assert_eq!(shown_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn published_messages_carry_the_remaining_time() {
        let t = parse_message(br#"{"token":"abc","ttl_ms":1500,"lifetime_ms":3000}"#).unwrap();
        assert_eq!(&*t.value, "abc");
        assert_eq!(t.lifetime, Duration::from_millis(3000));
        assert!(t.remaining() <= Duration::from_millis(1500) && t.remaining() > Duration::from_millis(1000));
        assert!(parse_message(b"not json").is_none());
        assert!(parse_message(br#"{"token":"","ttl_ms":5}"#).is_none());
    }
}
