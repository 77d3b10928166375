//! `shared-iterations`: VUs take iterations from one shared pool.

use super::constant_vus::loop_vus;
use super::per_vu_iterations::DEFAULT_MAX_DURATION;
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Fields of shared-iterations.
pub const FIELDS: &[&str] = &["vus", "iterations", "maxDuration"];

/// `shared-iterations` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// VUs (default 1).
    pub vus: u64,
    /// Iterations shared by all VUs (default 1).
    pub iterations: u64,
    /// Upper bound on the scenario's length (default 10m).
    pub max_duration: Duration,
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let vus = if obj.has("vus") { obj.uint("vus", 1) } else { Some(1) };
        let iterations = if obj.has("iterations") { obj.uint("iterations", 1) } else { Some(1) };
        let max_duration = obj.duration("maxDuration").unwrap_or(DEFAULT_MAX_DURATION);
        if max_duration.is_zero() {
            obj.error("maxDuration", "must be greater than 0");
        }
        let (vus, iterations) = (vus?, iterations?);
        if vus > iterations {
            obj.error(
                "vus",
                format!("must not be more than iterations ({vus} > {iterations}): the extra VUs would never run"),
            );
            return None;
        }
        Some(Config { vus, iterations, max_duration })
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "shared-iterations"
    }
    fn describe(&self) -> String {
        format!(
            "{} iterations shared among {} VUs (maxDuration: {})",
            self.iterations,
            self.vus,
            format_duration(self.max_duration)
        )
    }
    fn max_vus(&self) -> u64 {
        self.vus
    }
    fn duration(&self) -> Duration {
        self.max_duration
    }
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a> {
        Box::pin(async move {
            let _deadline = run.begin(self.max_duration);
            let taken = Arc::new(AtomicU64::new(0));
            let limit = self.iterations;
            loop_vus(&run, self.vus, move |_| taken.fetch_add(1, Ordering::Relaxed) < limit).await;
        })
    }
}
