//! `volley status`, `pause`, `resume`, `scale`, `stop`: the control API's
//! client, as k6's commands of the same names. With `--test-id` the
//! address is an exporter's `--health-listen` and the command goes to
//! every generator of that test.
//!
//! Exit codes: 0 done; 104 the request was refused (bad token, bad value,
//! a pause the test cannot take, no such test); 103 the API could not be
//! reached.

use crate::cli::{ControlArgs, ScaleArgs};
use crate::exit;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::time::Duration;

/// Which command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Show the status.
    Status,
    /// Pause the externally-controlled VUs.
    Pause,
    /// Resume them.
    Resume,
    /// Stop the test.
    Stop,
}

/// Runs a command other than `scale`.
pub fn run(verb: Verb, args: ControlArgs) -> i32 {
    let body = match verb {
        Verb::Status => None,
        Verb::Pause => Some(json!({"paused": true})),
        Verb::Resume => Some(json!({"paused": false})),
        Verb::Stop => Some(json!({"stopped": true})),
    };
    send(&args, body)
}

/// `volley scale --vus N [--scenario NAME]`.
pub fn scale(args: ScaleArgs) -> i32 {
    let mut attrs = json!({"vus": args.vus});
    if let Some(s) = &args.scenario {
        attrs["scenario"] = json!(s);
    }
    send(&args.control, Some(attrs))
}

fn send(args: &ControlArgs, attributes: Option<Value>) -> i32 {
    let Some(token) = args.control_token.as_deref().filter(|t| !t.is_empty()) else {
        return crate::console::invalid("--control-token (or VOLLEY_CONTROL_TOKEN): the control API needs its token");
    };
    let address = args.address.trim_start_matches("http://").trim_end_matches('/');
    let mut path = "/v1/status".to_string();
    if let Some(test) = &args.test_id {
        let q: String = url::form_urlencoded::byte_serialize(test.as_bytes()).collect();
        path.push_str(&format!("?testid={q}"));
    }
    let body = attributes.map(|a| json!({"data": {"type": "status", "id": "default", "attributes": a}}).to_string());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR cannot start the runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let answer = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), request(address, &path, token, body))
            .await
            .unwrap_or_else(|_| Err(format!("{address}: no answer within 10 s")))
    });
    match answer {
        Err(e) => {
            eprintln!("ERROR {e}");
            exit::INTERNAL
        }
        Ok((200, doc)) => {
            let attrs = doc.pointer("/data/attributes").cloned().unwrap_or(doc);
            println!("{}", serde_json::to_string_pretty(&attrs).unwrap_or_default());
            exit::OK
        }
        Ok((code, doc)) => {
            let detail = doc.pointer("/errors/0/detail").and_then(Value::as_str).map(str::to_string);
            eprintln!("ERROR {code}: {}", detail.unwrap_or_else(|| doc.to_string()));
            exit::INVALID_CONFIG
        }
    }
}

async fn request(address: &str, path: &str, token: &str, body: Option<String>) -> Result<(u16, Value), String> {
    let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("cannot reach {address}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("{address}: HTTP handshake failed: {e}"))?;
    tokio::spawn(conn);
    let method = if body.is_some() { "PATCH" } else { "GET" };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("bad request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| format!("{address}: {e}"))?;
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| format!("{address}: {e}"))?.to_bytes();
    let doc = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((code, doc))
}
