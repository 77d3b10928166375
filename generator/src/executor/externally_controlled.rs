//! `externally-controlled`: VUs loop at a count that an operator changes
//! while the test runs (`volley scale`, `volley pause`, the control API; see
//! [`crate::control`]), between 0 and `maxVUs`. Like k6's, it has no
//! `gracefulStop`: iterations still running at `duration` are interrupted.
//! A VU taken away by a scale-down or a pause ends its current iteration
//! first; a VU is allocated the first time it is asked for, so a scenario
//! that never scales up never builds its spare VUs.

use super::constant_vus::loop_vus;
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::control::Targets;
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
            match run.live().and_then(|l| l.targets(&run.name)) {
                Some(targets) => {
                    let tasks = tokio_util::task::TaskTracker::new();
                    for index in 0..self.max_vus {
                        let vu = vu_loop(
                            run.clone(),
                            index,
                            Targets { vus: targets.vus.clone(), paused: targets.paused.clone() },
                        );
                        tasks.spawn_on(vu, run.shards.handle(index as usize));
                    }
                    tasks.close();
                    tasks.wait().await;
                }
                // Without live control (a plan run outside the engine),
                // the configured VUs for the duration.
                None => loop_vus(&run, self.vus, |_| true).await,
            }
        })
    }
}

/// VU `index` iterates while it is among the VUs asked for and not paused,
/// and waits otherwise, until the scenario ends.
async fn vu_loop(run: Arc<ScenarioRun>, index: u64, mut t: Targets) {
    let mut vu = None;
    loop {
        loop {
            if run.stop_new.is_cancelled() {
                return;
            }
            if index < *t.vus.borrow_and_update() && !*t.paused.borrow_and_update() {
                break;
            }
            tokio::select! {
                r = t.vus.changed() => if r.is_err() { return },
                r = t.paused.changed() => if r.is_err() { return },
                _ = run.stop_new.cancelled() => return,
            }
        }
        let vu = vu.get_or_insert_with(|| run.new_vu());
        let _active = run.active();
        while !run.stop_new.is_cancelled() && index < *t.vus.borrow() && !*t.paused.borrow() {
            if !run.iterate(vu).await {
                return;
            }
            tokio::task::consume_budget().await;
        }
    }
}
