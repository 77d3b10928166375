//! The k6 options that apply to every http flow of a file.

use super::debug;
use std::collections::HashMap;

/// k6's default `maxRedirects`.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// k6 options that apply to every http flow of a file.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `userAgent`: the `User-Agent` sent when a request sets none (`None`:
    /// no header, what `userAgent: ""` asks for).
    pub user_agent: Option<String>,
    /// `insecureSkipTLSVerify`: accept any certificate.
    pub insecure_tls: bool,
    /// `maxRedirects`: redirects followed per request (0: none).
    pub max_redirects: u32,
    /// `discardResponseBodies`: keep no body unless a request asks with
    /// `responseType: text`.
    pub discard_bodies: bool,
    /// `noConnectionReuse`: a new connection for every request.
    pub no_connection_reuse: bool,
    /// `systemTags`: the system tags request series keep (`None`: all).
    pub system_tags: Option<Vec<String>>,
    /// `hosts`: host name → address (and port) to dial instead.
    pub hosts: Hosts,
    /// `--http-debug`.
    pub debug: debug::Level,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            user_agent: Some(format!("volley/{}", env!("CARGO_PKG_VERSION"))),
            insecure_tls: false,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            discard_bodies: false,
            no_connection_reuse: false,
            system_tags: None,
            hosts: HashMap::new(),
            debug: debug::Level::Off,
        }
    }
}

/// k6's `hosts` option: host name → address, and the port to use instead
/// of the URL's when given.
pub type Hosts = HashMap<String, (String, Option<u16>)>;

/// The system tags of request series (what `systemTags` may list).
pub const SYSTEM_TAGS: &[&str] =
    &["method", "status", "url", "name", "expected_response", "group", "check", "scenario"];
