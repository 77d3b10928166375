//! Flows: what one iteration does.
//!
//! A flow is compiled once from the scenario file ([`FlowDef`]) and shared by
//! every VU that runs it; each VU owns a [`FlowVu`] with its private state
//! (connections, cached series ids). Flows are an enum rather than trait
//! objects so an iteration costs no allocation and no dynamic dispatch.
//!
//! # Layout
//! - [`noop`]: does nothing (optionally sleeps); measures executor overhead.
//! - [`http`]: request steps with templating and checks.
//! - [`ws`]: `ws-ping` and `im-e2e`, WebSocket IM scenarios.
//! - [`token`]: `token-manager`, the shared auth token, and the `{{token}}`
//!   every other flow can read.
//! - [`net`]: TCP connections from a chosen source address (`--local-ips`).
//! - [`template`]: `{{vu}}`-style placeholders, compiled once.
//! - [`condition`]: `if:` conditions over rendered templates.
//! - [`setup`]: the `setup` flow, run once before the scenarios.
//! - [`jsonpath`]: dotted JSON paths for checks and frame recognisers.

pub mod condition;
pub mod http;
pub mod jsonpath;
pub mod net;
pub mod noop;
pub mod setup;
pub mod template;
pub mod think;
pub mod token;
pub mod ws;

use crate::config::reader::Obj;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use volley_window::Tags;

/// The flow types this generator knows.
pub const FLOW_TYPES: &[&str] = &["noop", "http", "ws-ping", "im-e2e", "token-manager"];

/// Variables an iteration's templates can use.
#[derive(Clone, Copy)]
pub struct IterCtx<'a> {
    /// Global VU number, from 1 (k6's `__VU`).
    pub vu: u64,
    /// This VU's iteration number in the scenario, from 0 (k6's `__ITER`).
    pub iter: u64,
    /// Scenario name.
    pub scenario: &'a str,
    /// Environment: process variables, `-e` flags, then the scenario's `env`.
    pub env: &'a HashMap<String, String>,
    /// Cancelled once the scenario starts nothing new (flows that hold
    /// connections wind down after their last iteration).
    pub stopping: Option<&'a tokio_util::sync::CancellationToken>,
    /// The VU's copies of the shared tokens its templates read (filled by
    /// the flow, made ready before anything is rendered).
    pub tokens: &'a [token::TokenCache],
}

/// Who a new VU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VuIdentity {
    /// Global VU number, from 1.
    pub number: u64,
    /// The VU's position in its scenario, from 0.
    pub index: u64,
    /// The source address of its connections (`--local-ips`), if set.
    pub local: Option<std::net::IpAddr>,
}

/// Why an iteration ended with an error (it still counts as an iteration).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A step failed in a way that makes the rest of the iteration pointless.
    #[error("{0}")]
    Step(String),
    /// No usable token from a token-manager flow within its `wait`.
    #[error("no token from token-manager \"{flow}\" within {}", crate::config::duration::format_duration(*bound))]
    TokenUnavailable {
        /// The token-manager flow.
        flow: String,
        /// Its `wait`.
        bound: Duration,
    },
}

/// What every flow of a scenario file shares: the file's http options,
/// its test data, the setup flow's values and where relative paths start.
#[derive(Debug, Default)]
pub struct Scope {
    /// k6's http options (`userAgent`, `maxRedirects`, …).
    pub http: http::HttpOptions,
    /// The `data` section.
    pub data: Arc<crate::data::DataSets>,
    /// What the `setup` flow captures (none without one).
    pub setup: Arc<setup::SetupValues>,
    /// The scenario file's directory (multipart files are read from it).
    pub base: Option<std::path::PathBuf>,
}

/// A compiled flow.
#[derive(Debug)]
pub enum FlowDef {
    /// `type: noop`
    Noop(noop::NoopFlow),
    /// `type: http`
    Http(Box<http::HttpFlow>),
    /// `type: ws-ping` / `type: im-e2e`
    Ws(Box<ws::WsFlow>),
    /// `type: token-manager`
    Token(Box<token::TokenManagerFlow>),
}

/// What the VUs of one scenario share for their flow.
pub enum FlowScenario {
    /// Nothing.
    None,
    /// The IM flows' series and pairs.
    Ws(Arc<ws::ScenarioState>),
}

/// A VU's private state for its flow.
pub enum FlowVu {
    /// No state.
    Noop,
    /// Connections and cached series.
    Http(Box<http::HttpVu>),
    /// One WebSocket connection and the VU's IM state.
    Ws(Box<ws::WsVu>),
    /// The token manager's requests and series.
    Token(Box<token::ManagerVu>),
}

impl FlowDef {
    /// Reads the entry `name` of `flows`.
    pub fn parse(obj: Obj, name: &str, scope: &Scope) -> Option<FlowDef> {
        let kind = obj.string("type");
        let flow = match kind.as_deref() {
            Some("noop") => noop::NoopFlow::parse(&obj).map(FlowDef::Noop),
            Some("http") => http::HttpFlow::parse(&obj, scope).map(|f| FlowDef::Http(Box::new(f))),
            Some("ws-ping") => ws::WsFlow::parse(&obj, ws::config::Kind::Ping).map(|f| FlowDef::Ws(Box::new(f))),
            Some("im-e2e") => ws::WsFlow::parse(&obj, ws::config::Kind::ImE2e).map(|f| FlowDef::Ws(Box::new(f))),
            Some("token-manager") => token::TokenManagerFlow::parse(&obj, name).map(|f| FlowDef::Token(Box::new(f))),
            Some(other) => {
                let hint = crate::config::reader::closest(other, FLOW_TYPES)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_else(|| format!(" (expected one of: {})", FLOW_TYPES.join(", ")));
                obj.error("type", format!("unknown flow type \"{other}\"{hint}"));
                return None;
            }
            None => {
                if !obj.has("type") {
                    obj.error("type", format!("is required (one of: {})", FLOW_TYPES.join(", ")));
                }
                return None;
            }
        };
        let fields = match kind.as_deref() {
            Some("http") => http::FIELDS,
            Some("ws-ping" | "im-e2e") => ws::FIELDS,
            Some("token-manager") => token::FIELDS,
            _ => noop::FIELDS,
        };
        obj.finish_with(fields);
        flow
    }

    /// Environment variables the flow's templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        match self {
            FlowDef::Noop(_) => Vec::new(),
            FlowDef::Http(f) => f.env_refs(),
            FlowDef::Ws(f) => f.env_refs(),
            FlowDef::Token(f) => f.env_refs(),
        }
    }

    /// The flow's `{{token}}` references, to be linked to their managers.
    pub fn token_refs(&self) -> Option<&token::TokenRefs> {
        match self {
            FlowDef::Noop(_) => None,
            FlowDef::Http(f) => Some(f.token_refs()),
            FlowDef::Ws(f) => Some(f.token_refs()),
            FlowDef::Token(f) => f.token_refs(),
        }
    }

    /// Shared state for a scenario of up to `max_vus` VUs.
    pub fn new_scenario(&self, max_vus: u64, tags: &Tags, metrics: &Metrics) -> FlowScenario {
        match self {
            FlowDef::Ws(f) => FlowScenario::Ws(f.new_scenario(max_vus, tags, metrics)),
            _ => FlowScenario::None,
        }
    }

    /// Records what a scenario only knows at its end (`im_lost_total`).
    pub fn finish(&self, scenario: &FlowScenario) {
        if let (FlowDef::Ws(f), FlowScenario::Ws(s)) = (self, scenario) {
            f.finish(s);
        }
    }

    /// Fresh per-VU state for VU number `vu`, the `index`-th of its
    /// scenario, whose metrics carry `tags` and whose connections come
    /// from the source address `local` when given (`--local-ips`).
    pub fn new_vu(&self, scenario: &FlowScenario, vu: VuIdentity, tags: &Tags, metrics: &Metrics) -> FlowVu {
        let VuIdentity { number, index, local } = vu;
        match (self, scenario) {
            (FlowDef::Noop(_), _) => FlowVu::Noop,
            (FlowDef::Http(f), _) => FlowVu::Http(Box::new(f.new_vu(tags, metrics, local))),
            (FlowDef::Ws(f), FlowScenario::Ws(s)) => FlowVu::Ws(Box::new(f.new_vu(s, number, index, local))),
            (FlowDef::Ws(f), FlowScenario::None) => {
                let s = f.new_scenario(index + 1, tags, metrics);
                FlowVu::Ws(Box::new(f.new_vu(&s, number, index, local)))
            }
            (FlowDef::Token(f), _) => FlowVu::Token(Box::new(f.new_vu(tags, metrics, local))),
        }
    }

    /// Runs one iteration.
    pub async fn iterate(&self, vu: &mut FlowVu, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        match (self, vu) {
            (FlowDef::Noop(f), _) => {
                f.iterate().await;
                Ok(())
            }
            // Boxed: an HTTP request's state machine is kilobytes, and an
            // idle VU (between iterations, or running a noop flow) should not
            // carry it.
            (FlowDef::Http(f), FlowVu::Http(state)) => Box::pin(f.iterate(state, ctx)).await,
            (FlowDef::Ws(f), FlowVu::Ws(state)) => Box::pin(f.iterate(state, ctx)).await,
            (FlowDef::Token(f), FlowVu::Token(state)) => Box::pin(f.iterate(state, ctx)).await,
            _ => Err(FlowError::Step("VU state does not match its flow".into())),
        }
    }
}

/// Sleeps unless `d` is zero (a zero sleep must not yield to the timer).
pub async fn pause(d: Option<Duration>) {
    if let Some(d) = d.filter(|d| !d.is_zero()) {
        tokio::time::sleep(d).await;
    }
}

/// Shared, compiled flows by name.
pub type Flows = HashMap<String, Arc<FlowDef>>;
