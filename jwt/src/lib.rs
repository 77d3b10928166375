//! HS256 JSON Web Tokens: what Volley's IM flows sign (one token per VU,
//! subject = user id) and what the reference gateway verifies.
//!
//! Only HS256 is needed here, so this is a small, strict implementation on
//! `ring`'s HMAC instead of a general JWT library: the header must say
//! `"alg":"HS256"`, the signature is compared in constant time, and `exp`
//! / `nbf` are checked against the caller's clock (seconds since the epoch).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The claims Volley reads and writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// Issued at (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Expires at (Unix seconds); a token without it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, or the JSON inside is not a JWT.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm.
    #[error("unsupported algorithm (only HS256 is accepted)")]
    Algorithm,
    /// The signature does not match the secret.
    #[error("bad signature")]
    Signature,
    /// `exp` is in the past.
    #[error("token expired at {0}")]
    Expired(u64),
    /// `nbf` is in the future.
    #[error("token not valid before {0}")]
    NotYetValid(u64),
}

/// A signing and verifying key.
#[derive(Clone)]
pub struct Key(hmac::Key);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("Key(HS256, redacted)")
    }
}

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded once.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

impl Key {
    /// A key from the shared secret, as backends configure it.
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Signs `claims` into a compact token.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims always serialize");
        let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let tag = hmac::sign(&self.0, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        token
    }

    /// Checks the signature and the time claims at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("expected three dot-separated parts"));
        };
        let header = decode(header)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| JwtError::Malformed("header is not JSON"))?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Algorithm);
        }
        let signature = decode(signature)?;
        let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
        hmac::verify(&self.0, signed.as_bytes(), &signature).map_err(|_| JwtError::Signature)?;
        let claims: Claims = serde_json::from_slice(&decode(payload)?)
            .map_err(|_| JwtError::Malformed("payload is not a claims object"))?;
        if let Some(exp) = claims.exp {
            if now >= exp {
                return Err(JwtError::Expired(exp));
            }
        }
        if let Some(nbf) = claims.nbf {
            if now < nbf {
                return Err(JwtError::NotYetValid(nbf));
            }
        }
        Ok(claims)
    }
}

fn decode(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| JwtError::Malformed("invalid base64url"))
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let token = authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer "))?.trim();
    (!token.is_empty()).then_some(token)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// At most the first 8 characters of a token, for logs: enough to tell
/// tokens apart, never enough to use one.
pub fn redact(token: &str) -> String {
    let prefix: String = token.chars().take(8).collect();
    if token.chars().count() > 8 {
        format!("{prefix}…")
    } else {
        "…".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, exp: Option<u64>) -> Claims {
        Claims { sub: sub.into(), iat: Some(1_000), exp, nbf: None }
    }

    #[test]
    fn signs_what_other_implementations_sign() {
        // The token jwt.io shows for this header, payload and secret.
        let key = Key::new(b"your-256-bit-secret");
        let token = key.sign(&Claims { sub: "1234567890".into(), iat: Some(1516239022), exp: None, nbf: None });
        let expected_payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"1234567890","iat":1516239022}"#);
        assert!(token.starts_with(&format!("{HEADER_B64}.{expected_payload}.")));
        assert_eq!(URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap(), br#"{"alg":"HS256","typ":"JWT"}"#);
        assert_eq!(key.verify(&token, 2_000_000_000).unwrap().sub, "1234567890");
    }

    #[test]
    fn refuses_wrong_secret_expired_and_malformed_tokens() {
        let key = Key::new(b"secret-a");
        let token = key.sign(&claims("100001", Some(5_000)));
        assert_eq!(key.verify(&token, 4_999).unwrap().sub, "100001");
        assert_eq!(key.verify(&token, 5_000), Err(JwtError::Expired(5_000)));
        assert_eq!(Key::new(b"secret-b").verify(&token, 10), Err(JwtError::Signature));
        assert!(matches!(key.verify("abc", 10), Err(JwtError::Malformed(_))));
        assert!(matches!(key.verify("a.b.c.d", 10), Err(JwtError::Malformed(_))));
        // A tampered payload fails the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"1"}"#);
        parts[1] = &forged;
        assert_eq!(key.verify(&parts.join("."), 10), Err(JwtError::Signature));
        // alg=none is refused before anything else.
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), forged);
        assert_eq!(key.verify(&none, 10), Err(JwtError::Algorithm));
    }

    #[test]
    fn redaction_keeps_a_short_prefix_only() {
        assert_eq!(redact("eyJhbGciOiJIUzI1NiJ9.x.y"), "eyJhbGci…");
        assert_eq!(redact("short"), "…");
    }
}
