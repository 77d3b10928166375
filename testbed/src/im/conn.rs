//! One client connection: the handshake check, then a loop that reads
//! frames, answers them, and writes the deliveries queued for this user
//! (after `--delay-ms`, through the fault injector).

use super::faults::{Fault, Injector, HOLD_LIMIT};
use super::frames::{self, ClientFrame};
use super::router::{Delivery, QUEUE_PER_CONNECTION};
use super::Shared;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// The token a client sent with its handshake, if any: `Authorization:
/// Bearer …`, or the `token` / `accessToken` query parameter.
pub fn handshake_token(req: &Request) -> Option<String> {
    let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(token) = header.and_then(volley_jwt::bearer) {
        return Some(token.to_string());
    }
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token" || k == "accessToken")
        .map(|(_, v)| v.into_owned())
}

/// Serves one connection until it closes or the gateway stops.
// The handshake callback's error type is tungstenite's.
#[allow(clippy::result_large_err)]
pub async fn serve(stream: TcpStream, shared: Arc<Shared>, seed: u64) {
    let counters = &shared.counters;
    let key = shared.key.clone();
    let reject_counter = counters.clone();
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if let Some(token) = handshake_token(req) {
            if let Err(e) = key.verify(&token, volley_jwt::unix_now()) {
                reject_counter.handshake_rejected.fetch_add(1, Ordering::Relaxed);
                let mut refusal = ErrorResponse::new(Some(format!("invalid token: {e}")));
                *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
                return Err(refusal);
            }
        }
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(shared.ws_config)).await else {
        return;
    };
    counters.connections_total.fetch_add(1, Ordering::Relaxed);
    counters.connections_open.fetch_add(1, Ordering::Relaxed);
    let mut conn = Conn { ws, shared: shared.clone(), user: None, injector: Injector::new(seed), held_since: None };
    conn.run().await;
    if let Some((user, id)) = conn.user.take() {
        shared.router.unregister(&user, id).await;
    }
    if conn.injector.holding() {
        // The receiver will never see it: a drop, for exact accounting.
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
    counters.connections_open.fetch_sub(1, Ordering::Relaxed);
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    user: Option<(Arc<str>, u64)>,
    injector: Injector<Utf8Bytes>,
    held_since: Option<Instant>,
}

/// Whether the connection stays open after a frame.
enum Next {
    Continue,
    Close,
}

impl Conn {
    async fn run(&mut self) {
        let (outbox, mut inbox) = mpsc::channel::<Delivery>(QUEUE_PER_CONNECTION);
        let mut outbox = Some(outbox);
        let mut pending: Option<Delivery> = None;
        let stop = self.shared.stop.clone();
        loop {
            let due = pending.as_ref().map(|d| d.due);
            let hold_end = self.held_since.map(|t| t + HOLD_LIMIT);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                frame = self.ws.next() => {
                    let next = match frame {
                        // Boxed: answering a frame (JWT check, Redis subscribe,
                        // routing) is a large state machine; an idle connection
                        // should not carry it.
                        Some(Ok(Message::Text(text))) => Box::pin(self.on_frame(text.as_bytes(), &mut outbox)).await,
                        Some(Ok(Message::Binary(data))) => Box::pin(self.on_frame(&data, &mut outbox)).await,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Next::Close,
                        Some(Ok(_)) => Next::Continue,
                    };
                    if matches!(next, Next::Close) {
                        break;
                    }
                }
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let d = pending.take().expect("due implies pending");
                    if self.deliver(d.frame).await.is_err() {
                        break;
                    }
                }
                _ = sleep_until(hold_end.unwrap_or_else(Instant::now)), if hold_end.is_some() && pending.is_none() => {
                    self.held_since = None;
                    if let Some(held) = self.injector.release() {
                        if self.write(&[held]).await.is_err() {
                            break;
                        }
                    }
                }
                d = inbox.recv(), if pending.is_none() => match d {
                    Some(d) => pending = Some(d),
                    None => break,
                },
            }
        }
        let _ = self.ws.close(None).await;
    }

    /// Writes one MSG delivery through the fault injector.
    async fn deliver(&mut self, frame: Utf8Bytes) -> Result<(), ()> {
        let c = &self.shared.counters;
        let (out, fault) = self.injector.apply(&self.shared.faults, frame);
        match fault {
            Fault::None => {}
            Fault::Duplicated => {
                c.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            Fault::Dropped => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Fault::Held => self.held_since = Some(Instant::now()),
            Fault::Reordered => {
                self.held_since = None;
                c.reordered.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.write(&out).await
    }

    async fn write(&mut self, frames: &[Utf8Bytes]) -> Result<(), ()> {
        if frames.is_empty() {
            return Ok(());
        }
        for f in frames {
            self.ws.feed(Message::Text(f.clone())).await.map_err(|_| ())?;
        }
        self.shared.counters.delivered.fetch_add(frames.len() as u64, Ordering::Relaxed);
        self.ws.flush().await.map_err(|_| ())
    }

    async fn reply(&mut self, frame: String) -> Next {
        match self.ws.send(Message::text(frame)).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }

    async fn on_frame(&mut self, data: &[u8], outbox: &mut Option<mpsc::Sender<Delivery>>) -> Next {
        let c = self.shared.counters.clone();
        let frame: ClientFrame = match serde_json::from_slice(data) {
            Ok(f) => f,
            Err(e) => {
                c.bad_frames.fetch_add(1, Ordering::Relaxed);
                return self.reply(frames::error(&format!("invalid frame: {e}"))).await;
            }
        };
        match frame {
            ClientFrame::Auth { token } => {
                let claims = match self.shared.key.verify(&token, volley_jwt::unix_now()) {
                    Ok(claims) => claims,
                    Err(e) => {
                        c.auth_fail.fetch_add(1, Ordering::Relaxed);
                        let _ = self.reply(frames::auth_fail(&e.to_string())).await;
                        return Next::Close;
                    }
                };
                if self.user.is_none() {
                    let user: Arc<str> = Arc::from(claims.sub.as_str());
                    let Some(tx) = outbox.take() else { return Next::Close };
                    match self.shared.router.register(&user, tx).await {
                        Ok(id) => self.user = Some((user, id)),
                        Err(e) => {
                            let _ = self.reply(frames::error(&e)).await;
                            return Next::Close;
                        }
                    }
                }
                c.auth_ok.fetch_add(1, Ordering::Relaxed);
                self.reply(frames::auth_ok(&claims.sub)).await
            }
            ClientFrame::Ping { id, ts } => {
                if self.user.is_none() {
                    c.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return self.reply(frames::error("not authenticated: send AUTH first")).await;
                }
                c.pings.fetch_add(1, Ordering::Relaxed);
                self.reply(frames::pong(&id, &ts)).await
            }
            ClientFrame::Msg { to, seq, ts, body } => {
                let Some((from, _)) = &self.user else {
                    c.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return self.reply(frames::error("not authenticated: send AUTH first")).await;
                };
                let Some(to) = frames::user_id(&to) else {
                    c.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return self.reply(frames::error("MSG needs a recipient in \"to\"")).await;
                };
                c.msgs_received.fetch_add(1, Ordering::Relaxed);
                let delivery = frames::delivery(from, &to, &seq, &ts, &body);
                self.shared.router.route(&to, delivery).await;
                Next::Continue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, auth: Option<&str>) -> Request {
        let mut b = http::Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn finds_the_handshake_token_in_header_or_query() {
        assert_eq!(handshake_token(&request("/ws", Some("Bearer abc.def"))).as_deref(), Some("abc.def"));
        assert_eq!(handshake_token(&request("/ws?x=1&token=a%2Eb", None)).as_deref(), Some("a.b"));
        assert_eq!(handshake_token(&request("/ws?accessToken=t1", None)).as_deref(), Some("t1"));
        assert_eq!(handshake_token(&request("/ws?tok=t1", None)), None);
        assert_eq!(handshake_token(&request("/ws", Some("Basic xyz"))), None);
    }
}
