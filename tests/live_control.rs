//! Live control of running tests: the generator's control API and the
//! exporter's fleet control, driven through `volley status|pause|resume|
//! scale|stop` as a user would.

use serde_json::{json, Value};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use volley_tests::exporter::Exporter;
use volley_tests::*;

const CONTROL: &str = "control-test-token";
const INGEST: &str = "live-control-ingest-token";

/// `volley <args…>` with the control token; (exit code, stdout, stderr).
fn volley(args: &[&str], token: &str) -> (i32, Value, String) {
    let out: Output = Command::new(binary("volley")).args(args).env("VOLLEY_CONTROL_TOKEN", token).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), describe(&out))
}

/// Polls `volley status` until `ok` holds for the status, or fails.
fn wait_status(args: &[&str], what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, status, out) = volley(&[&["status"], args].concat(), CONTROL);
        if code == 0 && ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(dir: &Scratch, name: &str, doc: &Value, extra: &[&str]) -> Child {
    let file = dir.write(&format!("{name}.json"), &doc.to_string());
    spawn_run(dir, name, &file, extra, &[("VOLLEY_CONTROL_TOKEN", CONTROL), ("VOLLEY_EXPORTER_TOKEN", INGEST)])
}

/// An externally-controlled scenario beside a short constant-vus one.
fn plan(ext_vus: u64, max_vus: u64) -> Value {
    json!({
        "options": {"scenarios": {
            "ext": {"executor": "externally-controlled", "vus": ext_vus, "maxVUs": max_vus, "duration": "60s"},
            "fixed": {"executor": "constant-vus", "vus": 1, "duration": "1500ms", "exec": "default"}
        }},
        "flows": {"default": {"type": "noop", "sleep": "20ms"}}
    })
}

#[test]
fn the_generator_api_scales_pauses_resumes_and_stops() {
    let dir = Scratch::new("live-local");
    let addr = format!("127.0.0.1:{}", closed_port());
    let mut gen = start(&dir, "g", &plan(2, 6), &["--address", &addr]);
    let at = ["--address", addr.as_str()];

    let first = wait_status(&at, "running", |s| s["running"] == json!(true));
    assert_eq!(first["scenarios"], json!([{"name": "ext", "vus": 2, "maxVUs": 6}]), "{first}");
    // The constant-vus scenario runs on a schedule: no pause while it runs.
    let (code, _, out) = volley(&[&["pause"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 104, "{out}");
    assert!(
        out.contains("409: paused: scenario fixed (constant-vus) runs on a schedule and cannot be paused"),
        "{out}"
    );
    // A wrong token changes nothing.
    let (code, _, out) = volley(&[&["scale", "--vus", "5"], &at[..]].concat(), "wrong");
    assert_eq!(code, 104, "{out}");
    assert!(out.contains("401: missing or wrong bearer token"), "{out}");
    let (code, _, out) = volley(&[&["scale", "--vus", "9"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 104, "{out}");
    assert!(out.contains("vus: 9 is more than maxVUs 6 of scenario ext"), "{out}");

    let (code, scaled, out) = volley(&[&["scale", "--vus", "5"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    assert_eq!(scaled["scenarios"][0]["vus"], 5, "{scaled}");
    // Five busy VUs once the constant-vus scenario is over.
    wait_status(&at, "at 5 VUs", |s| s["vus"] == 5 && s["vus-max"] == 6);

    let (code, paused, out) = volley(&[&["pause"], &at[..]].concat(), CONTROL);
    assert_eq!((code, &paused["paused"]), (0, &json!(true)), "{out}");
    wait_status(&at, "paused with no VU busy", |s| s["vus"] == 0 && s["status"] == "paused");
    let (code, _, out) = volley(&[&["resume"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    wait_status(&at, "back at 5 VUs", |s| s["vus"] == 5 && s["paused"] == json!(false));
    let (code, _, out) = volley(&[&["scale", "--vus", "1"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    wait_status(&at, "down to 1 VU", |s| s["vus"] == 1);

    let (code, _, out) = volley(&[&["stop"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    let status = gen.wait().unwrap();
    let log = log_of(&dir, "g");
    assert_eq!(status.code(), Some(105), "{log}");
    assert!(log.contains("stopping: stopped through the control API"), "{log}");
    assert!(log.contains("control API: scale to 5 VUs") && log.contains("control API: pause"), "{log}");
    // The summary still came: 6 VUs were allocated (the 5 + the fixed one;
    // the ext scenario's sixth was never asked for).
    let s = read_json(&dir.path("g-summary.json"));
    assert_eq!(s["metrics"]["vus_max"]["max"].as_f64(), Some(6.0), "{}", s["metrics"]["vus_max"]);
}

#[test]
fn the_control_api_needs_a_token() {
    let dir = Scratch::new("live-token");
    let file = dir.write("p.json", &plan(1, 1).to_string());
    let out = Command::new(binary("volley"))
        .args(["run", "--quiet", "--address", "127.0.0.1:0"])
        .arg(&file)
        .env_remove("VOLLEY_CONTROL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(describe(&out).contains("--address: the control API needs --control-token"), "{}", describe(&out));
}

/// Two halves of one test behind an exporter: the fleet's numbers are
/// split by segment, and one command reaches both.
#[test]
fn the_exporter_controls_every_generator_of_a_test() {
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp = Exporter::start(INGEST, &["--health-listen", &health, "--control-token", CONTROL]);
    let dir = Scratch::new("live-fleet");
    let doc = json!({
        "options": {"scenarios": {
            "ext": {"executor": "externally-controlled", "vus": 4, "maxVUs": 10, "duration": "60s"}
        }},
        "flows": {"default": {"type": "noop", "sleep": "20ms"}}
    });
    let mut gens: Vec<Child> = ["0:1/2", "1/2:1"]
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let flags = ["--test-id", "fleet", "--exporter", exp.url.as_str(), "--wait-for", "2"];
            let split = ["--execution-segment", seg, "--execution-segment-sequence", "0,1/2,1"];
            start(&dir, &format!("g{i}"), &doc, &[&flags[..], &split[..]].concat())
        })
        .collect();
    let at = ["--address", health.as_str(), "--test-id", "fleet"];

    let s = wait_status(&at, "both running", |s| s["generators"].as_array().map(Vec::len) == Some(2) && s["vus"] == 4);
    assert_eq!(s["scenarios"], json!([{"name": "ext", "vus": 4, "maxVUs": 10}]), "{s}");
    let (code, scaled, out) = volley(&[&["scale", "--vus", "7"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    // 7 over two halves: 4 and 3, exactly the total asked.
    let mut each: Vec<u64> =
        scaled["generators"].as_array().unwrap().iter().map(|g| g["scenarios"][0]["vus"].as_u64().unwrap()).collect();
    each.sort();
    assert_eq!(each, vec![3, 4], "{scaled}");
    wait_status(&at, "7 VUs busy over the fleet", |s| s["vus"] == 7);
    let (code, _, out) = volley(&[&["scale", "--vus", "11"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 104, "{out}");
    assert!(out.contains("vus: 11 for the fleet is 6 for this generator's segment"), "{out}");
    let (code, _, out) = volley(&[&["pause"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    wait_status(&at, "the fleet paused", |s| s["paused"] == json!(true) && s["vus"] == 0);
    let (code, _, out) = volley(&["status", "--address", &health, "--test-id", "nope"], CONTROL);
    assert_eq!(code, 104, "{out}");
    assert!(out.contains("no generator of test \"nope\" is connected"), "{out}");

    let (code, _, out) = volley(&[&["stop"], &at[..]].concat(), CONTROL);
    assert_eq!(code, 0, "{out}");
    for (i, g) in gens.iter_mut().enumerate() {
        let log = log_of(&dir, &format!("g{i}"));
        assert_eq!(g.wait().unwrap().code(), Some(105), "g{i}: {log}");
        let log = log_of(&dir, &format!("g{i}"));
        assert!(log.contains("fleet control through the exporter: scale to 7 VUs"), "g{i}: {log}");
    }
    exp.stop();
}
