//! The agreed start: what every barrier (the exporter's, Redis') ends in.

use std::time::Duration;

/// When to start, as the barrier agreed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartSignal {
    /// The common start on this machine's clock.
    pub at: tokio::time::Instant,
    /// How long ago the common start was when this generator became ready
    /// (zero unless it joined late).
    pub late: Duration,
    /// Generators that were ready when the start was agreed.
    pub ready: u32,
}
