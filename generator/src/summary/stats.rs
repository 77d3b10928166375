//! Trend statistics of the summary (`summaryTrendStats`).

use serde_json::Value;
use std::fmt;
use volley_window::Sketch;

/// One trend column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrendStat {
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Median.
    Med,
    /// Maximum.
    Max,
    /// Number of samples.
    Count,
    /// Percentile 0..=100.
    P(f64),
}

impl fmt::Display for TrendStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrendStat::Avg => f.write_str("avg"),
            TrendStat::Min => f.write_str("min"),
            TrendStat::Med => f.write_str("med"),
            TrendStat::Max => f.write_str("max"),
            TrendStat::Count => f.write_str("count"),
            TrendStat::P(p) => write!(f, "p({p})"),
        }
    }
}

impl TrendStat {
    /// The statistic of `sketch`; `None` when empty.
    pub fn of(self, sketch: &Sketch) -> Option<f64> {
        match self {
            TrendStat::Avg => sketch.mean(),
            TrendStat::Min => sketch.min(),
            TrendStat::Med => sketch.quantile(0.5),
            TrendStat::Max => sketch.max(),
            TrendStat::Count => Some(sketch.count() as f64),
            TrendStat::P(p) => sketch.quantile(p / 100.0),
        }
    }

    /// Parses `avg`, `min`, `med`, `max`, `count` or `p(N)`.
    pub fn parse(text: &str) -> Result<TrendStat, String> {
        Ok(match text.trim() {
            "avg" => TrendStat::Avg,
            "min" => TrendStat::Min,
            "med" => TrendStat::Med,
            "max" => TrendStat::Max,
            "count" => TrendStat::Count,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let n: f64 = p[2..p.len() - 1].trim().parse().map_err(|_| format!("{p:?} is not a percentile"))?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(format!("{p:?}: percentile outside 0..100"));
                }
                TrendStat::P(n)
            }
            other => return Err(format!("unknown statistic {other:?} (expected avg, min, med, max, count or p(N))")),
        })
    }
}

/// k6's default columns: avg, min, med, max, p(90), p(95).
pub fn default_trend_stats() -> Vec<TrendStat> {
    vec![TrendStat::Avg, TrendStat::Min, TrendStat::Med, TrendStat::Max, TrendStat::P(90.0), TrendStat::P(95.0)]
}

/// Reads the `summaryTrendStats` list.
pub fn parse_trend_stats(items: &[Value]) -> Result<Vec<TrendStat>, String> {
    if items.is_empty() {
        return Err("must name at least one statistic".into());
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => TrendStat::parse(s),
            other => Err(format!("must be a list of strings such as \"p(99)\", found {other}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let items = vec![Value::from("avg"), Value::from("p(99.9)"), Value::from("count")];
        assert_eq!(parse_trend_stats(&items).unwrap(), vec![TrendStat::Avg, TrendStat::P(99.9), TrendStat::Count]);
        assert!(parse_trend_stats(&[Value::from("mean")]).unwrap_err().contains("unknown statistic \"mean\""));
        assert_eq!(TrendStat::P(99.9).to_string(), "p(99.9)");
        assert_eq!(TrendStat::P(95.0).to_string(), "p(95)");
    }
}
