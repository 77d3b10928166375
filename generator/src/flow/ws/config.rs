//! The options of the `ws-ping` and `im-e2e` flows, with the source's knobs
//! under k6-style camelCase names.

use super::protocol::Protocol;
use crate::config::reader::Obj;
use crate::flow::http::config::template;
use crate::flow::template::Template;
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

/// How the token travels besides the AUTH frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` on the handshake.
    Header,
    /// `?token=<token>` (or `accessToken`, see `queryParam`) on the URL.
    Query,
    /// Only in the AUTH frame.
    Frame,
}

/// Where a VU's token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// Each VU signs its own HS256 JWT (subject = its user id) with this
    /// secret (a template, so it can come from `{{env.JWT_SECRET}}`).
    Sign(Template),
    /// A template, typically `{{token}}`: the token a token-manager flow
    /// shares, read when the VU connects.
    Template(Template),
}

/// `userBase: "{{env.NAME}}"`: reads the number from the process
/// environment (or `-e`) when the plan loads, so several generators can run
/// one scenario file with disjoint user ranges. Returns the flow definition
/// with the number in place, `None` when `userBase` is absent or a number
/// already, or what is wrong with it.
pub fn resolve_user_base(
    def: &Value,
    env: &std::collections::HashMap<String, String>,
) -> Result<Option<Value>, String> {
    let Some(text) = def.get("userBase").and_then(Value::as_str) else { return Ok(None) };
    if !matches!(def.get("type").and_then(Value::as_str), Some("ws-ping" | "im-e2e")) {
        return Ok(None);
    }
    let name = text
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .and_then(|t| t.trim().strip_prefix("env."))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("must be a whole number or \"{{{{env.NAME}}}}\", not {text:?}"))?;
    let value =
        env.get(name).ok_or_else(|| format!("uses {{{{env.{name}}}}}, which is not set (pass -e {name}=NUMBER)"))?;
    let n: u64 = value.trim().parse().map_err(|_| format!("{{{{env.{name}}}}} is {value:?}, not a whole number"))?;
    let mut def = def.clone();
    def["userBase"] = n.into();
    Ok(Some(def))
}

/// Which IM flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `ws-ping`: PING every `pingInterval`, PONG round trip.
    Ping,
    /// `im-e2e`: even VUs send to the next VU every `msgInterval`.
    ImE2e,
}

/// Fields of both IM flows.
pub const FIELDS: &[&str] = &[
    "type",
    "urls",
    "jwtSecret",
    "tokenTtl",
    "token",
    "userBase",
    "auth",
    "queryParam",
    "pingInterval",
    "msgInterval",
    "rolePinned",
    "drain",
    "timeout",
    "body",
    "frames",
    "localAddrs",
    "dedupWindow",
    "maxConnecting",
    "insecureSkipTLSVerify",
];

/// A compiled IM flow configuration.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Which flow.
    pub kind: Kind,
    /// Gateway URLs (templates: `{{env.GATEWAY}}` works).
    pub urls: Vec<Template>,
    /// Where each VU's token comes from.
    pub token: TokenSource,
    /// Lifetime of the tokens VUs sign for themselves.
    pub token_ttl: Duration,
    /// User id of VU n is `userBase + n`.
    pub user_base: u64,
    /// How the token travels besides the AUTH frame.
    pub auth: AuthMode,
    /// Query parameter name for `auth: query` (`token` or `accessToken`).
    pub query_param: String,
    /// Time between PINGs (0: none).
    pub ping_interval: Duration,
    /// Time between MSGs of a sender (im-e2e).
    pub msg_interval: Duration,
    /// Even VUs on the first URL, odd VUs on the second.
    pub role_pinned: bool,
    /// How long receivers keep reading after the scenario ends.
    pub drain: Duration,
    /// Bound on connecting plus authenticating, and on waiting for a PONG.
    pub timeout: Duration,
    /// Message body (`{{body}}` in the MSG template).
    pub body: Template,
    /// Frame protocol.
    pub protocol: Protocol,
    /// Source addresses to spread connections over (round robin by VU).
    pub local_addrs: Vec<IpAddr>,
    /// Seqs remembered per sender for de-duplication (a multiple of 64).
    pub dedup_window: usize,
    /// Connection attempts in flight per flow and process.
    pub max_connecting: usize,
    /// Accept any certificate on `wss://` (k6's `insecureSkipTLSVerify`).
    pub insecure_tls: bool,
}

impl WsConfig {
    /// Reads the flow's options.
    pub fn parse(obj: &Obj, kind: Kind) -> Option<WsConfig> {
        let mut ok = true;
        let urls = match obj.require("urls") {
            Some(Value::String(s)) => split_urls(s),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(_) => {
                obj.error("urls", "must be a string (several separated by ';') or a list of strings");
                return None;
            }
            None => return None,
        };
        if urls.is_empty() {
            obj.error("urls", "needs at least one ws:// or wss:// URL");
            ok = false;
        }
        let mut templates = Vec::new();
        for u in &urls {
            match Template::parse(u) {
                Ok(t)
                    if t.source().starts_with("ws://")
                        || t.source().starts_with("wss://")
                        || t.source().starts_with("{{") =>
                {
                    templates.push(t)
                }
                Ok(_) => {
                    obj.error("urls", format!("{u:?} must start with ws:// or wss://"));
                    ok = false;
                }
                Err(e) => {
                    obj.error("urls", e);
                    ok = false;
                }
            }
        }
        let template = |field: &str| obj.string(field).and_then(|s| template(obj, field, &s));
        let token = match (obj.has("jwtSecret"), obj.has("token")) {
            (true, true) => {
                obj.error(
                    "token",
                    "give either jwtSecret (VUs sign their own tokens) or token (a shared one), not both",
                );
                None
            }
            (false, false) => {
                obj.error(
                    "jwtSecret",
                    "is required: the secret VUs sign their tokens with (or set token: \"{{token}}\" to use a token-manager's token)",
                );
                None
            }
            (true, false) => template("jwtSecret").map(TokenSource::Sign),
            (false, true) => template("token").map(TokenSource::Template),
        };
        let auth = match obj.string("auth").as_deref() {
            None | Some("header") => AuthMode::Header,
            Some("query") => AuthMode::Query,
            Some("frame") => AuthMode::Frame,
            Some(other) => {
                obj.error("auth", format!("must be header, query or frame, got {other:?}"));
                ok = false;
                AuthMode::Header
            }
        };
        let query_param = obj.string("queryParam").unwrap_or_else(|| "token".into());
        if query_param != "token" && query_param != "accessToken" {
            obj.error("queryParam", "must be token or accessToken");
            ok = false;
        }
        let ping_default = if kind == Kind::Ping { Duration::from_secs(1) } else { Duration::ZERO };
        let ping_interval = obj.duration("pingInterval").unwrap_or(ping_default);
        let msg_interval = obj.duration("msgInterval").unwrap_or(Duration::from_secs(1));
        if kind == Kind::Ping && obj.has("msgInterval") {
            obj.error("msgInterval", "applies to im-e2e only (ws-ping sends no messages)");
            ok = false;
        }
        let body =
            match Template::parse_with(&obj.string("body").unwrap_or_else(|| "hello".into()), &["user", "to", "seq"]) {
                Ok(t) => Some(t),
                Err(e) => {
                    obj.error("body", e);
                    None
                }
            };
        let protocol = match obj.object("frames") {
            Some(f) => {
                let p = Protocol::parse(&f);
                f.finish_with(super::protocol::FIELDS);
                p
            }
            None => Some(Protocol::default()),
        };
        let mut local_addrs = Vec::new();
        if let Some(list) = obj.array("localAddrs") {
            for v in list {
                match v.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                    Some(ip) => local_addrs.push(ip),
                    None => {
                        obj.error("localAddrs", format!("{v} is not an IP address"));
                        ok = false;
                    }
                }
            }
        }
        let dedup_window = obj.uint("dedupWindow", 64).unwrap_or(1024) as usize;
        if !dedup_window.is_multiple_of(64) || dedup_window > 65_536 {
            obj.error("dedupWindow", "must be a multiple of 64, at most 65536");
            ok = false;
        }
        let timeout = obj.duration("timeout").unwrap_or(Duration::from_secs(10));
        if kind == Kind::Ping && ping_interval.is_zero() {
            obj.error("pingInterval", "must be greater than 0 for ws-ping");
            ok = false;
        }
        if kind == Kind::ImE2e && msg_interval.is_zero() {
            obj.error("msgInterval", "must be greater than 0");
            ok = false;
        }
        if timeout.is_zero() {
            obj.error("timeout", "must be greater than 0");
            ok = false;
        }
        let config = WsConfig {
            kind,
            urls: templates,
            token: token?,
            token_ttl: obj.duration("tokenTtl").unwrap_or(Duration::from_secs(3600)),
            user_base: obj.uint("userBase", 0).unwrap_or(0),
            auth,
            query_param,
            ping_interval,
            msg_interval,
            role_pinned: obj.boolean("rolePinned").unwrap_or(false),
            drain: obj.duration("drain").unwrap_or(Duration::from_secs(2)),
            timeout,
            body: body?,
            protocol: protocol?,
            local_addrs,
            dedup_window,
            max_connecting: obj.uint("maxConnecting", 1).unwrap_or(256) as usize,
            insecure_tls: obj.boolean("insecureSkipTLSVerify").unwrap_or(false),
        };
        ok.then_some(config)
    }

    /// Environment variables the templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = self.urls.iter().flat_map(|u| u.env_refs()).collect();
        refs.extend(self.token.template().env_refs());
        refs.extend(self.body.env_refs());
        refs.extend(self.protocol.env_refs());
        refs
    }
}

impl TokenSource {
    /// The secret or token template.
    pub fn template(&self) -> &Template {
        match self {
            TokenSource::Sign(t) | TokenSource::Template(t) => t,
        }
    }
}

/// `"ws://a/ws; ws://b/ws"` → both, trimmed, empty parts skipped.
pub fn split_urls(s: &str) -> Vec<String> {
    s.split(';').map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
}
