//! Streaming mode end to end: `volley run --exporter` processes and raw
//! protocol clients against a real `volley-exporter`, writing to a real
//! influxd. What InfluxDB holds must equal what the generators measured,
//! through merges, exporter crashes, sink outages and hostile clients.

use std::net::TcpStream;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use volley_tests::exporter::Exporter;
use volley_tests::servers::Influxd;
use volley_tests::*;
use volley_window::wire::{self, Hello, ToExporter, ToGenerator};
use volley_window::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Sketch, Tags, Unit, WindowReport};

const TOKEN: &str = "test-token-0123456789";

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(addr: &str, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, _) = tungstenite::connect(req)?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    Ok(ws)
}

fn send(ws: &mut Ws, msg: &ToExporter) {
    ws.send(Message::Binary(wire::encode(msg).into())).unwrap();
}

fn receive(ws: &mut Ws) -> ToGenerator {
    loop {
        match ws.read().expect("a message from the exporter") {
            Message::Binary(b) => return wire::decode(&b, 1 << 20).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the exporter closes the connection; returns its close reason.
fn closed_by_exporter(ws: &mut Ws) -> String {
    loop {
        match ws.read() {
            Ok(Message::Close(f)) => return f.map(|f| f.reason.to_string()).unwrap_or_default(),
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return String::new(),
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("the exporter kept a bad connection open")
            }
            Err(_) => return String::new(),
        }
    }
}

fn hello(generator: &str, test_id: &str) -> ToExporter {
    ToExporter::Hello(Hello {
        generator: generator.into(),
        test_id: test_id.into(),
        segment: None,
        tags: vec![],
        window_ms: 1000,
    })
}

fn window(generator: &str, test_id: &str, seq: u64, start: u64, samples: &[f64]) -> WindowReport {
    let mut sk = Sketch::new();
    samples.iter().for_each(|v| sk.add(*v));
    let tags = Tags::from_pairs([("scenario", "s")]);
    WindowReport {
        generator: generator.into(),
        test_id: test_id.into(),
        seq,
        start_unix_ms: start,
        len_ms: 1000,
        series: vec![
            SeriesWindow {
                key: SeriesKey::new("iterations", tags.clone()),
                unit: Unit::None,
                value: Aggregate::Counter(samples.len() as f64),
            },
            SeriesWindow {
                key: SeriesKey::new("iteration_duration", tags),
                unit: Unit::Time,
                value: Aggregate::Trend(sk),
            },
        ],
        health: HealthRecord::default(),
    }
}

fn noop_scenario(rate: u64, duration: &str) -> serde_json::Value {
    serde_json::json!({
        "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": rate, "timeUnit": "1s",
                                        "duration": duration, "preAllocatedVUs": 5, "maxVUs": 5}}},
        "flows": {"default": {"type": "noop", "sleep": "1ms"}}
    })
}

/// Starts `volley run --exporter` in the background.
fn generator(dir: &Scratch, name: &str, doc: &serde_json::Value, exporter: &str, test_id: &str) -> std::process::Child {
    generator_with(dir, name, doc, exporter, test_id, &[])
}

/// As [`generator`], with `extra` flags.
fn generator_with(
    dir: &Scratch,
    name: &str,
    doc: &serde_json::Value,
    exporter: &str,
    test_id: &str,
    extra: &[&str],
) -> std::process::Child {
    let file = dir.write(&format!("{name}.json"), &doc.to_string());
    std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--test-id", test_id, "--exporter", exporter])
        .args(extra)
        .args(["--summary-export", dir.path(&format!("{name}-summary.json")).to_str().unwrap()])
        .arg(file)
        .env("VOLLEY_EXPORTER_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path(&format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start volley")
}

fn wait_ok(dir: &Scratch, name: &str, child: &mut std::process::Child) -> serde_json::Value {
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path(&format!("{name}.log"))).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{name}: {log}");
    assert!(log.contains("windows acknowledged") && !log.contains("NOT acknowledged"), "{name}: {log}");
    read_json(&dir.path(&format!("{name}-summary.json")))
}

fn influx_sum(db: &Influxd, metric: &str, field: &str, test_id: &str) -> u64 {
    db.scalar(&format!("SELECT sum(\"{field}\") FROM \"{metric}\" WHERE \"testid\" = '{test_id}'")) as u64
}

#[test]
fn three_generators_merge_into_exact_totals() {
    let db = Influxd::start();
    let target = Testbed::http();
    let health = format!("127.0.0.1:{}", closed_port());
    let mut exp =
        Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url), "--health-listen", &health]);
    let dir = Scratch::new("merge3");
    let doc = |delay: u32| {
        serde_json::json!({
            "options": {"scenarios": {"api": {"executor": "constant-arrival-rate", "rate": 100, "timeUnit": "1s",
                                              "duration": "3s", "preAllocatedVUs": 10, "maxVUs": 10}}},
            "flows": {"default": {"type": "http", "steps": [{"request": {"url": format!("{}/delay/{delay}", target.url)}}]}}
        })
    };
    let mut gens: Vec<_> =
        (0..3).map(|i| generator(&dir, &format!("g{i}"), &doc(1 + 2 * i), &exp.url, "merge3")).collect();
    let summaries: Vec<_> = gens.iter_mut().enumerate().map(|(i, c)| wait_ok(&dir, &format!("g{i}"), c)).collect();
    // The health endpoints, while it runs.
    let (code, body) = volley_tests::servers::curl(&[&format!("http://{health}/ready")]);
    assert_eq!((code, body.trim()), (200, "ready"));
    let stats_url = format!("http://{health}/stats");
    let (code, body) = volley_tests::servers::curl(&[&stats_url]);
    assert_eq!(
        (code, body.trim()),
        (
            401,
            "the exporter token is required (Authorization: Bearer TOKEN, or any user name with the token as password)"
        )
    );
    let (code, _) = volley_tests::servers::curl(&["-H", "Authorization: Bearer wrong", &stats_url]);
    assert_eq!(code, 401);
    let (code, body) = volley_tests::servers::curl(&["-H", &format!("Authorization: Bearer {TOKEN}"), &stats_url]);
    assert_eq!(code, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["ingest"]["sessions"], 3, "{stats}");
    assert_eq!(stats["merge"]["duplicates"], 0, "{stats}");
    assert!(stats["outputs"][0]["points"].as_u64().unwrap() > 0, "{stats}");
    let log = exp.stop();
    let total = |key: &str| summaries.iter().map(|s| export_count(s, key)).sum::<u64>();
    assert_eq!(total("http_reqs"), 3 * 301);
    assert_eq!(influx_sum(&db, "http_reqs", "count", "merge3"), total("http_reqs"), "{log}");
    assert_eq!(influx_sum(&db, "iterations", "count", "merge3"), total("iterations"));
    assert_eq!(influx_sum(&db, "http_req_duration", "count", "merge3"), total("http_reqs"));
    // The merged maximum is the largest of the three (sketches keep exact extremes).
    let max = db.scalar("SELECT max(\"max\") FROM \"http_req_duration\" WHERE \"testid\" = 'merge3'");
    let expected =
        summaries.iter().map(|s| s["metrics"]["http_req_duration"]["max"].as_f64().unwrap()).fold(0.0, f64::max);
    assert!((max - expected).abs() < 1e-6, "merged max {max}, generators' max {expected}");
    // One merged point per window, three health points per window.
    let gens =
        db.query("SHOW TAG VALUES FROM \"generator_health\" WITH KEY = \"generator\" WHERE \"testid\" = 'merge3'");
    assert_eq!(gens["results"][0]["series"][0]["values"].as_array().map(Vec::len), Some(3), "{gens}");
    assert_eq!(Exporter::counter(&log, "duplicates"), 0);
    assert_eq!(Exporter::counter(&log, "rejected"), 0);
    // When the last generator said goodbye: the fleet's run summary.
    let run = |field: &str| {
        db.scalar(&format!(
            "SELECT last(\"{field}\") FROM \"run_summary\" WHERE \"testid\" = 'merge3' AND \"metric\" = 'http_req_duration'"
        ))
    };
    assert_eq!(run("count") as u64, total("http_reqs"));
    assert!((run("max") - expected).abs() < 1e-6, "run max {} vs {expected}", run("max"));
}

#[test]
fn merged_percentiles_come_from_one_sketch_of_all_samples() {
    let db = Influxd::start();
    let mut exp = Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url)]);
    let start = 1_700_000_000_000;
    let mut all = Sketch::new();
    let mut clients = Vec::new();
    for g in 0..3u64 {
        // Three different distributions, so no generator's percentiles are the merged ones.
        let samples: Vec<f64> = (0..2000)
            .map(|k| (1 + g * 40) as f64 + ((k * 7919 + g * 13) % 1000) as f64 * (g + 1) as f64 / 10.0)
            .collect();
        samples.iter().for_each(|v| all.add(*v));
        let mut ws = connect(&exp.addr(), Some(TOKEN)).unwrap();
        send(&mut ws, &hello(&format!("g{g}"), "pct"));
        assert!(matches!(receive(&mut ws), ToGenerator::Welcome { .. }));
        clients.push((ws, window(&format!("g{g}"), "pct", 0, start, &samples)));
    }
    // All connected (as generators are at a test's start), then the window.
    for (ws, w) in &mut clients {
        send(ws, &ToExporter::Window(w.clone()));
    }
    let mut clients: Vec<Ws> = clients.into_iter().map(|(ws, _)| ws).collect();
    // Every generator reported the window: it is written and acknowledged at once.
    for ws in &mut clients {
        assert_eq!(receive(ws), ToGenerator::Ack { seqs: vec![0] });
    }
    let row = db.query("SELECT \"count\", \"p50\", \"p90\", \"p99\", \"p999\", \"min\", \"max\" FROM \"iteration_duration\" WHERE \"testid\" = 'pct'");
    let v = &row["results"][0]["series"][0]["values"][0];
    assert_eq!(v[1].as_u64(), Some(6000), "{row}");
    for (i, q) in [(2, 0.5), (3, 0.9), (4, 0.99), (5, 0.999)] {
        assert_eq!(v[i].as_f64(), all.quantile(q), "q={q}: {row}");
    }
    assert_eq!((v[6].as_f64(), v[7].as_f64()), (all.min(), all.max()));
    exp.stop();
}

/// Starts an exporter (4 KiB frame limit) with one well-behaved generator,
/// lets `bad` misbehave on its own connection, and checks that only the bad
/// connection was closed and counted. Returns the exporter's log.
fn rejected_while_others_are_served(bad: impl FnOnce(&str)) -> String {
    let mut exp = Exporter::start(TOKEN, &["--max-frame-bytes", "4096"]);
    let addr = exp.addr();
    let mut good = connect(&addr, Some(TOKEN)).unwrap();
    send(&mut good, &hello("good", "bad-input"));
    assert!(matches!(receive(&mut good), ToGenerator::Welcome { .. }));
    bad(&addr);
    // The well-behaved generator is still served.
    send(&mut good, &ToExporter::Window(window("good", "bad-input", 0, 1_700_000_000_000, &[1.0])));
    assert_eq!(receive(&mut good), ToGenerator::Ack { seqs: vec![0] });
    let log = exp.stop();
    assert_eq!(Exporter::counter(&log, "windows"), 1, "{log}");
    assert!(!log.contains(TOKEN), "the token leaked: {log}");
    log
}

/// A connection that sends `messages` and must be closed by the exporter.
fn misbehave(addr: &str, messages: Vec<Message>) {
    let mut ws = connect(addr, Some(TOKEN)).unwrap();
    for m in messages {
        let _ = ws.send(m);
    }
    closed_by_exporter(&mut ws);
}

fn bad_hello() -> Vec<u8> {
    wire::encode(&hello("bad", "another-test"))
}

fn assert_rejected(log: &str, reason: &str) {
    assert_eq!(Exporter::counter(log, "rejected"), 1, "{log}");
    assert!(log.contains(reason), "{reason:?} not logged: {log}");
}

#[test]
fn a_wrong_token_is_refused_at_the_handshake() {
    let log = rejected_while_others_are_served(|addr| match connect(addr, Some("wrong-token-0123456789")) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a connection")),
    });
    assert_eq!(Exporter::counter(&log, "auth_failures"), 1, "{log}");
    assert!(!log.contains("wrong-token-0123456789"), "{log}");
}

#[test]
fn a_missing_token_is_refused_at_the_handshake() {
    let log = rejected_while_others_are_served(|addr| match connect(addr, None) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a connection")),
    });
    assert_eq!(Exporter::counter(&log, "auth_failures"), 1, "{log}");
}

#[test]
fn a_truncated_frame_closes_the_connection() {
    let log = rejected_while_others_are_served(|addr| misbehave(addr, vec![Message::Binary(b"VL".to_vec().into())]));
    assert_rejected(&log, "truncated frame (2 bytes)");
}

#[test]
fn an_oversized_frame_closes_the_connection() {
    let mut big = window("bad", "another-test", 0, 0, &[1.0]);
    for i in 0..100 {
        big.series.push(SeriesWindow {
            key: SeriesKey::new(
                "http_reqs",
                Tags::from_pairs([("url", format!("http://example.test/{i}/{}", "x".repeat(80)))]),
            ),
            unit: Unit::None,
            value: Aggregate::Counter(1.0),
        });
    }
    let oversized = wire::encode(&ToExporter::Window(big));
    assert!(oversized.len() > 4096, "{}", oversized.len());
    let log = rejected_while_others_are_served(|addr| {
        misbehave(addr, vec![Message::Binary(bad_hello().into()), Message::Binary(oversized.into())])
    });
    assert_rejected(&log, "oversized frame");
}

#[test]
fn an_unknown_protocol_version_closes_the_connection() {
    let mut v9 = bad_hello();
    v9[3] = 9;
    let log = rejected_while_others_are_served(|addr| misbehave(addr, vec![Message::Binary(v9.into())]));
    assert_rejected(&log, &format!("unsupported protocol version 9 (this build speaks {})", wire::VERSION));
}

#[test]
fn random_bytes_close_the_connection() {
    let mut noise = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..500 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    let log = rejected_while_others_are_served(|addr| misbehave(addr, vec![Message::Binary(noise.into())]));
    assert_rejected(&log, "not a Volley frame");
}

#[test]
fn text_messages_close_the_connection() {
    let log = rejected_while_others_are_served(|addr| {
        misbehave(addr, vec![Message::Binary(bad_hello().into()), Message::Text("hello".into())])
    });
    assert_rejected(&log, "text messages are not part of the protocol");
}

#[test]
fn anything_before_the_hello_closes_the_connection() {
    let goodbye = wire::encode(&ToExporter::Goodbye { last_seq: None });
    let log = rejected_while_others_are_served(|addr| misbehave(addr, vec![Message::Binary(goodbye.into())]));
    assert_rejected(&log, "the first message must be a hello");
}

#[test]
fn killing_and_restarting_the_exporter_loses_nothing() {
    let db = Influxd::start();
    let mut exp = Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url), "--grace", "2s"]);
    let dir = Scratch::new("kill9");
    let doc = noop_scenario(200, "8s");
    let mut gens: Vec<_> = (0..2).map(|i| generator(&dir, &format!("g{i}"), &doc, &exp.url, "kill9")).collect();
    std::thread::sleep(Duration::from_secs(3));
    exp.kill9();
    std::thread::sleep(Duration::from_secs(2));
    exp.restart();
    let summaries: Vec<_> = gens.iter_mut().enumerate().map(|(i, c)| wait_ok(&dir, &format!("g{i}"), c)).collect();
    let log = exp.stop();
    let iterations: u64 = summaries.iter().map(|s| export_count(s, "iterations")).sum();
    // Every scheduled arrival is started, or dropped and counted when the
    // 2-core machine running the whole suite stalls a VU thread.
    let dropped: u64 = summaries.iter().map(|s| export_count(s, "dropped_iterations")).sum();
    assert_eq!(iterations + dropped, 2 * 1601);
    assert_eq!(influx_sum(&db, "iterations", "count", "kill9"), iterations, "{log}");
    assert_eq!(influx_sum(&db, "dropped_iterations", "count", "kill9"), dropped, "{log}");
    assert_eq!(influx_sum(&db, "iteration_duration", "count", "kill9"), iterations);
    let reconnected = std::fs::read_to_string(dir.path("g0.log")).unwrap();
    assert!(reconnected.contains("reachable again"), "{reconnected}");
}

#[test]
fn influxdb_down_for_twenty_seconds_loses_nothing() {
    let mut db = Influxd::start();
    let mut exp = Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url)]);
    let dir = Scratch::new("sinkdown");
    let mut g = generator(&dir, "g", &noop_scenario(100, "26s"), &exp.url, "sinkdown");
    std::thread::sleep(Duration::from_secs(3));
    db.stop();
    std::thread::sleep(Duration::from_secs(20));
    db.restart();
    let summary = wait_ok(&dir, "g", &mut g);
    let log = exp.stop();
    assert!(log.contains("retrying with backoff") && log.contains("writing again"), "{log}");
    assert_eq!(influx_sum(&db, "iterations", "count", "sinkdown"), export_count(&summary, "iterations"), "{log}");
    assert_eq!(export_count(&summary, "iterations"), 2601);
}

#[test]
fn a_generator_whose_exporter_is_down_keeps_testing() {
    let dir = Scratch::new("down");
    let file = dir.write("s.json", &noop_scenario(100, "4s").to_string());
    let export = dir.path("summary.json");
    let out = std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--exporter-buffer", "2", "--out-flush-timeout", "1s"])
        .args(["--exporter", &format!("ws://127.0.0.1:{}", closed_port())])
        .args(["--summary-export", export.to_str().unwrap()])
        .arg(&file)
        .env("VOLLEY_EXPORTER_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The test ran, but nothing it measured was stored: an exit code of its own.
    assert_eq!(out.status.code(), Some(112), "{stderr}");
    assert!(
        stderr.contains("did not store everything measured within --out-flush-timeout (exit code 112)"),
        "{stderr}"
    );
    assert_eq!(export_count(&read_json(&export), "iterations"), 401, "the summary is unaffected");
    assert_eq!(stderr.matches("the test goes on").count(), 1, "one warning, not one per retry: {stderr}");
    // 5 or 6 windows, 2 kept: the rest dropped and counted.
    assert!(stderr.contains("NOT acknowledged: 2 unsent or unconfirmed at exit"), "{stderr}");
    let before = &stderr[..stderr.find(" dropped (buffer full)").expect("drops reported")];
    let dropped: u64 = before.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((3..=4).contains(&dropped), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token leaked: {stderr}");
}

#[test]
fn generators_stream_over_tls() {
    let dir = Scratch::new("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert_path = dir.write("cert.pem", &cert.cert.pem());
    let key_path = dir.write("key.pem", &cert.key_pair.serialize_pem());
    let db = Influxd::start();
    let mut exp = Exporter::start(
        TOKEN,
        &[
            "--out",
            &format!("influxdb={}/volley", db.url),
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(exp.url.starts_with("wss://"), "{}", exp.url);
    // Verified against the system roots, the self-signed certificate fails…
    let file = dir.write("s.json", &noop_scenario(50, "2s").to_string());
    let out = std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--out-flush-timeout", "1s", "--exporter", &exp.url])
        .arg(&file)
        .env("VOLLEY_EXPORTER_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");
    // …and with --insecure-skip-tls-verify everything arrives.
    let mut g = {
        let mut c = std::process::Command::new(binary("volley"));
        c.args([
            "run",
            "--quiet",
            "--no-summary",
            "--insecure-skip-tls-verify",
            "--test-id",
            "tls",
            "--exporter",
            &exp.url,
        ])
        .args(["--summary-export", dir.path("g-summary.json").to_str().unwrap()])
        .arg(&file)
        .env("VOLLEY_EXPORTER_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path("g.log")).unwrap());
        c.spawn().unwrap()
    };
    let summary = wait_ok(&dir, "g", &mut g);
    exp.stop();
    assert_eq!(influx_sum(&db, "iterations", "count", "tls"), export_count(&summary, "iterations"));
    assert_eq!(export_count(&summary, "iterations"), 101);
}

#[test]
fn a_spooled_outage_survives_an_exporter_crash() {
    let mut db = Influxd::start();
    let dir = Scratch::new("spool");
    let spool = dir.path("spool");
    let out = format!("influxdb={}/volley", db.url);
    let mut exp = Exporter::start(TOKEN, &["--out", &out, "--spool-dir", spool.to_str().unwrap()]);
    let mut g = generator(&dir, "g", &noop_scenario(100, "8s"), &exp.url, "spooled");
    std::thread::sleep(Duration::from_secs(2));
    db.stop();
    // With InfluxDB down the exporter spools and still acknowledges: the
    // generator ends with nothing unacknowledged.
    let summary = wait_ok(&dir, "g", &mut g);
    let spooled = std::fs::read_dir(spool.read_dir().unwrap().next().unwrap().unwrap().path()).unwrap().count();
    assert!(spooled > 0, "nothing was spooled");
    // The exporter dies with the spool on disk; InfluxDB and then the
    // exporter come back, and the spool is replayed.
    exp.kill9();
    db.restart();
    exp.restart();
    let expected = export_count(&summary, "iterations");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while influx_sum(&db, "iterations", "count", "spooled") != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = exp.stop();
    assert_eq!(influx_sum(&db, "iterations", "count", "spooled"), expected, "{log}");
    assert_eq!(expected, 801);
    assert!(log.contains("spooled batches from an earlier run will be sent first"), "{log}");
    assert!(log.contains(" replayed ") && !log.contains("NOT STORED"), "nothing left in the spool: {log}");
}

/// Two generators whose clocks are 30 s apart (one 15 s behind, one 15 s
/// ahead) stamp their windows on the exporter's clock: every window merges,
/// nothing is too late, InfluxDB holds both summaries' totals.
#[test]
fn generators_whose_clocks_differ_by_thirty_seconds_lose_nothing() {
    let db = Influxd::start();
    let mut exp = Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url)]);
    let dir = Scratch::new("skew");
    let doc = noop_scenario(50, "4s");
    let mut gens: Vec<_> = [("behind", "-15s", "0:1/2"), ("ahead", "15s", "1/2:1")]
        .iter()
        .map(|(name, skew, seg)| {
            let extra = ["--clock-skew", skew, "--execution-segment", seg];
            (*name, generator_with(&dir, name, &doc, &exp.url, "skew", &extra))
        })
        .collect();
    let summaries: Vec<_> = gens.iter_mut().map(|(name, c)| wait_ok(&dir, name, c)).collect();
    let log = exp.stop();
    let total = |key: &str| summaries.iter().map(|s| export_count(s, key)).sum::<u64>();
    assert_eq!(total("iterations"), 201, "the whole schedule ran");
    assert_eq!(influx_sum(&db, "iterations", "count", "skew"), total("iterations"), "{log}");
    assert_eq!(Exporter::counter(&log, "too_late"), 0, "{log}");
    assert_eq!(Exporter::counter(&log, "off_clock"), 0, "{log}");
    // The windows line up: every window start holds both generators' health.
    let health = db.query(
        "SELECT count(\"rss_bytes\") FROM \"generator_health\" WHERE \"testid\" = 'skew' GROUP BY time(1s) fill(none)",
    );
    let rows = health["results"][0]["series"][0]["values"].as_array().cloned().unwrap_or_default();
    let paired = rows.iter().filter(|r| r[1] == 2).count();
    assert!(paired + 2 >= rows.len() && paired >= 3, "windows of both generators share their starts: {health}");
}

/// An exporter with a small frame limit: the generator splits each window
/// into parts that fit, the exporter joins them, and nothing is lost.
#[test]
fn a_window_larger_than_the_exporters_frame_limit_arrives_in_parts() {
    let db = Influxd::start();
    let target = Testbed::http();
    let mut exp =
        Exporter::start(TOKEN, &["--out", &format!("influxdb={}/volley", db.url), "--max-frame-bytes", "4096"]);
    let dir = Scratch::new("parts");
    // Forty requests per iteration, each to its own URL: a window holds
    // hundreds of series, far more than 4 KiB.
    let steps: Vec<_> =
        (0..40).map(|i| serde_json::json!({"request": {"url": format!("{}/json?n={i}", target.url)}})).collect();
    let doc = serde_json::json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 10}}},
        "flows": {"default": {"type": "http", "steps": steps}}
    });
    let mut g = generator(&dir, "g", &doc, &exp.url, "parts");
    let summary = wait_ok(&dir, "g", &mut g);
    let log = exp.stop();
    let sent = export_count(&summary, "http_reqs");
    assert_eq!(sent, 400);
    assert_eq!(influx_sum(&db, "http_reqs", "count", "parts"), sent, "{log}");
    assert_eq!(influx_sum(&db, "http_req_duration", "count", "parts"), sent, "{log}");
    assert_eq!(Exporter::counter(&log, "rejected"), 0, "{log}");
    let (windows, parts) = (Exporter::counter(&log, "windows"), Exporter::counter(&log, "parts"));
    assert!(windows >= 1 && parts >= 2 * windows, "every window came in parts: {log}");
    let urls = db.query("SHOW TAG VALUES FROM \"http_reqs\" WITH KEY = \"url\" WHERE \"testid\" = 'parts'");
    let n = urls["results"][0]["series"][0]["values"].as_array().map_or(0, Vec::len);
    assert_eq!(n, 40, "a series per URL: {urls}");
}

/// The exporter's caps: a hello for one test more than `--max-tests`, and a
/// connection beyond `--max-connections`, are refused and counted; the
/// generators already connected are served.
#[test]
fn tests_and_connections_beyond_the_caps_are_refused_and_counted() {
    let mut exp = Exporter::start(TOKEN, &["--max-tests", "1", "--max-connections", "2"]);
    let addr = exp.addr();
    let mut first = connect(&addr, Some(TOKEN)).unwrap();
    send(&mut first, &hello("g1", "held"));
    assert!(matches!(receive(&mut first), ToGenerator::Welcome { .. }));
    let mut other = connect(&addr, Some(TOKEN)).unwrap();
    send(&mut other, &hello("g2", "one-too-many"));
    assert_eq!(closed_by_exporter(&mut other), "this exporter already holds 1 tests (--max-tests)");
    // Two connections open (one idle): a third is closed before its handshake.
    let _idle = std::net::TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(connect(&addr, Some(TOKEN)).is_err(), "a connection beyond --max-connections");
    // The held test is still served.
    send(&mut first, &ToExporter::Window(window("g1", "held", 0, 1_700_000_000_000, &[1.0])));
    send(&mut first, &ToExporter::Goodbye { last_seq: Some(0) });
    assert_eq!(receive(&mut first), ToGenerator::Ack { seqs: vec![0] });
    let log = exp.stop();
    assert_eq!(Exporter::counter(&log, "over_limit"), 2, "{log}");
}
