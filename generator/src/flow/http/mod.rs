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
//! - `options`: the file's k6 options for requests.
//! - `exchange`: one request, its redirects, and the answer.
//! - `target`: where a request goes, and what its answer holds.
//! - `vu`: a VU's state: connections, variables, the series it records
//!   into (resolved once per VU, request and status, then cached).
//! - this file: the flow, and one iteration over its program.

pub mod body;
pub mod capture;
pub mod check;
pub mod client;
pub mod config;
pub mod cookies;
pub mod debug;
mod exchange;
mod options;
pub mod steps;
mod target;
pub mod vars;
mod vu;

use crate::config::reader::Obj;
use crate::flow::think::Think;
use crate::flow::token::refs::TokenRefs;
use crate::flow::{pause, FlowError, IterCtx};
use crate::metrics::builtin::*;
use crate::metrics::Metrics;
pub use config::RequestStep;
pub use config::FIELDS;
pub use exchange::MAX_KEPT_BODY;
use http::header::HeaderValue;
pub use options::{Hosts, HttpOptions, DEFAULT_MAX_REDIRECTS, SYSTEM_TAGS};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steps::{Op, Program};
use vars::Value;
use volley_window::Tags;
pub use vu::HttpVu;
use vu::{without, VuIo};

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
            hops: vec![None; requests],
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
