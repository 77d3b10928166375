//! `capture:` on a request step: values taken from the response and
//! available to the later steps of the same iteration as `{{NAME}}`.
//!
//! ```yaml
//! capture:
//!   userId: { json: "$.user.id" }          # a JSON path into the body
//!   csrf:   { header: X-CSRF-Token }       # a response header
//!   session: { cookie: sid }               # a cookie the response sets
//!   order:  { regex: 'order-(\d+)', default: "0" }   # the first group
//!   ids:    { json: "$.orders[*].id", all: true }  # every match, a list
//! ```
//!
//! With `all: true` the value is a list (json, regex or header): a loop can
//! go over it, `{{ids.length}}` counts it, `{{ids}}` joins it with commas.
//! A list with no match is an empty list, not a missing value: the body
//! still has to be there (JSON that parses, for `json`).
//!
//! A capture that finds nothing fails the check `capture NAME`, and the
//! rest of the iteration is skipped (a request built from a missing value
//! would only measure an error), unless it has a `default`. Values live per
//! VU for one iteration: every iteration starts with none.

use super::vars::Value as Var;
use crate::config::reader::Obj;
use crate::flow::jsonpath::{JsonPath, MAX_MATCHES};
use http::{HeaderMap, HeaderName};
use serde_json::Value;

/// Fields of one capture.
const FIELDS: &[&str] = &["json", "regex", "header", "cookie", "default", "all"];
/// Names the templates already give a meaning to.
const RESERVED: &[&str] = &["vu", "iter", "scenario", "env", "token", "data", "setup", "loop", "random", "uuid", "now"];

/// Where a capture looks.
#[derive(Debug)]
enum Source {
    Json(JsonPath),
    Regex(regex::Regex),
    Header(HeaderName),
    Cookie(String),
}

/// One capture of a request step.
#[derive(Debug)]
pub struct Capture {
    /// The variable's name (`{{NAME}}`, check `capture NAME`).
    pub name: String,
    /// Its slot among the flow's variables.
    pub slot: usize,
    source: Source,
    default: Option<String>,
    /// `all: true`: every match, as a list.
    all: bool,
}

impl Capture {
    /// Reads a step's `capture` object; new names are added to `vars` (the
    /// flow's variables, in order), a name captured again reuses its slot.
    pub fn parse_all(obj: Obj, vars: &mut Vec<String>) -> Vec<Capture> {
        let mut out = Vec::new();
        for (name, def) in obj.entries() {
            let Some(c) = Obj::new(def, obj.path_of(name), obj.report) else { continue };
            if let Err(e) = check_name(name) {
                obj.error(name, e);
                continue;
            }
            let all = c.boolean("all").unwrap_or(false);
            if all && c.has("cookie") {
                c.error("all", "applies to json, regex and header captures (a cookie has one value)");
            }
            if let Some(source) = source(&c) {
                let slot = vars.iter().rposition(|v| v == name).unwrap_or_else(|| {
                    vars.push(name.clone());
                    vars.len() - 1
                });
                out.push(Capture { name: name.clone(), slot, source, default: c.string("default"), all });
            }
            c.finish_with(FIELDS);
        }
        out
    }

    /// True when the capture reads the body.
    pub fn needs_body(&self) -> bool {
        matches!(self.source, Source::Json(_) | Source::Regex(_))
    }

    /// The captured value, or the default. `json` caches the parsed body
    /// across a step's checks and captures.
    pub fn extract(&self, body: &[u8], headers: &HeaderMap, json: &mut Option<Option<Value>>) -> Option<Var> {
        let found =
            if self.all { self.every(body, headers, json) } else { self.first(body, headers, json).map(Var::Text) };
        found.or_else(|| self.default.clone().map(Var::Text))
    }

    /// The first match.
    fn first(&self, body: &[u8], headers: &HeaderMap, json: &mut Option<Option<Value>>) -> Option<String> {
        match &self.source {
            Source::Json(path) => {
                let doc = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                doc.as_ref().and_then(|d| path.get(d)).and_then(plain)
            }
            Source::Regex(re) => std::str::from_utf8(body)
                .ok()
                .and_then(|text| re.captures(text))
                .and_then(|c| c.get(1))
                .map(|m| m.as_str().to_string()),
            Source::Header(name) => headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string),
            Source::Cookie(name) => cookie(headers, name),
        }
    }

    /// Every match (at most [`MAX_MATCHES`]); `None` only when the body is
    /// not what the source reads (not JSON, not text).
    fn every(&self, body: &[u8], headers: &HeaderMap, json: &mut Option<Option<Value>>) -> Option<Var> {
        let items = match &self.source {
            Source::Json(path) => {
                let doc = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
                path.all(doc.as_ref()?).into_iter().filter_map(plain).collect()
            }
            Source::Regex(re) => re
                .captures_iter(std::str::from_utf8(body).ok()?)
                .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
                .take(MAX_MATCHES)
                .collect(),
            Source::Header(name) => {
                headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
            }
            Source::Cookie(name) => cookie(headers, name).into_iter().collect(),
        };
        Some(Var::List(items))
    }
}

/// Exactly one of `json`, `regex`, `header`, `cookie`.
fn source(c: &Obj) -> Option<Source> {
    let given: Vec<&str> = ["json", "regex", "header", "cookie"].into_iter().filter(|f| c.has(f)).collect();
    if given.len() != 1 {
        let problem = if given.is_empty() { "needs one of" } else { "takes only one of" };
        c.report.error(c.path.clone(), format!("{problem} json, regex, header, cookie"));
        return None;
    }
    let text = c.string(given[0])?;
    match given[0] {
        "json" => JsonPath::parse(&text).map(Source::Json).or_else(|| {
            c.error("json", format!("{text:?} is not a JSON path (use e.g. $.user.id or items.0.id)"));
            None
        }),
        "regex" => match regex::Regex::new(&text) {
            Ok(re) if re.captures_len() > 1 => Some(Source::Regex(re)),
            Ok(_) => {
                c.error("regex", format!("{text:?} has no group: the capture is the first (…) group"));
                None
            }
            Err(e) => {
                c.error("regex", format!("{text:?} is not a regular expression: {e}"));
                None
            }
        },
        "header" => HeaderName::from_bytes(text.as_bytes()).map(Source::Header).ok().or_else(|| {
            c.error("header", format!("{text:?} is not a header name"));
            None
        }),
        _ => Some(Source::Cookie(text)),
    }
}

/// A variable name: letters, digits and _, not one templates already use.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let starts = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("a capture name is letters, digits and _ (not starting with a digit)".into());
    }
    if RESERVED.contains(&name) {
        return Err(format!("\"{name}\" is a template name already; choose another"));
    }
    Ok(())
}

/// A JSON value as text: strings as they are, numbers and booleans as
/// written, objects and lists as JSON; `null` is nothing found.
fn plain(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The value of cookie `name` in the response's `Set-Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|set| {
        let pair = set.split(';').next()?;
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;

    fn parse(doc: serde_json::Value) -> (Vec<Capture>, Vec<String>, String) {
        let report = Report::default();
        let mut vars = vec!["earlier".to_string()];
        let caps = Capture::parse_all(Obj::new(&doc, "steps[0].capture", &report).unwrap(), &mut vars);
        let errors = report.into_result(()).err().map(|e| e.to_string()).unwrap_or_default();
        (caps, vars, errors)
    }

    #[test]
    fn every_source_extracts_its_value() {
        let (caps, vars, errors) = parse(serde_json::json!({
            "user": {"json": "$.user.id"},
            "csrf": {"header": "X-CSRF-Token"},
            "sid": {"cookie": "sid"},
            "order": {"regex": "order-(\\d+)"},
            "earlier": {"json": "missing", "default": "none"}
        }));
        assert_eq!(errors, "");
        let mut declared = vars.clone();
        declared.sort();
        assert_eq!(declared, ["csrf", "earlier", "order", "sid", "user"]);
        let body = br#"{"user": {"id": 42}, "note": "order-17 shipped"}"#;
        let mut headers = HeaderMap::new();
        headers.insert("x-csrf-token", "abc".parse().unwrap());
        headers.append(http::header::SET_COOKIE, "theme=dark; Path=/".parse().unwrap());
        headers.append(http::header::SET_COOKIE, "sid=s3ss10n; HttpOnly".parse().unwrap());
        let mut json = None;
        let mut got: Vec<(String, Option<Var>)> =
            caps.iter().map(|c| (c.name.clone(), c.extract(body, &headers, &mut json))).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want = [("csrf", "abc"), ("earlier", "none"), ("order", "17"), ("sid", "s3ss10n"), ("user", "42")];
        assert_eq!(got, want.map(|(n, v)| (n.to_string(), Some(Var::Text(v.to_string())))));
        assert_eq!(caps.iter().find(|c| c.name == "earlier").unwrap().slot, 0, "a name captured again keeps its slot");
        let user = caps.iter().find(|c| c.name == "user").unwrap();
        assert!(user.extract(b"", &HeaderMap::new(), &mut None).is_none());
    }

    #[test]
    fn all_collects_every_match_as_a_list() {
        let (caps, _, errors) = parse(serde_json::json!({
            "ids": {"json": "$.orders[*].id", "all": true},
            "words": {"regex": "w(\\d)", "all": true},
            "none": {"json": "$.nothing[*]", "all": true}
        }));
        assert_eq!(errors, "");
        let body = br#"{"orders": [{"id": 4}, {"id": "x"}, {"id": null}], "t": "w1 w2 w3"}"#;
        let mut json = None;
        let got: Vec<Option<Var>> = caps.iter().map(|c| c.extract(body, &HeaderMap::new(), &mut json)).collect();
        let list = |items: &[&str]| Some(Var::List(items.iter().map(|s| s.to_string()).collect()));
        assert_eq!(got, vec![list(&["4", "x"]), list(&["1", "2", "3"]), list(&[])]);
        assert_eq!(caps[0].extract(b"not json", &HeaderMap::new(), &mut None), None, "no JSON is nothing found");
    }

    #[test]
    fn bad_captures_are_named_with_their_path() {
        let (_, _, errors) = parse(serde_json::json!({
            "a": {"json": "$.x", "header": "X"},
            "b": {"regex": "no group"},
            "c": {"regex": "(unclosed"},
            "vu": {"json": "$.x"},
            "1st": {"json": "$.x"},
            "d": {},
            "e": {"json": "$.x", "all": true, "every": 1},
            "f": {"cookie": "sid", "all": true}
        }));
        for want in [
            "steps[0].capture.a: takes only one of json, regex, header, cookie",
            "steps[0].capture.b.regex: \"no group\" has no group",
            "steps[0].capture.c.regex: \"(unclosed\" is not a regular expression",
            "steps[0].capture.vu: \"vu\" is a template name already",
            "steps[0].capture.1st: a capture name is letters, digits and _",
            "steps[0].capture.d: needs one of json, regex, header, cookie",
            "steps[0].capture.e.every: unknown field",
            "steps[0].capture.f.all: applies to json, regex and header captures",
        ] {
            assert!(errors.contains(want), "{want:?} not in:\n{errors}");
        }
    }
}
