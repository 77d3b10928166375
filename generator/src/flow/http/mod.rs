//! `type: http`: a list of request steps with templating and checks.
//!
//! # Layout
//! - [`config`]: requests as written in the scenario file.
//! - [`steps`]: the steps (groups, loops, conditions, metrics) compiled
//!   into a flat program.
//! - [`vars`]: the iteration's variables.
//! - [`check`]: status / header / body / JSON / duration checks.
//! - [`body`]: request bodies (text, forms, multipart).
//! - [`capture`]: values taken from a response for the later steps.
//! - [`cookies`]: the per-VU cookie jar.
//! - [`client`]: the per-VU hyper connection (HTTP/1.1, HTTP/2) and TLS.
//! - [`debug`]: what `--http-debug` prints.
//! - this file: one iteration, and the series each request records into
//!   (resolved once per VU, step and status code, then cached).

pub mod body;
pub mod capture;
pub mod check;
pub mod client;
pub mod config;
pub mod cookies;
pub mod debug;
pub mod steps;
pub mod vars;

use crate::config::reader::Obj;
use crate::flow::think::Think;
use crate::flow::token::{TokenCache, TokenRefs};
use crate::flow::{pause, FlowError, IterCtx};
use crate::metrics::builtin::*;
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use bytes::Bytes;
use client::{ConnectTimings, Connection, Origin};
pub use config::RequestStep;
pub use config::FIELDS;
use http::header::{HeaderValue, HOST};
use http::Uri;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steps::{Op, Over, Program};
use vars::Value;
use volley_window::Tags;

/// The most of a response body kept for checks and captures; the rest is
/// read and counted but not kept, so a VU's memory stays bounded whatever
/// a target answers.
pub const MAX_KEPT_BODY: usize = 16 << 20;

/// Series a VU caches per request (statuses times redirect hops).
const MAX_CACHED_SERIES: usize = 16;

/// k6's default `maxRedirects`.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// k6 options that apply to every http flow of a file.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `userAgent`: the `User-Agent` sent when a request sets none (`None`:
    /// no header, what `userAgent: ""` asks for).
    pub user_agent: Option<String>,
    /// `insecureSkipTLSVerify`: accept any certificate.
    pub insecure_tls: bool,
    /// `maxRedirects`: redirects followed per request (0: none).
    pub max_redirects: u32,
    /// `discardResponseBodies`: keep no body unless a request asks with
    /// `responseType: text`.
    pub discard_bodies: bool,
    /// `noConnectionReuse`: a new connection for every request.
    pub no_connection_reuse: bool,
    /// `systemTags`: the system tags request series keep (`None`: all).
    pub system_tags: Option<Vec<String>>,
    /// `hosts`: host name → address (and port) to dial instead.
    pub hosts: Hosts,
    /// `--http-debug`.
    pub debug: debug::Level,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            user_agent: Some(format!("volley/{}", env!("CARGO_PKG_VERSION"))),
            insecure_tls: false,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            discard_bodies: false,
            no_connection_reuse: false,
            system_tags: None,
            hosts: HashMap::new(),
            debug: debug::Level::Off,
        }
    }
}

/// k6's `hosts` option: host name → address, and the port to use instead
/// of the URL's when given.
pub type Hosts = HashMap<String, (String, Option<u16>)>;

/// The system tags of request series (what `systemTags` may list).
pub const SYSTEM_TAGS: &[&str] =
    &["method", "status", "url", "name", "expected_response", "group", "check", "scenario"];

/// A compiled http flow.
pub struct HttpFlow {
    program: Program,
    /// The file's test data, and per used column `(slot, set, column)`.
    data: Arc<crate::data::DataSets>,
    data_slots: Vec<(usize, usize, usize)>,
    /// The data sets the templates read.
    data_sets: Vec<usize>,
    /// The setup flow's values, and per used one `(slot, index)`.
    setup: Arc<crate::flow::setup::SetupValues>,
    setup_slots: Vec<(usize, usize)>,
    sleep: Option<Think>,
    tls: tokio_rustls::TlsConnector,
    /// Shared tokens the templates read.
    tokens: TokenRefs,
    /// Sent as `User-Agent` when a request sets none.
    user_agent: Option<HeaderValue>,
    /// `cookies`: keep a per-VU cookie jar (default true, as k6).
    cookies: bool,
    /// Redirects followed per request.
    max_redirects: u32,
    /// A new connection for every request.
    no_reuse: bool,
    /// System tags to drop from request series.
    dropped_tags: Vec<&'static str>,
    /// Host name → address (and port) to dial.
    hosts: Hosts,
    /// `--http-debug`.
    debug: debug::Level,
}

impl std::fmt::Debug for HttpFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFlow").field("program", &self.program).field("sleep", &self.sleep).finish()
    }
}

/// The series of one (step, status code).
#[derive(Clone, Copy)]
struct RequestSeries {
    reqs: SeriesId,
    duration: SeriesId,
    waiting: SeriesId,
    connecting: SeriesId,
    tls: SeriesId,
    failed: SeriesId,
}

/// A VU's copies of the shared tokens, and its connections.
pub struct HttpVu {
    tokens: Vec<TokenCache>,
    io: VuIo,
}

/// A request's series for one status and redirect hop URL.
type CachedSeries = (u16, Option<Box<str>>, RequestSeries);

/// A VU's connections and cached series.
struct VuIo {
    conns: Vec<Connection>,
    /// The source address of its connections (`--local-ips`), if set.
    local: Option<IpAddr>,
    /// Per request: the parsed URL, when it is the same for every iteration.
    targets: Vec<Option<Arc<Target>>>,
    metrics: Metrics,
    tags: Tags,
    /// Per request: `(status, redirect hop URL, series)`; a handful of
    /// statuses per request.
    series: Vec<Vec<CachedSeries>>,
    /// Per request: one `checks` series per check, then one per capture
    /// (`capture NAME`).
    checks: Vec<Vec<SeriesId>>,
    /// This iteration's variables, by slot.
    vars: Vec<Value>,
    /// Per group: its `group_duration` series, and when it was entered.
    groups: Vec<(SeriesId, Instant)>,
    /// Per loop: the pass it is on.
    loops: Vec<u64>,
    /// Per metric step: its series.
    custom: Vec<SeriesId>,
    /// Per data set: this iteration's row.
    rows: Vec<usize>,
    /// System tags `systemTags` leaves out.
    dropped_tags: Vec<&'static str>,
    /// This iteration's cookies.
    jar: cookies::Jar,
    data_sent: SeriesId,
    data_received: SeriesId,
}

/// A request's destination, parsed from its rendered URL.
struct Target {
    url: String,
    origin: Origin,
    host: HeaderValue,
    /// The whole URI (what HTTP/2 requests carry).
    absolute: Uri,
    /// Origin-form URI (path and query) for the request line.
    path: Uri,
}

impl Target {
    fn parse(url: String) -> Result<Target, FlowError> {
        let uri: Uri = url.parse().map_err(|e| FlowError::Step(format!("invalid URL {url:?}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FlowError::Step(format!("URL {url:?} must start with http:// or https://"))),
        };
        let authority = uri.authority().ok_or_else(|| FlowError::Step(format!("URL {url:?} has no host")))?;
        let origin = Origin {
            tls,
            host: authority.host().trim_start_matches('[').trim_end_matches(']').to_string(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        };
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| FlowError::Step(format!("URL {url:?}: {e}")))?;
        let path: Uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| FlowError::Step(format!("invalid path in URL {url:?}: {e}")))?;
        Ok(Target { url, origin, host, path, absolute: uri })
    }
}

/// What one request produced.
struct Outcome {
    status: u16,
    waiting: Duration,
    duration: Duration,
    body: Vec<u8>,
    headers: http::HeaderMap,
}

impl HttpFlow {
    /// Reads the flow's steps and options; the file's k6 options apply
    /// where the flow says nothing.
    pub fn parse(obj: &Obj, scope: &crate::flow::Scope) -> Option<HttpFlow> {
        let options = &scope.http;
        let sleep = obj.think("sleep");
        let insecure = obj.boolean("insecureSkipTLSVerify").unwrap_or(options.insecure_tls);
        // Data columns and setup values are variables from the first step.
        let data_vars = scope.data.variables();
        let setup_vars = scope.setup.variables();
        let seeded = data_vars.iter().map(|(n, _, _)| n.clone()).chain(setup_vars.iter().cloned()).collect();
        let program = steps::compile(obj, seeded, scope)?;
        let mut flow = HttpFlow::new(program, sleep, insecure);
        flow.tls = client::tls_connector(insecure, false);
        let used = |slot: usize| flow.program.templates().any(|t| t.uses_var(slot));
        flow.data_slots = data_vars
            .iter()
            .enumerate()
            .filter(|(slot, _)| used(*slot))
            .map(|(slot, (_, s, c))| (slot, *s, *c))
            .collect();
        flow.data_sets = flow.data_slots.iter().map(|(_, s, _)| *s).collect();
        flow.data_sets.dedup();
        flow.setup_slots =
            (0..setup_vars.len()).map(|i| (data_vars.len() + i, i)).filter(|(slot, _)| used(*slot)).collect();
        flow.data = scope.data.clone();
        flow.setup = scope.setup.clone();
        flow.cookies = obj.boolean("cookies").unwrap_or(true);
        flow.max_redirects = options.max_redirects;
        flow.no_reuse = options.no_connection_reuse;
        flow.hosts = options.hosts.clone();
        flow.debug = options.debug;
        if let Some(keep) = &options.system_tags {
            flow.dropped_tags = SYSTEM_TAGS.iter().copied().filter(|t| !keep.iter().any(|k| k == t)).collect();
        }
        flow.user_agent = options.user_agent.as_deref().and_then(|ua| HeaderValue::from_str(ua).ok());
        Some(flow)
    }

    /// A flow of one request (what the token manager sends).
    pub fn single(request: RequestStep, insecure: bool) -> HttpFlow {
        HttpFlow::new(Program::single(request), None, insecure)
    }

    fn new(program: Program, sleep: Option<Think>, insecure: bool) -> HttpFlow {
        let tokens = TokenRefs::new(program.templates().flat_map(|t| t.token_refs()));
        let user_agent = HttpOptions::default().user_agent.and_then(|ua| HeaderValue::from_str(&ua).ok());
        HttpFlow {
            program,
            data: Default::default(),
            data_slots: Vec::new(),
            data_sets: Vec::new(),
            setup: Default::default(),
            setup_slots: Vec::new(),
            sleep,
            tls: client::tls_connector(insecure, false),
            tokens,
            user_agent,
            cookies: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            no_reuse: false,
            dropped_tags: Vec::new(),
            hosts: HashMap::new(),
            debug: debug::Level::Off,
        }
    }

    /// The data sets the templates read.
    pub fn data_sets(&self) -> &[usize] {
        &self.data_sets
    }

    /// The names the flow captures.
    pub fn captured(&self) -> Vec<String> {
        self.program.captured()
    }

    /// A VU's current value of variable `name` (what the setup flow hands on).
    pub fn variable<'v>(&self, vu: &'v HttpVu, name: &str) -> Option<&'v Value> {
        self.program.slot(name).and_then(|s| vu.io.vars.get(s))
    }

    /// Shared tokens the templates read.
    pub fn token_refs(&self) -> &TokenRefs {
        &self.tokens
    }

    /// Environment variables the templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = self.program.templates().flat_map(|t| t.env_refs()).collect();
        refs.sort_unstable();
        refs.dedup();
        refs
    }

    /// Per-VU state; check and data series are resolved here, request
    /// series on first use of each status code. The VU's connections come
    /// from `local` when given.
    pub fn new_vu(&self, tags: &Tags, metrics: &Metrics, local: Option<IpAddr>) -> HttpVu {
        let in_group = |group: &Option<String>| {
            let mut t = tags.clone();
            if let Some(g) = group {
                t.insert("group", g.as_str());
            }
            t
        };
        let checks = self
            .program
            .requests()
            .map(|r| {
                let names = r.checks.iter().map(|c| c.name.clone());
                let captures = r.captures.iter().map(|c| format!("capture {}", c.name));
                names
                    .chain(captures)
                    .map(|name| {
                        let mut t = in_group(&r.group);
                        t.insert("check", name);
                        metrics.series(CHECKS, without(t, &self.dropped_tags))
                    })
                    .collect()
            })
            .collect();
        let groups = self
            .program
            .groups
            .iter()
            .map(|g| (metrics.series(GROUP_DURATION, in_group(&Some(g.clone()))), Instant::now()))
            .collect();
        let custom = self
            .program
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Metric(m) => Some(metrics.series(m.def, in_group(&m.group))),
                _ => None,
            })
            .collect();
        let requests = self.program.requests;
        let io = VuIo {
            conns: Vec::new(),
            local,
            targets: vec![None; requests],
            metrics: metrics.clone(),
            tags: tags.clone(),
            series: vec![Vec::new(); requests],
            checks,
            vars: vec![Value::default(); self.program.vars.len()],
            groups,
            loops: vec![0; self.program.loops],
            custom,
            rows: vec![0; self.data.sets().len()],
            dropped_tags: self.dropped_tags.clone(),
            jar: cookies::Jar::default(),
            data_sent: metrics.series(DATA_SENT, tags.clone()),
            data_received: metrics.series(DATA_RECEIVED, tags.clone()),
        };
        HttpVu { tokens: self.tokens.caches(tags, metrics), io }
    }

    /// Runs every step once. Shared tokens are made ready first: a VU with
    /// no usable token waits for one (bounded) instead of sending a request
    /// that can only be refused.
    pub async fn iterate(&self, vu: &mut HttpVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        for t in &mut vu.tokens {
            t.ready().await?;
        }
        let ctx = IterCtx { tokens: &vu.tokens, ..*ctx };
        // Variables and cookies live for one iteration.
        vu.io.vars.iter_mut().for_each(Value::clear);
        vu.io.jar.clear();
        self.fill_inputs(&mut vu.io, ctx.vu).await?;
        let ops = &self.program.ops;
        let mut pc = 0;
        while let Some(op) = ops.get(pc) {
            pc += 1;
            match op {
                Op::Request(r) => {
                    self.request(&mut vu.io, r, &ctx).await?;
                    pause(r.sleep.map(|t| t.sample())).await;
                }
                Op::Sleep(t) => pause(Some(t.sample())).await,
                Op::Enter(g) => vu.io.groups[*g].1 = Instant::now(),
                Op::Leave(g) => {
                    let (series, entered) = vu.io.groups[*g];
                    vu.io.metrics.trend(series, entered.elapsed().as_secs_f64() * 1e3);
                }
                Op::LoopInit(l) => vu.io.loops[*l] = 0,
                Op::LoopTest(t) => {
                    if !vu.io.next_pass(t) {
                        pc = t.exit;
                    }
                }
                Op::LoopNext { id, test } => {
                    vu.io.loops[*id] += 1;
                    pc = *test;
                }
                Op::If { cond, skip } => {
                    if !cond.holds(&ctx, &vu.io.vars[..]) {
                        pc = *skip;
                    }
                }
                Op::Metric(m) => vu.io.sample(m, &ctx)?,
            }
        }
        pause(self.sleep.map(|t| t.sample())).await;
        Ok(())
    }

    /// Copies this iteration's data row and the setup values into their
    /// variables. A VU without a row (more VUs than `unique` rows, which
    /// loading refuses when it can know) waits a second before failing, so
    /// it does not spin.
    async fn fill_inputs(&self, vu: &mut VuIo, number: u64) -> Result<(), FlowError> {
        for &set in &self.data_sets {
            match self.data.sets()[set].row(number) {
                Ok(row) => vu.rows[set] = row,
                Err(e) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err(FlowError::Step(e));
                }
            }
        }
        for &(slot, set, col) in &self.data_slots {
            vu.vars[slot].set_text(self.data.sets()[set].table.cell(vu.rows[set], col));
        }
        for &(slot, i) in &self.setup_slots {
            if let Some(v) = self.setup.value(i) {
                vu.vars[slot].clone_from(v);
            }
        }
        Ok(())
    }

    /// Sends the flow's first request with the caller's token copies and
    /// returns the status (0 when no response came) and the body. Metrics
    /// are recorded as for any request.
    pub async fn fetch(&self, vu: &mut HttpVu, ctx: &IterCtx<'_>) -> Result<(u16, Vec<u8>), FlowError> {
        let Some(r) = self.program.requests().next() else {
            return Err(FlowError::Step("no request to send".into()));
        };
        for t in &mut vu.tokens {
            t.ready().await?;
        }
        let ctx = IterCtx { tokens: &vu.tokens, ..*ctx };
        self.request(&mut vu.io, r, &ctx).await
    }

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
            let (idx, reused) = match self.connection(vu, r, &target.origin).await {
                Some((idx, None)) => (idx, true),
                Some((idx, Some(t))) => {
                    timings = t;
                    (idx, false)
                }
                None => break None,
            };
            let h2 = vu.conns[idx].sender.is_h2();
            let req = self.build(vu, r, ctx, target, method, body, cross_origin, h2)?;
            if self.debug != debug::Level::Off {
                debug::request(&req, body, self.debug);
            }
            let before = vu.conns[idx].counts.get();
            let keep = r.needs_body() || self.debug == debug::Level::Full;
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

    /// This VU's open connection to `origin`, or a new one (with its
    /// timings); `None` when connecting failed.
    async fn connection(
        &self,
        vu: &mut VuIo,
        r: &RequestStep,
        origin: &Origin,
    ) -> Option<(usize, Option<ConnectTimings>)> {
        vu.conns.retain(|c| !c.sender.is_closed());
        if let Some(i) = vu.conns.iter().position(|c| c.origin == *origin) {
            return Some((i, None));
        }
        let dial =
            self.hosts.get(&origin.host.to_ascii_lowercase()).map(|(h, p)| (h.as_str(), p.unwrap_or(origin.port)));
        // Boxed: connecting (TLS included) is rare and its state is large.
        let connect = Box::pin(client::connect(origin, dial, &self.tls, vu.local));
        match tokio::time::timeout(r.timeout, connect).await {
            Ok(Ok((conn, t))) => {
                vu.conns.push(conn);
                Some((vu.conns.len() - 1, Some(t)))
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
            *req.uri_mut() = target.absolute.clone();
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
        for (name, value) in &r.headers {
            if cross_origin && *name == http::header::AUTHORIZATION
                || dropped_body && *name == http::header::CONTENT_TYPE
                || h2 && *name == HOST
            {
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

    async fn request(&self, vu: &mut VuIo, r: &RequestStep, ctx: &IterCtx<'_>) -> Result<(u16, Vec<u8>), FlowError> {
        let step = r.index;
        // A URL without per-VU or per-iteration placeholders is parsed once per VU.
        let first = match &vu.targets[step] {
            Some(t) => t.clone(),
            None => {
                let mut url = String::new();
                r.url.render_with(ctx, &vu.vars[..], &mut url);
                let t = Arc::new(Target::parse(url)?);
                if r.url.is_static() {
                    vu.targets[step] = Some(t.clone());
                }
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
            let next = outcome.as_ref().filter(|_| hops < self.max_redirects).and_then(|o| redirect(&target, o));
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
            target = Arc::new(next?);
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

/// `tags` without the names in `dropped` (what `systemTags` leaves out).
fn without(tags: Tags, dropped: &[&str]) -> Tags {
    if dropped.is_empty() {
        return tags;
    }
    Tags::from_pairs(tags.iter().filter(|(k, _)| !dropped.contains(k)))
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

/// Where a redirect answer points, if it is one (`Location` resolved
/// against the request's URL).
fn redirect(from: &Target, o: &Outcome) -> Option<Result<Target, FlowError>> {
    if !matches!(o.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = o.headers.get(http::header::LOCATION)?.to_str().ok()?;
    let next = url::Url::parse(&from.url).and_then(|base| base.join(location));
    Some(match next {
        Ok(u) => Target::parse(u.to_string()),
        Err(e) => Err(FlowError::Step(format!("redirect from {:?} to {location:?}: {e}", from.url))),
    })
}

impl VuIo {
    /// Starts the next pass of a loop, setting its variables; false when
    /// the loop is done.
    fn next_pass(&mut self, t: &steps::LoopTest) -> bool {
        let pass = self.loops[t.id];
        let more = match t.over {
            Over::Count(n) => pass < n,
            Over::List { list, item } => match usize::try_from(pass).ok().and_then(|i| self.vars[list].item(i)) {
                Some(value) => {
                    let value = value.to_string();
                    self.vars[item].set_text(&value);
                    true
                }
                None => false,
            },
        };
        if more {
            let mut index = std::mem::take(&mut self.vars[t.index]);
            if let Value::Text(s) = &mut index {
                s.clear();
                let _ = std::fmt::Write::write_fmt(s, format_args!("{pass}"));
            }
            self.vars[t.index] = index;
        }
        more
    }

    /// Records one sample of a custom metric; a value that is not a number
    /// ends the iteration (a rate takes a truth instead).
    fn sample(&mut self, m: &steps::MetricStep, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        let mut text = String::new();
        m.value.render_with(ctx, &self.vars[..], &mut text);
        let id = self.custom[m.index];
        if m.def.kind == volley_window::MetricKind::Rate {
            self.metrics.rate(id, crate::flow::condition::truthy(&text));
            return Ok(());
        }
        let value: f64 = text
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| FlowError::Step(format!("metric {}: {text:?} is not a number", m.def.name)))?;
        match m.def.kind {
            volley_window::MetricKind::Counter => self.metrics.add(id, value),
            volley_window::MetricKind::Gauge => self.metrics.set_gauge(id, value),
            _ => self.metrics.trend(id, value),
        }
        Ok(())
    }

    /// Records one answered (or failed) request in its step's series.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        r: &RequestStep,
        url: &str,
        hop: Option<&str>,
        status: u16,
        outcome: Option<&Outcome>,
        timings: &ConnectTimings,
    ) {
        let series = self.request_series(status, r, url, hop);
        let failed = !(200..400).contains(&status);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        self.metrics.batch(|s| {
            s.add(series.reqs, 1.0);
            s.rate(series.failed, failed);
            s.trend(series.connecting, ms(timings.connecting));
            s.trend(series.tls, ms(timings.tls));
            if let Some(o) = outcome {
                s.trend(series.duration, ms(o.duration));
                s.trend(series.waiting, ms(o.waiting));
            }
        });
    }

    /// Stores the step's captures from `outcome` and counts each as the
    /// check `capture NAME`; the first one that found nothing (and has no
    /// default) is returned by name, which ends the iteration.
    fn capture<'r>(
        &mut self,
        step: usize,
        r: &'r RequestStep,
        outcome: Option<&Outcome>,
        json: &mut Option<Option<serde_json::Value>>,
    ) -> Result<(), &'r str> {
        let empty = http::HeaderMap::new();
        let (body, headers) = outcome.map_or((&[][..], &empty), |o| (o.body.as_slice(), &o.headers));
        let ids = &self.checks[step][r.checks.len()..];
        let mut missing = None;
        for (c, id) in r.captures.iter().zip(ids) {
            let value = c.extract(body, headers, json);
            self.metrics.batch(|s| s.rate(*id, value.is_some()));
            match value {
                Some(v) => self.vars[c.slot] = v,
                None => {
                    missing = Some(c.name.as_str());
                    break;
                }
            }
        }
        missing.map_or(Ok(()), Err)
    }

    /// The series of request `r` answered with `status`; `hop` is the URL
    /// of a redirect hop. Cached per request, status and hop URL; the cache
    /// is bounded ([`MAX_CACHED_SERIES`]), past it the registry resolves.
    fn request_series(&mut self, status: u16, r: &RequestStep, url: &str, hop: Option<&str>) -> RequestSeries {
        let cache = &self.series[r.index];
        if let Some((_, _, s)) = cache.iter().find(|(code, h, _)| *code == status && h.as_deref() == hop) {
            return *s;
        }
        let mut tags = self.tags.clone();
        for (k, v) in &r.tags {
            tags.insert(k.as_str(), v.as_str());
        }
        if let Some(g) = &r.group {
            tags.insert("group", g.as_str());
        }
        tags.insert("method", r.method.as_str());
        tags.insert("status", status.to_string());
        // A URL that varies per VU or iteration is tagged by its template,
        // so it cannot create a series per request.
        let (name, url) = match (&r.name, hop, r.url.is_static()) {
            (Some(n), Some(h), _) => (n.clone(), h.to_string()),
            (None, Some(h), _) => (h.to_string(), h.to_string()),
            (Some(n), None, true) => (n.clone(), url.to_string()),
            (Some(n), None, false) => (n.clone(), r.url.source().to_string()),
            (None, None, true) => (url.to_string(), url.to_string()),
            (None, None, false) => (r.url.source().to_string(), r.url.source().to_string()),
        };
        tags.insert("name", name);
        tags.insert("url", url);
        tags.insert("expected_response", if (200..400).contains(&status) { "true" } else { "false" });
        let tags = without(tags, &self.dropped_tags);
        let m = &self.metrics;
        let s = RequestSeries {
            reqs: m.series(HTTP_REQS, tags.clone()),
            duration: m.series(HTTP_REQ_DURATION, tags.clone()),
            waiting: m.series(HTTP_REQ_WAITING, tags.clone()),
            connecting: m.series(HTTP_REQ_CONNECTING, tags.clone()),
            tls: m.series(HTTP_REQ_TLS_HANDSHAKING, tags.clone()),
            failed: m.series(HTTP_REQ_FAILED, tags),
        };
        if self.series[r.index].len() < MAX_CACHED_SERIES {
            self.series[r.index].push((status, hop.map(Box::from), s));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    /// The iteration's state machine is allocated per running iteration;
    /// connecting (TLS included) is boxed separately so this stays small.
    #[test]
    fn iteration_state_stays_small() {
        let doc = serde_json::json!({"type": "http", "steps": [{"request": {"url": "http://127.0.0.1:1/"}}]});
        let report = crate::config::reader::Report::default();
        let obj = crate::config::reader::Obj::new(&doc, "f", &report).unwrap();
        let flow = super::HttpFlow::parse(&obj, &crate::flow::Scope::default()).unwrap();
        let metrics = crate::metrics::Metrics::new(10, |_| {});
        let mut vu = flow.new_vu(&volley_window::Tags::new(), &metrics, None);
        let env = std::collections::HashMap::new();
        let ctx = crate::flow::IterCtx { vu: 1, iter: 0, scenario: "s", env: &env, stopping: None, tokens: &[] };
        let fut = flow.iterate(&mut vu, &ctx);
        let size = std::mem::size_of_val(&fut);
        assert!(size < 2048, "http iteration future is {size} bytes");
    }
}
