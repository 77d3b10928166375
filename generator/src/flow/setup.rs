//! The `setup` flow: an http flow run once per generator before any
//! scenario starts (k6's `setup()`); what it captures is `{{setup.NAME}}`
//! in every other flow.
//!
//! ```yaml
//! flows:
//!   setup:
//!     type: http
//!     steps:
//!       - request: { method: POST, url: "{{env.BASE}}/admin/token" }
//!         capture: { adminToken: { json: "$.token" } }
//! ```
//!
//! It runs as VU 0, iteration 0, scenario `setup`, with its metrics tagged
//! `scenario: setup` and `group: ::setup` (as k6's), bounded by `setupTimeout` (default 60 s, as k6). If it
//! fails or times out no scenario starts, and the run ends with k6's exit
//! codes (107, or 100 for the timeout).

use super::http::vars::Value;
use super::{FlowDef, FlowError, IterCtx, VuIdentity};
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;
use volley_window::Tags;

/// The name of the setup flow in `flows`.
pub const NAME: &str = "setup";

/// k6's default `setupTimeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The setup flow's captured values, shared read-only by every VU once the
/// setup ran.
#[derive(Debug, Default)]
pub struct SetupValues {
    /// Capture names, in the order of `values`.
    names: Vec<String>,
    values: OnceLock<Vec<Value>>,
}

impl SetupValues {
    /// Values for the captures `names`, set once the setup ran.
    pub fn new(names: Vec<String>) -> SetupValues {
        SetupValues { names, values: OnceLock::new() }
    }

    /// `setup.NAME` for every capture: the variables other flows may use.
    pub fn variables(&self) -> Vec<String> {
        self.names.iter().map(|n| format!("setup.{n}")).collect()
    }

    /// Value `i` (empty before the setup ran).
    pub fn value(&self, i: usize) -> Option<&Value> {
        self.values.get().and_then(|v| v.get(i))
    }
}

/// Why the setup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// It did not finish within `setupTimeout`.
    Timeout(Duration),
    /// A step failed (a capture found nothing, a token never came).
    Failed(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Timeout(d) => {
                write!(f, "setup did not finish within setupTimeout {}", crate::config::duration::format_duration(*d))
            }
            SetupError::Failed(why) => write!(f, "setup failed: {why}"),
        }
    }
}

/// Runs the setup flow once and publishes its captures in `values`.
pub async fn run(
    flow: &FlowDef,
    values: &SetupValues,
    env: &HashMap<String, String>,
    tags: &Tags,
    metrics: &Metrics,
    timeout: Duration,
) -> Result<(), SetupError> {
    let FlowDef::Http(http) = flow else {
        return Err(SetupError::Failed("the setup flow must be of type http".into()));
    };
    let mut tags = tags.clone();
    tags.insert("scenario", NAME);
    // As k6, the setup's requests and checks are in the group `setup`.
    tags.insert("group", "::setup");
    let mut vu = match flow.new_vu(
        &super::FlowScenario::None,
        VuIdentity { number: 0, index: 0, local: None },
        &tags,
        metrics,
    ) {
        super::FlowVu::Http(vu) => vu,
        _ => unreachable!("an http flow makes http VUs"),
    };
    let ctx = IterCtx { vu: 0, iter: 0, scenario: NAME, env, stopping: None, tokens: &[] };
    match tokio::time::timeout(timeout, http.iterate(&mut vu, &ctx)).await {
        Err(_) => Err(SetupError::Timeout(timeout)),
        Ok(Err(FlowError::Step(why))) => Err(SetupError::Failed(why)),
        Ok(Err(e)) => Err(SetupError::Failed(e.to_string())),
        Ok(Ok(())) => {
            let captured = values.names.iter().map(|n| http.variable(&vu, n).cloned().unwrap_or_default()).collect();
            let _ = values.values.set(captured);
            Ok(())
        }
    }
}
