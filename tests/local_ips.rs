//! k6's `--local-ips` / `localIPs`: VUs connect from the source addresses
//! they are given, round robin, as the target sees it. Linux routes all of
//! 127.0.0.0/8 to the loopback interface, so 127.0.0.2… need no setup.

use serde_json::{json, Value};
use volley_tests::im::Gateway;
use volley_tests::*;

const FOUR: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];

/// 8 VUs × 3 iterations of `GET /peer`, one keep-alive connection per VU.
fn peer_plan(target: &str, options: Value) -> Value {
    let mut doc = json!({
        "options": {"scenarios": {"s": {"executor": "per-vu-iterations", "vus": 8, "iterations": 3}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{target}/peer")}, "checks": {"status": 200, "bodyContains": "\"ip\":\"127.0.0."}}
        ]}}
    });
    for (k, v) in options.as_object().unwrap() {
        doc["options"][k] = v.clone();
    }
    doc
}

/// `/peer` requests and connections per client address, as the target counted them.
fn peers(stats: &Value) -> Vec<(String, u64, u64)> {
    stats["peers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(ip, _)| ip.as_str() != "127.0.0.1") // the test's own /stats requests
        .map(|(ip, s)| (ip.clone(), s["peer_requests"].as_u64().unwrap_or(0), s["connections"].as_u64().unwrap()))
        .collect()
}

#[test]
fn vus_take_the_source_addresses_round_robin() {
    let target = Testbed::http();
    let (out, summary) = run_scenario(&peer_plan(&target.url, json!({})), &["--local-ips", "127.0.0.2-127.0.0.5"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(export_count(&summary, "http_reqs"), 24, "{}", describe(&out));
    // Two checks per request: status 200 and the address in the body.
    assert_eq!(summary["metrics"]["checks"]["passes"].as_u64(), Some(48), "{summary}");
    assert_eq!(summary["metrics"]["checks"]["fails"].as_u64(), Some(0), "{summary}");
    // Every address carried two VUs: two connections and six requests each.
    let expected: Vec<(String, u64, u64)> = FOUR.iter().map(|ip| (ip.to_string(), 6, 2)).collect();
    assert_eq!(peers(&target.stats()), expected);
}

#[test]
fn the_file_option_works_and_the_flag_wins_over_it() {
    let target = Testbed::http();
    let doc = peer_plan(&target.url, json!({"localIPs": "127.0.0.8/32, 127.0.0.9"}));
    let (out, _) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let split = vec![("127.0.0.8".to_string(), 12, 4), ("127.0.0.9".to_string(), 12, 4)];
    assert_eq!(peers(&target.stats()), split);
    let (out, _) = run_scenario(&doc, &["--local-ips", "127.0.0.10"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut all = split;
    all.insert(0, ("127.0.0.10".to_string(), 24, 8));
    assert_eq!(peers(&target.stats()), all);
}

#[test]
fn bad_pools_are_refused_with_the_flag_or_option_and_the_entry() {
    let doc = json!({"options": {"vus": 1, "iterations": 1}, "flows": {"default": {"type": "noop"}}});
    let refused = |doc: &Value, extra: &[&str], wanted: &str| {
        let (out, _) = run_scenario(doc, extra);
        assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "expected {wanted:?} in\n{}", describe(&out));
    };
    refused(
        &doc,
        &["--local-ips", "127.0.0.2,127.0.0.3-127.0.0.x"],
        r#"--local-ips: "127.0.0.3-127.0.0.x": "127.0.0.x" is not an IP address"#,
    );
    refused(
        &doc,
        &["--local-ips", "127.0.0.9-127.0.0.2"],
        r#"--local-ips: "127.0.0.9-127.0.0.2": the range ends before it starts (127.0.0.2 < 127.0.0.9)"#,
    );
    let mut wide = doc.clone();
    wide["options"]["localIPs"] = json!("10.0.0.0/8");
    refused(&wide, &[], r#"options.localIPs: "10.0.0.0/8" makes the pool larger than 65536 addresses"#);
    let mut typed = doc.clone();
    typed["options"]["localIPs"] = json!(["127.0.0.2"]);
    refused(&typed, &[], "options.localIPs: must be a string, found");
    // TEST-NET-3 (RFC 5737): an address of no machine.
    refused(
        &doc,
        &["--local-ips", "127.0.0.2,203.0.113.77"],
        "--local-ips: 203.0.113.77 cannot be a source address on this machine",
    );
}

#[test]
fn websocket_vus_connect_from_their_addresses() {
    const SECRET: &str = "local-ips-secret";
    let gw = Gateway::start(SECRET, &[]);
    let out = volley(&[
        "ws-ping",
        "--quiet",
        "--ws-urls",
        &gw.url(),
        "--jwt-secret",
        SECRET,
        "--vus",
        "8",
        "--duration",
        "1s",
        "--local-ips",
        "127.0.0.2-127.0.0.5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // One connection per VU, two VUs per address.
    let expected: Vec<(String, u64, u64)> = FOUR.iter().map(|ip| (ip.to_string(), 0, 2)).collect();
    assert_eq!(peers(&gw.stats()), expected, "{}", describe(&out));
    assert_eq!(gw.stat("connections_total"), 8);
}
