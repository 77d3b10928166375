//! Parsing of an http flow's requests (its steps are in `steps`).

use super::body::{self, Body};
use super::capture::Capture;
use super::check::Check;
use crate::config::reader::Obj;
use crate::flow::template::Template;
use crate::flow::think::Think;
use http::{HeaderName, Method};
use std::time::Duration;

/// Fields of an http flow.
pub const FIELDS: &[&str] = &["type", "steps", "sleep", "insecureSkipTLSVerify", "cookies"];
const REQUEST_FIELDS: &[&str] =
    &["method", "url", "headers", "body", "form", "multipart", "timeout", "name", "tags", "responseType"];

/// k6's `responseType`: whether the response body is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseType {
    /// Kept as text.
    Text,
    /// Kept as bytes.
    Binary,
    /// Read and counted, not kept.
    None,
}
/// Tags Volley sets on every request series itself.
const SYSTEM_TAGS: &[&str] =
    &["method", "status", "url", "name", "expected_response", "scenario", "check", "group", "testid", "generator"];

/// k6's default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A request step.
#[derive(Debug)]
pub struct RequestStep {
    /// HTTP method.
    pub method: Method,
    /// Absolute `http://` or `https://` URL.
    pub url: Template,
    /// Request headers.
    pub headers: Vec<(HeaderName, Template)>,
    /// Per header: its value made once, when it has no placeholder.
    pub fixed: Vec<Option<http::HeaderValue>>,
    /// Request body.
    pub body: Option<Body>,
    /// Limit on the whole request.
    pub timeout: Duration,
    /// The `name` tag; defaults to the URL (its template when it varies per
    /// VU or iteration, so templated URLs do not create a series per VU).
    pub name: Option<String>,
    /// The request's own tags (`tags: {kind: auth}`), on its series.
    pub tags: Vec<(String, String)>,
    /// Checks on the response.
    pub checks: Vec<Check>,
    /// Values taken from the response for the later steps.
    pub captures: Vec<Capture>,
    /// Sleep after the request.
    pub sleep: Option<Think>,
    /// Keep the response body even without a check reading it (the token
    /// manager reads the token from it).
    pub keep_body: bool,
    /// Position among the flow's requests (what per-VU tables index).
    pub index: usize,
    /// `responseType`, when the request sets it.
    pub response_type: Option<ResponseType>,
    /// The body is not kept (`discardResponseBodies`, `responseType: none`).
    pub discard_body: bool,
    /// The `group` tag (`::a::b`) when inside a group.
    pub group: Option<String>,
}

impl RequestStep {
    /// True when a check needs the response body kept.
    pub fn needs_body(&self) -> bool {
        !self.discard_body && self.keep_body
            || self.checks.iter().any(Check::needs_body)
            || self.captures.iter().any(Capture::needs_body)
    }

    /// Every template of the request: URL, header values, body.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let body = self.body.iter().flat_map(Body::templates);
        std::iter::once(&self.url).chain(self.headers.iter().map(|(_, h)| h)).chain(body)
    }
}

/// Reads one `request` object (method, url, headers, body, timeout, name);
/// the step's checks and sleep are added by the caller.
pub fn parse_request(request: Obj) -> Option<RequestStep> {
    parse_request_with(request, &[], None)
}

/// As [`parse_request`], with the flow variables `vars` known to its
/// templates.
pub(super) fn parse_request_with(request: Obj, vars: &[String], base: Option<&std::path::Path>) -> Option<RequestStep> {
    let template = |obj: &Obj, field: &str, text: &str| template_with(obj, field, text, vars);
    let report = request.report;
    let before = report.is_clean();
    let method = request.string("method").unwrap_or_else(|| "GET".into());
    let method = match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
        Ok(m) => Some(m),
        Err(_) => {
            request.error("method", format!("{method:?} is not an HTTP method"));
            None
        }
    };
    let url = request.require("url").and(request.string("url")).and_then(|u| {
        let t = template(&request, "url", &u)?;
        let lower = u.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://") || u.starts_with("{{")) {
            request.error("url", format!("{u:?} must start with http:// or https://"));
            return None;
        }
        Some(t)
    });
    let mut headers = Vec::new();
    for (name, value) in request.string_map("headers").unwrap_or_default() {
        let path = format!("headers.{name}");
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => {
                if let Some(t) = template(&request, &path, &value) {
                    headers.push((h, t));
                }
            }
            Err(_) => request.error(&path, "is not a valid header name"),
        }
    }
    let given: Vec<&str> = ["body", "form", "multipart"].into_iter().filter(|f| request.has(f)).collect();
    if given.len() > 1 {
        request.error(given[1], format!("a request has one body: {} or {}", given[0], given[1]));
    }
    let body = match request.get("body") {
        None => None,
        Some(serde_json::Value::String(s)) => template(&request, "body", s).map(Body::Text),
        Some(other @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            // A structured body is sent as JSON.
            if !headers.iter().any(|(h, _)| h == http::header::CONTENT_TYPE) {
                headers.push((http::header::CONTENT_TYPE, Template::parse("application/json").ok()?));
            }
            template(&request, "body", &other.to_string()).map(Body::Text)
        }
        Some(other) => template(&request, "body", &other.to_string()).map(Body::Text),
    };
    let body = body.or_else(|| form_body(&request, vars)).or_else(|| multipart_body(&request, vars, base));
    if let Some(kind) = body.as_ref().and_then(Body::content_type) {
        if !headers.iter().any(|(h, _)| h == http::header::CONTENT_TYPE) {
            headers.push((http::header::CONTENT_TYPE, Template::parse(&kind).ok()?));
        }
    }
    let timeout = request.duration("timeout").unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        request.error("timeout", "must be greater than 0");
    }
    let name = request.string("name");
    let response_type = match request.string("responseType").as_deref() {
        None => None,
        Some("text") => Some(ResponseType::Text),
        Some("binary") => Some(ResponseType::Binary),
        Some("none") => Some(ResponseType::None),
        Some(other) => {
            request.error("responseType", format!("{other:?} is not a response type (text, binary, none)"));
            None
        }
    };
    let tags = request.string_map("tags").unwrap_or_default();
    for (k, v) in &tags {
        let path = format!("tags.{k}");
        if SYSTEM_TAGS.contains(&k.as_str()) {
            let hint = if k == "name" { " (use the request's name field)" } else { "" };
            request.error(&path, format!("\"{k}\" is set by Volley itself{hint}"));
        }
        request.check_tag(&path, k, v);
    }
    request.finish_with(REQUEST_FIELDS);
    if !before || !report.is_clean() {
        return None;
    }
    let (method, url) = (method?, url?);
    let fixed = headers.iter().map(|(_, t)| t.as_text().and_then(|v| http::HeaderValue::from_str(v).ok())).collect();
    Some(RequestStep {
        method,
        url,
        headers,
        fixed,
        body,
        timeout,
        name,
        tags,
        checks: Vec::new(),
        captures: Vec::new(),
        sleep: None,
        keep_body: false,
        index: 0,
        response_type,
        discard_body: false,
        group: None,
    })
}

/// `form: {name: value}`: fields URL-encoded when sent.
fn form_body(request: &Obj, vars: &[String]) -> Option<Body> {
    let fields = request.string_map("form")?;
    let compiled = fields
        .iter()
        .filter_map(|(k, v)| template_with(request, &format!("form.{k}"), v, vars).map(|t| (k.clone(), t)))
        .collect::<Vec<_>>();
    (compiled.len() == fields.len()).then_some(Body::Form(compiled))
}

/// `multipart: {name: value, file: "@path"}`.
fn multipart_body(request: &Obj, vars: &[String], base: Option<&std::path::Path>) -> Option<Body> {
    let fields = request.string_map("multipart")?;
    let mut parts = Vec::new();
    for (k, v) in &fields {
        let path = format!("multipart.{k}");
        let part = match v.strip_prefix('@') {
            Some(file) => {
                let file = base.map_or_else(|| std::path::PathBuf::from(file), |b| b.join(file));
                body::read_file(&file).map_err(|e| request.error(&path, e)).ok()
            }
            None => template_with(request, &path, v, vars).map(body::Part::Field),
        };
        parts.extend(part.map(|p| (k.clone(), p)));
    }
    (parts.len() == fields.len()).then(|| Body::Multipart(body::boundary(), parts))
}

/// Compiles `text`, reporting a bad placeholder on `field`.
pub fn template(obj: &Obj, field: &str, text: &str) -> Option<Template> {
    template_with(obj, field, text, &[])
}

/// As [`template`], with the flow variables `vars`.
fn template_with(obj: &Obj, field: &str, text: &str, vars: &[String]) -> Option<Template> {
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    match Template::parse_with(text, &vars) {
        Ok(t) => Some(t),
        Err(e) => {
            obj.error(field, e);
            None
        }
    }
}
