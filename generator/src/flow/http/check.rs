//! Checks on a response: status, body substring, JSON field value.
//!
//! Each check is one series of the `checks` rate, tagged `check:<name>`,
//! with a name in k6's style (`status is 200`) so the summary reads the same.

use crate::config::reader::Obj;
use crate::flow::jsonpath::{json_equal, JsonPath};
use serde_json::Value;

/// What a check tests.
#[derive(Debug, Clone, PartialEq)]
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
}

/// A named check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The `check` tag value.
    pub name: String,
    /// What it tests.
    pub kind: CheckKind,
}

/// Fields of a step's `checks`.
pub const FIELDS: &[&str] = &["status", "bodyContains", "json"];

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
        for c in &checks {
            // The name is a tag wherever the windows are written.
            if let Err(e) = volley_exporter::sink::influx::line::storable(&c.name) {
                let field = match c.kind {
                    CheckKind::Status(_) => "status",
                    CheckKind::BodyContains(_) => "bodyContains",
                    CheckKind::Json { .. } => "json",
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
        !matches!(self.kind, CheckKind::Status(_))
    }

    /// Evaluates the check. `json` is the body parsed once for all checks.
    pub fn passes(&self, status: u16, body: &[u8], json: &mut Option<Option<Value>>) -> bool {
        match &self.kind {
            CheckKind::Status(codes) => codes.contains(&status),
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
        let results: Vec<bool> = checks.iter().map(|c| c.passes(201, body, &mut json)).collect();
        assert_eq!(results, vec![true, true, true, true, false]);
        let mut json = None;
        assert!(!checks[0].passes(404, b"", &mut json));
        assert!(!checks[2].passes(200, b"not json", &mut json));
    }

    #[test]
    fn rejects_bad_status_and_unknown_fields() {
        let (_, errors) = parse(serde_json::json!({"status": 99, "header": "x"}));
        assert!(errors.contains("checks.status: must be an HTTP status code"), "{errors}");
        assert!(errors.contains("checks.header: unknown field"), "{errors}");
    }
}
