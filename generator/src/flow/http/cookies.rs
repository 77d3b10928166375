//! A VU's cookie jar, as k6's: cookies the responses set are sent back on
//! the later requests of the same iteration (the jar starts empty every
//! iteration), matched by host, domain, path and `Secure`. Bounded: a jar
//! holds at most [`MAX_COOKIES`] cookies of at most [`MAX_COOKIE_BYTES`].

use http::HeaderMap;

/// Cookies one jar holds; a new one beyond replaces the oldest.
pub const MAX_COOKIES: usize = 64;
/// Longest `name=value` kept.
pub const MAX_COOKIE_BYTES: usize = 4096;

#[derive(Debug)]
struct Cookie {
    name: String,
    value: String,
    /// The host that set it, or the `Domain` it allows (then `domain_wide`).
    host: String,
    domain_wide: bool,
    path: String,
    secure: bool,
}

/// One VU's cookies for the current iteration.
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    /// Forgets every cookie (a new iteration).
    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// Takes the `Set-Cookie` headers of a response from `host` for `path`.
    pub fn store(&mut self, host: &str, path: &str, headers: &HeaderMap) {
        for set in headers.get_all(http::header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            self.store_one(host, path, set);
        }
    }

    fn store_one(&mut self, host: &str, request_path: &str, set: &str) {
        let mut parts = set.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else { return };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.len() + value.len() > MAX_COOKIE_BYTES {
            return;
        }
        let mut cookie = Cookie {
            name: name.to_string(),
            value: value.to_string(),
            host: host.to_ascii_lowercase(),
            domain_wide: false,
            path: default_path(request_path),
            secure: false,
        };
        let mut expired = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').map_or((attr.trim(), ""), |(k, v)| (k.trim(), v.trim()));
            match k.to_ascii_lowercase().as_str() {
                "domain" if !v.is_empty() => {
                    let domain = v.trim_start_matches('.').to_ascii_lowercase();
                    // A response may not set cookies for another site.
                    if !domain_matches(&cookie.host, &domain) {
                        return;
                    }
                    cookie.host = domain;
                    cookie.domain_wide = true;
                }
                "path" if v.starts_with('/') => cookie.path = v.to_string(),
                "secure" => cookie.secure = true,
                "max-age" => expired = v.parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => {
                    expired = expired || httpdate::parse_http_date(v).is_ok_and(|t| t <= std::time::SystemTime::now())
                }
                _ => {}
            }
        }
        self.cookies.retain(|c| !(c.name == cookie.name && c.host == cookie.host && c.path == cookie.path));
        if expired {
            return;
        }
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies.push(cookie);
    }

    /// The `Cookie` header for a request to `host` and `path` (over TLS when
    /// `secure`), if any cookie matches.
    pub fn header(&self, host: &str, path: &str, secure: bool) -> Option<String> {
        let host = host.to_ascii_lowercase();
        let matching: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| if c.domain_wide { domain_matches(&host, &c.host) } else { c.host == host })
            .filter(|c| path_matches(path, &c.path) && (secure || !c.secure))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }
}

/// `host` is `domain` or one of its subdomains.
fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain || host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.'))
}

/// RFC 6265's path match.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie) && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// The directory of the request path: where a cookie without `Path` applies.
fn default_path(request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or("/");
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::SET_COOKIE, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cookies_go_back_where_they_apply() {
        let mut jar = Jar::default();
        jar.store(
            "shop.example",
            "/login",
            &set(&["sid=abc; Path=/; HttpOnly", "pref=dark", "tok=s; Secure", "wide=1; Domain=example"]),
        );
        assert_eq!(jar.header("shop.example", "/cart", false).as_deref(), Some("sid=abc; pref=dark; wide=1"));
        assert_eq!(jar.header("shop.example", "/", true).as_deref(), Some("sid=abc; pref=dark; tok=s; wide=1"));
        assert_eq!(jar.header("api.example", "/x", false).as_deref(), Some("wide=1"));
        assert_eq!(jar.header("other.test", "/", false), None);
        // Replaced, then deleted.
        jar.store("shop.example", "/", &set(&["sid=new; Path=/"]));
        assert!(jar.header("shop.example", "/", false).unwrap().contains("sid=new"));
        jar.store("shop.example", "/", &set(&["sid=; Path=/; Max-Age=0"]));
        assert!(!jar.header("shop.example", "/", false).unwrap().contains("sid="));
        jar.clear();
        assert_eq!(jar.header("shop.example", "/", true), None);
    }

    #[test]
    fn the_jar_is_bounded_and_refuses_other_sites() {
        let mut jar = Jar::default();
        jar.store("a.test", "/", &set(&["x=1; Domain=b.test"]));
        assert_eq!(jar.header("b.test", "/", false), None);
        for i in 0..200 {
            jar.store("a.test", "/", &set(&[&format!("c{i}=v")]));
        }
        assert_eq!(jar.cookies.len(), MAX_COOKIES);
        assert!(jar.header("a.test", "/", false).unwrap().starts_with("c136=v"));
        let huge = format!("big={}", "x".repeat(MAX_COOKIE_BYTES));
        jar.store("a.test", "/", &set(&[&huge]));
        assert!(!jar.header("a.test", "/", false).unwrap().contains("big="));
    }
}
