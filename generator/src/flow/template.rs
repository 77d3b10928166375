//! `{{...}}` placeholders in URLs, headers and bodies, compiled once.
//!
//! Known placeholders: `{{vu}}`, `{{iter}}`, `{{scenario}}`, `{{env.NAME}}`,
//! the shared token of a token-manager flow (`{{token}}`, or
//! `{{token.NAME}}` when there are several), plus the variables a flow
//! declares for its own templates (the IM flows' `{{seq}}`, …, an http
//! flow's captures, see [`Template::parse_with`]; a flow variable named
//! `token` takes precedence).
//! An unknown placeholder is a configuration error at load time, not an
//! empty string at run time.

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
    /// A token-manager's token: `""` for `{{token}}`, the flow name for
    /// `{{token.NAME}}`.
    Token(String),
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
                "vu" => Part::Vu,
                "iter" => Part::Iter,
                "scenario" => Part::Scenario,
                env if env.starts_with("env.") && env.len() > 4 => Part::Env(env[4..].to_string()),
                other => match vars.iter().position(|v| *v == other) {
                    Some(i) => Part::Var(i),
                    None if other == "token" => Part::Token(String::new()),
                    None if other.starts_with("token.") && other.len() > 6 => Part::Token(other[6..].to_string()),
                    None => {
                        let mut known = vec!["vu", "iter", "scenario", "env.NAME", "token", "token.NAME"];
                        known.extend_from_slice(vars);
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
        self.parts.contains(&Part::Var(index))
    }

    /// Appends the rendering for `ctx` to `out`.
    pub fn render_into(&self, ctx: &IterCtx<'_>, out: &mut String) {
        self.render_with::<&str>(ctx, &[], out)
    }

    /// Appends the rendering for `ctx` and the flow variables' `values` to `out`.
    pub fn render_with<S: AsRef<str>>(&self, ctx: &IterCtx<'_>, values: &[S], out: &mut String) {
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
                Part::Var(i) => out.push_str(values.get(*i).map_or("", AsRef::as_ref)),
                Part::Token(r) => out.push_str(ctx.tokens.iter().find(|c| c.reference == *r).map_or("", |c| c.value())),
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
