//! The gateway's exact counters, served on `GET /stats` and printed at exit.
//!
//! Tests compare them with what the generator measured: every injected
//! fault is counted here once, at the moment it is applied.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters (relaxed atomics: totals, not orderings).
        #[derive(Default)]
        pub struct Counters { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A snapshot of [`Counters`].
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
        pub struct ImStats { $($(#[$doc])* pub $name: u64,)* }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> ImStats {
                ImStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// WebSocket connections currently open.
    connections_open,
    /// WebSocket handshakes completed.
    connections_total,
    /// Handshakes refused because the token in the header or query was bad or expired.
    handshake_rejected,
    /// AUTH frames accepted (AUTH_OK sent).
    auth_ok,
    /// AUTH frames refused (AUTH_FAIL sent, connection closed).
    auth_fail,
    /// PINGs answered.
    pings,
    /// MSG frames received from senders.
    msgs_received,
    /// MSG deliveries written to a recipient's connection (duplicates included).
    delivered,
    /// Deliveries sent twice on purpose (`--dup-pct`).
    duplicated,
    /// Deliveries held back and sent after the next one (`--reorder-pct`).
    reordered,
    /// Deliveries discarded on purpose (`--drop-pct`).
    dropped,
    /// MSGs whose recipient was connected to no gateway.
    undeliverable,
    /// MSGs published to Redis for another gateway.
    routed_remote,
    /// MSGs received from Redis for a local recipient.
    received_remote,
    /// Deliveries lost because a recipient's queue was full (a slow reader).
    queue_full,
    /// Frames that were not valid protocol frames (answered with ERROR).
    bad_frames,
}
