//! `type: token-manager` as written in the scenario file.

use crate::config::reader::Obj;
use crate::flow::http::config::parse_request;
use crate::flow::http::RequestStep;
use crate::flow::jsonpath::JsonPath;
use crate::flow::template::Template;
use std::time::Duration;

/// Fields of a token-manager flow.
pub const FIELDS: &[&str] = &[
    "type",
    "login",
    "refresh",
    "tokenPath",
    "lifetimePath",
    "lifetimeUnit",
    "lifetime",
    "refreshAt",
    "redis",
    "key",
    "channel",
    "lease",
    "wait",
    "poll",
    "retry",
    "retryMax",
    "insecureSkipTLSVerify",
];

/// How long a token lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifetime {
    /// Read from the response at this path, in seconds (OAuth's
    /// `expires_in`) or milliseconds.
    FromResponse {
        /// Where the number sits.
        path: JsonPath,
        /// `lifetimeUnit: ms`.
        millis: bool,
    },
    /// The same for every token.
    Fixed(Duration),
}

/// The requests of a token-manager flow.
pub struct Requests {
    /// Gets a token when there is none (or the current one is unusable).
    pub login: RequestStep,
    /// Gets the next token while the current one is valid; its `{{token}}`
    /// is the current token.
    pub refresh: Option<RequestStep>,
}

/// A token-manager flow's settings besides its requests.
#[derive(Debug)]
pub struct ManagerConfig {
    /// The flow's name (default key names derive from it).
    pub name: String,
    /// Where the token sits in the response.
    pub token_path: JsonPath,
    /// How long a token lives.
    pub lifetime: Lifetime,
    /// Share of the lifetime after which the token is refreshed.
    pub refresh_at: f64,
    /// Redis URL (templated from the environment); none or empty: the
    /// token is shared within this process only.
    pub redis: Option<Template>,
    /// Redis key holding the token.
    pub key: Template,
    /// Redis channel new tokens are published on.
    pub channel: Option<Template>,
    /// Lease period of the fleet-wide single writer.
    pub lease: Duration,
    /// How long a VU waits for a usable token before its iteration fails.
    pub wait: Duration,
    /// Interval of the readers' GET fallback next to pub/sub.
    pub poll: Duration,
    /// First retry delay after a failed refresh (doubles per failure).
    pub retry: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Skip TLS certificate checks (k6's `insecureSkipTLSVerify`).
    pub insecure_tls: bool,
}

impl ManagerConfig {
    /// Reads the flow `name`; every problem is reported with its path.
    pub fn parse(obj: &Obj, name: &str) -> Option<(ManagerConfig, Requests)> {
        let before = obj.report.is_clean();
        let login = match obj.object("login") {
            Some(r) => parse_request(r),
            None => {
                if !obj.has("login") {
                    obj.error("login", "is required: the request that gets a token ({method, url, headers, body})");
                }
                None
            }
        };
        if let Some(l) = &login {
            if l.templates().any(|t| t.token_refs().next().is_some()) {
                obj.error("login", "cannot use {{token}}: login runs when there is no token (use refresh for that)");
            }
        }
        let refresh = obj.object("refresh").and_then(parse_request);
        let token_path = path(obj, "tokenPath", "access_token");
        let lifetime = match (obj.has("lifetime"), obj.has("lifetimePath")) {
            (true, true) => {
                obj.error(
                    "lifetime",
                    "give either lifetime (fixed) or lifetimePath (read from the response), not both",
                );
                None
            }
            (true, false) => match obj.duration("lifetime") {
                Some(d) if d < Duration::from_millis(100) => {
                    obj.error("lifetime", "must be at least 100ms");
                    None
                }
                d => d.map(Lifetime::Fixed),
            },
            (false, _) => {
                let millis = match obj.string("lifetimeUnit").as_deref() {
                    None | Some("s") => Some(false),
                    Some("ms") => Some(true),
                    Some(other) => {
                        obj.error("lifetimeUnit", format!("must be s or ms, got {other:?}"));
                        None
                    }
                };
                path(obj, "lifetimePath", "expires_in")
                    .zip(millis)
                    .map(|(path, millis)| Lifetime::FromResponse { path, millis })
            }
        };
        if obj.has("lifetime") && obj.has("lifetimeUnit") {
            obj.error("lifetimeUnit", "applies to lifetimePath only");
        }
        let refresh_at = obj.number("refreshAt").unwrap_or(0.8);
        if !(refresh_at > 0.0 && refresh_at < 1.0) {
            obj.error(
                "refreshAt",
                format!("must be between 0 and 1 (a share of the token lifetime), got {refresh_at}"),
            );
        }
        let redis = env_template(obj, "redis");
        if let Some(Some(r)) = &redis {
            let s = r.source();
            if !(s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("{{")) {
                obj.error("redis", format!("{:?} must be a redis:// or rediss:// URL", volley_jwt::redact(s)));
            }
        }
        let key = env_template(obj, "key").unwrap_or_else(|| Template::parse(&format!("volley:token:{name}")).ok());
        let channel = env_template(obj, "channel");
        let lease = obj.duration("lease").unwrap_or(Duration::from_secs(5));
        if lease < Duration::from_millis(300) {
            obj.error("lease", "must be at least 300ms");
        }
        let wait = obj.duration("wait").unwrap_or(Duration::from_secs(10));
        let poll = obj.duration("poll").unwrap_or(Duration::from_secs(1));
        if poll < Duration::from_millis(50) {
            obj.error("poll", "must be at least 50ms");
        }
        let retry = obj.duration("retry").unwrap_or(Duration::from_millis(250));
        let retry_max = obj.duration("retryMax").unwrap_or(Duration::from_secs(5));
        if retry.is_zero() {
            obj.error("retry", "must be greater than 0");
        }
        if retry_max < retry {
            obj.error("retryMax", "must not be shorter than retry");
        }
        let insecure_tls = obj.boolean("insecureSkipTLSVerify").unwrap_or(false);
        if !before || !obj.report.is_clean() {
            return None;
        }
        let mut login = login?;
        login.keep_body = true;
        let refresh = refresh.map(|mut r| {
            r.keep_body = true;
            r
        });
        let config = ManagerConfig {
            name: name.to_string(),
            token_path: token_path?,
            lifetime: lifetime?,
            refresh_at,
            redis: redis.flatten(),
            key: key?,
            channel: channel.flatten(),
            lease,
            wait,
            poll,
            retry,
            retry_max,
            insecure_tls,
        };
        Some((config, Requests { login, refresh }))
    }

    /// Environment variables the Redis settings read (these are rendered
    /// once per process, from the process environment and `-e`).
    pub fn shared_env_refs(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = self.key.env_refs().collect();
        for t in self.redis.iter().chain(&self.channel) {
            refs.extend(t.env_refs());
        }
        refs
    }
}

fn path(obj: &Obj, field: &str, default: &str) -> Option<JsonPath> {
    let text = obj.string(field).unwrap_or_else(|| default.to_string());
    let p = JsonPath::parse(&text);
    if p.is_none() {
        obj.error(field, format!("{text:?} is not a JSON path (e.g. access_token or data.token)"));
    }
    p
}

/// A field that may only use `{{env.NAME}}`: `None` when absent,
/// `Some(None)` when invalid (reported).
fn env_template(obj: &Obj, field: &str) -> Option<Option<Template>> {
    let text = obj.string(field)?;
    Some(match Template::parse(&text) {
        Ok(t) if t.is_static() && !t.source().contains("{{scenario}}") && t.token_refs().next().is_none() => Some(t),
        Ok(_) => {
            obj.error(field, "may only use {{env.NAME}} placeholders");
            None
        }
        Err(e) => {
            obj.error(field, e);
            None
        }
    })
}
