//! Thresholds in k6 syntax: pass/fail criteria on metrics and sub-metrics.
//!
//! `"http_req_duration{scenario:api}": ["p(95)<300", {threshold: "p(99)<500",
//! abortOnFail: true, delayAbortEval: "10s"}]`. They are evaluated on run
//! totals built from merged windows (never on samples): at the end of the
//! test, and after every window for those with `abortOnFail`.
//!
//! The expressions, selectors and judgement live in
//! [`volley_window::threshold`], shared with the exporter, which judges the
//! same sets on a fleet's merged data; this module reads them from a
//! scenario file and judges them on this generator's own totals.

use crate::config::reader::{type_name, Obj};
use crate::summary::totals::RunTotals;
use serde_json::Value;
use std::time::Duration;
pub use volley_window::threshold::{expr, parse_key, statistic, Outcome, Threshold, ThresholdSet};

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

/// Judges a set on a generator's own run totals.
pub trait Judge {
    /// Every rule's outcome on the run totals.
    fn evaluate(&self, totals: &RunTotals) -> Vec<Outcome>;
    /// The rules whose failure at `elapsed` must stop the test.
    fn aborting_on(&self, totals: &RunTotals, elapsed: Duration) -> Vec<Outcome>;
}

impl Judge for ThresholdSet {
    fn evaluate(&self, totals: &RunTotals) -> Vec<Outcome> {
        let merged = totals.metric(&self.metric, &self.selector);
        self.judge(merged.as_ref().map(|(_, agg)| agg), totals.elapsed)
    }

    fn aborting_on(&self, totals: &RunTotals, elapsed: Duration) -> Vec<Outcome> {
        if !self.may_abort(elapsed) {
            return Vec::new();
        }
        let merged = totals.metric(&self.metric, &self.selector);
        ThresholdSet::aborting(self, merged.as_ref().map(|(_, agg)| agg), elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;
    use volley_window::{Aggregate, SeriesKey, SeriesWindow, Sketch, Tags, Unit};

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
        assert!(d.aborting_on(&totals, Duration::from_secs(1)).is_empty(), "delayAbortEval not reached");
        assert_eq!(d.aborting_on(&totals, Duration::from_secs(6)).len(), 1);
        let c = sets.iter().find(|s| s.metric == "checks").unwrap();
        assert!(c.evaluate(&totals)[0].ok);
    }
}
