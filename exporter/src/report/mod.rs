//! The HTML report: one self-contained file with the summary, thresholds and
//! charts over time, built from merged windows (never from samples).
//!
//! [`Reports`] is a pipeline [`Observer`]: `volley run --report PATH` keeps
//! one for its own test and writes the file at the end; the exporter keeps
//! one for the most recent tests it merged and serves
//! `GET /report?testid=…` from it at any time during or after a test.
//!
//! # Layout
//! - [`timeline`]: one test's history at report resolution, bounded.
//! - [`html`]: the page; `chart.js` draws the charts in the browser.

pub mod html;
pub mod timeline;

use crate::merge::{HealthPoint, MergedWindow, RunSummary};
use crate::observe::Observer;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use timeline::Timeline;
use volley_window::{SeriesKey, SeriesWindow};

/// Tests kept by default; the least recently updated one is forgotten first.
pub const DEFAULT_TESTS: usize = 8;

/// Timelines of the most recent tests.
pub struct Reports {
    tests: Mutex<BTreeMap<String, (u64, Timeline)>>,
    max_tests: usize,
    clock: std::sync::atomic::AtomicU64,
}

impl Reports {
    /// Keeps at most `max_tests` tests (at least one).
    pub fn new(max_tests: usize) -> Self {
        Self { tests: Mutex::new(BTreeMap::new()), max_tests: max_tests.max(1), clock: 0.into() }
    }

    fn with<R>(&self, test_id: &str, f: impl FnOnce(&mut Timeline) -> R) -> R {
        let tick = self.clock.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut tests = self.tests.lock();
        if !tests.contains_key(test_id) && tests.len() >= self.max_tests {
            let oldest = tests.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                tests.remove(&k);
            }
        }
        let entry = tests.entry(test_id.to_string()).or_insert_with(|| (tick, Timeline::new()));
        entry.0 = tick;
        f(&mut entry.1)
    }

    /// Test ids held, most recently updated first.
    pub fn tests(&self) -> Vec<String> {
        let tests = self.tests.lock();
        let mut ids: Vec<(u64, String)> = tests.iter().map(|(k, (t, _))| (*t, k.clone())).collect();
        ids.sort_by_key(|b| std::cmp::Reverse(b.0));
        ids.into_iter().map(|(_, k)| k).collect()
    }

    /// The page for `test_id`, `None` when it is not held. `thresholds`
    /// overrides the verdicts read from the `threshold` gauges.
    pub fn render(
        &self,
        test_id: &str,
        source: String,
        thresholds: Option<Vec<html::Verdict>>,
        notes: Vec<String>,
    ) -> Option<String> {
        let (points, total, resolution_ms, generators, too_late) = {
            let tests = self.tests.lock();
            let (_, t) = tests.get(test_id)?;
            (
                t.points(),
                t.total(),
                t.resolution_ms(),
                t.generators().map(str::to_string).collect::<Vec<_>>(),
                t.too_late,
            )
        };
        let mut notes = notes;
        if too_late > 0 {
            notes.push(format!("{too_late} window rewrites came after their window was charted and are not shown"));
        }
        Some(html::render(&html::Input {
            test_id,
            source,
            points: &points,
            total: &total,
            resolution_ms,
            generators,
            thresholds,
            notes,
        }))
    }
}

impl Reports {
    /// The run totals of `test_id` per metric (checks by name; threshold
    /// verdicts left out, they are gauges of their own), ending at its last
    /// window.
    pub fn summary(&self, test_id: &str) -> Option<RunSummary> {
        let (all, end) = {
            let tests = self.tests.lock();
            let (_, t) = tests.get(test_id)?;
            (t.total(), t.end_ms())
        };
        let mut series: Vec<SeriesWindow> = Vec::new();
        for (key, e) in &all.series {
            if key.metric == "threshold" {
                continue;
            }
            series.push(SeriesWindow { key: key.clone(), unit: e.unit, value: e.value.clone() });
            // Checks are kept per name; add the metric-wide total too.
            let metric_wide = SeriesKey::new(key.metric.clone(), Default::default());
            if !key.tags.is_empty() && !all.series.contains_key(&metric_wide) {
                if let Some(last) = series.iter().rposition(|s| s.key == metric_wide) {
                    let _ = series[last].value.merge(&e.value);
                } else {
                    series.push(SeriesWindow { key: metric_wide, unit: e.unit, value: e.value.clone() });
                }
            }
        }
        (!series.is_empty()).then(|| RunSummary {
            test_id: test_id.to_string(),
            end_unix_ms: end,
            series,
            generator: None,
        })
    }
}

impl Observer for Reports {
    fn window(&self, w: &MergedWindow) {
        self.with(&w.test_id, |t| {
            t.window(w.start_unix_ms, w.len_ms, w.series.iter().map(|s| (&s.key, s.unit, &s.value)))
        });
    }

    fn health(&self, h: &HealthPoint) {
        self.with(&h.test_id, |t| t.health(&h.generator, h.start_unix_ms, &h.health));
    }

    fn joined(&self, test_id: &str, generator: &str) {
        self.with(test_id, |t| t.joined(generator));
    }
}
