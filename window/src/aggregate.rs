//! What one series holds for one window, and how two of them merge.

use crate::series::MetricKind;
use crate::sketch::Sketch;
use serde::{Deserialize, Serialize};

/// Why two aggregates could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// The same series was reported with two different metric types.
    #[error("cannot merge a {0} into a {1}")]
    Kind(MetricKind, MetricKind),
    /// A sketch was built with another bucket configuration.
    #[error("cannot merge sketches with different configurations")]
    SketchConfig,
    /// The merged count or sum would not fit: refused rather than wrapped.
    #[error("the merged count or sum would overflow")]
    Overflow,
}

/// One series' summary over a window (or over many merged windows).
///
/// Invariants, checked when one is deserialized and kept by every merge:
/// a counter is finite and not negative; a gauge's value is finite and its
/// extremes are either both infinite (empty) or finite and ordered; a
/// rate's `passes + fails` fits in 64 bits, so sums of the two never wrap.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub enum Aggregate {
    /// Sum of increments.
    Counter(f64),
    /// Last value seen, with the window's extremes.
    Gauge {
        /// The value at the end of the span.
        value: f64,
        /// Smallest value seen in the span.
        min: f64,
        /// Largest value seen in the span.
        max: f64,
    },
    /// Counts of non-zero (`passes`) and zero (`fails`) samples.
    Rate {
        /// Samples that were true / non-zero.
        passes: u64,
        /// Samples that were false / zero.
        fails: u64,
    },
    /// A distribution.
    Trend(Sketch),
}

impl Aggregate {
    /// An empty aggregate of `kind`.
    pub fn empty(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Counter => Aggregate::Counter(0.0),
            MetricKind::Gauge => Aggregate::Gauge { value: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY },
            MetricKind::Rate => Aggregate::Rate { passes: 0, fails: 0 },
            MetricKind::Trend => Aggregate::Trend(Sketch::new()),
        }
    }

    /// A gauge aggregate holding one value.
    pub fn gauge(value: f64) -> Self {
        Aggregate::Gauge { value, min: value, max: value }
    }

    /// The metric type this aggregate belongs to.
    pub fn kind(&self) -> MetricKind {
        match self {
            Aggregate::Counter(_) => MetricKind::Counter,
            Aggregate::Gauge { .. } => MetricKind::Gauge,
            Aggregate::Rate { .. } => MetricKind::Rate,
            Aggregate::Trend(_) => MetricKind::Trend,
        }
    }

    /// Folds a *later* span of the same series into this one: counters, rates
    /// and sketches add up; a gauge takes the later value and widens min/max.
    pub fn merge(&mut self, later: &Aggregate) -> Result<(), MergeError> {
        match (self, later) {
            (Aggregate::Counter(a), Aggregate::Counter(b)) => *a = (*a + b).min(f64::MAX),
            (Aggregate::Rate { passes, fails }, Aggregate::Rate { passes: p, fails: f }) => {
                // Saturates so that `passes + fails` still fits: a total of
                // 2^64 samples is out of reach of honest generators.
                *passes = passes.saturating_add(*p);
                *fails = fails.saturating_add(*f).min(u64::MAX - *passes);
            }
            (Aggregate::Trend(a), Aggregate::Trend(b)) => a.merge(b)?,
            (Aggregate::Gauge { value, min, max }, Aggregate::Gauge { value: v, min: lo, max: hi }) => {
                *value = *v;
                *min = min.min(*lo);
                *max = max.max(*hi);
            }
            (this, other) => return Err(MergeError::Kind(other.kind(), this.kind())),
        }
        Ok(())
    }

    /// The share of passes for a rate, `None` for other kinds or no samples.
    pub fn rate(&self) -> Option<f64> {
        match self {
            Aggregate::Rate { passes, fails } if passes + fails > 0 => {
                Some(*passes as f64 / (*passes as f64 + *fails as f64))
            }
            _ => None,
        }
    }

    /// True when the span recorded nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Aggregate::Counter(v) => *v == 0.0,
            Aggregate::Gauge { min, .. } => min.is_infinite(),
            Aggregate::Rate { passes, fails } => passes + fails == 0,
            Aggregate::Trend(s) => s.is_empty(),
        }
    }
}

/// An aggregate as read, before its invariants are checked.
#[derive(Deserialize)]
#[serde(rename = "Aggregate")]
enum Unchecked {
    Counter(f64),
    Gauge { value: f64, min: f64, max: f64 },
    Rate { passes: u64, fails: u64 },
    Trend(Sketch),
}

/// Why an aggregate read from the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {why}")]
pub struct InvalidAggregate {
    kind: MetricKind,
    why: String,
}

impl TryFrom<Unchecked> for Aggregate {
    type Error = InvalidAggregate;

    fn try_from(u: Unchecked) -> Result<Self, InvalidAggregate> {
        let (agg, problem) = match u {
            Unchecked::Counter(v) => (
                Aggregate::Counter(v),
                (!(v.is_finite() && v >= 0.0)).then(|| format!("count {v} is not a finite, non-negative number")),
            ),
            Unchecked::Gauge { value, min, max } => {
                let empty = min == f64::INFINITY && max == f64::NEG_INFINITY;
                let ordered = min.is_finite() && max.is_finite() && min <= max;
                let problem = if !value.is_finite() {
                    Some(format!("value {value} is not finite"))
                } else if !(empty || ordered) {
                    Some(format!("min {min} and max {max} are not an ordered pair of finite numbers"))
                } else {
                    None
                };
                (Aggregate::Gauge { value, min, max }, problem)
            }
            Unchecked::Rate { passes, fails } => {
                let problem = passes
                    .checked_add(fails)
                    .is_none()
                    .then(|| format!("{passes} passes and {fails} fails overflow 64 bits"));
                (Aggregate::Rate { passes, fails }, problem)
            }
            Unchecked::Trend(sketch) => (Aggregate::Trend(sketch), None),
        };
        match problem {
            None => Ok(agg),
            Some(why) => Err(InvalidAggregate { kind: agg.kind(), why }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_rates_and_gauges_merge() {
        let mut c = Aggregate::Counter(3.0);
        c.merge(&Aggregate::Counter(4.0)).unwrap();
        assert!(matches!(c, Aggregate::Counter(v) if v == 7.0));

        let mut r = Aggregate::Rate { passes: 9, fails: 1 };
        r.merge(&Aggregate::Rate { passes: 0, fails: 10 }).unwrap();
        assert_eq!(r.rate(), Some(0.45));

        let mut g = Aggregate::gauge(10.0);
        g.merge(&Aggregate::gauge(4.0)).unwrap();
        g.merge(&Aggregate::gauge(6.0)).unwrap();
        assert!(matches!(g, Aggregate::Gauge { value, min, max } if value == 6.0 && min == 4.0 && max == 10.0));
    }

    #[test]
    fn merges_saturate_instead_of_wrapping() {
        let mut r = Aggregate::Rate { passes: u64::MAX - 1, fails: 0 };
        r.merge(&Aggregate::Rate { passes: 5, fails: 7 }).unwrap();
        assert!(matches!(r, Aggregate::Rate { passes: u64::MAX, fails: 0 }));
        let mut r = Aggregate::Rate { passes: 10, fails: u64::MAX - 20 };
        r.merge(&Aggregate::Rate { passes: 5, fails: 100 }).unwrap();
        assert!(matches!(r, Aggregate::Rate { passes: 15, fails } if fails == u64::MAX - 15));
        let mut c = Aggregate::Counter(f64::MAX);
        c.merge(&Aggregate::Counter(f64::MAX)).unwrap();
        assert!(matches!(c, Aggregate::Counter(v) if v == f64::MAX));
    }

    #[test]
    fn invalid_aggregates_do_not_deserialize() {
        let bad = [
            Unchecked::Counter(f64::NAN),
            Unchecked::Counter(-1.0),
            Unchecked::Counter(f64::INFINITY),
            Unchecked::Gauge { value: f64::NAN, min: 0.0, max: 1.0 },
            Unchecked::Gauge { value: 1.0, min: 2.0, max: 1.0 },
            Unchecked::Gauge { value: 1.0, min: f64::NEG_INFINITY, max: 1.0 },
            Unchecked::Rate { passes: u64::MAX, fails: 1 },
        ];
        for u in bad {
            assert!(Aggregate::try_from(u).is_err());
        }
        let err = Aggregate::try_from(Unchecked::Counter(-2.0)).unwrap_err();
        assert_eq!(err.to_string(), "invalid counter: count -2 is not a finite, non-negative number");
        assert!(
            Aggregate::try_from(Unchecked::Gauge { value: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }).is_ok()
        );
    }

    #[test]
    fn kinds_do_not_mix() {
        let mut c = Aggregate::Counter(1.0);
        let err = c.merge(&Aggregate::Rate { passes: 1, fails: 0 }).unwrap_err();
        assert_eq!(err.to_string(), "cannot merge a rate into a counter");
    }
}
