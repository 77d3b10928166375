//! The one retry policy of Volley: capped exponential backoff with jitter,
//! and one rule for which HTTP answers are worth retrying. Output writes,
//! alert webhooks, the stream to the exporter, the token manager and the
//! accept loops of the HTTP listeners all use it, so a status code means
//! the same thing everywhere.

use std::time::Duration;

/// Capped exponential backoff. Each delay is the current step scaled by a
/// random factor in 0.5..1.5 (so a fleet that failed together does not
/// retry together), then the step doubles up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

/// The step after `failures` failures in a row: `min` doubled per failure
/// after the first, capped at `max`. Callers that must not jitter (one
/// writer retrying alone) use it directly.
pub fn step(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    min.saturating_mul(factor).min(max.max(min))
}

impl Backoff {
    /// Starts at `min`, never waits more than 1.5 × `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, failures: 0 }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        step(self.min, self.max, self.failures).mul_f64(0.5 + rand::random::<f64>())
    }

    /// Records a success: the next failure waits `min` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// What an HTTP answer means to whoever sent the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: done.
    Accepted,
    /// The request itself is refused (400, 413, 422): sending the same
    /// bytes again cannot succeed.
    BadRequest,
    /// Everything else (408, 429, 5xx, and 401, 403, 404: a rotated
    /// credential or a database not created yet is fixed outside Volley,
    /// after which the same request succeeds): retry later.
    Unavailable,
}

/// Classifies an HTTP status code.
pub fn classify(status: u16) -> Answer {
    match status {
        200..=299 => Answer::Accepted,
        400 | 413 | 422 => Answer::BadRequest,
        _ => Answer::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_and_reset_on_success() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(800));
        let mut b = Backoff::new(min, max);
        for step in [100u64, 200, 400, 800, 800, 800] {
            let d = b.failed().as_millis() as u64;
            assert!((step / 2..=step * 3 / 2).contains(&d), "step {step}: {d}");
        }
        assert_eq!(b.failures(), 6);
        b.succeeded();
        assert_eq!(b.failures(), 0);
        assert!(b.failed() <= Duration::from_millis(150));
    }

    #[test]
    fn one_rule_for_every_status() {
        assert_eq!(classify(204), Answer::Accepted);
        for s in [400, 413, 422] {
            assert_eq!(classify(s), Answer::BadRequest, "{s}");
        }
        for s in [401, 403, 404, 408, 429, 500, 502, 503, 504, 302] {
            assert_eq!(classify(s), Answer::Unavailable, "{s}");
        }
    }
}
