//! Routing and handlers. Bodies are static or sliced from one shared
//! buffer, so the hot endpoints allocate nothing per request.

use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use std::time::Duration;

/// Largest `/bytes/{n}` payload.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// Longest `/delay/{ms}`.
pub const MAX_DELAY_MS: u64 = 60_000;

/// The JSON document of `/json` (used to test JSON-path checks).
pub const JSON_DOC: &str = r#"{"ok":true,"name":"volley","items":[{"id":1,"price":9.5},{"id":2,"price":3}],"nested":{"level":{"deep":"yes"}}}"#;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `/`
    Root,
    /// `/delay/{ms}`
    Delay(Duration),
    /// `/status/{code}`
    Status(u16),
    /// `/bytes/{n}`
    Bytes(usize),
    /// `/json`
    Json,
    /// `/echo`
    Echo,
    /// `/stats`
    Stats,
    /// `/peer`: the client's address and port, as the server sees them.
    Peer,
    /// `POST /auth/login`
    Login,
    /// `POST /auth/refresh`
    Refresh,
    /// `/api/…` (needs a valid bearer token)
    Api,
    /// `/shop/…`
    Shop(super::shop::ShopRoute),
    /// A malformed parameter, with the reason.
    BadRequest(&'static str),
    /// Anything else.
    NotFound,
}

/// Maps a method and path (query already stripped) to a route.
pub fn route(method: &Method, path: &str) -> Route {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let head = parts.next().unwrap_or("");
    let arg = parts.next();
    match (head, arg) {
        ("", None) => Route::Root,
        ("delay", Some(ms)) => match ms.parse::<u64>() {
            Ok(ms) => Route::Delay(Duration::from_millis(ms.min(MAX_DELAY_MS))),
            Err(_) => Route::BadRequest("delay must be a whole number of milliseconds"),
        },
        ("status", Some(code)) => match code.parse::<u16>() {
            Ok(c) if code.len() == 3 && (100..=599).contains(&c) => Route::Status(c),
            _ => Route::BadRequest("status must be a code from 100 to 599"),
        },
        ("bytes", Some(n)) => match n.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES => Route::Bytes(n),
            _ => Route::BadRequest("bytes must be a whole number up to 10485760"),
        },
        ("json", None) if method == Method::GET || method == Method::HEAD => Route::Json,
        ("echo", None) => Route::Echo,
        ("stats", None) => Route::Stats,
        ("peer", None) => Route::Peer,
        ("auth", Some("login")) if method == Method::POST => Route::Login,
        ("auth", Some("refresh")) if method == Method::POST => Route::Refresh,
        ("api", _) => Route::Api,
        ("shop", Some(rest)) => super::shop::ShopRoute::of(method, rest).map_or(Route::NotFound, Route::Shop),
        _ => Route::NotFound,
    }
}

/// A response with a static body.
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// `n` bytes of payload, sliced from one shared zero-copy buffer.
pub fn payload(n: usize) -> Response<Full<Bytes>> {
    static BUF: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let buf = BUF.get_or_init(|| Bytes::from(vec![b'x'; MAX_BYTES]));
    let mut r = Response::new(Full::new(buf.slice(..n)));
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    r
}

/// The `/json` document.
pub fn json() -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::OK, JSON_DOC);
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_paths() {
        let get = Method::GET;
        assert_eq!(route(&get, "/"), Route::Root);
        assert_eq!(route(&get, "/delay/25"), Route::Delay(Duration::from_millis(25)));
        assert_eq!(route(&get, "/delay/999999"), Route::Delay(Duration::from_millis(MAX_DELAY_MS)));
        assert_eq!(route(&get, "/status/418"), Route::Status(418));
        assert!(matches!(route(&get, "/status/42"), Route::BadRequest(_)));
        assert!(matches!(route(&get, "/status/0200"), Route::BadRequest(_)));
        assert_eq!(route(&get, "/bytes/1024"), Route::Bytes(1024));
        assert!(matches!(route(&get, "/bytes/99999999"), Route::BadRequest(_)));
        assert_eq!(route(&get, "/json"), Route::Json);
        assert_eq!(route(&Method::POST, "/echo"), Route::Echo);
        assert_eq!(route(&get, "/stats"), Route::Stats);
        assert_eq!(route(&get, "/peer"), Route::Peer);
        assert_eq!(route(&get, "/nope"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/auth/login"), Route::Login);
        assert_eq!(route(&get, "/auth/login"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/auth/refresh"), Route::Refresh);
        assert_eq!(route(&get, "/api/items/7"), Route::Api);
        assert_eq!(route(&get, "/api"), Route::Api);
        assert_eq!(route(&get, "/delay"), Route::NotFound);
        assert_eq!(route(&get, "/shop/me"), Route::Shop(super::super::shop::ShopRoute::Me));
        assert_eq!(route(&get, "/shop/login"), Route::NotFound);
    }
}
