//! Dotted JSON paths (`items.0.id`, `$.a.b`): numeric segments index lists.
//! Used by HTTP checks and by the IM flows' frame recognisers.

use serde_json::Value;

/// A compiled path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(Vec<String>);

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl JsonPath {
    /// Parses `a.b.0` (a leading `$.` is allowed); `None` when empty.
    pub fn parse(path: &str) -> Option<JsonPath> {
        let trimmed = path.strip_prefix("$.").unwrap_or(path);
        if trimmed.is_empty() || trimmed.split('.').any(str::is_empty) {
            return None;
        }
        Some(JsonPath(trimmed.split('.').map(str::to_string).collect()))
    }

    /// The value at this path in `doc`.
    pub fn get<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        let mut node = doc;
        for seg in &self.0 {
            node = match node {
                Value::Object(map) => map.get(seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The path as written, without `$.`.
    pub fn display(&self) -> String {
        self.0.join(".")
    }
}

/// JSON equality where `3` equals `3.0`.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_objects_and_lists() {
        let doc: Value = serde_json::json!({"a": {"items": [{"id": 7}]}});
        assert_eq!(JsonPath::parse("$.a.items.0.id").unwrap().get(&doc), Some(&Value::from(7)));
        assert_eq!(JsonPath::parse("a.items.1.id").unwrap().get(&doc), None);
        assert!(JsonPath::parse("").is_none() && JsonPath::parse("a..b").is_none());
        assert!(json_equal(&Value::from(3), &serde_json::json!(3.0)));
    }
}
