//! `{{...}}` placeholders in URLs, headers and bodies, compiled once.
//!
//! Known placeholders: `{{vu}}`, `{{iter}}`, `{{scenario}}`, `{{env.NAME}}`,
//! the functions `{{random.int(1,100)}}` (inclusive), `{{random.pick(a,b,c)}}`,
//! `{{uuid}}` (a random version-4 UUID) and `{{now.ms}}` (Unix milliseconds),
//! the shared token of a token-manager flow (`{{token}}`, or
//! `{{token.NAME}}` when there are several), plus the variables a flow
//! declares for its own templates (the IM flows' `{{seq}}`, …, an http
//! flow's captures, see [`Template::parse_with`]; a flow variable named
//! `token` takes precedence).
//! `{{'…'}}` is literal text (`{{'{{'}}` writes `{{`). An unknown
//! placeholder is a configuration error at load time, not an empty string
//! at run time.

use super::IterCtx;
use std::fmt::Write;

/// One piece of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Vu,
    Iter,
    Scenario,
    Env(String),
    /// The flow's own variable at this index of its declared names.
    Var(usize),
    /// `{{NAME.length}}`: the items of a list variable (the characters of
    /// a text one).
    Length(usize),
    /// A token-manager's token: `""` for `{{token}}`, the flow name for
    /// `{{token.NAME}}`.
    Token(String),
    /// `{{random.int(LO,HI)}}`, both inclusive.
    RandomInt(i64, i64),
    /// `{{random.pick(a,b,…)}}`.
    Pick(Vec<String>),
    /// `{{uuid}}`.
    Uuid,
    /// `{{now.ms}}`.
    NowMs,
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `source`; the error names the bad placeholder.
    pub fn parse(source: &str) -> Result<Template, String> {
        Self::parse_with(source, &[])
    }

    /// Compiles `source`, which may also use the flow variables `vars`
    /// (values are given at render time, in the same order).
    pub fn parse_with(source: &str, vars: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close =
                after.find("}}").ok_or_else(|| format!("unclosed placeholder in {source:?} (missing \"}}}}\")"))?;
            let name = after[..close].trim();
            parts.push(match name {
                q if q.len() >= 2 && q.starts_with('\'') && q.ends_with('\'') => {
                    Part::Text(q[1..q.len() - 1].to_string())
                }
                "vu" => Part::Vu,
                "iter" => Part::Iter,
                "scenario" => Part::Scenario,
                "uuid" => Part::Uuid,
                "now.ms" => Part::NowMs,
                f if f.starts_with("random.") => function(f)?,
                env if env.starts_with("env.") && env.len() > 4 => Part::Env(env[4..].to_string()),
                // The last declaration wins: a loop's variables shadow the
                // flow's while the loop lasts.
                other => match vars.iter().rposition(|v| *v == other) {
                    Some(i) => Part::Var(i),
                    None if other.ends_with(".length")
                        && vars.iter().any(|v| Some(*v) == other.strip_suffix(".length")) =>
                    {
                        let name = &other[..other.len() - 7];
                        Part::Length(vars.iter().rposition(|v| *v == name).expect("declared"))
                    }
                    None if other == "token" => Part::Token(String::new()),
                    None if other.starts_with("token.") && other.len() > 6 => Part::Token(other[6..].to_string()),
                    None => {
                        let mut known = vec![
                            "vu",
                            "iter",
                            "scenario",
                            "env.NAME",
                            "token",
                            "token.NAME",
                            "random.int(LO,HI)",
                            "random.pick(a,b)",
                            "uuid",
                            "now.ms",
                        ];
                        // Hidden (out-of-scope) variables start with NUL.
                        known.extend(vars.iter().filter(|v| !v.starts_with('\0')));
                        let known: Vec<String> = known.iter().map(|k| format!("{{{{{k}}}}}")).collect();
                        return Err(format!("unknown placeholder {{{{{other}}}}} (known: {})", known.join(", ")));
                    }
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { source: source.to_string(), parts })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text, when the template has no placeholder at all.
    pub fn as_text(&self) -> Option<&str> {
        match &self.parts[..] {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// True when the template has no placeholder that changes per VU or
    /// iteration (its rendering can then be a metric tag).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_) | Part::Env(_) | Part::Scenario))
    }

    /// Environment variables the template reads.
    pub fn env_refs(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Env(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Token-manager flows the template reads (`""` for plain `{{token}}`).
    pub fn token_refs(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Token(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// True when the template uses flow variable `index`.
    pub fn uses_var(&self, index: usize) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(i) | Part::Length(i) if *i == index))
    }

    /// Appends the rendering for `ctx` to `out`.
    pub fn render_into(&self, ctx: &IterCtx<'_>, out: &mut String) {
        self.render_with::<[&str]>(ctx, &[], out)
    }

    /// Appends the rendering for `ctx` and the flow variables' `values` to `out`.
    pub fn render_with<V: Vars + ?Sized>(&self, ctx: &IterCtx<'_>, values: &V, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Vu => {
                    let _ = write!(out, "{}", ctx.vu);
                }
                Part::Iter => {
                    let _ = write!(out, "{}", ctx.iter);
                }
                Part::Scenario => out.push_str(ctx.scenario),
                Part::Env(name) => out.push_str(ctx.env.get(name).map(String::as_str).unwrap_or("")),
                Part::Var(i) => values.push_var(*i, out),
                Part::Length(i) => {
                    let _ = write!(out, "{}", values.length(*i));
                }
                Part::Token(r) => out.push_str(ctx.tokens.iter().find(|c| c.reference == *r).map_or("", |c| c.value())),
                Part::RandomInt(lo, hi) => {
                    let _ = write!(out, "{}", rand::Rng::gen_range(&mut rand::thread_rng(), *lo..=*hi));
                }
                Part::Pick(items) => {
                    out.push_str(&items[rand::Rng::gen_range(&mut rand::thread_rng(), 0..items.len())])
                }
                Part::Uuid => push_uuid(out),
                Part::NowMs => {
                    let ms =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                    let _ = write!(out, "{ms}");
                }
            }
        }
    }

    /// The rendering for `ctx`.
    pub fn render(&self, ctx: &IterCtx<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + 8);
        self.render_into(ctx, &mut out);
        out
    }
}

/// The values of a flow's variables at render time, by slot.
pub trait Vars {
    /// Appends variable `slot`'s text (nothing when it has no value).
    fn push_var(&self, slot: usize, out: &mut String);
    /// The items of list variable `slot`, or the characters of a text one.
    fn length(&self, slot: usize) -> usize;
}

impl<S: AsRef<str>> Vars for [S] {
    fn push_var(&self, slot: usize, out: &mut String) {
        out.push_str(self.get(slot).map_or("", AsRef::as_ref));
    }

    fn length(&self, slot: usize) -> usize {
        self.get(slot).map_or(0, |s| s.as_ref().chars().count())
    }
}

impl<S: AsRef<str>, const N: usize> Vars for [S; N] {
    fn push_var(&self, slot: usize, out: &mut String) {
        self[..].push_var(slot, out)
    }

    fn length(&self, slot: usize) -> usize {
        self[..].length(slot)
    }
}

/// `random.int(LO,HI)` or `random.pick(a,b,…)`.
fn function(call: &str) -> Result<Part, String> {
    let bad = |why: &str| Err(format!("{{{{{call}}}}}: {why}"));
    let Some((name, rest)) = call.split_once('(') else {
        return bad("expected random.int(LO,HI) or random.pick(a,b,…)");
    };
    let Some(args) = rest.strip_suffix(')') else { return bad("missing \")\"") };
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    match name.trim() {
        "random.int" => {
            let nums: Vec<i64> = args.iter().filter_map(|a| a.parse().ok()).collect();
            match nums[..] {
                [lo, hi] if args.len() == 2 && lo <= hi => Ok(Part::RandomInt(lo, hi)),
                [_, _] if args.len() == 2 => bad("the low bound must not be above the high one"),
                _ => bad("takes two whole numbers, LO and HI"),
            }
        }
        "random.pick" if args.iter().all(|a| !a.is_empty()) => {
            Ok(Part::Pick(args.into_iter().map(str::to_string).collect()))
        }
        "random.pick" => bad("takes a list of non-empty values"),
        _ => bad("the random functions are random.int(LO,HI) and random.pick(a,b,…)"),
    }
}

/// A random version-4 UUID, as 36 characters.
fn push_uuid(out: &mut String) {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn renders_every_placeholder() {
        let env = HashMap::from([("BASE".to_string(), "http://h:1".to_string())]);
        let ctx = IterCtx { vu: 3, iter: 41, scenario: "browse", env: &env, stopping: None, tokens: &[] };
        let t = Template::parse("{{env.BASE}}/items?vu={{vu}}&i={{ iter }}&s={{scenario}}").unwrap();
        assert_eq!(t.render(&ctx), "http://h:1/items?vu=3&i=41&s=browse");
        assert!(!t.is_static());
        assert_eq!(t.env_refs().collect::<Vec<_>>(), vec!["BASE"]);
        assert!(Template::parse("{{env.BASE}}/x").unwrap().is_static());
    }

    #[test]
    fn functions_render_within_their_bounds() {
        let env = HashMap::new();
        let ctx = IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let t = Template::parse("{{random.int(3, 5)}}|{{random.pick(a, b)}}|{{uuid}}|{{now.ms}}").unwrap();
        assert!(!t.is_static());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let out = t.render(&ctx);
            let parts: Vec<&str> = out.split('|').collect();
            let n: i64 = parts[0].parse().unwrap();
            assert!((3..=5).contains(&n), "{out}");
            assert!(["a", "b"].contains(&parts[1]), "{out}");
            let uuid = parts[2];
            assert_eq!((uuid.len(), &uuid[14..15]), (36, "4"), "{uuid}");
            assert!(seen.insert(uuid.to_string()), "a uuid repeated");
            assert!(parts[3].parse::<u64>().unwrap() > 1_700_000_000_000);
        }
        for (bad, why) in [
            ("{{random.int(5,3)}}", "the low bound"),
            ("{{random.int(1)}}", "two whole numbers"),
            ("{{random.pick(a,,b)}}", "non-empty"),
            ("{{random.float(1,2)}}", "random.int(LO,HI) and random.pick"),
            ("{{random.int(1,2}}", "missing"),
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn quoted_text_is_literal() {
        let env = HashMap::new();
        let ctx = IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let t = Template::parse("a{{'{{'}}b}}{{ 'x y' }}").unwrap();
        assert_eq!(t.render(&ctx), "a{{b}}x y");
        assert!(t.is_static());
    }

    #[test]
    fn rejects_unknown_and_unclosed_placeholders() {
        assert!(Template::parse("/x/{{user}}").unwrap_err().contains("unknown placeholder {{user}}"));
        assert!(Template::parse("/x/{{token.}}").unwrap_err().contains("{{token.NAME}}"));
        assert!(Template::parse("/x/{{vu").unwrap_err().contains("unclosed placeholder"));
    }

    #[test]
    fn flow_variables_render_from_values() {
        let env = HashMap::new();
        let ctx = IterCtx { vu: 2, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let t = Template::parse_with(r#"{"to":"{{to}}","seq":{{seq}},"vu":{{vu}}}"#, &["seq", "to"]).unwrap();
        let mut out = String::new();
        t.render_with(&ctx, &["7", "100003"], &mut out);
        assert_eq!(out, r#"{"to":"100003","seq":7,"vu":2}"#);
        assert!(t.uses_var(0) && t.uses_var(1));
        let shared = Template::parse("Bearer {{token}} {{token.admin}}").unwrap();
        assert_eq!(shared.token_refs().collect::<Vec<_>>(), vec!["", "admin"]);
        assert!(!shared.is_static());
        let own = Template::parse_with("{{token}}", &["token"]).unwrap();
        assert_eq!(own.token_refs().count(), 0);
        let err = Template::parse_with("{{sq}}", &["seq"]).unwrap_err();
        assert!(err.contains("{{seq}}"), "{err}");
    }
}
