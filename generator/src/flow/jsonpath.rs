//! JSON paths as checks, captures and the IM flows' frame recognisers
//! write them: `$.user.id`, `items.0.id`, `items[0].id`, `orders[*].id`.
//!
//! A numeric segment indexes a list; `*` (or `[*]`) takes every element
//! of a list or every value of an object. [`JsonPath::get`] gives the first
//! match, [`JsonPath::all`] every match in document order.

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// An object key, or a list index when it is a number.
    Key(String),
    /// Every element (`*`, `[*]`).
    All,
}

/// A compiled path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
    /// As written, without `$.`.
    text: String,
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The most matches [`JsonPath::all`] collects: a list capture is bounded
/// by this as well as by the kept body.
pub const MAX_MATCHES: usize = 100_000;

impl JsonPath {
    /// Parses `a.b.0`, `a[0].b`, `a[*].id` (a leading `$.` or `$` is
    /// allowed); `None` when empty or malformed.
    pub fn parse(path: &str) -> Option<JsonPath> {
        let trimmed = path.strip_prefix("$.").or_else(|| path.strip_prefix('$')).unwrap_or(path);
        if trimmed.is_empty() {
            return None;
        }
        let mut segments = Vec::new();
        for part in trimmed.split('.') {
            let (key, mut brackets) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            match key {
                "" if brackets.is_empty() || !segments.is_empty() => return None,
                "" => {}
                "*" => segments.push(Segment::All),
                k => segments.push(Segment::Key(k.to_string())),
            }
            while !brackets.is_empty() {
                let close = brackets.find(']')?;
                let inner = brackets[1..close].trim();
                segments.push(match inner {
                    "*" => Segment::All,
                    n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Segment::Key(n.to_string()),
                    _ => return None,
                });
                brackets = &brackets[close + 1..];
                if !brackets.is_empty() && !brackets.starts_with('[') {
                    return None;
                }
            }
        }
        Some(JsonPath { segments, text: trimmed.to_string() })
    }

    /// The first value at this path in `doc`.
    pub fn get<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        let mut found = None;
        walk(doc, &self.segments, &mut |v| {
            found = Some(v);
            false
        });
        found
    }

    /// Every value at this path in `doc` (at most [`MAX_MATCHES`]).
    pub fn all<'v>(&self, doc: &'v Value) -> Vec<&'v Value> {
        let mut out = Vec::new();
        walk(doc, &self.segments, &mut |v| {
            out.push(v);
            out.len() < MAX_MATCHES
        });
        out
    }

    /// The path as written, without `$.`.
    pub fn display(&self) -> String {
        self.text.clone()
    }
}

/// Calls `found` for each match in document order until it returns false;
/// returns false once stopped.
fn walk<'v>(node: &'v Value, path: &[Segment], found: &mut dyn FnMut(&'v Value) -> bool) -> bool {
    let Some((first, rest)) = path.split_first() else { return found(node) };
    match (first, node) {
        (Segment::Key(k), Value::Object(map)) => map.get(k).is_none_or(|v| walk(v, rest, found)),
        (Segment::Key(k), Value::Array(items)) => {
            k.parse::<usize>().ok().and_then(|i| items.get(i)).is_none_or(|v| walk(v, rest, found))
        }
        (Segment::All, Value::Array(items)) => items.iter().all(|v| walk(v, rest, found)),
        (Segment::All, Value::Object(map)) => map.values().all(|v| walk(v, rest, found)),
        _ => true,
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
        assert_eq!(JsonPath::parse("a.items[0].id").unwrap().get(&doc), Some(&Value::from(7)));
        assert_eq!(JsonPath::parse("a.items.1.id").unwrap().get(&doc), None);
        for bad in ["", "a..b", "a[", "a[x]", "a[0]b", "$", ".a", "a.[0]"] {
            assert!(JsonPath::parse(bad).is_none(), "{bad:?} parsed");
        }
        assert!(json_equal(&Value::from(3), &serde_json::json!(3.0)));
    }

    #[test]
    fn wildcards_collect_every_match_in_order() {
        let doc: Value =
            serde_json::json!({"orders": [{"id": 1}, {"id": 2}, {"x": 0}, {"id": 3}], "m": {"a": 1, "b": 2}});
        let ids = JsonPath::parse("$.orders[*].id").unwrap();
        assert_eq!(ids.all(&doc), vec![&Value::from(1), &Value::from(2), &Value::from(3)]);
        assert_eq!(ids.get(&doc), Some(&Value::from(1)));
        assert_eq!(JsonPath::parse("orders.*.id").unwrap().all(&doc).len(), 3);
        assert_eq!(JsonPath::parse("m.*").unwrap().all(&doc).len(), 2);
        assert_eq!(JsonPath::parse("$[0]").unwrap().get(&serde_json::json!([5])), Some(&Value::from(5)));
        assert!(JsonPath::parse("nope[*]").unwrap().all(&doc).is_empty());
        let big = Value::Array(vec![Value::from(1); MAX_MATCHES + 5]);
        assert_eq!(JsonPath::parse("[*]").unwrap().all(&big).len(), MAX_MATCHES);
    }
}
