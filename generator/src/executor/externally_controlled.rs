//! `externally-controlled`: VUs loop at a count that can be changed while the
//! test runs. Like k6's, it has no `gracefulStop`: iterations still running at
//! `duration` are interrupted. The control API (pause, resume, scale up to `maxVUs`) is not
//! built yet; until then the scenario runs `vus` VUs for `duration`.

use super::constant_vus::loop_vus;
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::Arc;
use std::time::Duration;

/// Fields of externally-controlled.
pub const FIELDS: &[&str] = &["vus", "maxVUs", "duration"];

/// `externally-controlled` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// VUs at the start (default 1).
    pub vus: u64,
    /// Upper bound the control API may scale to (default: `vus`).
    pub max_vus: u64,
    /// How long the scenario runs.
    pub duration: Duration,
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let vus = if obj.has("vus") { obj.uint("vus", 0) } else { Some(1) };
        let max_vus = obj.uint("maxVUs", 0);
        let duration = obj.require("duration").and(obj.duration("duration"));
        if duration.is_some_and(|d| d.is_zero()) {
            obj.error("duration", "must be greater than 0");
            return None;
        }
        let vus = vus?;
        let max_vus = match max_vus {
            Some(m) if m < vus => {
                obj.error("maxVUs", format!("must not be less than vus ({m} < {vus})"));
                return None;
            }
            Some(m) => m,
            None if obj.has("maxVUs") => return None,
            None => vus,
        };
        Some(Config { vus, max_vus, duration: duration? })
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "externally-controlled"
    }
    fn describe(&self) -> String {
        format!("{}/{} VUs for {} (externally controlled)", self.vus, self.max_vus, format_duration(self.duration))
    }
    fn max_vus(&self) -> u64 {
        self.max_vus
    }
    fn duration(&self) -> Duration {
        self.duration
    }
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a> {
        Box::pin(async move {
            let _deadline = run.begin(self.duration);
            loop_vus(&run, self.vus, |_| true).await;
        })
    }
}
