//! Which source addresses clients came from: connections per peer IP
//! (both servers) and requests to the HTTP target's `/peer` per peer IP.
//!
//! Tests of `--local-ips` read these on `/stats` to see that the VUs'
//! connections really left from the addresses they were given. Counting
//! happens once per connection (and per `/peer` request), never on the
//! other endpoints, so the hot paths stay lock-free. At most
//! [`MAX_PEERS`] addresses are told apart; the rest add up under `other`.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Peer addresses counted one by one.
pub const MAX_PEERS: usize = 1024;

/// What one peer address did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Connections accepted from it.
    pub connections: u64,
    /// Requests to `/peer` from it (HTTP target only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peer_requests: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Live per-peer counters.
#[derive(Default)]
pub struct PeerCounts {
    inner: Mutex<(BTreeMap<IpAddr, PeerStats>, PeerStats)>,
}

impl PeerCounts {
    /// Counts a connection accepted from `ip`.
    pub fn connected(&self, ip: IpAddr) {
        self.with(ip, |s| s.connections += 1);
    }

    /// Counts a `/peer` request from `ip`.
    pub fn requested(&self, ip: IpAddr) {
        self.with(ip, |s| s.peer_requests += 1);
    }

    fn with(&self, ip: IpAddr, f: impl FnOnce(&mut PeerStats)) {
        let mut guard = self.inner.lock();
        let (by_ip, other) = &mut *guard;
        let full = by_ip.len() >= MAX_PEERS && !by_ip.contains_key(&ip);
        f(if full { other } else { by_ip.entry(ip).or_default() });
    }

    /// Every peer address with its counts; `other` holds the addresses
    /// beyond [`MAX_PEERS`] (present only when there were any).
    pub fn snapshot(&self) -> BTreeMap<String, PeerStats> {
        let guard = self.inner.lock();
        let (by_ip, other) = &*guard;
        let mut out: BTreeMap<String, PeerStats> = by_ip.iter().map(|(ip, s)| (ip.to_string(), *s)).collect();
        if *other != PeerStats::default() {
            out.insert("other".into(), *other);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_apart_up_to_the_bound() {
        let p = PeerCounts::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        p.connected(a);
        p.requested(a);
        p.requested(a);
        assert_eq!(p.snapshot()["127.0.0.2"], PeerStats { connections: 1, peer_requests: 2 });
        for i in 0..MAX_PEERS as u32 + 10 {
            p.connected(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        let snap = p.snapshot();
        assert_eq!(snap.len(), MAX_PEERS + 1);
        // 127.0.0.2 took one of the slots; 11 addresses did not get one.
        assert_eq!(snap["other"], PeerStats { connections: 11, peer_requests: 0 });
        let json = serde_json::to_string(&snap["10.0.0.0"]).unwrap();
        assert_eq!(json, r#"{"connections":1}"#);
    }
}
