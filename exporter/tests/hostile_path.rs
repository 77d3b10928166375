//! Property test of the exporter's whole data path with hostile input:
//! frames built from arbitrary windows (any metric name, tag or test id,
//! any float, sketches of any values), then corrupted, go through decode →
//! merge (with an honest generator's window of the same start) → the report
//! timeline and page → InfluxDB line protocol → OTLP. Nothing may panic;
//! decoding's memory bound is checked in `volley-window`'s own tests.

use proptest::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_exporter::merge::{Event, MergeConfig, Merger};
use volley_exporter::observe::Observer;
use volley_exporter::report::Reports;
use volley_exporter::sink::influx::line;
use volley_exporter::sink::otlp::encode::{Encoder, Temporality};
use volley_exporter::sink::Item;
use volley_window::wire::{self, ToExporter};
use volley_window::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Sketch, Tags, Unit, WindowReport};

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z ,=\\\\\"#\\n\u{0}€_.-]{0,8}").unwrap()
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(f64::MAX), -1e9..1e9f64]
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    prop_oneof![
        float().prop_map(Aggregate::Counter),
        (float(), float(), float()).prop_map(|(value, min, max)| Aggregate::Gauge { value, min, max }),
        (any::<u64>(), any::<u64>()).prop_map(|(passes, fails)| Aggregate::Rate { passes, fails }),
        proptest::collection::vec(float(), 0..50).prop_map(|v| {
            let mut sk = Sketch::new();
            v.iter().for_each(|x| sk.add(*x));
            Aggregate::Trend(sk)
        }),
    ]
}

fn series() -> impl Strategy<Value = SeriesWindow> {
    (text(), proptest::collection::vec((text(), text()), 0..3), aggregate(), 0..3u8).prop_map(|(m, tags, value, u)| {
        let unit = [Unit::None, Unit::Time, Unit::Data][u as usize];
        SeriesWindow { key: SeriesKey::new(m, Tags::from_pairs(tags)), unit, value }
    })
}

fn report(test_id: &str, generator: &str, start: u64, series: Vec<SeriesWindow>) -> WindowReport {
    WindowReport {
        generator: generator.into(),
        test_id: test_id.into(),
        seq: 0,
        start_unix_ms: start,
        len_ms: 1000,
        series,
        health: HealthRecord::default(),
    }
}

/// Everything the exporter does with a decoded window.
fn exercise(hostile: WindowReport) {
    let now = Instant::now();
    let test_id = hostile.test_id.clone();
    let start = hostile.start_unix_ms;
    let mut m = Merger::new(MergeConfig::default());
    let honest = report(
        &test_id,
        "honest",
        start,
        vec![SeriesWindow {
            key: SeriesKey::new("iterations", Tags::new()),
            unit: Unit::None,
            value: Aggregate::Counter(3.0),
        }],
    );
    let _ = m.ingest(honest, now);
    let (_, health) = m.ingest(hostile, now);
    let reports = Arc::new(Reports::new(2));
    let mut items = Vec::new();
    if let Some(h) = health {
        items.push(Item::Health(Arc::new(h)));
    }
    for e in m.poll(now + Duration::from_secs(3600)).into_iter().chain(m.flush_all()) {
        if let Event::Flush(w) = e {
            reports.window(&w);
            let mut out = String::new();
            line::encode_window(&w, &mut out);
            items.push(Item::Window(Arc::new(w)));
        }
    }
    if let Some(summary) = reports.summary(&test_id) {
        let mut out = String::new();
        line::encode_summary(&summary, &mut out);
        items.push(Item::Summary(Arc::new(summary)));
    }
    let _ = reports.render(&test_id, "hostile".into(), None, vec![]);
    let _ = Encoder::new(Temporality::Cumulative).encode(&items);
    let _ = Encoder::new(Temporality::Delta).encode(&items);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_windows_never_panic_the_exporter(
        test_id in text(),
        series in proptest::collection::vec(series(), 0..6),
        start in prop_oneof![Just(1_700_000_000_000u64), any::<u64>()],
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let mut frame = wire::encode(&ToExporter::Window(report(&test_id, "g", start, series)));
        for (at, byte) in edits {
            let i = 4 + at % (frame.len() - 4);
            frame[i] = byte;
        }
        if let Ok(ToExporter::Window(w)) = wire::decode::<ToExporter>(&frame, 1 << 20) {
            exercise(w);
        }
    }
}
