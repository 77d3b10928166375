//! A validating reader over a parsed YAML/JSON document.
//!
//! Serde's derive stops at the first error and cannot combine
//! `deny_unknown_fields` with shared base fields, so the scenario file is read
//! by hand through [`Obj`]: every accessor records problems with their full
//! field path (`options.scenarios.browse.rate`) and keeps going, so the user
//! sees every problem at once; [`Obj::finish_with`] reports unknown fields with the
//! closest known name.

use super::duration::parse_duration;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

/// One problem in the configuration, at a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `options.scenarios.api.rate`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems found in one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while a document is read.
#[derive(Default)]
pub struct Report {
    errors: RefCell<Vec<ConfigError>>,
}

impl Report {
    /// Records a problem at `path`.
    pub fn error(&self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.borrow_mut().push(ConfigError { path: path.into(), message: message.into() });
    }

    /// True when nothing was wrong so far.
    pub fn is_clean(&self) -> bool {
        self.errors.borrow().is_empty()
    }

    /// Returns `value` when no problem was recorded, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        let errors = self.errors.into_inner();
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// Joins a path and a field name.
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A JSON object being read.
pub struct Obj<'a> {
    /// Path of this object.
    pub path: String,
    map: &'a Map<String, Value>,
    /// Where problems go.
    pub report: &'a Report,
}

impl<'a> Obj<'a> {
    /// Reads `value` at `path` as an object; records an error if it is not one.
    pub fn new(value: &'a Value, path: impl Into<String>, report: &'a Report) -> Option<Self> {
        let path = path.into();
        match value {
            Value::Object(map) => Some(Self { path, map, report }),
            other => {
                report.error(path, format!("must be an object, found {}", type_name(other)));
                None
            }
        }
    }

    /// The path of field `name`.
    pub fn path_of(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// Records a problem with field `name`.
    pub fn error(&self, name: &str, message: impl Into<String>) {
        self.report.error(self.path_of(name), message);
    }

    /// True when field `name` is present and explicitly `null`.
    pub fn is_null(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(Value::is_null)
    }

    /// The raw value of field `name`; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// True when field `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    /// A required field: records "is required" when absent.
    pub fn require(&self, name: &str) -> Option<&'a Value> {
        let v = self.get(name);
        if v.is_none() {
            self.error(name, "is required");
        }
        v
    }

    /// An optional string.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.error(name, format!("must be a string, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional whole number `>= min`.
    pub fn uint(&self, name: &str, min: u64) -> Option<u64> {
        let v = self.get(name)?;
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= min => Some(n),
            Some(n) => {
                self.error(name, format!("must be at least {min}, found {n}"));
                None
            }
            None => {
                let shown = match v {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                if v.as_f64().is_some_and(|f| f < 0.0) {
                    self.error(name, format!("must not be negative, found {shown}"));
                } else {
                    self.error(name, format!("must be a whole number, found {shown}"));
                }
                None
            }
        }
    }

    /// An optional number.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Number(n) => n.as_f64(),
            other => {
                self.error(name, format!("must be a number, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional boolean.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.error(name, format!("must be true or false, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional duration (k6 string, or a number of milliseconds).
    /// An optional think time: a duration or a range (`"1s..3s"`).
    pub fn think(&self, name: &str) -> Option<crate::flow::think::Think> {
        let text = match self.get(name)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                self.error(
                    name,
                    format!("must be a duration such as \"1s\" or a range \"1s..3s\", found {}", type_name(other)),
                );
                return None;
            }
        };
        crate::flow::think::Think::parse(&text).map_err(|e| self.error(name, e)).ok()
    }

    pub fn duration(&self, name: &str) -> Option<Duration> {
        let text = match self.get(name)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                self.error(name, format!("must be a duration such as \"30s\", found {}", type_name(other)));
                return None;
            }
        };
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(name, e);
                None
            }
        }
    }

    /// An optional nested object.
    pub fn object(&self, name: &str) -> Option<Obj<'a>> {
        let v = self.get(name)?;
        Obj::new(v, self.path_of(name), self.report)
    }

    /// An optional array.
    pub fn array(&self, name: &str) -> Option<&'a Vec<Value>> {
        match self.get(name)? {
            Value::Array(items) => Some(items),
            other => {
                self.error(name, format!("must be a list, found {}", type_name(other)));
                None
            }
        }
    }

    /// An optional map of strings (`env`, `tags`, `headers`); numbers and
    /// booleans are accepted and turned into text.
    pub fn string_map(&self, name: &str) -> Option<Vec<(String, String)>> {
        let obj = self.object(name)?;
        let mut out = Vec::new();
        for (k, v) in obj.map {
            match v {
                Value::String(s) => out.push((k.clone(), s.clone())),
                Value::Number(n) => out.push((k.clone(), n.to_string())),
                Value::Bool(b) => out.push((k.clone(), b.to_string())),
                other => obj.error(k, format!("must be a string, found {}", type_name(other))),
            }
        }
        Some(out)
    }

    /// Iterates every field (for maps keyed by user names).
    pub fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter()
    }

    /// Reports, on `path`, a tag name or value a metric store could not keep
    /// unchanged (tags are written wherever the windows go).
    pub fn check_tag(&self, path: &str, name: &str, value: &str) {
        check_tag(self.report, &self.path_of(path), name, value);
    }

    /// Reports every field not in `known`, suggesting the closest known name.
    pub fn finish_with(self, known: &[&str]) {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                let message = match closest(key, known) {
                    Some(s) => format!("unknown field (did you mean \"{s}\"?)"),
                    None => format!("unknown field (expected one of: {})", known.join(", ")),
                };
                self.report.error(self.path_of(key), message);
            }
        }
    }
}

/// A human name for a JSON value's type.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word_l, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reports, on the full `path`, a tag name or value a metric store could
/// not keep unchanged (tags are written wherever the windows go).
pub fn check_tag(report: &Report, path: &str, name: &str, value: &str) {
    for (what, s) in [("name", name), ("value", value)] {
        if let Err(e) = volley_exporter::sink::influx::line::storable(s) {
            report.error(path, format!("the tag {what} {s:?} cannot be stored unchanged by a metric store: it {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            closest("constant-arival-rate", &["constant-arrival-rate", "constant-vus"]),
            Some("constant-arrival-rate")
        );
        assert_eq!(closest("preAlocatedVUs", &["preAllocatedVUs", "maxVUs"]), Some("preAllocatedVUs"));
        assert_eq!(closest("zzz", &["rate", "duration"]), None);
    }

    #[test]
    fn collects_every_problem_with_paths() {
        let doc: Value = serde_json::json!({"rate": -1, "duration": "5x", "bogus": 1, "vus": "ten"});
        let report = Report::default();
        let obj = Obj::new(&doc, "options.scenarios.a", &report).unwrap();
        assert_eq!(obj.uint("rate", 1), None);
        assert_eq!(obj.duration("duration"), None);
        assert_eq!(obj.uint("vus", 1), None);
        obj.finish_with(&["rate", "duration", "vus"]);
        let errs = report.into_result(()).unwrap_err().to_string();
        assert!(errs.contains("options.scenarios.a.rate: must not be negative, found -1"), "{errs}");
        assert!(errs.contains("options.scenarios.a.duration: \"5x\" has an unknown unit \"x\""), "{errs}");
        assert!(errs.contains("options.scenarios.a.vus: must be a whole number, found \"ten\""), "{errs}");
        assert!(errs.contains("options.scenarios.a.bogus: unknown field"), "{errs}");
    }
}
