//! `ramping-vus`: the VU count follows stages (closed model).
//!
//! The plan ([`super::stages::vu_steps`]) is computed up front; a controller
//! walks it on absolute offsets and publishes the target VU count. VU `i`
//! iterates while `i < target`; when a ramp-down leaves it out, its running
//! iteration may finish within `gracefulRampDown`, then it is interrupted.

use super::segment::Share;
use super::stages::{max_planned_vus, parse_stages, total_duration, vu_steps, Stage, VuStep};
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// Fields of ramping-vus.
pub const FIELDS: &[&str] = &["startVUs", "stages", "gracefulRampDown"];

/// k6's default `gracefulRampDown`.
pub const DEFAULT_GRACEFUL_RAMP_DOWN: Duration = Duration::from_secs(30);

/// `ramping-vus` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// VUs at the start (default 1).
    pub start_vus: u64,
    /// The ramp.
    pub stages: Vec<Stage>,
    /// How long a VU removed by a ramp-down may finish its iteration.
    pub graceful_ramp_down: Duration,
    /// The VUs of the whole test's ramp this generator runs (all of them
    /// unless the test is split into execution segments).
    pub share: Share,
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let start_vus = if obj.has("startVUs") { obj.uint("startVUs", 0) } else { Some(1) };
        let stages = parse_stages(obj);
        let graceful_ramp_down = obj.duration("gracefulRampDown").unwrap_or(DEFAULT_GRACEFUL_RAMP_DOWN);
        let (start_vus, stages) = (start_vus?, stages?);
        if max_planned_vus(start_vus, &stages) == 0 {
            obj.error("stages", "never reach a VU: startVUs and every target are 0");
            return None;
        }
        if total_duration(&stages).is_zero() {
            obj.error("stages", "must last longer than 0s in total");
            return None;
        }
        Some(Config { start_vus, stages, graceful_ramp_down, share: Share::full() })
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "ramping-vus"
    }
    fn describe(&self) -> String {
        format!(
            "Up to {} looping VUs for {} over {} stages (gracefulRampDown: {})",
            self.max_vus(),
            format_duration(self.duration()),
            self.stages.len(),
            format_duration(self.graceful_ramp_down)
        )
    }
    fn max_vus(&self) -> u64 {
        self.share.scale(max_planned_vus(self.start_vus, &self.stages))
    }
    fn duration(&self) -> Duration {
        total_duration(&self.stages)
    }
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a> {
        Box::pin(async move {
            let plan = self.plan();
            let (target_tx, target_rx) = watch::channel(plan[0].vus);
            let _deadline = run.begin(self.duration());
            let start = tokio::time::Instant::from_std(run.started_at().expect("begun"));

            let controller = {
                let run = run.clone();
                tokio::spawn(async move {
                    for step in plan.iter().skip(1) {
                        tokio::select! {
                            _ = tokio::time::sleep_until(start + step.at) => { target_tx.send_replace(step.vus); }
                            _ = run.stop_new.cancelled() => break,
                        }
                    }
                    run.stop_new.cancelled().await;
                    // Ending the scenario is not a ramp-down: gracefulStop applies.
                })
            };

            let tasks = TaskTracker::new();
            for index in 0..self.max_vus() {
                let vu = vu_loop(run.clone(), index, target_rx.clone(), self.graceful_ramp_down);
                tasks.spawn_on(vu, run.shards.handle(index as usize));
            }
            tasks.close();
            tasks.wait().await;
            controller.abort();
        })
    }
}

impl Config {
    /// The planned VU count of this generator over time: the whole test's
    /// ramp, with each count replaced by this share's part of it. The whole
    /// test's VU number v belongs to one segment, which runs a VU while the
    /// ramp is above v, so at every instant the segments' counts add up to
    /// the unsplit count.
    pub fn plan(&self) -> Vec<VuStep> {
        let mut steps: Vec<VuStep> = Vec::new();
        for step in vu_steps(self.start_vus, &self.stages) {
            let vus = self.share.scale(step.vus);
            if steps.last().is_none_or(|last| last.vus != vus) {
                steps.push(VuStep { at: step.at, vus });
            }
        }
        steps
    }
}

/// One VU of a ramping-vus scenario.
async fn vu_loop(run: Arc<ScenarioRun>, index: u64, mut target: watch::Receiver<u64>, ramp_down: Duration) {
    let mut vu = None;
    loop {
        // Wait until the plan includes this VU.
        while index >= *target.borrow_and_update() {
            tokio::select! {
                changed = target.changed() => if changed.is_err() { return },
                _ = run.stop_new.cancelled() => return,
            }
        }
        if run.stop_new.is_cancelled() {
            return;
        }
        let vu = vu.get_or_insert_with(|| run.new_vu());
        let _active = run.active();
        while !run.stop_new.is_cancelled() && index < *target.borrow() {
            let cut = removed_then_grace(target.clone(), index, ramp_down);
            if !run.iterate_until(vu, cut).await && run.interrupt.is_cancelled() {
                return;
            }
            tokio::task::consume_budget().await;
        }
    }
}

/// Resolves `grace` after the target first drops to `index` or below; the
/// clock restarts only if the VU is ramped up again in between.
async fn removed_then_grace(mut target: watch::Receiver<u64>, index: u64, grace: Duration) {
    let mut deadline = None;
    loop {
        if index < *target.borrow_and_update() {
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + grace);
        }
        match deadline {
            None => {
                if target.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
            Some(at) => tokio::select! {
                _ = tokio::time::sleep_until(at) => return,
                changed = target.changed() => if changed.is_err() {
                    tokio::time::sleep_until(at).await;
                    return;
                },
            },
        }
    }
}
