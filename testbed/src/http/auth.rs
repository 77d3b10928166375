//! Short-lived tokens and protected endpoints, the target of the shared-token
//! flow (README, "Shared auth token"):
//! - `POST /auth/login` with `{"username": …}` issues an HS256 JWT for that
//!   user, valid `--token-ttl`;
//! - `POST /auth/refresh` with a valid `Authorization: Bearer` token issues a
//!   fresh one for the same user (an expired one gets 401);
//! - `/api/…` answers 200 with a valid token and 401 to a missing, invalid or
//!   expired one; every 401 is counted by reason on `/stats`.
//!
//! Both issuing endpoints answer `{"access_token", "token_type":"Bearer",
//! "expires_in": seconds}`. `exp` is rounded up to the next second, so a
//! token lives at least the full TTL.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Token settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// HS256 secret.
    pub secret: String,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { secret: "volley-testbed-secret".into(), token_ttl: Duration::from_secs(60) }
    }
}

/// Counters of the auth endpoints.
#[derive(Default)]
pub struct AuthCounters {
    logins: AtomicU64,
    refreshes: AtomicU64,
    authorized: AtomicU64,
    missing: AtomicU64,
    invalid: AtomicU64,
    expired: AtomicU64,
}

/// What the auth endpoints have done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuthStats {
    /// Tokens issued by `/auth/login`.
    pub logins: u64,
    /// Tokens issued by `/auth/refresh`.
    pub refreshes: u64,
    /// `/api/…` requests with a valid token.
    pub authorized: u64,
    /// 401: no `Authorization: Bearer` header.
    pub unauthorized_missing: u64,
    /// 401: malformed token or wrong signature.
    pub unauthorized_invalid: u64,
    /// 401: the token had expired.
    pub unauthorized_expired: u64,
}

impl AuthCounters {
    /// A snapshot.
    pub fn snapshot(&self) -> AuthStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AuthStats {
            logins: r(&self.logins),
            refreshes: r(&self.refreshes),
            authorized: r(&self.authorized),
            unauthorized_missing: r(&self.missing),
            unauthorized_invalid: r(&self.invalid),
            unauthorized_expired: r(&self.expired),
        }
    }
}

/// Issues and checks tokens.
pub struct Auth {
    key: volley_jwt::Key,
    ttl: Duration,
    /// Counters.
    pub counters: AuthCounters,
}

/// The outcome of an auth endpoint: status and JSON body.
pub type Answer = (u16, String);

impl Auth {
    /// From the settings.
    pub fn new(config: &AuthConfig) -> Auth {
        Auth {
            key: volley_jwt::Key::new(config.secret.as_bytes()),
            ttl: config.token_ttl,
            counters: AuthCounters::default(),
        }
    }

    fn issue(&self, user: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let exp = (now + self.ttl).as_secs_f64().ceil() as u64;
        let token = self.key.sign(&volley_jwt::Claims {
            sub: user.to_string(),
            iat: Some(now.as_secs()),
            exp: Some(exp),
            nbf: None,
        });
        serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": self.ttl.as_secs_f64()})
            .to_string()
    }

    /// `POST /auth/login`.
    pub fn login(&self, body: &[u8]) -> Answer {
        let user = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("username").and_then(|u| u.as_str()).map(str::to_string));
        match user {
            Some(user) if !user.is_empty() => {
                self.counters.logins.fetch_add(1, Ordering::Relaxed);
                (200, self.issue(&user))
            }
            _ => (400, error("the body must be JSON with a non-empty \"username\"")),
        }
    }

    /// `POST /auth/refresh`.
    pub fn refresh(&self, authorization: Option<&str>) -> Answer {
        match self.check(authorization) {
            Ok(user) => {
                self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                (200, self.issue(&user))
            }
            Err(answer) => answer,
        }
    }

    /// `/api/…`.
    pub fn api(&self, authorization: Option<&str>) -> Answer {
        match self.check(authorization) {
            Ok(user) => {
                self.counters.authorized.fetch_add(1, Ordering::Relaxed);
                (200, serde_json::json!({"ok": true, "user": user}).to_string())
            }
            Err(answer) => answer,
        }
    }

    /// The user of a valid bearer token, or the 401 to answer (counted).
    fn check(&self, authorization: Option<&str>) -> Result<String, Answer> {
        let c = &self.counters;
        let Some(token) = authorization.and_then(volley_jwt::bearer) else {
            c.missing.fetch_add(1, Ordering::Relaxed);
            return Err((401, error("missing bearer token")));
        };
        match self.key.verify(token, volley_jwt::unix_now()) {
            Ok(claims) => Ok(claims.sub),
            Err(volley_jwt::JwtError::Expired(_)) => {
                c.expired.fetch_add(1, Ordering::Relaxed);
                Err((401, error("token expired")))
            }
            Err(e) => {
                c.invalid.fetch_add(1, Ordering::Relaxed);
                Err((401, error(&format!("invalid token: {e}"))))
            }
        }
    }
}

fn error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_refreshes_and_guards() {
        let auth = Auth::new(&AuthConfig { secret: "s".into(), token_ttl: Duration::from_secs(30) });
        let (status, body) = auth.login(br#"{"username":"alice","password":"x"}"#);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["expires_in"], 30.0);
        let token = v["access_token"].as_str().unwrap().to_string();
        let bearer = format!("Bearer {token}");
        assert_eq!(auth.api(Some(&bearer)), (200, r#"{"ok":true,"user":"alice"}"#.to_string()));
        assert_eq!(auth.refresh(Some(&bearer)).0, 200);
        assert_eq!(auth.api(None).0, 401);
        assert_eq!(auth.api(Some("Bearer nope")).0, 401);
        assert_eq!(auth.login(b"{}").0, 400);
        // A token signed with the same secret but already expired.
        let expired = volley_jwt::Key::new(b"s").sign(&volley_jwt::Claims {
            sub: "bob".into(),
            iat: None,
            exp: Some(volley_jwt::unix_now() - 1),
            nbf: None,
        });
        assert_eq!(auth.refresh(Some(&format!("Bearer {expired}"))).0, 401);
        let s = auth.counters.snapshot();
        assert_eq!(
            s,
            AuthStats {
                logins: 1,
                refreshes: 1,
                authorized: 1,
                unauthorized_missing: 1,
                unauthorized_invalid: 1,
                unauthorized_expired: 1
            }
        );
    }
}
