//! The Grafana provisioning of `grafana/`: every file is consistent with the
//! others and with docker-compose.yml, and every InfluxQL query of the
//! dashboards (panels and template variables) and of the alert rules returns
//! data from a real run written to a real InfluxDB 1.x, after the
//! substitutions Grafana makes. No Grafana runs here (none installs on
//! Debian without Docker); the Prometheus dashboard is checked statically.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};
use volley_tests::grafana::{self, Dashboard, Macros};
use volley_tests::im::Gateway;
use volley_tests::servers::Influxd;
use volley_tests::*;

const SECRET: &str = "grafana-test-secret";
const DASHBOARDS: [&str; 4] = ["volley-generators", "volley-im", "volley-overview", "volley-overview-prom"];
/// Grafana's own macros (substituted by Grafana, not template variables).
const BUILT_INS: [&str; 6] = ["timeFilter", "__interval_ms", "__interval", "__rate_interval", "__range", "__all"];

/// uid → type of every provisioned datasource, plus Grafana's built-ins.
fn datasources() -> BTreeMap<String, String> {
    let file = grafana::read_yaml("grafana/provisioning/datasources/volley.yaml");
    let mut out: BTreeMap<String, String> = file["datasources"]
        .as_array()
        .expect("datasources list")
        .iter()
        .map(|d| (d["uid"].as_str().unwrap().to_string(), d["type"].as_str().unwrap().to_string()))
        .collect();
    out.insert("-- Grafana --".into(), "grafana".into());
    out.insert("__expr__".into(), "__expr__".into());
    out
}

/// Checks a `{type, uid}` datasource reference.
fn check_ds(place: &str, ds: &Value, known: &BTreeMap<String, String>, problems: &mut Vec<String>) {
    let uid = ds["uid"].as_str().unwrap_or("");
    match known.get(uid) {
        None => problems.push(format!("{place}: datasource uid {uid:?} is not provisioned")),
        Some(t) if ds["type"].as_str().is_some_and(|x| x != t) => {
            problems.push(format!("{place}: datasource {uid} has type {t}, not {}", ds["type"]))
        }
        _ => {}
    }
}

/// `$name` / `${name}` references in a query.
fn variables_used(q: &str) -> Vec<String> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    for i in 0..b.len() {
        if b[i] != b'$' {
            continue;
        }
        let rest = q[i + 1..].trim_start_matches('{');
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

#[test]
fn provisioning_files_agree_with_each_other_and_with_docker_compose() {
    let known = datasources();
    let mut problems = Vec::new();

    // The dashboards provider reads the directory docker-compose mounts.
    let compose = grafana::read_yaml("docker-compose.yml");
    let volumes: Vec<&str> =
        compose["services"]["grafana"]["volumes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let mount = |src: &str| volumes.iter().find_map(|v| v.strip_prefix(src)?.strip_prefix(':')?.split(':').next());
    assert_eq!(mount("./grafana/provisioning"), Some("/etc/grafana/provisioning"), "{volumes:?}");
    let provider = grafana::read_yaml("grafana/provisioning/dashboards/volley.yaml");
    let path = provider["providers"][0]["options"]["path"].as_str().expect("provider path");
    assert_eq!(mount("./grafana/dashboards"), Some(path), "provider path vs compose volumes {volumes:?}");
    // Grafana refuses to start on any other file in the alerting directory.
    for e in std::fs::read_dir(grafana::repo_root().join("grafana/provisioning/alerting")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!([".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x)), "grafana/provisioning/alerting/{name}");
    }

    let dashboards = grafana::dashboards();
    let uids: BTreeSet<&str> = dashboards.iter().map(Dashboard::uid).collect();
    assert_eq!(uids.len(), dashboards.len(), "dashboard uids must be unique");
    assert_eq!(uids, DASHBOARDS.into_iter().collect(), "dashboards");
    for d in &dashboards {
        let at = |what: &str| format!("{} ({}): {what}", d.file, d.uid());
        if d.json["schemaVersion"] != json!(39) {
            problems.push(at("schemaVersion is not 39"));
        }
        let vars: BTreeMap<&str, &Value> =
            d.variables().into_iter().map(|v| (v["name"].as_str().unwrap_or(""), v)).collect();
        for name in ["testid", "scenario"] {
            match vars.get(name) {
                Some(v) if v["type"] == "query" => {
                    check_ds(&at(&format!("${name}")), &v["datasource"], &known, &mut problems)
                }
                _ => problems.push(at(&format!("no query variable {name}"))),
            }
        }
        if vars.get("scenario").is_some_and(|s| !(s["multi"] == json!(true) && s["includeAll"] == json!(true))) {
            problems.push(at("$scenario must be multi-value with All"));
        }
        let mut ids = BTreeSet::new();
        for p in d.panels() {
            let title = p["title"].as_str().unwrap_or("");
            let place = at(&format!("panel {title:?}"));
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
                problems.push(format!("{place}: duplicate or missing id"));
            }
            if p["type"] == "row" {
                continue;
            }
            check_ds(&place, &p["datasource"], &known, &mut problems);
            let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
            if targets.is_empty() {
                problems.push(format!("{place}: no query"));
            }
            for t in targets {
                let place = format!("{place} target {}", t["refId"]);
                check_ds(&place, &t["datasource"], &known, &mut problems);
                let text = match t["datasource"]["type"].as_str() {
                    Some("influxdb") if t["rawQuery"] != json!(true) => {
                        problems.push(format!("{place}: InfluxQL targets must be raw queries (rawQuery: true)"));
                        continue;
                    }
                    Some("influxdb") => t["query"].as_str(),
                    Some("prometheus") => t["expr"].as_str(),
                    other => {
                        problems.push(format!("{place}: unexpected datasource type {other:?}"));
                        continue;
                    }
                };
                let text = text.unwrap_or("");
                if text.trim().is_empty() {
                    problems.push(format!("{place}: empty query"));
                }
                for v in variables_used(text) {
                    if !vars.contains_key(v.as_str()) && !BUILT_INS.contains(&v.as_str()) {
                        problems.push(format!("{place}: ${v} is not a variable of the dashboard"));
                    }
                }
            }
        }
    }

    // Alert rules, contact point and policy.
    let alerting = grafana::read_yaml("grafana/provisioning/alerting/volley.yaml");
    assert_eq!(alerting["apiVersion"], json!(1));
    let mut rule_uids = BTreeSet::new();
    for group in alerting["groups"].as_array().expect("alert groups") {
        for key in ["name", "folder", "interval"] {
            assert!(group[key].is_string(), "alert group without {key}: {group}");
        }
        for rule in group["rules"].as_array().expect("rules") {
            let uid = rule["uid"].as_str().expect("rule uid");
            let at = |what: String| format!("alert rule {uid}: {what}");
            if !rule_uids.insert(uid.to_string()) {
                problems.push(at("duplicate uid".into()));
            }
            if !rule["title"].is_string() || !rule["for"].is_string() {
                problems.push(at("title and for are required".into()));
            }
            if !["NoData", "Alerting", "OK"].contains(&rule["noDataState"].as_str().unwrap_or("")) {
                problems.push(at(format!("noDataState {}", rule["noDataState"])));
            }
            if !["Error", "Alerting", "OK"].contains(&rule["execErrState"].as_str().unwrap_or("")) {
                problems.push(at(format!("execErrState {}", rule["execErrState"])));
            }
            let data = rule["data"].as_array().expect("rule data");
            let refs: BTreeSet<&str> = data.iter().filter_map(|q| q["refId"].as_str()).collect();
            if !refs.contains(rule["condition"].as_str().unwrap_or("")) {
                problems.push(at(format!("condition {} is none of {refs:?}", rule["condition"])));
            }
            for q in data {
                let ds = json!({"uid": q["datasourceUid"]});
                check_ds(&at(format!("query {}", q["refId"])), &ds, &known, &mut problems);
                if q["model"]["refId"] != q["refId"] {
                    problems.push(at(format!("model refId of {}", q["refId"])));
                }
                let m = &q["model"];
                match m["type"].as_str() {
                    Some("reduce" | "threshold") => {
                        if !refs.contains(m["expression"].as_str().unwrap_or("")) {
                            problems.push(at(format!("{} reads unknown {}", q["refId"], m["expression"])));
                        }
                    }
                    Some("math") => {
                        for v in variables_used(m["expression"].as_str().unwrap_or("")) {
                            if !refs.contains(v.as_str()) {
                                problems.push(at(format!("math {} reads unknown ${v}", q["refId"])));
                            }
                        }
                    }
                    _ if q["datasourceUid"] == "volley-influxdb" => {
                        if m["rawQuery"] != json!(true) || !m["query"].is_string() {
                            problems.push(at(format!("{} must be a raw InfluxQL query", q["refId"])));
                        }
                        if !q["relativeTimeRange"]["from"].is_u64() {
                            problems.push(at(format!("{} has no relativeTimeRange", q["refId"])));
                        }
                    }
                    other => problems.push(at(format!("{}: unexpected model type {other:?}", q["refId"]))),
                }
            }
            // The linked panel exists.
            let dash = rule["dashboardUid"].as_str().and_then(|u| dashboards.iter().find(|d| d.uid() == u));
            match dash {
                Some(d) if d.panels().iter().any(|p| p["id"] == rule["panelId"]) => {}
                _ => problems.push(at(format!("dashboardUid/panelId {} {}", rule["dashboardUid"], rule["panelId"]))),
            }
        }
    }
    let receivers: Vec<&str> =
        alerting["contactPoints"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    for p in alerting["policies"].as_array().into_iter().flatten() {
        if !receivers.contains(&p["receiver"].as_str().unwrap_or("")) {
            problems.push(format!("policy receiver {} is not a contact point {receivers:?}", p["receiver"]));
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn grafana_macros_expand_as_grafanas_backend_does() {
    let m = Macros {
        from_ms: 1000,
        to_ms: 9000,
        interval_ms: 2000,
        vars: [("testid", "t1"), ("scenario", "(a|b)")].into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
    };
    assert_eq!(
        m.expand(
            "SELECT sum(\"count\") / $__interval_ms * 1000 FROM x WHERE \"testid\" = '$testid' AND \
             \"scenario\" =~ /^$scenario$/ AND $timeFilter GROUP BY time($__interval)"
        ),
        "SELECT sum(\"count\") / 2000 * 1000 FROM x WHERE \"testid\" = 't1' AND \"scenario\" =~ /^(a|b)$/ \
         AND time >= 1000ms and time <= 9000ms GROUP BY time(2s)"
    );
    assert_eq!(grafana::unexpanded("x =~ /^(a|b)$/ AND y = '$nope'").as_deref(), Some("$nope'"));
    assert_eq!(grafana::unexpanded("x =~ /^(a|b)$/"), None);
    assert_eq!(grafana::regex_alternation(&["a.b".into(), "c".into()]), "(a\\.b|c)");
    assert_eq!(grafana::regex_alternation(&["only".into()]), "only");
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A short run that writes every measurement the dashboards and the alert
/// rules read: HTTP with failures, failing checks and thresholds, an
/// arrival rate that outruns its VUs (dropped iterations), IM through a
/// gateway that duplicates, reorders and drops, a wrong secret (auth
/// failures) and a gateway that is not there (connect failures).
fn scenario(http: &str, ws: &str, down: u16) -> Value {
    json!({
        "options": {
            "scenarios": {
                "api": {"executor": "constant-arrival-rate", "rate": 100, "timeUnit": "1s", "duration": "4s",
                        "preAllocatedVUs": 2, "maxVUs": 2, "exec": "api"},
                "browse": {"executor": "constant-vus", "vus": 2, "duration": "4s", "exec": "browse"},
                "chat": {"executor": "constant-vus", "vus": 10, "duration": "4s", "exec": "chat"},
                "badauth": {"executor": "constant-vus", "vus": 2, "duration": "4s", "exec": "badauth"},
                "down": {"executor": "constant-vus", "vus": 1, "duration": "4s", "exec": "down"}
            },
            "thresholds": {
                "http_req_duration{scenario:api}": ["p(95)<300"],
                "http_req_failed": ["rate<0.01"],
                "checks": ["rate>0.99"]
            }
        },
        "flows": {
            "api": {"type": "http", "steps": [
                {"request": {"url": format!("{http}/delay/40"), "name": "delay"}, "checks": {"status": 200}}]},
            "browse": {"type": "http", "steps": [
                {"request": {"url": format!("{http}/json"), "name": "json"}, "checks": {"status": 200}},
                {"request": {"url": format!("{http}/status/500"), "name": "error"}, "checks": {"status": 200}},
                {"sleep": "100ms"}]},
            "chat": {"type": "im-e2e", "urls": [ws], "jwtSecret": SECRET, "userBase": 1000,
                     "msgInterval": "20ms", "pingInterval": "200ms", "drain": "1s"},
            "badauth": {"type": "ws-ping", "urls": [ws], "jwtSecret": "not-the-secret", "userBase": 2000},
            "down": {"type": "ws-ping", "urls": [format!("ws://127.0.0.1:{down}/ws")], "jwtSecret": SECRET,
                     "userBase": 3000}
        }
    })
}

#[test]
fn every_influxql_query_returns_data_from_a_real_run() {
    let db = Influxd::start();
    let target = Testbed::http();
    let gateway = Gateway::start(
        SECRET,
        &["--dup-pct", "5", "--reorder-pct", "5", "--drop-pct", "5", "--delay-ms", "5", "--threads", "1"],
    );
    let test_id = format!("grafana-{}", std::process::id());
    // Windows are aligned to whole seconds: the first starts before the run.
    let from_ms = now_ms() / 1000 * 1000 - 1000;
    let (run, summary) = run_scenario(
        &scenario(&target.url, &gateway.url(), closed_port()),
        &["--out", &format!("influxdb={}/volley", db.url), "--test-id", &test_id],
    );
    let to_ms = now_ms() + 1000;
    // http_req_failed and checks fail their thresholds on purpose.
    assert_eq!(run.status.code(), Some(99), "{}", describe(&run));
    for metric in ["dropped_iterations", "ws_connect_fail", "ws_auth_fail", "im_dup_total", "im_lost_total"] {
        assert!(export_count(&summary, metric) > 0, "the run produced no {metric}\n{}", describe(&run));
    }

    let query = |q: &str| db.query(q);
    let mut failures = Vec::new();
    let mut checked = 0;
    for d in grafana::dashboards() {
        if d.uid() == "volley-overview-prom" {
            continue; // no Prometheus here: checked statically above
        }
        // Template variables first, in order, as Grafana resolves them;
        // multi-value ones with All selected expand to every value.
        let mut m = Macros { from_ms, to_ms, interval_ms: 1000, vars: BTreeMap::new() };
        for v in d.variables() {
            let name = v["name"].as_str().unwrap().to_string();
            let value = match v["type"].as_str() {
                Some("query") => {
                    let q = m.expand(v["query"].as_str().unwrap_or(""));
                    let values = grafana::tag_values(&query(&q));
                    checked += 1;
                    if values.is_empty() {
                        failures.push(format!("{}: variable ${name}: no values from {q}", d.uid()));
                        continue;
                    }
                    if name == "testid" {
                        if !values.contains(&test_id) {
                            failures.push(format!("{}: $testid values {values:?} lack {test_id}", d.uid()));
                        }
                        test_id.clone()
                    } else if v["multi"] == json!(true) {
                        grafana::regex_alternation(&values)
                    } else {
                        values[0].clone()
                    }
                }
                _ => v["current"]["value"].as_str().unwrap_or("").to_string(),
            };
            m.vars.insert(name, value);
        }
        for p in d.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(raw) = t["query"].as_str() else { continue };
                let q = m.expand(raw);
                let at = format!("{} / panel {:?} / {}", d.uid(), p["title"].as_str().unwrap_or(""), t["refId"]);
                if let Some(v) = grafana::unexpanded(&q) {
                    failures.push(format!("{at}: {v} not substituted in {q}"));
                    continue;
                }
                checked += 1;
                if let Err(why) = grafana::has_values(&query(&q)) {
                    failures.push(format!("{at}: {why}\n    {q}"));
                }
            }
        }
    }

    // Alert rules: each InfluxQL query over the run instead of its relative
    // range; the rules whose outcome this run decides are evaluated
    // (reduce last → threshold) on what the queries return.
    let m = Macros { from_ms, to_ms, interval_ms: 1000, vars: BTreeMap::new() };
    let alerting = grafana::read_yaml("grafana/provisioning/alerting/volley.yaml");
    for rule in alerting["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        let uid = rule["uid"].as_str().unwrap();
        let data: BTreeMap<&str, &Value> =
            rule["data"].as_array().unwrap().iter().map(|q| (q["refId"].as_str().unwrap(), q)).collect();
        let mut answers = BTreeMap::new();
        for (ref_id, q) in &data {
            let Some(raw) = q["model"]["query"].as_str() else { continue };
            let text = m.expand(raw);
            checked += 1;
            let answer = query(&text);
            if let Err(why) = grafana::has_values(&answer) {
                failures.push(format!("alert rule {uid} / {ref_id}: {why}\n    {text}"));
            }
            answers.insert(*ref_id, answer);
        }
        let cond = data[rule["condition"].as_str().unwrap()];
        if cond["model"]["type"] != "threshold" {
            continue;
        }
        let reduce = data[cond["model"]["expression"].as_str().unwrap()];
        let Some(answer) = answers.get(reduce["model"]["expression"].as_str().unwrap()) else { continue };
        let bound = cond["model"]["conditions"][0]["evaluator"]["params"][0].as_f64().unwrap();
        let firing: Vec<String> = grafana::last_values(answer)
            .into_iter()
            .filter(|(tags, v)| tags.contains(&format!("testid={test_id}")) && *v > bound)
            .map(|(tags, v)| format!("{tags}: {v}"))
            .collect();
        println!("alert rule {uid}: firing for {firing:?}");
        let expected = match uid {
            // a quarter of the requests fail; the api scenario drops iterations
            "volley-failure-rate" | "volley-dropped-iterations" => true,
            // a 40 ms target
            "volley-p99" => false,
            _ => continue,
        };
        if firing.is_empty() == expected {
            failures.push(format!("alert rule {uid}: expected firing {expected}, got {firing:?}"));
        }
    }
    println!("{checked} InfluxQL queries run against the test's data");
    assert!(failures.is_empty(), "{} failing queries:\n{}", failures.len(), failures.join("\n"));
}
