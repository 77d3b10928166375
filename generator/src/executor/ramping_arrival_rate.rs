//! `ramping-arrival-rate`: the start rate follows stages (open model).

use super::arrivals::{run_open, Stripe};
use super::constant_arrival_rate::{parse_time_unit, parse_vus};
use super::segment::Share;
use super::stages::{parse_stages, total_duration, RampingArrivals, Stage};
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::Arc;
use std::time::Duration;

/// Fields of ramping-arrival-rate.
pub const FIELDS: &[&str] = &["startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"];

/// `ramping-arrival-rate` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Iterations per `time_unit` at the start (default 0).
    pub start_rate: u64,
    /// The period rates refer to (default 1s).
    pub time_unit: Duration,
    /// Rate targets.
    pub stages: Vec<Stage>,
    /// VUs initialised before the start.
    pub pre_allocated_vus: u64,
    /// Upper bound on VUs (default: `preAllocatedVUs`).
    pub max_vus: u64,
    /// The iteration indices this generator starts: all of them unless the
    /// test is split into execution segments; `None` when its segment has
    /// no VU for this scenario and so starts nothing (as in k6).
    pub share: Option<Share>,
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let start_rate = if obj.has("startRate") { obj.uint("startRate", 0) } else { Some(0) };
        let time_unit = parse_time_unit(obj);
        let stages = parse_stages(obj);
        let vus = parse_vus(obj);
        let (start_rate, time_unit, stages) = (start_rate?, time_unit?, stages?);
        if total_duration(&stages).is_zero() {
            obj.error("stages", "must last longer than 0s in total");
            return None;
        }
        if start_rate == 0 && stages.iter().all(|s| s.target == 0) {
            obj.error("stages", "never start an iteration: startRate and every target are 0");
            return None;
        }
        let (pre_allocated_vus, max_vus) = vus?;
        Some(Config { start_rate, time_unit, stages, pre_allocated_vus, max_vus, share: Some(Share::full()) })
    }
}

impl Config {
    /// Start offsets of the iterations shard `shard` of `shards` starts: the
    /// whole test's i-th start comes when the area under the rate curve
    /// reaches i+1, and this generator starts the indices its share owns,
    /// dealt round-robin to the shards. Ends with the stages.
    pub fn schedule(&self, shard: usize, shards: usize) -> Stripe {
        let mut plan = RampingArrivals::new(self.start_rate, self.time_unit, &self.stages);
        let Some(share) = &self.share else { return Box::new(std::iter::empty()) };
        Box::new(share.indices().skip(shard).step_by(shards).map_while(move |i| plan.at(i)))
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "ramping-arrival-rate"
    }
    fn describe(&self) -> String {
        let peak = self.stages.iter().map(|s| s.target).fold(self.start_rate, u64::max);
        format!(
            "Up to {:.2} iterations/s for {} over {} stages (maxVUs: {}-{})",
            peak as f64 / self.time_unit.as_secs_f64()
                * self.share.as_ref().map_or(0.0, |s| s.segment().length().as_f64()),
            format_duration(self.duration()),
            self.stages.len(),
            self.pre_allocated_vus,
            self.max_vus
        )
    }
    fn max_vus(&self) -> u64 {
        self.max_vus
    }
    fn duration(&self) -> Duration {
        total_duration(&self.stages)
    }
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a> {
        let plan = self.clone();
        let stripe = move |shard: usize, shards: usize| plan.schedule(shard, shards);
        Box::pin(run_open(run, stripe, self.duration(), self.pre_allocated_vus, self.max_vus))
    }
}
