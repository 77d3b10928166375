//! `--http-debug[=full]`: every request and response on stderr, as k6
//! prints them: the request line and headers, the status and headers, and
//! with `full` the bodies (at most [`MAX_BODY_SHOWN`] bytes each).
//!
//! Credentials never appear whole: the values of `Authorization`,
//! `Cookie`, `Set-Cookie`, `Proxy-Authorization` and headers whose name
//! says token, secret, key or password show their first four characters.

use bytes::Bytes;
use http::HeaderMap;
use std::fmt::Write;

/// The most of a body printed.
pub const MAX_BODY_SHOWN: usize = 4096;

/// What `--http-debug` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Level {
    /// Nothing.
    #[default]
    Off,
    /// Request and response heads.
    Headers,
    /// Heads and bodies.
    Full,
}

impl Level {
    /// `--http-debug` (`""`) or `--http-debug=full`.
    pub fn parse(text: &str) -> Result<Level, String> {
        match text {
            "" | "headers" => Ok(Level::Headers),
            "full" => Ok(Level::Full),
            other => Err(format!("--http-debug={other}: expected no value or \"full\"")),
        }
    }
}

/// Prints a request about to be sent.
pub fn request(req: &http::Request<http_body_util::Full<Bytes>>, body: &Bytes, level: Level) {
    let mut out = format!("Request:\n{} {} {:?}\n", req.method(), req.uri(), req.version());
    headers(&mut out, req.headers());
    if level == Level::Full {
        shown_body(&mut out, body);
    }
    eprintln!("{out}");
}

/// Prints a response.
pub fn response(h: &HeaderMap, status: u16, body: &[u8], level: Level) {
    let mut out = format!("Response:\n{status}\n");
    headers(&mut out, h);
    if level == Level::Full {
        shown_body(&mut out, body);
    }
    eprintln!("{out}");
}

fn headers(out: &mut String, h: &HeaderMap) {
    for (name, value) in h {
        let text = String::from_utf8_lossy(value.as_bytes());
        let shown = if is_secret(name.as_str()) { masked(&text) } else { text.into_owned() };
        let _ = writeln!(out, "{name}: {shown}");
    }
}

fn shown_body(out: &mut String, body: &[u8]) {
    let cut = body.len().min(MAX_BODY_SHOWN);
    let _ = writeln!(out, "\n{}", String::from_utf8_lossy(&body[..cut]));
    if body.len() > cut {
        let _ = writeln!(out, "… ({} more bytes)", body.len() - cut);
    }
}

/// True for headers that carry credentials.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie")
        || ["token", "secret", "key", "password", "csrf"].iter().any(|w| n.contains(w))
}

/// The first four characters, then how many were hidden.
pub fn masked(value: &str) -> String {
    let shown: String = value.chars().take(4).collect();
    let hidden = value.chars().count().saturating_sub(4);
    if hidden == 0 {
        "****".into()
    } else {
        format!("{shown}… ({hidden} characters hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked() {
        assert!(is_secret("Authorization") && is_secret("X-CSRF-Token") && is_secret("x-api-key"));
        assert!(!is_secret("Content-Type"));
        assert_eq!(masked("Bearer abcdefgh"), "Bear… (11 characters hidden)");
        assert_eq!(masked("abc"), "****");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer secret-value".parse().unwrap());
        h.insert("accept", "text/plain".parse().unwrap());
        let mut out = String::new();
        headers(&mut out, &h);
        assert!(!out.contains("secret-value") && out.contains("accept: text/plain"), "{out}");
        assert_eq!(Level::parse("full"), Ok(Level::Full));
        assert!(Level::parse("all").is_err());
    }
}
