//! The InfluxDB sink: line protocol (see [`line`](mod@line) for the schema), gzip
//! compressed, POSTed to the v1 `/write` or the v2 `/api/v2/write` API.
//!
//! Written with reqwest rather than the `influxdb2` crate: that crate (0.5,
//! 2024) is built on reqwest 0.11 and speaks only the v2 API, while k6 users
//! run InfluxDB 1.x (and VictoriaMetrics, which accepts both). Line protocol
//! is a few dozen lines to write correctly, and owning it lets the schema
//! stay exact (integer counts, millisecond timestamps).

pub mod line;

use super::{Item, Prepared, Sink, SinkError, WriteFuture, WriteOk};
use crate::out::{InfluxApi, InfluxTarget, OutSpec};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write as _;
use std::time::Duration;

/// Writes line protocol to one InfluxDB API endpoint.
pub struct InfluxSink {
    name: String,
    client: reqwest::Client,
    url: url::Url,
    auth: Auth,
}

enum Auth {
    None,
    Basic(String, String),
    Token(String),
}

impl InfluxSink {
    /// A sink for `target`.
    pub fn new(target: InfluxTarget) -> Result<Self, String> {
        let name = OutSpec::Influx(target.clone()).to_string();
        let mut url = target.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        let auth = match &target.api {
            InfluxApi::V1 { db, rp, user, password } => {
                url.set_path(&format!("{base_path}/write"));
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("db", db);
                    if let Some(rp) = rp {
                        q.append_pair("rp", rp);
                    }
                    q.append_pair("precision", "ms");
                }
                match user {
                    Some(u) => {
                        Auth::Basic(u.clone(), password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default())
                    }
                    None => Auth::None,
                }
            }
            InfluxApi::V2 { org, bucket, token } => {
                url.set_path(&format!("{base_path}/api/v2/write"));
                url.query_pairs_mut()
                    .append_pair("org", org)
                    .append_pair("bucket", bucket)
                    .append_pair("precision", "ms");
                Auth::Token(token.expose().to_string())
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| format!("--out {name}: cannot build an HTTP client: {e}"))?;
        Ok(Self { name, client, url, auth })
    }

    /// The line protocol body of a batch and its line count.
    pub fn encode(batch: &[Item]) -> (String, u64) {
        let mut body = String::with_capacity(batch.len() * 256);
        let mut lines = 0;
        for item in batch {
            match item {
                Item::Window(w) => lines += line::encode_window(w, &mut body) as u64,
                Item::Health(h) => {
                    line::encode_health(h, &mut body);
                    lines += 1;
                }
                Item::Summary(r) => lines += line::encode_summary(r, &mut body) as u64,
                Item::Marker(_) => {}
            }
        }
        (body, lines)
    }

    async fn post(&self, batch: &Prepared) -> Result<WriteOk, SinkError> {
        if batch.points == 0 {
            return Ok(WriteOk::default());
        }
        let bytes = batch.body.len() as u64;
        let lines = batch.points;
        let compressed = batch.body.clone();
        let mut req = self
            .client
            .post(self.url.clone())
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(compressed);
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Token(t) => req.header("Authorization", format!("Token {t}")),
        };
        let resp = req.send().await.map_err(|e| SinkError::down(format!("{}: {}", self.name, describe(&e))))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(WriteOk { points: lines, bytes, refused: None });
        }
        let text = resp.text().await.unwrap_or_default();
        let text = text.trim().chars().take(300).collect::<String>();
        let message = format!("{}: HTTP {status}: {text}", self.name);
        if status == reqwest::StatusCode::BAD_REQUEST {
            if let Some(dropped) = partial_write_dropped(&text).filter(|d| *d <= lines) {
                // InfluxDB 1.x stored every other line of the batch.
                return Ok(WriteOk { points: lines - dropped, bytes, refused: Some((dropped, message)) });
            }
        }
        Err(SinkError::from_status(status.as_u16(), message))
    }
}

/// The points InfluxDB 1.x says it dropped in a "partial write" answer
/// (`{"error":"partial write: … dropped=N"}`), which stores every other
/// point of the batch; `None` for any other answer (then the batch is
/// halved until the refused lines are found).
fn partial_write_dropped(answer: &str) -> Option<u64> {
    if !answer.contains("partial write") {
        return None;
    }
    let after = &answer[answer.rfind("dropped=")? + "dropped=".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl Sink for InfluxSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError> {
        let (body, lines) = Self::encode(batch);
        Ok(Prepared { body: gzip(body.as_bytes())?.into(), points: lines })
    }

    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a> {
        Box::pin(self.post(batch))
    }

    /// Halves at a line boundary: InfluxDB refuses lines, not requests
    /// (1.x stores the good lines of a batch and answers 400 "partial
    /// write"; 2.x refuses the batch), and writing a line again is
    /// idempotent.
    fn split(&self, batch: &Prepared) -> Option<[Prepared; 2]> {
        let text = gunzip(&batch.body)?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        if lines.len() < 2 {
            return None;
        }
        let (a, b) = lines.split_at(lines.len() / 2);
        let half = |part: &[&str]| -> Option<Prepared> {
            let mut body = part.join("\n");
            body.push('\n');
            Some(Prepared { body: gzip(body.as_bytes()).ok()?.into(), points: part.len() as u64 })
        };
        Some([half(a)?, half(b)?])
    }

    fn example(&self, batch: &Prepared) -> Option<String> {
        let text = gunzip(&batch.body)?;
        let line = text.lines().next()?;
        Some(line.chars().take(300).collect())
    }
}

fn gunzip(body: &[u8]) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::GzDecoder::new(body).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Gzip at the fastest level: line protocol compresses ~10× even so.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>, SinkError> {
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::fast());
    gz.write_all(data).map_err(|e| SinkError::bad_data(format!("gzip: {e}")))?;
    gz.finish().map_err(|e| SinkError::bad_data(format!("gzip: {e}")))
}

#[cfg(test)]
mod tests {
    use super::partial_write_dropped;

    #[test]
    fn a_partial_write_says_how_many_points_were_dropped() {
        let conflict = r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"vus_max\" is type float, already exists as type string dropped=3"}"#;
        assert_eq!(partial_write_dropped(conflict), Some(3));
        let limit = r#"{"error":"partial write: max-values-per-tag limit exceeded (100025/100000): measurement=\"http_reqs\" tag=\"name\" value=\"r1\" dropped=12"}"#;
        assert_eq!(partial_write_dropped(limit), Some(12));
        assert_eq!(partial_write_dropped(r#"{"error":"unable to parse 'x y': invalid field format"}"#), None);
        assert_eq!(partial_write_dropped("partial write: dropped=many"), None);
    }
}
