//! The report as one self-contained HTML file: summary tables rendered
//! here, charts drawn in the browser by `chart.js` (inlined) from the
//! points' numbers embedded as JSON. Nothing is loaded from elsewhere.
//!
//! The size is bounded by [`super::timeline::MAX_POINTS`] × the charted
//! series, whatever the test's length.

use super::timeline::{Cell, Point, Totals};
use serde_json::{json, Value};
use std::fmt::Write;
use volley_window::{Aggregate, SeriesKey, Unit};

/// One threshold's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The metric or sub-metric key as written.
    pub metric: String,
    /// The expression as written.
    pub expression: String,
    /// Whether it held.
    pub ok: bool,
    /// The statistic it was checked against, when known.
    pub observed: Option<f64>,
}

/// What a report is made of.
pub struct Input<'a> {
    /// Test run id.
    pub test_id: &'a str,
    /// Who made it: `volley run` on one generator, or the exporter's merge.
    pub source: String,
    /// The test's points, oldest first.
    pub points: &'a [Point],
    /// The run so far, exactly.
    pub total: &'a Totals,
    /// Width of a point.
    pub resolution_ms: u64,
    /// Generators that contributed.
    pub generators: Vec<String>,
    /// Thresholds; `None` takes them from the `threshold` gauges in the data.
    pub thresholds: Option<Vec<Verdict>>,
    /// Lines shown under the title (aborts, interruptions, data not merged).
    pub notes: Vec<String>,
}

/// Renders the page.
pub fn render(input: &Input<'_>) -> String {
    let all = input.total;
    let thresholds = input.thresholds.clone().unwrap_or_else(|| verdicts_from_gauges(input.points));
    let charts = charts(input.points);
    let data = json!({
        "t": input.points.iter().map(|p| p.start_ms).collect::<Vec<_>>(),
        "charts": charts,
    });
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("Volley report — {}", input.test_id);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{}</style></head><body>\n",
        esc(&title),
        STYLE
    );
    // First, so that an error in anything after it is shown on the page.
    out.push_str(
        "<script>window.onerror=function(m){var e=document.getElementById('errors');\
         if(e){e.textContent+=m+'\\n';e.hidden=false;}document.body.setAttribute('data-errors','yes');};</script>\n",
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    out.push_str("<pre id=\"errors\" hidden></pre>\n");
    let span = all.covered_ms;
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} · {} · {} generator{} · charts at {} per point</p>",
        esc(&input.source),
        esc(&period(all)),
        input.generators.len(),
        if input.generators.len() == 1 { "" } else { "s" },
        esc(&duration(input.resolution_ms))
    );
    for n in &input.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(n));
    }

    out.push_str("<h2>Thresholds</h2>\n");
    if thresholds.is_empty() {
        out.push_str("<p>None defined.</p>\n");
    } else {
        let passed = thresholds.iter().filter(|t| t.ok).count();
        let _ = writeln!(
            out,
            "<p class=\"{}\">{} of {} passed</p>",
            if passed == thresholds.len() { "ok" } else { "fail" },
            passed,
            thresholds.len()
        );
        out.push_str("<table><tr><th></th><th>metric</th><th>threshold</th><th>observed</th></tr>\n");
        for t in &thresholds {
            let _ = writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if t.ok { "ok" } else { "fail" },
                if t.ok { "✓" } else { "✗" },
                esc(&t.metric),
                esc(&t.expression),
                t.observed.map_or("–".to_string(), plain)
            );
        }
        out.push_str("</table>\n");
    }

    let checks: Vec<(&SeriesKey, u64, u64)> = all
        .series
        .iter()
        .filter(|(k, _)| k.metric == "checks" && k.tags.get("check").is_some())
        .filter_map(|(k, e)| match e.value {
            Aggregate::Rate { passes, fails } => Some((k, passes, fails)),
            _ => None,
        })
        .collect();
    if !checks.is_empty() {
        out.push_str("<h2>Checks</h2>\n<table><tr><th>check</th><th>passed</th><th>failed</th><th>rate</th></tr>\n");
        for (k, passes, fails) in checks {
            let _ = writeln!(
                out,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td></tr>",
                if fails == 0 { "ok" } else { "fail" },
                esc(k.tags.get("check").unwrap_or_default()),
                passes,
                fails,
                100.0 * passes as f64 / (passes + fails).max(1) as f64
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Charts</h2>\n");
    for (i, c) in charts.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"chart\" data-chart=\"{i}\"><h3>{}</h3><div class=\"legend\">{}</div>\
             <canvas></canvas><div class=\"readout\"></div></div>",
            esc(c["title"].as_str().unwrap_or_default()),
            c["series"]
                .as_array()
                .map(|s| s
                    .iter()
                    .enumerate()
                    .map(|(n, s)| format!(
                        "<span><i style=\"background:{}\"></i>{}</span>",
                        COLORS[n % COLORS.len()],
                        esc(s["name"].as_str().unwrap_or_default())
                    ))
                    .collect::<String>())
                .unwrap_or_default()
        );
    }

    out.push_str("<h2>Metrics</h2>\n<table><tr><th>metric</th><th>type</th><th>value</th></tr>\n");
    let secs = span as f64 / 1000.0;
    let mut names: Vec<&str> = all.series.keys().map(|k| k.metric.as_str()).filter(|m| *m != "threshold").collect();
    names.dedup();
    for name in names {
        let Some(agg) = all.metric(name) else { continue };
        let unit = all.series.iter().find(|(k, _)| k.metric == name).map(|(_, e)| e.unit).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            agg.kind(),
            esc(&describe(&agg, unit, secs))
        );
    }
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Built from windows merged with DDSketch (relative accuracy 0.54%), never from raw samples.</p>"
    );
    let text = serde_json::to_string(&data).expect("JSON values serialize").replace("</", "<\\/");
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"volley-data\">{text}</script>\n<script>{}</script>\n</body></html>\n",
        include_str!("chart.js")
    );
    out
}

const COLORS: [&str; 6] = ["#2f6fdf", "#e0892f", "#d23c3c", "#3a9d5d", "#8a5cc7", "#6b6b6b"];

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:14px;margin:0 0 4px}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;vertical-align:top}\
tr.fail td{color:#b02020}.ok{color:#1d7a3a}.fail{color:#b02020}.meta{color:#666}.note{background:#fff4d6;padding:6px 10px}\
.chart{margin:18px 0}.chart canvas{width:100%;height:220px;display:block}.legend span{margin-right:14px;font-size:12px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}\
.readout{font:12px monospace;color:#555;min-height:16px}#errors{color:#b02020}";

/// Threshold verdicts from the `threshold` gauges: the newest point that has
/// each, failed when any generator's view failed there (`min` 0).
fn verdicts_from_gauges(points: &[Point]) -> Vec<Verdict> {
    let mut out: std::collections::BTreeMap<(String, String), bool> = Default::default();
    for p in points {
        for (k, e) in p.series.iter().filter(|(k, _)| k.metric == "threshold") {
            if let Cell::Gauge { min, .. } = e {
                let id =
                    (k.tags.get("metric").unwrap_or("").to_string(), k.tags.get("threshold").unwrap_or("").to_string());
                out.insert(id, *min >= 1.0);
            }
        }
    }
    out.into_iter().map(|((metric, expression), ok)| Verdict { metric, expression, ok, observed: None }).collect()
}

/// The chart definitions and their numbers, one value per point (null where
/// the point has none). Charts without any value are left out.
fn charts(points: &[Point]) -> Vec<Value> {
    type Pick = Box<dyn Fn(&Point) -> Option<f64>>;
    /// A chart: title, unit, and its lines.
    type ChartDef<'a> = (&'a str, &'a str, Vec<(&'a str, Pick)>);
    let per_second = |metric: &'static str| -> Pick {
        Box::new(move |p: &Point| match p.metric(metric) {
            Some(Cell::Counter(c)) if p.covered_ms > 0 => Some(c * 1000.0 / p.covered_ms as f64),
            _ => None,
        })
    };
    let quantile = |metric: &'static str, q: f64| -> Pick {
        Box::new(move |p: &Point| match p.metric(metric) {
            Some(Cell::Trend(t)) if q == 0.5 => t.p50,
            Some(Cell::Trend(t)) if q == 0.95 => t.p95,
            Some(Cell::Trend(t)) => t.p99,
            _ => None,
        })
    };
    let gauge_max = |metric: &'static str| -> Pick {
        Box::new(move |p: &Point| match p.metric(metric) {
            Some(Cell::Gauge { max, .. }) if max.is_finite() => Some(max),
            _ => None,
        })
    };
    let percent = |metric: &'static str, failed_is_pass: bool| -> Pick {
        Box::new(move |p: &Point| match p.metric(metric) {
            Some(Cell::Rate { passes, fails }) if passes + fails > 0 => {
                let bad = if failed_is_pass { passes } else { fails };
                Some(100.0 * bad as f64 / (passes + fails) as f64)
            }
            _ => None,
        })
    };
    let load = |f: fn(&super::timeline::Load, u64) -> Option<f64>| -> Pick {
        Box::new(move |p: &Point| p.load.as_ref().and_then(|l| f(l, p.covered_ms)))
    };
    let defs: Vec<ChartDef> = vec![
        (
            "Requests and iterations per second",
            "/s",
            vec![("http_reqs", per_second("http_reqs")), ("iterations", per_second("iterations"))],
        ),
        ("VUs", "", vec![("vus", gauge_max("vus")), ("vus_max", gauge_max("vus_max"))]),
        (
            "HTTP request duration",
            "ms",
            vec![
                ("p50", quantile("http_req_duration", 0.5)),
                ("p95", quantile("http_req_duration", 0.95)),
                ("p99", quantile("http_req_duration", 0.99)),
            ],
        ),
        (
            "Failures",
            "%",
            vec![("http_req_failed", percent("http_req_failed", true)), ("checks failed", percent("checks", false))],
        ),
        ("Dropped iterations per second", "/s", vec![("dropped_iterations", per_second("dropped_iterations"))]),
        (
            "Iteration duration",
            "ms",
            vec![("p50", quantile("iteration_duration", 0.5)), ("p99", quantile("iteration_duration", 0.99))],
        ),
        (
            "WebSocket connections and logins per second",
            "/s",
            vec![
                ("ws_connect_ok", per_second("ws_connect_ok")),
                ("ws_connect_fail", per_second("ws_connect_fail")),
                ("ws_auth_ok", per_second("ws_auth_ok")),
                ("ws_auth_fail", per_second("ws_auth_fail")),
            ],
        ),
        (
            "IM messages per second",
            "/s",
            vec![
                ("im_sent_total", per_second("im_sent_total")),
                ("im_recv_unique_total", per_second("im_recv_unique_total")),
                ("im_dup_total", per_second("im_dup_total")),
                ("im_reorder_total", per_second("im_reorder_total")),
            ],
        ),
        (
            "IM latency",
            "ms",
            vec![
                ("e2e p50", quantile("im_e2e_latency_ms", 0.5)),
                ("e2e p99", quantile("im_e2e_latency_ms", 0.99)),
                ("pong rtt p99", quantile("ws_pong_rtt_ms", 0.99)),
            ],
        ),
        ("Generator memory (RSS, all generators)", "MB", vec![("rss", load(|l, _| Some(l.rss_bytes as f64 / 1e6)))]),
        (
            "Generator CPU (% of one core, all generators)",
            "%",
            vec![("cpu", load(|l, covered| (covered > 0).then(|| 100.0 * l.cpu_seconds * 1000.0 / covered as f64)))],
        ),
    ];
    defs.into_iter()
        .filter_map(|(title, unit, series)| {
            let series: Vec<Value> = series
                .into_iter()
                .filter_map(|(name, pick)| {
                    let values: Vec<Option<f64>> = points.iter().map(|p| pick(p).map(round)).collect();
                    values.iter().any(Option::is_some).then(|| json!({"name": name, "values": values}))
                })
                .collect();
            (!series.is_empty()).then(|| json!({"title": title, "unit": unit, "series": series}))
        })
        .collect()
}

/// Four significant digits are plenty for a chart and keep the file small.
fn round(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { v } else { 0.0 };
    }
    let scale = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn describe(agg: &Aggregate, unit: Unit, secs: f64) -> String {
    match agg {
        Aggregate::Counter(c) => {
            let rate = if secs > 0.0 { c / secs } else { 0.0 };
            format!("{} ({}/s)", value(*c, unit), value(rate, unit))
        }
        Aggregate::Gauge { value: v, min, max } => {
            format!("{} (min {}, max {})", value(*v, unit), value(*min, unit), value(*max, unit))
        }
        Aggregate::Rate { passes, fails } => format!(
            "{:.2}% ({} of {})",
            100.0 * *passes as f64 / (passes + fails).max(1) as f64,
            passes,
            passes + fails
        ),
        Aggregate::Trend(s) => {
            let q = |x: f64| s.quantile(x).map_or("–".to_string(), |v| value(v, unit));
            format!(
                "avg {} min {} med {} p90 {} p95 {} p99 {} max {} (count {})",
                s.mean().map_or("–".to_string(), |v| value(v, unit)),
                s.min().map_or("–".to_string(), |v| value(v, unit)),
                q(0.5),
                q(0.9),
                q(0.95),
                q(0.99),
                s.max().map_or("–".to_string(), |v| value(v, unit)),
                s.count()
            )
        }
    }
}

fn value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Time if v >= 1000.0 => format!("{:.2}s", v / 1000.0),
        Unit::Time if v >= 1.0 => format!("{v:.2}ms"),
        Unit::Time => format!("{:.2}µs", v * 1000.0),
        Unit::Data if v >= 1e6 => format!("{:.1} MB", v / 1e6),
        Unit::Data if v >= 1e3 => format!("{:.1} kB", v / 1e3),
        Unit::Data => format!("{v:.0} B"),
        Unit::None => plain(v),
    }
}

fn plain(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn period(total: &Totals) -> String {
    if total.covered_ms == 0 {
        return "no windows yet".to_string();
    }
    format!("started {} UTC, {} of windows", utc(total.start_ms), duration(total.covered_ms))
}

/// `YYYY-MM-DD HH:MM:SS` from Unix milliseconds.
fn utc(ms: u64) -> String {
    crate::alert::webhook::rfc3339(ms)[..19].replace('T', " ")
}

fn duration(ms: u64) -> String {
    volley_window::duration::format_duration(std::time::Duration::from_millis(ms))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::Timeline;
    use volley_window::{Sketch, Tags};

    fn day_of_windows() -> Timeline {
        let mut t = Timeline::new();
        for i in 0..86_400u64 {
            let mut s = Sketch::new();
            s.add(1.0 + (i % 50) as f64);
            let reqs = SeriesKey::new("http_reqs", Tags::new());
            let dur = SeriesKey::new("http_req_duration", Tags::new());
            let vus = SeriesKey::new("vus", Tags::new());
            let thr = SeriesKey::new(
                "threshold",
                Tags::from_pairs([("metric", "http_req_duration"), ("threshold", "p(95)<300")]),
            );
            let series = [
                (&reqs, Unit::None, Aggregate::Counter(50_000.0)),
                (&dur, Unit::Time, Aggregate::Trend(s)),
                (&vus, Unit::None, Aggregate::gauge(100.0)),
                (&thr, Unit::None, Aggregate::gauge(1.0)),
            ];
            t.window(1_700_000_000_000 + i * 1000, 1000, series.iter().map(|(k, u, a)| (*k, *u, a)));
        }
        t
    }

    #[test]
    fn a_day_long_report_stays_small_and_carries_its_numbers() {
        let t = day_of_windows();
        let (points, total) = (t.points(), t.total());
        let html = render(&Input {
            test_id: "soak<1>",
            source: "volley-exporter".into(),
            points: &points,
            total: &total,
            resolution_ms: t.resolution_ms(),
            generators: vec!["g1".into()],
            thresholds: None,
            notes: vec![],
        });
        assert!(html.len() < 256 * 1024, "{} bytes", html.len());
        assert!(html.contains("Volley report — soak&lt;1&gt;"));
        assert!(html.contains("1 of 1 passed"), "the threshold gauge becomes a verdict");
        assert!(html.contains("<td>p(95)&lt;300</td>"));
        // 50,000 requests per second, exactly, over the whole day.
        assert!(html.contains("<td>http_reqs</td><td>counter</td><td>4320000000 (50000/s)</td>"), "{}", &html[..2000]);
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing is loaded from elsewhere");
        assert_eq!(html.matches("class=\"chart\"").count(), 3, "requests, VUs, latency");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}
