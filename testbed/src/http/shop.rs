//! A small shop under `/shop/`: the target of user-journey tests (log in
//! with a form, follow the redirect, read a value, use it in the next
//! requests, with a session cookie and a CSRF header).
//!
//! - `POST /shop/login`, form `user=NAME&pass=PASS`: the password of
//!   `NAME` is `pw-NAME`. Success: `302` to `/shop/me` with the cookie
//!   `sid` (Path=/shop) and the header `X-CSRF-Token`; failure: `401`.
//! - `GET /shop/me` (cookie): `{"ok":true,"user":{"id","name","active"}}`
//!   and `X-CSRF-Token` again.
//! - `GET /shop/orders?user=ID` (cookie, ID the session's user):
//!   `{"orders":[{"id"},…]}`: user `NAME` ending in digits N has N mod 4
//!   orders, with ids N*100+1 …
//! - `GET /shop/orders/ID` (cookie and `X-CSRF-Token`): the order.
//! - `DELETE /shop/cart` (cookie and `X-CSRF-Token`): `{"ok":true}`.
//! - `POST /shop/upload` (cookie, `multipart/form-data`): the parts and
//!   bytes received.
//!
//! Everything is counted (`shop` on `/stats`), including the distinct
//! users that logged in, so a test can check that each VU had its own.
//! A user has one session: logging in again ends the previous one, so
//! sessions are bounded by users ([`MAX_SESSIONS`]; beyond, new users get
//! `503`).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Most live sessions (and distinct users remembered).
pub const MAX_SESSIONS: usize = 200_000;

/// A shop endpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum ShopRoute {
    /// `POST /shop/login`
    Login,
    /// `GET /shop/me`
    Me,
    /// `GET /shop/orders`
    Orders,
    /// `GET /shop/orders/{id}`
    Order(u64),
    /// `DELETE /shop/cart`
    Cart,
    /// `POST /shop/upload`
    Upload,
}

impl ShopRoute {
    /// The route of `method` and the path after `/shop/`.
    pub fn of(method: &Method, rest: &str) -> Option<ShopRoute> {
        match (method.as_str(), rest) {
            ("POST", "login") => Some(ShopRoute::Login),
            ("GET", "me") => Some(ShopRoute::Me),
            ("GET", "orders") => Some(ShopRoute::Orders),
            ("GET", r) => r.strip_prefix("orders/").and_then(|id| id.parse().ok()).map(ShopRoute::Order),
            ("DELETE", "cart") => Some(ShopRoute::Cart),
            ("POST", "upload") => Some(ShopRoute::Upload),
            _ => None,
        }
    }
}

struct Session {
    user: String,
    id: u64,
    csrf: String,
}

/// What the shop has served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ShopStats {
    /// Successful logins.
    pub logins: u64,
    /// Logins refused (wrong password, malformed form).
    pub login_failed: u64,
    /// Distinct users that logged in.
    pub distinct_users: u64,
    /// The most logins of any one user.
    pub max_logins_per_user: u64,
    /// `/shop/me` answered 200.
    pub me: u64,
    /// Order lists answered.
    pub order_lists: u64,
    /// Orders answered.
    pub orders: u64,
    /// Carts cleared.
    pub carts_cleared: u64,
    /// Uploads received.
    pub uploads: u64,
    /// Bytes of the uploads' bodies.
    pub upload_bytes: u64,
    /// 401: no valid session cookie.
    pub no_session: u64,
    /// 403: a missing or wrong CSRF token, or another user's data.
    pub forbidden: u64,
}

/// The shop's state.
#[derive(Default)]
pub struct Shop {
    sessions: Mutex<HashMap<String, Session>>,
    /// Per user: logins, and the current session.
    users: Mutex<HashMap<String, (u64, String)>>,
    logins: AtomicU64,
    login_failed: AtomicU64,
    me: AtomicU64,
    order_lists: AtomicU64,
    orders: AtomicU64,
    carts_cleared: AtomicU64,
    uploads: AtomicU64,
    upload_bytes: AtomicU64,
    no_session: AtomicU64,
    forbidden: AtomicU64,
}

type Answer = Response<Full<Bytes>>;

impl Shop {
    /// Answers one shop request.
    pub fn handle(&self, route: ShopRoute, parts: &http::request::Parts, body: &[u8]) -> Answer {
        if route == ShopRoute::Login {
            return self.login(body);
        }
        let Some((user, id, csrf)) = self.session(parts) else {
            self.no_session.fetch_add(1, Ordering::Relaxed);
            return json(StatusCode::UNAUTHORIZED, r#"{"error":"no session"}"#.into());
        };
        let csrf_ok = parts.headers.get("x-csrf-token").is_some_and(|v| v.as_bytes() == csrf.as_bytes());
        match route {
            ShopRoute::Me => {
                self.me.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({"ok": true, "user": {"id": id, "name": user, "active": true}});
                let mut r = json(StatusCode::OK, body.to_string());
                r.headers_mut().insert("x-csrf-token", HeaderValue::from_str(&csrf).expect("hex"));
                r
            }
            ShopRoute::Orders => {
                let asked = parts.uri.query().and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "user").map(|(_, v)| v.to_string())
                });
                if asked.as_deref() != Some(id.to_string().as_str()) {
                    return self.forbid("user must be the session's user id");
                }
                self.order_lists.fetch_add(1, Ordering::Relaxed);
                let orders: Vec<_> = order_ids(id).map(|o| serde_json::json!({"id": o})).collect();
                json(StatusCode::OK, serde_json::json!({ "orders": orders }).to_string())
            }
            ShopRoute::Order(order) => {
                if !csrf_ok {
                    return self.forbid("missing or wrong X-CSRF-Token");
                }
                if !order_ids(id).any(|o| o == order) {
                    return json(StatusCode::NOT_FOUND, r#"{"error":"no such order"}"#.into());
                }
                self.orders.fetch_add(1, Ordering::Relaxed);
                json(StatusCode::OK, serde_json::json!({"id": order, "user": id, "total": order % 97}).to_string())
            }
            ShopRoute::Cart => {
                if !csrf_ok {
                    return self.forbid("missing or wrong X-CSRF-Token");
                }
                self.carts_cleared.fetch_add(1, Ordering::Relaxed);
                json(StatusCode::OK, r#"{"ok":true}"#.into())
            }
            ShopRoute::Upload => self.upload(parts, body),
            ShopRoute::Login => unreachable!("handled above"),
        }
    }

    fn login(&self, body: &[u8]) -> Answer {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
        let (Some(user), Some(pass)) = (form.get("user"), form.get("pass")) else {
            self.login_failed.fetch_add(1, Ordering::Relaxed);
            return json(StatusCode::BAD_REQUEST, r#"{"ok":false,"error":"form fields user and pass"}"#.into());
        };
        if user.is_empty() || *pass != format!("pw-{user}") {
            self.login_failed.fetch_add(1, Ordering::Relaxed);
            return json(StatusCode::UNAUTHORIZED, r#"{"ok":false,"error":"wrong user or password"}"#.into());
        }
        let (sid, csrf) = (hex_token(), hex_token());
        {
            let mut users = self.users.lock();
            if users.len() >= MAX_SESSIONS && !users.contains_key(user) {
                return json(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"too many users"}"#.into());
            }
            let entry = users.entry(user.clone()).or_default();
            entry.0 += 1;
            let previous = std::mem::replace(&mut entry.1, sid.clone());
            let mut sessions = self.sessions.lock();
            sessions.remove(&previous);
            sessions.insert(sid.clone(), Session { user: user.clone(), id: user_id(user), csrf: csrf.clone() });
        }
        self.logins.fetch_add(1, Ordering::Relaxed);
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::FOUND;
        let h = r.headers_mut();
        h.insert(header::LOCATION, HeaderValue::from_static("/shop/me"));
        h.insert(header::SET_COOKIE, HeaderValue::from_str(&format!("sid={sid}; Path=/shop; HttpOnly")).expect("hex"));
        h.insert("x-csrf-token", HeaderValue::from_str(&csrf).expect("hex"));
        r
    }

    fn upload(&self, parts: &http::request::Parts, body: &[u8]) -> Answer {
        let boundary = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|t| t.starts_with("multipart/form-data"))
            .and_then(|t| t.split("boundary=").nth(1))
            .map(|b| format!("--{}", b.trim_matches('"')));
        let Some(boundary) = boundary else {
            return json(StatusCode::BAD_REQUEST, r#"{"error":"expected multipart/form-data"}"#.into());
        };
        let text = String::from_utf8_lossy(body);
        let parts_seen = text.matches(&boundary).count().saturating_sub(1);
        let closed = text.contains(&format!("{boundary}--"));
        if parts_seen == 0 || !closed {
            return json(StatusCode::BAD_REQUEST, r#"{"error":"malformed multipart body"}"#.into());
        }
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        json(StatusCode::OK, serde_json::json!({"parts": parts_seen, "bytes": body.len()}).to_string())
    }

    fn forbid(&self, why: &str) -> Answer {
        self.forbidden.fetch_add(1, Ordering::Relaxed);
        json(StatusCode::FORBIDDEN, serde_json::json!({ "error": why }).to_string())
    }

    /// The session of the request's `sid` cookie: user, id, CSRF token.
    fn session(&self, parts: &http::request::Parts) -> Option<(String, u64, String)> {
        let sid = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("sid="))?
            .to_string();
        let sessions = self.sessions.lock();
        sessions.get(&sid).map(|s| (s.user.clone(), s.id, s.csrf.clone()))
    }

    /// A snapshot.
    pub fn stats(&self) -> ShopStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let users = self.users.lock();
        ShopStats {
            logins: r(&self.logins),
            login_failed: r(&self.login_failed),
            distinct_users: users.len() as u64,
            max_logins_per_user: users.values().map(|(n, _)| *n).max().unwrap_or(0),
            me: r(&self.me),
            order_lists: r(&self.order_lists),
            orders: r(&self.orders),
            carts_cleared: r(&self.carts_cleared),
            uploads: r(&self.uploads),
            upload_bytes: r(&self.upload_bytes),
            no_session: r(&self.no_session),
            forbidden: r(&self.forbidden),
        }
    }

    /// The users that logged in (at most [`MAX_SESSIONS`]).
    pub fn users(&self) -> HashSet<String> {
        self.users.lock().keys().cloned().collect()
    }
}

/// The number a user name ends with (0 when none).
pub fn user_id(user: &str) -> u64 {
    let digits = user.len() - user.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    user[user.len() - digits..].parse().unwrap_or(0)
}

/// The orders of user `id`: `id mod 4` of them.
pub fn order_ids(id: u64) -> impl Iterator<Item = u64> {
    (1..=id % 4).map(move |k| id * 100 + k)
}

fn hex_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json(status: StatusCode, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn body(r: Answer) -> serde_json::Value {
        let bytes = futures_util::FutureExt::now_or_never(r.into_body().collect()).unwrap().unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_journey_through_the_shop() {
        let shop = Shop::default();
        let login = request("POST", "/shop/login", &[]);
        assert_eq!(shop.handle(ShopRoute::Login, &login, b"user=user7&pass=nope").status(), 401);
        let r = shop.handle(ShopRoute::Login, &login, b"user=user7&pass=pw-user7");
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/shop/me");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let csrf = r.headers()["x-csrf-token"].to_str().unwrap().to_string();
        let me = shop.handle(ShopRoute::Me, &request("GET", "/shop/me", &[("cookie", &cookie)]), b"");
        assert_eq!(me.headers()["x-csrf-token"], csrf.as_str());
        assert_eq!(body(me)["user"], serde_json::json!({"id": 7, "name": "user7", "active": true}));
        let list = request("GET", "/shop/orders?user=7", &[("cookie", &cookie)]);
        assert_eq!(
            body(shop.handle(ShopRoute::Orders, &list, b"")),
            serde_json::json!({"orders": [{"id": 701}, {"id": 702}, {"id": 703}]})
        );
        let other = request("GET", "/shop/orders?user=8", &[("cookie", &cookie)]);
        assert_eq!(shop.handle(ShopRoute::Orders, &other, b"").status(), 403);
        let no_csrf = request("GET", "/shop/orders/701", &[("cookie", &cookie)]);
        assert_eq!(shop.handle(ShopRoute::Order(701), &no_csrf, b"").status(), 403);
        let order = request("GET", "/shop/orders/701", &[("cookie", &cookie), ("x-csrf-token", &csrf)]);
        assert_eq!(shop.handle(ShopRoute::Order(701), &order, b"").status(), 200);
        assert_eq!(shop.handle(ShopRoute::Order(799), &order, b"").status(), 404);
        let cart = request("DELETE", "/shop/cart", &[("cookie", &cookie), ("x-csrf-token", &csrf)]);
        assert_eq!(shop.handle(ShopRoute::Cart, &cart, b"").status(), 200);
        let multipart = b"--B\r\ncontent-disposition: form-data; name=\"a\"\r\n\r\nx\r\n--B--\r\n";
        let up = request(
            "POST",
            "/shop/upload",
            &[("cookie", &cookie), ("content-type", "multipart/form-data; boundary=B")],
        );
        assert_eq!(body(shop.handle(ShopRoute::Upload, &up, multipart))["parts"], 1);
        assert_eq!(shop.handle(ShopRoute::Me, &request("GET", "/shop/me", &[]), b"").status(), 401);
        let s = shop.stats();
        assert_eq!(
            (s.logins, s.login_failed, s.distinct_users, s.me, s.order_lists, s.orders, s.carts_cleared, s.uploads),
            (1, 1, 1, 1, 1, 1, 1, 1)
        );
        assert_eq!((s.no_session, s.forbidden), (1, 2));
        assert_eq!(ShopRoute::of(&Method::GET, "orders/12"), Some(ShopRoute::Order(12)));
        assert_eq!(ShopRoute::of(&Method::GET, "login"), None);
        assert_eq!((user_id("alice"), user_id("u12")), (0, 12));
        // Logging in again ends the earlier session.
        let again = shop.handle(ShopRoute::Login, &login, b"user=user7&pass=pw-user7");
        assert_eq!(again.status(), 302);
        assert_eq!(shop.handle(ShopRoute::Me, &request("GET", "/shop/me", &[("cookie", &cookie)]), b"").status(), 401);
        assert_eq!(shop.sessions.lock().len(), 1);
    }
}
