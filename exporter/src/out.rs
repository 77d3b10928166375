//! The `--out` syntax shared by `volley run` and `volley-exporter`.
//!
//! ```text
//! influxdb=http://[user:pass@]HOST:8086/DB[?rp=RP]        InfluxDB v1 API (as k6's influxdb output)
//! influxdb=http://HOST:8086[/PREFIX]?org=ORG&bucket=BUCKET InfluxDB v2 API, token from VOLLEY_INFLUXDB_TOKEN
//! otlp=grpc://HOST:4317 | otlp=http://HOST:4318[?temporality=delta]   OpenTelemetry
//! json=FILE | csv=FILE                                     a line per window and series
//! ```
//!
//! Parsing is strict: every problem names the `--out` value and the part that
//! is wrong, and secrets never appear in messages or `Debug` output.

use crate::secret::Secret;
use std::fmt;
use url::Url;

/// The environment variable holding the InfluxDB v2 token.
pub const INFLUXDB_TOKEN_ENV: &str = "VOLLEY_INFLUXDB_TOKEN";

/// One `--out` destination.
#[derive(Clone, Debug, PartialEq)]
pub enum OutSpec {
    /// An InfluxDB server.
    Influx(InfluxTarget),
    /// An OTLP receiver.
    Otlp(OtlpTarget),
    /// A JSON-lines or CSV file.
    File(crate::sink::file::FileTarget),
}

/// Where and how to write InfluxDB line protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct InfluxTarget {
    /// Scheme, host, port and any path prefix (without the API path).
    pub base: Url,
    /// Which write API.
    pub api: InfluxApi,
}

/// The two InfluxDB write APIs.
#[derive(Clone, Debug, PartialEq)]
pub enum InfluxApi {
    /// `/write?db=DB&rp=RP`, optional basic credentials (InfluxDB 1.x, and
    /// every server that speaks its protocol).
    V1 {
        /// Database.
        db: String,
        /// Retention policy (server default when absent).
        rp: Option<String>,
        /// User name for basic authentication.
        user: Option<String>,
        /// Password for basic authentication.
        password: Option<Secret>,
    },
    /// `/api/v2/write?org=ORG&bucket=BUCKET` with `Authorization: Token …`.
    V2 {
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
        /// API token.
        token: Secret,
    },
}

/// The two OTLP transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// Which temporality OTLP sums and histograms are sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpTemporality {
    /// Running totals since the series' first window (what Prometheus and
    /// Mimir expect): the default.
    Cumulative,
    /// Each window on its own.
    Delta,
}

/// Where to send OTLP metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpTarget {
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Endpoint (`http(s)://host:port[/prefix]`).
    pub endpoint: Url,
    /// Temporality of sums and histograms.
    pub temporality: OtlpTemporality,
    /// Resource attribute `service.instance.id`: set when a generator of a
    /// fleet writes directly (see `PipelineConfig::writer`).
    pub instance: Option<String>,
}

/// A `--out` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--out {shown}: {problem}")]
pub struct OutError {
    shown: String,
    problem: String,
}

impl OutError {
    fn new(raw: &str, problem: impl Into<String>) -> Self {
        Self { shown: redact(raw), problem: problem.into() }
    }
}

/// `raw` with any `user:password@` password masked, for messages. Only an
/// `@` inside the URL's authority (after `://`, before the path) starts a
/// password; any other string is returned as is.
pub fn redact(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else { return raw.to_string() };
    let (head, rest) = raw.split_at(scheme_end + 3);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return raw.to_string() };
    match authority[..at].split_once(':') {
        Some((user, _password)) => format!("{head}{user}:***{}", &rest[at..]),
        None => raw.to_string(),
    }
}

impl OutSpec {
    /// Parses one `--out` value; `env` looks up environment variables (the
    /// InfluxDB v2 token).
    pub fn parse(raw: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, OutError> {
        let Some((kind, target)) = raw.split_once('=') else {
            return Err(OutError::new(raw, "expected KIND=URL, e.g. influxdb=http://localhost:8086/volley"));
        };
        match kind {
            "influxdb" => parse_influx(raw, target, env).map(OutSpec::Influx),
            "otlp" => parse_otlp(raw, target).map(OutSpec::Otlp),
            "json" | "csv" => parse_file(raw, kind, target).map(OutSpec::File),
            other => Err(OutError::new(
                raw,
                format!("unknown output {other:?}; the outputs are influxdb, otlp, json and csv"),
            )),
        }
    }
}

fn parse_url(raw: &str, target: &str) -> Result<Url, OutError> {
    let url = Url::parse(target).map_err(|e| OutError::new(raw, format!("not a URL: {e}")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OutError::new(raw, "the URL has no host"));
    }
    Ok(url)
}

fn parse_influx(raw: &str, target: &str, env: impl Fn(&str) -> Option<String>) -> Result<InfluxTarget, OutError> {
    let url = parse_url(raw, target)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutError::new(raw, format!("scheme {:?} is not supported; use http or https", url.scheme())));
    }
    let mut org = None;
    let mut bucket = None;
    let mut rp = None;
    for (k, v) in url.query_pairs() {
        match &*k {
            "org" => org = Some(v.into_owned()),
            "bucket" => bucket = Some(v.into_owned()),
            "rp" => rp = Some(v.into_owned()),
            other => {
                return Err(OutError::new(raw, format!("unknown query parameter {other:?}; known: org, bucket, rp")))
            }
        }
    }
    let user = (!url.username().is_empty()).then(|| decode(url.username()));
    let password = url.password().map(|p| Secret::new(decode(p)));
    let mut base = url.clone();
    base.set_query(None);
    let _ = base.set_username("");
    let _ = base.set_password(None);
    let api = match (org, bucket) {
        (Some(org), Some(bucket)) => {
            if rp.is_some() {
                return Err(OutError::new(raw, "rp belongs to the v1 API; the v2 API (org, bucket) has none"));
            }
            if user.is_some() {
                return Err(OutError::new(
                    raw,
                    format!("the v2 API authenticates with a token in {INFLUXDB_TOKEN_ENV}, not user:password"),
                ));
            }
            let token = env(INFLUXDB_TOKEN_ENV).filter(|t| !t.is_empty()).ok_or_else(|| {
                OutError::new(raw, format!("the v2 API (org, bucket) needs a token in {INFLUXDB_TOKEN_ENV}"))
            })?;
            if org.is_empty() || bucket.is_empty() {
                return Err(OutError::new(raw, "org and bucket must not be empty"));
            }
            InfluxApi::V2 { org, bucket, token: Secret::new(token) }
        }
        (Some(_), None) => return Err(OutError::new(raw, "org without bucket; the v2 API needs both")),
        (None, Some(_)) => return Err(OutError::new(raw, "bucket without org; the v2 API needs both")),
        (None, None) => {
            // v1: the last path segment is the database, as in k6.
            let path = base.path().trim_end_matches('/').to_string();
            let (prefix, db) = path.rsplit_once('/').unwrap_or(("", ""));
            if db.is_empty() {
                return Err(OutError::new(
                    raw,
                    "no database: put it in the path (http://host:8086/DB) or give org and bucket for the v2 API",
                ));
            }
            let db = decode(db);
            base.set_path(prefix);
            InfluxApi::V1 { db, rp, user, password }
        }
    };
    Ok(InfluxTarget { base, api })
}

fn parse_otlp(raw: &str, target: &str) -> Result<OtlpTarget, OutError> {
    let url = parse_url(raw, target)?;
    let (protocol, scheme) = match url.scheme() {
        "grpc" => (OtlpProtocol::Grpc, "http"),
        "grpcs" => (OtlpProtocol::Grpc, "https"),
        "http" => (OtlpProtocol::HttpProtobuf, "http"),
        "https" => (OtlpProtocol::HttpProtobuf, "https"),
        other => {
            return Err(OutError::new(
                raw,
                format!("scheme {other:?} is not supported; use grpc, grpcs, http or https"),
            ))
        }
    };
    let mut temporality = OtlpTemporality::Cumulative;
    for (k, v) in url.query_pairs() {
        match (&*k, &*v) {
            ("temporality", "cumulative") => temporality = OtlpTemporality::Cumulative,
            ("temporality", "delta") => temporality = OtlpTemporality::Delta,
            ("temporality", other) => {
                return Err(OutError::new(raw, format!("temporality {other:?} is not cumulative or delta")))
            }
            (other, _) => {
                return Err(OutError::new(raw, format!("unknown query parameter {other:?}; known: temporality")))
            }
        }
    }
    // Url refuses to change a special scheme to a non-special one and back,
    // so the endpoint is rebuilt from its parts.
    let rebuilt = format!(
        "{scheme}://{}{}{}",
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        url.path().trim_end_matches('/')
    );
    let endpoint = Url::parse(&rebuilt).map_err(|e| OutError::new(raw, format!("not a URL: {e}")))?;
    Ok(OtlpTarget { protocol, endpoint, temporality, instance: None })
}

fn parse_file(raw: &str, kind: &str, target: &str) -> Result<crate::sink::file::FileTarget, OutError> {
    use crate::sink::file::{FileFormat, FileTarget};
    if target.is_empty() {
        return Err(OutError::new(raw, format!("expected {kind}=FILE")));
    }
    let path = std::path::PathBuf::from(target);
    if path.is_dir() {
        return Err(OutError::new(raw, "is a directory; give a file name"));
    }
    let format = if kind == "json" { FileFormat::Json } else { FileFormat::Csv };
    Ok(FileTarget { path, format })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl fmt::Display for OutSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutSpec::Influx(t) => match &t.api {
                InfluxApi::V1 { db, .. } => write!(f, "influxdb v1 {} db={db}", t.base),
                InfluxApi::V2 { org, bucket, .. } => write!(f, "influxdb v2 {} org={org} bucket={bucket}", t.base),
            },
            OutSpec::Otlp(t) => write!(
                f,
                "otlp {} {}",
                match t.protocol {
                    OtlpProtocol::Grpc => "grpc",
                    OtlpProtocol::HttpProtobuf => "http/protobuf",
                },
                t.endpoint
            ),
            OutSpec::File(t) => write!(
                f,
                "{} {}",
                if t.format == crate::sink::file::FileFormat::Json { "json" } else { "csv" },
                t.path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(raw: &str) -> Result<OutSpec, OutError> {
        OutSpec::parse(raw, |k| (k == INFLUXDB_TOKEN_ENV).then(|| "s3cr3t-token".to_string()))
    }

    #[test]
    fn redact_masks_only_a_password_in_the_authority() {
        assert_eq!(redact("influxdb=http://u:pw@h:8086/db"), "influxdb=http://u:***@h:8086/db");
        assert_eq!(redact("influxdb=http://u@h/db"), "influxdb=http://u@h/db");
        assert_eq!(redact("influxdb=a@b://x"), "influxdb=a@b://x");
        assert_eq!(redact("otlp=http://h/p@q:r"), "otlp=http://h/p@q:r");
        assert!(parse("influxdb=a@b://x").unwrap_err().to_string().starts_with("--out influxdb=a@b://x: "));
    }

    proptest::proptest! {
        #[test]
        fn redact_never_panics_and_never_shows_a_password(user in "[a-z]{1,5}", pw in "[a-z0-9]{6,12}", noise in ".{0,20}") {
            let _ = redact(&noise);
            let _ = parse(&noise);
            let shown = redact(&format!("influxdb=http://{user}:{pw}@h:1/db{noise}"));
            proptest::prop_assert!(!shown.contains(&format!(":{pw}@")), "{}", shown);
        }
    }

    #[test]
    fn v1_takes_the_database_from_the_path_like_k6() {
        let OutSpec::Influx(t) = parse("influxdb=http://alice:p%40ss@db.local:8086/loadtests?rp=week").unwrap() else {
            panic!()
        };
        assert_eq!(t.base.as_str(), "http://db.local:8086/");
        let InfluxApi::V1 { db, rp, user, password } = t.api else { panic!() };
        assert_eq!((db.as_str(), rp.as_deref(), user.as_deref()), ("loadtests", Some("week"), Some("alice")));
        assert_eq!(password.unwrap().expose(), "p@ss");
    }

    #[test]
    fn v1_keeps_a_path_prefix() {
        let OutSpec::Influx(t) = parse("influxdb=http://h:8428/influx/volley").unwrap() else { panic!() };
        assert_eq!(t.base.as_str(), "http://h:8428/influx");
        assert!(matches!(t.api, InfluxApi::V1 { ref db, .. } if db == "volley"));
    }

    #[test]
    fn v2_reads_the_token_from_the_environment() {
        let OutSpec::Influx(t) = parse("influxdb=https://h:8086?org=acme&bucket=load").unwrap() else { panic!() };
        let InfluxApi::V2 { org, bucket, token } = t.api else { panic!() };
        assert_eq!((org.as_str(), bucket.as_str(), token.expose()), ("acme", "load", "s3cr3t-token"));
        let e = OutSpec::parse("influxdb=http://h:8086?org=acme&bucket=load", no_env).unwrap_err();
        assert_eq!(e.to_string(), "--out influxdb=http://h:8086?org=acme&bucket=load: the v2 API (org, bucket) needs a token in VOLLEY_INFLUXDB_TOKEN");
    }

    #[test]
    fn otlp_transports() {
        let OutSpec::Otlp(t) = parse("otlp=grpc://127.0.0.1:4317").unwrap() else { panic!() };
        assert_eq!((t.protocol, t.endpoint.as_str()), (OtlpProtocol::Grpc, "http://127.0.0.1:4317/"));
        assert_eq!(t.temporality, OtlpTemporality::Cumulative);
        let OutSpec::Otlp(t) = parse("otlp=http://127.0.0.1:4318/?temporality=delta").unwrap() else { panic!() };
        assert_eq!((t.protocol, t.endpoint.as_str()), (OtlpProtocol::HttpProtobuf, "http://127.0.0.1:4318/"));
        assert_eq!(t.temporality, OtlpTemporality::Delta);
        assert_eq!(
            parse("otlp=grpc://h:4317?temporality=both").unwrap_err().to_string(),
            "--out otlp=grpc://h:4317?temporality=both: temporality \"both\" is not cumulative or delta"
        );
    }

    #[test]
    fn bad_values_name_the_problem() {
        let cases = [
            ("influx=http://h/db", "unknown output \"influx\"; the outputs are influxdb, otlp, json and csv"),
            ("influxdb", "expected KIND=URL, e.g. influxdb=http://localhost:8086/volley"),
            (
                "influxdb=http://h:8086",
                "no database: put it in the path (http://host:8086/DB) or give org and bucket for the v2 API",
            ),
            ("influxdb=http://h:8086/db?org=a", "org without bucket; the v2 API needs both"),
            ("influxdb=http://h:8086/db?precision=s", "unknown query parameter \"precision\"; known: org, bucket, rp"),
            ("influxdb=udp://h:8089/db", "scheme \"udp\" is not supported; use http or https"),
            ("otlp=tcp://h:4317", "scheme \"tcp\" is not supported; use grpc, grpcs, http or https"),
            ("influxdb=not a url", "not a URL: relative URL without a base"),
        ];
        for (raw, problem) in cases {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.to_string(), format!("--out {raw}: {problem}"), "{raw}");
        }
    }

    #[test]
    fn passwords_never_show() {
        let e = parse("influxdb=http://bob:hunter2@h:8086/?org=a").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().starts_with("--out influxdb=http://bob:***@h:8086/"), "{e}");
        let spec = parse("influxdb=http://bob:hunter2@h:8086/db").unwrap();
        assert!(!format!("{spec:?} {spec}").contains("hunter2"));
        let spec = parse("influxdb=http://h:8086?org=a&bucket=b").unwrap();
        assert!(!format!("{spec:?} {spec}").contains("s3cr3t-token"));
    }
}
