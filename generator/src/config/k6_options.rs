//! k6's options that shape requests and the summary, from `options` and
//! from their command-line flags (a flag wins over the file):
//! `userAgent`, `insecureSkipTLSVerify`, `maxRedirects`,
//! `discardResponseBodies`, `noConnectionReuse`, `systemTags`, `hosts`,
//! `summaryTimeUnit`, and the flags `--tag`, `--no-thresholds`,
//! `--summary-trend-stats`, `--http-debug`.

use super::reader::{Obj, Report};
use crate::flow::http::{debug, Hosts, HttpOptions, SYSTEM_TAGS};
use crate::summary::format::TimeUnit;
use crate::summary::stats::TrendStat;

/// The option flags of `volley run`.
#[derive(Clone, Debug, Default)]
pub struct OptionFlags {
    /// `--tag NAME=VALUE`.
    pub tags: Vec<(String, String)>,
    /// `--no-thresholds`.
    pub no_thresholds: bool,
    /// `--summary-trend-stats`.
    pub summary_trend_stats: Option<String>,
    /// `--summary-time-unit`.
    pub summary_time_unit: Option<String>,
    /// `--system-tags`.
    pub system_tags: Option<String>,
    /// `--http-debug[=full]` (`""` for the heads only).
    pub http_debug: Option<String>,
    /// `--no-connection-reuse`.
    pub no_connection_reuse: bool,
    /// `--discard-response-bodies`.
    pub discard_response_bodies: bool,
    /// `--user-agent`.
    pub user_agent: Option<String>,
    /// `--max-redirects`.
    pub max_redirects: Option<u32>,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
}

/// The options of this file's names.
pub const FIELDS: &[&str] = &[
    "userAgent",
    "insecureSkipTLSVerify",
    "maxRedirects",
    "discardResponseBodies",
    "noConnectionReuse",
    "systemTags",
    "hosts",
    "summaryTimeUnit",
];

/// The http options of the file, then of the flags.
pub fn http_options(options: Option<&Obj>, flags: &OptionFlags, report: &Report) -> HttpOptions {
    let mut http = HttpOptions::default();
    if let Some(o) = options {
        if let Some(ua) = o.string("userAgent") {
            set_user_agent(&mut http, &ua, |e| o.error("userAgent", e));
        }
        http.insecure_tls = o.boolean("insecureSkipTLSVerify").unwrap_or(false);
        if let Some(n) = o.uint("maxRedirects", 0) {
            match u32::try_from(n) {
                Ok(n) => http.max_redirects = n,
                Err(_) => o.error("maxRedirects", "is too large"),
            }
        }
        http.discard_bodies = o.boolean("discardResponseBodies").unwrap_or(false);
        http.no_connection_reuse = o.boolean("noConnectionReuse").unwrap_or(false);
        if let Some(list) = o.get("systemTags") {
            let names: Vec<String> = match list {
                serde_json::Value::Array(items) => {
                    items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                }
                serde_json::Value::String(s) => split_list(s),
                _ => {
                    o.error("systemTags", "must be a list of tag names");
                    Vec::new()
                }
            };
            http.system_tags = system_tags(names).map_err(|e| o.error("systemTags", e)).ok();
        }
        if let Some(hosts) = o.string_map("hosts") {
            http.hosts = read_hosts(&hosts).map_err(|(k, e)| o.error(&format!("hosts.{k}"), e)).unwrap_or_default();
        }
    }
    if let Some(ua) = &flags.user_agent {
        set_user_agent(&mut http, ua, |e| report.error("--user-agent", e));
    }
    http.insecure_tls |= flags.insecure_skip_tls_verify;
    if let Some(n) = flags.max_redirects {
        http.max_redirects = n;
    }
    http.discard_bodies |= flags.discard_response_bodies;
    http.no_connection_reuse |= flags.no_connection_reuse;
    if let Some(list) = &flags.system_tags {
        http.system_tags = system_tags(split_list(list)).map_err(|e| report.error("--system-tags", e)).ok();
    }
    if let Some(level) = &flags.http_debug {
        http.debug = debug::Level::parse(level).map_err(|e| report.error("--http-debug", e)).unwrap_or_default();
    }
    http
}

/// `summaryTimeUnit`, then `--summary-time-unit`.
pub fn time_unit(options: Option<&Obj>, flags: &OptionFlags, report: &Report) -> Option<TimeUnit> {
    if let Some(text) = &flags.summary_time_unit {
        return TimeUnit::parse(text).map_err(|e| report.error("--summary-time-unit", e)).ok();
    }
    let o = options?;
    let text = o.string("summaryTimeUnit")?;
    TimeUnit::parse(&text).map_err(|e| o.error("summaryTimeUnit", e)).ok()
}

/// `--summary-trend-stats avg,p(95)`.
pub fn trend_stats(flags: &OptionFlags, report: &Report) -> Option<Vec<TrendStat>> {
    let text = flags.summary_trend_stats.as_ref()?;
    let stats: Result<Vec<TrendStat>, String> = split_list(text).iter().map(|s| TrendStat::parse(s)).collect();
    match stats {
        Ok(s) if !s.is_empty() => Some(s),
        Ok(_) => {
            report.error("--summary-trend-stats", "must name at least one statistic");
            None
        }
        Err(e) => {
            report.error("--summary-trend-stats", e);
            None
        }
    }
}

fn set_user_agent(http: &mut HttpOptions, ua: &str, error: impl FnOnce(String)) {
    if http::HeaderValue::from_str(ua).is_err() {
        error(format!("{ua:?} has a character not allowed in a header"));
        return;
    }
    http.user_agent = (!ua.is_empty()).then(|| ua.to_string());
}

/// Comma-separated names, trimmed.
fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn system_tags(names: Vec<String>) -> Result<Vec<String>, String> {
    for n in &names {
        if !SYSTEM_TAGS.contains(&n.as_str()) {
            return Err(format!("{n:?} is not a system tag (known: {})", SYSTEM_TAGS.join(", ")));
        }
    }
    Ok(names)
}

/// `hosts: {"shop.test": "127.0.0.1", "api.test:443": "127.0.0.1:8443"}`:
/// names (a port on the name is ignored: any port of that host) to an
/// address, with an optional port that replaces the URL's.
fn read_hosts(map: &[(String, String)]) -> Result<Hosts, (String, String)> {
    let mut out = Hosts::new();
    for (name, target) in map {
        let host = name.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(name.as_str(), |(h, _)| h);
        let parsed = match target.parse::<std::net::SocketAddr>() {
            Ok(a) => (a.ip().to_string(), Some(a.port())),
            Err(_) => match target.parse::<std::net::IpAddr>() {
                Ok(ip) => (ip.to_string(), None),
                Err(_) => return Err((name.clone(), format!("{target:?} is not an IP address (or address:port)"))),
            },
        };
        out.insert(host.to_ascii_lowercase(), parsed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_names_to_addresses() {
        let m = read_hosts(&[("shop.test".into(), "127.0.0.1".into()), ("Api.test:443".into(), "[::1]:8443".into())])
            .unwrap();
        assert_eq!(m["shop.test"], ("127.0.0.1".to_string(), None));
        assert_eq!(m["api.test"], ("::1".to_string(), Some(8443)));
        assert!(read_hosts(&[("x".into(), "nowhere".into())]).unwrap_err().1.contains("not an IP address"));
    }

    #[test]
    fn flags_win_over_the_file() {
        let doc = serde_json::json!({"userAgent": "file", "maxRedirects": 3, "systemTags": ["status", "name"],
                                     "hosts": {"a.test": "10.0.0.1"}});
        let report = Report::default();
        let obj = Obj::new(&doc, "options", &report).unwrap();
        let flags = OptionFlags {
            user_agent: Some("flag".into()),
            http_debug: Some("full".into()),
            no_connection_reuse: true,
            ..Default::default()
        };
        let http = http_options(Some(&obj), &flags, &report);
        assert!(report.is_clean());
        assert_eq!(http.user_agent.as_deref(), Some("flag"));
        assert_eq!(http.max_redirects, 3);
        assert_eq!(http.system_tags, Some(vec!["status".to_string(), "name".to_string()]));
        assert_eq!((http.debug, http.no_connection_reuse), (debug::Level::Full, true));
        let bad = OptionFlags {
            system_tags: Some("status,proto".into()),
            summary_trend_stats: Some("avg,mean".into()),
            ..Default::default()
        };
        let report = Report::default();
        http_options(None, &bad, &report);
        trend_stats(&bad, &report);
        let e = report.into_result(()).unwrap_err().to_string();
        assert!(e.contains("--system-tags: \"proto\" is not a system tag"), "{e}");
        assert!(e.contains("--summary-trend-stats: unknown statistic \"mean\""), "{e}");
    }
}
