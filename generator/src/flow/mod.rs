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
//! - [`template`]: `{{vu}}`-style placeholders, compiled once.

pub mod http;
pub mod noop;
pub mod template;

use crate::config::reader::Obj;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use volley_window::Tags;

/// The flow types this generator knows.
pub const FLOW_TYPES: &[&str] = &["noop", "http"];

/// Variables an iteration's templates can use.
pub struct IterCtx<'a> {
    /// Global VU number, from 1 (k6's `__VU`).
    pub vu: u64,
    /// This VU's iteration number in the scenario, from 0 (k6's `__ITER`).
    pub iter: u64,
    /// Scenario name.
    pub scenario: &'a str,
    /// Environment: process variables, `-e` flags, then the scenario's `env`.
    pub env: &'a HashMap<String, String>,
}

/// Why an iteration ended with an error (it still counts as an iteration).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// A step failed in a way that makes the rest of the iteration pointless.
    #[error("{0}")]
    Step(String),
}

/// A compiled flow.
#[derive(Debug)]
pub enum FlowDef {
    /// `type: noop`
    Noop(noop::NoopFlow),
    /// `type: http`
    Http(http::HttpFlow),
}

/// A VU's private state for its flow.
pub enum FlowVu {
    /// No state.
    Noop,
    /// Connections and cached series.
    Http(Box<http::HttpVu>),
}

impl FlowDef {
    /// Reads one entry of `flows`.
    pub fn parse(obj: Obj) -> Option<FlowDef> {
        let kind = obj.string("type");
        let flow = match kind.as_deref() {
            Some("noop") => noop::NoopFlow::parse(&obj).map(FlowDef::Noop),
            Some("http") => http::HttpFlow::parse(&obj).map(FlowDef::Http),
            Some(other @ ("ws-ping" | "im-e2e" | "token-manager")) => {
                obj.error(
                    "type",
                    format!(
                        "flow type \"{other}\" is not available in this version (available: {})",
                        FLOW_TYPES.join(", ")
                    ),
                );
                return None;
            }
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
        let fields = if kind.as_deref() == Some("http") { http::FIELDS } else { noop::FIELDS };
        obj.finish_with(fields);
        flow
    }

    /// Environment variables the flow's templates read.
    pub fn env_refs(&self) -> Vec<&str> {
        match self {
            FlowDef::Noop(_) => Vec::new(),
            FlowDef::Http(f) => f.env_refs(),
        }
    }

    /// Fresh per-VU state for a VU of a scenario whose metrics carry `tags`.
    pub fn new_vu(&self, tags: &Tags, metrics: &Metrics) -> FlowVu {
        match self {
            FlowDef::Noop(_) => FlowVu::Noop,
            FlowDef::Http(f) => FlowVu::Http(Box::new(f.new_vu(tags, metrics))),
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
            (FlowDef::Http(_), FlowVu::Noop) => Err(FlowError::Step("VU state does not match its flow".into())),
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
