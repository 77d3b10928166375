//! The IM flows against real `volley-testbed im` gateways and a real
//! `redis-server`: cross-gateway routing, exact fault accounting, refused
//! tokens, and VUs reconnecting after a gateway dies.

use std::process::Output;
use volley_tests::im::{Gateway, Redis};
use volley_tests::{describe, export_count, read_json, volley, Scratch};

const SECRET: &str = "test-secret-change-me";

/// Runs a preset (`ws-ping` / `im-e2e`) and returns its output and summary export.
fn preset(kind: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let dir = Scratch::new(kind);
    let export = dir.path("summary.json");
    let mut all = vec![kind, "--quiet", "--summary-export", export.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = volley(&all);
    let summary = if export.exists() { read_json(&export) } else { serde_json::Value::Null };
    (out, summary)
}

fn urls(gateways: &[&Gateway]) -> String {
    gateways.iter().map(|g| g.url()).collect::<Vec<_>>().join(";")
}

fn sum(gateways: &[&Gateway], counter: &str) -> u64 {
    gateways.iter().map(|g| g.stat(counter)).sum()
}

#[test]
fn role_pinned_messages_cross_gateways_through_redis_and_arrive_once() {
    let redis = Redis::start();
    let a = Gateway::start(SECRET, &["--redis", &redis.url, "--instance-id", "1"]);
    let b = Gateway::start(SECRET, &["--redis", &redis.url, "--instance-id", "2"]);
    let (out, s) = preset(
        "im-e2e",
        &[
            "--ws-urls",
            &urls(&[&a, &b]),
            "--jwt-secret",
            SECRET,
            "--vus",
            "20",
            "--duration",
            "4s",
            "--msg-interval-ms",
            "50",
            "--role-pinned",
            "--user-base",
            "100000",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let sent = export_count(&s, "im_sent_total");
    assert!(sent > 500, "only {sent} messages sent\n{}", describe(&out));
    assert_eq!(export_count(&s, "im_recv_unique_total"), sent);
    assert_eq!(export_count(&s, "im_dup_total"), 0);
    assert_eq!(export_count(&s, "im_reorder_total"), 0);
    assert_eq!(export_count(&s, "im_lost_total"), 0);
    assert_eq!(export_count(&s, "ws_connect_ok"), 20);
    assert_eq!(export_count(&s, "ws_auth_ok"), 20);
    assert!(s["metrics"]["im_e2e_latency_ms"]["max"].as_f64().unwrap() > 0.0);
    // Senders are all on A and receivers all on B: every message went A → Redis → B.
    assert_eq!(a.stat("msgs_received"), sent);
    assert_eq!(a.stat("routed_remote"), sent);
    assert_eq!(b.stat("received_remote"), sent);
    assert_eq!(b.stat("delivered"), sent);
    assert_eq!((a.stat("auth_ok"), b.stat("auth_ok")), (10, 10));
    assert_eq!(sum(&[&a, &b], "undeliverable"), 0);
}

#[test]
fn injected_duplicates_reorders_and_drops_are_counted_exactly() {
    let redis = Redis::start();
    let faults = ["--dup-pct", "4", "--reorder-pct", "4", "--drop-pct", "4", "--delay-ms", "15"];
    let mut a_args = vec!["--redis", redis.url.as_str(), "--instance-id", "1"];
    a_args.extend_from_slice(&faults);
    let mut b_args = vec!["--redis", redis.url.as_str(), "--instance-id", "2"];
    b_args.extend_from_slice(&faults);
    let a = Gateway::start(SECRET, &a_args);
    let b = Gateway::start(SECRET, &b_args);
    // Not pinned: pairs land on the same or different gateways at random,
    // so both the local and the Redis path carry faults.
    let (out, s) = preset(
        "im-e2e",
        &[
            "--ws-urls",
            &urls(&[&a, &b]),
            "--jwt-secret",
            SECRET,
            "--vus",
            "40",
            "--duration",
            "5s",
            "--msg-interval-ms",
            "20",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let sent = export_count(&s, "im_sent_total");
    assert!(sent > 3000, "only {sent} messages sent\n{}", describe(&out));
    let (dup, reorder, lost) =
        (export_count(&s, "im_dup_total"), export_count(&s, "im_reorder_total"), export_count(&s, "im_lost_total"));
    assert!(dup > 0 && reorder > 0 && lost > 0, "faults were not exercised: {dup} {reorder} {lost}");
    let gw = [&a, &b];
    assert_eq!(dup, sum(&gw, "duplicated"), "duplicates");
    assert_eq!(reorder, sum(&gw, "reordered"), "reorders");
    assert_eq!(lost, sum(&gw, "dropped"), "losses");
    assert_eq!(export_count(&s, "im_recv_unique_total"), sent - lost);
    assert_eq!(sum(&gw, "msgs_received"), sent);
}

#[test]
fn a_wrong_secret_is_counted_as_auth_failures_at_handshake_and_at_auth() {
    let g = Gateway::start(SECRET, &[]);
    // Token on the handshake: refused with 401 before the WebSocket opens.
    let (out, s) =
        preset("ws-ping", &["--ws-urls", &g.url(), "--jwt-secret", "wrong", "--vus", "3", "--duration", "2s"]);
    assert!(out.status.success(), "{}", describe(&out));
    let refused = export_count(&s, "ws_auth_fail");
    assert!(refused >= 3, "{}", describe(&out));
    assert_eq!(export_count(&s, "ws_auth_ok"), 0);
    assert_eq!(export_count(&s, "ws_connect_ok"), 0);
    assert_eq!(g.stat("handshake_rejected"), refused);
    // Token only in the AUTH frame: the connection opens, AUTH_FAIL follows.
    let (out, s) = preset(
        "ws-ping",
        &["--ws-urls", &g.url(), "--jwt-secret", "wrong", "--auth", "frame", "--vus", "3", "--duration", "2s"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let failed = export_count(&s, "ws_auth_fail");
    assert!(failed >= 3, "{}", describe(&out));
    assert_eq!(export_count(&s, "ws_connect_ok"), failed);
    assert_eq!(g.stat("auth_fail"), failed);
    assert_eq!(g.stat("pings"), 0);
}

#[test]
fn vus_count_connect_failures_and_reconnect_when_a_killed_gateway_returns() {
    let mut g = Gateway::start(SECRET, &[]);
    let url = g.url();
    let run = std::thread::spawn(move || {
        preset(
            "ws-ping",
            &[
                "--ws-urls",
                &url,
                "--jwt-secret",
                SECRET,
                "--auth",
                "query",
                "--vus",
                "10",
                "--duration",
                "9s",
                "--ping-interval-ms",
                "200",
            ],
        )
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(g.stat("connections_open"), 10);
    g.kill();
    std::thread::sleep(std::time::Duration::from_secs(2));
    g.restart();
    let (out, s) = run.join().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(export_count(&s, "ws_connect_fail") > 0, "no connect failure counted\n{}", describe(&out));
    // Every VU connected twice: before the kill and after the restart.
    assert_eq!(export_count(&s, "ws_connect_ok"), 20, "{}", describe(&out));
    assert_eq!(export_count(&s, "ws_auth_ok"), 20);
    assert_eq!(g.stat("auth_ok"), 10);
    assert!(g.stat("pings") > 100, "VUs did not resume pinging");
    assert!(s["metrics"]["ws_pong_rtt_ms"]["avg"].as_f64().unwrap() > 0.0);
}
