//! The generator's metric store: bounded by series, never by samples.
//!
//! # Layout
//! - [`builtin`]: k6's built-in metric names, types and units.
//! - [`custom`]: metrics a scenario file defines.
//! - [`registry`]: series interning and the per-metric cardinality cap.
//! - [`shard`]: per-thread recording shards, merged when a window closes.
//! - [`Metrics`]: the cheap-to-clone handle flows and executors record through,
//!   and [`Metrics::close_window`], which turns the shards into the series of a
//!   [`volley_window::WindowReport`].

pub mod builtin;
pub mod custom;
pub mod registry;
pub mod shard;

use builtin::MetricDef;
use parking_lot::Mutex;
use registry::{Registry, SeriesId};
use shard::ShardSet;
use std::sync::Arc;
use volley_window::{Aggregate, SeriesWindow, Tags};

/// Handle to a run's metric store.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    shards: ShardSet,
    /// Gauges are set by the engine (not per sample): last value per series.
    gauges: Mutex<Vec<(SeriesId, f64)>>,
    warn: Box<dyn Fn(String) + Send + Sync>,
}

impl Metrics {
    /// A store allowing `series_cap` series per metric; `warn` shows the
    /// one-time cardinality warnings.
    pub fn new(series_cap: usize, warn: impl Fn(String) + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry::new(series_cap)),
                shards: ShardSet::default(),
                gauges: Mutex::new(Vec::new()),
                warn: Box::new(warn),
            }),
        }
    }

    /// The id of `def` with `tags` (registered on first use; folded into the
    /// overflow series once the metric reached its cap).
    pub fn series(&self, def: MetricDef, tags: Tags) -> SeriesId {
        let (id, warning) = self.inner.registry.lock().resolve(def, tags);
        if let Some(w) = warning {
            (self.inner.warn)(w);
        }
        id
    }

    /// Adds `value` to a counter.
    #[inline]
    pub fn add(&self, id: SeriesId, value: f64) {
        self.inner.shards.with(|s| s.add(id, value));
    }

    /// Records one rate sample.
    #[inline]
    pub fn rate(&self, id: SeriesId, pass: bool) {
        self.inner.shards.with(|s| s.rate(id, pass));
    }

    /// Records one trend sample.
    #[inline]
    pub fn trend(&self, id: SeriesId, value: f64) {
        self.inner.shards.with(|s| s.trend(id, value));
    }

    /// Runs `f` with the calling thread's shard, for several records at once.
    #[inline]
    pub fn batch<R>(&self, f: impl FnOnce(&mut shard::Shard) -> R) -> R {
        self.inner.shards.with(f)
    }

    /// Sets a gauge; the value is reported with every following window.
    pub fn set_gauge(&self, id: SeriesId, value: f64) {
        let mut gauges = self.inner.gauges.lock();
        match gauges.iter_mut().find(|(g, _)| *g == id) {
            Some((_, v)) => *v = value,
            None => gauges.push((id, value)),
        }
    }

    /// Closes the current window: everything recorded since the last call,
    /// merged across threads, plus every gauge's current value.
    pub fn close_window(&self) -> Vec<SeriesWindow> {
        let merged = self.inner.shards.drain();
        let gauges = self.inner.gauges.lock().clone();
        let registry = self.inner.registry.lock();
        let mut out = Vec::with_capacity(merged.len() + gauges.len());
        for (i, slot) in merged.into_iter().enumerate() {
            let Some(value) = slot else { continue };
            let info = registry.info(SeriesId(i as u32));
            out.push(SeriesWindow { key: info.key.clone(), unit: info.def.unit, value });
        }
        for (id, v) in gauges {
            let info = registry.info(id);
            out.push(SeriesWindow { key: info.key.clone(), unit: info.def.unit, value: Aggregate::gauge(v) });
        }
        out
    }

    /// Number of registered series (what memory is proportional to).
    pub fn series_count(&self) -> usize {
        self.inner.registry.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::builtin::{HTTP_REQS, HTTP_REQ_DURATION, VUS};
    use super::*;

    #[test]
    fn records_from_many_threads_and_merges_at_window_close() {
        let metrics = Metrics::new(100, |_| {});
        let reqs = metrics.series(HTTP_REQS, Tags::from_pairs([("scenario", "a")]));
        let dur = metrics.series(HTTP_REQ_DURATION, Tags::from_pairs([("scenario", "a")]));
        std::thread::scope(|scope| {
            for t in 0..4 {
                let m = metrics.clone();
                scope.spawn(move || {
                    for i in 0..10_000 {
                        m.add(reqs, 1.0);
                        m.trend(dur, (t * 10_000 + i) as f64 + 1.0);
                    }
                });
            }
        });
        let vus = metrics.series(VUS, Tags::new());
        metrics.set_gauge(vus, 7.0);
        let window = metrics.close_window();
        let find = |name: &str| window.iter().find(|s| s.key.metric == name).unwrap();
        assert!(matches!(find("http_reqs").value, Aggregate::Counter(n) if n == 40_000.0));
        match &find("http_req_duration").value {
            Aggregate::Trend(s) => {
                assert_eq!(s.count(), 40_000);
                assert_eq!(s.min(), Some(1.0));
                assert_eq!(s.max(), Some(40_000.0));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("vus").value, Aggregate::Gauge { value, .. } if value == 7.0));
        // The next window starts empty, except for gauges.
        let next = metrics.close_window();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].key.metric, "vus");
    }
}
