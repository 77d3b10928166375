//! `if:` conditions of http flows: comparisons of rendered templates.
//!
//! ```text
//! {{orderIds.length}} > 0
//! {{role}} == 'admin' and not ({{count}} >= 10 or {{vip}})
//! ```
//!
//! Operands are templates (a bare word such as `{{x}}` or `0`, or a quoted
//! `'…'` / `"…"` text); `==`, `!=`, `<`, `<=`, `>`, `>=` compare as numbers
//! when both sides are numbers, else as text; `and`, `or`, `not` and
//! parentheses combine. An operand alone is true unless it renders empty,
//! `0` or `false`. Compiled once at load time, so a malformed condition or
//! an unknown placeholder is a configuration error.

use super::template::{Template, Vars};
use super::IterCtx;

/// Longest condition accepted, and deepest nesting of parentheses and
/// `not`: a condition is written by hand, and parsing it recurses.
const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled condition.
#[derive(Debug)]
pub enum Condition {
    /// An operand's truth.
    Truthy(Template),
    /// Two operands compared.
    Compare(Template, Op, Template),
    /// Negation.
    Not(Box<Condition>),
    /// Both.
    And(Box<Condition>, Box<Condition>),
    /// Either.
    Or(Box<Condition>, Box<Condition>),
}

/// A token of a condition.
#[derive(Debug, PartialEq)]
enum Token {
    Operand(String),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Condition {
    /// Compiles `source`, whose templates may use the flow variables `vars`.
    pub fn parse(source: &str, vars: &[&str]) -> Result<Condition, String> {
        if source.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        let tokens = tokenize(source)?;
        if tokens.is_empty() {
            return Err("is empty".into());
        }
        let mut parser = Parser { tokens, pos: 0, vars, depth: 0 };
        let c = parser.or()?;
        match parser.tokens.get(parser.pos) {
            None => Ok(c),
            Some(t) => Err(format!("unexpected {} in {source:?}", describe(t))),
        }
    }

    /// Every template of the condition.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Condition::Truthy(t) => vec![t],
            Condition::Compare(a, _, b) => vec![a, b],
            Condition::Not(c) => c.templates(),
            Condition::And(a, b) | Condition::Or(a, b) => {
                let mut v = a.templates();
                v.extend(b.templates());
                v
            }
        }
    }

    /// Evaluates the condition for one iteration.
    pub fn holds<V: Vars + ?Sized>(&self, ctx: &IterCtx<'_>, vars: &V) -> bool {
        let render = |t: &Template| {
            let mut s = String::new();
            t.render_with(ctx, vars, &mut s);
            s
        };
        match self {
            Condition::Truthy(t) => truthy(&render(t)),
            Condition::Compare(a, op, b) => compare(&render(a), *op, &render(b)),
            Condition::Not(c) => !c.holds(ctx, vars),
            Condition::And(a, b) => a.holds(ctx, vars) && b.holds(ctx, vars),
            Condition::Or(a, b) => a.holds(ctx, vars) || b.holds(ctx, vars),
        }
    }
}

/// An operand alone: true unless empty, `0` or `false`.
pub fn truthy(s: &str) -> bool {
    let s = s.trim();
    !(s.is_empty() || s == "0" || s.eq_ignore_ascii_case("false"))
}

fn compare(a: &str, op: Op, b: &str) -> bool {
    let ord = match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y),
        _ => Some(a.cmp(b)),
    };
    let Some(ord) = ord else { return op == Op::Ne };
    match op {
        Op::Eq => ord.is_eq(),
        Op::Ne => ord.is_ne(),
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        Op::Ge => ord.is_ge(),
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Operand(s) => format!("{s:?}"),
        Token::Op(op) => format!("operator {op:?}"),
        Token::And => "\"and\"".into(),
        Token::Or => "\"or\"".into(),
        Token::Not => "\"not\"".into(),
        Token::Open => "\"(\"".into(),
        Token::Close => "\")\"".into(),
    }
}

/// Splits a condition into tokens; `{{…}}` and quoted texts stay whole.
fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = source.trim_start();
    while let Some(c) = rest.chars().next() {
        let (token, len) = match c {
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '\'' | '"' => {
                let end = rest[1..].find(c).ok_or_else(|| format!("unclosed quote in {source:?}"))?;
                (Token::Operand(rest[1..=end].to_string()), end + 2)
            }
            '=' | '!' | '<' | '>' => {
                let two = rest.get(..2).unwrap_or("");
                match two {
                    "==" => (Token::Op(Op::Eq), 2),
                    "!=" => (Token::Op(Op::Ne), 2),
                    "<=" => (Token::Op(Op::Le), 2),
                    ">=" => (Token::Op(Op::Ge), 2),
                    _ if c == '<' => (Token::Op(Op::Lt), 1),
                    _ if c == '>' => (Token::Op(Op::Gt), 1),
                    _ => return Err(format!("{c:?} is not an operator (use ==, !=, <, <=, >, >=) in {source:?}")),
                }
            }
            _ => {
                let len = word_len(rest).ok_or_else(|| format!("unclosed placeholder in {source:?}"))?;
                let word = &rest[..len];
                let token = match word {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    w => Token::Operand(w.to_string()),
                };
                (token, len)
            }
        };
        out.push(token);
        rest = rest[len..].trim_start();
    }
    Ok(out)
}

/// The length of the bare word at the start of `s`: up to a space, an
/// operator or a parenthesis outside `{{…}}`.
fn word_len(s: &str) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with("{{") {
            i += s[i..].find("}}")? + 2;
            continue;
        }
        let c = s[i..].chars().next()?;
        if c.is_whitespace() || "()=!<>'\"".contains(c) {
            break;
        }
        i += c.len_utf8();
    }
    Some(i)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    vars: &'a [&'a str],
    depth: usize,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.eat(&Token::And) {
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.eat(&Token::Not) {
            let inner = self.nested(Self::not)?;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, String> {
        if self.eat(&Token::Open) {
            let inner = self.nested(Self::or)?;
            if !self.eat(&Token::Close) {
                return Err("missing \")\"".into());
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        if let Some(Token::Op(op)) = self.tokens.get(self.pos) {
            let op = *op;
            self.pos += 1;
            let right = self.operand()?;
            return Ok(Condition::Compare(left, op, right));
        }
        Ok(Condition::Truthy(left))
    }

    fn operand(&mut self) -> Result<Template, String> {
        match self.tokens.get(self.pos) {
            Some(Token::Operand(text)) => {
                self.pos += 1;
                Template::parse_with(text, self.vars)
            }
            Some(t) => Err(format!("expected a value, found {}", describe(t))),
            None => Err("ends where a value is expected".into()),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Condition, String>) -> Result<Condition, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nests deeper than {MAX_DEPTH} levels"));
        }
        let c = f(self);
        self.depth -= 1;
        c
    }

    fn eat(&mut self, t: &Token) -> bool {
        let found = self.tokens.get(self.pos) == Some(t);
        self.pos += usize::from(found);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eval(source: &str, values: &[&str]) -> bool {
        let env = std::collections::HashMap::new();
        let ctx = IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        Condition::parse(source, &["a", "b"]).unwrap().holds(&ctx, values)
    }

    #[test]
    fn compares_numbers_as_numbers_and_text_as_text() {
        assert!(eval("{{a.length}} > 0", &["xy", ""]));
        assert!(!eval("{{b.length}} > 0", &["xy", ""]));
        assert!(eval("{{a}} > 9", &["10", ""]), "10 > 9 as numbers");
        assert!(!eval("{{a}} > '9x'", &["10", ""]), "\"10\" < \"9x\" as text");
        assert!(eval("{{a}} == 'ok' and {{b}} != 'ok'", &["ok", "no"]));
        assert!(eval("{{a}} == 3.0", &["3", ""]));
        assert!(eval("not {{b}}", &["", "0"]));
        assert!(eval("{{b}} or ({{a}} >= 2 and not {{a}} <= 1)", &["2", ""]));
        assert!(!eval("{{a}}", &["false", ""]));
        assert!(eval("\"{{a}} {{b}}\" == 'x y'", &["x", "y"]));
    }

    #[test]
    fn malformed_conditions_are_explained() {
        for (bad, why) in [
            ("", "is empty"),
            ("{{a}} =< 1", "operator"),
            ("{{a}} = 1", "is not an operator"),
            ("({{a}} > 1", "missing \")\""),
            ("{{a}} > ", "ends where a value"),
            ("{{c}} > 1", "unknown placeholder {{c}}"),
            ("'open", "unclosed quote"),
            ("{{a > 1", "unclosed placeholder"),
            ("{{a}} > 1 )", "unexpected \")\""),
        ] {
            let e = Condition::parse(bad, &["a"]).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let deep = format!("{}{{{{a}}}}{}", "(".repeat(40), ")".repeat(40));
        assert!(Condition::parse(&deep, &["a"]).unwrap_err().contains("nests deeper"));
        assert!(Condition::parse(&"not ".repeat(100), &["a"]).unwrap_err().contains("nests deeper"));
    }

    proptest! {
        /// Whatever is written, parsing ends with a condition or an error.
        #[test]
        fn any_text_parses_or_fails_cleanly(s in "[ a-z(){}<>=!'\"0-9.]{0,80}") {
            let _ = Condition::parse(&s, &["a"]);
        }
    }
}
