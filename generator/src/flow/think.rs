//! Think time between steps: a fixed duration (`sleep: 1s`) or a uniform
//! random one (`sleep: 1s..3s`), what k6 scripts write as
//! `sleep(randomIntBetween(1, 3))`.

use crate::config::duration::parse_duration;
use rand::Rng;
use std::time::Duration;

/// A think time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Think {
    min: Duration,
    max: Duration,
}

impl Think {
    /// Parses `"1s"` or `"1s..3s"` (a bare number is milliseconds, as for
    /// every duration).
    pub fn parse(text: &str) -> Result<Think, String> {
        match text.split_once("..") {
            None => parse_duration(text).map(|d| Think { min: d, max: d }),
            Some((lo, hi)) => {
                let (min, max) = (parse_duration(lo)?, parse_duration(hi)?);
                if min > max {
                    return Err(format!("{text:?}: the shorter duration comes first (e.g. \"1s..3s\")"));
                }
                Ok(Think { min, max })
            }
        }
    }

    /// This pause: the duration, or one drawn uniformly from the range.
    pub fn sample(&self) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        rand::thread_rng().gen_range(self.min..=self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_and_ranged() {
        assert_eq!(Think::parse("250ms").unwrap().sample(), Duration::from_millis(250));
        let t = Think::parse("1s..3s").unwrap();
        for _ in 0..100 {
            let d = t.sample();
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3), "{d:?}");
        }
        assert!(Think::parse("3s..1s").unwrap_err().contains("the shorter duration comes first"));
        assert!(Think::parse("1s..soon").unwrap_err().contains("\"soon\""));
    }
}
