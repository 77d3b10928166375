//! Property test of the exporter's whole data path with hostile input:
//! frames built from arbitrary windows (any metric name, tag or test id,
//! any float, sketches of any values), then corrupted, go through decode →
//! merge (with an honest generator's window of the same start) → the report
//! timeline and page → InfluxDB line protocol → OTLP. Nothing may panic;
//! decoding's memory bound is checked in `volley-window`'s own tests.

mod path;

use path::{exercise, report};
use proptest::prelude::*;
use volley_window::wire::{self, ToExporter};
use volley_window::{Aggregate, SeriesKey, SeriesWindow, Sketch, Tags, Unit};

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
