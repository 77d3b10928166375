//! `--out json=FILE` and `--out csv=FILE`: merged windows appended to a
//! file, one line per window and series (k6 writes one per sample; a
//! window's line carries the summary of its samples instead, so the file
//! grows with time and series, not with requests).
//!
//! JSON lines, with k6's field names:
//!
//! ```text
//! {"type":"Point","metric":"http_req_duration","data":{"time":"2026-12-06T04:00:01.000Z","window_ms":1000,
//!  "value":1.9,"count":120,"min":0.4,"max":9.1,"avg":1.9,"med":1.6,"p(90)":3.2,"p(95)":4.0,"p(99)":7.7,
//!  "tags":{"method":"GET","name":"…","scenario":"…","status":"200"}}}
//! ```
//!
//! `value` is a counter's count, a gauge's value, a rate's share of
//! passes, a trend's mean. A finished test's run totals follow as
//! `"type":"Summary"` lines. CSV has one column per field, the tags k6 has
//! columns for, and the others in `extra_tags` (`k=v&k=v`).
//!
//! The file is created (truncated) when the output starts; each batch is
//! appended in one write, so a reader sees whole lines.

use super::{Item, Prepared, Sink, SinkError, WriteFuture, WriteOk};
use crate::timefmt::rfc3339;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use volley_window::{Aggregate, SeriesWindow};

/// The file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON lines.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Where a file output writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTarget {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: FileFormat,
}

/// Tags CSV gives a column of their own, in order.
const CSV_TAGS: &[&str] = &["check", "expected_response", "group", "method", "name", "scenario", "status", "url"];
/// The CSV header.
const CSV_HEADER: &str = "metric_name,timestamp,window_ms,metric_value,count,min,max,avg,med,p90,p95,p99,passes,fails,\
check,expected_response,group,method,name,scenario,status,url,extra_tags\n";

/// Appends lines to one file.
pub struct FileSink {
    name: String,
    target: FileTarget,
    file: std::sync::Arc<parking_lot::Mutex<std::fs::File>>,
}

impl FileSink {
    /// Creates (truncates) the file; CSV starts with its header.
    pub fn new(target: FileTarget) -> Result<Self, String> {
        let name =
            format!("{} {}", if target.format == FileFormat::Json { "json" } else { "csv" }, target.path.display());
        let mut file =
            std::fs::File::create(&target.path).map_err(|e| format!("--out {name}: cannot create the file: {e}"))?;
        if target.format == FileFormat::Csv {
            file.write_all(CSV_HEADER.as_bytes()).map_err(|e| format!("--out {name}: {e}"))?;
        }
        Ok(Self { name, target, file: std::sync::Arc::new(parking_lot::Mutex::new(file)) })
    }

    /// The lines of a batch and how many.
    pub fn encode(&self, batch: &[Item]) -> (String, u64) {
        let mut out = String::with_capacity(batch.len() * 256);
        let mut lines = 0;
        for item in batch {
            let (kind, time_ms, len_ms, series, extra) = match item {
                Item::Window(w) => ("Point", w.start_unix_ms, w.len_ms, &w.series, None),
                Item::Summary(s) => ("Summary", s.end_unix_ms, 0, &s.series, s.generator.as_deref()),
                Item::Health(_) | Item::Marker(_) => continue,
            };
            for sw in series {
                match self.target.format {
                    FileFormat::Json => json_line(&mut out, kind, time_ms, len_ms, sw, extra),
                    FileFormat::Csv => csv_line(&mut out, time_ms, len_ms, sw, extra),
                }
                lines += 1;
            }
        }
        (out, lines)
    }
}

/// The statistics of an aggregate: (value, count, min, max, avg, med, p90,
/// p95, p99, passes, fails), each when it applies.
type Stats = [Option<f64>; 11];

fn stats(a: &Aggregate) -> Stats {
    let mut s: Stats = [None; 11];
    match a {
        Aggregate::Counter(c) => {
            s[0] = Some(*c);
            s[1] = Some(*c);
        }
        Aggregate::Gauge { value, min, max } => {
            s[0] = Some(*value);
            s[2] = Some(*min);
            s[3] = Some(*max);
        }
        Aggregate::Rate { passes, fails } => {
            s[0] = a.rate();
            s[1] = Some((passes + fails) as f64);
            s[9] = Some(*passes as f64);
            s[10] = Some(*fails as f64);
        }
        Aggregate::Trend(sk) => {
            s[0] = sk.mean();
            s[1] = Some(sk.count() as f64);
            s[2] = sk.min();
            s[3] = sk.max();
            s[4] = sk.mean();
            s[5] = sk.quantile(0.5);
            s[6] = sk.quantile(0.9);
            s[7] = sk.quantile(0.95);
            s[8] = sk.quantile(0.99);
        }
    }
    s
}

const JSON_KEYS: [&str; 11] =
    ["value", "count", "min", "max", "avg", "med", "p(90)", "p(95)", "p(99)", "passes", "fails"];

fn json_line(out: &mut String, kind: &str, time_ms: u64, len_ms: u64, sw: &SeriesWindow, generator: Option<&str>) {
    let mut data = serde_json::Map::new();
    data.insert("time".into(), rfc3339(time_ms).into());
    if len_ms > 0 {
        data.insert("window_ms".into(), len_ms.into());
    }
    for (key, v) in JSON_KEYS.iter().zip(stats(&sw.value)) {
        if let Some(v) = v.and_then(serde_json::Number::from_f64) {
            data.insert((*key).into(), v.into());
        }
    }
    let mut tags: serde_json::Map<String, serde_json::Value> =
        sw.key.tags.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    if let Some(g) = generator {
        tags.insert("generator".into(), g.into());
    }
    data.insert("tags".into(), tags.into());
    let line = serde_json::json!({"type": kind, "metric": sw.key.metric, "data": data});
    let _ = writeln!(out, "{line}");
}

fn csv_line(out: &mut String, time_ms: u64, len_ms: u64, sw: &SeriesWindow, generator: Option<&str>) {
    let mut fields: Vec<String> =
        vec![sw.key.metric.clone(), format!("{}.{:03}", time_ms / 1000, time_ms % 1000), len_ms.to_string()];
    fields.extend(stats(&sw.value).iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()));
    for tag in CSV_TAGS {
        fields.push(sw.key.tags.get(tag).unwrap_or("").to_string());
    }
    let mut extra: Vec<String> = sw
        .key
        .tags
        .iter()
        .filter(|(k, _)| !CSV_TAGS.contains(k))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if let Some(g) = generator {
        extra.push(format!("generator={}", encode(g)));
    }
    fields.push(extra.join("&"));
    let row: Vec<String> = fields.iter().map(|f| quote(f)).collect();
    let _ = writeln!(out, "{}", row.join(","));
}

/// A CSV field, quoted when it has a comma, a quote or a line break.
fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// `&` and `=` inside extra tags, percent-encoded.
fn encode(s: &str) -> String {
    s.replace('%', "%25").replace('&', "%26").replace('=', "%3D")
}

impl Sink for FileSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError> {
        let (text, points) = self.encode(batch);
        Ok(Prepared { body: bytes::Bytes::from(text), points })
    }

    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a> {
        Box::pin(async move {
            if batch.points == 0 {
                return Ok(WriteOk::default());
            }
            let (file, body) = (self.file.clone(), batch.body.clone());
            let name = self.name.clone();
            let written = tokio::task::spawn_blocking(move || file.lock().write_all(&body))
                .await
                .map_err(|e| SinkError::down(format!("{name}: {e}")))?;
            written.map_err(|e| SinkError::down(format!("{}: {e}", self.name)))?;
            Ok(WriteOk { points: batch.points, bytes: batch.body.len() as u64, refused: None })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::MergedWindow;
    use std::sync::Arc;
    use volley_window::{SeriesKey, Tags, Unit};

    fn window() -> Item {
        let mut sk = volley_window::Sketch::default();
        for v in [1.0, 2.0, 3.0, 4.0] {
            sk.add(v);
        }
        let series = vec![
            SeriesWindow {
                key: SeriesKey {
                    metric: "http_reqs".into(),
                    tags: Tags::from_pairs([("name", "a,b"), ("team", "x=y")]),
                },
                unit: Unit::None,
                value: Aggregate::Counter(7.0),
            },
            SeriesWindow {
                key: SeriesKey { metric: "http_req_duration".into(), tags: Tags::from_pairs([("status", "200")]) },
                unit: Unit::Time,
                value: Aggregate::Trend(sk),
            },
        ];
        Item::Window(Arc::new(MergedWindow {
            test_id: "t".into(),
            start_unix_ms: 1_700_000_000_000,
            len_ms: 1000,
            series,
            reporters: 1,
        }))
    }

    #[test]
    fn json_lines_carry_k6_names() {
        let dir = std::env::temp_dir().join(format!("volley-file-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sink = FileSink::new(FileTarget { path: dir.join("out.json"), format: FileFormat::Json }).unwrap();
        let (text, n) = sink.encode(&[window()]);
        assert_eq!(n, 2);
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["type"], "Point");
        assert_eq!(lines[0]["metric"], "http_reqs");
        assert_eq!(lines[0]["data"]["value"], 7.0);
        assert_eq!(lines[0]["data"]["time"], "2023-11-14T22:13:20.000Z");
        assert_eq!(lines[0]["data"]["tags"]["name"], "a,b");
        assert_eq!(lines[1]["data"]["count"], 4.0);
        assert_eq!(lines[1]["data"]["avg"], 2.5);
        let csv = FileSink::new(FileTarget { path: dir.join("out.csv"), format: FileFormat::Csv }).unwrap();
        let (text, _) = csv.encode(&[window()]);
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("http_reqs,1700000000.000,1000,7,7,,,,,,,,,,"), "{first}");
        assert!(first.ends_with(",,,,\"a,b\",,,,team=x%3Dy"), "{first}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
