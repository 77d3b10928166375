//! The http flow against the real testbed server: what volley counts must
//! equal what the server saw, failures are counted and the test goes on.

use serde_json::json;
use volley_tests::*;

#[test]
fn request_and_check_counts_equal_the_servers() {
    let server = Testbed::http();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 4, "iterations": 200}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{}/?vu={{{{vu}}}}", server.url)}, "checks": {"status": 200}},
            {"request": {"url": format!("{}/status/404", server.url)}, "checks": {"status": 200}},
            {"request": {"method": "POST", "url": format!("{}/echo", server.url), "body": "vu={{vu}} iter={{iter}}"},
             "checks": {"bodyContains": "vu=", "status": [200, 201]}}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stats = server.stats();
    assert_eq!(stats["requests"], 600);
    assert_eq!(stats["by_status"]["200"], 400);
    assert_eq!(stats["by_status"]["404"], 200);
    let m = &s["metrics"];
    assert_eq!(m["http_reqs"]["count"], 600.0);
    assert_eq!(m["iterations"]["count"], 200.0);
    assert_eq!(m["http_req_failed"]["passes"], 200, "failed requests are the rate's passes, as in k6");
    assert_eq!(m["http_req_failed"]["fails"], 400);
    assert_eq!(m["checks"]["passes"], 600);
    assert_eq!(m["checks"]["fails"], 200);
    let checks = &s["root_group"]["checks"];
    assert_eq!(checks["status is 200"]["passes"], 200);
    assert_eq!(checks["status is 200"]["fails"], 200);
    assert_eq!(checks["body contains \"vu=\""]["passes"], 200);
    assert_eq!(checks["status in [200,201]"]["passes"], 200);
    assert_eq!(checks["status is 200"]["path"], "::status is 200");
    assert_eq!(checks["status is 200"]["id"].as_str().map(str::len), Some(32));
}

#[test]
fn unreachable_target_counts_failures_and_the_test_goes_on() {
    let port = closed_port();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "per-vu-iterations", "vus": 2, "iterations": 5}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("http://127.0.0.1:{port}/"), "timeout": "2s"}, "checks": {"status": 200}}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let m = &s["metrics"];
    assert_eq!(m["iterations"]["count"], 10.0);
    assert_eq!(m["http_reqs"]["count"], 10.0);
    assert_eq!(m["http_req_failed"]["value"], 1.0);
    assert_eq!(m["checks"]["fails"], 10);
}

#[test]
fn bytes_on_the_wire_are_counted() {
    let server = Testbed::http();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 1, "iterations": 50}}},
        "flows": {"default": {"type": "http", "steps": [{"request": {"url": format!("{}/bytes/1000", server.url)}}]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let received = s["metrics"]["data_received"]["count"].as_f64().unwrap();
    let sent = s["metrics"]["data_sent"]["count"].as_f64().unwrap();
    // 50 bodies of 1000 bytes plus status lines and headers (~100 bytes each).
    assert!((50_000.0..60_000.0).contains(&received), "data_received {received}");
    // 50 request lines with Host headers, each a few dozen bytes.
    assert!((50.0 * 30.0..50.0 * 120.0).contains(&sent), "data_sent {sent}");
}

#[test]
fn json_checks_read_the_response_body() {
    let server = Testbed::http();
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 20}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{}/json", server.url)},
             "checks": {"json": {"items.1.price": 3, "nested.level.deep": "no"}}}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let checks = &s["root_group"]["checks"];
    assert_eq!(checks["json items.1.price is 3"]["passes"], 20);
    assert_eq!(checks["json nested.level.deep is \"no\""]["fails"], 20);
}

#[test]
fn https_targets_verify_certificates_unless_told_not_to() {
    let server = Testbed::https();
    let flow = |insecure: bool| {
        json!({
            "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 10}}},
            "flows": {"default": {"type": "http", "insecureSkipTLSVerify": insecure, "steps": [
                {"request": {"url": format!("{}/json", server.url)}, "checks": {"status": 200}}
            ]}}
        })
    };
    // The testbed's certificate is self-signed: verified, every request fails.
    let (out, s) = run_scenario(&flow(false), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_req_failed"]["value"], 1.0);
    assert_eq!(s["metrics"]["checks"]["fails"], 10);
    // With insecureSkipTLSVerify, as k6's option: all succeed over TLS.
    let (out, s) = run_scenario(&flow(true), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_req_failed"]["value"], 0.0);
    assert_eq!(s["metrics"]["checks"]["passes"], 10);
    assert!(s["metrics"]["http_req_tls_handshaking"]["max"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(server.stats()["by_status"]["200"], 10);
    // The same as a k6 option for every http flow of the file.
    let mut global = flow(false);
    global["flows"]["default"].as_object_mut().unwrap().remove("insecureSkipTLSVerify");
    global["options"]["insecureSkipTLSVerify"] = json!(true);
    let (out, s) = run_scenario(&global, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["checks"]["passes"], 10);
}

/// A login journey: each iteration logs in as its own user, captures the
/// token from the JSON answer and the user from a later answer, and uses
/// them in the next requests; the testbed accepts only valid tokens. A
/// capture that finds nothing fails its check and ends the iteration
/// before the request that would need it.
#[test]
fn captured_values_feed_the_later_steps_of_the_iteration() {
    let server = Testbed::http();
    let base = &server.url;
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 3, "iterations": 30}}},
        "flows": {
            "default": {"type": "http", "steps": [
                {"request": {"method": "POST", "url": format!("{base}/auth/login"),
                             "body": {"username": "user-{{vu}}-{{iter}}", "password": "x"}},
                 "capture": {"jwt": {"json": "$.access_token"}, "kind": {"json": "$.token_type"}},
                 "checks": {"status": 200}},
                {"request": {"url": format!("{base}/api/items/7"),
                             "headers": {"Authorization": "{{kind}} {{jwt}}"}},
                 "capture": {"user": {"regex": "\"user\":\"([^\"]+)\""}},
                 "checks": {"status": 200}},
                {"request": {"method": "POST", "url": format!("{base}/echo"), "body": "I am {{user}}"},
                 "checks": {"bodyContains": "I am user-"}}
            ]},
            "missing": {"type": "http", "steps": [
                {"request": {"url": format!("{base}/json")}, "capture": {"nope": {"json": "$.no.such.field"}}},
                {"request": {"url": format!("{base}/status/204?never={{nope}}")}}
            ]}
        }
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let checks = &s["root_group"]["checks"];
    let counts = [
        ("status is 200", 60),
        ("capture jwt", 30),
        ("capture kind", 30),
        ("capture user", 30),
        ("body contains \"I am user-\"", 30),
    ];
    for (name, n) in counts {
        assert_eq!(
            (checks[name]["passes"].as_u64(), checks[name]["fails"].as_u64()),
            (Some(n), Some(0)),
            "{name}: {checks}"
        );
    }
    let stats = server.stats();
    assert_eq!(stats["auth"]["authorized"], 30, "every API call carried its captured token: {stats}");

    // The flow whose capture finds nothing.
    let mut doc = doc;
    doc["options"]["scenarios"]["s"]["exec"] = json!("missing");
    doc["options"]["scenarios"]["s"]["iterations"] = json!(5);
    doc["options"]["scenarios"]["s"]["vus"] = json!(1);
    let before = server.stats()["by_status"]["204"].as_u64().unwrap_or(0);
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let checks = &s["root_group"]["checks"];
    assert_eq!(checks["capture nope"]["fails"], 5, "{checks}");
    assert_eq!(server.stats()["by_status"]["204"].as_u64().unwrap_or(0), before, "the step after it never ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("capture nope: nothing found"), "{}", describe(&out));
}

/// A request's own tags reach its series (a threshold selects them), and
/// the template functions render per request: random statuses from a list,
/// a fresh UUID each time.
#[test]
fn request_tags_and_template_functions() {
    let server = Testbed::http();
    let base = &server.url;
    let doc = json!({
        "options": {
            "scenarios": {"s": {"executor": "shared-iterations", "vus": 2, "iterations": 40}},
            "thresholds": {"http_reqs{kind:pick}": ["count==40"], "http_reqs{kind:plain}": ["count==40"]}
        },
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{base}/status/{{{{random.pick(200, 204)}}}}?id={{{{uuid}}}}&n={{{{random.int(1,9)}}}}"),
                         "tags": {"kind": "pick"}}},
            {"request": {"method": "POST", "url": format!("{base}/echo"), "body": "{{uuid}}", "tags": {"kind": "plain"}},
             "capture": {"echoed": {"regex": "^([0-9a-f-]{36})$"}}},
            {"sleep": "1ms..3ms"}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs{kind:pick}"]["count"], 40.0, "{}", s["metrics"]);
    let stats = server.stats();
    let (ok, empty) =
        (stats["by_status"]["200"].as_u64().unwrap_or(0), stats["by_status"]["204"].as_u64().unwrap_or(0));
    assert_eq!(ok + empty, 80, "{stats}");
    assert!(empty > 0 && empty < 40, "both statuses were picked: {stats}");
    assert_eq!(s["root_group"]["checks"]["capture echoed"]["passes"], 40, "a UUID each time");

    let mut bad = doc.clone();
    bad["flows"]["default"]["steps"][0]["request"]["tags"] = json!({"status": "x", "team": "a\nb"});
    bad["flows"]["default"]["steps"][2]["sleep"] = json!("3s..1s");
    let (out, _) = run_scenario(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(104), "{stderr}");
    assert!(stderr.contains("request.tags.status: \"status\" is set by Volley itself"), "{stderr}");
    assert!(stderr.contains("request.tags.team: the tag value \"a\\nb\" cannot be stored"), "{stderr}");
    assert!(stderr.contains("steps[2].sleep: \"3s..1s\": the shorter duration comes first"), "{stderr}");
}

/// Accepts connections on a loopback port, records every request head
/// (lowercased; a raw server, to see exactly which headers arrive) and
/// answers each with `answer(request line)`.
fn raw_server(
    answer: impl Fn(&str) -> String + Send + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut writer = conn;
            loop {
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                    head.push_str(&line);
                    line.clear();
                }
                if head.is_empty() {
                    break;
                }
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ").map(|n| n.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0usize);
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let reply = answer(head.lines().next().unwrap_or_default());
                seen.lock().unwrap().push(head.to_ascii_lowercase());
                let _ = writer.write_all(reply.as_bytes());
            }
        }
    });
    (url, heads)
}

/// A raw server answering 200 and setting the cookie `sid=abc`.
fn head_recorder() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    raw_server(|_| "HTTP/1.1 200 OK\r\nset-cookie: sid=abc; Path=/\r\ncontent-length: 0\r\n\r\n".to_string())
}

/// k6's `userAgent`: a default `User-Agent` on every request, replaced by
/// the option, removed by `""`, and a request's own header wins.
#[test]
fn the_user_agent_option_sets_the_default_header() {
    let (url, heads) = head_recorder();
    let run = |options: serde_json::Value, headers: serde_json::Value| {
        heads.lock().unwrap().clear();
        let mut doc = json!({
            "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 1, "iterations": 1}}},
            "flows": {"default": {"type": "http", "steps": [{"request": {"url": format!("{url}/x"), "headers": headers}}]}}
        });
        for (k, v) in options.as_object().unwrap() {
            doc["options"][k] = v.clone();
        }
        let (out, _) = run_scenario(&doc, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        heads.lock().unwrap().clone()
    };
    let ua = |heads: &[String]| heads[0].lines().find_map(|l| l.strip_prefix("user-agent: ").map(str::to_string));
    assert!(ua(&run(json!({}), json!({}))).unwrap().starts_with("volley/"));
    assert_eq!(ua(&run(json!({"userAgent": "MyAgent/1.0"}), json!({}))).as_deref(), Some("myagent/1.0"));
    assert_eq!(ua(&run(json!({"userAgent": ""}), json!({}))), None);
    assert_eq!(ua(&run(json!({"userAgent": "A"}), json!({"User-Agent": "Own/2"}))).as_deref(), Some("own/2"));
}

/// The per-VU cookie jar, as k6's: a cookie set by one response goes back
/// on the later requests of the iteration, every iteration starts empty,
/// and `cookies: false` turns it off.
#[test]
fn cookies_go_back_within_an_iteration() {
    let (url, heads) = head_recorder();
    let run = |cookies: bool| {
        heads.lock().unwrap().clear();
        let doc = json!({
            "options": {"scenarios": {"s": {"executor": "per-vu-iterations", "vus": 1, "iterations": 2}}},
            "flows": {"default": {"type": "http", "cookies": cookies, "steps": [
                {"request": {"url": format!("{url}/login")}},
                {"request": {"url": format!("{url}/cart")}}
            ]}}
        });
        let (out, _) = run_scenario(&doc, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let seen = heads.lock().unwrap().clone();
        seen.iter().map(|h| h.lines().find_map(|l| l.strip_prefix("cookie: ").map(str::to_string))).collect::<Vec<_>>()
    };
    let sid = Some("sid=abc".to_string());
    assert_eq!(run(true), vec![None, sid.clone(), None, sid]);
    assert_eq!(run(false), vec![None, None, None, None]);
}

/// Forms are URL-encoded when sent (a captured value with `&` stays one
/// field); multipart bodies carry fields and a file read at load time.
#[test]
fn forms_and_multipart_bodies_reach_the_server() {
    let server = Testbed::http();
    let dir = Scratch::new("multipart");
    let file = dir.write("upload.txt", "file contents 42");
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 1, "iterations": 3}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"method": "POST", "url": format!("{}/echo", server.url), "body": "a&b=c"},
             "capture": {"raw": {"regex": "^(.*)$"}}},
            {"request": {"method": "POST", "url": format!("{}/echo", server.url),
                         "form": {"user": "u{{vu}}", "note": "{{raw}}"}},
             "checks": {"bodyContains": "user=u1&note=a%26b%3Dc"}},
            {"request": {"method": "POST", "url": format!("{}/echo", server.url),
                         "multipart": {"title": "iter {{iter}}", "upload": format!("@{}", file.display())}},
             "checks": {"bodyContains": "filename=\"upload.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nfile contents 42\r\n"}}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["checks"]["passes"], 9, "{}", s["root_group"]["checks"]);
    assert_eq!(s["metrics"]["checks"]["fails"], 0, "{}", s["root_group"]["checks"]);

    let mut bad = doc.clone();
    bad["flows"]["default"]["steps"][1]["request"]["body"] = json!("x");
    bad["flows"]["default"]["steps"][2]["request"]["multipart"]["upload"] = json!("@/no/such/file");
    let (out, _) = run_scenario(&bad, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(104), "{stderr}");
    assert!(stderr.contains("steps[1].request.form: a request has one body: body or form"), "{stderr}");
    assert!(stderr.contains("steps[2].request.multipart.upload: cannot read \"/no/such/file\""), "{stderr}");
}

/// Redirects are followed as k6 does (each hop counted as a request, a 303
/// or a 302 after a POST becomes a GET, cookies set on the way go along),
/// up to `maxRedirects`; checks read the last answer.
#[test]
fn redirects_are_followed_up_to_max_redirects() {
    let (url, heads) = raw_server(|line| {
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let found =
            |to: &str, extra: &str| format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\n{extra}content-length: 0\r\n\r\n");
        match path {
            "/login" => found("/home", "set-cookie: sid=s1; Path=/\r\n"),
            "/loop" => found("/loop", ""),
            _ => "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nwelcome".to_string(),
        }
    });
    let doc = |max: Option<u64>, path: &str| {
        let mut doc = json!({
            "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 1, "iterations": 1}}},
            "flows": {"default": {"type": "http", "steps": [
                {"request": {"method": "POST", "url": format!("{url}{path}"), "form": {"user": "a"}},
                 "checks": {"status": 200, "bodyContains": "welcome"}}
            ]}}
        });
        if let Some(m) = max {
            doc["options"]["maxRedirects"] = json!(m);
        }
        doc
    };
    let (out, s) = run_scenario(&doc(None, "/login"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs"]["count"], 2.0, "the login and the page it sends to");
    assert_eq!(s["metrics"]["checks"]["passes"], 2, "{}", s["root_group"]["checks"]);
    let seen = heads.lock().unwrap().clone();
    assert!(seen[0].starts_with("post /login "), "{seen:?}");
    assert!(seen[1].starts_with("get /home ") && seen[1].contains("cookie: sid=s1"), "{seen:?}");
    assert!(!seen[1].contains("content-type"), "the dropped body's type is dropped too: {seen:?}");

    heads.lock().unwrap().clear();
    let (out, s) = run_scenario(&doc(Some(3), "/loop"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(s["metrics"]["http_reqs"]["count"], 4.0, "the request and 3 redirects");
    assert_eq!(s["root_group"]["checks"]["status is 200"]["fails"], 1, "the last answer is still a redirect");

    heads.lock().unwrap().clear();
    let (_, s) = run_scenario(&doc(Some(0), "/login"), &[]);
    assert_eq!(s["metrics"]["http_reqs"]["count"], 1.0, "maxRedirects 0 follows none");
}

/// A response body is read to its end and counted, but at most 16 MiB of it
/// is kept for checks and captures: a huge answer cannot grow a VU's memory.
#[test]
fn at_most_sixteen_mebibytes_of_a_body_are_kept() {
    let size = 17 << 20;
    let (url, _) = raw_server(move |_| {
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\nSTART{}END", size + 8, "a".repeat(size))
    });
    let doc = json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "vus": 1, "iterations": 1}}},
        "flows": {"default": {"type": "http", "steps": [
            {"request": {"url": format!("{url}/big")}, "checks": {"bodyContains": "START"}},
            {"request": {"url": format!("{url}/big")}, "checks": {"bodyContains": "END"}}
        ]}}
    });
    let (out, s) = run_scenario(&doc, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let checks = &s["root_group"]["checks"];
    assert_eq!(checks["body contains \"START\""]["passes"], 1, "{checks}");
    assert_eq!(checks["body contains \"END\""]["fails"], 1, "the tail past 16 MiB is not kept: {checks}");
    assert!(s["metrics"]["data_received"]["count"].as_f64().unwrap() > 2.0 * (17 << 20) as f64, "all of it is counted");
}
