//! The default IM protocol, as the README's "WebSocket IM scenarios" describes it:
//!
//! | client → gateway | gateway → client |
//! |---|---|
//! | `{"type":"AUTH","token":JWT}` | `{"type":"AUTH_OK","user":ID}` or `{"type":"AUTH_FAIL","reason":…}` |
//! | `{"type":"PING","id":N,"ts":T}` | `{"type":"PONG","id":N,"ts":T}` (both echoed) |
//! | `{"type":"MSG","to":ID,"seq":N,"ts":T,"body":…}` | to the recipient: the same with `"from":ID` |
//! | anything else | `{"type":"ERROR","reason":…}` |
//!
//! `id`, `seq`, `ts` and `body` are passed through untouched, so a client
//! may use any clock unit. User ids are strings (the JWT subject); a numeric
//! `to` is accepted too.

use serde::Deserialize;
use serde_json::{json, Value};

/// A frame from a client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ClientFrame {
    /// Authentication.
    #[serde(rename = "AUTH")]
    Auth {
        /// The JWT.
        token: String,
    },
    /// Liveness probe, echoed as PONG.
    #[serde(rename = "PING")]
    Ping {
        /// Echoed.
        #[serde(default)]
        id: Value,
        /// Echoed.
        #[serde(default)]
        ts: Value,
    },
    /// A chat message for another user.
    #[serde(rename = "MSG")]
    Msg {
        /// Recipient user id.
        to: Value,
        /// Sender's sequence number (echoed).
        #[serde(default)]
        seq: Value,
        /// Sender's timestamp (echoed).
        #[serde(default)]
        ts: Value,
        /// Payload (echoed).
        #[serde(default)]
        body: Value,
    },
}

/// A user id from a `to` field: a string, or a number written as one.
pub fn user_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `AUTH_OK`.
pub fn auth_ok(user: &str) -> String {
    json!({"type": "AUTH_OK", "user": user}).to_string()
}

/// `AUTH_FAIL` with the reason.
pub fn auth_fail(reason: &str) -> String {
    json!({"type": "AUTH_FAIL", "reason": reason}).to_string()
}

/// `PONG` echoing the ping's id and timestamp.
pub fn pong(id: &Value, ts: &Value) -> String {
    json!({"type": "PONG", "id": id, "ts": ts}).to_string()
}

/// The delivery of a MSG to its recipient.
pub fn delivery(from: &str, to: &str, seq: &Value, ts: &Value, body: &Value) -> String {
    json!({"type": "MSG", "from": from, "to": to, "seq": seq, "ts": ts, "body": body}).to_string()
}

/// `ERROR` with the reason.
pub fn error(reason: &str) -> String {
    json!({"type": "ERROR", "reason": reason}).to_string()
}
