//! What an executor gets to run one scenario: VUs, the iteration runner,
//! the scenario's metric series and its two stop signals.

use super::shards::{ShardedCounter, Shards};
use crate::config::local_ips::IpPool;
use crate::executor::BaseConfig;
use crate::flow::{FlowDef, FlowScenario, FlowVu, IterCtx, VuIdentity};
use crate::metrics::builtin::{DROPPED_ITERATIONS, ITERATIONS, ITERATION_DURATION, ITERATION_START_LAG};
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use volley_window::Tags;

/// A virtual user: an id and its flow state.
pub struct Vu {
    /// Global VU number, from 1 (k6's `__VU`).
    pub id: u64,
    /// Iterations this VU started in the scenario (k6's `__ITER` of the next).
    pub iterations: u64,
    state: FlowVu,
}

/// Live counters of a scenario, read by the progress display and windows.
/// The hot ones are sharded so VU threads never contend on them.
#[derive(Default)]
pub struct ScenarioStats {
    /// VUs currently inside an iteration (or a closed-model loop).
    pub active: ShardedCounter,
    /// VUs allocated so far.
    pub allocated: AtomicU64,
    /// Iterations that ran to the end.
    pub completed: ShardedCounter,
    /// Iterations cut off by a stop.
    pub interrupted: ShardedCounter,
    /// Arrival-rate iterations not started for want of a VU.
    pub dropped: ShardedCounter,
    /// Set when the executor returned.
    pub finished: AtomicBool,
}

/// One scenario in a running test.
pub struct ScenarioRun {
    /// Scenario name.
    pub name: String,
    /// The executor-independent options.
    pub base: BaseConfig,
    /// The flow each iteration runs.
    pub flow: Arc<FlowDef>,
    /// What the scenario's VUs share for their flow.
    pub flow_scenario: FlowScenario,
    /// The run's metric store.
    pub metrics: Metrics,
    /// Tags on every series of the scenario (test tags, scenario tags, `scenario`).
    pub tags: Tags,
    /// Template environment.
    pub env: HashMap<String, String>,
    /// "Start nothing new": the scenario's regular end, or a test stop.
    pub stop_new: CancellationToken,
    /// "Interrupt now": end of `gracefulStop`, or a hard test stop.
    pub interrupt: CancellationToken,
    /// Live counters.
    pub stats: ScenarioStats,
    /// The VU threads.
    pub shards: Arc<Shards>,
    /// Where the first failed iteration is reported.
    console: Option<crate::console::Console>,
    /// Set once a failed iteration was reported: later ones are counted by
    /// their flow's metrics, not logged, so a failing target cannot flood
    /// the terminal.
    error_reported: AtomicBool,
    series: Series,
    vu_ids: Arc<AtomicU64>,
    /// `--local-ips` and the VU number before this process's first VU.
    local_ips: Option<(Arc<IpPool>, u64)>,
    started: OnceLock<Instant>,
    live: Option<Arc<crate::control::Live>>,
}

#[derive(Clone, Copy)]
struct Series {
    iterations: SeriesId,
    iteration_duration: SeriesId,
    dropped: SeriesId,
    start_lag: SeriesId,
}

/// Aborts the scenario's deadline timer when the scenario ends early.
pub struct DeadlineGuard(tokio::task::JoinHandle<()>);

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ScenarioRun {
    /// Prepares a scenario; its stop signals are children of the test's.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        base: BaseConfig,
        flow: Arc<FlowDef>,
        max_vus: u64,
        metrics: Metrics,
        test_tags: &Tags,
        env: HashMap<String, String>,
        vu_ids: Arc<AtomicU64>,
        shards: Arc<Shards>,
        test_stop_new: &CancellationToken,
        test_interrupt: &CancellationToken,
    ) -> Self {
        let mut tags = test_tags.clone();
        for (k, v) in base.tags.iter() {
            tags.insert(k, v);
        }
        tags.insert("scenario", name.clone());
        let series = Series {
            iterations: metrics.series(ITERATIONS, tags.clone()),
            iteration_duration: metrics.series(ITERATION_DURATION, tags.clone()),
            dropped: metrics.series(DROPPED_ITERATIONS, tags.clone()),
            start_lag: metrics.series(ITERATION_START_LAG, tags.clone()),
        };
        let flow_scenario = flow.new_scenario(max_vus, &tags, &metrics);
        Self {
            name,
            base,
            flow,
            flow_scenario,
            metrics,
            tags,
            env,
            stop_new: test_stop_new.child_token(),
            interrupt: test_interrupt.child_token(),
            stats: ScenarioStats::default(),
            shards,
            console: None,
            error_reported: AtomicBool::new(false),
            series,
            vu_ids,
            local_ips: None,
            started: OnceLock::new(),
            live: None,
        }
    }

    /// Lets the externally-controlled executor follow the control API.
    pub fn with_live(mut self, live: Arc<crate::control::Live>) -> Self {
        self.live = Some(live);
        self
    }

    /// The run's live control, if any.
    pub fn live(&self) -> Option<&Arc<crate::control::Live>> {
        self.live.as_ref()
    }

    /// Reports the scenario's first failed iteration on `console`.
    pub fn with_console(mut self, console: crate::console::Console) -> Self {
        self.console = Some(console);
        self
    }

    /// Gives the VUs source addresses from `pool` (`--local-ips`): this
    /// process's n-th VU (global number `vu_offset + n`) takes address
    /// `(n - 1) % len`, as k6 assigns them by local VU id.
    pub fn with_local_ips(mut self, pool: Arc<IpPool>, vu_offset: u64) -> Self {
        self.local_ips = Some((pool, vu_offset));
        self
    }

    /// A new VU with a fresh global id and flow state.
    pub fn new_vu(&self) -> Vu {
        let index = self.stats.allocated.fetch_add(1, Ordering::Relaxed);
        let id = self.vu_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let local = self.local_ips.as_ref().map(|(pool, offset)| pool.for_vu(id.saturating_sub(offset + 1)));
        let who = VuIdentity { number: id, index, local };
        let state = self.flow.new_vu(&self.flow_scenario, who, &self.tags, &self.metrics);
        Vu { id, iterations: 0, state }
    }

    /// Marks the scenario's start and arms its stops: nothing new after
    /// `duration`, interrupt after `duration + gracefulStop`.
    pub fn begin(self: &Arc<Self>, duration: Duration) -> DeadlineGuard {
        let start = *self.started.get_or_init(Instant::now);
        let run = self.clone();
        let grace = self.base.graceful_stop;
        DeadlineGuard(tokio::spawn(async move {
            let start = tokio::time::Instant::from_std(start);
            tokio::select! {
                _ = tokio::time::sleep_until(start + duration) => run.stop_new.cancel(),
                _ = run.stop_new.cancelled() => {}
            }
            tokio::time::sleep_until((start + duration + grace).max(tokio::time::Instant::now() + grace)).await;
            run.interrupt.cancel();
        }))
    }

    /// When the scenario began (after its `startTime`).
    pub fn started_at(&self) -> Option<Instant> {
        self.started.get().copied()
    }

    /// Runs one iteration unless interrupted; false when it was cut off
    /// (the VU stops).
    pub async fn iterate(&self, vu: &mut Vu) -> bool {
        self.iterate_until(vu, std::future::pending()).await
    }

    /// Runs one iteration, cut off by the scenario interrupt or by `cut`
    /// (ramping-vus uses it for `gracefulRampDown`); false when it was cut
    /// off. An iteration the flow gave up on counts as interrupted but is
    /// not cut off.
    pub async fn iterate_until(&self, vu: &mut Vu, cut: impl Future<Output = ()>) -> bool {
        let start = Instant::now();
        let ctx = IterCtx {
            vu: vu.id,
            iter: vu.iterations,
            scenario: &self.name,
            env: &self.env,
            stopping: Some(&self.stop_new),
            tokens: &[],
        };
        vu.iterations += 1;
        // The flow is polled first so an iteration that is ready at once
        // never registers with the stop signals.
        // `None`: cut off; `Some(false)`: the flow gave up on the iteration
        // (counted as interrupted, as k6 counts an iteration that threw;
        // the VU goes on).
        let outcome = tokio::select! {
            biased;
            r = self.flow.iterate(&mut vu.state, &ctx) => Some(match r {
                Ok(()) => true,
                Err(e) => {
                    self.report_error(&e);
                    false
                }
            }),
            _ = self.interrupt.cancelled() => None,
            _ = cut => None,
        };
        if outcome == Some(true) {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let s = self.series;
            self.metrics.batch(|shard| {
                shard.add(s.iterations, 1.0);
                shard.trend(s.iteration_duration, ms);
            });
            self.stats.completed.add(1);
        } else {
            self.stats.interrupted.add(1);
        }
        outcome.is_some()
    }

    fn report_error(&self, e: &crate::flow::FlowError) {
        if let Some(console) = &self.console {
            if !self.error_reported.swap(true, Ordering::Relaxed) {
                console.warn(&format!(
                    "scenario {}: an iteration failed: {e} (further failures are counted in the metrics, not logged)",
                    self.name
                ));
            }
        }
    }

    /// Records the flow's end-of-scenario metrics; call once every VU ended.
    pub fn finish_flow(&self) {
        self.flow.finish(&self.flow_scenario);
    }

    /// Records an open-model iteration's start lag.
    pub fn record_lag(&self, lag: Duration) {
        self.metrics.trend(self.series.start_lag, lag.as_secs_f64() * 1e3);
    }

    /// Counts an iteration that was due but had no VU.
    pub fn drop_iteration(&self) {
        self.stats.dropped.add(1);
        self.metrics.add(self.series.dropped, 1.0);
    }

    /// Marks a VU busy until the guard drops.
    pub fn active(&self) -> ActiveGuard<'_> {
        self.stats.active.add(1);
        ActiveGuard(&self.stats.active)
    }
}

/// Decrements the active-VU count on drop.
pub struct ActiveGuard<'a>(&'a ShardedCounter);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}
