//! The end-of-test text summary, laid out like k6's: thresholds, totals by
//! area (checks, HTTP, execution, network, other), then one block per scenario.

use super::format::{bytes, number, time_ms};
use super::stats::TrendStat;
use crate::config::duration::format_duration;
use crate::engine::{Abort, RunOutcome, ScenarioResult};
use crate::threshold::Outcome;
use std::fmt::Write;
use volley_window::{Aggregate, Tags, Unit};

const WIDTH: usize = 44;

/// How the summary shows trends: its columns (`summaryTrendStats`) and
/// the unit of times (`summaryTimeUnit`; by size when unset).
#[derive(Clone, Debug)]
pub struct Style {
    /// The trend columns.
    pub stats: Vec<TrendStat>,
    /// One unit for every time.
    pub time_unit: Option<super::format::TimeUnit>,
}

/// Renders the summary of `outcome`.
pub fn render(outcome: &RunOutcome, style: &Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    if let Some(segment) = &outcome.segment {
        let _ = writeln!(out, "  execution: segment {segment}, VUs numbered from {}", outcome.vu_offset + 1);
    }
    scenarios_header(&mut out, &outcome.scenarios);
    dropped_advice(&mut out, outcome);
    thresholds(&mut out, &outcome.thresholds, outcome.fleet_generators);
    totals(&mut out, outcome, style);
    per_scenario(&mut out, outcome, style);
    match &outcome.aborted {
        Some(Abort::Signal) => {
            let _ = writeln!(out, "  The test was stopped by a signal after {}.", format_duration(outcome.elapsed));
        }
        Some(Abort::Threshold(why)) => {
            let _ = writeln!(out, "  The test was aborted: {why}.");
        }
        Some(Abort::Operator(why)) => {
            let _ = writeln!(out, "  The test was stopped after {}: {why}.", format_duration(outcome.elapsed));
        }
        Some(Abort::Setup(e)) => {
            let _ = writeln!(out, "  No scenario ran: {e}.");
        }
        None => {}
    }
    if !outcome.thresholds_ok() {
        let failed: Vec<String> =
            outcome.thresholds.iter().filter(|o| !o.ok).map(|o| format!("{}: {}", o.key, o.source)).collect();
        let _ = writeln!(out, "  ✗ thresholds failed: {}", failed.join(", "));
    }
    out
}

fn scenarios_header(out: &mut String, scenarios: &[ScenarioResult]) {
    let max_vus: u64 = scenarios.iter().map(|s| s.vus_allocated).sum();
    let _ = writeln!(
        out,
        "  scenarios: ({}) {} scenario{}, {max_vus} VUs allocated",
        if scenarios.len() == 1 { "1" } else { "*" },
        scenarios.len(),
        if scenarios.len() == 1 { "" } else { "s" }
    );
    for s in scenarios {
        let _ = writeln!(
            out,
            "           * {}: {} (executor: {}, exec: {}, startTime: {}, gracefulStop: {})",
            s.name,
            s.description,
            s.executor,
            s.exec,
            format_duration(s.start_time),
            format_duration(s.graceful_stop)
        );
    }
    let _ = writeln!(out);
}

/// "s: 245 iterations dropped; median iteration 102 ms at 100/s needs ≈ 11
/// VUs — set preAllocatedVUs ≥ 12": the sizing k6's docs ask users to do by hand.
fn dropped_advice(out: &mut String, outcome: &RunOutcome) {
    for s in outcome.scenarios.iter().filter(|s| s.dropped > 0) {
        let selector = Tags::from_pairs([("scenario", s.name.as_str())]);
        let median = outcome.totals.metric("iteration_duration", &selector).and_then(|(_, a)| match a {
            Aggregate::Trend(sk) => sk.quantile(0.5),
            _ => None,
        });
        let line = match (median, s.rate_per_sec) {
            (Some(med_ms), Some(rate)) => {
                let needed = (med_ms / 1000.0 * rate).ceil().max(1.0);
                let advice = (needed * 1.1).ceil().max(needed + 1.0);
                if (needed as u64) < s.vus_allocated {
                    // Enough VUs on average: the drops came from starts bunched
                    // up behind a late generator, which the start lag shows.
                    let lag = outcome.totals.metric("iteration_start_lag", &selector).and_then(|(_, a)| match a {
                        Aggregate::Trend(sk) => sk.quantile(0.99).zip(sk.max()),
                        _ => None,
                    });
                    let lag = lag
                        .map(|(p99, max)| format!(" (start lag p99 {}, max {})", time_ms(p99), time_ms(max)))
                        .unwrap_or_default();
                    format!(
                        "  ⚠ {}: {} iterations dropped although ≈ {} of its {} VUs suffice at the median iteration ({}): starts were bunched up behind a busy generator{} — give the generator more CPU or more VUs to absorb bursts",
                        s.name, s.dropped, needed, s.vus_allocated, time_ms(med_ms), lag
                    )
                } else {
                    format!(
                        "  ⚠ {}: {} iterations dropped; median iteration {} at {}/s needs ≈ {} VUs — set preAllocatedVUs ≥ {} (or raise maxVUs)",
                        s.name,
                        s.dropped,
                        time_ms(med_ms),
                        number((rate * 100.0).round() / 100.0),
                        needed,
                        advice
                    )
                }
            }
            _ => format!(
                "  ⚠ {}: {} iterations dropped: no VU was free when they were due (raise preAllocatedVUs or maxVUs)",
                s.name, s.dropped
            ),
        };
        let _ = writeln!(out, "{line}\n");
    }
}

fn thresholds(out: &mut String, outcomes: &[Outcome], fleet: Option<u32>) {
    if outcomes.is_empty() {
        return;
    }
    match fleet {
        Some(n) => {
            let _ = writeln!(
                out,
                "  █ THRESHOLDS (judged by the exporter on the merged data of {n} generator{})\n",
                if n == 1 { "" } else { "s" }
            );
        }
        None => {
            let _ = writeln!(out, "  █ THRESHOLDS\n");
        }
    }
    let mut last_key = "";
    for o in outcomes {
        if o.key != last_key {
            let _ = writeln!(out, "    {}", o.key);
            last_key = &o.key;
        }
        let mark = if o.ok { "✓" } else { "✗" };
        let observed = match o.observed {
            Some(v) => {
                let stat = o.source.split(['<', '>', '=', '!']).next().unwrap_or("").trim();
                let unit_is_time = o.key.starts_with("http_req_") && !o.key.starts_with("http_req_failed")
                    || o.key.starts_with("iteration_duration")
                    || o.key.starts_with("iteration_start_lag");
                let shown =
                    if unit_is_time && !matches!(stat, "count" | "rate") { time_ms(v) } else { number(round4(v)) };
                format!(" {stat}={shown}")
            }
            None => " (no data)".into(),
        };
        let _ = writeln!(out, "    {mark} '{}'{observed}", o.source);
    }
    let _ = writeln!(out);
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn totals(out: &mut String, outcome: &RunOutcome, stats: &Style) {
    let _ = writeln!(out, "  █ TOTAL RESULTS\n");
    let t = &outcome.totals;
    if let Some((_, Aggregate::Rate { passes, fails })) = t.metric("checks", &Tags::new()) {
        let total = passes + fails;
        let secs = outcome.elapsed.as_secs_f64().max(1e-9);
        line(out, "checks_total", &format!("{total:<8} {}/s", number((total as f64 / secs * 100.0).round() / 100.0)));
        line(out, "checks_succeeded", &percent(passes, total));
        line(out, "checks_failed", &percent(fails, total));
        let _ = writeln!(out);
        check_lines(out, t);
    }
    let groups: [(&str, &[&str]); 6] = [
        (
            "HTTP",
            &[
                "http_req_connecting",
                "http_req_duration",
                "http_req_failed",
                "http_req_tls_handshaking",
                "http_req_waiting",
                "http_reqs",
            ],
        ),
        (
            "EXECUTION",
            &[
                "dropped_iterations",
                "group_duration",
                "iteration_duration",
                "iteration_start_lag",
                "iterations",
                "vus",
                "vus_max",
            ],
        ),
        ("WEBSOCKET", &["ws_auth_fail", "ws_auth_ok", "ws_connect_fail", "ws_connect_ok", "ws_pong_rtt_ms"]),
        (
            "IM",
            &[
                "im_dup_total",
                "im_e2e_latency_ms",
                "im_lost_total",
                "im_recv_unique_total",
                "im_reorder_total",
                "im_sent_total",
            ],
        ),
        ("TOKEN", &["token_refresh_fail", "token_refresh_ok", "token_unavailable", "token_wait"]),
        ("NETWORK", &["data_received", "data_sent"]),
    ];
    for (title, metrics) in groups {
        let present: Vec<&&str> = metrics
            .iter()
            .filter(|m| t.metric(m, &Tags::new()).is_some_and(|(_, a)| !is_zero_counter(&a, m)))
            .collect();
        if present.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    {title}");
        for m in present {
            if let Some((unit, agg)) = t.metric(m, &Tags::new()) {
                line(out, m, &value(&agg, unit, stats, outcome));
                if *m == "http_req_duration" {
                    if let Some((unit, agg)) = t.metric(m, &Tags::from_pairs([("expected_response", "true")])) {
                        line(out, "  { expected_response:true }", &value(&agg, unit, stats, outcome));
                    }
                }
            }
        }
        let _ = writeln!(out);
    }
    // Metrics the scenario file defined (`metric:` steps), as k6's CUSTOM.
    let listed: Vec<&str> = groups.iter().flat_map(|(_, m)| m.iter().copied()).chain(["checks", "threshold"]).collect();
    let custom: Vec<&str> = t.metric_names().into_iter().filter(|m| !listed.contains(m)).collect();
    if !custom.is_empty() {
        let _ = writeln!(out, "    CUSTOM");
        for m in custom {
            if let Some((unit, agg)) = t.metric(m, &Tags::new()) {
                line(out, m, &value(&agg, unit, stats, outcome));
            }
        }
        let _ = writeln!(out);
    }
}

/// One line per check: those outside any group first, then each group's
/// under its name (`█ login`, `█ login › form` when nested).
fn check_lines(out: &mut String, t: &crate::summary::totals::RunTotals) {
    let mut by_group: std::collections::BTreeMap<String, Vec<(String, u64, u64)>> = Default::default();
    for (key, (_, agg)) in t.range("checks") {
        let (Some(name), Aggregate::Rate { passes, fails }) = (key.tags.get("check"), agg) else { continue };
        let group = key.tags.get("group").unwrap_or("").to_string();
        let list = by_group.entry(group).or_default();
        match list.iter_mut().find(|(n, _, _)| n == name) {
            Some(c) => {
                c.1 += passes;
                c.2 += fails;
            }
            None => list.push((name.to_string(), *passes, *fails)),
        }
    }
    for (group, mut checks) in by_group {
        let indent = if group.is_empty() {
            "    "
        } else {
            let _ = writeln!(
                out,
                "    █ {}
",
                group.trim_start_matches("::").replace("::", " › ")
            );
            "      "
        };
        checks.sort();
        for (name, passes, fails) in checks {
            if fails == 0 {
                let _ = writeln!(out, "{indent}✓ {name}");
            } else {
                let _ = writeln!(
                    out,
                    "{indent}✗ {name}\n{indent}  ↳  {}% — ✓ {passes} / ✗ {fails}",
                    number(round4(passes as f64 * 100.0 / (passes + fails) as f64))
                );
            }
        }
        let _ = writeln!(out);
    }
}

fn is_zero_counter(agg: &Aggregate, metric: &str) -> bool {
    // dropped_iterations is only worth a line when something was dropped.
    metric == "dropped_iterations" && matches!(agg, Aggregate::Counter(c) if *c == 0.0)
}

fn per_scenario(out: &mut String, outcome: &RunOutcome, stats: &Style) {
    if outcome.scenarios.len() < 2 {
        return;
    }
    for s in &outcome.scenarios {
        let _ = writeln!(out, "  █ SCENARIO: {}\n", s.name);
        let sel = Tags::from_pairs([("scenario", s.name.as_str())]);
        let interrupted = if s.interrupted > 0 { format!(", {} interrupted", s.interrupted) } else { String::new() };
        let dropped = if s.dropped > 0 { format!(", {} dropped", s.dropped) } else { String::new() };
        line(out, "iterations", &format!("{}{interrupted}{dropped}", s.completed));
        for m in ["iteration_duration", "http_req_duration", "http_req_failed", "checks"] {
            if let Some((unit, agg)) = outcome.totals.metric(m, &sel) {
                line(out, m, &value(&agg, unit, stats, outcome));
            }
        }
        let _ = writeln!(out);
    }
}

fn line(out: &mut String, name: &str, value: &str) {
    let dots = WIDTH.saturating_sub(name.chars().count() + 4);
    let _ = writeln!(out, "    {name}{}: {value}", ".".repeat(dots.max(1)));
}

fn percent(part: u64, total: u64) -> String {
    let p = if total == 0 { 0.0 } else { part as f64 * 100.0 / total as f64 };
    format!("{p:.2}% {part} out of {total}")
}

fn value(agg: &Aggregate, unit: Unit, style: &Style, outcome: &RunOutcome) -> String {
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    match agg {
        Aggregate::Counter(c) => match unit {
            Unit::Data => format!("{:<8} {}/s", bytes(*c), bytes(c / secs)),
            _ => format!("{:<8} {}/s", number(*c), number((c / secs * 1000.0).round() / 1000.0)),
        },
        Aggregate::Gauge { value, min, max } => {
            format!("{:<8} min={} max={}", number(*value), number(*min), number(*max))
        }
        Aggregate::Rate { passes, fails } => percent(*passes, passes + fails),
        Aggregate::Trend(sk) => style
            .stats
            .iter()
            .map(|s| {
                let v = s.of(sk);
                let shown = match (v, unit, s) {
                    (None, _, _) => "-".into(),
                    (Some(v), _, TrendStat::Count) => number(v),
                    (Some(v), Unit::Time, _) => style.time_unit.map_or_else(|| time_ms(v), |u| u.show(v)),
                    (Some(v), Unit::Data, _) => bytes(v),
                    (Some(v), Unit::None, _) => number(round4(v)),
                };
                format!("{s}={shown}")
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}
