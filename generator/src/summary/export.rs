//! `--summary-export`: the JSON file k6 writes with the same flag, so scripts
//! that read k6's export read Volley's.
//!
//! Shape: `{"root_group": {name, path, id, groups, checks}, "metrics": {...}}`.
//! Counters are `{count, rate}`, gauges `{value, min, max}`, rates
//! `{passes, fails, value}`, trends one key per summary statistic; times are
//! milliseconds. A metric with thresholds gets `"thresholds": {expr: failed}`
//! (`true` means the threshold failed, as in k6).

use super::stats::TrendStat;
use crate::engine::RunOutcome;
use serde_json::{json, Map, Value};
use volley_window::{Aggregate, Tags};

/// The export document for `outcome`.
pub fn to_json(outcome: &RunOutcome, stats: &[TrendStat]) -> Value {
    let totals = &outcome.totals;
    let secs = outcome.elapsed.as_secs_f64().max(1e-9);
    let mut metrics = Map::new();
    let mut keys: Vec<(String, String, Tags)> =
        totals.metric_names().into_iter().map(|m| (m.to_string(), m.to_string(), Tags::new())).collect();
    // Sub-metrics named in thresholds are exported under their selector key, as k6 does.
    for o in &outcome.thresholds {
        if !keys.iter().any(|(k, _, _)| *k == o.key) {
            if let Ok((metric, selector)) = crate::threshold::parse_key(&o.key) {
                keys.push((o.key.clone(), metric, selector));
            }
        }
    }
    for (key, metric, selector) in keys {
        let Some((_, agg)) = totals.metric(&metric, &selector) else {
            continue;
        };
        let mut entry = match &agg {
            Aggregate::Counter(c) => json!({"count": c, "rate": c / secs}),
            Aggregate::Gauge { value, min, max } => json!({"value": value, "min": min, "max": max}),
            Aggregate::Rate { passes, fails } => {
                json!({"passes": passes, "fails": fails, "value": agg.rate().unwrap_or(0.0)})
            }
            Aggregate::Trend(sk) => {
                let mut m = Map::new();
                for s in stats {
                    m.insert(s.to_string(), s.of(sk).map_or(Value::Null, Value::from));
                }
                Value::Object(m)
            }
        };
        let mine: Vec<_> = outcome.thresholds.iter().filter(|o| o.key == key).collect();
        if !mine.is_empty() {
            let t: Map<String, Value> = mine.iter().map(|o| (o.source.clone(), Value::Bool(!o.ok))).collect();
            entry["thresholds"] = Value::Object(t);
        }
        metrics.insert(key, entry);
    }
    for s in &outcome.scenarios {
        // Iteration counts per scenario, so tools can compare scenarios directly.
        let sel = Tags::from_pairs([("scenario", s.name.as_str())]);
        for metric in ["iterations", "dropped_iterations"] {
            let key = format!("{metric}{{scenario:{}}}", s.name);
            if metrics.contains_key(&key) {
                continue;
            }
            let count = totals.metric(metric, &sel).map_or(0.0, |(_, a)| match a {
                Aggregate::Counter(c) => c,
                _ => 0.0,
            });
            metrics.insert(key, json!({"count": count, "rate": count / secs}));
        }
    }

    json!({"root_group": root_group(totals), "metrics": metrics})
}

/// k6's group tree: checks by the `group` tag (`::a::b`) they were made
/// in, each group with its `name`, `path` and `id` (MD5 of the path).
fn root_group(totals: &super::totals::RunTotals) -> Value {
    let mut counts: std::collections::BTreeMap<(String, String), (u64, u64)> = Default::default();
    for (key, (_, agg)) in totals.range("checks") {
        let (Some(check), Aggregate::Rate { passes, fails }) = (key.tags.get("check"), agg) else { continue };
        let group = key.tags.get("group").unwrap_or("").to_string();
        let c = counts.entry((group, check.to_string())).or_default();
        c.0 += passes;
        c.1 += fails;
    }
    let mut root = group_node("", "");
    for ((group, name), (passes, fails)) in counts {
        let mut node = &mut root;
        let mut path = String::new();
        for part in group.split("::").filter(|p| !p.is_empty()) {
            path.push_str("::");
            path.push_str(part);
            node = node["groups"]
                .as_object_mut()
                .expect("groups is an object")
                .entry(part.to_string())
                .or_insert_with(|| group_node(part, &path));
        }
        let check_path = format!("{path}::{name}");
        node["checks"][&name] = json!({
            "name": name, "path": check_path, "id": md5_hex(check_path.as_bytes()), "passes": passes, "fails": fails
        });
    }
    root
}

fn group_node(name: &str, path: &str) -> Value {
    json!({"name": name, "path": path, "id": md5_hex(path.as_bytes()), "groups": {}, "checks": {}})
}

/// MD5 in hex: k6 identifies groups and checks by the MD5 of their path.
fn md5_hex(data: &[u8]) -> String {
    md5::compute(data).iter().map(|b| format!("{b:02x}")).collect()
}
