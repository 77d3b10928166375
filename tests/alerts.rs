//! `volley-exporter --alert-rules` end to end: real generators stream to a
//! real exporter, whose alerts are posted to a real HTTP receiver run by the
//! test. Failures and silence are caused on purpose (the testbed's
//! `/status/500`, a generator killed with SIGKILL).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use volley_tests::exporter::Exporter;
use volley_tests::*;

const TOKEN: &str = "alerts-token-0123456789";

/// One POST the receiver got.
#[derive(Clone, Debug)]
struct Post {
    at: Instant,
    path: String,
    content_type: String,
    body: Value,
}

impl Post {
    fn alert(&self) -> &Value {
        &self.body["alerts"][0]
    }
    fn name(&self) -> &str {
        self.alert()["labels"]["alertname"].as_str().unwrap_or_default()
    }
    fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or_default()
    }
}

/// A minimal HTTP/1.1 server on a loopback port that answers 200 to every
/// request and keeps the bodies.
struct Receiver {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let posts = Arc::new(Mutex::new(Vec::new()));
        let keep = posts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Some(post) = read_request(&mut stream) {
                    keep.lock().unwrap().push(post);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { url, posts }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a post matching `want`.
    fn wait_for(&self, limit: Duration, want: impl Fn(&Post) -> bool) -> Option<Post> {
        let until = Instant::now() + limit;
        loop {
            if let Some(p) = self.posts().into_iter().find(&want) {
                return Some(p);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Post> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Post { at: Instant::now(), path, content_type, body: serde_json::from_slice(&body).ok()? })
}

/// Starts `volley run --exporter` on `doc`; stderr goes to `DIR/NAME.log`.
fn generator(dir: &Scratch, name: &str, doc: &Value, exporter: &str, test_id: &str) -> Child {
    let file = dir.write(&format!("{name}.json"), &doc.to_string());
    Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--window", "1s", "--test-id", test_id, "--exporter", exporter])
        .arg(file)
        .env("VOLLEY_EXPORTER_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path(&format!("{name}.log"))).unwrap())
        .spawn()
        .expect("start volley")
}

/// The id a generator gives itself: `<hostname>-<pid>`.
fn generator_id(child: &Child) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap();
    format!("{host}-{}", child.id())
}

fn wait_exit(dir: &Scratch, name: &str, child: &mut Child) {
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path(&format!("{name}.log"))).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{name}: {log}");
}

fn arrival_rate(rate: u64, duration: &str, exec: &str) -> Value {
    json!({"executor": "constant-arrival-rate", "rate": rate, "timeUnit": "1s", "duration": duration,
           "preAllocatedVUs": 4, "maxVUs": 8, "exec": exec})
}

#[test]
fn a_failure_rate_fires_while_it_holds_and_resolves_once_after() {
    let target = Testbed::http();
    let hook = Receiver::start();
    let dir = Scratch::new("alerts-fire");
    let rules = dir.write(
        "rules.yaml",
        &format!(
            r#"
webhook: {}/hook
evaluate: 500ms
rules:
  - name: Failures
    expr: "rate of http_req_failed over 3s > 0.2"
    labels: {{severity: page}}
    annotations: {{summary: "failing at {{{{ $value }}}}"}}
  - name: FailuresSustained
    expr: "rate of http_req_failed over 2s > 0.2"
    for: 30s
  - name: GoodScenarioFailures
    expr: "rate of http_req_failed{{scenario:good}} over 3s > 0.01"
  - name: Silent
    expr: "no data from a generator for 3s"
"#,
            hook.url
        ),
    );
    let mut exp = Exporter::start(TOKEN, &["--alert-rules", rules.to_str().unwrap()]);
    // Half the requests fail for 5 s, then none for 6 s more.
    let doc = json!({
        "options": {"scenarios": {"bad": arrival_rate(20, "5s", "fail"), "good": arrival_rate(20, "11s", "ok")}},
        "flows": {
            "fail": {"type": "http", "steps": [{"request": {"url": format!("{}/status/500", target.url)}}]},
            "ok": {"type": "http", "steps": [{"request": {"url": format!("{}/status/200", target.url)}}]}
        }
    });
    let mut gen = generator(&dir, "g", &doc, &exp.url, "alerts-fire");
    let fired = hook
        .wait_for(Duration::from_secs(15), |p| p.name() == "Failures" && p.status() == "firing")
        .unwrap_or_else(|| panic!("no firing notification; got {:?}", hook.posts()));
    let running = gen.try_wait().unwrap().is_none();
    assert!(running, "the alert fired only after the generator ended");
    wait_exit(&dir, "g", &mut gen);
    let ended = Instant::now();
    let resolved = hook
        .wait_for(Duration::from_secs(20), |p| p.name() == "Failures" && p.status() == "resolved")
        .unwrap_or_else(|| panic!("no resolved notification; got {:?}", hook.posts()));
    // Long enough for a silence alert on the generator that ended cleanly.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(ended.elapsed()));
    let log = exp.stop();

    // Alertmanager's webhook shape.
    assert_eq!(fired.path, "/hook");
    assert!(fired.content_type.starts_with("application/json"), "{}", fired.content_type);
    let body = &fired.body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "volley-exporter");
    assert_eq!(body["groupLabels"], json!({"alertname": "Failures", "testid": "alerts-fire"}));
    assert_eq!(body["groupKey"], "{}:{alertname=\"Failures\", testid=\"alerts-fire\"}");
    assert_eq!(body["commonLabels"], fired.alert()["labels"]);
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1));
    let alert = fired.alert();
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"], json!({"alertname": "Failures", "testid": "alerts-fire", "severity": "page"}));
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["annotations"]["expression"], "rate of http_req_failed over 3s > 0.2");
    let value: f64 = alert["annotations"]["value"].as_str().unwrap().parse().unwrap();
    assert!(value > 0.2 && value <= 1.0, "{alert}");
    assert_eq!(
        alert["annotations"]["summary"],
        format!("failing at {}", alert["annotations"]["value"].as_str().unwrap())
    );
    assert_eq!(alert["fingerprint"].as_str().map(str::len), Some(16));

    // Resolved from the data while the test still ran (not for lack of it).
    assert!(resolved.at > fired.at);
    let r = resolved.alert();
    assert_eq!(r["labels"], alert["labels"]);
    assert_eq!(r["startsAt"], alert["startsAt"]);
    assert_ne!(r["endsAt"], "0001-01-01T00:00:00Z");
    assert!(r["endsAt"].as_str().unwrap() > r["startsAt"].as_str().unwrap(), "{r}");
    let value: f64 = r["annotations"]["value"].as_str().unwrap().parse().unwrap();
    assert!(value <= 0.2, "{r}");

    // Exactly one notification per transition; the 5 s blip never reached
    // `for: 30s`; the good scenario never failed; the clean end is no silence.
    let posts = hook.posts();
    let names: Vec<(&str, &str)> = posts.iter().map(|p| (p.name(), p.status())).collect();
    assert_eq!(names, [("Failures", "firing"), ("Failures", "resolved")], "{posts:#?}");
    assert!(log.contains("alert Failures firing for testid=alerts-fire: rate of http_req_failed over 3s = "), "{log}");
    assert!(log.contains("alert Failures resolved for testid=alerts-fire"), "{log}");
    assert!(
        log.contains("alerts: rules=4 tests=1 firing=0 fired=1 resolved=1 delivered=2 webhook_failures=0"),
        "{log}"
    );
}

#[test]
fn a_killed_generator_is_reported_silent_and_one_that_finished_is_not() {
    let hook = Receiver::start();
    let dir = Scratch::new("alerts-silent");
    let rules = dir.write(
        "rules.yaml",
        &format!(
            "webhook: {}/silence\nevaluate: 250ms\nrules:\n  - name: GeneratorSilent\n    expr: no data from a generator for 3s\n    labels: {{severity: warning}}\n",
            hook.url
        ),
    );
    let mut exp = Exporter::start(TOKEN, &["--alert-rules", rules.to_str().unwrap()]);
    let noop = |duration: &str| {
        json!({"options": {"scenarios": {"s": arrival_rate(10, duration, "default")}},
               "flows": {"default": {"type": "noop", "sleep": "1ms"}}})
    };
    let mut short = generator(&dir, "short", &noop("3s"), &exp.url, "alerts-silent");
    let mut long = generator(&dir, "long", &noop("60s"), &exp.url, "alerts-silent");
    let (short_id, long_id) = (generator_id(&short), generator_id(&long));
    wait_exit(&dir, "short", &mut short);
    std::thread::sleep(Duration::from_secs(1));
    assert!(long.try_wait().unwrap().is_none(), "the long generator ended early");
    let _ = long.kill(); // SIGKILL: no goodbye
    let _ = long.wait();
    let killed = Instant::now();

    let fired = hook
        .wait_for(Duration::from_secs(15), |p| p.status() == "firing")
        .unwrap_or_else(|| panic!("no silence alert; got {:?}", hook.posts()));
    let after = fired.at - killed;
    assert!(after >= Duration::from_secs(2), "fired {after:?} after the kill, before 3 s of silence");
    // Still silent: no repeat, and the generator that finished never fires.
    std::thread::sleep(Duration::from_secs(3));
    let log = exp.stop();

    let alert = fired.alert();
    assert_eq!(fired.path, "/silence");
    assert_eq!(
        alert["labels"],
        json!({"alertname": "GeneratorSilent", "testid": "alerts-silent", "generator": long_id, "severity": "warning"})
    );
    assert_eq!(alert["annotations"]["expression"], "no data from a generator for 3s");
    let posts = hook.posts();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert!(!log.contains(&format!("generator={short_id}")), "{log}");
    assert!(
        log.contains(&format!("alert GeneratorSilent firing for testid=alerts-silent generator={long_id}")),
        "{log}"
    );
}

#[test]
fn a_bad_rule_file_is_refused_with_every_problem() {
    let dir = Scratch::new("alerts-bad");
    let rules = dir.write(
        "rules.yaml",
        "rules:\n  - name: P99High\n    expr: \"p99 of http_req_duration over 5m > 300\"\n  - name: Failures\n    expr: \"rate of http_req_failed over 1m > 0.01\"\n    severity: page\n",
    );
    let out = Command::new(binary("volley-exporter"))
        .args(["--token", TOKEN, "--listen", "127.0.0.1:0", "--alert-rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = rules.display();
    for want in [
        format!("--alert-rules {file}: webhook: missing"),
        format!("--alert-rules {file}: rules[0] (P99High).expr: unknown statistic \"p99\"; use p(99)"),
        format!("--alert-rules {file}: rules[1] (Failures): unknown field \"severity\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in {err}");
    }
    assert!(out.stdout.is_empty(), "it started listening: {}", describe(&out));
}
