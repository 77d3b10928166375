//! Distributed runs: one test split into execution segments over several
//! generator processes that start together through the exporter, merged
//! into one real InfluxDB.

use serde_json::{json, Value};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use volley_tests::exporter::Exporter;
use volley_tests::servers::{curl, Influxd};
use volley_tests::*;

const TOKEN: &str = "distributed-test-token";
const SEQUENCE: &str = "0,1/4,2/4,3/4,1";
const SEGMENTS: [&str; 4] = ["0:1/4", "1/4:2/4", "2/4:3/4", "3/4:1"];

/// The whole test: an open-model and an iteration-based scenario against
/// the testbed, so both kinds of split are exercised.
fn plan(target: &str) -> Value {
    json!({
        "options": {"scenarios": {
            "rate": {"executor": "constant-arrival-rate", "rate": 200, "timeUnit": "1s", "duration": "3s",
                     "preAllocatedVUs": 12, "maxVUs": 60},
            "shared": {"executor": "shared-iterations", "vus": 6, "iterations": 90, "exec": "slow"}
        },
        // Per-scenario counts in the summary export.
        "thresholds": {"iterations{scenario:rate}": ["count>=0"], "iterations{scenario:shared}": ["count>=0"],
                       "dropped_iterations{scenario:rate}": ["count>=0"]}},
        "flows": {
            "default": {"type": "http", "steps": [{"request": {"url": format!("{target}/delay/20")}}]},
            "slow": {"type": "http", "steps": [{"request": {"url": format!("{target}/delay/30")}}]}
        }
    })
}

/// `volley run` in the background with `extra` flags, streaming with the
/// exporter token; stderr to `<name>.log`.
fn generator(dir: &Scratch, name: &str, file: &std::path::Path, extra: &[&str]) -> Child {
    spawn_run(dir, name, file, extra, &[("VOLLEY_EXPORTER_TOKEN", TOKEN)])
}

/// Generator `g{i}` running segment `seg` of [`SEQUENCE`], one of four that
/// start together through the exporter. Each connects from its own source
/// address, 127.0.0.(2+i), so the target sees four distinct hosts.
fn segment_generator(
    dir: &Scratch,
    i: usize,
    seg: &str,
    file: &std::path::Path,
    test_id: &str,
    exporter: &str,
) -> Child {
    let source = format!("127.0.0.{}", 2 + i);
    let flags = ["--test-id", test_id, "--exporter", exporter, "--wait-for", "4", "--local-ips", &source];
    let split = ["--execution-segment", seg, "--execution-segment-sequence", SEQUENCE];
    generator(dir, &format!("g{i}"), file, &[&flags[..], &split[..]].concat())
}

/// Waits until the exporter has agreed the first test's common start.
fn wait_started(health: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats(health)["barriers"][0]["started"] != json!(true) {
        assert!(Instant::now() < deadline, "the generators never started: {}", stats(health));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a generator; returns its summary export and when it exited.
fn finished(dir: &Scratch, name: &str, child: &mut Child) -> (Value, Instant) {
    let status = child.wait().unwrap();
    let ended = Instant::now();
    assert_eq!(status.code(), Some(0), "{name}: {}", log_of(dir, name));
    (read_json(&dir.path(&format!("{name}-summary.json"))), ended)
}

fn stats(health: &str) -> Value {
    let (code, body) = curl(&["-H", &format!("Authorization: Bearer {TOKEN}"), &format!("http://{health}/stats")]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn influx_sum(db: &Influxd, metric: &str, test_id: &str, scenario: &str) -> u64 {
    db.scalar(&format!(
        "SELECT sum(\"count\") FROM \"{metric}\" WHERE \"testid\" = '{test_id}' AND \"scenario\" = '{scenario}'"
    )) as u64
}

#[test]
fn four_segments_started_together_run_exactly_the_unsplit_test() {
    let db = Influxd::start();
    let target = Testbed::http();
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp =
        Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url), "--health-listen", &health]);
    let dir = Scratch::new("segments4");
    let file = dir.write("plan.json", &plan(&target.url).to_string());

    // The four generators become ready 0.6 s apart; none may start before
    // the last is ready.
    let launched = Instant::now();
    let mut gens: Vec<Child> = Vec::new();
    for (i, seg) in SEGMENTS.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(600));
        }
        gens.push(segment_generator(&dir, i, seg, &file, "seg4", &exp.url));
    }
    let last_launch = launched.elapsed();
    let results: Vec<(Value, Instant)> =
        gens.iter_mut().enumerate().map(|(i, c)| finished(&dir, &format!("g{i}"), c)).collect();
    let summaries: Vec<&Value> = results.iter().map(|(s, _)| s).collect();

    // Started together: the first generator waited for the last one, and
    // all ended within moments of each other, not 1.8 s apart.
    let first_end = results.iter().map(|(_, t)| *t).min().unwrap();
    let last_end = results.iter().map(|(_, t)| *t).max().unwrap();
    assert!(first_end.duration_since(launched) > last_launch, "the first generator did not wait");
    assert!(last_end.duration_since(first_end) < Duration::from_millis(1200), "ends {:?} apart", last_end - first_end);
    for i in 0..4 {
        let log = log_of(&dir, &format!("g{i}"));
        assert!(log.contains("4 generators ready; starting together"), "g{i}: {log}");
    }
    let barrier = &stats(&health)["barriers"][0];
    assert_eq!(barrier["test_id"], "seg4", "{barrier}");
    assert_eq!((barrier["expected"].as_u64(), barrier["ready"].as_u64()), (Some(4), Some(4)), "{barrier}");
    assert_eq!(barrier["late"], json!([]), "{barrier}");

    // Each generator ran its own share, and together exactly the unsplit
    // counts: 601 arrivals (200/s over 3 s, both ends) and 90 iterations.
    let count = |s: &Value, key: &str| export_count(s, key);
    // Every scheduled arrival is started or, when a VU was not free in
    // time on a busy machine, dropped and counted: exactly once either way.
    let rate: Vec<u64> = summaries
        .iter()
        .map(|s| count(s, "iterations{scenario:rate}") + count(s, "dropped_iterations{scenario:rate}"))
        .collect();
    let shared: Vec<u64> = summaries.iter().map(|s| count(s, "iterations{scenario:shared}")).collect();
    assert_eq!(rate.iter().sum::<u64>(), 601, "{rate:?}");
    assert_eq!(rate.iter().max().unwrap() - rate.iter().min().unwrap(), 1, "{rate:?}");
    assert_eq!(shared.iter().sum::<u64>(), 90, "{shared:?}");
    let started: u64 = summaries.iter().map(|s| count(s, "iterations{scenario:rate}")).sum();

    // The target saw four hosts, one per generator: each connected from its
    // own address, and nothing of the test came from anywhere else (the
    // test's own /stats requests come from 127.0.0.1).
    let peers = target.stats()["peers"].clone();
    let hosts: Vec<&String> = peers.as_object().unwrap().keys().filter(|ip| *ip != "127.0.0.1").collect();
    assert_eq!(hosts, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"], "{peers}");
    for ip in hosts {
        assert!(peers[ip]["connections"].as_u64().unwrap() > 0, "{peers}");
    }

    let log = exp.stop();
    assert_eq!(influx_sum(&db, "iterations", "seg4", "rate"), started, "{log}");
    assert_eq!(influx_sum(&db, "iterations", "seg4", "shared"), 90, "{log}");
    assert_eq!(
        influx_sum(&db, "http_reqs", "seg4", "rate") + influx_sum(&db, "http_reqs", "seg4", "shared"),
        started + 90
    );
    assert!(log.contains("test seg4: 4 generators ready; they start together"), "{log}");

    // The merged median comes from one sketch of every request of the four
    // generators; a single process running the unsplit test against the
    // same target sees the same latencies.
    let merged_med = db.scalar(
        "SELECT last(\"p50\") FROM \"run_summary\" WHERE \"testid\" = 'seg4' AND \"metric\" = 'http_req_duration'",
    );
    let mut single = generator(&dir, "single", &file, &[]);
    let (one, _) = finished(&dir, "single", &mut single);
    let single_med = one["metrics"]["http_req_duration"]["med"].as_f64().unwrap();
    assert!(
        (merged_med - single_med).abs() / single_med < 0.1,
        "merged median {merged_med} ms, single process {single_med} ms"
    );
    let one_rate =
        export_count(&one, "iterations{scenario:rate}") + export_count(&one, "dropped_iterations{scenario:rate}");
    assert_eq!(one_rate, 601);
}

#[test]
fn a_generator_ready_after_the_start_is_reported_late() {
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp = Exporter::start(TOKEN, &["--health-listen", &health]);
    let dir = Scratch::new("late");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-vus", "vus": 1, "duration": "3s"}}},
        "flows": {"default": {"type": "noop", "sleep": "50ms"}}
    });
    let file = dir.write("plan.json", &doc.to_string());
    let flags = ["--test-id", "late", "--exporter", exp.url.as_str(), "--wait-for", "2"];
    let mut on_time: Vec<Child> = (0..2).map(|i| generator(&dir, &format!("g{i}"), &file, &flags)).collect();
    // Wait until the two have started, then add a third.
    wait_started(&health);
    std::thread::sleep(Duration::from_millis(1500));
    let mut late = generator(&dir, "g2", &file, &flags);
    for (i, c) in on_time.iter_mut().enumerate() {
        finished(&dir, &format!("g{i}"), c);
    }
    finished(&dir, "g2", &mut late);
    let log = log_of(&dir, "g2");
    assert!(log.contains("the other 2 generators started") && log.contains("this one starts now"), "{log}");
    let barrier = &stats(&health)["barriers"][0];
    let lateness = barrier["late"][0]["late_ms"].as_u64().unwrap_or(0);
    assert_eq!(barrier["late"].as_array().map(Vec::len), Some(1), "{barrier}");
    assert!(lateness >= 500, "{barrier}");
    let exporter_log = exp.stop();
    assert!(exporter_log.contains("after the synchronized start; its load starts late"), "{exporter_log}");
}

#[test]
fn wait_for_without_an_exporter_is_refused() {
    let dir = Scratch::new("waitfor-bad");
    let doc = json!({"options": {"vus": 1, "iterations": 1}, "flows": {"default": {"type": "noop"}}});
    let file = dir.write("plan.json", &doc.to_string());
    let out = Command::new(binary("volley")).args(["run", "--quiet", "--wait-for", "3"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wait-for: needs --exporter"), "{}", describe(&out));
}

#[test]
fn a_generator_killed_mid_run_is_reported_and_the_others_lose_nothing() {
    let db = Influxd::start();
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp = Exporter::start(
        TOKEN,
        &[
            "--out",
            &format!("influxdb={}/volley", db.url),
            "--health-listen",
            &health,
            "--grace",
            "1s",
            "--late-horizon",
            "3s",
        ],
    );
    let dir = Scratch::new("killed");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 100, "duration": "6s",
                                        "preAllocatedVUs": 8}}},
        "flows": {"default": {"type": "noop", "sleep": "2ms"}}
    });
    let file = dir.write("plan.json", &doc.to_string());
    let mut gens: Vec<Child> = SEGMENTS
        .iter()
        .enumerate()
        .map(|(i, seg)| segment_generator(&dir, i, seg, &file, "killed", &exp.url))
        .collect();
    wait_started(&health);
    // Three seconds into the six: SIGKILL, no goodbye, no flush.
    std::thread::sleep(Duration::from_millis(1000 + 3000));
    gens[3].kill().unwrap();
    gens[3].wait().unwrap();
    let survivors: u64 = gens[..3]
        .iter_mut()
        .enumerate()
        .map(|(i, c)| export_count(&finished(&dir, &format!("g{i}"), c).0, "iterations"))
        .sum();
    // The exporter declares it lost after the late horizon, then writes the
    // windows and the run summary without waiting for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats(&health)["ingest"]["lost"] != json!(1) {
        assert!(Instant::now() < deadline, "the killed generator was never reported: {}", stats(&health));
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = exp.stop();
    assert!(log.contains("is lost: it disconnected without a goodbye"), "{log}");
    let written = db.scalar("SELECT sum(\"count\") FROM \"iterations\" WHERE \"testid\" = 'killed'") as u64;
    // Everything the three survivors ran is there, plus what the killed one
    // delivered before it died (some, but not its whole share of ~150).
    assert!(written > survivors && written < survivors + 150, "written {written}, survivors {survivors}: {log}");
    let summary = db
        .scalar("SELECT last(\"count\") FROM \"run_summary\" WHERE \"testid\" = 'killed' AND \"metric\" = 'iterations'")
        as u64;
    assert_eq!(summary, written, "{log}");
}

/// Two halves of one test through the exporter, started together.
fn half_generators(dir: &Scratch, file: &std::path::Path, test_id: &str, exporter: &str) -> Vec<Child> {
    ["0:1/2", "1/2:1"]
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let flags = ["--test-id", test_id, "--exporter", exporter, "--wait-for", "2"];
            let split = ["--execution-segment", seg, "--execution-segment-sequence", "0,1/2,1"];
            generator(dir, &format!("g{i}"), file, &[&flags[..], &split[..]].concat())
        })
        .collect()
}

/// Each threshold here judges the merged data differently from either half:
/// 200 iterations in all, 100 per generator. `count>=150` fails on a half
/// and holds on the whole; `count<150` the reverse. Every generator takes
/// the exporter's verdict, so both report the same outcomes and exit 99.
#[test]
fn fleet_thresholds_are_judged_on_the_merged_data() {
    let mut exp = Exporter::start(TOKEN, &["--grace", "1s"]);
    let dir = Scratch::new("fleet-verdict");
    let doc = json!({
        "options": {
            "scenarios": {"s": {"executor": "shared-iterations", "vus": 4, "iterations": 200}},
            "thresholds": {"iterations": ["count>=150"], "iterations{scenario:s}": ["count<150"]}
        },
        "flows": {"default": {"type": "noop", "sleep": "2ms"}}
    });
    let file = dir.write("plan.json", &doc.to_string());
    let mut gens = half_generators(&dir, &file, "fleet", &exp.url);
    for (i, g) in gens.iter_mut().enumerate() {
        let status = g.wait().unwrap();
        let name = format!("g{i}");
        assert_eq!(status.code(), Some(99), "{name}: {}", log_of(&dir, &name));
        let s = read_json(&dir.path(&format!("{name}-summary.json")));
        assert_eq!(export_count(&s, "iterations"), 100, "{s}");
        // The export marks a failed threshold `true`, as k6 does.
        assert_eq!(s["metrics"]["iterations"]["thresholds"], json!({"count>=150": false}), "{s}");
        assert_eq!(s["metrics"]["iterations{scenario:s}"]["thresholds"], json!({"count<150": true}), "{s}");
    }
    let log = exp.stop();
    assert!(
        log.contains("test fleet: thresholds on the merged data of 2 generators: 1 passed, 1 failed: count<150 on iterations{scenario:s} (observed 200.000)"),
        "{log}"
    );
}

/// `abortOnFail` on the fleet: the merged count reaches the bound when each
/// generator has about half of it, so only the exporter can see it fail.
/// It stops both, and both exit 99 saying why.
#[test]
fn a_fleet_threshold_with_abort_on_fail_stops_every_generator() {
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp = Exporter::start(TOKEN, &["--grace", "1s", "--health-listen", &health]);
    let dir = Scratch::new("fleet-abort");
    let doc = json!({
        "options": {
            "scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 100, "duration": "30s",
                                "preAllocatedVUs": 8}},
            "thresholds": {"iterations": [{"threshold": "count<400", "abortOnFail": true}]}
        },
        "flows": {"default": {"type": "noop", "sleep": "2ms"}}
    });
    let file = dir.write("plan.json", &doc.to_string());
    let mut gens = half_generators(&dir, &file, "fleet-abort", &exp.url);
    for (i, g) in gens.iter_mut().enumerate() {
        let status = g.wait().unwrap();
        let name = format!("g{i}");
        let log = log_of(&dir, &name);
        assert_eq!(status.code(), Some(99), "{name}: {log}");
        assert!(
            log.contains("stopping: the exporter aborted the test: threshold count<400 on iterations failed on the merged data of 2 generators"),
            "{name}: {log}"
        );
        // Stopped on the merged count: this half alone was far from 400.
        let s = read_json(&dir.path(&format!("{name}-summary.json")));
        let ran = export_count(&s, "iterations");
        assert!((150..400).contains(&ran), "{name} ran {ran}");
    }
    let fleet = &stats(&health)["thresholds"][0];
    assert_eq!(fleet["test_id"], "fleet-abort", "{fleet}");
    assert_eq!(fleet["passed"], json!(false), "{fleet}");
    let log = exp.stop();
    assert!(log.contains("aborting every generator (abortOnFail)"), "{log}");
}
