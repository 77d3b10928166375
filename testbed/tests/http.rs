//! Every endpoint of the HTTP testbed over real loopback connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use volley_testbed::HttpTestbed;

/// One HTTP/1.0 exchange; returns (status, headers, body).
fn request(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_every_endpoint_and_counts_exactly() {
    let server = HttpTestbed::start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let addr = server.local_addr();
    let results = tokio::task::spawn_blocking(move || {
        let mut r = Vec::new();
        r.push(request(addr, "GET", "/?vu=3&x=y", ""));
        let t = Instant::now();
        r.push(request(addr, "GET", "/delay/120", ""));
        let delayed = t.elapsed();
        r.push(request(addr, "GET", "/status/418", ""));
        r.push(request(addr, "GET", "/status/42", ""));
        r.push(request(addr, "GET", "/bytes/4096", ""));
        r.push(request(addr, "GET", "/json", ""));
        r.push(request(addr, "POST", "/echo", "hello volley"));
        r.push(request(addr, "GET", "/missing", ""));
        (r, delayed)
    })
    .await
    .unwrap();
    let (r, delayed) = results;
    assert_eq!((r[0].0, r[0].2.as_slice()), (200, b"ok".as_slice()));
    assert_eq!(r[1].0, 200);
    assert!(delayed >= Duration::from_millis(120), "delay endpoint answered after {delayed:?}");
    assert_eq!(r[2].0, 418);
    assert_eq!(r[3].0, 400);
    assert_eq!((r[4].0, r[4].2.len()), (200, 4096));
    assert!(r[4].1.to_ascii_lowercase().contains("content-type: application/octet-stream"));
    let doc: serde_json::Value = serde_json::from_slice(&r[5].2).unwrap();
    assert_eq!(doc["items"][1]["price"], 3);
    assert_eq!((r[6].0, r[6].2.as_slice()), (200, b"hello volley".as_slice()));
    assert!(r[6].1.to_ascii_lowercase().contains("content-type: text/plain"));
    assert_eq!(r[7].0, 404);

    let stats = server.stats();
    assert_eq!(stats.requests, 8);
    assert_eq!(stats.by_status.get("200"), Some(&5));
    assert_eq!(stats.by_status.get("418"), Some(&1));
    assert_eq!(stats.by_status.get("400"), Some(&1));
    assert_eq!(stats.by_status.get("404"), Some(&1));
    // /stats itself is not counted.
    let (status, _, body) = tokio::task::spawn_blocking(move || request(addr, "GET", "/stats", "")).await.unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["requests"], 8);
    server.shutdown().await;
}

/// Like [`request`], with an `Authorization` header.
fn request_auth(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\n\r\n{body}", body.len())
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_string())
}

fn token_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["access_token"].as_str().expect("access_token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_after_their_ttl_and_401s_are_counted_by_reason() {
    let auth = volley_testbed::AuthConfig { secret: "s".into(), token_ttl: Duration::from_secs(1) };
    let server = HttpTestbed::start_with_auth(([127, 0, 0, 1], 0).into(), false, auth).await.unwrap();
    let addr = server.local_addr();
    tokio::task::spawn_blocking(move || {
        let (status, body) = request_auth(addr, "POST", "/auth/login", None, r#"{"username":"alice"}"#);
        assert_eq!(status, 200, "{body}");
        let first = token_of(&body);
        assert_eq!(
            request_auth(addr, "GET", "/api/items", Some(&first), ""),
            (200, r#"{"ok":true,"user":"alice"}"#.into())
        );
        let (status, body) = request_auth(addr, "POST", "/auth/refresh", Some(&first), "");
        assert_eq!(status, 200, "{body}");
        let second = token_of(&body);
        assert_eq!(request_auth(addr, "GET", "/api/items", None, "").0, 401);
        assert_eq!(request_auth(addr, "GET", "/api/items", Some("garbage"), "").0, 401);
        // exp is rounded up to the next second: at most 2 s for a 1 s TTL.
        std::thread::sleep(Duration::from_millis(2100));
        let (status, body) = request_auth(addr, "GET", "/api/items", Some(&second), "");
        assert_eq!((status, body.as_str()), (401, r#"{"error":"token expired"}"#));
        assert_eq!(request_auth(addr, "POST", "/auth/refresh", Some(&first), "").0, 401);
        assert_eq!(request_auth(addr, "POST", "/auth/login", None, "{}").0, 400);
    })
    .await
    .unwrap();
    let s = server.stats();
    assert_eq!(s.auth.logins, 1);
    assert_eq!(s.auth.refreshes, 1);
    assert_eq!(s.auth.authorized, 1);
    assert_eq!((s.auth.unauthorized_missing, s.auth.unauthorized_invalid, s.auth.unauthorized_expired), (1, 1, 2));
    assert_eq!(s.by_status.get("401"), Some(&4));
    server.shutdown().await;
}
