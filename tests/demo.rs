//! `volley demo` — the README's first command — runs a real test against its
//! own in-process target and passes its thresholds.

use volley_tests::*;

#[test]
fn demo_runs_a_real_test_and_passes_its_thresholds() {
    let dir = Scratch::new("demo");
    let export = dir.path("summary.json");
    let out = volley(&["demo", "--duration", "5s", "--quiet", "--summary-export", export.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in ["█ THRESHOLDS", "✓ 'p(95)<250'", "█ SCENARIO: api", "█ SCENARIO: browse", "http_reqs"] {
        assert!(stdout.contains(part), "missing {part:?} in:\n{stdout}");
    }
    let s = read_json(&export);
    // api: 200/s over 3 s of load, 601 iterations, each one GET /json.
    assert_eq!(s["metrics"]["iterations{scenario:api}"]["count"], 601.0);
    assert_eq!(s["metrics"]["http_req_failed"]["passes"], 0);
    assert!(s["metrics"]["iterations{scenario:browse}"]["count"].as_f64().unwrap() > 10.0);
}
