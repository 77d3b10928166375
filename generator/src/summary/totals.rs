//! Run totals: every window of the run merged per series.
//!
//! Bounded like the windows themselves: one aggregate per series.

use std::collections::BTreeMap;
use std::time::Duration;
use volley_window::{Aggregate, SeriesKey, SeriesWindow, Tags, Unit};

/// Run totals per series.
#[derive(Default, Debug, Clone)]
pub struct RunTotals {
    series: BTreeMap<SeriesKey, (Unit, Aggregate)>,
    /// Test time covered so far (for per-second rates).
    pub elapsed: Duration,
}

impl RunTotals {
    /// Folds one window in.
    pub fn add_window(&mut self, window: &[SeriesWindow]) {
        for s in window {
            match self.series.get_mut(&s.key) {
                Some((_, agg)) => {
                    let _ = agg.merge(&s.value);
                }
                None => {
                    self.series.insert(s.key.clone(), (s.unit, s.value.clone()));
                }
            }
        }
    }

    /// Every series matching `metric` and `selector`, merged; `None` without data.
    pub fn metric(&self, metric: &str, selector: &Tags) -> Option<(Unit, Aggregate)> {
        let mut out: Option<(Unit, Aggregate)> = None;
        for (key, (unit, agg)) in self.range(metric) {
            if !key.tags.contains_all(selector) {
                continue;
            }
            match &mut out {
                Some((_, into)) => {
                    let _ = into.merge(agg);
                }
                None => out = Some((*unit, agg.clone())),
            }
        }
        out
    }

    /// Names of metrics with data, sorted.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.series.keys().map(|k| k.metric.as_str()).collect();
        names.dedup();
        names
    }

    /// Every series of `metric`.
    pub fn range<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = (&'a SeriesKey, &'a (Unit, Aggregate))> + 'a {
        self.series.iter().filter(move |(k, _)| k.metric == metric)
    }

    /// Distinct values of `tag` among the series of `metric`, sorted.
    pub fn tag_values(&self, metric: &str, tag: &str) -> Vec<String> {
        let mut values: Vec<String> =
            self.range(metric).filter_map(|(k, _)| k.tags.get(tag).map(str::to_string)).collect();
        values.sort();
        values.dedup();
        values
    }
}
