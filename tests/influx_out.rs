//! `volley run --out influxdb=…` against real servers: InfluxDB 1.x for the
//! v1 API (read back with InfluxQL) and VictoriaMetrics for the v2 write path
//! (read back raw through its export API). What the database holds must
//! equal the run's own summary exactly.

use serde_json::json;
use volley_tests::servers::{Influxd, VictoriaMetrics};
use volley_tests::*;

fn scenario(url: &str) -> serde_json::Value {
    json!({
        "options": {"scenarios": {
            "api": {"executor": "constant-arrival-rate", "rate": 200, "timeUnit": "1s", "duration": "3s",
                    "preAllocatedVUs": 5, "maxVUs": 20},
            "browse": {"executor": "per-vu-iterations", "vus": 3, "iterations": 7, "exec": "browse"}
        }},
        "flows": {
            "default": {"type": "http", "steps": [
                {"request": {"url": format!("{url}/json")}, "checks": {"status": 200, "bodyContains": "volley"}}
            ]},
            "browse": {"type": "http", "steps": [
                {"request": {"url": format!("{url}/status/404")}},
                {"request": {"url": format!("{url}/delay/5")}, "checks": {"status": 200}}
            ]}
        }
    })
}

#[test]
fn influxdb_v1_holds_exactly_the_runs_totals() {
    let db = Influxd::start();
    let target = Testbed::http();
    let out = format!("influxdb={}/volley", db.url);
    let mut doc = scenario(&target.url);
    // One threshold that holds throughout and one that fails from the first
    // request on: both are written per window as `threshold` gauges.
    doc["options"]["thresholds"] =
        json!({"iterations": ["count>=0"], "http_req_duration{scenario:browse}": ["max<0.001"]});
    let (run, s) = run_scenario(&doc, &["--out", &out, "--test-id", "v1-totals"]);
    assert_eq!(run.status.code(), Some(99), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains(&format!("output influxdb v1 {}/ db=volley:", db.url)), "{stderr}");

    let sum = |q: &str| db.scalar(q);
    let t = "\"testid\" = 'v1-totals'";
    let reqs = export_count(&s, "http_reqs");
    assert_eq!(reqs, 600 + 1 + 3 * 7 * 2, "the schedule's requests");
    assert_eq!(sum(&format!("SELECT sum(\"count\") FROM \"http_reqs\" WHERE {t}")) as u64, reqs);
    assert_eq!(
        sum(&format!("SELECT sum(\"count\") FROM \"iterations\" WHERE {t}")) as u64,
        export_count(&s, "iterations")
    );
    assert_eq!(sum(&format!("SELECT sum(\"count\") FROM \"http_req_duration\" WHERE {t}")) as u64, reqs);
    assert_eq!(sum(&format!("SELECT sum(\"count\") FROM \"http_reqs\" WHERE {t} AND \"status\" = '404'")) as u64, 21);
    assert_eq!(
        sum(&format!("SELECT sum(\"count\") FROM \"iterations\" WHERE {t} AND \"scenario\" = 'browse'")) as u64,
        21
    );
    assert_eq!(
        sum(&format!("SELECT sum(\"passes\") FROM \"checks\" WHERE {t}")) as u64,
        s["metrics"]["checks"]["passes"].as_u64().unwrap()
    );
    assert_eq!(
        sum(&format!("SELECT sum(\"count\") FROM \"data_received\" WHERE {t}")) as u64,
        export_count(&s, "data_received")
    );
    // Counts are integers; the slowest request is the trend's max.
    let keys = db.query("SHOW FIELD KEYS FROM \"http_reqs\"");
    assert_eq!(keys["results"][0]["series"][0]["values"], json!([["count", "integer"]]), "{keys}");
    let max = sum(&format!("SELECT max(\"max\") FROM \"http_req_duration\" WHERE {t}"));
    let exported = s["metrics"]["http_req_duration"]["max"].as_f64().unwrap();
    assert!((max - exported).abs() <= exported * 0.011, "max {max} vs summary {exported}");
    // One health point per window, tagged with the generator.
    let health =
        db.query(&format!("SELECT count(\"rss_bytes\") FROM \"generator_health\" WHERE {t} GROUP BY \"generator\""));
    let windows = health["results"][0]["series"][0]["values"][0][1].as_u64().unwrap();
    assert!((4..=6).contains(&windows), "{health}");
    assert!(health["results"][0]["series"][0]["tags"]["generator"].as_str().unwrap().contains('-'), "{health}");
    // The run summary: one point per metric at the end, equal to the summary's totals.
    let summary = |metric: &str, field: &str| {
        sum(&format!(
            "SELECT last(\"{field}\") FROM \"run_summary\" WHERE {t} AND \"metric\" = '{metric}' AND \"check\" = ''"
        ))
    };
    assert_eq!(summary("http_reqs", "count") as u64, reqs);
    assert_eq!(summary("http_req_duration", "count") as u64, reqs);
    assert_eq!(summary("checks", "passes") as u64, s["metrics"]["checks"]["passes"].as_u64().unwrap());
    for (field, key) in [("p95", "p(95)"), ("p90", "p(90)"), ("max", "max")] {
        let (stored, exported) =
            (summary("http_req_duration", field), s["metrics"]["http_req_duration"][key].as_f64().unwrap());
        assert!((stored - exported).abs() <= 1e-6 * exported, "{field}: {stored} vs the summary's {exported}");
    }
    let checks = db.query(&format!(
        "SELECT last(\"passes\") FROM \"run_summary\" WHERE {t} AND \"metric\" = 'checks' GROUP BY \"check\""
    ));
    assert_eq!(
        checks["results"][0]["series"].as_array().map(Vec::len),
        Some(3),
        "the whole and two checks by name: {checks}"
    );
    // Thresholds, live: one point per window and threshold.
    let verdicts = db.query(&format!(
        "SELECT count(\"value\"), min(\"value\"), max(\"value\") FROM \"threshold\" WHERE {t} GROUP BY \"metric\", \"threshold\""
    ));
    let series = verdicts["results"][0]["series"].as_array().unwrap_or_else(|| panic!("{verdicts}"));
    let row = |metric: &str| {
        let s = series.iter().find(|s| s["tags"]["metric"] == metric).unwrap_or_else(|| panic!("{metric}: {verdicts}"));
        (s["tags"]["threshold"].clone(), s["values"][0].clone())
    };
    assert_eq!(row("iterations"), (json!("count>=0"), json!(["1970-01-01T00:00:00Z", windows, 1, 1])), "{verdicts}");
    assert_eq!(
        row("http_req_duration{scenario:browse}"),
        (json!("max<0.001"), json!(["1970-01-01T00:00:00Z", windows, 0, 0])),
        "{verdicts}"
    );
}

#[test]
fn the_v2_write_api_reaches_victoria_metrics_with_the_same_totals() {
    let vm = VictoriaMetrics::start();
    let target = Testbed::http();
    let dir = Scratch::new("v2");
    let file = dir.write("s.json", &scenario(&target.url).to_string());
    let export = dir.path("summary.json");
    let out = std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--test-id", "v2-totals", "--summary-export", export.to_str().unwrap()])
        .args(["--out", &format!("influxdb={}?org=acme&bucket=load", vm.url)])
        .arg(&file)
        .env("VOLLEY_INFLUXDB_TOKEN", "tok-123456789")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("tok-123456789"), "the token leaked: {stderr}");
    let s = read_json(&export);
    // VictoriaMetrics acknowledges writes before they are searchable: read
    // until the last window shows up (or give up after 15 s).
    let expected_reqs = export_count(&s, "http_reqs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let sums = loop {
        let sums = vm.export_sums("{testid=\"v2-totals\"}");
        let reqs = sums.get("http_reqs_count").map_or(0.0, |v| v.0) as u64;
        if reqs == expected_reqs || std::time::Instant::now() > deadline {
            break sums;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let total = |name: &str| sums.get(name).map_or(0.0, |v| v.0) as u64;
    assert_eq!(total("http_reqs_count"), export_count(&s, "http_reqs"), "{sums:?}");
    assert_eq!(total("iterations_count"), export_count(&s, "iterations"), "{sums:?}");
    assert_eq!(total("http_req_duration_count"), export_count(&s, "http_reqs"), "{sums:?}");
    assert_eq!(total("checks_passes"), s["metrics"]["checks"]["passes"].as_u64().unwrap(), "{sums:?}");
    assert!(sums.contains_key("http_req_duration_p99") && sums.contains_key("generator_health_rss_bytes"), "{sums:?}");
}

#[test]
fn an_unreachable_output_neither_fails_nor_changes_the_test() {
    let target = Testbed::http();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 20}}},
        "flows": {"default": {"type": "http", "steps": [{"request": {"url": format!("{}/", target.url)}}]}}
    });
    let out = format!("influxdb=http://127.0.0.1:{}/volley", closed_port());
    let (run, s) = run_scenario(&doc, &["--out", &out, "--out-flush-timeout", "1s"]);
    // The test itself is unchanged; that its data was not stored is said
    // and gives the run an exit code of its own.
    assert_eq!(run.status.code(), Some(112), "{}", describe(&run));
    assert_eq!(export_count(&s, "http_reqs"), 20);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("retrying with backoff"), "{stderr}");
    assert!(stderr.contains("stored 0 items (0 points) in 0 writes; NOT STORED:"), "{stderr}");
}

#[test]
fn influxdb_v1_credentials_from_the_url() {
    let db = Influxd::start_with_auth("loadtest", "s3cret-pw");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 50}}},
        "flows": {"default": {"type": "noop"}}
    });
    let host = db.url.trim_start_matches("http://");
    let good = format!("influxdb=http://loadtest:s3cret-pw@{host}/volley");
    let (run, s) = run_scenario(&doc, &["--out", &good, "--test-id", "auth-ok"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(
        db.scalar("SELECT sum(\"count\") FROM \"iterations\" WHERE \"testid\" = 'auth-ok'") as u64,
        export_count(&s, "iterations")
    );
    // A wrong password is refused by the server: the output is down (the
    // credentials may be fixed), retried until --out-flush-timeout, then
    // reported with exit code 112; the password is never shown.
    let bad = format!("influxdb=http://loadtest:wrong-pw@{host}/volley");
    let (run, _) = run_scenario(&doc, &["--out", &bad, "--test-id", "auth-bad", "--out-flush-timeout", "2s"]);
    assert_eq!(run.status.code(), Some(112), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("HTTP 401") && stderr.contains("NOT STORED"), "{stderr}");
    assert!(!stderr.contains("wrong-pw") && !stderr.contains("s3cret-pw"), "a password leaked: {stderr}");
    assert_eq!(db.scalar("SELECT sum(\"count\") FROM \"iterations\" WHERE \"testid\" = 'auth-bad'"), 0.0);
}

/// The README's "no exporter" recipe: two generators run halves of one test
/// (execution segments, same test id) and both write to one InfluxDB. Each
/// point carries its generator, so nothing overwrites: the database holds
/// the sum of both summaries.
#[test]
fn two_segmented_generators_writing_directly_add_up() {
    let db = Influxd::start();
    let target = Testbed::http();
    let dir = Scratch::new("fleet-direct");
    let file = dir.write("s.json", &serde_json::to_string(&scenario(&target.url)).unwrap());
    let out = format!("influxdb={}/volley", db.url);
    let halves = [("a", "0:1/2"), ("b", "1/2:1")];
    let children: Vec<_> = halves
        .iter()
        .map(|(name, seg)| {
            let args = ["--out", &out, "--test-id", "fleet-direct", "--execution-segment", seg];
            (*name, spawn_run(&dir, name, &file, &args, &[]))
        })
        .collect();
    let mut sent = std::collections::BTreeMap::new();
    for (name, mut child) in children {
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{name}: {}", log_of(&dir, name));
        let s = read_json(&dir.path(&format!("{name}-summary.json")));
        for metric in ["http_reqs", "iterations"] {
            *sent.entry(metric).or_insert(0) += export_count(&s, metric);
        }
    }
    assert_eq!(sent["http_reqs"], 600 + 1 + 3 * 7 * 2, "the two halves make the whole schedule");
    // Every request is timed once.
    sent.insert("http_req_duration", sent["http_reqs"]);
    let t = "\"testid\" = 'fleet-direct'";
    for (metric, total) in &sent {
        let stored = db.scalar(&format!("SELECT sum(\"count\") FROM \"{metric}\" WHERE {t}")) as u64;
        assert_eq!(stored, *total, "{metric}");
        let summaries = db.scalar(&format!(
            "SELECT sum(\"count\") FROM (SELECT last(\"count\") AS \"count\" FROM \"run_summary\" WHERE {t} AND \"metric\" = '{metric}' AND \"check\" = '' GROUP BY \"generator\")"
        )) as u64;
        assert_eq!(summaries, *total, "run_summary of {metric}, one per generator");
    }
    let generators = db.query("SHOW TAG VALUES FROM \"http_reqs\" WITH KEY = \"generator\"");
    assert_eq!(generators["results"][0]["series"][0]["values"].as_array().map(Vec::len), Some(2), "{generators}");
}

/// An InfluxDB that refuses every write (401: the password the run was
/// given is not set yet, as during a credential rotation) for the first
/// seconds of a run, then accepts them: the windows written meanwhile are
/// retried, nothing is acknowledged before it is stored, and InfluxDB ends
/// with exactly the run's totals.
#[test]
fn an_influxdb_refusing_writes_with_401_at_first_loses_nothing() {
    let mut db = Influxd::start_with_auth("admin", "old-pw");
    let dir = Scratch::new("auth-late");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 50, "timeUnit": "1s",
                                        "duration": "8s", "preAllocatedVUs": 5, "maxVUs": 5}}},
        "flows": {"default": {"type": "noop"}}
    });
    let file = dir.write("s.json", &doc.to_string());
    let host = db.url.trim_start_matches("http://").to_string();
    let out = format!("influxdb=http://admin:late-pw@{host}/volley");
    let mut child = spawn_run(&dir, "g", &file, &["--out", &out, "--test-id", "auth-late"], &[]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let refused_so_far = log_of(&dir, "g");
    db.set_password("admin", "late-pw");
    let status = child.wait().unwrap();
    let log = log_of(&dir, "g");
    assert!(refused_so_far.contains("HTTP 401"), "the first writes were refused: {log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("writing again") && !log.contains("NOT STORED"), "{log}");
    let s = read_json(&dir.path("g-summary.json"));
    assert_eq!(export_count(&s, "iterations"), 401);
    let t = "\"testid\" = 'auth-late'";
    assert_eq!(db.scalar(&format!("SELECT sum(\"count\") FROM \"iterations\" WHERE {t}")) as u64, 401, "{log}");
}

/// One poison line: a field InfluxDB already holds as a string (`vus_max`'s
/// `value`) makes it answer 400. The batch is split until that point is
/// isolated; everything else is stored, the refused points are counted and
/// shown with an example line, and the run exits 112.
#[test]
fn a_point_influxdb_refuses_is_isolated_counted_and_the_rest_stored() {
    let db = Influxd::start();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let (code, body) = db.write_lines(&format!("vus_max,testid=poison value=\"not a number\" {now_ms}\n"));
    assert_eq!(code, 204, "{body}");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 50, "timeUnit": "1s",
                                        "duration": "3s", "preAllocatedVUs": 5, "maxVUs": 5}}},
        "flows": {"default": {"type": "noop"}}
    });
    let out = format!("influxdb={}/volley", db.url);
    let (run, s) = run_scenario(&doc, &["--out", &out, "--test-id", "poison", "--out-flush-timeout", "10s"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(112), "{}", describe(&run));
    assert!(stderr.contains("refused as bad data") && stderr.contains("vus_max"), "{stderr}");
    assert!(stderr.contains("NOT STORED"), "{stderr}");
    let t = "\"testid\" = 'poison'";
    assert_eq!(
        db.scalar(&format!("SELECT sum(\"count\") FROM \"iterations\" WHERE {t}")) as u64,
        export_count(&s, "iterations"),
        "everything but the poison is stored: {stderr}"
    );
}
