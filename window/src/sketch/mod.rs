//! DDSketch with a fixed configuration shared by every Volley process.
//!
//! Sketches only merge when their configurations are identical, so the
//! configuration is not a user option: it is part of the wire format. Gamma is
//! chosen as `2^(2^-6)` so that a sketch bucket key equals the index of an
//! OpenTelemetry exponential histogram bucket at scale 6, which lets the
//! exporter emit histograms without re-bucketing (relative accuracy ≈ 0.54%).

mod raw;

use raw::RawSketch;
pub use raw::SketchError;
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// OpenTelemetry exponential-histogram scale whose buckets the sketch keys match.
pub const OTEL_SCALE: i32 = 6;

/// Upper bound on buckets per sign; the lowest buckets collapse beyond it, so a
/// sketch never exceeds a few tens of KiB whatever it is fed. 4096 buckets at
/// this gamma cover a ratio of ~2^64 between the smallest and largest value.
pub const MAX_BINS: u32 = 4096;

/// Values closer to zero than this are counted in the zero bucket.
pub const MIN_VALUE: f64 = 1e-9;

/// The relative accuracy guaranteed for quantiles: `(gamma - 1) / (gamma + 1)`.
pub fn relative_accuracy() -> f64 {
    let gamma = gamma();
    (gamma - 1.0) / (gamma + 1.0)
}

fn gamma() -> f64 {
    2f64.powf(2f64.powi(-OTEL_SCALE))
}

fn config() -> Config {
    Config::new(relative_accuracy(), MAX_BINS, MIN_VALUE)
}

/// A mergeable quantile summary of one trend series.
///
/// Serialized in the crate's own layout; deserializing checks it first (see
/// [`raw`]), so a sketch that exists is one every operation can trust.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawSketch")]
pub struct Sketch {
    inner: DDSketch,
}

impl Serialize for Sketch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(serializer)
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count())
            .field("min", &self.min())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

impl Sketch {
    /// An empty sketch with Volley's fixed configuration.
    pub fn new() -> Self {
        Self { inner: DDSketch::new(config()) }
    }

    /// Records one value. A NaN or an infinity has no bucket and no place
    /// in a sum, so it is not recorded (callers validate their inputs).
    #[inline]
    pub fn add(&mut self, value: f64) {
        if value.is_finite() {
            self.inner.add(value);
        }
    }

    /// Folds `other` into `self`. Exact: the result equals the sketch of the
    /// union of both inputs. Refused, leaving `self` unchanged, when the
    /// total count or the sum would overflow (only forged input gets there).
    pub fn merge(&mut self, other: &Sketch) -> Result<(), crate::MergeError> {
        if self.count().checked_add(other.count()).is_none() || !(self.sum() + other.sum()).is_finite() {
            return Err(crate::MergeError::Overflow);
        }
        self.inner.merge(&other.inner).map_err(|_| crate::MergeError::SketchConfig)
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    /// Sum of recorded values (exact).
    pub fn sum(&self) -> f64 {
        self.inner.sum().unwrap_or(0.0)
    }

    /// Smallest recorded value (exact), `None` when empty.
    pub fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    /// Largest recorded value (exact), `None` when empty.
    pub fn max(&self) -> Option<f64> {
        self.inner.max()
    }

    /// Arithmetic mean (exact), `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum() / n as f64)
    }

    /// The `q`-quantile (`0.0..=1.0`) within [`relative_accuracy`];
    /// `None` when empty. Clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let q = q.clamp(0.0, 1.0);
        let v = self.inner.quantile(q).ok().flatten()?;
        match (self.min(), self.max()) {
            (Some(lo), Some(hi)) => Some(v.clamp(lo, hi)),
            _ => Some(v),
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The sketch's buckets. Bucket `offset + i` holds the values in
    /// `[γ^k, γ^(k+1))` with `γ = 2^(2^-6)`: the bucket of the same index of
    /// an OpenTelemetry exponential histogram at scale 6 (whose buckets are
    /// `(γ^k, γ^(k+1)]`; the two differ only for values exactly on a power
    /// of γ). Values below [`MIN_VALUE`] are in `zero_count`.
    pub fn buckets(&self) -> Buckets {
        let raw = RawSketch::of(&self.inner);
        let store = raw.store;
        // Validation put both ends inside the bins; `get` keeps even a
        // broken invariant from panicking.
        let index = |key: i32| usize::try_from(key as i64 - store.offset as i64).ok();
        let range = match (index(store.min_key), index(store.max_key)) {
            (Some(from), Some(to)) if store.count > 0 && from <= to => store.bins.get(from..=to),
            _ => None,
        };
        let (offset, counts) = match range {
            Some(counts) => (store.min_key, counts.to_vec()),
            None => (0, Vec::new()),
        };
        Buckets { zero_count: raw.zero_count.saturating_add(raw.negative_store.count), offset, counts }
    }
}

/// Bucket counts of a sketch (see [`Sketch::buckets`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Buckets {
    /// Values below [`MIN_VALUE`] (and any negative ones).
    pub zero_count: u64,
    /// Index of the first bucket.
    pub offset: i32,
    /// Counts of buckets `offset`, `offset + 1`, …
    pub counts: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn buckets_are_opentelemetry_scale_6_indexes() {
        let values = samples(11, 20_000);
        let mut sk = Sketch::new();
        values.iter().for_each(|v| sk.add(*v));
        sk.add(0.0);
        let b = sk.buckets();
        assert_eq!(b.zero_count, 1);
        assert_eq!(b.counts.iter().sum::<u64>() + b.zero_count, sk.count());
        // Count per OpenTelemetry index at scale 6: floor(log2(v) * 64).
        let mut expected = std::collections::BTreeMap::new();
        for v in &values {
            *expected.entry((v.log2() * 64.0).floor() as i32).or_insert(0u64) += 1;
        }
        let got: std::collections::BTreeMap<i32, u64> =
            b.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (b.offset + i as i32, *c)).collect();
        assert_eq!(got, expected);
        assert_eq!(Sketch::new().buckets(), Buckets::default());
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        // Same rank rule as the sketch: the value at rank floor(q * (n - 1)).
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    fn samples(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                // Log-normal-ish latencies between ~0.05 ms and ~20 s.
                let x: f64 = rng.gen_range(-3.0..10.0);
                x.exp() * rng.gen_range(1.0..1.5)
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_relative_accuracy() {
        let mut values = samples(7, 100_000);
        let mut sketch = Sketch::new();
        for &v in &values {
            sketch.add(v);
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let alpha = relative_accuracy();
        assert!(alpha < 0.01, "accuracy {alpha} must be better than 1%");
        for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999] {
            let exact = exact_quantile(&values, q);
            let got = sketch.quantile(q).unwrap();
            let err = (got - exact).abs() / exact;
            assert!(err <= alpha + 1e-12, "q={q}: exact {exact}, sketch {got}, error {err}");
        }
        assert_eq!(sketch.count(), 100_000);
        assert_eq!(sketch.min(), Some(values[0]));
        assert_eq!(sketch.max(), Some(*values.last().unwrap()));
    }

    #[test]
    fn merge_equals_sketch_of_all_samples() {
        let a_values = samples(1, 20_000);
        let b_values = samples(2, 30_000);
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for &v in &a_values {
            a.add(v);
            all.add(v);
        }
        for &v in &b_values {
            b.add(v);
            all.add(v);
        }
        a.merge(&b).unwrap();
        assert_eq!(a.count(), all.count());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.max(), all.max());
        assert!((a.sum() - all.sum()).abs() < 1e-6 * all.sum());
        for i in 0..=1000 {
            let q = i as f64 / 1000.0;
            assert_eq!(a.quantile(q), all.quantile(q), "q={q}");
        }
    }

    #[test]
    fn survives_serialization_and_still_merges() {
        let mut a = Sketch::new();
        for v in [0.2, 1.5, 3.0, 250.0] {
            a.add(v);
        }
        let bytes = bincode::serialize(&a).unwrap();
        let mut back: Sketch = bincode::deserialize(&bytes).unwrap();
        back.merge(&a).unwrap();
        assert_eq!(back.count(), 8);
        assert_eq!(back.quantile(1.0), Some(250.0));
    }

    #[test]
    fn empty_sketch_has_no_quantiles() {
        let s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
        assert!(s.is_empty());
    }
}
