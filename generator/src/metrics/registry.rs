//! Series interning with a per-metric cardinality cap.
//!
//! Not on the hot path: flows resolve a series once (per step, per status
//! code, ...) and keep its [`SeriesId`]. The cap keeps memory bounded when a
//! tag takes unbounded values (a URL with an id in it): series beyond the cap
//! fold into one overflow series per metric and scenario, with one warning.

use super::builtin::MetricDef;
use std::collections::{HashMap, HashSet};
use volley_window::{SeriesKey, Tags};

/// Index of a series in the registry; what the hot path records against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesId(pub(crate) u32);

impl SeriesId {
    /// Position in per-series tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Tag set on series that were folded because their metric hit the cap.
pub const OVERFLOW_TAG: &str = "overflow";

/// Default number of series one metric may have before folding.
pub const DEFAULT_SERIES_CAP: usize = 1000;

/// One registered series.
#[derive(Clone, Debug)]
pub struct SeriesInfo {
    /// Metric and tags.
    pub key: SeriesKey,
    /// The metric's definition.
    pub def: MetricDef,
}

/// All series known to a run.
#[derive(Debug)]
pub struct Registry {
    series: Vec<SeriesInfo>,
    index: HashMap<SeriesKey, SeriesId>,
    per_metric: HashMap<&'static str, usize>,
    cap: usize,
    warned: HashSet<&'static str>,
}

impl Registry {
    /// A registry allowing `cap` series per metric.
    pub fn new(cap: usize) -> Self {
        Self {
            series: Vec::new(),
            index: HashMap::new(),
            per_metric: HashMap::new(),
            cap: cap.max(1),
            warned: HashSet::new(),
        }
    }

    /// The id of `def` with `tags`, registering it if new. Returns the id and,
    /// the first time a metric overflows, a warning to show.
    pub fn resolve(&mut self, def: MetricDef, tags: Tags) -> (SeriesId, Option<String>) {
        let key = SeriesKey::new(def.name, tags);
        if let Some(id) = self.index.get(&key) {
            return (*id, None);
        }
        let count = self.per_metric.get(def.name).copied().unwrap_or(0);
        if count >= self.cap && key.tags.get(OVERFLOW_TAG).is_none() {
            let mut folded = Tags::new();
            if let Some(s) = key.tags.get("scenario") {
                folded.insert("scenario", s);
            }
            folded.insert(OVERFLOW_TAG, "true");
            let (id, _) = self.insert(def, SeriesKey::new(def.name, folded));
            let warning = self.warned.insert(def.name).then(|| {
                format!(
                    "metric {} reached {} series; further tag combinations are folded into {}{{{}:true}} \
                     (a tag such as url or name probably holds unbounded values)",
                    def.name, self.cap, def.name, OVERFLOW_TAG
                )
            });
            return (id, warning);
        }
        *self.per_metric.entry(def.name).or_default() += 1;
        self.insert(def, key)
    }

    fn insert(&mut self, def: MetricDef, key: SeriesKey) -> (SeriesId, Option<String>) {
        if let Some(id) = self.index.get(&key) {
            return (*id, None);
        }
        let id = SeriesId(self.series.len() as u32);
        self.index.insert(key.clone(), id);
        self.series.push(SeriesInfo { key, def });
        (id, None)
    }

    /// The series behind `id`.
    pub fn info(&self, id: SeriesId) -> &SeriesInfo {
        &self.series[id.index()]
    }

    /// Number of registered series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True before any series was registered.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::builtin::HTTP_REQS;

    #[test]
    fn folds_series_beyond_the_cap_and_warns_once() {
        let mut reg = Registry::new(3);
        let mut warnings = 0;
        let mut ids = HashSet::new();
        for i in 0..10 {
            let tags = Tags::from_pairs([("scenario", "s".to_string()), ("url", format!("/item/{i}"))]);
            let (id, warning) = reg.resolve(HTTP_REQS, tags);
            warnings += usize::from(warning.is_some());
            ids.insert(id);
        }
        assert_eq!(warnings, 1);
        assert_eq!(ids.len(), 4, "3 real series and one overflow series");
        assert_eq!(reg.len(), 4);
        let overflow = reg.info(SeriesId(3));
        assert_eq!(overflow.key.to_string(), "http_reqs{overflow:true,scenario:s}");
        // Known series still resolve to themselves.
        let (id, _) = reg.resolve(HTTP_REQS, Tags::from_pairs([("scenario", "s"), ("url", "/item/1")]));
        assert_eq!(id, SeriesId(1));
    }
}
