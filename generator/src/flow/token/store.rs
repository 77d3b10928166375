//! The token as one generator process holds it, and each VU's view of it.
//!
//! The store is written rarely (a refresh every few seconds at most, from
//! the manager or the Redis listener) and read on every request by every VU,
//! so a reader must not touch a shared lock or reference count per request:
//! each VU keeps its own [`TokenCache`] and only looks into the store when
//! the store's version number moved (one atomic load on a cache line that
//! is written once per refresh).

use crate::flow::FlowError;
use crate::metrics::builtin::{TOKEN_UNAVAILABLE, TOKEN_WAIT};
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_window::Tags;

/// One token and how long it is good for.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token itself.
    pub value: Arc<str>,
    /// When it stops being accepted (local clock).
    pub expires: Instant,
    /// Its whole lifetime as issued (refreshes are scheduled on it).
    pub lifetime: Duration,
}

impl Token {
    /// A token that expires `ttl` from now.
    pub fn new(value: &str, ttl: Duration, lifetime: Duration) -> Token {
        Token { value: Arc::from(value), expires: Instant::now() + ttl, lifetime }
    }

    /// Time left before it expires.
    pub fn remaining(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }

    /// True while the token can still be sent: a request in flight must
    /// not arrive after the expiry, so the last tenth of the lifetime (at
    /// most one second) is not used.
    pub fn usable(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 10).min(Duration::from_secs(1));
        now + margin < self.expires
    }
}

/// The current token of one token-manager flow in this process.
#[derive(Debug)]
pub struct TokenStore {
    name: String,
    wait: Duration,
    version: AtomicU64,
    slot: Mutex<Option<Token>>,
    changed: tokio::sync::Notify,
}

impl TokenStore {
    /// An empty store for the flow `name`; VUs wait up to `wait` for a token.
    pub fn new(name: &str, wait: Duration) -> TokenStore {
        TokenStore {
            name: name.to_string(),
            wait,
            version: AtomicU64::new(0),
            slot: Mutex::new(None),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// The token-manager flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes `token` unless the store already holds one that lives longer
    /// (a refresh always expires later than what it replaces, so an older
    /// copy arriving late from Redis cannot win). True when it was taken.
    pub fn offer(&self, token: Token) -> bool {
        let mut slot = self.slot.lock();
        if let Some(cur) = slot.as_ref() {
            if cur.value == token.value || cur.expires >= token.expires {
                return false;
            }
        }
        *slot = Some(token);
        self.version.fetch_add(1, Ordering::Release);
        drop(slot);
        self.changed.notify_waiters();
        true
    }

    /// The current token, expired or not.
    pub fn current(&self) -> Option<Token> {
        self.slot.lock().clone()
    }
}

/// A VU's copy of one token, and the series its waits go to.
pub struct TokenCache {
    /// The reference as written in the template: `""` for `{{token}}`,
    /// `NAME` for `{{token.NAME}}`.
    pub reference: String,
    store: Arc<TokenStore>,
    version: u64,
    token: Option<Token>,
    wait: SeriesId,
    unavailable: SeriesId,
    metrics: Metrics,
}

impl TokenCache {
    /// A cache over `store` for a VU whose metrics carry `tags`.
    pub fn new(reference: &str, store: Arc<TokenStore>, tags: &Tags, metrics: &Metrics) -> TokenCache {
        let mut tags = tags.clone();
        tags.insert("token", store.name.clone());
        TokenCache {
            reference: reference.to_string(),
            wait: metrics.series(TOKEN_WAIT, tags.clone()),
            unavailable: metrics.series(TOKEN_UNAVAILABLE, tags),
            store,
            version: u64::MAX,
            token: None,
            metrics: metrics.clone(),
        }
    }

    /// The token to send now, as last made ready.
    pub fn value(&self) -> &str {
        self.token.as_ref().map_or("", |t| &t.value)
    }

    /// Makes a usable token ready: at once when this VU's copy is current
    /// and valid, otherwise after waiting for the store to get one, up to the
    /// flow's `wait`. The wait is recorded in `token_wait`; running out of
    /// it counts `token_unavailable` and fails the iteration.
    pub async fn ready(&mut self) -> Result<(), FlowError> {
        if self.refresh_copy(Instant::now()) {
            return Ok(());
        }
        let start = Instant::now();
        let deadline = start + self.store.wait;
        let store = self.store.clone();
        loop {
            // Registered before the check, so a token stored in between
            // still wakes this VU.
            let changed = store.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            if self.refresh_copy(now) {
                break;
            }
            if now >= deadline || tokio::time::timeout(deadline - now, changed).await.is_err() {
                let waited = start.elapsed();
                self.metrics.batch(|s| {
                    s.trend(self.wait, waited.as_secs_f64() * 1e3);
                    s.add(self.unavailable, 1.0);
                });
                return Err(FlowError::TokenUnavailable { flow: self.store.name.clone(), bound: self.store.wait });
            }
        }
        self.metrics.trend(self.wait, start.elapsed().as_secs_f64() * 1e3);
        Ok(())
    }

    /// Re-reads the store if it changed; true when the copy is usable at `now`.
    fn refresh_copy(&mut self, now: Instant) -> bool {
        let v = self.store.version.load(Ordering::Acquire);
        if v != self.version {
            self.token = self.store.current();
            self.version = v;
        }
        self.token.as_ref().is_some_and(|t| t.usable(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(store: &Arc<TokenStore>) -> TokenCache {
        TokenCache::new("", store.clone(), &Tags::new(), &Metrics::new(100, |_| {}))
    }

    #[test]
    fn a_later_expiry_wins_and_a_late_old_copy_does_not() {
        let store = TokenStore::new("auth", Duration::from_secs(1));
        assert!(store.offer(Token::new("a", Duration::from_secs(10), Duration::from_secs(10))));
        assert!(!store.offer(Token::new("old", Duration::from_secs(5), Duration::from_secs(10))));
        assert!(!store.offer(Token::new("a", Duration::from_secs(20), Duration::from_secs(10))));
        assert!(store.offer(Token::new("b", Duration::from_secs(20), Duration::from_secs(20))));
        assert_eq!(&*store.current().unwrap().value, "b");
    }

    #[tokio::test]
    async fn a_waiting_vu_gets_the_first_token_when_it_arrives() {
        let store = Arc::new(TokenStore::new("auth", Duration::from_secs(5)));
        let mut c = cache(&store);
        let s = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.offer(Token::new("first", Duration::from_secs(10), Duration::from_secs(10)));
        });
        c.ready().await.unwrap();
        assert_eq!(c.value(), "first");
    }

    #[tokio::test]
    async fn no_token_within_the_bound_fails_with_the_flow_name() {
        let store = Arc::new(TokenStore::new("auth", Duration::from_millis(50)));
        let mut c = cache(&store);
        let err = c.ready().await.unwrap_err().to_string();
        assert!(err.contains("token-manager \"auth\"") && err.contains("50ms"), "{err}");
        // An expired token is not handed out either.
        store.offer(Token::new("stale", Duration::from_millis(1), Duration::from_secs(1)));
        assert!(c.ready().await.is_err());
    }
}
