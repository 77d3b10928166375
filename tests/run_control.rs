//! Thresholds, exit codes, abortOnFail, Ctrl-C and the summary export's shape.

use serde_json::json;
use volley_tests::*;

fn noop(options: serde_json::Value, sleep: &str) -> serde_json::Value {
    json!({"options": options, "flows": {"default": {"type": "noop", "sleep": sleep}}})
}

#[test]
fn a_failed_threshold_exits_99_and_is_exported_as_failed() {
    let doc = noop(
        json!({
            "scenarios": {"s": {"executor": "per-vu-iterations", "vus": 2, "iterations": 5}},
            "thresholds": {"iteration_duration": ["p(95)<1", "max<60000"], "iterations{scenario:s}": ["count==10"]}
        }),
        "20ms",
    );
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(99), "{}", describe(&out));
    let t = &s["metrics"]["iteration_duration"]["thresholds"];
    assert_eq!(t["p(95)<1"], true, "true means failed, as in k6");
    assert_eq!(t["max<60000"], false);
    assert_eq!(s["metrics"]["iterations{scenario:s}"]["thresholds"]["count==10"], false);
    assert!(String::from_utf8_lossy(&out.stdout).contains("✗ 'p(95)<1'"), "{}", describe(&out));
}

#[test]
fn abort_on_fail_stops_the_test_early() {
    let server = Testbed::http();
    let doc = json!({
        "options": {
            "scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 50, "duration": "30s", "preAllocatedVUs": 5}},
            "thresholds": {"checks": [{"threshold": "rate>0.99", "abortOnFail": true}]}
        },
        "flows": {"default": {"type": "http", "steps": [{"request": {"url": format!("{}/status/500", server.url)}, "checks": {"status": 200}}]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(99), "{}", describe(&out));
    let iterations = s["metrics"]["iterations"]["count"].as_f64().unwrap();
    assert!(iterations > 0.0 && iterations < 1501.0 / 3.0, "aborted after the first windows, ran {iterations} of 1501");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("The test was aborted: threshold rate>0.99 on checks failed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn sigint_stops_gracefully_with_a_summary() {
    let dir = Scratch::new("sigint");
    let file = dir.write(
        "s.json",
        &noop(json!({"scenarios": {"s": {"executor": "constant-vus", "vus": 3, "duration": "60s"}}}), "100ms")
            .to_string(),
    );
    let export = dir.path("summary.json");
    let child = std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--summary-export", export.to_str().unwrap(), file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start volley");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(105), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TOTAL RESULTS"), "{}", describe(&out));
    let s = read_json(&export);
    assert!(s["metrics"]["iterations"]["count"].as_f64().unwrap() >= 3.0, "{s}");
}

#[test]
fn summary_export_has_k6s_shape() {
    let doc = noop(
        json!({
            "scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 10}},
            "summaryTrendStats": ["avg", "p(99)", "count"]
        }),
        "5ms",
    );
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let m = &s["metrics"];
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&m["iterations"]), vec!["count", "rate"]);
    assert_eq!(keys(&m["iteration_duration"]), vec!["avg", "count", "p(99)"]);
    assert_eq!(m["iteration_duration"]["count"], 10.0);
    assert_eq!(keys(&m["vus_max"]), vec!["max", "min", "value"]);
    assert_eq!(m["vus_max"]["value"], 2.0);
    assert_eq!(s["root_group"]["id"], "d41d8cd98f00b204e9800998ecf8427e");
    assert!(m["iteration_duration"]["avg"].as_f64().unwrap() >= 5.0);
}

#[test]
fn dropped_iterations_come_with_vu_advice() {
    let doc = noop(
        json!({"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 50, "duration": "2s", "preAllocatedVUs": 2, "maxVUs": 2}}}),
        "500ms",
    );
    let dir = Scratch::new("advice");
    let file = dir.write("s.json", &doc.to_string());
    let out = volley(&["run", "--quiet", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 101 due, 2 VUs busy 500 ms each: 8 start, 93 drop (±1 at the edges).
    let line =
        stdout.lines().find(|l| l.contains("iterations dropped")).unwrap_or_else(|| panic!("no advice in:\n{stdout}"));
    assert!(line.contains("at 50/s needs ≈ 26 VUs — set preAllocatedVUs ≥ 29"), "{line}");
}
