//! An http flow's variables during one iteration: captures (a text, or a
//! list with `all: true`), loop variables, and the data row and setup
//! values copied in when the iteration starts.
//!
//! Each variable has a slot fixed at load time, so templates read them by
//! index; the strings keep their capacity across iterations, so a VU's
//! steady state allocates nothing for them.

use crate::flow::template::Vars;

/// One variable's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A single value (`""` when unset).
    Text(String),
    /// Every match of an `all: true` capture.
    List(Vec<String>),
}

impl Default for Value {
    fn default() -> Self {
        Value::Text(String::new())
    }
}

impl Value {
    /// Forgets the value (keeping a text's capacity).
    pub fn clear(&mut self) {
        match self {
            Value::Text(s) => s.clear(),
            Value::List(_) => *self = Value::default(),
        }
    }

    /// Sets a text value, reusing the string's capacity.
    pub fn set_text(&mut self, text: &str) {
        match self {
            Value::Text(s) => {
                s.clear();
                s.push_str(text);
            }
            Value::List(_) => *self = Value::Text(text.to_string()),
        }
    }

    /// The `i`-th item: of a list, or the text itself as a list of one.
    pub fn item(&self, i: usize) -> Option<&str> {
        match self {
            Value::Text(s) => (i == 0).then_some(s.as_str()),
            Value::List(items) => items.get(i).map(String::as_str),
        }
    }

    /// How many items a loop over this value runs: a list's length, one
    /// for a non-empty text, none for an empty one.
    pub fn items(&self) -> usize {
        match self {
            Value::Text(s) => usize::from(!s.is_empty()),
            Value::List(items) => items.len(),
        }
    }
}

impl Vars for [Value] {
    /// A list renders as its items joined by commas (as a JavaScript array
    /// does in a template string).
    fn push_var(&self, slot: usize, out: &mut String) {
        match self.get(slot) {
            Some(Value::Text(s)) => out.push_str(s),
            Some(Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(item);
                }
            }
            None => {}
        }
    }

    fn length(&self, slot: usize) -> usize {
        match self.get(slot) {
            Some(Value::Text(s)) => s.chars().count(),
            Some(Value::List(items)) => items.len(),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::template::Template;
    use crate::flow::IterCtx;

    #[test]
    fn lists_render_joined_and_count_their_items() {
        let env = std::collections::HashMap::new();
        let ctx = IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let values = [Value::List(vec!["7".into(), "9".into()]), Value::Text("héllo".into())];
        let t = Template::parse_with("{{ids}}|{{ids.length}}|{{name.length}}|{{name}}", &["ids", "name"]).unwrap();
        let mut out = String::new();
        t.render_with(&ctx, &values[..], &mut out);
        assert_eq!(out, "7,9|2|5|héllo");
        assert_eq!((values[0].items(), values[1].items(), Value::default().items()), (2, 1, 0));
        assert_eq!((values[0].item(1), values[1].item(0), values[1].item(1)), (Some("9"), Some("héllo"), None));
        let mut v = values[0].clone();
        v.set_text("x");
        assert_eq!(v, Value::Text("x".into()));
    }
}
