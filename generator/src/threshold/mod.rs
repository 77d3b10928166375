//! Thresholds in k6 syntax: pass/fail criteria on metrics and sub-metrics.
//!
//! `"http_req_duration{scenario:api}": ["p(95)<300", {threshold: "p(99)<500",
//! abortOnFail: true, delayAbortEval: "10s"}]`. They are evaluated on run
//! totals built from merged windows (never on samples): at the end of the
//! test, and after every window for those with `abortOnFail`.
//!
//! # Layout
//! - [`expr`]: one expression (`p(95)<300`).
//! - this file: the per-metric sets, selectors and evaluation.

pub mod expr;

use crate::config::reader::{type_name, Obj};
use crate::summary::totals::RunTotals;
use expr::{Agg, Expr};
use serde_json::Value;
use std::time::Duration;
use volley_window::{Aggregate, Tags};

/// One threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The expression as written (k6 reports it verbatim).
    pub source: String,
    /// The parsed expression.
    pub expr: Expr,
    /// Stop the whole test as soon as it fails.
    pub abort_on_fail: bool,
    /// Do not abort before this much test time has passed.
    pub delay_abort_eval: Duration,
}

/// The thresholds of one metric or sub-metric.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdSet {
    /// The key as written, e.g. `http_req_duration{scenario:api}`.
    pub source: String,
    /// Metric name.
    pub metric: String,
    /// Sub-metric tag selector (empty for the whole metric).
    pub selector: Tags,
    /// The thresholds.
    pub rules: Vec<Threshold>,
}

/// The outcome of one threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The set's key.
    pub key: String,
    /// The expression as written.
    pub source: String,
    /// True when it holds (or the metric has no data yet).
    pub ok: bool,
    /// The observed statistic, `None` without data.
    pub observed: Option<f64>,
}

/// Reads `options.thresholds`.
pub fn parse_all(obj: Obj) -> Vec<ThresholdSet> {
    let mut sets = Vec::new();
    for (key, value) in obj.entries() {
        let path = obj.path_of(key);
        let (metric, selector) = match parse_key(key) {
            Ok(parts) => parts,
            Err(e) => {
                obj.report.error(path, e);
                continue;
            }
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            one @ (Value::String(_) | Value::Object(_)) => vec![one],
            other => {
                obj.report.error(path, format!("must be a list of threshold expressions, found {}", type_name(other)));
                continue;
            }
        };
        let mut rules = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            if let Some(rule) = parse_rule(item, &item_path, &obj) {
                rules.push(rule);
            }
        }
        sets.push(ThresholdSet { source: key.clone(), metric, selector, rules });
    }
    sets
}

fn parse_rule(item: &Value, path: &str, parent: &Obj) -> Option<Threshold> {
    let (source, abort_on_fail, delay) = match item {
        Value::String(s) => (s.clone(), false, Duration::ZERO),
        Value::Object(_) => {
            let o = Obj::new(item, path, parent.report)?;
            let source = o.require("threshold").and(o.string("threshold"));
            let abort = o.boolean("abortOnFail").unwrap_or(false);
            let delay = o.duration("delayAbortEval").unwrap_or_default();
            o.finish_with(&["threshold", "abortOnFail", "delayAbortEval"]);
            (source?, abort, delay)
        }
        other => {
            parent.report.error(
                path,
                format!(
                    "must be an expression string or {{threshold, abortOnFail, delayAbortEval}}, found {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    match expr::parse(&source) {
        Ok(expr) => Some(Threshold { source, expr, abort_on_fail, delay_abort_eval: delay }),
        Err(e) => {
            parent.report.error(path, e);
            None
        }
    }
}

/// Splits `metric{tag:value,tag2:value2}` into the name and the selector.
pub fn parse_key(key: &str) -> Result<(String, Tags), String> {
    let key = key.trim();
    let Some(open) = key.find('{') else {
        return valid_name(key).map(|n| (n, Tags::new()));
    };
    let name = valid_name(&key[..open])?;
    let inner =
        key[open + 1..].strip_suffix('}').ok_or_else(|| format!("{key:?}: the tag selector must end with '}}'"))?;
    let mut tags = Tags::new();
    for pair in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            pair.split_once(':').ok_or_else(|| format!("{key:?}: selector part {pair:?} must be tag:value"))?;
        let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        let (k, v) = (unquote(k), unquote(v));
        if k.is_empty() {
            return Err(format!("{key:?}: selector part {pair:?} has an empty tag name"));
        }
        tags.insert(k, v);
    }
    if tags.is_empty() {
        return Err(format!("{key:?}: the tag selector is empty"));
    }
    Ok((name, tags))
}

fn valid_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{name:?} is not a metric name"));
    }
    Ok(name.to_string())
}

impl ThresholdSet {
    /// Evaluates every rule on the run totals.
    pub fn evaluate(&self, totals: &RunTotals) -> Vec<Outcome> {
        let merged = totals.metric(&self.metric, &self.selector);
        self.rules
            .iter()
            .map(|rule| {
                let observed = merged.as_ref().and_then(|(_, agg)| statistic(agg, rule.expr.agg, totals.elapsed));
                let ok = observed.is_none_or(|v| rule.expr.op.holds(v, rule.expr.bound));
                Outcome { key: self.source.clone(), source: rule.source.clone(), ok, observed }
            })
            .collect()
    }

    /// The rules whose failure at `elapsed` must stop the test.
    pub fn aborting(&self, totals: &RunTotals, elapsed: Duration) -> Vec<Outcome> {
        if !self.rules.iter().any(|r| r.abort_on_fail && elapsed >= r.delay_abort_eval) {
            return Vec::new();
        }
        self.evaluate(totals)
            .into_iter()
            .zip(&self.rules)
            .filter(|(o, r)| !o.ok && r.abort_on_fail && elapsed >= r.delay_abort_eval)
            .map(|(o, _)| o)
            .collect()
    }
}

/// The statistic `agg` of a merged aggregate; `None` when it has no data or
/// the aggregation does not apply.
pub fn statistic(agg: &Aggregate, which: Agg, elapsed: Duration) -> Option<f64> {
    match (agg, which) {
        (Aggregate::Counter(c), Agg::Count) => Some(*c),
        (Aggregate::Counter(c), Agg::Rate) => Some(if elapsed.is_zero() { 0.0 } else { c / elapsed.as_secs_f64() }),
        (Aggregate::Gauge { value, .. }, Agg::Value) => Some(*value),
        (r @ Aggregate::Rate { .. }, Agg::Rate) => r.rate(),
        (Aggregate::Trend(s), Agg::Avg) => s.mean(),
        (Aggregate::Trend(s), Agg::Min) => s.min(),
        (Aggregate::Trend(s), Agg::Max) => s.max(),
        (Aggregate::Trend(s), Agg::Med) => s.quantile(0.5),
        (Aggregate::Trend(s), Agg::Percentile(p)) => s.quantile(p / 100.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;
    use volley_window::{SeriesKey, SeriesWindow, Sketch, Unit};

    #[test]
    fn parses_selectors() {
        let (m, t) = parse_key("http_req_duration{scenario:api, status:200}").unwrap();
        assert_eq!(m, "http_req_duration");
        assert_eq!(t, Tags::from_pairs([("scenario", "api"), ("status", "200")]));
        assert!(parse_key("http_req_duration{scenario}").unwrap_err().contains("must be tag:value"));
        assert!(parse_key("http req").unwrap_err().contains("not a metric name"));
        assert!(parse_key("x{a:b").unwrap_err().contains("must end with"));
    }

    #[test]
    fn evaluates_on_sub_metrics() {
        let doc = serde_json::json!({
            "http_req_duration{scenario:a}": ["p(95)<50", {"threshold": "max<10", "abortOnFail": true, "delayAbortEval": "5s"}],
            "checks": ["rate>0.9"]
        });
        let report = Report::default();
        let sets = parse_all(Obj::new(&doc, "options.thresholds", &report).unwrap());
        assert!(report.is_clean());
        let mut a = Sketch::new();
        let mut b = Sketch::new();
        for v in 1..=40 {
            a.add(v as f64);
            b.add(1000.0);
        }
        let series = |metric: &str, scenario: &str, value: Aggregate| SeriesWindow {
            key: SeriesKey::new(metric, Tags::from_pairs([("scenario", scenario)])),
            unit: Unit::Time,
            value,
        };
        let mut totals = RunTotals::default();
        totals.add_window(&[
            series("http_req_duration", "a", Aggregate::Trend(a)),
            series("http_req_duration", "b", Aggregate::Trend(b)),
            series("checks", "a", Aggregate::Rate { passes: 95, fails: 5 }),
        ]);
        let d = &sets.iter().find(|s| s.metric == "http_req_duration").unwrap();
        let outcomes = d.evaluate(&totals);
        assert!(outcomes[0].ok, "{outcomes:?}");
        assert!(!outcomes[1].ok);
        assert_eq!(outcomes[1].observed, Some(40.0));
        assert!(d.aborting(&totals, Duration::from_secs(1)).is_empty(), "delayAbortEval not reached");
        assert_eq!(d.aborting(&totals, Duration::from_secs(6)).len(), 1);
        let c = sets.iter().find(|s| s.metric == "checks").unwrap();
        assert!(c.evaluate(&totals)[0].ok);
    }
}
