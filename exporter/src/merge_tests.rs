//! The merge's rules on synthetic reports, with instants chosen by the
//! test: completeness, grace, late reports and resends, eviction and
//! acknowledgements, clocks, and the caps.
use super::*;
use volley_window::{Aggregate, Sketch, Tags, Unit};

fn report(gen: &str, seq: u64, start: u64, iterations: f64, durations: &[f64]) -> WindowReport {
    let mut sk = Sketch::new();
    durations.iter().for_each(|d| sk.add(*d));
    let tags = Tags::from_pairs([("scenario", "s")]);
    WindowReport {
        generator: gen.into(),
        test_id: "t".into(),
        seq,
        start_unix_ms: start,
        len_ms: 1000,
        series: vec![
            SeriesWindow {
                key: SeriesKey::new("iterations", tags.clone()),
                unit: Unit::None,
                value: Aggregate::Counter(iterations),
            },
            SeriesWindow {
                key: SeriesKey::new("iteration_duration", tags),
                unit: Unit::Time,
                value: Aggregate::Trend(sk),
            },
        ],
        health: HealthRecord::default(),
    }
}

fn flushes(events: &[Event]) -> Vec<&MergedWindow> {
    events.iter().filter_map(|e| if let Event::Flush(w) = e { Some(w) } else { None }).collect()
}

fn count(w: &MergedWindow, metric: &str) -> f64 {
    w.series
        .iter()
        .filter(|s| s.key.metric == metric)
        .map(|s| match &s.value {
            Aggregate::Counter(c) => *c,
            Aggregate::Trend(sk) => sk.count() as f64,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn a_window_flushes_once_every_generator_reported_it() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig::default());
    for g in ["a", "b", "c"] {
        m.register("t", g, t0);
    }
    m.ingest(report("a", 0, 1000, 10.0, &[1.0, 2.0]), t0);
    m.ingest(report("b", 0, 1000, 20.0, &[3.0]), t0);
    assert!(flushes(&m.poll(t0)).is_empty(), "c has not reported");
    m.ingest(report("c", 0, 1000, 30.0, &[4.0, 5.0, 6.0]), t0);
    let ev = m.poll(t0);
    let f = flushes(&ev);
    assert_eq!(f.len(), 1);
    assert_eq!((count(f[0], "iterations"), count(f[0], "iteration_duration"), f[0].reporters), (60.0, 6.0, 3));
    assert!(flushes(&m.poll(t0)).is_empty(), "flushed once");
}

#[test]
fn a_window_far_ahead_is_refused_without_touching_the_others() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig::default());
    let now = unix_now_ms();
    let ten_years = 10 * 365 * 86_400_000;
    let (outcome, health) = m.ingest(report("rogue", 0, now + ten_years, 5.0, &[]), t0);
    assert_eq!((outcome, health.is_none()), (Ingest::OffClock, true));
    assert_eq!(m.stats().off_clock, 1);
    assert!(m.poll(t0 + Duration::from_secs(60)).is_empty(), "nothing acknowledged");
    let honest = now - now % 1000;
    assert_eq!(m.ingest(report("a", 0, honest, 7.0, &[]), t0).0, Ingest::Merged);
}

#[test]
fn without_the_wall_clock_a_window_ahead_is_merged_and_settles_on_time() {
    let t0 = Instant::now();
    let cfg = MergeConfig { wall_clock: false, ..Default::default() };
    let mut m = Merger::new(cfg);
    m.register("t", "g", t0);
    let start = unix_now_ms() + 3_600_000;
    assert_eq!(m.ingest(report("g", 0, start, 4.0, &[]), t0).0, Ingest::Merged);
    let ev = m.poll(t0 + Duration::from_secs(16));
    assert_eq!(stored(&ev), vec![r("g", 0)]);
    assert_eq!(m.open_windows(), 0, "evicted after grace and horizon");
}

#[test]
fn a_generator_whose_clock_is_ahead_keeps_its_windows_open_for_the_others() {
    let t0 = Instant::now();
    let cfg = MergeConfig { grace: Duration::from_secs(1), late_horizon: Duration::from_secs(2), ..Default::default() };
    let mut m = Merger::new(cfg);
    m.register("t", "fast", t0);
    m.register("t", "slow", t0);
    // "fast" stamps by a clock 30 s ahead: its window arrives 30 s before
    // "slow" closes the same one.
    let start = unix_now_ms() + 30_000;
    let start = start - start % 1000;
    m.ingest(report("fast", 0, start, 10.0, &[]), t0);
    let ev = m.poll(t0 + Duration::from_secs(10));
    assert_eq!(count(flushes(&ev)[0], "iterations"), 10.0, "flushed after its grace");
    assert!(m.next_deadline().unwrap() >= t0 + Duration::from_secs(30), "{:?}", m.next_deadline());
    let t1 = t0 + Duration::from_secs(31);
    assert_eq!(m.ingest(report("slow", 0, start, 5.0, &[]), t1).0, Ingest::Late);
    let ev = m.poll(t1);
    assert_eq!(count(flushes(&ev)[0], "iterations"), 15.0, "rewritten whole");
    assert_eq!(stored(&ev), vec![r("fast", 0), r("slow", 0)]);
}

#[test]
fn series_beyond_the_cap_are_left_out_and_counted() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig { max_series: 1, ..Default::default() });
    // Two series (iterations, iteration_duration) per report.
    m.ingest(report("a", 0, 1000, 10.0, &[1.0]), t0);
    m.ingest(report("b", 0, 1000, 5.0, &[2.0]), t0);
    assert_eq!(m.stats().series_dropped, 2);
    let ev = m.flush_all();
    let f = flushes(&ev);
    assert_eq!(f[0].series.len(), 1);
}

#[test]
fn the_grace_period_flushes_without_a_silent_generator() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig { grace: Duration::from_secs(5), ..Default::default() });
    m.register("t", "a", t0);
    m.register("t", "b", t0);
    m.ingest(report("a", 0, 1000, 10.0, &[]), t0);
    assert!(flushes(&m.poll(t0 + Duration::from_millis(4999))).is_empty());
    assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(5)));
    let ev = m.poll(t0 + Duration::from_secs(5));
    assert_eq!(count(flushes(&ev)[0], "iterations"), 10.0);
}

fn stored(events: &[Event]) -> Vec<(String, u64)> {
    events.iter().flat_map(|e| if let Event::Stored { reports, .. } = e { reports.clone() } else { vec![] }).collect()
}

fn r(g: &str, seq: u64) -> (String, u64) {
    (g.to_string(), seq)
}

#[test]
fn a_late_report_rewrites_the_whole_window_and_a_resend_counts_once() {
    let t0 = Instant::now();
    let cfg =
        MergeConfig { grace: Duration::from_secs(1), late_horizon: Duration::from_secs(10), ..Default::default() };
    let mut m = Merger::new(cfg);
    m.register("t", "a", t0);
    m.register("t", "b", t0);
    m.ingest(report("a", 0, 1000, 10.0, &[1.0]), t0);
    let t1 = t0 + Duration::from_secs(2);
    let ev = m.poll(t1);
    assert_eq!(count(flushes(&ev)[0], "iterations"), 10.0);
    assert!(stored(&ev).is_empty(), "incomplete: not acknowledged yet");
    assert_eq!(m.ingest(report("b", 0, 1000, 5.0, &[2.0]), t1).0, Ingest::Late);
    assert_eq!(m.ingest(report("b", 0, 1000, 5.0, &[2.0]), t1).0, Ingest::Duplicate);
    assert_eq!(m.ingest(report("a", 0, 1000, 10.0, &[1.0]), t1).0, Ingest::Duplicate);
    let ev = m.poll(t1);
    let f = flushes(&ev);
    assert_eq!((count(f[0], "iterations"), count(f[0], "iteration_duration"), f[0].reporters), (15.0, 2.0, 2));
    // Every generator is in: both reports are acknowledged after the rewrite.
    assert_eq!(stored(&ev), vec![r("a", 0), r("b", 0)]);
    // A resend of an acknowledged report is acknowledged again, not counted.
    assert_eq!(m.ingest(report("a", 0, 1000, 10.0, &[1.0]), t1).0, Ingest::Duplicate);
    let ev = m.poll(t1);
    assert_eq!((flushes(&ev).len(), stored(&ev)), (0, vec![r("a", 0)]));
    // After the horizon the window is evicted: a resend is still known,
    // an unseen report is too late; both are acknowledged.
    let ev = m.poll(t0 + Duration::from_secs(11));
    assert!(
        matches!(&ev[..], [Event::Settled { test_id, start_unix_ms: 1000 }] if test_id == "t"),
        "only the window's settlement: {ev:?}"
    );
    assert_eq!(m.open_windows(), 0);
    assert_eq!(m.ingest(report("a", 0, 1000, 10.0, &[1.0]), t1).0, Ingest::Duplicate);
    m.register("t", "c", t1);
    assert_eq!(m.ingest(report("c", 0, 1000, 1.0, &[]), t1).0, Ingest::TooLate);
    assert_eq!(stored(&m.poll(t1)), vec![r("a", 0), r("c", 0)]);
    let s = m.stats();
    assert_eq!((s.received, s.merged, s.late, s.duplicates, s.too_late), (7, 2, 1, 4, 1));
}

#[test]
fn a_late_joiner_is_merged_within_the_horizon() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig::default());
    m.register("t", "a", t0);
    m.ingest(report("a", 0, 1000, 10.0, &[]), t0);
    let ev = m.poll(t0);
    assert_eq!((flushes(&ev).len(), stored(&ev)), (1, vec![r("a", 0)]), "complete with the generators known");
    let t1 = t0 + Duration::from_millis(50);
    m.register("t", "late", t1);
    assert_eq!(m.ingest(report("late", 0, 1000, 5.0, &[]), t1).0, Ingest::Late);
    let ev = m.poll(t1);
    assert_eq!(count(flushes(&ev)[0], "iterations"), 15.0);
    assert_eq!(stored(&ev), vec![r("late", 0)]);
}

#[test]
fn an_incomplete_window_stays_open_for_late_reports_until_the_horizon() {
    let t0 = Instant::now();
    let cfg =
        MergeConfig { grace: Duration::from_secs(1), late_horizon: Duration::from_secs(10), ..Default::default() };
    let mut m = Merger::new(cfg);
    m.register("t", "a", t0);
    m.register("t", "b", t0);
    m.ingest(report("a", 0, 1000, 10.0, &[]), t0);
    let ev = m.poll(t0 + Duration::from_secs(1));
    assert_eq!((flushes(&ev).len(), ev.len()), (1, 1), "flushed by grace, not acknowledged");
    assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(11)));
    assert!(m.poll(t0 + Duration::from_millis(10_999)).is_empty());
    let ev = m.poll(t0 + Duration::from_secs(11));
    assert_eq!((flushes(&ev).len(), stored(&ev)), (0, vec![r("a", 0)]));
    assert_eq!(m.open_windows(), 0);
}

#[test]
fn a_finished_generator_is_not_waited_for() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig::default());
    m.register("t", "a", t0);
    m.register("t", "b", t0);
    m.ingest(report("b", 0, 1000, 1.0, &[]), t0);
    m.ingest(report("a", 0, 1000, 1.0, &[]), t0);
    m.finish("t", "b");
    m.ingest(report("a", 1, 2000, 1.0, &[]), t0);
    let ev = m.poll(t0);
    assert_eq!(flushes(&ev).len(), 2, "window 2000 does not wait for b, which ended before it");
}

#[test]
fn merged_percentiles_equal_one_sketch_of_all_samples() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig::default());
    let mut all = Sketch::new();
    let gens = ["a", "b", "c"];
    for (i, g) in gens.iter().enumerate() {
        m.register("t", g, t0);
        let samples: Vec<f64> = (0..1000).map(|k| ((k * 7919 + i * 104_729) % 5000) as f64 / 10.0 + 0.1).collect();
        samples.iter().for_each(|v| all.add(*v));
        m.ingest(report(g, 0, 0, 0.0, &samples), t0);
    }
    let ev = m.poll(t0);
    let w = flushes(&ev)[0];
    let Aggregate::Trend(merged) = &w.series.iter().find(|s| s.key.metric == "iteration_duration").unwrap().value
    else {
        panic!()
    };
    for q in [0.5, 0.9, 0.99, 0.999] {
        assert_eq!(merged.quantile(q), all.quantile(q), "q={q}");
    }
}

#[test]
fn too_many_open_windows_evict_the_oldest() {
    let t0 = Instant::now();
    let mut m = Merger::new(MergeConfig { max_open_windows: 3, ..Default::default() });
    m.register("t", "a", t0);
    m.register("t", "silent", t0);
    for k in 0..5 {
        m.ingest(report("a", k, k * 1000, 1.0, &[]), t0);
    }
    let ev = m.poll(t0);
    assert_eq!(flushes(&ev).len(), 2);
    assert_eq!(m.open_windows(), 3);
    assert_eq!(m.stats().forced, 2);
}
