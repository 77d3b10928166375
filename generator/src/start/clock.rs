//! Placing an instant of another machine's clock on this machine's clock.
//!
//! The Redis barrier fixes the common start on the Redis server's clock
//! (`TIME`), the one clock every generator can read. Each generator reads
//! that clock itself and pins the reading to its own monotonic clock, so
//! the generators' wall clocks never enter the computation and need not
//! agree: only the distance between the reading and the start matters.
//!
//! A reading is taken over a round trip; the server's answer is pinned to
//! the middle of it, so the error is at most half the round trip (well
//! under a millisecond on a LAN).

use std::time::Duration;
use tokio::time::Instant;

/// The remote clock read once, pinned to this machine's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    /// When, on this machine's clock, the remote clock showed `remote_us`.
    local: Instant,
    /// The remote clock, microseconds since the Unix epoch.
    remote_us: u64,
}

/// Where a remote instant falls for this generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// When to start, on this machine's clock: the instant itself, or
    /// `now` when it has passed.
    pub at: Instant,
    /// How long ago the instant was (zero when it is still ahead).
    pub late: Duration,
}

impl ClockReading {
    /// A reading sent at `sent` and answered at `received`, both on this
    /// machine's clock, that showed `remote_us` on the remote one.
    pub fn new(sent: Instant, received: Instant, remote_us: u64) -> ClockReading {
        let half = received.saturating_duration_since(sent) / 2;
        ClockReading { local: sent + half, remote_us }
    }

    /// A `TIME` answer: seconds and microseconds since the Unix epoch.
    pub fn from_time(sent: Instant, received: Instant, secs: u64, micros: u64) -> ClockReading {
        ClockReading::new(sent, received, secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Places the remote instant `remote_us` (µs since the Unix epoch) on
    /// this machine's clock, as seen at `now`.
    pub fn place(&self, remote_us: u64, now: Instant) -> Placed {
        let at = if remote_us >= self.remote_us {
            Some(self.local + Duration::from_micros(remote_us - self.remote_us))
        } else {
            // An instant before the reading; before this machine's clock
            // began (a very early boot) it is simply long ago.
            self.local.checked_sub(Duration::from_micros(self.remote_us - remote_us))
        };
        match at {
            Some(at) if at >= now => Placed { at, late: Duration::ZERO },
            Some(at) => Placed { at: now, late: now - at },
            None => Placed {
                at: now,
                late: now.saturating_duration_since(self.local) + Duration::from_micros(self.remote_us - remote_us),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: u64 = 1_750_000_000_000_000;

    #[test]
    fn the_reading_is_pinned_to_the_middle_of_its_round_trip() {
        let sent = Instant::now();
        let r = ClockReading::new(sent, sent + Duration::from_millis(20), REMOTE);
        // A start one second after the reading, looked at right after it.
        let p = r.place(REMOTE + 1_000_000, sent + Duration::from_millis(20));
        assert_eq!(p, Placed { at: sent + Duration::from_millis(1010), late: Duration::ZERO });
        assert_eq!(
            ClockReading::from_time(sent, sent, REMOTE / 1_000_000, 250),
            ClockReading::new(sent, sent, REMOTE + 250)
        );
    }

    #[test]
    fn a_start_that_has_passed_is_now_and_says_how_late() {
        let sent = Instant::now();
        let r = ClockReading::new(sent, sent + Duration::from_millis(4), REMOTE);
        // The start was 2.5 s before the reading; the reading answered 2 ms
        // after its middle: 2.502 s late.
        let now = sent + Duration::from_millis(4);
        let p = r.place(REMOTE - 2_500_000, now);
        assert_eq!(p, Placed { at: now, late: Duration::from_millis(2502) });
        // Exactly now is not late.
        let p = r.place(REMOTE + 2_000, now);
        assert_eq!(p, Placed { at: now, late: Duration::ZERO });
    }

    #[test]
    fn machines_whose_clocks_disagree_place_the_start_at_the_same_real_instant() {
        // Two generators read the server's clock at different moments; the
        // start is the same real instant for both, whatever their own clocks say.
        let base = Instant::now();
        let a = ClockReading::new(base, base + Duration::from_millis(2), REMOTE);
        let b =
            ClockReading::new(base + Duration::from_millis(300), base + Duration::from_millis(310), REMOTE + 304_000);
        let start = REMOTE + 1_000_000;
        assert_eq!(a.place(start, base).at, base + Duration::from_millis(1001));
        assert_eq!(b.place(start, base).at, base + Duration::from_millis(1001));
    }
}
