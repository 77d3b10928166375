//! The shared auth token against real servers: a `redis-server`, the HTTP
//! testbed issuing 3-second tokens and refusing expired ones, and two
//! `volley run` processes with the same scenario, as two load machines
//! would run it. Each run lasts 30 s at 20 requests/s per generator.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use volley_tests::im::Redis;
use volley_tests::{binary, export_count, read_json, Scratch, Testbed};

const RUN: Duration = Duration::from_secs(30);
const TTL_SECS: f64 = 3.0;
const REFRESH_AT: f64 = 0.8;
const LEASE: &str = "1s";
const KEY: &str = "volley:test:token";

/// Refreshes a 30 s run makes on schedule: one at the start, then one
/// every 0.8 × 3 s while the manager runs.
fn scheduled_refreshes() -> i64 {
    (RUN.as_secs_f64() / (TTL_SECS * REFRESH_AT)).floor() as i64 + 1
}

fn scenario(base: &str, redis: &str) -> serde_json::Value {
    serde_json::json!({
        "options": {
            "scenarios": {
                "token": {"executor": "constant-vus", "vus": 1, "duration": "30s", "exec": "auth"},
                "load": {
                    "executor": "constant-arrival-rate", "rate": 20, "timeUnit": "1s", "duration": "30s",
                    "preAllocatedVUs": 4, "exec": "api"
                }
            }
        },
        "flows": {
            "auth": {
                "type": "token-manager",
                "login": {"method": "POST", "url": format!("{base}/auth/login"), "body": {"username": "{{env.LOGIN_USER}}"}},
                "refresh": {
                    "method": "POST", "url": format!("{base}/auth/refresh"),
                    "headers": {"Authorization": "Bearer {{token}}"}
                },
                "refreshAt": REFRESH_AT,
                "redis": redis,
                "key": KEY,
                "lease": LEASE,
                "retry": "100ms",
                "retryMax": "500ms"
            },
            "api": {
                "type": "http",
                "steps": [{
                    "request": {"url": format!("{base}/api/orders"), "headers": {"Authorization": "Bearer {{token}}"}},
                    "checks": {"status": 200}
                }]
            }
        }
    })
}

/// One `volley run` process, started now.
struct Generator {
    child: Option<Child>,
    export: std::path::PathBuf,
    log: std::path::PathBuf,
    _dir: Scratch,
}

impl Generator {
    fn start(doc: &serde_json::Value) -> Generator {
        let dir = Scratch::new("token");
        let file = dir.write("scenario.json", &doc.to_string());
        let export = dir.path("summary.json");
        let log = dir.path("log.txt");
        let child = Command::new(binary("volley"))
            .args(["run", "--quiet", "-e", "LOGIN_USER=loadtest", "--summary-export"])
            .arg(&export)
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start volley");
        Generator { child: Some(child), export, log, _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for the end; returns the summary export.
    fn finish(&mut self) -> serde_json::Value {
        let status = self.child.take().expect("running").wait().unwrap();
        assert!(status.success(), "volley exited with {status}:\n{}", self.log());
        read_json(&self.export)
    }

    fn kill(&mut self) {
        let mut c = self.child.take().expect("running");
        let _ = c.kill();
        let _ = c.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The pid in the lease value (`host-pid-random`) once someone other than
/// `not` holds it.
fn lease_holder(redis: &Redis, not: Option<u32>, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        let v = redis.cli(&["GET", &format!("{KEY}:lease")]);
        if let Some(pid) = v.rsplit('-').nth(1).and_then(|p| p.parse().ok()).filter(|p| Some(*p) != not) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no new lease holder within {within:?} (lease: {v:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn issued(testbed: &Testbed) -> i64 {
    let auth = &testbed.stats()["auth"];
    (auth["logins"].as_u64().unwrap() + auth["refreshes"].as_u64().unwrap()) as i64
}

fn assert_no_401(testbed: &Testbed) {
    let stats = testbed.stats();
    let auth = &stats["auth"];
    for reason in ["unauthorized_missing", "unauthorized_invalid", "unauthorized_expired"] {
        assert_eq!(auth[reason], 0, "{reason}: {stats}");
    }
    assert!(auth["authorized"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["by_status"].get("401").is_none(), "{stats}");
}

fn assert_within_one(actual: i64, expected: i64, what: &str) {
    assert!((actual - expected).abs() <= 1, "{what}: {actual}, schedule says {expected} (±1)");
}

#[test]
fn two_generators_share_one_token_from_a_single_writer() {
    let redis = Redis::start();
    let testbed = Testbed::start(&["--token-ttl", "3s"]);
    let doc = scenario(&testbed.url, &redis.url);
    let mut a = Generator::start(&doc);
    let mut b = Generator::start(&doc);
    let (sa, sb) = (a.finish(), b.finish());
    assert_no_401(&testbed);
    let (ok_a, ok_b) = (export_count(&sa, "token_refresh_ok") as i64, export_count(&sb, "token_refresh_ok") as i64);
    // One writer: every token the testbed issued was stored by the same
    // generator, and the other never asked for one.
    assert!(ok_a == 0 || ok_b == 0, "both generators refreshed: {ok_a} and {ok_b}");
    assert_eq!(ok_a + ok_b, issued(&testbed), "tokens issued vs stored");
    assert_within_one(ok_a + ok_b, scheduled_refreshes(), "refreshes");
    for s in [&sa, &sb] {
        assert_eq!(export_count(s, "token_refresh_fail"), 0);
        assert_eq!(export_count(s, "token_unavailable"), 0);
        // Every request of the load scenario carried a valid token.
        assert_eq!(s["metrics"]["checks"]["fails"], 0, "{s}");
        assert!(export_count(s, "http_reqs") >= 550, "{s}");
    }
    // The token stays in Redis for its remaining life; the lease is given back.
    assert_eq!(redis.cli(&["EXISTS", &format!("{KEY}:lease")]), "0");
}

#[test]
fn a_standby_takes_over_when_the_writer_is_killed() {
    let redis = Redis::start();
    let testbed = Testbed::start(&["--token-ttl", "3s"]);
    let doc = scenario(&testbed.url, &redis.url);
    let mut a = Generator::start(&doc);
    let mut b = Generator::start(&doc);
    let started = Instant::now();
    let holder = lease_holder(&redis, None, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(8).saturating_sub(started.elapsed()));
    let (killed, survivor) = if holder == a.pid() { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert_eq!(holder, killed.pid(), "the lease names a process that is not one of ours");
    killed.kill();
    // The standby holds the lease within one lease period (plus its poll).
    let new_holder = lease_holder(&redis, Some(holder), Duration::from_millis(2500));
    assert_eq!(new_holder, survivor.pid());
    let s = survivor.finish();
    assert_no_401(&testbed);
    assert!(export_count(&s, "token_refresh_ok") >= 1, "the survivor never refreshed");
    assert_eq!(export_count(&s, "token_unavailable"), 0, "the survivor's VUs ran out of tokens");
    assert_eq!(s["metrics"]["checks"]["fails"], 0, "{s}");
    // Killing the writer neither skipped the schedule nor doubled it.
    assert_within_one(issued(&testbed), scheduled_refreshes(), "tokens issued");
}

#[test]
fn a_redis_restart_loses_no_request_and_the_manager_recovers() {
    let mut redis = Redis::start();
    let testbed = Testbed::start(&["--token-ttl", "3s"]);
    let doc = scenario(&testbed.url, &redis.url);
    let mut a = Generator::start(&doc);
    let mut b = Generator::start(&doc);
    let started = Instant::now();
    lease_holder(&redis, None, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(8).saturating_sub(started.elapsed()));
    // Down for longer than the refresh period, so a refresh falls in the outage.
    redis.restart(Duration::from_millis(2600));
    // The restarted Redis is empty; the manager stores a token in it again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["EXISTS", KEY]) != "1" {
        assert!(Instant::now() < deadline, "no token in Redis 5 s after its restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sa, sb) = (a.finish(), b.finish());
    assert_no_401(&testbed);
    let fails = export_count(&sa, "token_refresh_fail") + export_count(&sb, "token_refresh_fail");
    assert!(fails >= 1, "the refresh during the outage was not counted as a failure");
    for s in [&sa, &sb] {
        assert_eq!(export_count(s, "token_unavailable"), 0, "a VU ran out of tokens: {s}");
        assert_eq!(s["metrics"]["checks"]["fails"], 0, "{s}");
    }
    let logs = a.log() + &b.log();
    assert!(logs.contains("unreachable"), "the outage was not reported:\n{logs}");
    assert!(longest_token_run(&logs) <= 8, "a log line holds more than a token prefix:\n{logs}");
}

/// The longest run of token characters starting at a JWT's `eyJ` in
/// `text`: logs may show a short prefix of a token, never more.
fn longest_token_run(text: &str) -> usize {
    text.match_indices("eyJ")
        .map(|(i, _)| {
            text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn im_vus_connect_with_the_shared_token_in_one_process() {
    // The HTTP target and the gateway share the secret, as an auth service
    // and a gateway would; no Redis: the token is shared in process. One
    // VU: the gateway keeps one connection per user, and the token's user
    // is the same for every VU.
    let secret = "shared-secret-for-both";
    let testbed = Testbed::start(&["--token-ttl", "3s", "--jwt-secret", secret]);
    let gateway = volley_tests::im::Gateway::start(secret, &[]);
    let doc = serde_json::json!({
        "options": {"scenarios": {
            "token": {"executor": "constant-vus", "vus": 1, "duration": "4s", "exec": "auth"},
            "ping": {"executor": "constant-vus", "vus": 1, "duration": "4s", "exec": "ping"}
        }},
        "flows": {
            "auth": {
                "type": "token-manager",
                "login": {"method": "POST", "url": format!("{}/auth/login", testbed.url), "body": {"username": "42"}}
            },
            "ping": {"type": "ws-ping", "urls": gateway.url(), "token": "{{token}}", "pingInterval": "200ms"}
        }
    });
    let mut g = Generator::start(&doc);
    let s = g.finish();
    assert_eq!(export_count(&s, "ws_auth_ok"), 1, "{s}");
    assert_eq!(gateway.stat("auth_ok"), 1);
    assert_eq!(export_count(&s, "ws_auth_fail"), 0);
    assert!(s["metrics"]["ws_pong_rtt_ms"]["max"].as_f64().unwrap() > 0.0, "{s}");
    assert!(export_count(&s, "iterations{scenario:ping}") >= 15, "{s}");
    // 4 s of 3-second tokens refreshed every 2.4 s: logged in twice.
    assert_eq!(testbed.stats()["auth"]["logins"], 2);
    assert_eq!(export_count(&s, "token_refresh_ok"), 2);
}

#[test]
fn without_a_token_vus_wait_up_to_the_bound_then_fail_the_iteration_with_a_counted_error() {
    // A generator that only reads the token (its manager runs nowhere):
    // every iteration waits `wait`, then fails with a clear message.
    let redis = Redis::start();
    let testbed = Testbed::http();
    let doc = serde_json::json!({
        "options": {"scenarios": {"load": {"executor": "constant-vus", "vus": 2, "duration": "2s", "exec": "api"}}},
        "flows": {
            "auth": {"type": "token-manager", "login": {"url": format!("{}/auth/login", testbed.url)},
                     "redis": redis.url, "key": KEY, "wait": "400ms"},
            "api": {"type": "http", "steps": [{"request": {
                "url": format!("{}/api/x", testbed.url), "headers": {"Authorization": "Bearer {{token}}"}}}]}
        }
    });
    let mut g = Generator::start(&doc);
    let s = g.finish();
    let failed = export_count(&s, "token_unavailable");
    // 2 VUs × 2 s / 0.4 s, give or take the edges.
    assert!((8..=12).contains(&failed), "{failed} iterations without a token: {s}");
    assert_eq!(export_count(&s, "iterations"), 0, "an iteration without a token is interrupted, not complete");
    assert!(s["metrics"]["token_wait"]["min"].as_f64().unwrap() >= 400.0, "{s}");
    // Nothing was sent without a token.
    assert_eq!(export_count(&s, "http_reqs"), 0);
    assert_eq!(testbed.stats()["requests"], 0);
    let log = g.log();
    assert_eq!(
        log.matches("an iteration failed: no token from token-manager \"auth\" within 400ms").count(),
        1,
        "the first failure is reported once:\n{log}"
    );
}
