//! How frames are built and recognised: the default protocol (README, "WebSocket IM scenarios")
//! (what `volley-testbed im` speaks), or templates from the scenario file
//! for a backend that names things differently.
//!
//! ```yaml
//! frames:
//!   auth: '{"op":"login","jwt":"{{token}}"}'       # omit or null: no AUTH frame
//!   authOk: { op: login_ok }                        # field path → expected value
//!   authFail: { op: login_error }
//!   ping: '{"op":"ping","n":{{ping_id}},"t":{{ts}}}'
//!   pong: { match: { op: pong }, id: n }            # id: where the ping id comes back
//!   msg: '{"op":"send","peer":"{{to}}","n":{{seq}},"t":{{ts}},"text":"{{body}}"}'
//!   incoming: { match: { op: recv }, from: sender.id, seq: n, ts: t }
//!   tsUnit: ms                                      # ms | us | ns (default us)
//! ```

use crate::config::reader::Obj;
use crate::flow::jsonpath::{json_equal, JsonPath};
use crate::flow::template::Template;
use serde_json::Value;

/// Variables frame templates can use, in the order [`Vars`] renders them.
pub const VARS: &[&str] = &["token", "user", "to", "seq", "ts", "ping_id", "body"];

/// Fields of `frames`.
pub const FIELDS: &[&str] = &["auth", "authOk", "authFail", "ping", "pong", "msg", "incoming", "tsUnit"];

/// Values for [`VARS`], all as text.
#[derive(Default)]
pub struct Vars<'a> {
    /// `{{token}}`
    pub token: &'a str,
    /// `{{user}}`: this VU's user id.
    pub user: &'a str,
    /// `{{to}}`: the recipient's user id.
    pub to: &'a str,
    /// `{{seq}}`
    pub seq: &'a str,
    /// `{{ts}}`: now, in the protocol's unit.
    pub ts: &'a str,
    /// `{{ping_id}}`
    pub ping_id: &'a str,
    /// `{{body}}`
    pub body: &'a str,
}

impl Vars<'_> {
    /// The values in [`VARS`] order.
    pub fn values(&self) -> [&str; 7] {
        [self.token, self.user, self.to, self.seq, self.ts, self.ping_id, self.body]
    }
}

/// A set of `path: value` conditions that all must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher(Vec<(JsonPath, Value)>);

impl Matcher {
    /// True when every condition holds in `doc`.
    pub fn matches(&self, doc: &Value) -> bool {
        self.0.iter().all(|(p, want)| p.get(doc).is_some_and(|v| json_equal(v, want)))
    }

    fn field(path: &str, value: &str) -> Matcher {
        Matcher(vec![(JsonPath::parse(path).expect("valid built-in path"), Value::from(value))])
    }

    fn parse(obj: &Obj) -> Option<Matcher> {
        let mut conds = Vec::new();
        for (path, value) in obj.entries() {
            match (JsonPath::parse(path), value) {
                (Some(p), Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null) => {
                    conds.push((p, value.clone()))
                }
                (None, _) => obj.error(path, "is not a JSON path (use e.g. type or data.kind)"),
                (_, _) => obj.error(path, "must be a string, number, boolean or null to compare with"),
            }
        }
        if conds.is_empty() {
            obj.report.error(obj.path.clone(), "needs at least one field to match (e.g. {type: PONG})");
            return None;
        }
        Some(Matcher(conds))
    }
}

/// The unit of timestamps in frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsUnit {
    /// Milliseconds since the Unix epoch (what JavaScript's `Date.now()` gives).
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl TsUnit {
    /// Now, in this unit.
    pub fn now(self) -> u64 {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        match self {
            TsUnit::Ms => d.as_millis() as u64,
            TsUnit::Us => d.as_micros() as u64,
            TsUnit::Ns => d.as_nanos() as u64,
        }
    }

    /// Milliseconds in `n` of this unit.
    pub fn to_ms(self, n: f64) -> f64 {
        match self {
            TsUnit::Ms => n,
            TsUnit::Us => n / 1e3,
            TsUnit::Ns => n / 1e6,
        }
    }
}

/// What an incoming frame is.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// Authentication accepted.
    AuthOk,
    /// Authentication refused.
    AuthFail(String),
    /// Answer to a PING (with the echoed id, when the protocol has one).
    Pong(Option<u64>),
    /// A chat message.
    Msg {
        /// Sender identity.
        from: String,
        /// Sender's sequence number.
        seq: u64,
        /// Send time, in the protocol's unit.
        ts: Option<f64>,
    },
    /// Anything else (ignored).
    Other,
}

/// A compiled protocol.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// AUTH frame; `None` when the handshake alone authenticates.
    pub auth: Option<Template>,
    auth_ok: Matcher,
    auth_fail: Option<Matcher>,
    /// PING frame.
    pub ping: Template,
    pong: Matcher,
    pong_id: Option<JsonPath>,
    /// MSG frame.
    pub msg: Template,
    incoming: Matcher,
    from: JsonPath,
    seq: JsonPath,
    ts: Option<JsonPath>,
    /// Timestamp unit of `{{ts}}` and of incoming `ts`.
    pub ts_unit: TsUnit,
}

fn template(source: &str) -> Template {
    Template::parse_with(source, VARS).expect("valid built-in template")
}

impl Default for Protocol {
    /// The default protocol (README, "WebSocket IM scenarios").
    fn default() -> Self {
        Protocol {
            auth: Some(template(r#"{"type":"AUTH","token":"{{token}}"}"#)),
            auth_ok: Matcher::field("type", "AUTH_OK"),
            auth_fail: Some(Matcher::field("type", "AUTH_FAIL")),
            ping: template(r#"{"type":"PING","id":{{ping_id}},"ts":{{ts}}}"#),
            pong: Matcher::field("type", "PONG"),
            pong_id: JsonPath::parse("id"),
            msg: template(r#"{"type":"MSG","to":"{{to}}","seq":{{seq}},"ts":{{ts}},"body":"{{body}}"}"#),
            incoming: Matcher::field("type", "MSG"),
            from: JsonPath::parse("from").expect("path"),
            seq: JsonPath::parse("seq").expect("path"),
            ts: JsonPath::parse("ts"),
            ts_unit: TsUnit::Us,
        }
    }
}

impl Protocol {
    /// Reads `frames`; each field not given keeps the default protocol's.
    pub fn parse(obj: &Obj) -> Option<Protocol> {
        let mut p = Protocol::default();
        let mut ok = true;
        let tpl = |name: &str, ok: &mut bool| -> Option<Template> {
            let source = obj.string(name)?;
            match Template::parse_with(&source, VARS) {
                Ok(t) => Some(t),
                Err(e) => {
                    obj.error(name, e);
                    *ok = false;
                    None
                }
            }
        };
        if obj.is_null("auth") {
            p.auth = None;
        } else if let Some(t) = tpl("auth", &mut ok) {
            p.auth = Some(t);
        }
        if let Some(t) = tpl("ping", &mut ok) {
            p.ping = t;
        }
        if let Some(t) = tpl("msg", &mut ok) {
            p.msg = t;
        }
        if let Some(m) = obj.object("authOk") {
            match Matcher::parse(&m) {
                Some(m) => p.auth_ok = m,
                None => ok = false,
            }
        }
        if obj.is_null("authFail") {
            p.auth_fail = None;
        } else if let Some(m) = obj.object("authFail") {
            match Matcher::parse(&m) {
                Some(m) => p.auth_fail = Some(m),
                None => ok = false,
            }
        }
        if let Some(pong) = obj.object("pong") {
            if let Some(m) = pong.object("match") {
                match Matcher::parse(&m) {
                    Some(m) => p.pong = m,
                    None => ok = false,
                }
            }
            p.pong_id = path_field(&pong, "id", &mut ok).or(if pong.has("id") { None } else { p.pong_id });
            pong.finish_with(&["match", "id"]);
        }
        if let Some(inc) = obj.object("incoming") {
            if let Some(m) = inc.object("match") {
                match Matcher::parse(&m) {
                    Some(m) => p.incoming = m,
                    None => ok = false,
                }
            }
            if let Some(from) = path_field(&inc, "from", &mut ok) {
                p.from = from;
            }
            if let Some(seq) = path_field(&inc, "seq", &mut ok) {
                p.seq = seq;
            }
            if inc.has("ts") {
                p.ts = path_field(&inc, "ts", &mut ok);
            }
            inc.finish_with(&["match", "from", "seq", "ts"]);
        }
        if let Some(unit) = obj.string("tsUnit") {
            p.ts_unit = match unit.as_str() {
                "ms" => TsUnit::Ms,
                "us" => TsUnit::Us,
                "ns" => TsUnit::Ns,
                other => {
                    obj.error("tsUnit", format!("must be ms, us or ns, got {other:?}"));
                    ok = false;
                    TsUnit::Us
                }
            };
        }
        if !p.msg.uses_var(VARS.iter().position(|v| *v == "seq").expect("seq")) {
            obj.error("msg", "must contain {{seq}}: receivers de-duplicate and detect reorders by it");
            ok = false;
        }
        ok.then_some(p)
    }

    /// Environment variables the templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = self.ping.env_refs().chain(self.msg.env_refs()).collect();
        if let Some(a) = &self.auth {
            refs.extend(a.env_refs());
        }
        refs
    }

    /// Classifies an incoming frame (text or binary JSON).
    pub fn classify(&self, data: &[u8]) -> Incoming {
        let Ok(doc) = serde_json::from_slice::<Value>(data) else {
            return Incoming::Other;
        };
        if self.incoming.matches(&doc) {
            let from = self.from.get(&doc).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let seq = self.seq.get(&doc).and_then(as_u64);
            if let (Some(from), Some(seq)) = (from, seq) {
                let ts = self.ts.as_ref().and_then(|p| p.get(&doc)).and_then(as_f64);
                return Incoming::Msg { from, seq, ts };
            }
            return Incoming::Other;
        }
        if self.pong.matches(&doc) {
            return Incoming::Pong(self.pong_id.as_ref().and_then(|p| p.get(&doc)).and_then(as_u64));
        }
        if self.auth_ok.matches(&doc) {
            return Incoming::AuthOk;
        }
        if self.auth_fail.as_ref().is_some_and(|m| m.matches(&doc)) {
            let reason = doc.get("reason").and_then(Value::as_str).unwrap_or("refused").to_string();
            return Incoming::AuthFail(reason);
        }
        Incoming::Other
    }
}

fn path_field(obj: &Obj, name: &str, ok: &mut bool) -> Option<JsonPath> {
    let raw = obj.string(name)?;
    let path = JsonPath::parse(&raw);
    if path.is_none() {
        obj.error(name, "is not a JSON path (use e.g. data.seq)");
        *ok = false;
    }
    path
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;
    use crate::flow::IterCtx;
    use std::collections::HashMap;

    #[test]
    fn default_protocol_builds_and_recognises_frames() {
        let p = Protocol::default();
        let env = HashMap::new();
        let ctx = IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let vars = Vars { to: "100002", seq: "5", ts: "1700000000000000", body: "hi", ..Vars::default() };
        let mut out = String::new();
        p.msg.render_with(&ctx, &vars.values(), &mut out);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, serde_json::json!({"type":"MSG","to":"100002","seq":5,"ts":1700000000000000u64,"body":"hi"}));
        assert_eq!(p.classify(br#"{"type":"AUTH_OK","user":"1"}"#), Incoming::AuthOk);
        assert_eq!(
            p.classify(br#"{"type":"AUTH_FAIL","reason":"bad signature"}"#),
            Incoming::AuthFail("bad signature".into())
        );
        assert_eq!(p.classify(br#"{"type":"PONG","id":9,"ts":1}"#), Incoming::Pong(Some(9)));
        assert_eq!(
            p.classify(br#"{"type":"MSG","from":"100001","seq":5,"ts":1000}"#),
            Incoming::Msg { from: "100001".into(), seq: 5, ts: Some(1000.0) }
        );
        assert_eq!(p.classify(b"not json"), Incoming::Other);
    }

    #[test]
    fn templates_from_the_scenario_file_replace_the_defaults() {
        let doc = serde_json::json!({
            "auth": r#"{"op":"login","jwt":"{{token}}"}"#,
            "authOk": {"op": "login_ok"},
            "pong": {"match": {"op": "pong"}, "id": "n"},
            "msg": r#"{"op":"send","peer":"{{to}}","n":{{seq}},"t":{{ts}}}"#,
            "incoming": {"match": {"op": "recv"}, "from": "sender.id", "seq": "n", "ts": "t"},
            "tsUnit": "ms"
        });
        let report = Report::default();
        let p = Protocol::parse(&Obj::new(&doc, "frames", &report).unwrap()).unwrap();
        assert!(report.is_clean());
        assert_eq!(p.classify(br#"{"op":"login_ok"}"#), Incoming::AuthOk);
        assert_eq!(p.classify(br#"{"op":"pong","n":"3"}"#), Incoming::Pong(Some(3)));
        assert_eq!(
            p.classify(br#"{"op":"recv","sender":{"id":42},"n":7,"t":1700000000000}"#),
            Incoming::Msg { from: "42".into(), seq: 7, ts: Some(1.7e12) }
        );
        // The default MSG shape no longer counts as a message.
        assert_eq!(p.classify(br#"{"type":"MSG","from":"1","seq":1}"#), Incoming::Other);
        assert_eq!(p.ts_unit, TsUnit::Ms);
    }

    #[test]
    fn bad_templates_name_the_field() {
        let doc = serde_json::json!({"msg": r#"{"to":"{{to}}"}"#, "ping": "{{pingid}}", "tsUnit": "s"});
        let report = Report::default();
        assert!(Protocol::parse(&Obj::new(&doc, "flows.chat.frames", &report).unwrap()).is_none());
        let errors = report.into_result(()).unwrap_err().to_string();
        assert!(errors.contains("flows.chat.frames.msg: must contain {{seq}}"), "{errors}");
        assert!(errors.contains("flows.chat.frames.ping: unknown placeholder {{pingid}}"), "{errors}");
        assert!(errors.contains("flows.chat.frames.tsUnit: must be ms, us or ns"), "{errors}");
    }
}
