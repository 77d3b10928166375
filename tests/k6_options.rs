//! k6's options and flags that shape requests and the summary, against
//! the real testbed: HTTP/2 by ALPN, `hosts`, `noConnectionReuse`,
//! `systemTags`, `discardResponseBodies`, `--tag`, `--no-thresholds`,
//! `--summary-trend-stats`, `--summary-time-unit`, `--http-debug`.

use serde_json::json;
use volley_tests::*;

fn scenario(iterations: u64, steps: serde_json::Value) -> serde_json::Value {
    json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": iterations}}},
        "flows": {"default": {"type": "http", "steps": steps}}
    })
}

/// Over TLS the client offers HTTP/2 and the testbed picks it: every
/// request of a cookie-and-redirect login goes over HTTP/2.
#[test]
fn https_speaks_http2_when_the_server_offers_it() {
    let server = Testbed::https();
    let base = &server.url;
    let mut doc = scenario(
        10,
        json!([
            {"request": {"method": "POST", "url": format!("{base}/shop/login"),
                         "form": {"user": "user{{vu}}", "pass": "pw-user{{vu}}"}},
             "capture": {"id": {"json": "$.user.id"}}, "checks": {"status": 200}},
            {"request": {"url": format!("{base}/shop/orders?user={{{{id}}}}")}, "checks": {"status": 200}}
        ]),
    );
    doc["options"]["insecureSkipTLSVerify"] = json!(true);
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stats = server.stats();
    // login, its redirect to /shop/me, the order list: 3 per iteration.
    assert_eq!(stats["requests"], 30, "{stats}");
    assert_eq!(stats["http2_requests"], 30, "{stats}");
    assert_eq!(stats["shop"]["no_session"], 0, "the session cookie went along over HTTP/2");
    assert_eq!(s["metrics"]["checks"]["fails"], 0, "{s}");
}

/// `hosts` sends a name to an address; `noConnectionReuse` opens a
/// connection per request.
#[test]
fn hosts_and_no_connection_reuse() {
    let server = Testbed::http();
    let port = server.url.rsplit(':').next().unwrap();
    let mut doc =
        scenario(6, json!([{"request": {"url": format!("http://shop.test:{port}/json")}, "checks": {"status": 200}}]));
    // Each of the two VUs makes 3 requests (shared iterations could leave
    // one VU without any).
    doc["options"]["scenarios"]["s"] = json!({"executor": "per-vu-iterations", "vus": 2, "iterations": 3});
    doc["options"]["hosts"] = json!({"shop.test": "127.0.0.1"});
    doc["options"]["noConnectionReuse"] = json!(true);
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["checks"]["passes"], 6, "{s}");
    let stats = server.stats();
    assert_eq!(stats["requests"], 6);
    // One connection per request, and the one that read /stats.
    assert_eq!(stats["peers"]["127.0.0.1"]["connections"], 7, "one connection per request: {stats}");
    // Without the option the two VUs keep their connections.
    doc["options"].as_object_mut().unwrap().remove("noConnectionReuse");
    let before = server.stats()["peers"]["127.0.0.1"]["connections"].as_u64().unwrap();
    let (out, _) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let after = server.stats()["peers"]["127.0.0.1"]["connections"].as_u64().unwrap();
    assert_eq!(after - before, 2 + 1, "a connection per VU (and the /stats read)");
    // An unknown name without a hosts entry fails to connect: counted, not fatal.
    doc["options"].as_object_mut().unwrap().remove("hosts");
    doc["flows"]["default"]["steps"][0]["request"]["timeout"] = json!("2s");
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["checks"]["fails"], 6);
}

/// `systemTags` drops the tags not listed: a sub-metric selecting a
/// dropped tag then has no data (and its threshold, as in k6, nothing to
/// judge).
#[test]
fn system_tags_keep_only_the_listed_tags() {
    let server = Testbed::http();
    let mut doc = scenario(4, json!([{"request": {"url": format!("{}/json", server.url), "name": "doc"}}]));
    doc["options"]["thresholds"] = json!({"http_reqs{name:doc}": ["count==4"], "http_reqs{method:GET}": ["count==4"]});
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs{method:GET}"]["count"], 4.0, "every tag is kept by default: {s}");
    doc["options"]["systemTags"] = json!(["name", "status"]);
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs{name:doc}"]["count"], 4.0, "{s}");
    assert!(s["metrics"]["http_reqs{method:GET}"].is_null(), "method was dropped: {s}");
    let (out, s) = run_scenario(&doc, &["--system-tags", "name,status,method"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs{method:GET}"]["count"], 4.0, "the flag wins over the file: {s}");
    let (out, _) = run_scenario(&doc, &["--system-tags", "name,proto"]);
    assert_eq!(out.status.code(), Some(104));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--system-tags: \"proto\" is not a system tag"));
}

/// `discardResponseBodies`: a check that reads a body it would not keep
/// is refused at load time; `responseType: text` keeps that one.
#[test]
fn discarded_bodies_cannot_be_checked_unless_kept() {
    let server = Testbed::http();
    let mut doc = scenario(
        2,
        json!([{"request": {"url": format!("{}/json", server.url)}, "checks": {"bodyContains": "volley"}}]),
    );
    doc["options"]["discardResponseBodies"] = json!(true);
    let (out, _) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flows.default.steps[0].checks: reads the response body, which this request does not keep (discardResponseBodies is true"), "{err}");
    doc["flows"]["default"]["steps"][0]["request"]["responseType"] = json!("text");
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["checks"]["passes"], 2);
    let (out, _) = run_scenario(
        &scenario(1, json!([{"request": {"url": format!("{}/json", server.url)}, "checks": {"bodyContains": "x"}}])),
        &["--discard-response-bodies"],
    );
    assert_eq!(out.status.code(), Some(104), "the flag too: {}", describe(&out));
}

/// `--tag`, `--no-thresholds`, `--summary-trend-stats`,
/// `--summary-time-unit`, and `--http-debug` with its credentials masked.
#[test]
fn summary_and_debug_flags() {
    let server = Testbed::http();
    let mut doc = scenario(
        3,
        json!([{"request": {"url": format!("{}/json", server.url), "headers": {"Authorization": "Bearer s3cr3t-t0ken-value"}}}]),
    );
    doc["options"]["thresholds"] = json!({"http_reqs{team:core}": ["count==3"], "http_req_duration": ["max<0"]});
    let (out, _) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(99), "the thresholds fail without the flags: {}", describe(&out));
    doc["options"]["thresholds"] = json!({"http_reqs{team:core}": ["count==3"]});
    let (out, s) = run_scenario(&doc, &["--tag", "team=core", "--summary-trend-stats", "avg,p(99)"]);
    assert_eq!(out.status.code(), Some(0), "--tag tags every metric: {}", describe(&out));
    let keys: Vec<&String> = s["metrics"]["http_req_duration"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["avg", "p(99)"], "{s}");
    doc["options"]["thresholds"] = json!({"http_req_duration": ["max<0"]});
    let dir = Scratch::new("flags");
    let file = dir.write("s.json", &doc.to_string());
    let out =
        volley(&["run", "--no-thresholds", "--summary-time-unit", "s", "--http-debug=full", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("http_req_duration")).unwrap();
    assert!(
        line.contains("avg=0") && line.split_whitespace().skip(1).all(|w| w.ends_with('s') && !w.ends_with("ms")),
        "{line}"
    );
    assert!(!text.contains("THRESHOLDS"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("Request:\nGET /json HTTP/1.1").count(), 3, "{err}");
    assert!(err.contains("authorization: Bear… (") && !err.contains("s3cr3t"), "{err}");
    assert!(err.contains("\"name\":\"volley\""), "full shows bodies: {err}");
}

/// `--out json=FILE` and `--out csv=FILE`: a line per window and series;
/// the windows' counts add up to the summary's.
#[test]
fn json_and_csv_outputs_hold_every_window() {
    let server = Testbed::http();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-vus", "vus": 2, "duration": "2500ms"}}},
        "flows": {"default": {"type": "http", "sleep": "10ms", "steps": [{"request": {"url": format!("{}/json", server.url)}}]}}
    });
    let dir = Scratch::new("file-out");
    let (json_path, csv_path) = (dir.path("out.json"), dir.path("out.csv"));
    let json_arg = format!("json={}", json_path.display());
    let csv_arg = format!("csv={}", csv_path.display());
    let (out, s) = run_scenario(&doc, &["--out", &json_arg, "--out", &csv_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let total = export_count(&s, "http_reqs");
    assert!(total > 20, "{s}");
    let text = std::fs::read_to_string(&json_path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let points = |kind: &str| -> f64 {
        lines
            .iter()
            .filter(|l| l["type"] == kind && l["metric"] == "http_reqs")
            .map(|l| l["data"]["value"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(points("Point") as u64, total, "windows add up to the summary");
    assert_eq!(points("Summary") as u64, total, "and the run totals say the same");
    let windows = lines.iter().filter(|l| l["type"] == "Point" && l["metric"] == "http_reqs").count();
    assert!(windows >= 2, "one line per window: {windows}");
    let duration = lines.iter().find(|l| l["metric"] == "http_req_duration").unwrap();
    assert!(
        duration["data"]["p(95)"].as_f64().unwrap() > 0.0 && duration["data"]["tags"]["status"] == "200",
        "{duration}"
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut rows = csv.lines();
    assert!(rows.next().unwrap().starts_with("metric_name,timestamp,window_ms,metric_value"));
    let csv_total: f64 = rows
        .filter(|r| r.starts_with("http_reqs,"))
        .map(|r| r.split(',').nth(3).unwrap().parse::<f64>().unwrap())
        .sum();
    // Windows and the summary row.
    assert_eq!(csv_total as u64, 2 * total, "{csv}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("json ") && err.contains("csv "), "the delivery lines name the files: {err}");
}
