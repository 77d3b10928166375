//! Live control of a running test: the request and the status, shared by
//! the generator's control API, the exporter's fleet control API and the
//! wire between them.
//!
//! The JSON shape follows k6's REST API (`GET`/`PATCH /v1/status` with
//! `paused`, `vus`, `vus-max`, `stopped`, `running`, `tainted`), so k6
//! users' scripts keep working; Volley adds `scenario` (which
//! externally-controlled scenario to scale when there are several) and the
//! per-scenario list.

use serde::{Deserialize, Serialize};

/// What an operator asks for; absent fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Pause (true) or resume (false) the externally-controlled VUs.
    #[serde(default)]
    pub paused: Option<bool>,
    /// New VU count of the externally-controlled scenario, up to its
    /// `maxVUs`. Through the exporter this is the fleet's total: each
    /// generator takes its execution segment's share of it.
    #[serde(default)]
    pub vus: Option<u64>,
    /// The externally-controlled scenario `vus` applies to (needed only
    /// when the test has more than one).
    #[serde(default)]
    pub scenario: Option<String>,
    /// Stop the test now (exit code 105).
    #[serde(default)]
    pub stopped: bool,
}

/// Where a test stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `running`, `paused`, `stopping` or `ended`.
    pub status: String,
    /// The externally-controlled VUs are paused.
    pub paused: bool,
    /// VUs busy now.
    pub vus: u64,
    /// VUs allocated so far.
    #[serde(rename = "vus-max")]
    pub vus_max: u64,
    /// Stopped early (by an operator, a signal or a threshold).
    pub stopped: bool,
    /// Started and not ended.
    pub running: bool,
    /// A threshold fails on the data so far.
    pub tainted: bool,
    /// The externally-controlled scenarios.
    pub scenarios: Vec<ScenarioStatus>,
}

/// One externally-controlled scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioStatus {
    /// Scenario name.
    pub name: String,
    /// VUs it is asked to run.
    pub vus: u64,
    /// Its bound (`maxVUs`).
    #[serde(rename = "maxVUs")]
    pub max_vus: u64,
}
