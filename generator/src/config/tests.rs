//! Scenario-file validation: every problem reported with its field path.

use super::*;

fn errors(doc: serde_json::Value) -> String {
    match load(&doc, &Overrides::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_valid_file_becomes_a_plan() {
    let doc = serde_json::json!({
        "options": {
            "scenarios": {
                "a": {"executor": "constant-arrival-rate", "rate": 10, "timeUnit": "1m", "duration": "1m", "preAllocatedVUs": 2},
                "b": {"executor": "ramping-vus", "stages": [{"duration": "10s", "target": 5}], "startTime": "5s", "exec": "api"}
            },
            "thresholds": {"http_req_duration{scenario:b}": ["p(95)<300"]},
            "summaryTrendStats": ["avg", "p(99)"],
            "tags": {"team": "core"}
        },
        "flows": {
            "default": {"type": "noop"},
            "api": {"type": "http", "steps": [{"request": {"url": "http://127.0.0.1:1/x"}, "checks": {"status": 200}}]}
        }
    });
    let plan = load(&doc, &Overrides::default()).unwrap();
    assert_eq!(plan.scenarios.len(), 2);
    assert_eq!(plan.scenarios[1].base.start_time, Duration::from_secs(5));
    assert_eq!(plan.thresholds[0].selector.get("scenario"), Some("b"));
    assert_eq!(plan.tags.get("team"), Some("core"));
    match &plan.scenarios[0].executor {
        ExecutorConfig::ConstantArrivalRate(c) => {
            assert_eq!((c.rate, c.pre_allocated_vus, c.max_vus), (10, 2, 2));
            assert_eq!(c.time_unit, Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reports_every_problem_at_once() {
    let e = errors(serde_json::json!({
        "options": {"scenarios": {
            "a": {"executor": "constant-arival-rate", "rate": 1},
            "b": {"executor": "constant-vus", "vus": 0, "duration": "10x"},
            "c": {"executor": "ramping-arrival-rate", "stages": [], "preAllocatedVUs": 1, "bogus": true},
            "d": {"executor": "shared-iterations", "vus": 10, "iterations": 5}
        }},
        "flows": {"default": {"type": "noop"}}
    }));
    assert!(e.contains("options.scenarios.a.executor: unknown executor \"constant-arival-rate\" (did you mean \"constant-arrival-rate\"?)"), "{e}");
    assert!(e.contains("options.scenarios.b.vus: must be at least 1, found 0"), "{e}");
    assert!(e.contains("options.scenarios.b.duration: \"10x\" has an unknown unit \"x\""), "{e}");
    assert!(e.contains("options.scenarios.c.stages: must list at least one"), "{e}");
    assert!(e.contains("options.scenarios.c.bogus: unknown field"), "{e}");
    assert!(e.contains("options.scenarios.d.vus: must not be more than iterations (10 > 5)"), "{e}");
}

#[test]
fn cross_checks_flows_env_and_thresholds() {
    let e = errors(serde_json::json!({
        "options": {
            "scenarios": {"a": {"executor": "constant-vus", "duration": "1s", "exec": "missing"},
                          "b": {"executor": "constant-vus", "duration": "1s", "exec": "api"}},
            "thresholds": {"http_req_durations": ["p(95)<1"], "checks": ["rate>>1"]}
        },
        "flows": {"api": {"type": "http", "steps": [{"request": {"url": "{{env.NOPE_NOT_SET}}/x"}}]}}
    }));
    assert!(e.contains("options.scenarios.a.exec: flow \"missing\" is not defined in flows (defined: api)"), "{e}");
    assert!(e.contains("options.scenarios.b: flow \"api\" uses {{env.NOPE_NOT_SET}}, which is not set"), "{e}");
    assert!(e.contains("options.thresholds.http_req_durations: no metric named \"http_req_durations\" (did you mean \"http_req_duration\"?)"), "{e}");
    assert!(e.contains("options.thresholds.checks[0]: \"rate>>1\": \">1\" is not a number"), "{e}");
}

#[test]
fn cli_overrides_replace_scenarios() {
    let doc = serde_json::json!({
        "options": {"scenarios": {"a": {"executor": "constant-vus", "duration": "1s"}}},
        "flows": {"default": {"type": "noop"}}
    });
    let o = Overrides { vus: Some(7), duration: Some(Duration::from_secs(3)), ..Overrides::default() };
    let plan = load(&doc, &o).unwrap();
    assert_eq!(plan.scenarios.len(), 1);
    assert_eq!(plan.scenarios[0].name, "default");
    assert!(
        matches!(&plan.scenarios[0].executor, ExecutorConfig::ConstantVus(c) if c.vus == 7 && c.duration == Duration::from_secs(3))
    );
}

/// The docker-compose stack's scenario loads with the environment the
/// compose file gives its generator.
#[test]
fn the_stack_scenario_is_valid() {
    let text = include_str!("../../../deploy/stack.yaml");
    let doc = parse_document(text, Path::new("stack.yaml")).unwrap();
    let env = [
        ("BASE_URL", "http://testbed-http:8080"),
        ("IM_URL_A", "ws://im-a:9001/ws"),
        ("IM_URL_B", "ws://im-b:9001/ws"),
        ("IM_SECRET", "s"),
        ("REDIS_URL", "redis://redis:6379"),
        ("IM_USER_BASE", "1000000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let o = Overrides { env, ..Overrides::default() };
    let plan = load(&doc, &o).unwrap_or_else(|e| panic!("deploy/stack.yaml: {e}"));
    assert_eq!(plan.scenarios.len(), 3);
    assert_eq!(plan.token_managers, vec!["auth".to_string()]);
    match plan.flows.get("chat").map(|f| &**f) {
        Some(crate::flow::FlowDef::Ws(w)) => assert_eq!(w.config.user_base, 1_000_000),
        _ => panic!("the chat flow is an IM flow"),
    }
}

#[test]
fn user_base_from_the_environment_must_be_set_and_a_number() {
    let doc = |base: &str| {
        serde_json::json!({
            "options": {"scenarios": {"c": {"executor": "constant-vus", "vus": 2, "duration": "1s", "exec": "chat"}}},
            "flows": {"chat": {"type": "im-e2e", "urls": ["ws://127.0.0.1:1/ws"], "jwtSecret": "s", "userBase": base}}
        })
    };
    let with = |pairs: &[(&str, &str)]| Overrides {
        env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        system_env: false,
        ..Overrides::default()
    };
    let err = |base: &str, o: &Overrides| load(&doc(base), o).expect_err("an error").to_string();
    assert!(err("{{env.BASE}}", &with(&[]))
        .contains("flows.chat.userBase: uses {{env.BASE}}, which is not set (pass -e BASE=NUMBER)"));
    assert!(err("{{env.BASE}}", &with(&[("BASE", "ten")]))
        .contains("flows.chat.userBase: {{env.BASE}} is \"ten\", not a whole number"));
    assert!(
        err("ten", &with(&[])).contains("flows.chat.userBase: must be a whole number or \"{{env.NAME}}\", not \"ten\"")
    );
    let plan = load(&doc("{{ env.BASE }}"), &with(&[("BASE", "5000")])).unwrap();
    match plan.flows.get("chat").map(|f| &**f) {
        Some(crate::flow::FlowDef::Ws(w)) => assert_eq!(w.config.user_base, 5000),
        _ => panic!("the chat flow is an IM flow"),
    }
}

#[test]
fn a_vu_count_beyond_the_machine_is_refused_with_its_estimate() {
    let e = errors(serde_json::json!({
        "options": {"vus": 1_000_000_000u64, "duration": "10s"},
        "flows": {"default": {"type": "noop"}}
    }));
    assert!(e.contains("options.scenarios.default: 1000000000 VUs need an estimated 1907.3 GiB of memory"), "{e}");
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = "[".repeat(100_000);
    let e = parse_document(&deep, Path::new("s.yaml")).unwrap_err();
    assert_eq!(e, "line 1: nested deeper than 64 levels of [ and {");
    let fine = format!("{}{}", "[".repeat(60), "]".repeat(60));
    assert!(parse_document(&fine, Path::new("s.json")).is_ok());
}

#[test]
fn the_setup_flow_is_http_and_no_scenario_runs_it() {
    let e = errors(serde_json::json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "iterations": 1, "exec": "setup"}}},
        "flows": {"setup": {"type": "noop"}}
    }));
    assert!(e.contains("flows.setup: the setup flow must be of type http"), "{e}");
    let e = errors(serde_json::json!({
        "options": {"scenarios": {"s": {"executor": "shared-iterations", "iterations": 1, "exec": "setup"}}},
        "flows": {"setup": {"type": "http", "steps": [{"request": {"url": "http://127.0.0.1:1/"}, "capture": {"t": {"json": "$.t"}}}]},
                  "default": {"type": "http", "steps": [{"request": {"url": "http://127.0.0.1:1/{{setup.t}}/{{setup.u}}"}}]}}
    }));
    assert!(e.contains("options.scenarios.s.exec: the flow \"setup\" runs once before the scenarios"), "{e}");
    assert!(e.contains("unknown placeholder {{setup.u}}"), "only what the setup captures: {e}");
    assert!(e.contains("{{now.ms}}, {{setup.t}})"), "the known list names it: {e}");
}
