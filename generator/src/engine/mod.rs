//! Runs a [`TestPlan`]: scenarios on their executors, the window clock, the
//! run totals and the stop logic (end of schedule, Ctrl-C, `abortOnFail`).
//!
//! # Layout
//! - [`scenario`]: [`ScenarioRun`], what an executor drives (VUs, the
//!   iteration runner, stop signals, per-scenario series).
//! - [`window`]: the window clock producing [`volley_window::WindowReport`]s,
//!   and its task.
//! - [`fold`]: what happens to each closed window (totals, thresholds,
//!   aborts, the outputs' tap).
//! - `build`: the scenario runs of a plan.
//! - [`shards`]: the VU threads.
//! - [`health`]: RSS and CPU of the generator itself.
//! - this file: the run, step by step.

mod build;
pub mod fold;
pub mod health;
pub mod scenario;
pub mod shards;
pub mod window;

pub use scenario::{ScenarioRun, Vu};

use crate::config::TestPlan;
use crate::console::Console;
use crate::metrics::builtin::{VUS, VUS_MAX};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::summary::totals::RunTotals;
use crate::threshold::{Judge, Outcome};
use fold::WindowFold;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_window::{Tags, WindowReport};
use window::WindowClock;

/// How a run is carried out (not what it runs).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Window length (default 1 s).
    pub window: Duration,
    /// Series per metric before folding into the overflow series.
    pub series_cap: usize,
    /// Test run id stamped on every window.
    pub test_id: String,
    /// This generator's id.
    pub generator_id: String,
    /// VU threads (default: one per core).
    pub threads: usize,
    /// Receives every closed window (the embedded exporter pipeline).
    pub on_window: Option<WindowTap>,
    /// The exporter judges the thresholds on the fleet's merged data and
    /// decides aborts: this generator's own share does not abort the test.
    pub fleet_thresholds: bool,
    /// Live control (the control API, the exporter's fleet commands); a
    /// run without one builds its own, which nobody commands.
    pub live: Option<Arc<crate::control::Live>>,
    /// Added to this process's clock to stamp windows: the offset to the
    /// exporter's clock (see [`crate::clock`]), 0 without one.
    pub clock_offset_ms: i64,
}

/// A consumer of closed windows. It runs on the window clock's task, so it
/// must not block: the exporter pipeline only merges and queues.
#[derive(Clone)]
pub struct WindowTap(pub Arc<dyn Fn(WindowReport) + Send + Sync>);

impl std::fmt::Debug for WindowTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowTap")
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(1),
            series_cap: crate::metrics::registry::DEFAULT_SERIES_CAP,
            test_id: default_test_id(),
            generator_id: default_generator_id(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            on_window: None,
            fleet_thresholds: false,
            live: None,
            clock_offset_ms: 0,
        }
    }
}

/// A test id unique enough for one machine: start time in seconds.
pub fn default_test_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("volley-{secs}")
}

/// `<hostname>-<pid>`.
pub fn default_generator_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

/// Why a run ended before its schedule did.
#[derive(Clone, Debug, PartialEq)]
pub enum Abort {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// A threshold with `abortOnFail` failed (here, or on the fleet's
    /// merged data as judged by the exporter).
    Threshold(String),
    /// Stopped through the control API (this generator's or the fleet's).
    Operator(String),
    /// The setup flow failed; no scenario ran.
    Setup(crate::flow::setup::SetupError),
}

impl Abort {
    /// Says why, for the stop message.
    pub fn describe(&self) -> String {
        match self {
            Abort::Signal => "interrupted by signal".into(),
            Abort::Threshold(why) => format!("{why} (abortOnFail)"),
            Abort::Operator(why) => why.clone(),
            Abort::Setup(e) => e.to_string(),
        }
    }
}

/// Per-scenario results for the summary.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// Scenario name.
    pub name: String,
    /// Executor name.
    pub executor: &'static str,
    /// One-line description of the schedule.
    pub description: String,
    /// Flow it ran.
    pub exec: String,
    /// `startTime`.
    pub start_time: Duration,
    /// `gracefulStop`.
    pub graceful_stop: Duration,
    /// Completed iterations.
    pub completed: u64,
    /// Interrupted iterations.
    pub interrupted: u64,
    /// Dropped iterations.
    pub dropped: u64,
    /// VUs allocated.
    pub vus_allocated: u64,
    /// Open-model scenario with its rate per second, for drop advice.
    pub rate_per_sec: Option<f64>,
}

/// Everything a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Totals per series.
    pub totals: RunTotals,
    /// Every threshold's outcome.
    pub thresholds: Vec<Outcome>,
    /// Per-scenario results.
    pub scenarios: Vec<ScenarioResult>,
    /// Test duration.
    pub elapsed: Duration,
    /// Set when the run was stopped early.
    pub aborted: Option<Abort>,
    /// Windows produced.
    pub windows: u64,
    /// The execution segment when the test is split, e.g.
    /// `1/4:1/2 of 0,1/4,1/2,3/4,1`.
    pub segment: Option<String>,
    /// The first VU number, minus one (0 unless split).
    pub vu_offset: u64,
    /// Set when `thresholds` is the exporter's verdict on the merged data
    /// of this many generators, rather than this generator's own.
    pub fleet_generators: Option<u32>,
    /// What became of the measured data: one line per output (and the
    /// exporter stream), and whether it stored everything.
    pub delivery: Vec<Delivery>,
}

/// The end-of-run account of one destination of the windows.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Stored / spooled / refused / lost, in words.
    pub line: String,
    /// Whether everything was stored.
    pub complete: bool,
}

impl RunOutcome {
    /// True when every threshold held.
    pub fn thresholds_ok(&self) -> bool {
        self.thresholds.iter().all(|o| o.ok)
    }
}

/// Runs `plan` until its scenarios end or `shutdown` resolves (then
/// in-flight iterations are interrupted and the summary is still produced).
///
/// `shutdown` says why the run must stop early: a signal, the fleet's
/// verdict, an operator.
pub async fn run(
    plan: TestPlan,
    opts: RunOptions,
    console: Console,
    shutdown: impl Future<Output = Abort>,
) -> RunOutcome {
    let warn_console = console.clone();
    let metrics = Metrics::new(opts.series_cap, move |w| warn_console.warn(&w));
    let (stop_new, interrupt) = (CancellationToken::new(), CancellationToken::new());
    let shards = Arc::new(shards::Shards::start(opts.threads).expect("start the VU threads"));
    let live = opts.live.clone().unwrap_or_else(|| crate::control::Live::new(&plan));
    let runs = build::scenario_runs(&plan, &metrics, &shards, &stop_new, &interrupt, &console, &live);
    live.attach(runs.iter().zip(&plan.scenarios).map(|(r, s)| (r.clone(), s.executor.executor().kind())).collect());

    let clock = WindowClock::new(opts.window, opts.generator_id.clone(), opts.test_id.clone(), opts.clock_offset_ms);
    let t0 = clock.t0;
    let stops = fold::Stops { stop_new: stop_new.clone(), interrupt: interrupt.clone() };
    let fold = WindowFold::new(
        plan.thresholds.clone(),
        stops,
        console.clone(),
        opts.on_window.clone(),
        !opts.fleet_thresholds,
        live.clone(),
        t0,
    );
    let gauges = VuGauges::new(&metrics, runs.clone());
    let ticking = window::tick(clock, metrics.clone(), gauges.clone(), fold.clone());
    let progress = Progress::start(console.clone(), runs.clone(), schedule_length(&plan));

    let managers = token_managers(&plan, &console);
    run_setup(&plan, &metrics, &fold, &stop_new, &interrupt, &console).await;
    let tasks = spawn_scenarios(&runs, &plan, t0);
    wait(tasks, shutdown, &live, &fold, &stop_new, &interrupt, &console).await;

    live.end();
    progress.stop().await;
    for flow in &managers {
        if let crate::flow::FlowDef::Token(t) = &**flow {
            t.shutdown().await;
        }
    }
    // Every VU has ended: flows record what only the end knows (im_lost_total),
    // into the last window.
    for run in &runs {
        run.finish_flow();
    }
    let windows = ticking.last_window(&metrics, gauges.sample(), &fold).await;
    // Every VU task has ended; the threads only hold idle connections.
    shards.shutdown();
    outcome(&plan, &runs, &fold, t0, windows)
}

/// The longest scenario's end: what the progress bar counts towards.
fn schedule_length(plan: &TestPlan) -> Duration {
    plan.scenarios.iter().map(|s| s.executor.executor().duration() + s.base.start_time).max().unwrap_or_default()
}

/// Starts the token managers this run needs: they connect to Redis (or
/// share in process) before any VU needs a token.
fn token_managers(plan: &TestPlan, console: &Console) -> Vec<Arc<crate::flow::FlowDef>> {
    let managers: Vec<Arc<crate::flow::FlowDef>> =
        plan.token_managers.iter().filter_map(|name| plan.flows.get(name).cloned()).collect();
    for flow in &managers {
        if let crate::flow::FlowDef::Token(t) = &**flow {
            match t.start(&plan.process_env, console) {
                Ok(note) => console.info(&note),
                Err(e) => console.warn(&e),
            }
        }
    }
    managers
}

/// The setup flow runs before any scenario; if it fails none starts.
async fn run_setup(
    plan: &TestPlan,
    metrics: &Metrics,
    fold: &WindowFold,
    stop_new: &CancellationToken,
    interrupt: &CancellationToken,
    console: &Console,
) {
    let Some(flow) = &plan.setup else { return };
    let result =
        crate::flow::setup::run(flow, &plan.setup_values, &plan.process_env, &plan.tags, metrics, plan.setup_timeout)
            .await;
    if let Err(e) = result {
        console.warn(&format!("{e}; no scenario starts"));
        fold.aborted.lock().get_or_insert(Abort::Setup(e));
        stop_new.cancel();
        interrupt.cancel();
    }
}

/// Each scenario's executor, from its `startTime` (none once the run stops).
fn spawn_scenarios(runs: &[Arc<ScenarioRun>], plan: &TestPlan, t0: std::time::Instant) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (run, scenario) in runs.iter().zip(&plan.scenarios) {
        let run = run.clone();
        let executor = scenario.executor.clone();
        let start = tokio::time::Instant::from_std(t0) + scenario.base.start_time;
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(start) => executor.executor().run(run.clone()).await,
                _ = run.stop_new.cancelled() => {}
            }
            run.stats.finished.store(true, Ordering::Relaxed);
        });
    }
    tasks
}

/// Waits for the scenarios to end, or for `shutdown` (or an operator's
/// stop): then nothing new starts and running iterations are cut.
async fn wait(
    mut tasks: tokio::task::JoinSet<()>,
    shutdown: impl Future<Output = Abort>,
    live: &Arc<crate::control::Live>,
    fold: &WindowFold,
    stop_new: &CancellationToken,
    interrupt: &CancellationToken,
    console: &Console,
) {
    let all_done = async { while tasks.join_next().await.is_some() {} };
    tokio::pin!(all_done);
    let shutdown = async {
        tokio::select! {
            why = shutdown => why,
            why = live.stop_requested() => Abort::Operator(why),
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut all_done => {}
        why = &mut shutdown => {
            console.warn(&format!("stopping: {}; in-flight iterations are cut short, the summary follows", why.describe()));
            fold.aborted.lock().get_or_insert(why);
            stop_new.cancel();
            interrupt.cancel();
            all_done.await;
        }
    }
}

/// The run's outcome from its totals and scenarios.
fn outcome(
    plan: &TestPlan,
    runs: &[Arc<ScenarioRun>],
    fold: &WindowFold,
    t0: std::time::Instant,
    windows: u64,
) -> RunOutcome {
    let mut totals = std::mem::take(&mut *fold.totals.lock());
    let elapsed = t0.elapsed();
    totals.elapsed = elapsed;
    let thresholds = plan.thresholds.iter().flat_map(|t| t.evaluate(&totals)).collect();
    let scenarios = runs.iter().zip(&plan.scenarios).map(|(run, s)| scenario_result(run, s)).collect();
    RunOutcome {
        totals,
        thresholds,
        scenarios,
        elapsed,
        aborted: fold.aborted.lock().clone(),
        windows,
        segment: (!plan.share.is_full()).then(|| plan.share.to_string()),
        vu_offset: plan.vu_offset,
        fleet_generators: None,
        delivery: Vec::new(),
    }
}

fn scenario_result(run: &ScenarioRun, plan: &crate::config::ScenarioPlan) -> ScenarioResult {
    let ex = plan.executor.executor();
    ScenarioResult {
        name: run.name.clone(),
        executor: ex.kind(),
        description: ex.describe(),
        exec: plan.base.exec.clone(),
        start_time: plan.base.start_time,
        graceful_stop: plan.base.graceful_stop,
        completed: run.stats.completed.get(),
        interrupted: run.stats.interrupted.get(),
        dropped: run.stats.dropped.get(),
        vus_allocated: run.stats.allocated.load(Ordering::Relaxed),
        rate_per_sec: rate_per_sec(&plan.executor),
    }
}

/// The `vus` and `vus_max` gauges, sampled at every window close.
#[derive(Clone)]
pub struct VuGauges {
    metrics: Metrics,
    runs: Vec<Arc<ScenarioRun>>,
    vus: crate::metrics::registry::SeriesId,
    vus_max: crate::metrics::registry::SeriesId,
}

impl VuGauges {
    fn new(metrics: &Metrics, runs: Vec<Arc<ScenarioRun>>) -> VuGauges {
        let (vus, vus_max) = (metrics.series(VUS, Tags::new()), metrics.series(VUS_MAX, Tags::new()));
        VuGauges { metrics: metrics.clone(), runs, vus, vus_max }
    }

    /// Sets both gauges; returns the active VUs.
    pub fn sample(&self) -> u64 {
        let active: u64 = self.runs.iter().map(|r| r.stats.active.get()).sum();
        let allocated: u64 = self.runs.iter().map(|r| r.stats.allocated.load(Ordering::Relaxed)).sum();
        self.metrics.set_gauge(self.vus, active as f64);
        self.metrics.set_gauge(self.vus_max, allocated as f64);
        active
    }
}

fn rate_per_sec(executor: &crate::executor::ExecutorConfig) -> Option<f64> {
    use crate::executor::ExecutorConfig as E;
    match executor {
        E::ConstantArrivalRate(c) => Some(c.rate as f64 / c.time_unit.as_secs_f64()),
        E::RampingArrivalRate(c) => {
            let peak = c.stages.iter().map(|s| s.target).fold(c.start_rate, u64::max);
            Some(peak as f64 / c.time_unit.as_secs_f64())
        }
        _ => None,
    }
}
