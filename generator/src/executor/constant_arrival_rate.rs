//! `constant-arrival-rate`: `rate` iterations per `timeUnit`, spread evenly
//! (open model).

use super::arrivals::{run_open, Stripe};
use super::segment::Share;
use super::stages::constant_arrival_offset;
use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::Arc;
use std::time::Duration;

/// Fields of constant-arrival-rate.
pub const FIELDS: &[&str] = &["rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"];

/// `constant-arrival-rate` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Iterations per `time_unit`.
    pub rate: u64,
    /// The period `rate` refers to (default 1s).
    pub time_unit: Duration,
    /// How long iterations are started.
    pub duration: Duration,
    /// VUs initialised before the start.
    pub pre_allocated_vus: u64,
    /// Upper bound on VUs (default: `preAllocatedVUs`).
    pub max_vus: u64,
    /// The iteration indices this generator starts: all of them unless the
    /// test is split into execution segments; `None` when its segment has
    /// no VU for this scenario and so starts nothing (as in k6).
    pub share: Option<Share>,
}

/// Reads `preAllocatedVUs` and `maxVUs` and checks them against each other.
pub fn parse_vus(obj: &Obj) -> Option<(u64, u64)> {
    let pre = obj.require("preAllocatedVUs").and(obj.uint("preAllocatedVUs", 0));
    let max = obj.uint("maxVUs", 0);
    let pre = pre?;
    let max = match max {
        Some(m) if m < pre => {
            obj.error("maxVUs", format!("must not be less than preAllocatedVUs ({m} < {pre})"));
            return None;
        }
        Some(m) => m,
        None if obj.has("maxVUs") => return None,
        None => pre,
    };
    if max == 0 {
        obj.error("preAllocatedVUs", "must be greater than 0 (or set maxVUs above 0)");
        return None;
    }
    Some((pre, max))
}

/// Reads `timeUnit` (default 1s, must be positive).
pub fn parse_time_unit(obj: &Obj) -> Option<Duration> {
    let unit = obj.duration("timeUnit");
    match unit {
        Some(u) if u.is_zero() => {
            obj.error("timeUnit", "must be greater than 0");
            None
        }
        Some(u) => Some(u),
        None if obj.has("timeUnit") => None,
        None => Some(Duration::from_secs(1)),
    }
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let rate = obj.require("rate").and(obj.uint("rate", 1));
        let time_unit = parse_time_unit(obj);
        let duration = obj.require("duration").and(obj.duration("duration"));
        if duration.is_some_and(|d| d.is_zero()) {
            obj.error("duration", "must be greater than 0");
        }
        let vus = parse_vus(obj);
        let (pre_allocated_vus, max_vus) = vus?;
        Some(Config {
            rate: rate?,
            time_unit: time_unit?,
            duration: duration.filter(|d| !d.is_zero())?,
            pre_allocated_vus,
            max_vus,
            share: Some(Share::full()),
        })
    }
}

impl Config {
    /// Start offsets of the iterations shard `shard` of `shards` starts:
    /// iteration i of the whole test starts at i·timeUnit/rate, and this
    /// generator starts the indices its share owns, dealt round-robin to the
    /// shards. Without end: the dispatcher stops at the duration.
    pub fn schedule(&self, shard: usize, shards: usize) -> Stripe {
        let (rate, unit) = (self.rate, self.time_unit);
        let Some(share) = &self.share else { return Box::new(std::iter::empty()) };
        Box::new(share.indices().skip(shard).step_by(shards).map(move |i| constant_arrival_offset(i, rate, unit)))
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "constant-arrival-rate"
    }
    fn describe(&self) -> String {
        let rate = self.rate as f64 / self.time_unit.as_secs_f64()
            * self.share.as_ref().map_or(0.0, |s| s.segment().length().as_f64());
        format!(
            "{:.2} iterations/s for {} (maxVUs: {}-{})",
            rate,
            format_duration(self.duration),
            self.pre_allocated_vus,
            self.max_vus
        )
    }
    fn max_vus(&self) -> u64 {
        self.max_vus
    }
    fn duration(&self) -> Duration {
        self.duration
    }
    fn run<'a>(&'a self, run: Arc<ScenarioRun>) -> RunFuture<'a> {
        let plan = self.clone();
        let stripe = move |shard: usize, shards: usize| plan.schedule(shard, shards);
        Box::pin(run_open(run, stripe, self.duration, self.pre_allocated_vus, self.max_vus))
    }
}
