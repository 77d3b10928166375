//! `volley import har FILE.har`: a browser recording turned into a
//! scenario file that runs at once.
//!
//! Each recorded request becomes a request step with its method, URL,
//! headers and body, and a check of the status it got; the gaps between
//! requests become sleeps (think time, capped); the requests of each page
//! form a group named by the page's title. Left out, and counted in the
//! file's first line:
//! - static assets (images, style sheets, scripts, fonts, media), unless
//!   `--include-static`: a load test is about the application, and a CDN
//!   would serve them;
//! - the hops of a redirect the recording shows as requests of their own:
//!   the client follows redirects itself, so the request that got the 3xx
//!   is kept and checked against the status at the end of the chain;
//! - headers the client sets itself (`Host`, `Content-Length`, `Cookie`,
//!   which the per-VU cookie jar fills in, HTTP/2 pseudo-headers, …);
//! - requests that are not http(s) (`data:`, `ws:`, extensions).
//!
//! A recording is untrusted input: its size is bounded, and `{{` in a
//! recorded value is written as the literal `{{'{{'}}` so it never becomes
//! a placeholder.
//!
//! # Layout
//! - [`model`]: the HAR fields read.
//! - this file: the conversion and the command.

pub mod model;

use crate::config::duration::format_duration;
use model::{Entry, Har};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Duration;

/// Largest recording read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Most entries converted.
pub const MAX_ENTRIES: usize = 100_000;
/// Gaps shorter than this are not think time (the browser was busy).
const MIN_SLEEP_MS: f64 = 100.0;

/// How to convert.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// Keep static assets.
    pub include_static: bool,
    /// The longest sleep written (a recording left open for an hour is not
    /// an hour of think time).
    pub max_sleep: Duration,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { include_static: false, max_sleep: Duration::from_secs(30) }
    }
}

/// A converted recording.
#[derive(Debug)]
pub struct Imported {
    /// The scenario document.
    pub doc: Value,
    /// Requests written.
    pub requests: usize,
    /// Static assets left out.
    pub static_assets: usize,
    /// Redirect hops the client follows itself.
    pub redirects: usize,
    /// Entries that were not http(s).
    pub other: usize,
}

impl Imported {
    /// The scenario file: a comment saying what was left out, then YAML.
    pub fn to_yaml(&self, source: &str) -> String {
        let body = serde_yaml::to_string(&self.doc).unwrap_or_default();
        format!(
            "# Imported from {source} by volley import har: {} requests ({} static assets left out, {} redirect hops followed by the client, {} other entries skipped).\n{body}",
            self.requests, self.static_assets, self.redirects, self.other
        )
    }
}

/// Reads and converts `path`.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{} has {size} bytes; a recording may have at most {MAX_FILE_BYTES}", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let har: Har = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a HAR file: {e}", path.display()))?;
    convert(&har, opts).map_err(|e| format!("{}: {e}", path.display()))
}

/// Converts a parsed recording.
pub fn convert(har: &Har, opts: &ImportOptions) -> Result<Imported, String> {
    let entries = &har.log.entries;
    if entries.len() > MAX_ENTRIES {
        return Err(format!("{} entries; at most {MAX_ENTRIES} are converted", entries.len()));
    }
    let mut out = Imported { doc: Value::Null, requests: 0, static_assets: 0, redirects: 0, other: 0 };
    // (page, step) in order; the status each kept request ends with.
    let mut steps: Vec<(Option<String>, Value)> = Vec::new();
    let mut last: Option<(usize, &Entry)> = None;
    for entry in entries {
        let url = entry.request.url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url::Url::parse(url).is_err() {
            out.other += 1;
            continue;
        }
        if !opts.include_static && is_static(entry) {
            out.static_assets += 1;
            continue;
        }
        if let Some((step, prev)) = last {
            if redirects_to(prev, entry) {
                // The client follows it: the earlier step checks where the chain ends.
                out.redirects += 1;
                steps[step].1["checks"] = json!({"status": entry.response.status});
                last = Some((step, entry));
                continue;
            }
            if let Some(gap) = think_time(prev, entry, opts.max_sleep) {
                steps.push((entry.pageref.clone(), json!({"sleep": gap})));
            }
        }
        steps.push((entry.pageref.clone(), request_step(entry)));
        out.requests += 1;
        last = Some((steps.len() - 1, entry));
    }
    if out.requests == 0 {
        return Err("has no http(s) request to import".into());
    }
    out.doc = json!({
        "options": {"scenarios": {"recorded": {"executor": "per-vu-iterations", "vus": 1, "iterations": 1}}},
        "flows": {"default": {"type": "http", "steps": grouped(steps, har)}}
    });
    Ok(out)
}

/// Consecutive steps of one page in a group named by its title.
fn grouped(steps: Vec<(Option<String>, Value)>, har: &Har) -> Vec<Value> {
    let title = |id: &str| {
        let t = har.log.pages.iter().find(|p| p.id == id).map_or(id, |p| p.title.as_str());
        let t = t.replace("::", ":").trim().to_string();
        if t.is_empty() {
            id.to_string()
        } else {
            t
        }
    };
    let mut out: Vec<Value> = Vec::new();
    let mut current: Option<(String, Vec<Value>)> = None;
    for (page, step) in steps {
        match (&mut current, page.filter(|p| !p.is_empty() && !har.log.pages.is_empty())) {
            (Some((id, list)), Some(p)) if *id == p => list.push(step),
            (_, page) => {
                if let Some((id, list)) = current.take() {
                    out.push(json!({"group": title(&id), "steps": list}));
                }
                match page {
                    Some(p) => current = Some((p, vec![step])),
                    None => out.push(step),
                }
            }
        }
    }
    if let Some((id, list)) = current {
        out.push(json!({"group": title(&id), "steps": list}));
    }
    out
}

/// A request step: method, URL, headers, body, and a check of the status.
fn request_step(entry: &Entry) -> Value {
    let r = &entry.request;
    let mut request = Map::new();
    let method = if r.method.is_empty() { "GET".to_string() } else { r.method.to_ascii_uppercase() };
    if method != "GET" {
        request.insert("method".into(), method.into());
    }
    request.insert("url".into(), literal(&r.url).into());
    let mut headers = Map::new();
    for h in &r.headers {
        if !skipped_header(&h.name) {
            headers.insert(h.name.clone(), literal(&h.value).into());
        }
    }
    if let Some(post) = &r.post_data {
        let form = post.mime_type.starts_with("application/x-www-form-urlencoded") && !post.params.is_empty();
        if form {
            let fields: Map<String, Value> =
                post.params.iter().map(|p| (p.name.clone(), Value::from(literal(&p.value)))).collect();
            request.insert("form".into(), fields.into());
            headers.retain(|k, _| !k.eq_ignore_ascii_case("content-type"));
        } else if let Some(text) = post.text.as_ref().filter(|t| !t.is_empty()) {
            request.insert("body".into(), literal(text).into());
            if !post.mime_type.is_empty() && !headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
                headers.insert("Content-Type".into(), post.mime_type.clone().into());
            }
        }
    }
    if !headers.is_empty() {
        request.insert("headers".into(), headers.into());
    }
    let mut step = json!({"request": request});
    if entry.response.status != 0 {
        step["checks"] = json!({"status": entry.response.status});
    }
    step
}

/// Text as a template that renders exactly it.
fn literal(text: &str) -> String {
    text.replace("{{", "{{'{{'}}")
}

/// Headers the client sets itself, or that would replay stale state.
fn skipped_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with(':')
        || matches!(
            n.as_str(),
            "host"
                | "content-length"
                | "cookie"
                | "connection"
                | "keep-alive"
                | "accept-encoding"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "proxy-connection"
                | "http2-settings"
                | "if-none-match"
                | "if-modified-since"
        )
}

/// Images, style sheets, scripts, fonts and media, by the recorder's
/// resource type, the response's type or the URL's extension.
fn is_static(entry: &Entry) -> bool {
    if let Some(t) = &entry.resource_type {
        if matches!(t.as_str(), "image" | "stylesheet" | "script" | "font" | "media" | "manifest" | "texttrack") {
            return true;
        }
    }
    let mime = entry.response.content.mime_type.to_ascii_lowercase();
    if mime.starts_with("image/")
        || mime.starts_with("font/")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
        || mime.starts_with("text/css")
        || mime.contains("javascript")
    {
        return true;
    }
    let path = url::Url::parse(&entry.request.url).map(|u| u.path().to_ascii_lowercase()).unwrap_or_default();
    const EXT: &[&str] = &[
        ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".css", ".js", ".mjs", ".map", ".woff", ".woff2",
        ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3",
    ];
    EXT.iter().any(|e| path.ends_with(e))
}

/// True when `next` is the hop a redirect answer of `prev` points to.
fn redirects_to(prev: &Entry, next: &Entry) -> bool {
    if !matches!(prev.response.status, 301 | 302 | 303 | 307 | 308) {
        return false;
    }
    let Some(location) = prev.response.headers.iter().find(|h| h.name.eq_ignore_ascii_case("location")) else {
        return false;
    };
    let target = url::Url::parse(&prev.request.url).and_then(|base| base.join(&location.value));
    target.is_ok_and(|t| t.as_str() == next.request.url)
}

/// The pause between the end of `prev` and the start of `next`, when it is
/// long enough to be a person's (capped at `max`).
fn think_time(prev: &Entry, next: &Entry, max: Duration) -> Option<String> {
    let (a, b) = (unix_ms(&prev.started_date_time)?, unix_ms(&next.started_date_time)?);
    let gap = b - (a + prev.time.max(0.0));
    (gap >= MIN_SLEEP_MS).then(|| format_duration(Duration::from_millis(gap as u64).min(max)))
}

/// Milliseconds since the epoch of an ISO 8601 time
/// (`2026-12-06T04:00:01.123Z`, `…+01:00`).
pub fn unix_ms(text: &str) -> Option<f64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset_min) = match time.find(['Z', '+', '-']) {
        Some(i) => {
            let zone = &time[i..];
            let off = if zone == "Z" {
                0
            } else {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let (h, mi) = zone[1..].split_once(':').unwrap_or((zone.get(1..3)?, "0"));
                sign * (h.parse::<i64>().ok()? * 60 + mi.parse::<i64>().ok()?)
            };
            (&time[..i], off)
        }
        None => (time, 0),
    };
    let mut c = clock.splitn(3, ':');
    let (h, mi, s) = (c.next()?.parse::<i64>().ok()?, c.next()?.parse::<i64>().ok()?, c.next()?.parse::<f64>().ok()?);
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || !(0.0..61.0).contains(&s)
    {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 - offset_min * 60;
    Some(secs as f64 * 1000.0 + s * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(url: &str, start: &str, status: u16) -> Value {
        json!({"startedDateTime": start, "time": 50, "pageref": "p1",
               "request": {"method": "GET", "url": url, "headers": [{"name": "Accept", "value": "*/*"}, {"name": "Cookie", "value": "sid=1"}]},
               "response": {"status": status, "headers": [], "content": {"mimeType": "text/html"}}})
    }

    #[test]
    fn recordings_become_steps_with_think_time_groups_and_checks() {
        let mut login = entry("https://shop.test/login", "2026-12-06T04:00:00.000Z", 302);
        login["request"]["method"] = json!("POST");
        login["request"]["postData"] = json!({"mimeType": "application/x-www-form-urlencoded", "text": "u=a",
                                              "params": [{"name": "u", "value": "a{{b"}]});
        login["response"]["headers"] = json!([{"name": "Location", "value": "/me"}]);
        let me = entry("https://shop.test/me", "2026-12-06T04:00:00.060Z", 200);
        let mut logo = entry("https://shop.test/logo.png", "2026-12-06T04:00:00.100Z", 200);
        logo["response"]["content"]["mimeType"] = json!("image/png");
        let mut api = entry("https://shop.test/api", "2026-12-06T04:00:02.110Z", 201);
        api["pageref"] = json!("p2");
        let ws = entry("wss://shop.test/live", "2026-12-06T04:00:03Z", 101);
        let doc = json!({"log": {"pages": [{"id": "p1", "title": "Login"}, {"id": "p2", "title": ""}],
                                 "entries": [login, me, logo, api, ws]}});
        let har: Har = serde_json::from_value(doc).unwrap();
        let out = convert(&har, &ImportOptions::default()).unwrap();
        assert_eq!((out.requests, out.static_assets, out.redirects, out.other), (2, 1, 1, 1));
        let steps = &out.doc["flows"]["default"]["steps"];
        assert_eq!(steps[0]["group"], "Login");
        let first = &steps[0]["steps"][0];
        assert_eq!(first["request"]["method"], "POST");
        assert_eq!(first["request"]["form"]["u"], "a{{'{{'}}b");
        assert_eq!(first["checks"]["status"], 200, "checked where the redirect chain ends");
        assert!(first["request"]["headers"].get("Cookie").is_none());
        assert_eq!(steps[1]["group"], "p2");
        assert_eq!(steps[1]["steps"][0]["sleep"], "2s", "think time: 04:00:02.110 - (04:00:00.060 + 50ms)");
        assert_eq!(steps[1]["steps"][1]["checks"]["status"], 201);
        let with_static = convert(&har, &ImportOptions { include_static: true, ..Default::default() }).unwrap();
        assert_eq!(with_static.requests, 3);
        // The result is a valid scenario.
        let yaml = out.to_yaml("x.har");
        assert!(yaml.starts_with("# Imported from x.har by volley import har: 2 requests (1 static"));
        let doc: Value = serde_yaml::from_str(&yaml).unwrap();
        crate::config::load(&doc, &Default::default()).unwrap();
    }

    #[test]
    fn times_and_bad_recordings() {
        assert_eq!(unix_ms("1970-01-01T00:00:01.500Z"), Some(1500.0));
        assert_eq!(unix_ms("2026-12-06T05:00:00+01:00"), unix_ms("2026-12-06T04:00:00Z"));
        assert_eq!(unix_ms("2000-02-29T00:00:00Z"), Some(951_782_400_000.0));
        assert_eq!(unix_ms("yesterday"), None);
        let empty: Har = serde_json::from_value(json!({"log": {"entries": []}})).unwrap();
        assert!(convert(&empty, &ImportOptions::default()).unwrap_err().contains("no http(s) request"));
    }

    proptest! {
        /// Any bytes: a recording or an error, never a panic.
        #[test]
        fn any_bytes_convert_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300), t in "\\PC{0,40}") {
            if let Ok(har) = serde_json::from_slice::<Har>(&bytes) {
                let _ = convert(&har, &ImportOptions::default());
            }
            let _ = unix_ms(&t);
        }
    }
}
