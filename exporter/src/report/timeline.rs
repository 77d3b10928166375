//! One test's history at report resolution: what the charts and the run
//! summary are drawn from.
//!
//! Windows are folded per metric name (tags merged away, except the tags a
//! report lists separately: `check` for checks, `metric`/`threshold` for
//! threshold verdicts) into points. A point starts one window wide; whenever
//! there are more than [`MAX_POINTS`], the width doubles and neighbouring
//! points merge, so a 24-hour test at 1-second windows ends with points of
//! 256 s and the same bounded number of them as a 10-minute one.
//!
//! A point keeps a trend as its window's percentiles, not as a sketch (a
//! sketch is kilobytes, the percentiles a few words): where a point spans
//! several windows it shows the highest window percentile, as the Grafana
//! panels do. The run totals are kept apart, exactly: every window folded in
//! is merged into one aggregate per series (counters add, sketches merge), so
//! they equal those of the raw windows and cost the same whatever the length.
//!
//! The newest [`RECENT`] windows are kept apart and unfolded: a late report
//! makes the exporter flush a window again, and the rewrite must replace the
//! earlier version, not add to it. A rewrite of a window already folded (older
//! than the exporter's late horizon allows) is counted and ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use volley_window::{Aggregate, HealthRecord, SeriesKey, Tags, Unit};

/// Most points kept per test.
pub const MAX_POINTS: usize = 360;
/// Windows kept raw so that rewrites replace them.
pub const RECENT: usize = 32;
/// Collapsed series per point beyond which further ones are not kept.
pub const MAX_SERIES: usize = 256;

/// One collapsed series: its unit and merged aggregate.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What the values measure.
    pub unit: Unit,
    /// Merged over the span and over the tags folded away.
    pub value: Aggregate,
}

/// The generators' health summed over one window, or its worst window in a
/// point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Load {
    /// Generators that reported health.
    pub generators: u64,
    /// Sum of their resident set sizes (the largest such sum within a point).
    pub rss_bytes: u64,
    /// CPU seconds they used over the span.
    pub cpu_seconds: f64,
    /// Largest 99th percentile of start lag any generator reported.
    pub start_lag_p99_ms: Option<f64>,
    /// Windows buffered for the exporter (largest within the span).
    pub windows_buffered: u64,
    /// Windows dropped for want of buffer, summed over generators (largest
    /// within the span; the figure is cumulative per generator).
    pub windows_dropped: u64,
}

impl Load {
    fn add_generator(&mut self, h: &HealthRecord) {
        self.generators += 1;
        self.rss_bytes += h.rss_bytes;
        self.cpu_seconds += h.cpu_seconds;
        self.start_lag_p99_ms = max_opt(self.start_lag_p99_ms, h.start_lag_p99_ms);
        self.windows_buffered += h.windows_buffered;
        self.windows_dropped += h.windows_dropped;
    }

    /// Folds a later span in: worst of the levels, sum of the CPU time.
    fn merge(&mut self, later: &Load) {
        self.generators = self.generators.max(later.generators);
        self.rss_bytes = self.rss_bytes.max(later.rss_bytes);
        self.cpu_seconds += later.cpu_seconds;
        self.start_lag_p99_ms = max_opt(self.start_lag_p99_ms, later.start_lag_p99_ms);
        self.windows_buffered = self.windows_buffered.max(later.windows_buffered);
        self.windows_dropped = self.windows_dropped.max(later.windows_dropped);
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A window's percentiles of a trend (the highest window's, for a point
/// spanning several).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// What a point holds of one series: a few words, no sketch, no string.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    /// A counter's increments.
    Counter(f64),
    /// A gauge's last value and extremes.
    Gauge {
        /// The last value.
        value: f64,
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
    },
    /// A rate's samples.
    Rate {
        /// Non-zero samples.
        passes: u64,
        /// Zero samples.
        fails: u64,
    },
    /// A trend, as percentiles.
    Trend(Percentiles),
}

impl Cell {
    fn of(a: &Aggregate) -> Cell {
        match a {
            Aggregate::Counter(c) => Cell::Counter(*c),
            Aggregate::Gauge { value, min, max } => Cell::Gauge { value: *value, min: *min, max: *max },
            Aggregate::Rate { passes, fails } => Cell::Rate { passes: *passes, fails: *fails },
            Aggregate::Trend(s) => Cell::Trend(Percentiles {
                count: s.count(),
                p50: s.quantile(0.5),
                p95: s.quantile(0.95),
                p99: s.quantile(0.99),
            }),
        }
    }

    /// Folds a later cell in (cells of different kinds do not mix).
    fn merge(&mut self, later: &Cell) {
        match (self, later) {
            (Cell::Counter(a), Cell::Counter(b)) => *a += b,
            (Cell::Gauge { value, min, max }, Cell::Gauge { value: v, min: lo, max: hi }) => {
                *value = *v;
                *min = min.min(*lo);
                *max = max.max(*hi);
            }
            (Cell::Rate { passes, fails }, Cell::Rate { passes: p, fails: f }) => {
                *passes += p;
                *fails += f;
            }
            (Cell::Trend(a), Cell::Trend(b)) => {
                a.count += b.count;
                a.p50 = max_opt(a.p50, b.p50);
                a.p95 = max_opt(a.p95, b.p95);
                a.p99 = max_opt(a.p99, b.p99);
            }
            _ => {}
        }
    }
}

/// A span of the test on a chart: one window, or several merged.
#[derive(Clone, Debug, Default)]
pub struct Point {
    /// Start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Milliseconds of windows it holds (the charts divide counts by it).
    pub covered_ms: u64,
    /// Collapsed series, sorted by key; keys are shared by every point.
    pub series: Vec<(Arc<SeriesKey>, Cell)>,
    /// Generator health, when any was reported.
    pub load: Option<Load>,
}

impl Point {
    /// Folds a later point in.
    fn merge(&mut self, later: &Point) {
        self.covered_ms += later.covered_ms;
        for (key, c) in &later.series {
            match self.series.binary_search_by(|(k, _)| (**k).cmp(key)) {
                Ok(i) => self.series[i].1.merge(c),
                Err(i) if self.series.len() < MAX_SERIES => self.series.insert(i, (key.clone(), *c)),
                Err(_) => {}
            }
        }
        merge_load(&mut self.load, &later.load);
    }

    /// The series of `metric` (all kept tag sets merged), if any.
    pub fn metric(&self, metric: &str) -> Option<Cell> {
        let mut out: Option<Cell> = None;
        for (_, c) in self.series.iter().filter(|(k, _)| k.metric == metric) {
            match &mut out {
                Some(a) => a.merge(c),
                None => out = Some(*c),
            }
        }
        out
    }
}

fn merge_load(mine: &mut Option<Load>, later: &Option<Load>) {
    match (mine.as_mut(), later) {
        (Some(a), Some(b)) => a.merge(b),
        (None, Some(b)) => *mine = Some(b.clone()),
        _ => {}
    }
}

/// The whole run so far, exactly.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Start of the first window, ms since the Unix epoch.
    pub start_ms: u64,
    /// Milliseconds of windows.
    pub covered_ms: u64,
    /// Collapsed series, merged over every window.
    pub series: BTreeMap<SeriesKey, Entry>,
    /// Generator health: the worst window's levels, all CPU time.
    pub load: Option<Load>,
}

impl Totals {
    fn add(&mut self, start_ms: u64, len_ms: u64, series: &BTreeMap<SeriesKey, Entry>, load: &Option<Load>) {
        if self.covered_ms == 0 && self.series.is_empty() {
            self.start_ms = start_ms;
        }
        self.start_ms = self.start_ms.min(start_ms);
        self.covered_ms += len_ms;
        for (key, e) in series {
            if let Some(mine) = self.series.get_mut(key) {
                let _ = mine.value.merge(&e.value);
            } else if self.series.len() < MAX_SERIES {
                self.series.insert(key.clone(), e.clone());
            }
        }
        merge_load(&mut self.load, load);
    }

    /// The series of `metric` (all kept tag sets merged), if any.
    pub fn metric(&self, metric: &str) -> Option<Aggregate> {
        let mut out: Option<Aggregate> = None;
        for (key, e) in self.series.range(SeriesKey::new(metric, Tags::new())..) {
            if key.metric != metric {
                break;
            }
            match &mut out {
                Some(a) => {
                    let _ = a.merge(&e.value);
                }
                None => out = Some(e.value.clone()),
            }
        }
        out
    }
}

/// The tags a report keeps for a metric; the rest are merged away.
fn kept_tags(metric: &str, tags: &Tags) -> Tags {
    let keep: &[&str] = match metric {
        "checks" => &["check"],
        "threshold" => &["metric", "threshold"],
        _ => &[],
    };
    Tags::from_pairs(keep.iter().filter_map(|k| tags.get(k).map(|v| (*k, v))))
}

/// A raw window not yet folded: its merged series and each generator's health.
#[derive(Default)]
struct Recent {
    len_ms: u64,
    series: Option<BTreeMap<SeriesKey, Entry>>,
    health: BTreeMap<String, HealthRecord>,
}

impl Recent {
    fn load(&self) -> Option<Load> {
        (!self.health.is_empty()).then(|| {
            let mut l = Load::default();
            self.health.values().for_each(|h| l.add_generator(h));
            l
        })
    }

    fn covered_ms(&self) -> u64 {
        if self.series.is_some() {
            self.len_ms
        } else {
            0
        }
    }

    fn point(&self, start_ms: u64, keys: &mut Keys) -> Point {
        let series =
            self.series.iter().flatten().filter_map(|(k, e)| Some((keys.intern(k)?, Cell::of(&e.value)))).collect();
        Point { start_ms, covered_ms: self.covered_ms(), series, load: self.load() }
    }

    fn add_to(&self, start_ms: u64, totals: &mut Totals) {
        let empty = BTreeMap::new();
        totals.add(start_ms, self.covered_ms(), self.series.as_ref().unwrap_or(&empty), &self.load());
    }
}

/// The series keys of one test, shared by its points (bounded by
/// [`MAX_SERIES`]).
#[derive(Default)]
struct Keys(BTreeMap<SeriesKey, Arc<SeriesKey>>);

impl Keys {
    fn intern(&mut self, key: &SeriesKey) -> Option<Arc<SeriesKey>> {
        if let Some(k) = self.0.get(key) {
            return Some(k.clone());
        }
        if self.0.len() >= MAX_SERIES {
            return None;
        }
        let k = Arc::new(key.clone());
        self.0.insert(key.clone(), k.clone());
        Some(k)
    }
}

/// One test's history.
pub struct Timeline {
    keys: Keys,
    /// Point width, fixed when the first window is folded (0 before).
    bucket_ms: u64,
    window_ms: u64,
    end_ms: u64,
    points: BTreeMap<u64, Point>,
    recent: BTreeMap<u64, Recent>,
    totals: Totals,
    generators: std::collections::BTreeSet<String>,
    /// Rewrites and health that came after their window was folded.
    pub too_late: u64,
}

/// Generators named per test at most (more are counted, not named).
const MAX_GENERATORS: usize = 10_000;

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty history.
    pub fn new() -> Self {
        Self {
            keys: Keys::default(),
            bucket_ms: 0,
            window_ms: 0,
            end_ms: 0,
            points: BTreeMap::new(),
            recent: BTreeMap::new(),
            totals: Totals::default(),
            generators: Default::default(),
            too_late: 0,
        }
    }

    /// A merged window (or its rewrite) of this test.
    pub fn window<'a>(
        &mut self,
        start_ms: u64,
        len_ms: u64,
        series: impl IntoIterator<Item = (&'a SeriesKey, Unit, &'a Aggregate)>,
    ) {
        if self.is_folded(start_ms) {
            self.too_late += 1;
            return;
        }
        let mut collapsed: BTreeMap<SeriesKey, Entry> = BTreeMap::new();
        for (key, unit, value) in series {
            let key = SeriesKey::new(key.metric.clone(), kept_tags(&key.metric, &key.tags));
            if let Some(e) = collapsed.get_mut(&key) {
                let _ = e.value.merge(value);
            } else if collapsed.len() < MAX_SERIES {
                collapsed.insert(key, Entry { unit, value: value.clone() });
            }
        }
        let r = self.recent.entry(start_ms).or_default();
        r.len_ms = len_ms;
        r.series = Some(collapsed);
        // The first and last windows of a run are cut short; the longest
        // seen is the window length.
        self.window_ms = self.window_ms.max(len_ms);
        self.end_ms = self.end_ms.max(start_ms + len_ms);
        self.fold_old();
    }

    /// One generator's health in one window.
    pub fn health(&mut self, generator: &str, start_ms: u64, health: &HealthRecord) {
        if self.is_folded(start_ms) {
            self.too_late += 1;
            return;
        }
        self.joined(generator);
        self.recent.entry(start_ms).or_default().health.insert(generator.to_string(), health.clone());
    }

    /// Notes a generator of this test.
    pub fn joined(&mut self, generator: &str) {
        if self.generators.len() < MAX_GENERATORS {
            self.generators.insert(generator.to_string());
        }
    }

    /// Generators seen.
    pub fn generators(&self) -> impl Iterator<Item = &str> {
        self.generators.iter().map(String::as_str)
    }

    /// Older than every raw window once some were folded: a rewrite of it
    /// could not replace what it rewrites.
    fn is_folded(&self, start_ms: u64) -> bool {
        !self.points.is_empty() && self.recent.first_key_value().is_some_and(|(k, _)| start_ms < *k)
    }

    /// Moves windows beyond the newest [`RECENT`] into points.
    fn fold_old(&mut self) {
        while self.recent.len() > RECENT {
            if self.bucket_ms == 0 {
                self.bucket_ms = self.window_ms.max(1);
            }
            let (start, r) = self.recent.pop_first().expect("more than RECENT entries");
            r.add_to(start, &mut self.totals);
            let p = r.point(start, &mut self.keys);
            Self::fold_into(&mut self.points, self.bucket_ms, p);
            if self.points.len() > MAX_POINTS {
                self.coarsen();
            }
        }
    }

    fn fold_into(points: &mut BTreeMap<u64, Point>, bucket_ms: u64, p: Point) {
        let key = p.start_ms / bucket_ms * bucket_ms;
        match points.get_mut(&key) {
            Some(existing) => existing.merge(&p),
            None => {
                let mut p = p;
                p.start_ms = key;
                points.insert(key, p);
            }
        }
    }

    /// Doubles the point width and merges neighbours.
    fn coarsen(&mut self) {
        self.bucket_ms *= 2;
        let old = std::mem::take(&mut self.points);
        for (_, p) in old {
            Self::fold_into(&mut self.points, self.bucket_ms, p);
        }
    }

    /// Every point, recent windows folded in too, oldest first (a copy:
    /// the timeline goes on unchanged).
    pub fn points(&self) -> Vec<Point> {
        let mut points = self.points.clone();
        let bucket = self.resolution_ms();
        let mut keys = Keys(self.keys.0.clone());
        for (start, r) in &self.recent {
            Self::fold_into(&mut points, bucket, r.point(*start, &mut keys));
        }
        points.into_values().collect()
    }

    /// The run so far, exactly (a copy: the timeline goes on unchanged).
    pub fn total(&self) -> Totals {
        let mut t = self.totals.clone();
        for (start, r) in &self.recent {
            r.add_to(*start, &mut t);
        }
        t
    }

    /// End of the newest window seen, ms since the Unix epoch.
    pub fn end_ms(&self) -> u64 {
        self.end_ms
    }

    /// Current point width in milliseconds.
    pub fn resolution_ms(&self) -> u64 {
        if self.bucket_ms > 0 {
            self.bucket_ms
        } else {
            self.window_ms.max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(metric: &str, tags: &[(&str, &str)], v: f64) -> (SeriesKey, Unit, Aggregate) {
        (SeriesKey::new(metric, Tags::from_pairs(tags.iter().copied())), Unit::None, Aggregate::Counter(v))
    }

    fn feed(t: &mut Timeline, start: u64, series: &[(SeriesKey, Unit, Aggregate)]) {
        t.window(start, 1000, series.iter().map(|(k, u, a)| (k, *u, a)));
    }

    #[test]
    fn a_day_of_windows_stays_within_the_point_bound_and_totals_stay_exact() {
        let mut t = Timeline::new();
        let day = 86_400u64;
        for i in 0..day {
            let mut s = Sketch::new();
            s.add((i % 100) as f64 + 1.0);
            let series = vec![
                counter("http_reqs", &[("status", "200")], 3.0),
                counter("http_reqs", &[("status", "500")], 1.0),
                (SeriesKey::new("http_req_duration", Tags::new()), Unit::Time, Aggregate::Trend(s)),
            ];
            feed(&mut t, 1_700_000_000_000 + i * 1000, &series);
        }
        let points = t.points();
        assert!(points.len() <= MAX_POINTS, "{} points", points.len());
        assert!(points.len() > MAX_POINTS / 2, "{} points", points.len());
        assert_eq!(t.resolution_ms(), 256_000);
        // A coarse point shows the highest window percentile it spans.
        match points[10].metric("http_req_duration") {
            Some(Cell::Trend(p)) => {
                assert_eq!(p.count, 256);
                assert!((p.p99.unwrap() - 100.0).abs() < 1.0, "{p:?}");
            }
            other => panic!("{other:?}"),
        }
        let all = t.total();
        assert!(matches!(all.metric("http_reqs"), Some(Aggregate::Counter(v)) if v == 4.0 * day as f64));
        assert_eq!(all.covered_ms, day * 1000);
        match all.metric("http_req_duration") {
            Some(Aggregate::Trend(s)) => {
                assert_eq!(s.count(), day);
                assert_eq!(s.max(), Some(100.0));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rewrite_replaces_the_window_and_a_folded_one_is_ignored() {
        let mut t = Timeline::new();
        let base = 1_000_000u64;
        feed(&mut t, base, &[counter("iterations", &[], 5.0)]);
        feed(&mut t, base + 1000, &[counter("iterations", &[], 5.0)]);
        // A late generator's report made the exporter flush the first window again.
        feed(&mut t, base, &[counter("iterations", &[], 8.0)]);
        assert!(matches!(t.total().metric("iterations"), Some(Aggregate::Counter(v)) if v == 13.0));
        for i in 2..(RECENT as u64 + 10) {
            feed(&mut t, base + i * 1000, &[counter("iterations", &[], 1.0)]);
        }
        feed(&mut t, base, &[counter("iterations", &[], 100.0)]);
        assert_eq!(t.too_late, 1);
        let expected = 13.0 + (RECENT as f64 + 8.0);
        assert!(matches!(t.total().metric("iterations"), Some(Aggregate::Counter(v)) if v == expected));
        let charted: f64 = t
            .points()
            .iter()
            .map(|p| match p.metric("iterations") {
                Some(Cell::Counter(v)) => v,
                _ => 0.0,
            })
            .sum();
        assert_eq!(charted, expected);
    }

    #[test]
    fn checks_keep_their_names_and_other_tags_merge_away() {
        let mut t = Timeline::new();
        let rate = |p, f| Aggregate::Rate { passes: p, fails: f };
        let key = |check: &str, scenario: &str| {
            SeriesKey::new("checks", Tags::from_pairs([("check", check), ("scenario", scenario)]))
        };
        let (a, b, c) = (key("status 200", "x"), key("status 200", "y"), key("body", "x"));
        let series = [(&a, Unit::None, &rate(3, 1)), (&b, Unit::None, &rate(2, 0)), (&c, Unit::None, &rate(0, 4))];
        t.window(0, 1000, series.iter().map(|(k, u, v)| (*k, *u, *v)));
        let p = &t.points()[0];
        assert_eq!(p.series.len(), 2);
        let status = SeriesKey::new("checks", Tags::from_pairs([("check", "status 200")]));
        let cell = p.series.iter().find(|(k, _)| **k == status).map(|(_, c)| *c);
        assert_eq!(cell, Some(Cell::Rate { passes: 5, fails: 1 }));
        assert_eq!(p.metric("checks"), Some(Cell::Rate { passes: 5, fails: 5 }));
    }

    #[test]
    fn health_sums_generators_per_window_and_keeps_the_worst_window() {
        let mut t = Timeline::new();
        let h = |rss, cpu| HealthRecord { rss_bytes: rss, cpu_seconds: cpu, ..HealthRecord::default() };
        t.health("a", 0, &h(10, 0.5));
        t.health("b", 0, &h(20, 0.25));
        t.health("a", 1000, &h(12, 0.5));
        t.window(0, 1000, std::iter::empty());
        t.window(1000, 1000, std::iter::empty());
        let load = t.total().load.unwrap();
        assert_eq!((load.generators, load.rss_bytes), (2, 30));
        assert!((load.cpu_seconds - 1.25).abs() < 1e-9);
        assert_eq!(t.generators().collect::<Vec<_>>(), ["a", "b"]);
    }

    use volley_window::Sketch;
}
