//! Checks on a response: status, header, body substring or pattern, JSON
//! field value, duration.
//!
//! Each check is one series of the `checks` rate, tagged `check:<name>`,
//! with a name in k6's style (`status is 200`) so the summary reads the same.

use crate::config::reader::Obj;
use crate::flow::jsonpath::{json_equal, JsonPath};
use http::{HeaderMap, HeaderName};
use regex::Regex;
use serde_json::Value;
use std::time::Duration;

/// What a check tests.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// The status is one of these.
    Status(Vec<u16>),
    /// The body contains this text.
    BodyContains(String),
    /// The JSON body has `expected` at `path` (`items.0.id`, `$.a.b`).
    Json {
        /// Dotted path; numeric segments index lists.
        path: JsonPath,
        /// Expected value.
        expected: Value,
    },
    /// The header has this value (or this value then `;` parameters, so
    /// `application/json` matches `application/json; charset=utf-8`).
    Header(HeaderName, String),
    /// The body matches this pattern.
    Regex(Regex),
    /// The request's duration compared with a bound.
    Duration(Bound, Duration),
}

/// How a duration check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `<`
    Below,
    /// `<=`
    AtMost,
    /// `>`
    Above,
    /// `>=`
    AtLeast,
}

/// What a check looks at.
pub struct Answer<'a> {
    /// Status code (0: no answer).
    pub status: u16,
    /// The kept body.
    pub body: &'a [u8],
    /// Response headers.
    pub headers: &'a HeaderMap,
    /// Sent to fully received.
    pub duration: Duration,
}

/// A named check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The `check` tag value.
    pub name: String,
    /// What it tests.
    pub kind: CheckKind,
}

/// Fields of a step's `checks`.
pub const FIELDS: &[&str] = &["status", "bodyContains", "json", "header", "regex", "duration"];

impl Check {
    /// Reads a step's `checks` object.
    pub fn parse_all(obj: Obj) -> Vec<Check> {
        let mut checks = Vec::new();
        if let Some(v) = obj.get("status") {
            let codes: Option<Vec<u16>> = match v {
                Value::Array(items) => items.iter().map(status_code).collect(),
                one => status_code(one).map(|c| vec![c]),
            };
            match codes {
                Some(codes) if !codes.is_empty() => {
                    let list: Vec<String> = codes.iter().map(u16::to_string).collect();
                    let name = if codes.len() == 1 {
                        format!("status is {}", list[0])
                    } else {
                        format!("status in [{}]", list.join(","))
                    };
                    checks.push(Check { name, kind: CheckKind::Status(codes) });
                }
                _ => obj.error("status", "must be an HTTP status code (100-599) or a list of them"),
            }
        }
        if let Some(text) = obj.string("bodyContains") {
            checks.push(Check { name: format!("body contains {text:?}"), kind: CheckKind::BodyContains(text) });
        }
        if let Some(json) = obj.object("json") {
            for (path, expected) in json.entries() {
                let Some(parsed) = JsonPath::parse(path) else {
                    json.error(path, "is not a JSON path (use e.g. items.0.id)");
                    continue;
                };
                checks.push(Check {
                    name: format!("json {} is {expected}", parsed.display()),
                    kind: CheckKind::Json { path: parsed, expected: expected.clone() },
                });
            }
        }
        if let Some(headers) = obj.string_map("header") {
            for (name, want) in headers {
                match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(h) => checks
                        .push(Check { name: format!("header {name} is {want:?}"), kind: CheckKind::Header(h, want) }),
                    Err(_) => obj.error(&format!("header.{name}"), "is not a header name"),
                }
            }
        }
        if let Some(pattern) = obj.string("regex") {
            match Regex::new(&pattern) {
                Ok(re) => checks.push(Check { name: format!("body matches /{pattern}/"), kind: CheckKind::Regex(re) }),
                Err(e) => obj.error("regex", format!("{pattern:?} is not a regular expression: {e}")),
            }
        }
        if let Some(text) = obj.string("duration") {
            match duration_bound(&text) {
                Ok((bound, d)) => {
                    checks.push(Check { name: format!("duration {text}"), kind: CheckKind::Duration(bound, d) })
                }
                Err(e) => obj.error("duration", e),
            }
        }
        for c in &checks {
            // The name is a tag wherever the windows are written.
            if let Err(e) = volley_exporter::sink::influx::line::storable(&c.name) {
                let field = match c.kind {
                    CheckKind::Status(_) => "status",
                    CheckKind::BodyContains(_) => "bodyContains",
                    CheckKind::Json { .. } => "json",
                    CheckKind::Header(..) => "header",
                    CheckKind::Regex(_) => "regex",
                    CheckKind::Duration(..) => "duration",
                };
                obj.error(
                    field,
                    format!("makes the check name {:?}, which a metric store cannot keep unchanged: it {e}", c.name),
                );
            }
        }
        obj.finish_with(FIELDS);
        checks
    }

    /// True when the check reads the body.
    pub fn needs_body(&self) -> bool {
        matches!(self.kind, CheckKind::BodyContains(_) | CheckKind::Json { .. } | CheckKind::Regex(_))
    }

    /// Evaluates the check. `json` is the body parsed once for all checks.
    pub fn passes(&self, answer: &Answer<'_>, json: &mut Option<Option<Value>>) -> bool {
        let body = answer.body;
        match &self.kind {
            CheckKind::Status(codes) => codes.contains(&answer.status),
            CheckKind::Header(name, want) => answer.headers.get_all(name).iter().any(|v| {
                let v = v.as_bytes();
                v.starts_with(want.as_bytes()) && matches!(v.get(want.len()), None | Some(b';'))
            }),
            CheckKind::Regex(re) => std::str::from_utf8(body).is_ok_and(|text| re.is_match(text)),
            CheckKind::Duration(bound, limit) => match bound {
                Bound::Below => answer.status != 0 && answer.duration < *limit,
                Bound::AtMost => answer.status != 0 && answer.duration <= *limit,
                Bound::Above => answer.duration > *limit,
                Bound::AtLeast => answer.duration >= *limit,
            },
            CheckKind::BodyContains(text) => {
                let needle = text.as_bytes();
                needle.is_empty() || body.windows(needle.len()).any(|w| w == needle)
            }
            CheckKind::Json { path, expected } => {
                let doc = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                doc.as_ref().and_then(|d| path.get(d)).is_some_and(|node| json_equal(node, expected))
            }
        }
    }
}

/// `<500ms`, `<= 1s`, `>2s`, `>=100ms`.
fn duration_bound(text: &str) -> Result<(Bound, Duration), String> {
    let t = text.trim();
    let (bound, rest) = if let Some(r) = t.strip_prefix("<=") {
        (Bound::AtMost, r)
    } else if let Some(r) = t.strip_prefix(">=") {
        (Bound::AtLeast, r)
    } else if let Some(r) = t.strip_prefix('<') {
        (Bound::Below, r)
    } else if let Some(r) = t.strip_prefix('>') {
        (Bound::Above, r)
    } else {
        return Err(format!("{text:?} must start with <, <=, > or >= (e.g. \"<500ms\")"));
    };
    let d = volley_window::duration::parse_duration(rest.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    Ok((bound, d))
}

fn status_code(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    (100..=599).contains(&n).then_some(n as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;

    fn parse(doc: Value) -> (Vec<Check>, String) {
        let report = Report::default();
        let checks = Check::parse_all(Obj::new(&doc, "checks", &report).unwrap());
        let errors = report.into_result(()).err().map(|e| e.to_string()).unwrap_or_default();
        (checks, errors)
    }

    #[test]
    fn evaluates_status_body_and_json() {
        let (checks, errors) = parse(serde_json::json!({
            "status": [200, 201],
            "bodyContains": "volley",
            "json": {"items.1.price": 3, "$.nested.level.deep": "yes", "ok": false}
        }));
        assert_eq!(errors, "");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "status in [200,201]",
                "body contains \"volley\"",
                "json items.1.price is 3",
                "json nested.level.deep is \"yes\"",
                "json ok is false"
            ]
        );
        let body = br#"{"ok":true,"name":"volley","items":[{"id":1,"price":9.5},{"id":2,"price":3.0}],"nested":{"level":{"deep":"yes"}}}"#;
        let mut json = None;
        let results: Vec<bool> = checks.iter().map(|c| c.passes(&answer(201, body), &mut json)).collect();
        assert_eq!(results, vec![true, true, true, true, false]);
        let mut json = None;
        assert!(!checks[0].passes(&answer(404, b""), &mut json));
        assert!(!checks[2].passes(&answer(200, b"not json"), &mut json));
    }

    fn answer(status: u16, body: &[u8]) -> Answer<'_> {
        static EMPTY: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();
        Answer { status, body, headers: EMPTY.get_or_init(HeaderMap::new), duration: Duration::from_millis(120) }
    }

    #[test]
    fn evaluates_header_regex_and_duration() {
        let (checks, errors) = parse(serde_json::json!({
            "header": {"Content-Type": "application/json"},
            "regex": "\"ok\":\\s*true",
            "duration": "<500ms"
        }));
        assert_eq!(errors, "");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["header Content-Type is \"application/json\"", "body matches /\"ok\":\\s*true/", "duration <500ms"]
        );
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
        let a =
            Answer { status: 200, body: br#"{"ok": true}"#, headers: &headers, duration: Duration::from_millis(499) };
        assert!(checks.iter().all(|c| c.passes(&a, &mut None)));
        headers.insert("content-type", "application/jsonx".parse().unwrap());
        let b =
            Answer { status: 200, body: br#"{"ok": false}"#, headers: &headers, duration: Duration::from_millis(500) };
        assert!(checks.iter().all(|c| !c.passes(&b, &mut None)));
        let (_, errors) = parse(serde_json::json!({"duration": "500ms", "regex": "(", "header": {"a b": "x"}}));
        for want in [
            "checks.duration: \"500ms\" must start with <",
            "checks.regex: \"(\" is not a regular",
            "checks.header.a b: is not a header name",
        ] {
            assert!(errors.contains(want), "{want} not in {errors}");
        }
    }

    #[test]
    fn rejects_bad_status_and_unknown_fields() {
        let (_, errors) = parse(serde_json::json!({"status": 99, "headers": "x"}));
        assert!(errors.contains("checks.status: must be an HTTP status code"), "{errors}");
        assert!(errors.contains("checks.headers: unknown field"), "{errors}");
    }
}
