//! One threshold expression in k6 syntax: `p(95)<300`, `rate>0.99`,
//! `count >= 10`, `avg<200`, `value<5`.

use crate::MetricKind;
use std::fmt;

/// Which statistic of the metric is compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agg {
    /// Counter total.
    Count,
    /// Counter per second, or a rate's share of non-zero samples.
    Rate,
    /// Gauge value.
    Value,
    /// Trend mean.
    Avg,
    /// Trend minimum.
    Min,
    /// Trend maximum.
    Max,
    /// Trend median.
    Med,
    /// Trend percentile, 0..=100.
    Percentile(f64),
}

impl Agg {
    /// True when the aggregation exists for `kind` (as in k6).
    pub fn applies_to(self, kind: MetricKind) -> bool {
        match kind {
            MetricKind::Counter => matches!(self, Agg::Count | Agg::Rate),
            MetricKind::Gauge => matches!(self, Agg::Value),
            MetricKind::Rate => matches!(self, Agg::Rate),
            MetricKind::Trend => matches!(self, Agg::Avg | Agg::Min | Agg::Max | Agg::Med | Agg::Percentile(_)),
        }
    }
}

impl fmt::Display for Agg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Agg::Count => f.write_str("count"),
            Agg::Rate => f.write_str("rate"),
            Agg::Value => f.write_str("value"),
            Agg::Avg => f.write_str("avg"),
            Agg::Min => f.write_str("min"),
            Agg::Max => f.write_str("max"),
            Agg::Med => f.write_str("med"),
            Agg::Percentile(p) => write!(f, "p({p})"),
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `===`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Whether `observed <op> bound` holds.
    pub fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
            Op::Eq => observed == bound,
            Op::Ne => observed != bound,
        }
    }
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// The statistic.
    pub agg: Agg,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

/// Parses `agg op number`; the error says what is wrong.
pub fn parse(text: &str) -> Result<Expr, String> {
    let s = text.trim();
    let ops =
        [("===", Op::Eq), ("==", Op::Eq), ("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
    let (pos, len, op) = ops
        .iter()
        .filter_map(|(sym, op)| s.find(sym).map(|p| (p, sym.len(), *op)))
        .min_by_key(|(p, len, _)| (*p, usize::MAX - len))
        .ok_or_else(|| format!("{text:?} has no comparison (expected e.g. \"p(95)<300\" or \"rate>0.99\")"))?;
    let left = s[..pos].trim();
    let right = s[pos + len..].trim();
    let agg = match left {
        "count" => Agg::Count,
        "rate" => Agg::Rate,
        "value" => Agg::Value,
        "avg" => Agg::Avg,
        "min" => Agg::Min,
        "max" => Agg::Max,
        "med" => Agg::Med,
        p if p.starts_with("p(") && p.ends_with(')') => {
            let n: f64 = p[2..p.len() - 1]
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: {p:?} is not a percentile (expected e.g. p(95) or p(99.9))"))?;
            if !(0.0..=100.0).contains(&n) {
                return Err(format!("{text:?}: percentile {n} is outside 0..100"));
            }
            Agg::Percentile(n)
        }
        other => {
            return Err(format!(
                "{text:?}: unknown aggregation {other:?} (expected count, rate, value, avg, min, max, med or p(N))"
            ))
        }
    };
    let bound: f64 = right.parse().map_err(|_| format!("{text:?}: {right:?} is not a number"))?;
    Ok(Expr { agg, op, bound })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_expressions() {
        assert_eq!(parse("p(95)<300").unwrap(), Expr { agg: Agg::Percentile(95.0), op: Op::Lt, bound: 300.0 });
        assert_eq!(parse(" rate > 0.99 ").unwrap(), Expr { agg: Agg::Rate, op: Op::Gt, bound: 0.99 });
        assert_eq!(parse("count>=10").unwrap(), Expr { agg: Agg::Count, op: Op::Ge, bound: 10.0 });
        assert_eq!(parse("p(99.9)<=1.5").unwrap().agg, Agg::Percentile(99.9));
        assert_eq!(parse("value===3").unwrap().op, Op::Eq);
        assert_eq!(parse("avg!=0").unwrap().op, Op::Ne);
    }

    #[test]
    fn explains_malformed_expressions() {
        assert!(parse("p95<300").unwrap_err().contains("unknown aggregation \"p95\""));
        assert!(parse("p(95)").unwrap_err().contains("no comparison"));
        assert!(parse("p(95)<fast").unwrap_err().contains("\"fast\" is not a number"));
        assert!(parse("p(150)<3").unwrap_err().contains("outside 0..100"));
    }
}
