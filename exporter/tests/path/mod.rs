//! The exporter's data path for one decoded window, shared by the property
//! test `hostile_path.rs` and the cargo-fuzz target `fuzz/fuzz_targets/
//! wire_decode.rs`: merge (with an honest generator's window of the same
//! start), the report timeline and page, InfluxDB line protocol, OTLP.

use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_exporter::merge::{Event, MergeConfig, Merger};
use volley_exporter::observe::Observer;
use volley_exporter::report::Reports;
use volley_exporter::sink::influx::line;
use volley_exporter::sink::otlp::encode::{Encoder, Temporality};
use volley_exporter::sink::Item;
use volley_window::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Tags, Unit, WindowReport};

/// A window of one generator.
pub fn report(test_id: &str, generator: &str, start: u64, series: Vec<SeriesWindow>) -> WindowReport {
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

/// Everything the exporter does with a decoded window; panics are bugs.
pub fn exercise(hostile: WindowReport) {
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
