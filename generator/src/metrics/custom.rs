//! Custom metrics a scenario file defines (`metric:` steps of http flows).
//!
//! A metric definition carries a `&'static str` name so the hot path never
//! copies it; a custom name is therefore leaked once when first defined.
//! The set of names is bounded by the scenario file, and a name defined
//! again (by another step, or a plan loaded again) reuses its definition.

use super::builtin::{self, MetricDef};
use parking_lot::Mutex;
use volley_window::{MetricKind, Unit};

/// Custom metrics defined by this process, by name.
static DEFINED: Mutex<Vec<MetricDef>> = Mutex::new(Vec::new());

/// The longest metric name (k6's limit).
const MAX_NAME: usize = 128;

/// The metric `name` of type `kind`; an error when the name is not a valid
/// metric name, is a built-in metric, or was defined with another type.
pub fn define(name: &str, kind: MetricKind) -> Result<MetricDef, String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME;
    if !valid {
        return Err(format!(
            "{name:?} is not a metric name: letters, digits and _, not starting with a digit, at most {MAX_NAME}"
        ));
    }
    if builtin::find(name).is_some() {
        return Err(format!("\"{name}\" is a built-in metric; choose another name"));
    }
    let mut defined = DEFINED.lock();
    if let Some(d) = defined.iter().find(|d| d.name == name) {
        return if d.kind == kind {
            Ok(*d)
        } else {
            Err(format!("\"{name}\" is already a {} metric", kind_name(d.kind)))
        };
    }
    let def = MetricDef { name: Box::leak(name.to_string().into_boxed_str()), kind, unit: Unit::None };
    defined.push(def);
    Ok(def)
}

/// Every custom metric defined so far.
pub fn all() -> Vec<MetricDef> {
    DEFINED.lock().clone()
}

/// k6's name of a metric type.
pub fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Rate => "rate",
        MetricKind::Trend => "trend",
    }
}

/// The metric type named `name` in a scenario file.
pub fn parse_kind(name: &str) -> Option<MetricKind> {
    match name {
        "counter" => Some(MetricKind::Counter),
        "gauge" => Some(MetricKind::Gauge),
        "rate" => Some(MetricKind::Rate),
        "trend" => Some(MetricKind::Trend),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_types_kept() {
        let a = define("custom_test_items", MetricKind::Trend).unwrap();
        assert_eq!(a.name, "custom_test_items");
        let again = define("custom_test_items", MetricKind::Trend).unwrap();
        assert!(std::ptr::eq(a.name, again.name), "defined once");
        assert!(define("custom_test_items", MetricKind::Counter).unwrap_err().contains("already a trend"));
        assert!(define("http_reqs", MetricKind::Counter).unwrap_err().contains("built-in"));
        assert!(define("group_duration", MetricKind::Trend).unwrap_err().contains("built-in"));
        assert!(define("1x", MetricKind::Rate).unwrap_err().contains("not a metric name"));
        assert!(define(&"x".repeat(129), MetricKind::Rate).is_err());
        assert!(all().iter().any(|d| d.name == "custom_test_items"));
    }
}
