//! The seven k6 executors: how many VUs run iterations, and when.
//!
//! Every executor is one file with its config (parsed with k6's option names
//! and defaults), a pure plan where there is arithmetic to test without a
//! clock, and a `run` that drives VUs. They share:
//! - [`BaseConfig`]: `startTime`, `gracefulStop`, `exec`, `env`, `tags`;
//! - [`crate::engine::ScenarioRun`]: the VU factory, the iteration runner and
//!   the two stop signals ("start nothing new", "interrupt now");
//! - [`arrivals`]: the open-model dispatcher used by both arrival-rate executors.

pub mod arrivals;
pub mod constant_arrival_rate;
pub mod constant_vus;
pub mod externally_controlled;
pub mod per_vu_iterations;
pub mod ramping_arrival_rate;
pub mod ramping_vus;
pub mod segment;
pub mod shared_iterations;
pub mod stages;

use crate::config::reader::{closest, Obj};
use crate::engine::ScenarioRun;
use segment::Share;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use volley_window::Tags;

/// Options every executor has.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseConfig {
    /// Delay from the test start to this scenario's start.
    pub start_time: Duration,
    /// How long running iterations may finish after the scenario's end.
    pub graceful_stop: Duration,
    /// The flow each iteration runs.
    pub exec: String,
    /// Scenario environment, available to templates as `{{env.NAME}}`.
    pub env: Vec<(String, String)>,
    /// Tags added to every metric of the scenario.
    pub tags: Tags,
}

/// k6's default `gracefulStop`.
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);

/// The options common to all executors, as k6 names them.
pub const BASE_FIELDS: &[&str] = &["executor", "startTime", "gracefulStop", "exec", "env", "tags"];

impl BaseConfig {
    fn parse(obj: &Obj) -> BaseConfig {
        BaseConfig {
            start_time: obj.duration("startTime").unwrap_or_default(),
            graceful_stop: obj.duration("gracefulStop").unwrap_or(DEFAULT_GRACEFUL_STOP),
            exec: obj.string("exec").unwrap_or_else(|| "default".into()),
            env: obj.string_map("env").unwrap_or_default(),
            tags: Tags::from_pairs(obj.string_map("tags").unwrap_or_default()),
        }
    }
}

/// A future returned by an executor's run.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What every executor does.
pub trait Executor: Send + Sync {
    /// k6's name for the executor, e.g. `constant-arrival-rate`.
    fn kind(&self) -> &'static str;
    /// One line for the summary header, like k6's.
    fn describe(&self) -> String;
    /// The most VUs the scenario can use at once.
    fn max_vus(&self) -> u64;
    /// How long the scenario schedules work, excluding `gracefulStop`; an
    /// executor that can end earlier (the iteration-based ones) returns its
    /// `maxDuration`, the upper bound.
    fn duration(&self) -> Duration;
    /// Runs the scenario to its end.
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a>;
}

/// The executor of one scenario, chosen by its `executor` field.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecutorConfig {
    /// `shared-iterations`
    SharedIterations(shared_iterations::Config),
    /// `per-vu-iterations`
    PerVuIterations(per_vu_iterations::Config),
    /// `constant-vus`
    ConstantVus(constant_vus::Config),
    /// `ramping-vus`
    RampingVus(ramping_vus::Config),
    /// `constant-arrival-rate`
    ConstantArrivalRate(constant_arrival_rate::Config),
    /// `ramping-arrival-rate`
    RampingArrivalRate(ramping_arrival_rate::Config),
    /// `externally-controlled`
    ExternallyControlled(externally_controlled::Config),
}

/// k6's executor names, in the order k6 documents them.
pub const EXECUTOR_NAMES: &[&str] = &[
    "shared-iterations",
    "per-vu-iterations",
    "constant-vus",
    "ramping-vus",
    "constant-arrival-rate",
    "ramping-arrival-rate",
    "externally-controlled",
];

impl ExecutorConfig {
    /// Reads a scenario object: the executor, its options and the base options.
    /// Problems are recorded in the object's report; `None` when unusable.
    pub fn parse(obj: Obj) -> Option<(BaseConfig, ExecutorConfig)> {
        let Some(kind) = obj.string("executor") else {
            if !obj.has("executor") {
                obj.error("executor", format!("is required (one of: {})", EXECUTOR_NAMES.join(", ")));
            }
            return None;
        };
        let mut base = BaseConfig::parse(&obj);
        if kind == "externally-controlled" {
            // As in k6: it has no gracefulStop; iterations still running at
            // the end are interrupted.
            if obj.has("gracefulStop") {
                obj.error("gracefulStop", "is not supported by the externally-controlled executor");
            }
            base.graceful_stop = Duration::ZERO;
        }
        let (config, fields) = match kind.as_str() {
            "shared-iterations" => {
                (shared_iterations::Config::parse(&obj).map(Self::SharedIterations), shared_iterations::FIELDS)
            }
            "per-vu-iterations" => {
                (per_vu_iterations::Config::parse(&obj).map(Self::PerVuIterations), per_vu_iterations::FIELDS)
            }
            "constant-vus" => (constant_vus::Config::parse(&obj).map(Self::ConstantVus), constant_vus::FIELDS),
            "ramping-vus" => (ramping_vus::Config::parse(&obj).map(Self::RampingVus), ramping_vus::FIELDS),
            "constant-arrival-rate" => (
                constant_arrival_rate::Config::parse(&obj).map(Self::ConstantArrivalRate),
                constant_arrival_rate::FIELDS,
            ),
            "ramping-arrival-rate" => {
                (ramping_arrival_rate::Config::parse(&obj).map(Self::RampingArrivalRate), ramping_arrival_rate::FIELDS)
            }
            "externally-controlled" => (
                externally_controlled::Config::parse(&obj).map(Self::ExternallyControlled),
                externally_controlled::FIELDS,
            ),
            other => {
                let hint = match closest(other, EXECUTOR_NAMES) {
                    Some(s) => format!(" (did you mean \"{s}\"?)"),
                    None => format!(" (expected one of: {})", EXECUTOR_NAMES.join(", ")),
                };
                obj.error("executor", format!("unknown executor \"{other}\"{hint}"));
                return None;
            }
        };
        let known: Vec<&str> = BASE_FIELDS.iter().chain(fields.iter()).copied().collect();
        obj.finish_with(&known);
        config.map(|c| (base, c))
    }

    /// The executor behind the config.
    pub fn executor(&self) -> &dyn Executor {
        match self {
            Self::SharedIterations(c) => c,
            Self::PerVuIterations(c) => c,
            Self::ConstantVus(c) => c,
            Self::RampingVus(c) => c,
            Self::ConstantArrivalRate(c) => c,
            Self::RampingArrivalRate(c) => c,
            Self::ExternallyControlled(c) => c,
        }
    }

    /// This generator's part of the scenario when the test is split into
    /// execution segments, with k6's arithmetic: VU counts and iteration
    /// totals are scaled by the share; ramps and arrival schedules keep the
    /// whole test's timing and run only the VUs and iteration indices the
    /// share owns, so the segments of a sequence together run the unsplit
    /// scenario exactly. As in k6, shared-iterations splits its iterations
    /// the way its VUs were split, and the arrival-rate executors their
    /// arrivals the way `maxVUs` was split, so a segment without a VU gets no
    /// work instead of work it can only drop.
    pub fn segmented(&self, share: &Share) -> ExecutorConfig {
        if share.is_full() {
            return self.clone();
        }
        let scale = |n: u64| share.scale(n);
        match self {
            Self::SharedIterations(c) => {
                let iterations = share.rescaled(c.vus).map_or(0, |s| s.scale(c.iterations));
                Self::SharedIterations(shared_iterations::Config { vus: scale(c.vus), iterations, ..c.clone() })
            }
            Self::PerVuIterations(c) => {
                Self::PerVuIterations(per_vu_iterations::Config { vus: scale(c.vus), ..c.clone() })
            }
            Self::ConstantVus(c) => Self::ConstantVus(constant_vus::Config { vus: scale(c.vus), ..c.clone() }),
            Self::RampingVus(c) => Self::RampingVus(ramping_vus::Config { share: share.clone(), ..c.clone() }),
            Self::ConstantArrivalRate(c) => Self::ConstantArrivalRate(constant_arrival_rate::Config {
                pre_allocated_vus: scale(c.pre_allocated_vus),
                max_vus: scale(c.max_vus),
                share: share.rescaled(c.max_vus),
                ..c.clone()
            }),
            Self::RampingArrivalRate(c) => Self::RampingArrivalRate(ramping_arrival_rate::Config {
                pre_allocated_vus: scale(c.pre_allocated_vus),
                max_vus: scale(c.max_vus),
                share: share.rescaled(c.max_vus),
                ..c.clone()
            }),
            Self::ExternallyControlled(c) => Self::ExternallyControlled(externally_controlled::Config {
                vus: scale(c.vus),
                max_vus: scale(c.max_vus),
                ..c.clone()
            }),
        }
    }

    /// True for the open-model (arrival-rate) executors.
    pub fn is_open_model(&self) -> bool {
        matches!(self, Self::ConstantArrivalRate(_) | Self::RampingArrivalRate(_))
    }
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod split_tests;
