//! Volley's InfluxDB schema, written as line protocol.
//!
//! Binding (dashboards and alert rules query it; the README documents it):
//!
//! - one measurement per metric name (`http_req_duration`, `iterations`, …);
//! - tags: `testid`, then the series' own tags (`scenario`, `method`,
//!   `status`, `name`, `url`, `expected_response`, `check`, user tags);
//! - counters: integer field `count`, the window's increment;
//! - rates: integer `passes` and `fails`, float `rate`;
//! - trends: integer `count`, floats `sum`, `min`, `max`, `mean`, `p50`,
//!   `p90`, `p95`, `p99`, `p999` (milliseconds for time trends), all from the
//!   merged sketch;
//! - gauges: `value` (the window's last), `min`, `max`;
//! - timestamp: the window start, millisecond precision.
//!
//! Per-generator health goes to measurement `generator_health` with tags
//! `testid` and `generator`. When a test ends, its run totals go to
//! measurement `run_summary`, one point per metric (tags `testid`, `metric`,
//! `check` for each check, and `generator` when a generator of a fleet
//! writes directly), with the same fields as a window's point,
//! at the end of the last window. Because a window's point always carries the
//! whole merged window, writing it again (a late report, a replay after a
//! restart) overwrites the same series and timestamp with the same or more
//! complete values: writes are idempotent.

use crate::merge::{HealthPoint, MergedWindow, RunSummary};
use std::fmt::Write as _;
use volley_window::{Aggregate, SeriesKey};

/// Quantiles written for every trend, with their field names.
pub const QUANTILES: [(&str, f64); 5] = [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)];

/// Appends one line per series of `w` to `out`; returns the number of lines.
pub fn encode_window(w: &MergedWindow, out: &mut String) -> usize {
    let mut lines = 0;
    for s in &w.series {
        let start = out.len();
        series_prefix(&s.key, &w.test_id, out);
        let fields_at = out.len();
        aggregate_fields(&s.value, out);
        if out.len() == fields_at {
            // Nothing measurable (an empty trend): no line at all.
            out.truncate(start);
            continue;
        }
        let _ = writeln!(out, " {}", w.start_unix_ms);
        lines += 1;
    }
    lines
}

/// The fields of one aggregate (none for an empty trend).
fn aggregate_fields(value: &Aggregate, out: &mut String) {
    let mut f = Fields { out, first: true };
    match value {
        Aggregate::Counter(c) => f.int("count", c.round() as i64),
        Aggregate::Gauge { value, min, max } => {
            f.float("value", *value);
            f.float("min", *min);
            f.float("max", *max);
        }
        Aggregate::Rate { passes, fails } => {
            f.int("passes", saturating(*passes));
            f.int("fails", saturating(*fails));
            let total = *passes as f64 + *fails as f64;
            if total > 0.0 {
                f.float("rate", *passes as f64 / total);
            }
        }
        Aggregate::Trend(sk) => {
            if !sk.is_empty() {
                f.int("count", saturating(sk.count()));
                f.float("sum", sk.sum());
                f.opt("min", sk.min());
                f.opt("max", sk.max());
                f.opt("mean", sk.mean());
                for (name, q) in QUANTILES {
                    f.opt(name, sk.quantile(q));
                }
            }
        }
    }
}

/// Appends the `run_summary` lines of a finished test; returns their number.
pub fn encode_summary(r: &RunSummary, out: &mut String) -> usize {
    let mut lines = 0;
    for s in &r.series {
        let start = out.len();
        out.push_str("run_summary");
        if let Some(check) = s.key.tags.get("check") {
            out.push_str(",check=");
            escape_tag(check, out);
        }
        if let Some(generator) = &r.generator {
            out.push_str(",generator=");
            escape_tag(generator, out);
        }
        out.push_str(",metric=");
        escape_tag(&s.key.metric, out);
        push_test(&r.test_id, out);
        let fields_at = out.len();
        aggregate_fields(&s.value, out);
        if out.len() == fields_at {
            out.truncate(start);
            continue;
        }
        let _ = writeln!(out, " {}", r.end_unix_ms);
        lines += 1;
    }
    lines
}

/// Appends the `generator_health` line of one generator's window.
pub fn encode_health(h: &HealthPoint, out: &mut String) {
    out.push_str("generator_health,generator=");
    escape_tag(&h.generator, out);
    out.push_str(",testid=");
    escape_tag(&h.test_id, out);
    let r = &h.health;
    let mut f = Fields { out, first: true };
    f.int("rss_bytes", saturating(r.rss_bytes));
    f.float("cpu_seconds", r.cpu_seconds);
    if h.len_ms > 0 {
        f.float("cpu_percent", 100.0 * r.cpu_seconds * 1000.0 / h.len_ms as f64);
    }
    f.int("active_vus", saturating(r.active_vus));
    f.int("dropped_iterations", saturating(r.dropped_iterations));
    f.opt("start_lag_p99", r.start_lag_p99_ms);
    f.int("windows_buffered", saturating(r.windows_buffered));
    f.int("windows_dropped", saturating(r.windows_dropped));
    let _ = writeln!(out, " {}", h.start_unix_ms);
}

fn series_prefix(key: &SeriesKey, test_id: &str, out: &mut String) {
    escape_measurement(&key.metric, out);
    // Tags in key order: `testid` sorts among the series' own tags.
    let mut test_written = false;
    for (k, v) in key.tags.iter() {
        if k.is_empty() || v.is_empty() || k == "testid" {
            continue;
        }
        if !test_written && k > "testid" {
            push_test(test_id, out);
            test_written = true;
        }
        out.push(',');
        escape_tag(k, out);
        out.push('=');
        escape_tag(v, out);
    }
    if !test_written {
        push_test(test_id, out);
    }
}

fn push_test(test_id: &str, out: &mut String) {
    out.push_str(",testid=");
    escape_tag(test_id, out);
}

/// Line protocol integers are signed 64-bit: larger counts are written as
/// the largest one instead of wrapping to a negative number.
fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    fn sep(&mut self, name: &str) {
        self.out.push(if std::mem::take(&mut self.first) { ' ' } else { ',' });
        self.out.push_str(name);
        self.out.push('=');
    }

    fn int(&mut self, name: &str, v: i64) {
        self.sep(name);
        let _ = write!(self.out, "{v}i");
    }

    /// NaN and infinities cannot be written: the field is left out.
    fn float(&mut self, name: &str, v: f64) {
        if v.is_finite() {
            self.sep(name);
            let _ = write!(self.out, "{v}");
        }
    }

    fn opt(&mut self, name: &str, v: Option<f64>) {
        if let Some(v) = v {
            self.float(name, v);
        }
    }
}

fn escape_measurement(s: &str, out: &mut String) {
    // A line starting with `#` is a comment: the point would vanish.
    if s.starts_with('#') {
        out.push('_');
    }
    // InfluxDB 1.x unescapes measurement names differently from tags (a
    // backslash before a quote or another backslash disappears), so none
    // is written: metric names never need one (see `storable_metric`).
    let plain: String = s.chars().map(|c| if c == '\\' { '/' } else { c }).collect();
    escape(&plain, &[',', ' '], out);
}

fn escape_tag(s: &str, out: &mut String) {
    escape(s, &[',', ' ', '='], out);
}

/// Writes `s` so that InfluxDB reads back exactly `s` wherever line protocol
/// can say it (see [`storable`]): `special` characters are escaped with a
/// backslash, and every other backslash is written as is, because InfluxDB
/// (1.x and 2.x) unescapes only `\,`, `\ ` and `\=` and keeps any other
/// backslash literally. What it cannot say is made harmless instead of
/// breaking the batch: a control character (a line break would end the
/// line) becomes a space, and a backslash just before a special character
/// or at the end (InfluxDB would read it as an escape) becomes `/`.
/// Configured names that would need this are refused when a scenario is
/// loaded; only values seen at run time (URLs) can get here.
fn escape(s: &str, special: &[char], out: &mut String) {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    let mut chars = s.chars().map(clean).peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let escapes_next = chars.peek().is_none_or(|n| special.contains(n));
            out.push(if escapes_next { '/' } else { '\\' });
            continue;
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whether InfluxDB stores `s` unchanged as a measurement (a metric name):
/// as [`storable`], and no backslash.
pub fn storable_metric(s: &str) -> Result<(), String> {
    storable(s)?;
    if s.contains('\\') {
        return Err("contains a backslash".into());
    }
    Ok(())
}

/// Whether InfluxDB stores `s` unchanged as a tag key or value, or a test
/// id: not empty, no control character, no
/// backslash before `,`, `=`, a space or the end, and no `#` in front
/// (a line starting with one is a comment). The error says why not.
pub fn storable(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.starts_with('#') {
        return Err("starts with '#' (a comment in InfluxDB's line protocol)".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    let chars: Vec<char> = s.chars().collect();
    let bad = chars
        .iter()
        .enumerate()
        .any(|(i, c)| *c == '\\' && chars.get(i + 1).is_none_or(|n| matches!(n, ',' | '=' | ' ')));
    if bad {
        return Err("has a backslash before ',', '=', a space or the end, which InfluxDB reads as an escape".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_window::{HealthRecord, SeriesWindow, Sketch, Tags, Unit};

    fn window(series: Vec<SeriesWindow>) -> MergedWindow {
        MergedWindow { test_id: "t 1".into(), start_unix_ms: 1_700_000_000_000, len_ms: 1000, series, reporters: 2 }
    }

    fn sw(metric: &str, tags: &[(&str, &str)], value: Aggregate) -> SeriesWindow {
        SeriesWindow { key: SeriesKey::new(metric, Tags::from_pairs(tags.iter().copied())), unit: Unit::None, value }
    }

    #[test]
    fn every_kind_has_its_fields() {
        let mut sk = Sketch::new();
        for v in 1..=100 {
            sk.add(v as f64);
        }
        let w = window(vec![
            sw("iterations", &[("scenario", "api")], Aggregate::Counter(42.0)),
            sw("checks", &[("check", "status is 200"), ("scenario", "api")], Aggregate::Rate { passes: 3, fails: 1 }),
            sw("vus", &[], Aggregate::Gauge { value: 5.0, min: 1.0, max: 7.5 }),
            sw("http_req_duration", &[("url", "http://h/a,b=c"), ("status", "200")], Aggregate::Trend(sk)),
            sw("iteration_duration", &[], Aggregate::Trend(Sketch::new())),
        ]);
        let mut out = String::new();
        assert_eq!(encode_window(&w, &mut out), 4);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "iterations,scenario=api,testid=t\\ 1 count=42i 1700000000000");
        assert_eq!(
            lines[1],
            "checks,check=status\\ is\\ 200,scenario=api,testid=t\\ 1 passes=3i,fails=1i,rate=0.75 1700000000000"
        );
        assert_eq!(lines[2], "vus,testid=t\\ 1 value=5,min=1,max=7.5 1700000000000");
        let trend = lines[3];
        assert!(trend.starts_with("http_req_duration,status=200,testid=t\\ 1,url=http://h/a\\,b\\=c count=100i,sum=5050,min=1,max=100,mean=50.5,p50="), "{trend}");
        for f in ["p90=", "p95=", "p99=", "p999="] {
            assert!(trend.contains(f), "{trend}");
        }
    }

    #[test]
    fn health_lines() {
        let h = HealthPoint {
            test_id: "t".into(),
            generator: "gen-1".into(),
            start_unix_ms: 5000,
            len_ms: 1000,
            health: HealthRecord {
                rss_bytes: 9_000_000,
                cpu_seconds: 0.25,
                active_vus: 10,
                dropped_iterations: 3,
                start_lag_p99_ms: Some(0.5),
                windows_buffered: 2,
                windows_dropped: 0,
            },
        };
        let mut out = String::new();
        encode_health(&h, &mut out);
        assert_eq!(
            out,
            "generator_health,generator=gen-1,testid=t rss_bytes=9000000i,cpu_seconds=0.25,cpu_percent=25,active_vus=10i,dropped_iterations=3i,start_lag_p99=0.5,windows_buffered=2i,windows_dropped=0i 5000\n"
        );
    }
}
