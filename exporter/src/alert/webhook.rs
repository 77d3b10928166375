//! Notifications: Alertmanager's webhook payload, the bounded outbox, and
//! delivery with retries.
//!
//! The body is what Alertmanager's `webhook_config` receivers get (version
//! "4"), so a receiver written for Alertmanager takes Volley's alerts as
//! they are. Each notification carries one alert and one transition; there
//! is no grouping and no repeat.
//!
//! The outbox holds at most `queue` notifications; when it is full the
//! oldest is dropped and counted (logged the first time it happens until
//! the outbox empties again), so a receiver that is down costs bounded
//! memory. One task delivers in order: a 2xx answer is success; a
//! connection error, a timeout, or an answer `volley_window::retry`
//! classifies as unavailable (5xx, 408, 429, 401, 403, 404) is retried with
//! its capped exponential backoff and jitter up to `attempts` times; 400,
//! 413 and 422 (the receiver refuses this body) are a failure at once.

use super::stats::Counters;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use url::Url;
use volley_window::retry::Backoff;

/// Alertmanager's `endsAt` while an alert fires.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Notifications waiting at most; the oldest is dropped beyond.
    pub queue: usize,
    /// Per request.
    pub timeout: Duration,
    /// Tries per notification (the first one included).
    pub attempts: u32,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            queue: 1024,
            timeout: Duration::from_secs(5),
            attempts: 5,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
        }
    }
}

/// One alert's transition, to be posted.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// Receiver.
    pub url: Url,
    /// Firing (true) or resolved.
    pub firing: bool,
    /// The alert's labels (`alertname`, `testid`, …).
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired, ms since the Unix epoch.
    pub starts_ms: u64,
    /// When it was resolved.
    pub ends_ms: Option<u64>,
}

impl Notification {
    /// Alertmanager's fingerprint of the label set: FNV-1a 64 over the sorted
    /// names and values, each followed by the byte 0xff, in hex.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &self.labels {
            for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }

    /// The JSON body, as Alertmanager's webhook sends it.
    pub fn payload(&self, external_url: &str) -> serde_json::Value {
        let status = if self.firing { "firing" } else { "resolved" };
        let group: BTreeMap<&str, &str> = self
            .labels
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "alertname" | "testid"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let group_key =
            format!("{{}}:{{{}}}", group.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(", "));
        serde_json::json!({
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "volley-exporter",
            "groupLabels": group,
            "commonLabels": self.labels,
            "commonAnnotations": self.annotations,
            "externalURL": external_url,
            "alerts": [{
                "status": status,
                "labels": self.labels,
                "annotations": self.annotations,
                "startsAt": rfc3339(self.starts_ms),
                "endsAt": self.ends_ms.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
                "generatorURL": external_url,
                "fingerprint": self.fingerprint(),
            }],
        })
    }
}

/// A receiver's URL for messages: scheme, host and port only, since webhook
/// URLs often carry a secret in their path or query.
pub fn shown(url: &Url) -> String {
    format!("{}/…", url.origin().ascii_serialization())
}

pub use crate::timefmt::rfc3339;

/// The bounded queue between the engine and the delivery task.
pub struct Outbox {
    queue: Mutex<VecDeque<Notification>>,
    cap: usize,
    ready: Notify,
    closing: AtomicBool,
    full_logged: AtomicBool,
    counters: Arc<Counters>,
    log: super::Log,
}

impl Outbox {
    /// An empty outbox of `cap` notifications.
    pub fn new(cap: usize, counters: Arc<Counters>, log: super::Log) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            ready: Notify::new(),
            closing: AtomicBool::new(false),
            full_logged: AtomicBool::new(false),
            counters,
            log,
        }
    }

    /// Queues a notification; drops (and counts) the oldest when full.
    pub fn push(&self, n: Notification) {
        let dropped = {
            let mut q = self.queue.lock();
            let dropped = if q.len() >= self.cap { q.pop_front() } else { None };
            q.push_back(n);
            dropped
        };
        if let Some(d) = dropped {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.full_logged.swap(true, Ordering::Relaxed) {
                (self.log)(format!(
                    "alert notifications: queue full ({} waiting), dropping the oldest ({} {}); further drops are only counted",
                    self.cap,
                    d.labels.get("alertname").map_or("", String::as_str),
                    if d.firing { "firing" } else { "resolved" }
                ));
            }
        }
        self.ready.notify_one();
    }

    /// Notifications waiting.
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes everything queued (tests read notifications this way).
    pub fn drain(&self) -> Vec<Notification> {
        self.queue.lock().drain(..).collect()
    }

    fn pop(&self) -> Option<Notification> {
        let mut q = self.queue.lock();
        let n = q.pop_front();
        if q.is_empty() {
            self.full_logged.store(false, Ordering::Relaxed);
        }
        n
    }

    /// Delivery ends once the queue is empty.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.ready.notify_one();
    }
}

/// Posts what the outbox holds, in order, until it is closed and empty.
pub async fn deliver(outbox: Arc<Outbox>, cfg: DeliveryConfig, external_url: String) {
    let client = match reqwest::Client::builder().timeout(cfg.timeout).build() {
        Ok(c) => c,
        Err(e) => {
            (outbox.log)(format!("alert notifications: cannot build the HTTP client: {e}"));
            return;
        }
    };
    loop {
        let Some(n) = outbox.pop() else {
            if outbox.closing.load(Ordering::Relaxed) {
                return;
            }
            outbox.ready.notified().await;
            continue;
        };
        let body = n.payload(&external_url);
        let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let mut attempt = 1;
        loop {
            match post(&client, &n.url, &body).await {
                Ok(()) => {
                    outbox.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err((true, _)) if attempt < cfg.attempts => {
                    outbox.counters.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    tokio::time::sleep(backoff.failed()).await;
                }
                Err((_, why)) => {
                    outbox.counters.failed.fetch_add(1, Ordering::Relaxed);
                    (outbox.log)(format!(
                        "alert {} {}: webhook {} failed after {attempt} attempt(s): {why}",
                        n.labels.get("alertname").map_or("", String::as_str),
                        if n.firing { "firing" } else { "resolved" },
                        shown(&n.url)
                    ));
                    break;
                }
            }
        }
    }
}

/// One POST; the error says whether a retry may help.
async fn post(client: &reqwest::Client, url: &Url, body: &serde_json::Value) -> Result<(), (bool, String)> {
    let resp = client.post(url.clone()).json(body).send().await.map_err(|e| (true, e.to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retriable = volley_window::retry::classify(status.as_u16()) == volley_window::retry::Answer::Unavailable;
    Err((retriable, format!("HTTP {status}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(firing: bool) -> Notification {
        Notification {
            url: Url::parse("http://127.0.0.1:9/hook").unwrap(),
            firing,
            labels: BTreeMap::from([
                ("alertname".to_string(), "P99High".to_string()),
                ("severity".to_string(), "page".to_string()),
                ("testid".to_string(), "soak".to_string()),
            ]),
            annotations: BTreeMap::from([("value".to_string(), "412.3".to_string())]),
            starts_ms: 1_700_000_000_123,
            ends_ms: (!firing).then_some(1_700_000_060_000),
        }
    }

    #[test]
    fn receivers_are_shown_without_their_secrets() {
        let u = Url::parse("https://user:pw@hooks.example.com:8443/services/T0/B0/SECRET?token=x").unwrap();
        assert_eq!(shown(&u), "https://hooks.example.com:8443/…");
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // prometheus/common model.LabelSet{"a": "b"}.Fingerprint().
        let n = Notification { labels: BTreeMap::from([("a".into(), "b".into())]), ..note(true) };
        let mut h: u64 = 0xcbf29ce484222325;
        for b in [b'a', 0xff, b'b', 0xff] {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        assert_eq!(n.fingerprint(), format!("{h:016x}"));
        assert_eq!(note(true).fingerprint(), note(false).fingerprint());
        assert_eq!(n.fingerprint().len(), 16);
    }

    #[test]
    fn payload_has_alertmanagers_shape() {
        let p = note(true).payload("http://exporter:9000");
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["groupKey"], "{}:{alertname=\"P99High\", testid=\"soak\"}");
        assert_eq!(p["groupLabels"], serde_json::json!({"alertname": "P99High", "testid": "soak"}));
        assert_eq!(p["commonLabels"]["severity"], "page");
        assert_eq!(p["externalURL"], "http://exporter:9000");
        let a = &p["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["annotations"]["value"], "412.3");
        assert!(a["fingerprint"].as_str().unwrap().len() == 16);
        let r = note(false).payload("");
        assert_eq!(
            (r["status"].as_str(), r["alerts"][0]["endsAt"].as_str()),
            (Some("resolved"), Some("2023-11-14T22:14:20.000Z"))
        );
    }

    /// A receiver answering each request with the next status of `answers`
    /// (200 once they run out); returns its URL and the bodies it got.
    async fn receiver(answers: Vec<u16>) -> (Url, Arc<Mutex<Vec<serde_json::Value>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let keep = bodies.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                let body = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(body.to_string());
                        }
                    }
                };
                if let Some(b) = body {
                    keep.lock().push(serde_json::from_str(&b).unwrap());
                }
                let code = answers.next().unwrap_or(200);
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        (url, bodies)
    }

    fn fast() -> DeliveryConfig {
        DeliveryConfig {
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
            attempts: 3,
            ..DeliveryConfig::default()
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_refusals_are_not() {
        let (url, bodies) = receiver(vec![500, 503, 200, 400, 500, 500, 500]).await;
        let counters = Arc::new(Counters::default());
        let logged = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = logged.clone();
        let outbox = Arc::new(Outbox::new(10, counters.clone(), Arc::new(move |m| sink.lock().push(m))));
        // Delivered on the third attempt; refused at once; failing after 3 attempts.
        for i in 0..3 {
            outbox.push(Notification { url: url.clone(), starts_ms: i, ..note(true) });
        }
        outbox.close();
        tokio::time::timeout(Duration::from_secs(10), deliver(outbox.clone(), fast(), "http://x".into()))
            .await
            .unwrap();
        let got = bodies.lock().clone();
        assert_eq!(got.len(), 7);
        assert!(got.iter().all(|b| b["version"] == "4" && b["externalURL"] == "http://x"));
        assert_eq!(
            got.iter().map(|b| b["alerts"][0]["startsAt"].as_str().unwrap().to_string()).collect::<Vec<_>>()[..4],
            [rfc3339(0), rfc3339(0), rfc3339(0), rfc3339(1)]
        );
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!((load(&counters.delivered), load(&counters.failed), load(&counters.retries)), (1, 2, 4));
        let logged = logged.lock();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(logged[0].contains("failed after 1 attempt(s): HTTP 400 Bad Request"), "{logged:?}");
        assert!(logged[1].contains("failed after 3 attempt(s): HTTP 500 Internal Server Error"), "{logged:?}");
        assert!(!logged[1].contains("/hook"), "the path is not shown: {logged:?}");
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts() {
        let counters = Arc::new(Counters::default());
        let logged = Arc::new(Mutex::new(Vec::new()));
        let sink = logged.clone();
        let outbox = Outbox::new(2, counters.clone(), Arc::new(move |m| sink.lock().push(m)));
        for i in 0..5 {
            outbox.push(Notification { starts_ms: i, ..note(true) });
        }
        assert_eq!(outbox.drain().iter().map(|n| n.starts_ms).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(logged.lock().len(), 1, "{:?}", logged.lock());
    }
}
