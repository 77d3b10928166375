//! `constant-vus`: a fixed number of VUs loop for a duration (closed model).

use super::{Executor, RunFuture};
use crate::config::duration::format_duration;
use crate::config::reader::Obj;
use crate::engine::ScenarioRun;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Fields of constant-vus.
pub const FIELDS: &[&str] = &["vus", "duration"];

/// `constant-vus` options.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// VUs (default 1).
    pub vus: u64,
    /// How long they loop.
    pub duration: Duration,
}

impl Config {
    /// Reads the options.
    pub fn parse(obj: &Obj) -> Option<Config> {
        let vus = obj.uint("vus", 1);
        let duration = obj.require("duration").and(obj.duration("duration"));
        if duration.is_some_and(|d| d.is_zero()) {
            obj.error("duration", "must be greater than 0");
            return None;
        }
        Some(Config { vus: if obj.has("vus") { vus? } else { 1 }, duration: duration? })
    }
}

impl Executor for Config {
    fn kind(&self) -> &'static str {
        "constant-vus"
    }
    fn describe(&self) -> String {
        format!("{} looping VUs for {}", self.vus, format_duration(self.duration))
    }
    fn max_vus(&self) -> u64 {
        self.vus
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

/// Starts `vus` VUs spread over the VU threads, each iterating while
/// `more(vu_index)` allows and the scenario has not stopped, and waits for
/// all of them (closed model).
pub async fn loop_vus(run: &Arc<ScenarioRun>, vus: u64, more: impl Fn(u64) -> bool + Send + Sync + Clone + 'static) {
    let tasks = TaskTracker::new();
    for index in 0..vus {
        let (run2, more) = (run.clone(), more.clone());
        tasks.spawn_on(
            async move {
                let run = run2;
                let mut vu = run.new_vu();
                let _active = run.active();
                while !run.stop_new.is_cancelled() && more(index) {
                    if !run.iterate(&mut vu).await {
                        break;
                    }
                    tokio::task::consume_budget().await;
                }
            },
            run.shards.handle(index as usize),
        );
    }
    tasks.close();
    tasks.wait().await;
}
