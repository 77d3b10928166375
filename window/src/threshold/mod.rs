//! Thresholds in k6 syntax: pass/fail criteria on metrics and sub-metrics.
//!
//! `"http_req_duration{scenario:api}": ["p(95)<300", {threshold: "p(99)<500",
//! abortOnFail: true, delayAbortEval: "10s"}]`. They are judged on merged
//! aggregates (never on samples), which is why the same code serves a
//! generator judging its own run and the exporter judging a whole fleet:
//! both hand it the merge of every series the threshold selects.
//!
//! # Layout
//! - [`expr`]: one expression (`p(95)<300`).
//! - this file: the per-metric sets, selectors, judgement, and the plain
//!   form in which a generator hands its thresholds to the exporter.

pub mod expr;

use crate::{Aggregate, SeriesKey, Tags};
use expr::{Agg, Expr};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A threshold set as text, the way a generator sends it to the exporter:
/// the exporter parses it again with the same parser, so a message can
/// never carry an expression the configuration would have refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSpec {
    /// The key as written.
    pub key: String,
    /// Its rules.
    pub rules: Vec<RuleSpec>,
}

/// One threshold as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// The expression as written.
    pub source: String,
    /// `abortOnFail`.
    pub abort_on_fail: bool,
    /// `delayAbortEval` in milliseconds.
    pub delay_abort_eval_ms: u64,
}

impl ThresholdSet {
    /// The plain form, for the wire.
    pub fn to_spec(&self) -> SetSpec {
        SetSpec {
            key: self.source.clone(),
            rules: self
                .rules
                .iter()
                .map(|r| RuleSpec {
                    source: r.source.clone(),
                    abort_on_fail: r.abort_on_fail,
                    delay_abort_eval_ms: r.delay_abort_eval.as_millis() as u64,
                })
                .collect(),
        }
    }

    /// Parses the plain form; the error names the key or expression.
    pub fn from_spec(spec: &SetSpec) -> Result<ThresholdSet, String> {
        let (metric, selector) = parse_key(&spec.key)?;
        let rules = spec
            .rules
            .iter()
            .map(|r| {
                Ok(Threshold {
                    source: r.source.clone(),
                    expr: expr::parse(&r.source)?,
                    abort_on_fail: r.abort_on_fail,
                    delay_abort_eval: Duration::from_millis(r.delay_abort_eval_ms),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ThresholdSet { source: spec.key.clone(), metric, selector, rules })
    }

    /// True when the series `key` belongs to this (sub-)metric.
    pub fn selects(&self, key: &SeriesKey) -> bool {
        key.metric == self.metric && key.tags.contains_all(&self.selector)
    }

    /// Judges every rule on `merged`, the merge of every series the set
    /// selects (`None` without data), over `elapsed` of test time.
    pub fn judge(&self, merged: Option<&Aggregate>, elapsed: Duration) -> Vec<Outcome> {
        self.rules
            .iter()
            .map(|rule| {
                let observed = merged.and_then(|agg| statistic(agg, rule.expr.agg, elapsed));
                let ok = observed.is_none_or(|v| rule.expr.op.holds(v, rule.expr.bound));
                Outcome { key: self.source.clone(), source: rule.source.clone(), ok, observed }
            })
            .collect()
    }

    /// True when some rule may abort the test at `elapsed` (so judging is
    /// worth its cost).
    pub fn may_abort(&self, elapsed: Duration) -> bool {
        self.rules.iter().any(|r| r.abort_on_fail && elapsed >= r.delay_abort_eval)
    }

    /// The rules whose failure at `elapsed` must stop the test.
    pub fn aborting(&self, merged: Option<&Aggregate>, elapsed: Duration) -> Vec<Outcome> {
        if !self.may_abort(elapsed) {
            return Vec::new();
        }
        self.judge(merged, elapsed)
            .into_iter()
            .zip(&self.rules)
            .filter(|(o, r)| !o.ok && r.abort_on_fail && elapsed >= r.delay_abort_eval)
            .map(|(o, _)| o)
            .collect()
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
    use crate::Sketch;

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
    fn the_plain_form_round_trips_and_is_checked() {
        let set = ThresholdSet::from_spec(&SetSpec {
            key: "http_req_duration{scenario:a}".into(),
            rules: vec![RuleSpec { source: "p(95)<50".into(), abort_on_fail: true, delay_abort_eval_ms: 5000 }],
        })
        .unwrap();
        assert_eq!(set.selector, Tags::from_pairs([("scenario", "a")]));
        assert_eq!(set.rules[0].delay_abort_eval, Duration::from_secs(5));
        assert_eq!(ThresholdSet::from_spec(&set.to_spec()).unwrap(), set);
        let bad = SetSpec {
            key: "checks".into(),
            rules: vec![RuleSpec { source: "p95<3".into(), abort_on_fail: false, delay_abort_eval_ms: 0 }],
        };
        assert!(ThresholdSet::from_spec(&bad).unwrap_err().contains("unknown aggregation \"p95\""));
    }

    #[test]
    fn judges_merged_aggregates_and_delays_aborts() {
        let set = ThresholdSet::from_spec(&SetSpec {
            key: "http_req_duration".into(),
            rules: vec![
                RuleSpec { source: "p(95)<50".into(), abort_on_fail: false, delay_abort_eval_ms: 0 },
                RuleSpec { source: "max<10".into(), abort_on_fail: true, delay_abort_eval_ms: 5000 },
            ],
        })
        .unwrap();
        let mut sk = Sketch::new();
        (1..=40).for_each(|v| sk.add(v as f64));
        let agg = Aggregate::Trend(sk);
        let outcomes = set.judge(Some(&agg), Duration::from_secs(1));
        assert!(outcomes[0].ok, "{outcomes:?}");
        assert!(!outcomes[1].ok);
        assert_eq!(outcomes[1].observed, Some(40.0));
        assert!(set.aborting(Some(&agg), Duration::from_secs(1)).is_empty(), "delayAbortEval not reached");
        assert_eq!(set.aborting(Some(&agg), Duration::from_secs(6)).len(), 1);
        assert!(set.judge(None, Duration::from_secs(6)).iter().all(|o| o.ok && o.observed.is_none()));
        assert!(set.selects(&SeriesKey::new("http_req_duration", Tags::from_pairs([("scenario", "x")]))));
        assert!(!set.selects(&SeriesKey::new("http_reqs", Tags::new())));
    }
}
