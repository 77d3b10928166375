//! Exact request counters, lock-free (atomics per status class and code).

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters.
pub struct Counters {
    requests: AtomicU64,
    http2: AtomicU64,
    /// Index = status code (100..=599); the rest stays zero.
    by_status: Vec<AtomicU64>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            http2: AtomicU64::new(0),
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Counters {
    /// Counts one answered request (over HTTP/2 when `http2`).
    pub fn record(&self, status: u16, http2: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if http2 {
            self.http2.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.by_status.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A snapshot.
    pub fn snapshot(&self) -> HttpStats {
        let by_status = self
            .by_status
            .iter()
            .enumerate()
            .filter_map(|(code, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then(|| (code.to_string(), n))
            })
            .collect();
        HttpStats {
            requests: self.requests.load(Ordering::Relaxed),
            http2_requests: self.http2.load(Ordering::Relaxed),
            by_status,
            auth: Default::default(),
            peers: Default::default(),
            shop: Default::default(),
        }
    }
}

/// What the HTTP testbed has served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpStats {
    /// Requests answered (all endpoints, `/stats` excluded).
    pub requests: u64,
    /// Of those, requests over HTTP/2.
    pub http2_requests: u64,
    /// Requests per status code.
    pub by_status: BTreeMap<String, u64>,
    /// Tokens issued and refused by the auth endpoints.
    pub auth: super::auth::AuthStats,
    /// Connections and `/peer` requests per client address.
    pub peers: BTreeMap<String, crate::peers::PeerStats>,
    /// What the shop under `/shop/` served.
    pub shop: super::shop::ShopStats,
}
