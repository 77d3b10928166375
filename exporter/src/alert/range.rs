//! The sliding range of one rule in one test: the selected sub-metric's
//! aggregate per window, keyed by window start.
//!
//! A window's rewrite (a late report merged by the exporter) replaces its
//! slot, so nothing is counted twice. Windows leave the range once they end
//! `range` or more before the evaluation time. Every window of the test gets
//! a slot, also one without a matching series, so that `count` is 0 (not
//! "no data") over windows that recorded nothing and a counter's `rate`
//! divides by the time the range really covers.

use super::rule::Stat;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use volley_window::{Aggregate, MetricKind, SeriesWindow, Tags};

/// Windows a range keeps at most (1 h of 1 s windows); beyond it the oldest
/// leave early.
pub const MAX_WINDOWS: usize = 3600;

/// Merges every series of `metric` whose tags contain `selector`, as k6
/// sub-metric thresholds do. Series of another type than the first one found
/// are skipped; `None` when no series matched.
pub fn select(series: &[SeriesWindow], metric: &str, selector: &Tags) -> Option<Aggregate> {
    let mut out: Option<Aggregate> = None;
    for s in series.iter().filter(|s| s.key.metric == metric && s.key.tags.contains_all(selector)) {
        match &mut out {
            None => out = Some(s.value.clone()),
            Some(have) => {
                let _ = have.merge(&s.value);
            }
        }
    }
    out
}

struct Slot {
    len_ms: u64,
    agg: Option<Aggregate>,
}

/// One rule's windows in one test.
pub struct Range {
    range_ms: u64,
    slots: BTreeMap<u64, Slot>,
}

/// A statistic that does not exist for the metric's type (e.g. `p(99)` of a
/// counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch(pub MetricKind);

impl Range {
    /// An empty range of `range`.
    pub fn new(range: Duration) -> Self {
        Self { range_ms: range.as_millis() as u64, slots: BTreeMap::new() }
    }

    /// Puts (or replaces) the window starting at `start_ms`.
    pub fn put(&mut self, start_ms: u64, len_ms: u64, agg: Option<Aggregate>) {
        self.slots.insert(start_ms, Slot { len_ms, agg });
        while self.slots.len() > MAX_WINDOWS {
            self.slots.pop_first();
        }
    }

    /// Drops the windows that end `range` or more before `now_ms`.
    pub fn advance(&mut self, now_ms: u64) {
        let from = now_ms.saturating_sub(self.range_ms);
        while let Some((&start, slot)) = self.slots.first_key_value() {
            if start + slot.len_ms > from {
                break;
            }
            self.slots.remove(&start);
        }
    }

    /// Windows in the range.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True without windows.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The statistic over the range: `Ok(None)` without data (no window, or
    /// no sample for a statistic that needs one).
    pub fn value(&self, stat: Stat) -> Result<Option<f64>, Mismatch> {
        if self.slots.is_empty() {
            return Ok(None);
        }
        let mut merged: Option<Aggregate> = None;
        for agg in self.slots.values().filter_map(|s| s.agg.as_ref()) {
            match &mut merged {
                None => merged = Some(agg.clone()),
                // Windows are merged in start order, so a gauge ends on the last.
                Some(m) => {
                    let _ = m.merge(agg);
                }
            }
        }
        let Some(agg) = merged else {
            // Windows without a matching series: nothing was counted.
            return Ok(matches!(stat, Stat::Count).then_some(0.0));
        };
        if !stat.applies_to(agg.kind()) {
            return Err(Mismatch(agg.kind()));
        }
        let covered_s = self.slots.values().map(|s| s.len_ms).sum::<u64>() as f64 / 1e3;
        Ok(match (&agg, stat) {
            (Aggregate::Counter(c), Stat::Count) => Some(*c),
            (Aggregate::Counter(c), Stat::Rate) => (covered_s > 0.0).then(|| c / covered_s),
            (Aggregate::Rate { passes, fails }, Stat::Count) => Some((passes + fails) as f64),
            (Aggregate::Rate { .. }, Stat::Rate) => agg.rate(),
            (Aggregate::Gauge { value, .. }, Stat::Value) => (!agg.is_empty()).then_some(*value),
            (Aggregate::Trend(s), Stat::Count) => Some(s.count() as f64),
            (Aggregate::Trend(s), Stat::Avg) => s.mean(),
            (Aggregate::Trend(s), Stat::Min) => s.min(),
            (Aggregate::Trend(s), Stat::Max) => s.max(),
            (Aggregate::Trend(s), Stat::Med) => s.quantile(0.5),
            (Aggregate::Trend(s), Stat::Percentile(p)) => s.quantile(p / 100.0),
            _ => None,
        })
    }
}

/// One generator's RSS over a range, for `growth of generator rss`.
///
/// Growth is measured between floors: the lowest RSS of the newest tenth of
/// the range against the lowest of the tenth that ended where the range
/// begins. A busy generator's RSS rises and falls with the iterations in
/// flight (±10 % at a steady 50k requests/s); memory that is never given
/// back raises the floor, a burst of load does not. Growth is known only
/// once samples reach back over the whole range, so a generator's warm-up
/// never counts as growth before it has run that long.
pub struct RssRange {
    range_ms: u64,
    /// The length of each of the two spans whose floors are compared.
    span_ms: u64,
    samples: VecDeque<(u64, u64)>,
}

impl RssRange {
    /// An empty range of `range`.
    pub fn new(range: Duration) -> Self {
        let range_ms = range.as_millis() as u64;
        Self { range_ms, span_ms: range_ms / 10, samples: VecDeque::new() }
    }

    /// Adds a sample taken at `at_ms` (window end); returns the growth of
    /// the floor as a fraction (0.1 = 10 %), `None` before the range is
    /// covered or without a usable starting floor.
    pub fn add(&mut self, at_ms: u64, rss: u64) -> Option<f64> {
        if self.samples.back().is_some_and(|&(t, _)| t >= at_ms) {
            // A resend or rewrite of an older window: RSS is a point in time,
            // the newest sample stands.
            return self.growth();
        }
        self.samples.push_back((at_ms, rss));
        // Kept: the starting span, and the newest sample before it (the
        // starting floor when that span has no sample of its own).
        let from = at_ms.saturating_sub(self.range_ms + self.span_ms);
        while self.samples.len() > 1 && self.samples[1].0 <= from {
            self.samples.pop_front();
        }
        while self.samples.len() > MAX_WINDOWS {
            self.samples.pop_front();
        }
        self.growth()
    }

    fn growth(&self) -> Option<f64> {
        let (&(t0, _), &(now, _)) = (self.samples.front()?, self.samples.back()?);
        let start = now.checked_sub(self.range_ms).filter(|s| t0 <= *s)?;
        let lo = start.saturating_sub(self.span_ms);
        let rss = |&(_, r): &(u64, u64)| r;
        let in_span = self.samples.iter().filter(|(t, _)| (lo..=start).contains(t)).map(rss).min();
        let base = in_span.or_else(|| self.samples.iter().filter(|(t, _)| *t < lo).map(rss).next_back())?;
        let floor = self.samples.iter().rev().take_while(|(t, _)| *t + self.span_ms >= now).map(rss).min()?;
        (base > 0).then(|| (floor as f64 - base as f64) / base as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_window::{SeriesKey, Sketch, Unit};

    fn series(metric: &str, scenario: &str, value: Aggregate) -> SeriesWindow {
        SeriesWindow {
            key: SeriesKey::new(metric, Tags::from_pairs([("scenario", scenario)])),
            unit: Unit::None,
            value,
        }
    }

    fn sketch(values: &[f64]) -> Aggregate {
        let mut s = Sketch::new();
        values.iter().for_each(|v| s.add(*v));
        Aggregate::Trend(s)
    }

    #[test]
    fn selection_merges_the_matching_series() {
        let w = vec![
            series("http_req_failed", "a", Aggregate::Rate { passes: 1, fails: 9 }),
            series("http_req_failed", "b", Aggregate::Rate { passes: 5, fails: 5 }),
            series("http_reqs", "a", Aggregate::Counter(10.0)),
        ];
        let all = select(&w, "http_req_failed", &Tags::new()).unwrap();
        assert_eq!(all.rate(), Some(0.3));
        let b = select(&w, "http_req_failed", &Tags::from_pairs([("scenario", "b")])).unwrap();
        assert_eq!(b.rate(), Some(0.5));
        assert!(select(&w, "http_req_failed", &Tags::from_pairs([("scenario", "c")])).is_none());
    }

    #[test]
    fn a_rewrite_replaces_its_window() {
        let mut r = Range::new(Duration::from_secs(3));
        r.put(0, 1000, Some(Aggregate::Counter(5.0)));
        r.put(1000, 1000, Some(Aggregate::Counter(5.0)));
        // The exporter rewrites window 1000 with a late generator's report merged in.
        r.put(1000, 1000, Some(Aggregate::Counter(8.0)));
        r.advance(2000);
        assert_eq!(r.value(Stat::Count), Ok(Some(13.0)));
        assert_eq!(r.value(Stat::Rate), Ok(Some(6.5)));
    }

    #[test]
    fn old_windows_leave_the_range() {
        let mut r = Range::new(Duration::from_secs(3));
        for (i, v) in [100.0, 1.0, 2.0, 3.0].into_iter().enumerate() {
            r.put(i as u64 * 1000, 1000, Some(sketch(&[v])));
        }
        r.advance(4000);
        // [1000, 4000): the 100 ms window has left.
        assert_eq!(r.len(), 3);
        assert!((r.value(Stat::Max).unwrap().unwrap() - 3.0).abs() < 0.05);
        assert!((r.value(Stat::Min).unwrap().unwrap() - 1.0).abs() < 0.02);
        assert_eq!(r.value(Stat::Count), Ok(Some(3.0)));
        r.advance(10_000);
        assert!(r.is_empty());
        assert_eq!(r.value(Stat::Max), Ok(None));
        assert_eq!(r.value(Stat::Count), Ok(None));
    }

    #[test]
    fn percentiles_come_from_the_merged_sketch() {
        let mut r = Range::new(Duration::from_secs(60));
        let (a, b): (Vec<f64>, Vec<f64>) = ((1..=900).map(f64::from).collect(), (901..=1000).map(f64::from).collect());
        r.put(0, 1000, Some(sketch(&a)));
        r.put(1000, 1000, Some(sketch(&b)));
        r.advance(2000);
        let p99 = r.value(Stat::Percentile(99.0)).unwrap().unwrap();
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "{p99}");
        let med = r.value(Stat::Med).unwrap().unwrap();
        assert!((med - 500.0).abs() / 500.0 < 0.02, "{med}");
        assert!((r.value(Stat::Avg).unwrap().unwrap() - 500.5).abs() < 1e-6);
    }

    #[test]
    fn windows_without_the_series_count_zero_but_give_no_percentile() {
        let mut r = Range::new(Duration::from_secs(2));
        r.put(0, 1000, None);
        r.put(1000, 1000, None);
        r.advance(2000);
        assert_eq!(r.value(Stat::Count), Ok(Some(0.0)));
        assert_eq!(r.value(Stat::Percentile(99.0)), Ok(None));
        assert_eq!(r.value(Stat::Rate), Ok(None));
        // A counter seen in one window of two: its per-second rate spans both.
        r.put(1000, 1000, Some(Aggregate::Counter(4.0)));
        assert_eq!(r.value(Stat::Rate), Ok(Some(2.0)));
        assert_eq!(r.value(Stat::Percentile(99.0)), Err(Mismatch(MetricKind::Counter)));
    }

    #[test]
    fn gauges_give_the_last_value() {
        let mut r = Range::new(Duration::from_secs(10));
        r.put(1000, 1000, Some(Aggregate::gauge(7.0)));
        r.put(0, 1000, Some(Aggregate::gauge(3.0)));
        r.advance(2000);
        assert_eq!(r.value(Stat::Value), Ok(Some(7.0)));
    }

    #[test]
    fn rss_growth_needs_the_whole_range() {
        let mut r = RssRange::new(Duration::from_secs(10));
        assert_eq!(r.add(1000, 100), None);
        assert_eq!(r.add(6000, 150), None);
        // 10 s after the first sample: measured from it.
        assert_eq!(r.add(11_000, 120), Some(0.2));
        // The starting span (1–2 s) still holds only the 1 s sample; the
        // newest (11–12 s) holds 120 and 130, so its floor is 120.
        assert_eq!(r.add(12_000, 130), Some(0.2));
        // At 16 s the starting span (5–6 s) has the 6 s sample (150).
        assert_eq!(r.add(16_000, 135), Some(-0.1));
        // An older window sent again changes nothing.
        assert_eq!(r.add(12_000, 999), Some(-0.1));
    }

    #[test]
    fn rss_growth_compares_floors_so_a_burst_is_not_growth() {
        // 10 s range: floors over 1 s spans, one sample per 500 ms.
        let mut r = RssRange::new(Duration::from_secs(10));
        let mut growth = None;
        for i in 0..=20u64 {
            // Steady at 100 with a 150 burst every other sample.
            growth = r.add(1000 + i * 500, if i % 2 == 1 { 150 } else { 100 });
        }
        assert_eq!(growth, Some(0.0), "bursts leave the floor where it was");
        // The newest sample alone jumps: the span's floor is still 100.
        assert_eq!(r.add(11_500, 180), Some(0.0));
        // Memory that stays: once every sample of the newest span (its ends
        // included) is higher, so is the floor.
        assert_eq!(r.add(12_000, 130), Some(0.0));
        assert_eq!(r.add(12_500, 130), Some(0.3));
        // The starting span moved to 1.5–2.5 s, still 100 at its lowest.
        assert_eq!(r.add(13_000, 125), Some(0.25));
    }
}
