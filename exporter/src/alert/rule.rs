//! The rule file and the expression grammar.
//!
//! The file is read into a YAML value and walked by hand rather than through
//! `#[serde(deny_unknown_fields)]`, so that every problem of every rule is
//! reported at once, each with its place (`rules[1] (Failures).expr: …`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use url::Url;
use volley_window::duration::parse_duration;
use volley_window::{MetricKind, Tags};

/// How often silence and stale ranges are checked unless `evaluate` says.
pub const DEFAULT_EVALUATE: Duration = Duration::from_secs(1);

/// Labels every alert gets from the engine; rules may not set them.
pub const RESERVED_LABELS: [&str; 3] = ["alertname", "testid", "generator"];

/// A loaded rule file.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Where notifications go unless a rule names its own receiver.
    pub webhook: Url,
    /// How often the ticker evaluates silence and stale data.
    pub evaluate: Duration,
    /// `externalURL` (and `generatorURL`) of the notifications.
    pub external_url: String,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

/// One alert rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The `alertname` label.
    pub name: String,
    /// The expression as written.
    pub text: String,
    /// The parsed expression.
    pub condition: Condition,
    /// How long the condition must hold before the alert fires.
    pub hold_for: Duration,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations (`{{ $value }}` and `{{ $labels.NAME }}` are filled in).
    pub annotations: BTreeMap<String, String>,
    /// This rule's receiver instead of the file's `webhook`.
    pub webhook: Option<Url>,
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// `<stat> of <metric>[{tag:value,…}] over <range> <op> <bound>`.
    Metric(MetricCondition),
    /// `no data from a generator for <after>`.
    Silence {
        /// Silence that fires.
        after: Duration,
    },
    /// `growth of generator rss over <range> <op> <bound>` (bound a fraction;
    /// growth of the RSS floor, see [`super::range::RssRange`]).
    RssGrowth(Comparison),
}

impl Condition {
    /// The time span the condition looks back over.
    pub fn span(&self) -> Duration {
        match self {
            Condition::Metric(m) => m.cmp.range,
            Condition::Silence { after } => *after,
            Condition::RssGrowth(c) => c.range,
        }
    }
}

/// A statistic of a sub-metric over a sliding range, compared with a bound.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricCondition {
    /// Which statistic.
    pub stat: Stat,
    /// Metric name.
    pub metric: String,
    /// Series whose tags contain these are merged (empty: all).
    pub selector: Tags,
    /// Range, comparison and bound.
    pub cmp: Comparison,
}

/// The part every range condition shares: `over <range> <op> <bound>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// How far back the condition looks.
    pub range: Duration,
    /// The comparison.
    pub op: Op,
    /// The bound (`10%` is stored as 0.1).
    pub bound: f64,
    /// The left side as written (`p(99) of http_req_duration over 5m`).
    pub lhs: String,
    /// The bound as written (`300`, `10%`).
    pub bound_text: String,
}

impl Comparison {
    /// Whether `value` meets the condition.
    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.bound)
    }
}

/// A k6 threshold statistic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stat {
    /// Trend percentile, 0..=100.
    Percentile(f64),
    /// Trend mean.
    Avg,
    /// Trend minimum.
    Min,
    /// Trend maximum.
    Max,
    /// Trend median.
    Med,
    /// Counter increments in the range (samples for trends and rates).
    Count,
    /// A rate's passes / (passes + fails); a counter's increments per second.
    Rate,
    /// A gauge's last value.
    Value,
}

impl Stat {
    /// Whether the statistic exists for a metric of `kind`.
    pub fn applies_to(self, kind: MetricKind) -> bool {
        match self {
            Stat::Percentile(_) | Stat::Avg | Stat::Min | Stat::Max | Stat::Med => kind == MetricKind::Trend,
            Stat::Count => kind != MetricKind::Gauge,
            Stat::Rate => matches!(kind, MetricKind::Rate | MetricKind::Counter),
            Stat::Value => kind == MetricKind::Gauge,
        }
    }

    fn suggestion(kind: MetricKind) -> &'static str {
        match kind {
            MetricKind::Trend => "p(N), avg, min, max, med or count",
            MetricKind::Counter => "count or rate",
            MetricKind::Rate => "rate or count",
            MetricKind::Gauge => "value",
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Percentile(p) => write!(f, "p({p})"),
            Stat::Avg => f.write_str("avg"),
            Stat::Min => f.write_str("min"),
            Stat::Max => f.write_str("max"),
            Stat::Med => f.write_str("med"),
            Stat::Count => f.write_str("count"),
            Stat::Rate => f.write_str("rate"),
            Stat::Value => f.write_str("value"),
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `value <op> bound`.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::Gt => value > bound,
            Op::Ge => value >= bound,
            Op::Lt => value < bound,
            Op::Le => value <= bound,
            Op::Eq => value == bound,
            Op::Ne => value != bound,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// Every problem found in a rule file, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<String>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for RuleErrors {}

impl Rules {
    /// Reads and checks a rule file; errors name the file.
    pub fn load(path: &Path) -> Result<Rules, RuleErrors> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| RuleErrors(vec![format!("{shown}: {e}")]))?;
        Rules::parse(&text).map_err(|e| RuleErrors(e.0.into_iter().map(|m| format!("{shown}: {m}")).collect()))
    }

    /// Parses a rule file's text.
    pub fn parse(text: &str) -> Result<Rules, RuleErrors> {
        let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| RuleErrors(vec![e.to_string()]))?;
        let mut errs = Vec::new();
        let Some(top) = doc.as_mapping() else {
            return Err(RuleErrors(vec!["expected a mapping with `webhook` and `rules`".into()]));
        };
        let (mut webhook, mut evaluate, mut external_url, mut rules) = (None, DEFAULT_EVALUATE, String::new(), None);
        for (k, v) in top {
            match k.as_str().unwrap_or_default() {
                "webhook" => webhook = url_field(v, "webhook", &mut errs),
                "evaluate" => {
                    if let Some(d) = duration_field(v, "evaluate", &mut errs) {
                        if d.is_zero() {
                            errs.push("evaluate: must be longer than 0".into());
                        } else {
                            evaluate = d;
                        }
                    }
                }
                "external_url" => {
                    if let Some(u) = url_field(v, "external_url", &mut errs) {
                        external_url = u.to_string();
                    }
                }
                "rules" => rules = Some(v),
                other => errs.push(format!(
                    "unknown field {:?} (expected webhook, evaluate, external_url or rules)",
                    if other.is_empty() { yaml_text(k) } else { other.to_string() }
                )),
            }
        }
        if webhook.is_none() && !top.contains_key("webhook") {
            errs.push("webhook: missing (the URL alerts are posted to)".into());
        }
        let mut parsed = Vec::new();
        match rules.map(|r| r.as_sequence()) {
            None => errs.push("rules: missing".into()),
            Some(None) => errs.push("rules: expected a list of rules".into()),
            Some(Some(seq)) if seq.is_empty() => errs.push("rules: the list is empty".into()),
            Some(Some(seq)) => {
                for (i, r) in seq.iter().enumerate() {
                    if let Some(rule) = parse_rule(i, r, &mut errs) {
                        if let Some(j) = parsed.iter().position(|p: &(usize, Rule)| p.1.name == rule.name) {
                            errs.push(format!(
                                "rules[{i}] ({}).name: the same name as rules[{}]",
                                rule.name, parsed[j].0
                            ));
                        }
                        parsed.push((i, rule));
                    }
                }
            }
        }
        if !errs.is_empty() {
            return Err(RuleErrors(errs));
        }
        Ok(Rules {
            webhook: webhook.expect("checked"),
            evaluate,
            external_url,
            rules: parsed.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// The longest span any rule looks back over.
    pub fn longest_span(&self) -> Duration {
        self.rules.iter().map(|r| r.condition.span()).max().unwrap_or_default()
    }
}

fn yaml_text(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A scalar as text (YAML numbers and booleans included).
fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn url_field(v: &serde_yaml::Value, path: &str, errs: &mut Vec<String>) -> Option<Url> {
    let Some(text) = v.as_str() else {
        errs.push(format!("{path}: expected a URL string, found {}", yaml_text(v)));
        return None;
    };
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Some(u),
        Ok(_) => {
            errs.push(format!("{path}: {text:?} is not an http:// or https:// URL"));
            None
        }
        Err(e) => {
            errs.push(format!("{path}: {text:?} is not a URL ({e})"));
            None
        }
    }
}

fn duration_field(v: &serde_yaml::Value, path: &str, errs: &mut Vec<String>) -> Option<Duration> {
    match v {
        serde_yaml::Value::String(_) | serde_yaml::Value::Number(_) => {
            match parse_duration(&scalar(v).expect("scalar")) {
                Ok(d) => Some(d),
                Err(e) => {
                    errs.push(format!("{path}: {e}"));
                    None
                }
            }
        }
        _ => {
            errs.push(format!("{path}: expected a duration such as \"1m\", found {}", yaml_text(v)));
            None
        }
    }
}

fn string_map(v: &serde_yaml::Value, path: &str, labels: bool, errs: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(map) = v.as_mapping() else {
        errs.push(format!("{path}: expected a mapping of names to strings"));
        return out;
    };
    for (k, val) in map {
        let Some(name) = k.as_str() else {
            errs.push(format!("{path}: {} is not a name", yaml_text(k)));
            continue;
        };
        if labels && !valid_label_name(name) {
            errs.push(format!("{path}.{name}: not a label name (letters, digits and _, not starting with a digit)"));
        } else if labels && RESERVED_LABELS.contains(&name) {
            errs.push(format!("{path}.{name}: set by the engine, a rule cannot set it"));
        }
        match scalar(val) {
            Some(s) => {
                out.insert(name.to_string(), s);
            }
            None => errs.push(format!("{path}.{name}: expected a string, found {}", yaml_text(val))),
        }
    }
    out
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_rule(i: usize, v: &serde_yaml::Value, errs: &mut Vec<String>) -> Option<Rule> {
    let Some(map) = v.as_mapping() else {
        errs.push(format!("rules[{i}]: expected a mapping with name and expr"));
        return None;
    };
    let name = map.get("name").and_then(scalar).filter(|n| !n.trim().is_empty());
    let at = match &name {
        Some(n) => format!("rules[{i}] ({n})"),
        None => {
            errs.push(format!("rules[{i}].name: missing"));
            format!("rules[{i}]")
        }
    };
    let before = errs.len();
    let (mut text, mut condition, mut hold_for, mut labels, mut annotations, mut webhook) =
        (String::new(), None, Duration::ZERO, BTreeMap::new(), BTreeMap::new(), None);
    for (k, val) in map {
        let key = k.as_str().unwrap_or_default();
        let path = format!("{at}.{key}");
        match key {
            "name" => {}
            "expr" => match val.as_str() {
                Some(t) => {
                    text = t.trim().to_string();
                    match parse_expr(t) {
                        Ok(c) => condition = Some(c),
                        Err(e) => errs.push(format!("{path}: {e}")),
                    }
                }
                None => errs.push(format!("{path}: expected a string, found {}", yaml_text(val))),
            },
            "for" => hold_for = duration_field(val, &path, errs).unwrap_or_default(),
            "labels" => labels = string_map(val, &path, true, errs),
            "annotations" => annotations = string_map(val, &path, false, errs),
            "webhook" => webhook = url_field(val, &path, errs),
            _ => errs.push(format!(
                "{at}: unknown field {:?} (expected name, expr, for, labels, annotations or webhook)",
                if key.is_empty() { yaml_text(k) } else { key.to_string() }
            )),
        }
    }
    if !map.contains_key("expr") {
        errs.push(format!("{at}.expr: missing"));
    }
    if errs.len() > before {
        return None;
    }
    Some(Rule { name: name?, text, condition: condition?, hold_for, labels, annotations, webhook })
}

/// The metric types of the built-in metrics (binding names), so that a
/// statistic that cannot apply is refused when the file is loaded.
const BUILTIN: &[(&str, MetricKind)] = {
    use MetricKind::{Counter as C, Gauge as G, Rate as R, Trend as T};
    &[
        ("iterations", C),
        ("iteration_duration", T),
        ("dropped_iterations", C),
        ("iteration_start_lag", T),
        ("vus", G),
        ("vus_max", G),
        ("checks", R),
        ("http_reqs", C),
        ("http_req_duration", T),
        ("http_req_waiting", T),
        ("http_req_connecting", T),
        ("http_req_tls_handshaking", T),
        ("http_req_failed", R),
        ("data_sent", C),
        ("data_received", C),
        ("ws_connect_ok", C),
        ("ws_connect_fail", C),
        ("ws_auth_ok", C),
        ("ws_auth_fail", C),
        ("ws_pong_rtt_ms", T),
        ("im_sent_total", C),
        ("im_recv_unique_total", C),
        ("im_dup_total", C),
        ("im_reorder_total", C),
        ("im_e2e_latency_ms", T),
        ("im_lost_total", C),
        ("token_refresh_ok", C),
        ("token_refresh_fail", C),
        ("token_wait", T),
        ("token_unavailable", C),
    ]
};

/// The type of a built-in metric.
pub fn builtin_kind(metric: &str) -> Option<MetricKind> {
    BUILTIN.iter().find(|(n, _)| *n == metric).map(|(_, k)| *k)
}

const GRAMMAR: &str = "<stat> of <metric>[{tag:value,…}] over <duration> <op> <number>";

/// Parses one expression (see the module documentation for the grammar).
pub fn parse_expr(text: &str) -> Result<Condition, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let s = words.join(" ");
    if s.is_empty() {
        return Err("empty expression".into());
    }
    if s.starts_with("no data") {
        let after = s
            .strip_prefix("no data from a generator for ")
            .ok_or_else(|| "expected \"no data from a generator for <duration>\"".to_string())?;
        return Ok(Condition::Silence { after: range(after)? });
    }
    let (lhs, op, bound, bound_text) = split_comparison(&s)?;
    let (stat_text, rest) = lhs.split_once(" of ").ok_or_else(|| format!("expected \"{GRAMMAR}\""))?;
    let (selector, range_text) =
        rest.rsplit_once(" over ").ok_or_else(|| format!("expected \"over <duration>\" after {:?}", rest))?;
    let cmp = Comparison { range: range(range_text)?, op, bound, lhs: lhs.clone(), bound_text };
    if stat_text == "growth" {
        if selector != "generator rss" {
            return Err(format!("growth applies to \"generator rss\" only, not {selector:?}"));
        }
        return Ok(Condition::RssGrowth(cmp));
    }
    let stat = parse_stat(stat_text)?;
    let (metric, selector) = parse_selector(selector)?;
    if let Some(kind) = builtin_kind(&metric) {
        if !stat.applies_to(kind) {
            return Err(format!("{stat} does not apply to {metric}, a {kind} (use {})", Stat::suggestion(kind)));
        }
    }
    Ok(Condition::Metric(MetricCondition { stat, metric, selector, cmp }))
}

/// Splits `lhs <op> <number>[%]`.
fn split_comparison(s: &str) -> Result<(String, Op, f64, String), String> {
    if s.matches('{').count() != s.matches('}').count() {
        return Err(format!("unclosed \"{{\" in {s:?}"));
    }
    // The first operator character outside a tag selector.
    let mut depth = 0;
    let at = s.char_indices().find(|&(_, c)| {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        depth == 0 && matches!(c, '<' | '>' | '=' | '!')
    });
    let Some((at, _)) = at else {
        return Err(format!("missing a comparison such as \"> 300\" (expected \"{GRAMMAR}\")"));
    };
    let (lhs, rhs) = s.split_at(at);
    let op = [("!=", Op::Ne), ("==", Op::Eq), (">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
        .into_iter()
        .find(|(sym, _)| rhs.starts_with(sym));
    let Some((sym, op)) = op else {
        return Err(format!("unknown comparison in {rhs:?} (use >, >=, <, <=, == or !=)"));
    };
    let number = rhs[sym.len()..].trim();
    let (digits, scale) = match number.strip_suffix('%') {
        Some(d) => (d.trim(), 0.01),
        None => (number, 1.0),
    };
    let bound: f64 = digits
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("expected a number after {sym:?}, found {number:?}"))?;
    Ok((lhs.trim().to_string(), op, bound * scale, number.to_string()))
}

fn range(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("range: {e}"))?;
    if d.is_zero() {
        return Err(format!("range {text:?} must be longer than 0"));
    }
    Ok(d)
}

fn parse_stat(text: &str) -> Result<Stat, String> {
    Ok(match text {
        "avg" => Stat::Avg,
        "min" => Stat::Min,
        "max" => Stat::Max,
        "med" => Stat::Med,
        "count" => Stat::Count,
        "rate" => Stat::Rate,
        "value" => Stat::Value,
        _ => {
            if let Some(inner) = text.strip_prefix("p(").and_then(|t| t.strip_suffix(')')) {
                return match inner.trim().parse::<f64>() {
                    Ok(p) if (0.0..=100.0).contains(&p) => Ok(Stat::Percentile(p)),
                    _ => Err(format!("bad percentile {text:?}: use p(N) with N from 0 to 100")),
                };
            }
            if let Some(n) = text.strip_prefix('p').filter(|n| n.parse::<f64>().is_ok()) {
                return Err(format!("unknown statistic {text:?}; use p({n})"));
            }
            return Err(format!("unknown statistic {text:?} (use p(N), avg, min, max, med, count, rate or value)"));
        }
    })
}

fn parse_selector(text: &str) -> Result<(String, Tags), String> {
    let (name, tags) = match text.split_once('{') {
        None => (text.trim(), None),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').ok_or_else(|| format!("unclosed \"{{\" in {text:?}"))?;
            (name.trim(), Some(inner))
        }
    };
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !ok {
        return Err(format!("bad metric name {name:?} (letters, digits, _ and .)"));
    }
    let mut selector = Tags::new();
    for pair in tags.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => selector.insert(k.trim(), v.trim()),
            _ => return Err(format!("tag {pair:?} without a value (use {{tag:value}})")),
        }
    }
    Ok((name.to_string(), selector))
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
