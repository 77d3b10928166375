//! Grafana's side of the dashboard tests, without a Grafana: the provisioned
//! files of `grafana/`, the queries in them, and the substitutions Grafana
//! makes before an InfluxQL query reaches the database (its backend's
//! `$timeFilter`, `$__interval`, `$__interval_ms`, and the template
//! variables, multi-value ones as a regex alternation).

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The workspace root (the directory holding `grafana/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A YAML file of the repository, as JSON values.
pub fn read_yaml(rel: &str) -> Value {
    let path = repo_root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// One dashboard file of `grafana/dashboards/`.
pub struct Dashboard {
    /// File name, for messages.
    pub file: String,
    /// The parsed JSON model.
    pub json: Value,
}

impl Dashboard {
    /// Its `uid`.
    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or("")
    }

    /// Every panel, the panels of collapsed rows included.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for p in self.json["panels"].as_array().into_iter().flatten() {
            out.push(p);
            out.extend(p["panels"].as_array().into_iter().flatten());
        }
        out
    }

    /// The template variables.
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"].as_array().into_iter().flatten().collect()
    }
}

/// Every `*.json` of `grafana/dashboards/`, parsed; panics naming a file
/// that is not valid JSON.
pub fn dashboards() -> Vec<Dashboard> {
    let dir = repo_root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {file}: {e}"));
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not valid JSON: {e}"));
            Dashboard { file, json }
        })
        .collect()
}

/// What Grafana substitutes in a query: the time range and interval of the
/// request and the current values of the template variables.
pub struct Macros {
    /// Start of the time range, Unix milliseconds.
    pub from_ms: u64,
    /// End of the time range, Unix milliseconds.
    pub to_ms: u64,
    /// `$__interval`, milliseconds (a whole number of seconds).
    pub interval_ms: u64,
    /// Template variables by name, already formatted.
    pub vars: BTreeMap<String, String>,
}

impl Macros {
    /// The query as Grafana sends it to InfluxDB. `$timeFilter` renders as
    /// Grafana's backend does (`pkg/tsdb/influxdb/models/query.go`).
    pub fn expand(&self, query: &str) -> String {
        let mut q = query.replace("$timeFilter", &format!("time >= {}ms and time <= {}ms", self.from_ms, self.to_ms));
        q = q.replace("$__interval_ms", &self.interval_ms.to_string());
        q = q.replace("$__interval", &format!("{}s", self.interval_ms / 1000));
        // Longest names first, so `$scenario_x` is not taken for `$scenario`.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for name in names {
            q = q.replace(&format!("${{{name}}}"), &self.vars[name]);
            q = q.replace(&format!("${name}"), &self.vars[name]);
        }
        q
    }
}

/// A `$name` left in a query after expansion (a variable no dashboard
/// defines), ignoring the `$` that ends a regex (`/^…$/`).
pub fn unexpanded(query: &str) -> Option<String> {
    let b = query.as_bytes();
    (0..b.len()).find_map(|i| {
        let next = *b.get(i + 1)?;
        (b[i] == b'$' && (next.is_ascii_alphabetic() || next == b'_' || next == b'{'))
            .then(|| query[i..].chars().take_while(|c| !c.is_whitespace()).collect())
    })
}

/// A multi-value variable as Grafana formats it inside an InfluxQL regex:
/// each value regex-escaped, joined with `|` in parentheses (a single value
/// stays bare).
pub fn regex_alternation(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars().fold(String::new(), |mut s, c| {
                if "\\^$.|?*+()[]{}/".contains(c) {
                    s.push('\\');
                }
                s.push(c);
                s
            })
        })
        .collect();
    match escaped.len() {
        1 => escaped[0].clone(),
        _ => format!("({})", escaped.join("|")),
    }
}

/// Checks an InfluxDB `/query` answer the way a panel would show it: an
/// error, no series, or only empty values is a failure (with the reason).
pub fn has_values(answer: &Value) -> Result<(), String> {
    let r = &answer["results"][0];
    if let Some(e) = r["error"].as_str() {
        return Err(format!("InfluxDB error: {e}"));
    }
    let series = r["series"].as_array().ok_or("no series")?;
    let any = series.iter().any(|s| {
        s["values"].as_array().into_iter().flatten().any(|row| {
            row.as_array().is_some_and(|cells| cells.iter().skip(1).any(|v| !v.is_null()))
                || (s["columns"].as_array().map_or(0, |c| c.len()) == 1 && !row[0].is_null())
        })
    });
    if any {
        Ok(())
    } else {
        Err(format!("{} series, all values empty", series.len()))
    }
}

/// The `value` column of a `SHOW TAG VALUES` answer, over every series.
pub fn tag_values(answer: &Value) -> Vec<String> {
    let mut out: Vec<String> = answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .filter_map(|row| row[1].as_str().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Per series (its tags as `k=v,…`), the last non-empty value of the first
/// value column: what a `reduce` expression with reducer `last` and mode
/// `dropNN` hands to a threshold.
pub fn last_values(answer: &Value) -> Vec<(String, f64)> {
    answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let tags = s["tags"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>())
                .unwrap_or_default()
                .join(",");
            let last = s["values"].as_array()?.iter().rev().find_map(|row| row[1].as_f64())?;
            Some((tags, last))
        })
        .collect()
}
