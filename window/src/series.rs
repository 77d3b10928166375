//! Metric kinds, units, tags and the key that names one series.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The four metric types of k6, with the same meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A sum of increments (`http_reqs`, `iterations`).
    Counter,
    /// A last value (`vus`).
    Gauge,
    /// A share of non-zero samples (`checks`, `http_req_failed`).
    Rate,
    /// A distribution (`http_req_duration`), kept as a DDSketch.
    Trend,
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Rate => "rate",
            MetricKind::Trend => "trend",
        })
    }
}

/// What a metric's values measure, for formatting and for sinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// A plain number.
    #[default]
    None,
    /// Milliseconds.
    Time,
    /// Bytes.
    Data,
}

/// A series' tags: sorted by name, names unique. Sorted so that equal tag sets
/// compare and hash equal whatever order they were given in; a tag set read
/// from the wire that is not in that order is refused, since lookups rely on
/// it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Vec<(String, String)>")]
pub struct Tags(Vec<(String, String)>);

impl TryFrom<Vec<(String, String)>> for Tags {
    type Error = String;

    fn try_from(pairs: Vec<(String, String)>) -> Result<Self, String> {
        match pairs.windows(2).find(|w| w[0].0 >= w[1].0) {
            None => Ok(Self(pairs)),
            Some(w) => Err(format!("tags are not sorted by unique name ({:?} before {:?})", w[0].0, w[1].0)),
        }
    }
}

impl Tags {
    /// An empty tag set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Builds a tag set; a later duplicate name wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut tags = Self::new();
        for (k, v) in pairs {
            tags.insert(k, v);
        }
        tags
    }

    /// Sets `name` to `value`, replacing an existing value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// The value of tag `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| self.0[i].1.as_str())
    }

    /// Iterates `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every tag of `selector` is present here with the same value
    /// (how k6 sub-metrics such as `http_req_duration{scenario:api}` select).
    pub fn contains_all(&self, selector: &Tags) -> bool {
        selector.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}:{v}")?;
        }
        Ok(())
    }
}

/// Names one series: a metric and a tag set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Metric name, e.g. `http_req_duration`.
    pub metric: String,
    /// The series' tags.
    pub tags: Tags,
}

impl SeriesKey {
    /// A series of `metric` with `tags`.
    pub fn new(metric: impl Into<String>, tags: Tags) -> Self {
        Self { metric: metric.into(), tags }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tags.is_empty() {
            f.write_str(&self.metric)
        } else {
            write!(f, "{}{{{}}}", self.metric, self.tags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_order_independent() {
        let a = Tags::from_pairs([("scenario", "a"), ("method", "GET")]);
        let b = Tags::from_pairs([("method", "GET"), ("scenario", "a")]);
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "method:GET,scenario:a");
    }

    #[test]
    fn selector_matching() {
        let tags = Tags::from_pairs([("scenario", "a"), ("status", "200")]);
        assert!(tags.contains_all(&Tags::from_pairs([("scenario", "a")])));
        assert!(!tags.contains_all(&Tags::from_pairs([("scenario", "b")])));
        assert!(!tags.contains_all(&Tags::from_pairs([("name", "x")])));
        assert!(tags.contains_all(&Tags::new()));
    }
}
