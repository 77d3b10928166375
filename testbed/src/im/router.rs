//! Where a MSG goes: a recipient connected to this gateway gets it directly;
//! otherwise it is published on the recipient's Redis channel
//! (`volley:im:user:{id}`), which the gateway holding that user subscribed
//! to when the user authenticated. PUBLISH answers how many gateways
//! received it, so a recipient connected nowhere is counted, not guessed.
//!
//! Without Redis there is one gateway (or several in one process sharing a
//! [`Router`]): delivery is local only.

use super::stats::Counters;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Redis channel prefix of a user's deliveries.
pub const CHANNEL_PREFIX: &str = "volley:im:user:";

/// Deliveries queued per connection before further ones are refused
/// (counted as `queue_full`): a recipient that stops reading cannot make
/// the gateway buffer without bound.
pub const QUEUE_PER_CONNECTION: usize = 256;

/// A frame on its way to a connection.
pub struct Delivery {
    /// The frame.
    pub frame: Utf8Bytes,
    /// When it may be written (arrival plus `--delay-ms`).
    pub due: Instant,
}

/// The sending end of a connection's delivery queue.
pub type Outbox = mpsc::Sender<Delivery>;

/// Local users and the Redis bridge.
pub struct Router {
    local: Mutex<HashMap<Arc<str>, (u64, Outbox)>>,
    redis: Option<RedisBridge>,
    next_conn: AtomicU64,
    counters: Arc<Counters>,
    delay: std::time::Duration,
}

/// Publishing and subscribing through Redis.
struct RedisBridge {
    publish: redis::aio::MultiplexedConnection,
    subscribe: redis::aio::PubSubSink,
}

impl Router {
    /// A router without Redis.
    pub fn local(counters: Arc<Counters>, delay: std::time::Duration) -> Arc<Router> {
        Arc::new(Router {
            local: Mutex::new(HashMap::new()),
            redis: None,
            next_conn: AtomicU64::new(1),
            counters,
            delay,
        })
    }

    /// A router that reaches other gateways through Redis at `url`; spawns
    /// the task that hands messages from Redis to local connections.
    pub async fn with_redis(
        url: &str,
        counters: Arc<Counters>,
        delay: std::time::Duration,
    ) -> redis::RedisResult<Arc<Router>> {
        let client = redis::Client::open(url)?;
        let publish = client.get_multiplexed_async_connection().await?;
        let (subscribe, mut stream) = client.get_async_pubsub().await?.split();
        let router = Arc::new(Router {
            local: Mutex::new(HashMap::new()),
            redis: Some(RedisBridge { publish, subscribe }),
            next_conn: AtomicU64::new(1),
            counters,
            delay,
        });
        let weak = Arc::downgrade(&router);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(msg) = stream.next().await {
                let Some(router) = weak.upgrade() else { break };
                let Some(user) = msg.get_channel_name().strip_prefix(CHANNEL_PREFIX) else { continue };
                let Ok(payload) = msg.get_payload::<String>() else { continue };
                router.counters.received_remote.fetch_add(1, Ordering::Relaxed);
                if !router.deliver_local(user, Utf8Bytes::from(payload)) {
                    router.counters.undeliverable.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(router)
    }

    /// Registers `user` on a new connection; returns the connection id.
    /// With Redis, returns only once the user's channel is subscribed, so
    /// AUTH_OK means "messages to me are routable".
    pub async fn register(&self, user: &Arc<str>, outbox: Outbox) -> Result<u64, String> {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let replaced = self.local.lock().insert(user.clone(), (id, outbox)).is_some();
        if let (Some(redis), false) = (&self.redis, replaced) {
            let mut sink = redis.subscribe.clone();
            if let Err(e) = sink.subscribe(format!("{CHANNEL_PREFIX}{user}")).await {
                self.unregister(user, id).await;
                return Err(format!("cannot subscribe to Redis: {e}"));
            }
        }
        Ok(id)
    }

    /// Removes connection `id` of `user` (unless a newer one replaced it).
    pub async fn unregister(&self, user: &Arc<str>, id: u64) {
        let removed = {
            let mut local = self.local.lock();
            match local.get(user) {
                Some((current, _)) if *current == id => local.remove(user).is_some(),
                _ => false,
            }
        };
        if let (Some(redis), true) = (&self.redis, removed) {
            let mut sink = redis.subscribe.clone();
            let _ = sink.unsubscribe(format!("{CHANNEL_PREFIX}{user}")).await;
        }
    }

    /// Routes a delivery frame to `to`, wherever it is connected.
    pub async fn route(&self, to: &str, frame: String) {
        let frame = Utf8Bytes::from(frame);
        if self.deliver_local(to, frame.clone()) {
            return;
        }
        let Some(redis) = &self.redis else {
            self.counters.undeliverable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut conn = redis.publish.clone();
        let receivers: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(format!("{CHANNEL_PREFIX}{to}")).arg(frame.as_str()).query_async(&mut conn).await;
        match receivers {
            Ok(n) if n > 0 => {
                self.counters.routed_remote.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                self.counters.undeliverable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues `frame` for a local recipient; false when `to` is not here.
    fn deliver_local(&self, to: &str, frame: Utf8Bytes) -> bool {
        let outbox = match self.local.lock().get(to) {
            Some((_, outbox)) => outbox.clone(),
            None => return false,
        };
        let delivery = Delivery { frame, due: Instant::now() + self.delay };
        if outbox.try_send(delivery).is_err() {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}
