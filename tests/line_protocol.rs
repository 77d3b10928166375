//! Any string as a metric name, tag or test id, written to a real influxd:
//! read back unchanged when InfluxDB's line protocol can store it (see
//! `storable` and `storable_metric`, which the generator also uses to refuse
//! configured names),
//! and never breaking the batch it is in when it cannot.

use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use volley_exporter::merge::MergedWindow;
use volley_exporter::sink::influx::line::{encode_window, storable, storable_metric};
use volley_tests::servers::Influxd;
use volley_window::{Aggregate, SeriesKey, SeriesWindow, Tags, Unit};

/// Strings built from line protocol's special characters, quotes, control
/// characters, non-ASCII letters and plain ones.
fn hostile() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c ,=\\\\\"'#\\n\\r\\t\u{0}€ä/._-]{1,10}").unwrap()
}

/// One window whose single counter carries the strings; `ts` keeps each
/// case's point apart from the others.
fn window(metric: &str, check: &str, test_id: &str, ts: u64) -> MergedWindow {
    let key = SeriesKey::new(metric, Tags::from_pairs([("check", check), ("scenario", "s")]));
    MergedWindow {
        test_id: test_id.to_string(),
        start_unix_ms: ts,
        len_ms: 1000,
        series: vec![SeriesWindow { key, unit: Unit::None, value: Aggregate::Counter(7.0) }],
        reporters: 1,
    }
}

static NEXT_TS: AtomicU64 = AtomicU64::new(1_700_000_000_000);

#[test]
fn names_are_stored_unchanged_or_made_harmless() {
    let db = Influxd::start();
    let config = ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(hostile(), hostile(), hostile()), |(metric, check, test_id)| round_trip(&db, &metric, &check, &test_id))
        .unwrap();
}

fn round_trip(db: &Influxd, metric: &str, check: &str, test_id: &str) -> Result<(), TestCaseError> {
    let ts = NEXT_TS.fetch_add(1000, Ordering::Relaxed);
    let mut body = String::new();
    prop_assert_eq!(encode_window(&window(metric, check, test_id, ts), &mut body), 1);
    // A well-formed second line in the same request must survive.
    body.push_str(&format!("canary,testid=c count=1i {ts}\n"));
    let (code, answer) = db.write_lines(&body);
    prop_assert_eq!(code, 204, "{:?} was refused: {}", body, answer);
    let got = db.query(&format!("SELECT * FROM /.*/ WHERE time = {ts}ms"));
    let series = got["results"][0]["series"].as_array().cloned().unwrap_or_default();
    prop_assert_eq!(series.len(), 2, "{}", got);
    if storable_metric(metric).is_ok() && storable(check).is_ok() && storable(test_id).is_ok() {
        let ours = series.iter().find(|s| s["name"] != "canary").expect("our point");
        prop_assert_eq!(ours["name"].as_str(), Some(metric));
        let columns: Vec<String> =
            ours["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let value = |name: &str| ours["values"][0][columns.iter().position(|c| c == name).unwrap()].clone();
        let (got_check, got_test, got_count) = (value("check"), value("testid"), value("count"));
        prop_assert_eq!(got_check.as_str(), Some(check));
        prop_assert_eq!(got_test.as_str(), Some(test_id));
        prop_assert_eq!(got_count.as_f64(), Some(7.0));
    }
    Ok(())
}

#[test]
fn storable_says_why_not() {
    assert_eq!(storable("a\\b"), Ok(()));
    assert_eq!(storable("checkout, step 1 = ok"), Ok(()));
    assert!(storable("line\nbreak").unwrap_err().contains("control character '\\n'"));
    assert!(storable("ends with\\").unwrap_err().contains("backslash"));
    assert!(storable("a\\,b").unwrap_err().contains("backslash"));
    assert!(storable("#tag").unwrap_err().contains("comment"));
    assert_eq!(storable("").unwrap_err(), "is empty");
    assert_eq!(storable_metric("a\\b").unwrap_err(), "contains a backslash");
}
