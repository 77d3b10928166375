//! Unit tests of [`super`] (engine.rs), kept apart so the module reads as one concept.

use super::*;
use volley_window::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Tags, Unit};

const T0: u64 = 1_700_000_000_000;

fn engine(yaml: &str) -> (Engine, Arc<Outbox>, Arc<Mutex<Vec<String>>>) {
    let rules = Rules::parse(&format!("webhook: http://127.0.0.1:9/hook\nrules:\n{yaml}")).unwrap();
    let counters = Arc::new(Counters::default());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let log: Log = Arc::new(move |m| sink.lock().push(m));
    let outbox = Arc::new(Outbox::new(100, counters.clone(), log.clone()));
    (Engine::new(rules, EngineConfig::default(), outbox.clone(), counters, log), outbox, lines)
}

/// A window of `http_req_failed{scenario:api}`: `failed` requests failed, `ok` did not.
fn failures(test: &str, second: u64, failed: u64, ok: u64) -> MergedWindow {
    MergedWindow {
        test_id: test.into(),
        start_unix_ms: T0 + second * 1000,
        len_ms: 1000,
        series: vec![SeriesWindow {
            key: SeriesKey::new("http_req_failed", Tags::from_pairs([("scenario", "api")])),
            unit: Unit::None,
            value: Aggregate::Rate { passes: failed, fails: ok },
        }],
        reporters: 1,
    }
}

fn statuses(outbox: &Outbox) -> Vec<(String, bool)> {
    outbox.drain().into_iter().map(|n| (n.labels["testid"].clone(), n.firing)).collect()
}

#[test]
fn fires_and_resolves_per_test_id_with_labels_and_annotations() {
    let (e, outbox, lines) = engine(
            "  - name: Failures\n    expr: rate of http_req_failed{scenario:api} over 2s > 0.1\n    labels: {severity: page}\n    annotations: {summary: 'failing at {{ $value }} in {{$labels.testid}}'}\n",
        );
    let now = Instant::now();
    e.on_window(&failures("a", 0, 10, 0), now);
    e.on_window(&failures("b", 0, 0, 10), now);
    let sent = outbox.drain();
    assert_eq!(sent.len(), 1);
    let n = &sent[0];
    assert!(n.firing);
    assert_eq!(n.labels["alertname"], "Failures");
    assert_eq!(n.labels["testid"], "a");
    assert_eq!(n.labels["severity"], "page");
    assert_eq!(n.annotations["summary"], "failing at 1 in a");
    assert_eq!(n.annotations["value"], "1");
    assert_eq!(n.annotations["expression"], "rate of http_req_failed{scenario:api} over 2s > 0.1");
    assert_eq!(n.starts_ms, T0 + 1000);
    assert_eq!(
        lines.lock()[0],
        "alert Failures firing for testid=a: rate of http_req_failed{scenario:api} over 2s = 1 > 0.1"
    );
    // Good windows come; the 2 s range still holds bad ones (0.67, then 0.33).
    e.on_window(&failures("a", 1, 10, 10), now);
    e.on_window(&failures("a", 2, 0, 10), now);
    assert!(outbox.is_empty());
    e.on_window(&failures("a", 3, 0, 10), now);
    e.on_window(&failures("a", 4, 0, 10), now);
    let sent = outbox.drain();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(!sent[0].firing);
    assert_eq!((sent[0].starts_ms, sent[0].ends_ms), (T0 + 1000, Some(T0 + 4000)));
    assert_eq!(sent[0].annotations["value"], "0");
    assert!(lines.lock()[1].ends_with("over 2s = 0, no longer > 0.1"), "{:?}", lines.lock());
    assert_eq!(e.stats().fired, 1);
    assert_eq!(e.stats().resolved, 1);
}

#[test]
fn a_rewrite_is_evaluated_in_place() {
    let (e, outbox, _) = engine("  - name: F\n    expr: rate of http_req_failed over 3s > 0.5\n");
    let now = Instant::now();
    e.on_window(&failures("t", 0, 0, 10), now);
    e.on_window(&failures("t", 1, 0, 10), now);
    assert!(outbox.is_empty());
    // A late generator's report rewrites window 0 with many failures merged in.
    e.on_window(&failures("t", 0, 90, 10), now);
    assert_eq!(statuses(&outbox), [("t".to_string(), true)]);
    // Rewritten again (the window replaced, not added to): below the bound.
    e.on_window(&failures("t", 0, 0, 10), now);
    assert_eq!(statuses(&outbox), [("t".to_string(), false)]);
}

#[test]
fn a_blip_shorter_than_for_never_fires() {
    let (e, outbox, _) = engine("  - name: F\n    expr: rate of http_req_failed over 1s > 0.5\n    for: 3s\n");
    let now = Instant::now();
    let fails = [false, true, true, false, true, true, true, false, false];
    for (s, bad) in fails.iter().enumerate() {
        e.on_window(&failures("t", s as u64, if *bad { 90 } else { 0 }, 10), now);
    }
    assert!(outbox.is_empty());
    // Held for 4 windows (3 s after it started holding): fires.
    for s in 9..13 {
        e.on_window(&failures("t", s, 10, 0), now);
    }
    assert_eq!(statuses(&outbox), [("t".to_string(), true)]);
}

#[test]
fn data_that_stops_coming_resolves_after_the_stale_allowance() {
    let (e, outbox, _) = engine("  - name: F\n    expr: rate of http_req_failed over 5s > 0.5\n");
    let start = Instant::now();
    e.on_window(&failures("t", 0, 10, 0), start);
    assert_eq!(statuses(&outbox), [("t".to_string(), true)]);
    let stale = EngineConfig::default().stale_after;
    e.tick(start + stale, 0);
    assert!(outbox.is_empty(), "still within the allowance");
    e.tick(start + stale + Duration::from_secs(5), 0);
    let sent = outbox.drain();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].firing);
    assert_eq!(sent[0].annotations["value"], "no data");
}

#[test]
fn silence_fires_per_generator_and_not_after_a_clean_finish() {
    let (e, outbox, lines) = engine("  - name: Silent\n    expr: no data from a generator for 3s\n");
    let t = Instant::now();
    let health = |g: &str| HealthPoint {
        test_id: "t".into(),
        generator: g.into(),
        start_unix_ms: T0,
        len_ms: 1000,
        health: HealthRecord::default(),
    };
    e.on_joined("t", "g1", t);
    e.on_joined("t", "g2", t);
    e.on_health(&health("g1"), t + Duration::from_secs(1));
    e.on_health(&health("g2"), t + Duration::from_secs(1));
    e.on_finished("t", "g2", t + Duration::from_secs(2));
    e.tick(t + Duration::from_secs(3), T0 + 3000);
    assert!(outbox.is_empty());
    e.tick(t + Duration::from_secs(4), T0 + 4000);
    let sent = outbox.drain();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].labels["generator"], "g1");
    assert_eq!(sent[0].labels["alertname"], "Silent");
    assert_eq!(sent[0].starts_ms, T0 + 4000);
    assert!(lines.lock().iter().any(|l| l.starts_with(
        "alert Silent firing for testid=t generator=g1: no data from a generator for 3s (silent for 3.0s)"
    )));
    // Still silent: no repeat. Back: resolved at once.
    e.tick(t + Duration::from_secs(9), T0 + 9000);
    assert!(outbox.is_empty());
    e.on_health(&health("g1"), t + Duration::from_secs(10));
    let sent = outbox.drain();
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].firing && sent[0].labels["generator"] == "g1");
}

#[test]
fn rss_growth_fires_per_generator() {
    let (e, outbox, _) = engine("  - name: Rss\n    expr: growth of generator rss over 10s > 10%\n");
    let t = Instant::now();
    for (s, rss) in [(0, 100u64), (5, 105), (10, 111), (15, 112)] {
        e.on_health(
            &HealthPoint {
                test_id: "t".into(),
                generator: "g".into(),
                start_unix_ms: T0 + s * 1000,
                len_ms: 1000,
                health: HealthRecord { rss_bytes: rss << 20, ..HealthRecord::default() },
            },
            t,
        );
    }
    let sent = outbox.drain();
    assert_eq!(sent.iter().map(|n| n.firing).collect::<Vec<_>>(), [true, false]);
    assert_eq!(sent[0].annotations["value"], "11.0%");
}

#[test]
fn test_ids_are_bounded_and_idle_ones_forgotten() {
    let (e, _, lines) = engine("  - name: F\n    expr: rate of http_req_failed over 1s > 0.5\n");
    let t = Instant::now();
    for i in 0..70 {
        e.on_window(&failures(&format!("t{i}"), 0, 0, 1), t + Duration::from_millis(i));
    }
    let s = e.stats();
    assert_eq!((s.tests, s.tests_evicted), (64, 6));
    assert_eq!(lines.lock().iter().filter(|l| l.contains("more than 64 test ids")).count(), 1);
    e.tick(t + e.idle_after() + Duration::from_secs(1), 0);
    assert_eq!(e.stats().tests, 0);
}

#[test]
fn values_read_well() {
    assert_eq!(format_value(412.3456), "412.3");
    assert_eq!(format_value(300.0), "300");
    assert_eq!(format_value(2.456), "2.46");
    assert_eq!(format_value(0.01234), "0.0123");
    assert_eq!(format_value(0.00001234), "1.23e-5");
    let labels = BTreeMap::from([("testid".to_string(), "x".to_string())]);
    assert_eq!(fill("{{ $value }} in {{$labels.testid}} {{ other }} {{", "5", &labels), "5 in x {{ other }} {{");
}
