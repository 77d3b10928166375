//! Bad input: exit code 104, one clear message naming the field path and the
//! problem, and nothing runs (no summary, no export written).

use std::process::Command;
use volley_tests::*;

/// Runs `volley run` on `text` written as `name`, expects exit 104 and
/// stderr containing `expected`.
fn rejects(name: &str, text: &str, extra: &[&str], expected: &str) {
    let dir = Scratch::new("bad");
    let file = dir.write(name, text);
    let export = dir.path("summary.json");
    let mut args = vec!["run", file.to_str().unwrap(), "--summary-export", export.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = volley(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(stderr.contains(expected), "expected {expected:?} in:\n{stderr}");
    assert!(!export.exists(), "nothing may run on invalid input");
    assert!(out.stdout.is_empty(), "no summary on invalid input: {}", String::from_utf8_lossy(&out.stdout));
}

const FLOWS: &str = "flows:\n  default: {type: noop}\n";

#[test]
fn unknown_executor_suggests_the_closest_name() {
    rejects(
        "s.yaml",
        &format!(
            "options:\n  scenarios:\n    s: {{executor: ramping-vu, stages: [{{duration: 1s, target: 1}}]}}\n{FLOWS}"
        ),
        &[],
        "options.scenarios.s.executor: unknown executor \"ramping-vu\" (did you mean \"ramping-vus\"?)",
    );
}

#[test]
fn unknown_field_is_named_with_its_path() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-vus, vus: 1, duration: 1s, preAllocatedVU: 3}}\n{FLOWS}"),
        &[],
        "options.scenarios.s.preAllocatedVU: unknown field",
    );
}

#[test]
fn missing_required_option() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-arrival-rate, duration: 1s, preAllocatedVUs: 1}}\n{FLOWS}"),
        &[],
        "options.scenarios.s.rate: is required",
    );
}

#[test]
fn zero_rate_is_rejected() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-arrival-rate, rate: 0, duration: 1s, preAllocatedVUs: 1}}\n{FLOWS}"),
        &[],
        "options.scenarios.s.rate: must be at least 1, found 0",
    );
}

#[test]
fn negative_vus_are_rejected() {
    rejects(
        "s.json",
        r#"{"options": {"scenarios": {"s": {"executor": "constant-vus", "vus": -3, "duration": "1s"}}}, "flows": {"default": {"type": "noop"}}}"#,
        &[],
        "options.scenarios.s.vus: must not be negative, found -3",
    );
}

#[test]
fn unparsable_duration() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-vus, duration: 10 minutes}}\n{FLOWS}"),
        &[],
        "options.scenarios.s.duration: \"10 minutes\"",
    );
}

#[test]
fn exec_naming_a_missing_flow() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-vus, duration: 1s, exec: checkout}}\n{FLOWS}"),
        &[],
        "options.scenarios.s.exec: flow \"checkout\" is not defined in flows (defined: default)",
    );
}

#[test]
fn malformed_threshold() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    s: {{executor: constant-vus, duration: 1s}}\n  thresholds:\n    http_req_duration: [\"p95 < 300\"]\n{FLOWS}"),
        &[],
        "options.thresholds.http_req_duration[0]: \"p95 < 300\": unknown aggregation \"p95\"",
    );
}

#[test]
fn unreadable_file() {
    let out = volley(&["run", "/nonexistent/volley/scenario.yaml"]);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/volley/scenario.yaml: cannot read the scenario file"), "{stderr}");
}

#[test]
fn invalid_yaml_syntax() {
    rejects("s.yaml", "options: [unclosed\n", &[], "invalid YAML");
}

#[test]
fn every_problem_is_listed_at_once() {
    rejects(
        "s.yaml",
        &format!("options:\n  scenarios:\n    a: {{executor: constant-vus, duration: 0s}}\n    b: {{executor: per-vu-iterations, iterations: 0}}\n{FLOWS}"),
        &[],
        "(2 problems)",
    );
}

#[test]
fn bad_flag_value() {
    let dir = Scratch::new("badflag");
    let file = dir
        .write("s.yaml", &format!("options:\n  scenarios:\n    s: {{executor: constant-vus, duration: 1s}}\n{FLOWS}"));
    let out = volley(&["run", file.to_str().unwrap(), "--duration", "soon"]);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"soon\" is not a duration"), "{}", describe(&out));
}

#[test]
fn bad_output_names_the_problem_and_hides_the_password() {
    let doc = format!("options:\n  scenarios:\n    s: {{executor: shared-iterations, iterations: 1}}\n{FLOWS}");
    rejects(
        "s.yaml",
        &doc,
        &["--out", "influx=http://h:8086/db"],
        "--out influx=http://h:8086/db: unknown output \"influx\"; the outputs are influxdb, otlp, json and csv",
    );
    rejects(
        "s.yaml",
        &doc,
        &["--out", "influxdb=http://amy:hunter2@h:8086"],
        "--out influxdb=http://amy:***@h:8086: no database: put it in the path (http://host:8086/DB) or give org and bucket for the v2 API",
    );
}

#[test]
fn im_flow_problems_are_all_named_with_their_paths() {
    let text = r#"
options:
  scenarios:
    chat: {executor: constant-vus, vus: 2, duration: 1s, exec: chat}
flows:
  chat:
    type: im-e2e
    urls: "http://127.0.0.1:9001/ws"
    jwtSecret: s
    auth: cookie
    msgInterval: 0s
    frames:
      msg: '{"to":"{{to}}"}'
      incoming: {match: {}, seq: "a..b"}
"#;
    let stderr = rejects_all(
        text,
        &[
            "flows.chat.urls: \"http://127.0.0.1:9001/ws\" must start with ws:// or wss://",
            "flows.chat.auth: must be header, query or frame, got \"cookie\"",
            "flows.chat.msgInterval: must be greater than 0",
            "flows.chat.frames.msg: must contain {{seq}}",
            "flows.chat.frames.incoming.match: needs at least one field to match",
            "flows.chat.frames.incoming.seq: is not a JSON path",
        ],
    );
    assert!(!stderr.contains("is not defined"), "an invalid flow is not a missing one:\n{stderr}");
}

#[test]
fn an_im_preset_without_a_secret_says_how_to_give_one() {
    let out = std::process::Command::new(binary("volley"))
        .args(["ws-ping", "--vus", "1", "--duration", "1s"])
        .env_remove("VOLLEY_JWT_SECRET")
        .output()
        .expect("run volley");
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jwt-secret: is required (or set VOLLEY_JWT_SECRET)"));
}

/// Runs `volley run` on `text` (YAML), expects exit 104 and every one of
/// `expected` on stderr.
fn rejects_all(text: &str, expected: &[&str]) -> String {
    let dir = Scratch::new("bad-all");
    let file = dir.write("s.yaml", text);
    let out = volley(&["run", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    for e in expected {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
    stderr
}

#[test]
fn token_manager_problems_are_all_named_with_their_paths() {
    let text = r#"
options:
  scenarios:
    token: {executor: constant-vus, vus: 1, duration: 1s, exec: auth}
flows:
  auth:
    type: token-manager
    login: {method: POST, url: "http://127.0.0.1:1/login", headers: {Authorization: "Bearer {{token}}"}}
    tokenPath: "a..b"
    lifetime: 60s
    lifetimePath: expires_in
    refreshAt: 1.5
    redis: "http://user:hunter2@127.0.0.1:6379"
    lease: 10ms
    retry: 2s
    retryMax: 1s
"#;
    let stderr = rejects_all(
        text,
        &[
            "flows.auth.login: cannot use {{token}}: login runs when there is no token",
            "flows.auth.tokenPath: \"a..b\" is not a JSON path",
            "flows.auth.lifetime: give either lifetime (fixed) or lifetimePath",
            "flows.auth.refreshAt: must be between 0 and 1",
            "flows.auth.redis:",
            "must be a redis:// or rediss:// URL",
            "flows.auth.lease: must be at least 300ms",
            "flows.auth.retryMax: must not be shorter than retry",
        ],
    );
    assert!(!stderr.contains("hunter2"), "a password reached the error output:\n{stderr}");
    assert!(!stderr.contains("is not defined"), "an invalid flow is not a missing one:\n{stderr}");
}

#[test]
fn a_token_reference_without_its_manager_is_named() {
    let flows = |managers: &str| {
        format!(
            r#"
options:
  scenarios:
    load: {{executor: constant-vus, vus: 1, duration: 1s, exec: api}}
flows:
  api:
    type: http
    steps:
      - request: {{url: "http://127.0.0.1:1/", headers: {{Authorization: "Bearer {{{{token}}}}"}}}}
      - request: {{url: "http://127.0.0.1:1/{{{{token.admn}}}}"}}
{managers}"#
        )
    };
    rejects_all(&flows(""), &["flows.api: uses {{token}}, but no flow has type token-manager"]);
    let two = "  user: {type: token-manager, login: {url: \"http://127.0.0.1:1/a\"}}\n  admin: {type: token-manager, login: {url: \"http://127.0.0.1:1/b\"}}\n";
    rejects_all(
        &flows(two),
        &[
            "flows.api: uses {{token}}, but there are several token-manager flows (admin, user): name one, as {{token.NAME}}",
            "flows.api: uses {{token.admn}}, but \"admn\" is not a token-manager flow (token managers: admin, user)",
        ],
    );
}

/// The smaller bad inputs that used to panic, hang or run: each is a clear
/// error with exit 104.
#[test]
fn hostile_flags_and_files_are_clear_errors() {
    let doc = format!("options:\n  scenarios:\n    s: {{executor: shared-iterations, iterations: 1}}\n{FLOWS}");
    rejects("s.yaml", &doc, &["--out", "influxdb=a@b://x"], "--out influxdb=a@b://x: ");
    rejects("s.yaml", &doc, &["--window", "0s"], "\"0s\" is not a window length: use 1ms to 1h0m0s");
    rejects("s.yaml", &doc, &["--duration", "1e400s"], "\"1e400s\" is too long");
    rejects("s.yaml", &doc, &["--exporter-buffer", "0"], "must be at least 1");
    rejects("s.yaml", &"[".repeat(100_000), &[], "nested deeper than 64 levels");
    rejects(
        "s.yaml",
        &format!("options: {{vus: 1000000000, duration: 1s}}\n{FLOWS}"),
        &[],
        "options.scenarios.default: 1000000000 VUs need an estimated 1907.3 GiB of memory",
    );
    rejects(
        "s.yaml",
        &format!("options:\n  tags: {{team: \"core\\\\\"}}\n  scenarios:\n    s: {{executor: shared-iterations, iterations: 1}}\n{FLOWS}"),
        &[],
        "options.tags.team: the tag value \"core\\\\\" cannot be stored unchanged by a metric store: it has a backslash before",
    );
    rejects("s.yaml", &doc, &["--test-id", "run\n2"], "--test-id \"run\\n2\": contains the control character");
    let out = Command::new(binary("volley-exporter")).args(["--max-frame-bytes", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 bytes is too small for a frame"), "{}", describe(&out));
}
