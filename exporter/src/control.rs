//! Live control over HTTP, in k6's REST API shape: `GET /v1/status` and
//! `PATCH /v1/status` with a JSON:API document
//! (`{"data":{"type":"status","id":"default","attributes":{…}}}`; a bare
//! attributes object is accepted too), behind a bearer token.
//!
//! The generator serves it for itself (`volley run --address`); the exporter
//! serves it for a whole test (`/v1/status?testid=…` on `--health-listen`,
//! with `--control-token`): it sends the command to every connected
//! generator of the test and answers with their statuses added up. The
//! document helpers here are shared by both, so the two APIs cannot drift.
//!
//! Read-only attributes that a client sends back (`status`, `running`,
//! `tainted`, `vus-max`, `scenarios`) are ignored: `maxVUs` is fixed by the
//! configuration because it bounds the generator's memory.

use crate::secret::constant_time_eq;
use crate::secret::Secret;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use volley_window::control::{Command, ScenarioStatus, Status};

/// Control requests to generators in flight at once; more are refused
/// (each waits at most [`ANSWER_TIMEOUT`]).
pub const MAX_PENDING: usize = 64;
/// How long the exporter waits for the generators' answers.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads a `PATCH` body; the error names the attribute and the problem.
pub fn parse_command(body: &[u8]) -> Result<Command, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let attrs = match doc.pointer("/data/attributes") {
        Some(a) => a,
        None if doc.get("data").is_some() => return Err("data.attributes: missing".into()),
        None => &doc,
    };
    let Value::Object(attrs) = attrs else {
        return Err("attributes: must be an object".into());
    };
    let mut c = Command::default();
    for (k, v) in attrs {
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("paused", Value::Bool(b)) => c.paused = Some(*b),
            ("stopped", Value::Bool(b)) => c.stopped = *b,
            ("vus", v) => {
                c.vus = Some(v.as_u64().ok_or_else(|| format!("vus: must be a whole number ≥ 0, found {v}"))?)
            }
            ("scenario", Value::String(s)) => c.scenario = Some(s.clone()),
            ("status" | "running" | "tainted" | "vus-max" | "scenarios" | "generators" | "unanswered", _) => {}
            ("paused" | "stopped", v) => return Err(format!("{k}: must be true or false, found {v}")),
            ("scenario", v) => return Err(format!("scenario: must be a scenario name, found {v}")),
            (other, _) => {
                return Err(format!("{other}: unknown attribute (expected paused, vus, scenario or stopped)"))
            }
        }
    }
    Ok(c)
}

/// Largest request body read.
pub const MAX_BODY: usize = 64 << 10;

/// A refused request: the HTTP status and k6's error document.
pub type Refusal = (hyper::StatusCode, String);

/// The refusal for `code`.
pub fn refuse(code: hyper::StatusCode, title: &str, detail: &str) -> Refusal {
    (code, error_document(code.as_u16(), title, detail))
}

/// The command of a request: none for `GET` (a status query), the body's
/// for `PATCH`; anything else is refused.
pub async fn read_command(req: hyper::Request<hyper::body::Incoming>) -> Result<Command, Refusal> {
    use http_body_util::BodyExt;
    use hyper::StatusCode;
    match req.method().as_str() {
        "GET" => Ok(Command::default()),
        "PATCH" => {
            let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| refuse(StatusCode::BAD_REQUEST, "Invalid request", &format!("cannot read the body: {e}")))?
                .to_bytes();
            parse_command(&body).map_err(|e| refuse(StatusCode::BAD_REQUEST, "Invalid data", &e))
        }
        other => {
            Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", &format!("{other}: use GET or PATCH")))
        }
    }
}

/// The status as k6's JSON:API document, with `extra` attributes added.
pub fn status_document(status: &Status, extra: Map<String, Value>) -> String {
    let mut attrs = match serde_json::to_value(status) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    attrs.extend(extra);
    json!({"data": {"type": "status", "id": "default", "attributes": attrs}}).to_string()
}

/// An error document as k6 answers them.
pub fn error_document(status: u16, title: &str, detail: &str) -> String {
    json!({"errors": [{"status": status.to_string(), "title": title, "detail": detail}]}).to_string()
}

/// Whether an `Authorization` header carries `token`.
pub fn authorized(header: Option<&str>, token: &Secret) -> bool {
    let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
    constant_time_eq(given.as_bytes(), token.expose().as_bytes())
}

/// The statuses of a fleet added up: VUs summed, paused when every
/// generator is, stopped/running/tainted when any is; scenarios summed by
/// name.
pub fn fleet_status(statuses: &[&Status]) -> Status {
    let mut scenarios: Vec<ScenarioStatus> = Vec::new();
    for s in statuses.iter().flat_map(|s| &s.scenarios) {
        match scenarios.iter_mut().find(|have| have.name == s.name) {
            Some(have) => {
                have.vus += s.vus;
                have.max_vus += s.max_vus;
            }
            None => scenarios.push(s.clone()),
        }
    }
    let first = statuses.first().map(|s| s.status.clone()).unwrap_or_else(|| "no generators".into());
    Status {
        status: if statuses.iter().all(|s| s.status == first) { first } else { "mixed".into() },
        paused: !statuses.is_empty() && statuses.iter().all(|s| s.paused),
        vus: statuses.iter().map(|s| s.vus).sum(),
        vus_max: statuses.iter().map(|s| s.vus_max).sum(),
        stopped: statuses.iter().any(|s| s.stopped),
        running: statuses.iter().any(|s| s.running),
        tainted: statuses.iter().any(|s| s.tainted),
        scenarios,
    }
}

/// What each generator of a test answered to one command.
#[derive(Debug, Default)]
pub struct Answers {
    /// Per generator that answered: its status, or why it refused.
    pub answered: Vec<(String, Result<Status, String>)>,
    /// Generators asked that did not answer in time.
    pub unanswered: Vec<String>,
}

struct Pending {
    asked: Vec<String>,
    answers: Vec<(String, Result<Status, String>)>,
}

/// Commands sent to generators and awaiting their answers.
#[derive(Default)]
pub struct FleetControl {
    pending: Mutex<HashMap<u64, Pending>>,
    answered: Notify,
    next: AtomicU64,
}

impl FleetControl {
    /// Opens a request to `asked`; refused when too many are in flight.
    pub fn open(&self, asked: Vec<String>) -> Result<u64, String> {
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            return Err(format!("{MAX_PENDING} control requests are already waiting for generators; try again"));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        pending.insert(id, Pending { asked, answers: Vec::new() });
        Ok(id)
    }

    /// A generator's answer (ignored when the request is gone or it was not
    /// asked).
    pub fn answer(&self, id: u64, generator: &str, result: Result<Status, String>) {
        if let Some(p) = self.pending.lock().get_mut(&id) {
            if p.asked.iter().any(|g| g == generator) && !p.answers.iter().any(|(g, _)| g == generator) {
                p.answers.push((generator.to_string(), result));
            }
        }
        self.answered.notify_waiters();
    }

    /// Waits until every generator asked answered, or `timeout`; closes
    /// the request.
    pub async fn collect(&self, id: u64, timeout: Duration) -> Answers {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let complete = self.pending.lock().get(&id).is_none_or(|p| p.answers.len() >= p.asked.len());
            if complete || tokio::time::timeout_at(until, notified).await.is_err() {
                break;
            }
        }
        let Some(p) = self.pending.lock().remove(&id) else { return Answers::default() };
        let unanswered = p.asked.into_iter().filter(|g| !p.answers.iter().any(|(a, _)| a == g)).collect();
        let mut answered = p.answers;
        answered.sort_by(|a, b| a.0.cmp(&b.0));
        Answers { answered, unanswered }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_k6_documents_and_bare_attributes() {
        let k6 = br#"{"data":{"type":"status","id":"default","attributes":{"paused":true,"vus":5,"vus-max":10,"running":true}}}"#;
        assert_eq!(parse_command(k6).unwrap(), Command { paused: Some(true), vus: Some(5), ..Default::default() });
        let bare = br#"{"vus": 3, "scenario": "ext", "paused": null}"#;
        assert_eq!(
            parse_command(bare).unwrap(),
            Command { vus: Some(3), scenario: Some("ext".into()), ..Default::default() }
        );
        assert!(parse_command(br#"{"stopped": true}"#).unwrap().stopped);
        assert_eq!(parse_command(br#"{"vus": -1}"#).unwrap_err(), "vus: must be a whole number ≥ 0, found -1");
        assert_eq!(parse_command(br#"{"paused": "yes"}"#).unwrap_err(), "paused: must be true or false, found \"yes\"");
        assert!(parse_command(br#"{"pause": true}"#).unwrap_err().starts_with("pause: unknown attribute"));
        assert!(parse_command(b"vus=3").unwrap_err().starts_with("the body is not JSON"));
    }

    #[test]
    fn adds_up_a_fleet() {
        let one = |vus, paused, status: &str| Status {
            status: status.into(),
            paused,
            vus,
            vus_max: vus + 1,
            running: true,
            scenarios: vec![ScenarioStatus { name: "ext".into(), vus, max_vus: 5 }],
            ..Default::default()
        };
        let (a, b) = (one(2, true, "paused"), one(3, false, "running"));
        let f = fleet_status(&[&a, &b]);
        assert_eq!((f.vus, f.vus_max, f.paused, f.status.as_str()), (5, 7, false, "mixed"));
        assert_eq!(f.scenarios, vec![ScenarioStatus { name: "ext".into(), vus: 5, max_vus: 10 }]);
        let doc: Value = serde_json::from_str(&status_document(&f, Map::new())).unwrap();
        assert_eq!(doc["data"]["attributes"]["vus-max"], 7);
        assert_eq!(doc["data"]["attributes"]["scenarios"][0]["maxVUs"], 10);
    }

    #[tokio::test]
    async fn collects_answers_until_every_generator_or_the_timeout() {
        let fc = FleetControl::default();
        let id = fc.open(vec!["g1".into(), "g2".into()]).unwrap();
        fc.answer(id, "g2", Err("no".into()));
        fc.answer(id, "stranger", Ok(Status::default()));
        let got = fc.collect(id, Duration::from_millis(50)).await;
        assert_eq!(got.answered, vec![("g2".to_string(), Err("no".to_string()))]);
        assert_eq!(got.unanswered, vec!["g1".to_string()]);
        for _ in 0..MAX_PENDING {
            fc.open(vec![]).unwrap();
        }
        assert!(fc.open(vec![]).unwrap_err().contains("already waiting"));
    }
}
