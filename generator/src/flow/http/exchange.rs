//! One request: its connection, the request as sent, redirects followed
//! hop by hop, and the answer with its checks and captures.

use super::client::{self, ConnectTimings, Connection, Origin};
use super::config::RequestStep;
use super::target::{Outcome, Target};
use super::vu::VuIo;
use super::{check, debug, HttpFlow};
use crate::flow::{FlowError, IterCtx};
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most of a response body kept for checks and captures; the rest is
/// read and counted but not kept, so a VU's memory stays bounded whatever
/// a target answers.
pub const MAX_KEPT_BODY: usize = 16 << 20;

impl HttpFlow {
    /// Sends one request to `target` on this VU's connection to its origin
    /// (retrying once on a fresh connection when a kept-alive one was
    /// closed meanwhile); `None` when no answer came.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        vu: &mut VuIo,
        r: &RequestStep,
        ctx: &IterCtx<'_>,
        target: &Target,
        method: &http::Method,
        body: &Bytes,
        cross_origin: bool,
    ) -> Result<(Option<Outcome>, ConnectTimings), FlowError> {
        let mut timings = ConnectTimings::default();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            // Reusing is synchronous; only a new connection awaits (boxed:
            // it is rare, and an inline future would be copied with every
            // request's state).
            let (idx, reused) = match reusable(vu, &target.origin) {
                Some(idx) => (idx, true),
                None => match Box::pin(self.connect(vu, r, &target.origin)).await {
                    Some((idx, t)) => {
                        timings = t;
                        (idx, false)
                    }
                    None => break None,
                },
            };
            let h2 = vu.conns[idx].sender.is_h2();
            let req = self.build(vu, r, ctx, target, method, body, cross_origin, h2)?;
            if self.debug != debug::Level::Off {
                debug::request(&req, body, self.debug);
            }
            let before = vu.conns[idx].counts.get();
            let keep = r.needs_body() || self.debug == debug::Level::Full;
            // Not boxed: that would shrink the iteration's state (1688 to
            // 744 bytes, copied less per request), but the allocation cost
            // more: 4% fewer requests per CPU-second in an A/B run.
            let sent = tokio::time::timeout(r.timeout, send(&mut vu.conns[idx], req, keep)).await;
            let after = vu.conns[idx].counts.get();
            vu.metrics.batch(|s| {
                s.add(vu.data_sent, (after.0 - before.0) as f64);
                s.add(vu.data_received, (after.1 - before.1) as f64);
            });
            match sent {
                Ok(Ok(outcome)) => {
                    if self.no_reuse {
                        vu.conns.remove(idx);
                    }
                    if self.debug != debug::Level::Off {
                        debug::response(&outcome.headers, outcome.status, &outcome.body, self.debug);
                    }
                    break Some(outcome);
                }
                // A kept-alive connection the server closed meanwhile: retry
                // once on a fresh one, as browsers and k6 do.
                Ok(Err(e))
                    if reused && attempt == 1 && (e.is_closed() || e.is_incomplete_message() || e.is_canceled()) =>
                {
                    vu.conns.remove(idx);
                }
                Ok(Err(_)) | Err(_) => {
                    vu.conns.remove(idx);
                    break None;
                }
            }
        };
        Ok((outcome, timings))
    }

    /// A new connection of this VU to `origin`, with its timings; `None`
    /// when connecting failed.
    async fn connect(&self, vu: &mut VuIo, r: &RequestStep, origin: &Origin) -> Option<(usize, ConnectTimings)> {
        let dial =
            self.hosts.get(&origin.host.to_ascii_lowercase()).map(|(h, p)| (h.as_str(), p.unwrap_or(origin.port)));
        match tokio::time::timeout(r.timeout, client::connect(origin, dial, &self.tls, vu.local)).await {
            Ok(Ok((conn, t))) => {
                vu.conns.push(conn);
                Some((vu.conns.len() - 1, t))
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// The request as sent: rendered headers, the default `User-Agent`,
    /// the jar's cookies; HTTP/2 takes the absolute URI instead of `Host`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        vu: &VuIo,
        r: &RequestStep,
        ctx: &IterCtx<'_>,
        target: &Target,
        method: &http::Method,
        body: &Bytes,
        cross_origin: bool,
        h2: bool,
    ) -> Result<http::Request<Full<Bytes>>, FlowError> {
        let (url, origin) = (&target.url, &target.origin);
        let mut req = http::Request::new(Full::new(body.clone()));
        *req.method_mut() = method.clone();
        if h2 {
            *req.uri_mut() = target.absolute()?;
            *req.version_mut() = http::Version::HTTP_2;
        } else {
            *req.uri_mut() = target.path.clone();
        }
        let headers = req.headers_mut();
        if !h2 {
            headers.insert(HOST, target.host.clone());
        }
        // Credentials do not follow a redirect to another host, nor the
        // body's type a redirect that dropped the body.
        let dropped_body = body.is_empty() && r.body.is_some();
        for ((name, value), fixed) in r.headers.iter().zip(&r.fixed) {
            if cross_origin && *name == http::header::AUTHORIZATION
                || dropped_body && *name == http::header::CONTENT_TYPE
                || h2 && *name == HOST
            {
                continue;
            }
            if let Some(v) = fixed {
                headers.append(name, v.clone());
                continue;
            }
            let mut rendered = String::new();
            value.render_with(ctx, &vu.vars[..], &mut rendered);
            let value = HeaderValue::try_from(rendered).map_err(|_| {
                FlowError::Step(format!("header {name} of {url:?} has a character not allowed in headers"))
            })?;
            headers.append(name, value);
        }
        if let Some(ua) = &self.user_agent {
            headers.entry(http::header::USER_AGENT).or_insert_with(|| ua.clone());
        }
        if self.cookies && !headers.contains_key(http::header::COOKIE) {
            if let Some(c) = vu.jar.header(&origin.host, target.path.path(), origin.tls) {
                if let Ok(v) = HeaderValue::try_from(c) {
                    headers.insert(http::header::COOKIE, v);
                }
            }
        }
        Ok(req)
    }

    pub(super) async fn request(
        &self,
        vu: &mut VuIo,
        r: &RequestStep,
        ctx: &IterCtx<'_>,
    ) -> Result<(u16, Vec<u8>), FlowError> {
        let step = r.index;
        // A URL without per-VU or per-iteration placeholders is parsed once
        // per VU; a templated one reuses the last one's origin when it can.
        let first = match &vu.targets[step] {
            Some(t) if r.url.is_static() => t.clone(),
            last => {
                let mut url = String::new();
                r.url.render_with(ctx, &vu.vars[..], &mut url);
                let t = Arc::new(match last {
                    Some(last) => Target::parse_like(url, last)?,
                    None => Target::parse(url)?,
                });
                vu.targets[step] = Some(t.clone());
                t
            }
        };
        let mut target = first.clone();
        let mut method = r.method.clone();
        let mut body = r.body.as_ref().map_or_else(Bytes::new, |b| b.render(ctx, &vu.vars[..]));
        let mut hops = 0;
        // Every hop of a redirect is a request of its own, as in k6; checks
        // and captures read the last answer.
        let outcome = loop {
            let cross_origin = target.origin.host != first.origin.host;
            let (outcome, timings) = self.exchange(vu, r, ctx, &target, &method, &body, cross_origin).await?;
            let status = outcome.as_ref().map_or(0, |o| o.status);
            if let (true, Some(o)) = (self.cookies, &outcome) {
                vu.jar.store(&target.origin.host, target.path.path(), &o.headers);
            }
            // A redirect hop is named by its own URL, as k6 does (unless
            // the request has a name).
            let hop = (hops > 0).then_some(target.url.as_str());
            vu.record(r, &first.url, hop, status, outcome.as_ref(), &timings);
            let next =
                outcome.as_ref().filter(|_| hops < self.max_redirects).and_then(|o| vu.redirect(step, &target, o));
            let Some(next) = next else { break outcome };
            hops += 1;
            if let Some(o) = &outcome {
                if o.status == 303 && method != http::Method::HEAD
                    || matches!(o.status, 301 | 302) && method == http::Method::POST
                {
                    method = http::Method::GET;
                    body = Bytes::new();
                }
            }
            target = next?;
        };
        let url = &first.url;
        let status = outcome.as_ref().map_or(0, |o| o.status);
        let mut json = None;
        if !r.checks.is_empty() {
            let empty = http::HeaderMap::new();
            let answer = match &outcome {
                Some(o) => check::Answer { status, body: &o.body, headers: &o.headers, duration: o.duration },
                None => check::Answer { status, body: &[], headers: &empty, duration: Duration::ZERO },
            };
            let ids = &vu.checks[step];
            vu.metrics.batch(|s| {
                for (check, id) in r.checks.iter().zip(ids) {
                    s.rate(*id, check.passes(&answer, &mut json));
                }
            });
        }
        if !r.captures.is_empty() {
            vu.capture(step, r, outcome.as_ref(), &mut json).map_err(|name| {
                FlowError::Step(format!("capture {name}: nothing found in the answer of {url} (status {status})"))
            })?;
        }
        Ok((status, outcome.map(|o| o.body).unwrap_or_default()))
    }
}

/// This VU's open connection to `origin` (closed ones are dropped).
fn reusable(vu: &mut VuIo, origin: &Origin) -> Option<usize> {
    vu.conns.retain(|c| !c.sender.is_closed());
    vu.conns.iter().position(|c| c.origin == *origin)
}

/// Sends one request and reads the whole response.
async fn send(
    conn: &mut Connection,
    req: http::Request<Full<Bytes>>,
    keep_body: bool,
) -> Result<Outcome, hyper::Error> {
    conn.sender.ready().await?;
    let start = Instant::now();
    let resp = conn.sender.send_request(req).await?;
    let waiting = start.elapsed();
    let status = resp.status().as_u16();
    let (parts, mut body) = resp.into_parts();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if keep_body && kept.len() < MAX_KEPT_BODY {
                // Read to the end (it is counted), keep at most the bound.
                let room = MAX_KEPT_BODY - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    Ok(Outcome { status, waiting, duration: start.elapsed(), body: kept, headers: parts.headers })
}

impl VuIo {
    /// Where a redirect answer points, if it is one (`Location` resolved
    /// against the request's URL). The last hop of each request is kept: a
    /// login that always redirects to the same page resolves it once.
    fn redirect(&mut self, step: usize, from: &Target, o: &Outcome) -> Option<Result<Arc<Target>, FlowError>> {
        if !matches!(o.status, 301 | 302 | 303 | 307 | 308) {
            return None;
        }
        let location = o.headers.get(http::header::LOCATION)?.to_str().ok()?;
        if let Some((base, loc, t)) = &self.hops[step] {
            if **base == *from.url && **loc == *location {
                return Some(Ok(t.clone()));
            }
        }
        let next = url::Url::parse(&from.url).and_then(|base| base.join(location));
        let target = match next {
            Ok(u) => Target::parse(u.to_string()).map(Arc::new),
            Err(e) => Err(FlowError::Step(format!("redirect from {:?} to {location:?}: {e}", from.url))),
        };
        if let Ok(t) = &target {
            self.hops[step] = Some((from.url.as_str().into(), location.into(), t.clone()));
        }
        Some(target)
    }
}
