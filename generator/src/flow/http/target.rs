//! A request's destination (parsed from its rendered URL) and what its
//! answer brought back.

use super::client::Origin;
use crate::flow::FlowError;
use http::header::HeaderValue;
use http::Uri;
use std::time::Duration;

/// A request's destination, parsed from its rendered URL.
pub(super) struct Target {
    pub(super) url: String,
    pub(super) origin: Origin,
    pub(super) host: HeaderValue,
    /// Origin-form URI (path and query) for the request line.
    pub(super) path: Uri,
    /// Length of `scheme://authority` at the start of `url`.
    origin_len: usize,
}

impl Target {
    pub(super) fn parse(url: String) -> Result<Target, FlowError> {
        let uri: Uri = url.parse().map_err(|e| FlowError::Step(format!("invalid URL {url:?}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FlowError::Step(format!("URL {url:?} must start with http:// or https://"))),
        };
        let authority = uri.authority().ok_or_else(|| FlowError::Step(format!("URL {url:?} has no host")))?;
        let origin = Origin {
            tls,
            host: authority.host().trim_start_matches('[').trim_end_matches(']').to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        };
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| FlowError::Step(format!("URL {url:?}: {e}")))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| FlowError::Step(format!("invalid path in URL {url:?}: {e}")))?;
        let origin_len = url.find("://").map_or(0, |i| i + 3) + authority.as_str().len();
        Ok(Target { url, origin, host, path, origin_len })
    }

    /// As [`Target::parse`], reusing `last`'s origin when `url` has the
    /// same `scheme://authority` (a templated path or query): only the path
    /// is parsed, which is most of what a templated URL costs per request.
    pub(super) fn parse_like(url: String, last: &Target) -> Result<Target, FlowError> {
        let n = last.origin_len;
        let same_origin = n > 0
            && url.len() > n
            && url.as_bytes()[..n] == last.url.as_bytes()[..n]
            && matches!(url.as_bytes()[n], b'/' | b'?');
        if !same_origin {
            return Target::parse(url);
        }
        let rest = &url[n..];
        let parsed = if rest.starts_with('?') { format!("/{rest}").parse() } else { rest.parse::<Uri>() };
        let path = parsed.map_err(|e| FlowError::Step(format!("invalid path in URL {url:?}: {e}")))?;
        Ok(Target { url, origin: last.origin.clone(), host: last.host.clone(), path, origin_len: n })
    }

    /// The whole URI (what HTTP/2 requests carry).
    pub(super) fn absolute(&self) -> Result<Uri, FlowError> {
        self.url.parse().map_err(|e| FlowError::Step(format!("invalid URL {:?}: {e}", self.url)))
    }
}

/// What one request produced.
pub(super) struct Outcome {
    pub(super) status: u16,
    pub(super) waiting: Duration,
    pub(super) duration: Duration,
    pub(super) body: Vec<u8>,
    pub(super) headers: http::HeaderMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_templated_url_reuses_its_origin() {
        let first = Target::parse("http://h.test:8080/a?x=1".into()).unwrap();
        let same = Target::parse_like("http://h.test:8080/b/c?y=2".into(), &first).unwrap();
        assert_eq!(
            (same.path.to_string(), same.origin.port, same.host.to_str().unwrap()),
            ("/b/c?y=2".into(), 8080, "h.test:8080")
        );
        let query = Target::parse_like("http://h.test:8080?q".into(), &first).unwrap();
        assert_eq!(query.path.to_string(), "/?q");
        // Another port, host or scheme is parsed afresh.
        for other in ["http://h.test:8081/a", "http://h.test:80800/a", "https://h.test:8080/a", "http://h.test/a"] {
            let t = Target::parse_like(other.into(), &first);
            let fresh = Target::parse(other.into());
            match (t, fresh) {
                (Ok(t), Ok(f)) => assert_eq!((t.origin, t.path.to_string()), (f.origin, f.path.to_string()), "{other}"),
                (t, f) => assert_eq!(t.is_err(), f.is_err(), "{other}"),
            }
        }
        assert!(Target::parse_like("http://h.test:8080/a b".into(), &first).is_err());
    }
}
