//! Unit tests of [`super`] (rule.rs), kept apart so the module reads as one concept.

use super::*;

fn metric(text: &str) -> MetricCondition {
    match parse_expr(text).unwrap() {
        Condition::Metric(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn parses_the_documented_forms() {
    let m = metric("p(99) of http_req_duration over 5m > 300");
    assert_eq!(m.stat, Stat::Percentile(99.0));
    assert_eq!(m.metric, "http_req_duration");
    assert!(m.selector.is_empty());
    assert_eq!((m.cmp.range, m.cmp.op, m.cmp.bound), (Duration::from_secs(300), Op::Gt, 300.0));
    assert_eq!(m.cmp.lhs, "p(99) of http_req_duration over 5m");

    let m = metric("rate of http_req_failed{scenario:api, status : 500} over 1m>=0.01");
    assert_eq!(m.stat, Stat::Rate);
    assert_eq!(m.selector, Tags::from_pairs([("scenario", "api"), ("status", "500")]));
    assert_eq!((m.cmp.op, m.cmp.bound), (Op::Ge, 0.01));

    let m = metric("count  of dropped_iterations over 1m30s != 0");
    assert_eq!((m.stat, m.cmp.range, m.cmp.op), (Stat::Count, Duration::from_secs(90), Op::Ne));
    assert_eq!(metric("rate of checks over 1m < 99.5%").cmp.bound, 0.995);
    assert_eq!(metric("value of vus{scenario:a} over 10s <= 3").stat, Stat::Value);
    assert_eq!(metric("med of my_custom.trend over 10s == 1").stat, Stat::Med);
    // A tag value may hold a colon (a URL).
    let m = metric("avg of http_req_duration{url:http://x/a} over 10s > 1");
    assert_eq!(m.selector.get("url"), Some("http://x/a"));

    assert_eq!(
        parse_expr("no data from a generator for 10s").unwrap(),
        Condition::Silence { after: Duration::from_secs(10) }
    );
    match parse_expr("growth of generator rss over 10m > 10%").unwrap() {
        Condition::RssGrowth(c) => assert_eq!((c.range, c.bound), (Duration::from_secs(600), 0.1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let err = |t: &str| parse_expr(t).unwrap_err();
    assert_eq!(err("p99 of http_req_duration over 5m > 300"), "unknown statistic \"p99\"; use p(99)");
    assert!(err("p(101) of http_req_duration over 5m > 1").contains("from 0 to 100"));
    assert!(err("mean of x over 5m > 1").contains("unknown statistic \"mean\" (use p(N), avg"));
    assert!(err("p(99) of http_req_duration over 5m").contains("missing a comparison"));
    assert!(err("p(99) of http_req_duration over 5m => 1").contains("unknown comparison"));
    assert!(err("p(99) of http_req_duration over 5m > fast").contains("expected a number after \">\""));
    assert!(err("p(99) of http_req_duration over 5x > 1").contains("unknown unit \"x\""));
    assert!(err("p(99) of http_req_duration over 0s > 1").contains("longer than 0"));
    assert!(err("p(99) of http_req_duration > 1").contains("expected \"over <duration>\""));
    assert!(err("p(99) http_req_duration over 1m > 1").contains("expected \"<stat> of"));
    assert!(err("p(99) of http_req_duration{scenario over 1m > 1").contains("unclosed"));
    assert!(err("p(99) of http_req_duration{scenario} over 1m > 1").contains("without a value"));
    assert!(err("p(99) of 9lives over 1m > 1").contains("bad metric name"));
    assert_eq!(
        err("p(99) of http_reqs over 1m > 1"),
        "p(99) does not apply to http_reqs, a counter (use count or rate)"
    );
    assert!(err("value of http_req_failed over 1m > 1").contains("a rate (use rate or count)"));
    assert!(err("no data from generators for 10s").contains("no data from a generator for <duration>"));
    assert!(err("growth of generator cpu over 1m > 1%").contains("generator rss"));
    assert_eq!(err("  "), "empty expression");
}

#[test]
fn a_whole_file() {
    let rules = Rules::parse(
        r#"
webhook: http://127.0.0.1:9093/hook
evaluate: 500ms
rules:
  - name: P99High
    expr: "p(99) of http_req_duration over 5m > 300"
    for: 1m
    labels: {severity: page}
    annotations: {summary: "p99 above 300 ms: {{ $value }}"}
  - name: Silent
    expr: no data from a generator for 10s
    webhook: https://example.com/other
"#,
    )
    .unwrap();
    assert_eq!(rules.webhook.as_str(), "http://127.0.0.1:9093/hook");
    assert_eq!(rules.evaluate, Duration::from_millis(500));
    assert_eq!(rules.rules.len(), 2);
    assert_eq!(rules.rules[0].hold_for, Duration::from_secs(60));
    assert_eq!(rules.rules[0].labels["severity"], "page");
    assert_eq!(rules.rules[1].hold_for, Duration::ZERO);
    assert_eq!(rules.rules[1].webhook.as_ref().unwrap().as_str(), "https://example.com/other");
    assert_eq!(rules.longest_span(), Duration::from_secs(300));
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let errs = Rules::parse(
        r#"
webhok: http://x
rules:
  - name: P99High
    expr: "p(99) of http_req_duration over 5m > 300"
    severity: page
  - name: Failures
    expr: "p99 of http_req_failed over 1m > 0.01"
    for: soon
  - expr: "count of dropped_iterations over 1m > 0"
    labels: {alertname: x, "1bad": y}
  - name: P99High
    expr: no data from a generator for 10s
    webhook: ftp://example.com/
"#,
    )
    .unwrap_err()
    .0;
    let want = [
        "unknown field \"webhok\" (expected webhook, evaluate, external_url or rules)",
        "webhook: missing (the URL alerts are posted to)",
        "rules[0] (P99High): unknown field \"severity\" (expected name, expr, for, labels, annotations or webhook)",
        "rules[1] (Failures).expr: unknown statistic \"p99\"; use p(99)",
        "rules[1] (Failures).for: \"soon\" is not a duration",
        "rules[2].name: missing",
        "rules[2].labels.alertname: set by the engine, a rule cannot set it",
        "rules[2].labels.1bad: not a label name",
        "rules[3] (P99High).webhook: \"ftp://example.com/\" is not an http:// or https:// URL",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e.starts_with(w)), "missing {w:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");

    let dup = Rules::parse("webhook: http://x/\nrules:\n - {name: A, expr: no data from a generator for 1s}\n - {name: A, expr: no data from a generator for 2s}\n")
            .unwrap_err();
    assert_eq!(dup.0, ["rules[1] (A).name: the same name as rules[0]"]);
    assert_eq!(Rules::parse("webhook: 'not a url'\nrules: []").unwrap_err().0.len(), 2);
    assert!(Rules::parse("- a").unwrap_err().0[0].contains("expected a mapping"));
}
