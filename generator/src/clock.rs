//! The generator's wall clock, which stamps every window.
//!
//! It is the system clock, moved by `--clock-skew` (a hidden flag: tests
//! use it to play a machine whose clock is off), and, with `--exporter`,
//! corrected to the exporter's clock: the stream measures the offset from
//! the exporter's welcome over the round trip (see `crate::stream`), and
//! the window clock adds it, so windows of machines whose clocks disagree
//! still line up on the exporter.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static SKEW_MS: AtomicI64 = AtomicI64::new(0);

/// Moves this process's wall clock by `ms` (tests only).
pub fn set_skew(ms: i64) {
    SKEW_MS.store(ms, Ordering::Relaxed);
}

/// Milliseconds since the Unix epoch on this process's clock.
pub fn unix_now_ms() -> i64 {
    let system = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    system.saturating_add(SKEW_MS.load(Ordering::Relaxed))
}

/// The offset to add to [`unix_now_ms`] to read the exporter's clock, from
/// one exchange: `sent` and `received` on this clock, `theirs` read by the
/// exporter in between (assumed at the middle of the round trip).
pub fn offset(sent: i64, theirs: u64, received: i64) -> i64 {
    let middle = sent + (received - sent) / 2;
    i64::try_from(theirs).unwrap_or(i64::MAX).saturating_sub(middle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_read_at_the_middle_of_the_round_trip() {
        // Their clock is 30 s behind; the round trip took 100 ms.
        assert_eq!(offset(1_000_000, 970_050, 1_000_100), -30_000);
        assert_eq!(offset(1_000, 1_050, 1_100), 0);
    }
}
