//! `volley demo` — the README's first command — runs a real test against its
//! own in-process target and passes its thresholds.

use volley_tests::*;

#[test]
fn demo_runs_a_real_test_and_passes_its_thresholds() {
    let dir = Scratch::new("demo");
    let export = dir.path("summary.json");
    let report = dir.path("report.html");
    let out = volley(&[
        "demo",
        "--duration",
        "5s",
        "--quiet",
        "--summary-export",
        export.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(std::fs::read_to_string(&report).unwrap().contains("<html"), "the demo writes its report");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in [
        "█ THRESHOLDS",
        "✓ 'p(95)<250'",
        "█ SCENARIO: api",
        "█ SCENARIO: browse",
        "█ SCENARIO: chat",
        "http_reqs",
        "im_e2e_latency_ms",
        "token_refresh_ok",
    ] {
        assert!(stdout.contains(part), "missing {part:?} in:\n{stdout}");
    }
    let s = read_json(&export);
    // api: 200/s over 3 s of load, 601 iterations, each one GET /json.
    assert_eq!(s["metrics"]["iterations{scenario:api}"]["count"], 601.0);
    assert_eq!(s["metrics"]["http_req_failed"]["passes"], 0);
    assert!(s["metrics"]["iterations{scenario:browse}"]["count"].as_f64().unwrap() > 10.0);
    // chat: 10 senders, one message per 100 ms each, across the two gateways.
    let sent = export_count(&s, "im_sent_total");
    assert!(sent > 100, "only {sent} IM messages");
    assert_eq!(export_count(&s, "im_recv_unique_total"), sent);
    assert_eq!(export_count(&s, "im_lost_total"), 0);
    assert_eq!(export_count(&s, "ws_auth_ok"), 20);
    // token: 2-second tokens refreshed every 1.6 s over 3 s of load, and
    // every browsing VU's GET /api/profile carried a valid one (a 401 would
    // have failed http_req_failed above and the check below).
    assert!(export_count(&s, "token_refresh_ok") >= 2, "{}", s["metrics"]["token_refresh_ok"]);
    assert_eq!(export_count(&s, "token_refresh_fail"), 0);
    assert_eq!(s["metrics"]["checks"]["fails"], 0);
    assert!(s["root_group"]["checks"].to_string().contains("json user"), "{}", s["root_group"]["checks"]);
}
