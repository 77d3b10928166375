//! The start barrier in Redis (`--wait-for N --wait-redis URL`): generators
//! without an exporter start together through a real redis-server.

use serde_json::json;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use volley_tests::im::Redis;
use volley_tests::*;

/// One VU for 1 s: shorter than the 1.8 s over which the generators are
/// launched, so a generator that did not wait would end before the last
/// one was even started.
fn short_plan(dir: &Scratch) -> std::path::PathBuf {
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "constant-vus", "vus": 1, "duration": "1s"}}},
        "flows": {"default": {"type": "noop", "sleep": "50ms"}}
    });
    dir.write("plan.json", &doc.to_string())
}

/// `volley run` in the background; stderr to `<name>.log`.
fn generator(dir: &Scratch, name: &str, file: &std::path::Path, extra: &[&str]) -> Child {
    spawn_run(dir, name, file, extra, &[])
}

/// Waits for a generator to exit 0; returns when it exited.
fn finished(dir: &Scratch, name: &str, child: &mut Child) -> Instant {
    let status = child.wait().unwrap();
    let ended = Instant::now();
    assert_eq!(status.code(), Some(0), "{name}: {}", log_of(dir, name));
    let summary = read_json(&dir.path(&format!("{name}-summary.json")));
    assert!(export_count(&summary, "iterations") > 0, "{name} ran nothing: {summary}");
    ended
}

fn run(args: &[&str], file: &std::path::Path) -> Output {
    Command::new(binary("volley")).args(["run", "--quiet", "--no-summary"]).args(args).arg(file).output().unwrap()
}

#[test]
fn four_generators_start_together_through_redis_and_a_fifth_is_late() {
    let redis = Redis::start();
    let dir = Scratch::new("redis-start");
    let file = short_plan(&dir);
    let flags = ["--test-id", "rs4", "--wait-for", "4", "--wait-redis", redis.url.as_str()];

    // Launched 0.6 s apart: none may start before the last is ready.
    let launched = Instant::now();
    let mut gens: Vec<Child> = Vec::new();
    for i in 0..4 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(600));
        }
        gens.push(generator(&dir, &format!("g{i}"), &file, &flags));
    }
    let last_launch = launched.elapsed();
    // Once the start is fixed in Redis, and 1.5 s more, a fifth joins.
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis.cli(&["GET", "volley:{rs4}:start"]).is_empty() {
        assert!(Instant::now() < deadline, "no start in Redis: {}", log_of(&dir, "g0"));
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let mut late = generator(&dir, "g4", &file, &flags);

    let ends: Vec<Instant> = gens.iter_mut().enumerate().map(|(i, c)| finished(&dir, &format!("g{i}"), c)).collect();
    let first_end = *ends.iter().min().unwrap();
    let last_end = *ends.iter().max().unwrap();
    // The first generator waited for the last one, and all ended within
    // moments of each other, not 1.8 s apart as they were launched.
    assert!(first_end.duration_since(launched) > last_launch, "the first generator did not wait");
    assert!(last_end.duration_since(first_end) < Duration::from_millis(1200), "ends {:?} apart", last_end - first_end);
    for i in 0..4 {
        let log = log_of(&dir, &format!("g{i}"));
        assert!(
            log.contains(&format!("waiting for 4 generators to be ready in Redis at {}", redis.url)),
            "g{i}: {log}"
        );
        assert!(log.contains("4 generators ready; starting together"), "g{i}: {log}");
    }

    finished(&dir, "g4", &mut late);
    let log = log_of(&dir, "g4");
    assert!(log.contains("the other 4 generators started") && log.contains("this one starts now"), "{log}");
    let lateness: f64 = log
        .split("started ")
        .nth(1)
        .and_then(|rest| rest.split(" s ago").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lateness in {log}"));
    // Launched 1.5 s after the start was fixed 1 s ahead: at least 0.5 s late.
    assert!(lateness >= 0.4, "{log}");

    // Five counted; the start says how many were ready when it was fixed;
    // both keys expire (--wait-timeout, default 10 min, + 1 h).
    assert_eq!(redis.cli(&["GET", "volley:{rs4}:ready"]), "5");
    let start = redis.cli(&["GET", "volley:{rs4}:start"]);
    assert!(start.ends_with(",4"), "{start}");
    for key in ["volley:{rs4}:ready", "volley:{rs4}:start"] {
        let ttl: u64 = redis.cli(&["PTTL", key]).parse().unwrap();
        assert!(ttl > 3_600_000 && ttl <= 4_200_000, "{key} expires in {ttl} ms");
    }
}

#[test]
fn too_few_generators_time_out_with_105_and_take_their_count_back() {
    let redis = Redis::start();
    let dir = Scratch::new("redis-timeout");
    let file = short_plan(&dir);
    let args = ["--test-id", "few", "--wait-for", "3", "--wait-timeout", "1s", "--wait-redis", redis.url.as_str()];
    let mut other = generator(&dir, "other", &file, &args);
    let out = run(&args, &file);
    assert_eq!(out.status.code(), Some(105), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no common start within --wait-timeout 1s: fewer than 3 generators of this test became ready in Redis at {}",
            redis.url
        )),
        "{stderr}"
    );
    assert_eq!(other.wait().unwrap().code(), Some(105), "{}", log_of(&dir, "other"));
    assert!(!dir.path("other-summary.json").exists(), "a generator that timed out ran a test");
    // Both gave their count back: a fleet started again counts from zero.
    assert_eq!(redis.cli(&["GET", "volley:{few}:ready"]), "0");
    assert_eq!(redis.cli(&["EXISTS", "volley:{few}:start"]), "0");
}

/// Waits until Redis counts `n` generators ready for `test_id`.
fn wait_ready(redis: &Redis, test_id: &str, n: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis.cli(&["GET", &format!("volley:{{{test_id}}}:ready")]) != n {
        assert!(Instant::now() < deadline, "{what}: never {n} ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_while_waiting_exits_105_and_takes_the_count_back() {
    let redis = Redis::start();
    let dir = Scratch::new("redis-sigint");
    let file = short_plan(&dir);
    let mut g = generator(&dir, "g", &file, &["--test-id", "int", "--wait-for", "2", "--wait-redis", &redis.url]);
    wait_ready(&redis, "int", "1", &log_of(&dir, "g"));
    let killed = Command::new("kill").args(["-INT", &g.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(g.wait().unwrap().code(), Some(105), "{}", log_of(&dir, "g"));
    let log = log_of(&dir, "g");
    assert!(log.contains("stopped while waiting for the other generators; nothing ran"), "{log}");
    assert_eq!(redis.cli(&["GET", "volley:{int}:ready"]), "0");
}

#[test]
fn a_waiting_generator_joins_again_when_redis_restarts_empty() {
    let mut redis = Redis::start();
    let dir = Scratch::new("redis-restart");
    let file = short_plan(&dir);
    let url = redis.url.clone();
    let flags = ["--test-id", "again", "--wait-for", "2", "--wait-timeout", "60s", "--wait-redis", url.as_str()];
    let mut first = generator(&dir, "g0", &file, &flags);
    wait_ready(&redis, "again", "1", &log_of(&dir, "g0"));
    // Redis restarts without persistence: the count is gone, and comes
    // back only because the waiting generator joins again.
    redis.restart(Duration::from_millis(300));
    wait_ready(&redis, "again", "1", &log_of(&dir, "g0"));
    let mut second = generator(&dir, "g1", &file, &flags);
    finished(&dir, "g0", &mut first);
    finished(&dir, "g1", &mut second);
    let log = log_of(&dir, "g0");
    assert!(log.contains("no longer holds the start barrier of this test (restarted?); joining it again"), "{log}");
    for name in ["g0", "g1"] {
        let log = log_of(&dir, name);
        assert!(log.contains("2 generators ready; starting together"), "{name}: {log}");
    }
}

#[test]
fn the_barrier_works_over_tls_with_a_verified_certificate() {
    let dir = Scratch::new("redis-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert_path = dir.write("cert.pem", &cert.cert.pem());
    let key_path = dir.write("key.pem", &cert.key_pair.serialize_pem());
    let redis = Redis::start_tls(&cert_path, &key_path);
    assert!(redis.url.starts_with("rediss://"), "{}", redis.url);
    let file = short_plan(&dir);
    let run_with_roots = |roots: &std::path::Path, test_id: &str| {
        Command::new(binary("volley"))
            .args(["run", "--quiet", "--no-summary", "--test-id", test_id, "--wait-for", "1"])
            .args(["--wait-redis", &redis.url])
            .arg(&file)
            .env("SSL_CERT_FILE", roots)
            .output()
            .unwrap()
    };
    // The server's certificate is verified: unknown to the trust store, refused…
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let out = run_with_roots(&dir.write("other.pem", &other.cert.pem()), "tls-refused");
    assert_eq!(out.status.code(), Some(105), "{}", describe(&out));
    assert!(describe(&out).contains("cannot join the start barrier"), "{}", describe(&out));
    // …trusted, the barrier works as over plain TCP.
    let out = run_with_roots(&cert_path, "tls");
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 generator ready; starting together"),
        "{}",
        describe(&out)
    );
    assert_eq!(redis.cli(&["GET", "volley:{tls}:ready"]), "1");
}

#[test]
fn an_unreachable_redis_is_named_without_its_password() {
    let dir = Scratch::new("redis-down");
    let file = short_plan(&dir);
    let url = format!("redis://:hunter2secret@127.0.0.1:{}/0", closed_port());
    let out = run(&["--wait-for", "2", "--wait-redis", &url], &file);
    assert_eq!(out.status.code(), Some(105), "{}", describe(&out));
    let text = describe(&out);
    let shown = url.replace(":hunter2secret@", "");
    assert!(text.contains(&format!("--wait-redis {shown}: cannot join the start barrier")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn wait_redis_needs_wait_for_and_a_url() {
    let dir = Scratch::new("redis-flags");
    let file = short_plan(&dir);
    let out = run(&["--wait-redis", "redis://:pw12345678@127.0.0.1:6379"], &file);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--wait-redis: needs --wait-for N, the number of generators that start together"),
        "{}",
        describe(&out)
    );
    // The same through the environment, and a URL that is not Redis's.
    let out = Command::new(binary("volley"))
        .args(["run", "--quiet", "--wait-for", "2"])
        .arg(&file)
        .env("VOLLEY_WAIT_REDIS", "http://user:pw12345678@127.0.0.1:6379")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    let text = describe(&out);
    assert!(text.contains("--wait-redis http://127.0.0.1:6379: must be a redis:// or rediss:// URL"), "{text}");
    assert!(!text.contains("pw12345678"), "{text}");
    // Neither place to meet.
    let out = run(&["--wait-for", "2"], &file);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--wait-for: needs --exporter or --wait-redis"),
        "{}",
        describe(&out)
    );
}

#[test]
fn with_an_exporter_too_the_start_is_agreed_in_redis() {
    let redis = Redis::start();
    let dir = Scratch::new("redis-and-exporter");
    let file = short_plan(&dir);
    // No exporter listens there: the start still comes from Redis, and the
    // windows wait for an exporter that never answers (--out-flush-timeout),
    // and the run says they were never stored with exit code 112.
    let exporter = format!("ws://127.0.0.1:{}", closed_port());
    let out = Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--test-id", "both", "--wait-for", "1"])
        .args(["--wait-redis", &redis.url, "--exporter", &exporter, "--out-flush-timeout", "1s"])
        .arg(&file)
        .env("VOLLEY_EXPORTER_TOKEN", "t0k3n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(112), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the start is agreed in Redis; windows still stream to the exporter"), "{stderr}");
    assert!(stderr.contains("1 generator ready; starting together"), "{stderr}");
    assert_eq!(redis.cli(&["GET", "volley:{both}:ready"]), "1");
}
