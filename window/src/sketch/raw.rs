//! The serde layout of `sketches_ddsketch::DDSketch` 0.4.2, and the checks
//! a sketch read from the wire must pass before it becomes a [`Sketch`].
//!
//! The crate keeps its store private and trusts whatever it deserializes:
//! a forged `bin_limit` or key range makes a later merge allocate
//! gigabytes, a count that disagrees with the bins makes it index out of
//! bounds. So a sketch is first read into this mirror, checked against
//! Volley's one configuration, and only then handed to the crate (through
//! its own serde form, which is the only constructor it offers).

use super::{config, Sketch, MAX_BINS, MIN_VALUE};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::DDSketch;

/// Why a sketch read from the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sketch: {0}")]
pub struct SketchError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, SketchError> {
    Err(SketchError(why.into()))
}

/// Mirrors `sketches_ddsketch::DDSketch` field for field.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(super) struct RawSketch {
    pub config: RawConfig,
    pub store: RawStore,
    pub negative_store: RawStore,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub zero_count: u64,
}

/// Mirrors `sketches_ddsketch::Config`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
pub(super) struct RawConfig {
    pub max_num_bins: u32,
    pub gamma: f64,
    pub gamma_ln: f64,
    pub min_value: f64,
    pub offset: i32,
}

/// Mirrors `sketches_ddsketch::Store` (a collapsing-lowest dense store).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(super) struct RawStore {
    pub bins: Vec<u64>,
    pub count: u64,
    pub min_key: i32,
    pub max_key: i32,
    pub offset: i32,
    pub bin_limit: usize,
    pub is_collapsed: bool,
}

impl RawStore {
    /// The crate's empty store.
    fn empty() -> Self {
        Self {
            bins: Vec::new(),
            count: 0,
            min_key: i32::MAX,
            max_key: i32::MIN,
            offset: 0,
            bin_limit: MAX_BINS as usize,
            is_collapsed: false,
        }
    }
}

/// The lowest and highest bucket keys a finite value can have: keys outside
/// them cannot come from a real sample, and bounding them keeps the crate's
/// key arithmetic (in `i32`) far from overflow.
fn key_range() -> (i32, i32) {
    let c = config();
    (c.key(MIN_VALUE) - 1, c.key(f64::MAX) + 1)
}

impl RawSketch {
    /// The raw form of a sketch built by this process.
    pub fn of(sketch: &DDSketch) -> Self {
        // The crate's serde form is its only window on the store; the layout
        // is pinned with the crate version.
        let bytes = bincode::serialize(sketch).expect("a sketch serializes");
        bincode::deserialize(&bytes).expect("the sketch layout of sketches-ddsketch 0.4.2")
    }

    /// Checks everything a merge, a quantile or a bucket listing relies on,
    /// and puts empty parts in the crate's canonical empty form.
    pub fn validate(mut self) -> Result<Self, SketchError> {
        self.check_config()?;
        check_store(&mut self.store, "positive store")?;
        check_store(&mut self.negative_store, "negative store")?;
        let Some(count) =
            self.store.count.checked_add(self.negative_store.count).and_then(|n| n.checked_add(self.zero_count))
        else {
            return refuse("the total count overflows 64 bits");
        };
        if count == 0 {
            (self.min, self.max, self.sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
            return Ok(self);
        }
        if !(self.min.is_finite() && self.max.is_finite() && self.sum.is_finite()) {
            return refuse(format!("min {}, max {} and sum {} must be finite", self.min, self.max, self.sum));
        }
        if self.min > self.max {
            return refuse(format!("min {} is above max {}", self.min, self.max));
        }
        Ok(self)
    }

    fn check_config(&self) -> Result<(), SketchError> {
        static OURS: std::sync::OnceLock<RawConfig> = std::sync::OnceLock::new();
        let ours = *OURS.get_or_init(|| RawSketch::of(&DDSketch::new(config())).config);
        let c = &self.config;
        let same = c.max_num_bins == ours.max_num_bins
            && c.gamma.to_bits() == ours.gamma.to_bits()
            && c.gamma_ln.to_bits() == ours.gamma_ln.to_bits()
            && c.min_value.to_bits() == ours.min_value.to_bits()
            && c.offset == ours.offset;
        if same {
            Ok(())
        } else {
            refuse(format!("configuration {c:?} is not Volley's {ours:?}"))
        }
    }

    /// Back to the crate's type; `self` must have passed [`Self::validate`].
    pub fn into_sketch(self) -> Sketch {
        let bytes = bincode::serialize(&self).expect("a raw sketch serializes");
        let inner: DDSketch = bincode::deserialize(&bytes).expect("the raw layout is the crate's layout");
        Sketch { inner }
    }
}

fn check_store(s: &mut RawStore, which: &str) -> Result<(), SketchError> {
    if s.bin_limit != MAX_BINS as usize {
        return refuse(format!("{which}: bin limit {} is not {MAX_BINS}", s.bin_limit));
    }
    if s.bins.len() > s.bin_limit {
        return refuse(format!("{which}: {} bins exceed the limit of {}", s.bins.len(), s.bin_limit));
    }
    let Some(total) = s.bins.iter().try_fold(0u64, |a, b| a.checked_add(*b)) else {
        return refuse(format!("{which}: the bins' counts overflow 64 bits"));
    };
    if total != s.count {
        return refuse(format!("{which}: count {} but its bins hold {total}", s.count));
    }
    if s.count == 0 {
        *s = RawStore::empty();
        return Ok(());
    }
    let (lo, hi) = key_range();
    if s.min_key < lo || s.max_key > hi || s.min_key > s.max_key {
        return refuse(format!("{which}: keys {}..={} outside {lo}..={hi}", s.min_key, s.max_key));
    }
    // Both ends inside the bins: `offset <= min_key <= max_key < offset + len`.
    let len = s.bins.len() as i64;
    if (s.offset as i64) > s.min_key as i64 || s.max_key as i64 - s.offset as i64 >= len {
        return refuse(format!(
            "{which}: keys {}..={} are not inside its {len} bins from {}",
            s.min_key, s.max_key, s.offset
        ));
    }
    Ok(())
}

impl TryFrom<RawSketch> for Sketch {
    type Error = SketchError;

    fn try_from(raw: RawSketch) -> Result<Self, SketchError> {
        Ok(raw.validate()?.into_sketch())
    }
}
