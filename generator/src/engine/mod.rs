//! Runs a [`TestPlan`]: scenarios on their executors, the window clock, the
//! run totals and the stop logic (end of schedule, Ctrl-C, `abortOnFail`).
//!
//! # Layout
//! - [`scenario`]: [`ScenarioRun`], what an executor drives (VUs, the
//!   iteration runner, stop signals, per-scenario series).
//! - [`window`]: the window clock producing [`volley_window::WindowReport`]s.
//! - [`health`]: RSS and CPU of the generator itself.

pub mod health;
pub mod scenario;
pub mod shards;
pub mod window;

pub use scenario::{ScenarioRun, Vu};

use crate::config::TestPlan;
use crate::console::Console;
use crate::metrics::builtin::{THRESHOLD, VUS, VUS_MAX};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::summary::totals::RunTotals;
use crate::threshold::{Judge, Outcome};
use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use volley_window::{Aggregate, SeriesKey, SeriesWindow, Tags, WindowReport};
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

/// Every threshold's verdict on the totals so far, as [`THRESHOLD`] gauges:
/// outputs see thresholds live, and a merged window's `min` is 0 when any
/// generator's view fails.
fn threshold_series(outcomes: Vec<Outcome>) -> Vec<SeriesWindow> {
    outcomes
        .into_iter()
        .map(|o| SeriesWindow {
            key: SeriesKey::new(THRESHOLD.name, Tags::from_pairs([("metric", o.key), ("threshold", o.source)])),
            unit: THRESHOLD.unit,
            value: Aggregate::gauge(if o.ok { 1.0 } else { 0.0 }),
        })
        .collect()
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
    let stop_new = CancellationToken::new();
    let interrupt = CancellationToken::new();
    let vu_ids = Arc::new(AtomicU64::new(plan.vu_offset));
    let segment = (!plan.share.is_full()).then(|| plan.share.to_string());
    let shards = Arc::new(shards::Shards::start(opts.threads).expect("start the VU threads"));
    let test_tags = plan.tags.clone();
    let live = opts.live.clone().unwrap_or_else(|| crate::control::Live::new(&plan));

    let scenarios: Vec<(Arc<ScenarioRun>, &crate::config::ScenarioPlan)> = plan
        .scenarios
        .iter()
        .map(|s| {
            let flow = plan
                .flows
                .get(&s.base.exec)
                .cloned()
                .unwrap_or_else(|| Arc::new(crate::flow::FlowDef::Noop(Default::default())));
            let env = plan.env.get(&s.name).cloned().unwrap_or_default();
            let run = ScenarioRun::new(
                s.name.clone(),
                s.base.clone(),
                flow,
                s.executor.executor().max_vus(),
                metrics.clone(),
                &test_tags,
                env,
                vu_ids.clone(),
                shards.clone(),
                &stop_new,
                &interrupt,
            )
            .with_console(console.clone())
            .with_live(live.clone());
            let run = match &plan.local_ips {
                Some(pool) => run.with_local_ips(pool.clone(), plan.vu_offset),
                None => run,
            };
            (Arc::new(run), s)
        })
        .collect();
    let runs: Vec<Arc<ScenarioRun>> = scenarios.iter().map(|(r, _)| r.clone()).collect();
    live.attach(scenarios.iter().map(|(r, s)| (r.clone(), s.executor.executor().kind())).collect());

    let mut clock =
        WindowClock::new(opts.window, opts.generator_id.clone(), opts.test_id.clone(), opts.clock_offset_ms);
    let t0 = clock.t0;
    let totals = Arc::new(Mutex::new(RunTotals::default()));
    let aborted: Arc<Mutex<Option<Abort>>> = Arc::new(Mutex::new(None));
    let vus_gauge = metrics.series(VUS, Tags::new());
    let vus_max_gauge = metrics.series(VUS_MAX, Tags::new());
    let sample_gauges = {
        let (metrics, runs) = (metrics.clone(), runs.clone());
        move || {
            let active: u64 = runs.iter().map(|r| r.stats.active.get()).sum();
            let allocated: u64 = runs.iter().map(|r| r.stats.allocated.load(Ordering::Relaxed)).sum();
            metrics.set_gauge(vus_gauge, active as f64);
            metrics.set_gauge(vus_max_gauge, allocated as f64);
            active
        }
    };
    let fold = {
        let (totals, aborted, thresholds, stop_new, interrupt, console) = (
            totals.clone(),
            aborted.clone(),
            plan.thresholds.clone(),
            stop_new.clone(),
            interrupt.clone(),
            console.clone(),
        );
        let tap = opts.on_window.clone();
        let local_aborts = !opts.fleet_thresholds;
        let live = live.clone();
        move |mut report: WindowReport| {
            let mut totals = totals.lock();
            totals.add_window(&report.series);
            totals.elapsed = t0.elapsed();
            let outcomes: Vec<Outcome> = thresholds.iter().flat_map(|t| t.evaluate(&totals)).collect();
            live.set_tainted(outcomes.iter().any(|o| !o.ok));
            if tap.is_some() {
                report.series.extend(threshold_series(outcomes));
            }
            let failing: Vec<Outcome> = if local_aborts {
                thresholds.iter().flat_map(|t| t.aborting_on(&totals, totals.elapsed)).collect()
            } else {
                Vec::new()
            };
            if let Some(first) = failing.first() {
                let mut aborted = aborted.lock();
                if aborted.is_none() {
                    let why = format!("threshold {} on {} failed", first.source, first.key);
                    console.warn(&format!("{why}; aborting the test (abortOnFail)"));
                    *aborted = Some(Abort::Threshold(why));
                    stop_new.cancel();
                    interrupt.cancel();
                }
            }
            drop(totals);
            if let Some(tap) = &tap {
                (tap.0)(report);
            }
        }
    };

    // The window clock.
    let collector_stop = CancellationToken::new();
    let collector = {
        let (metrics, stop, sample, fold) =
            (metrics.clone(), collector_stop.clone(), sample_gauges.clone(), fold.clone());
        tokio::spawn(async move {
            loop {
                let boundary = tokio::time::Instant::from_std(clock.next_boundary());
                tokio::select! {
                    _ = tokio::time::sleep_until(boundary) => {}
                    _ = stop.cancelled() => break,
                }
                let active = sample();
                let report = clock.close(&metrics, active);
                fold(report);
            }
            clock
        })
    };

    let progress = Progress::start(
        console.clone(),
        runs.clone(),
        scenarios.iter().map(|(_, s)| s.executor.executor().duration() + s.base.start_time).max().unwrap_or_default(),
    );

    // Token managers connect to Redis (or share in process) before any VU
    // needs a token.
    let token_managers: Vec<Arc<crate::flow::FlowDef>> =
        plan.token_managers.iter().filter_map(|name| plan.flows.get(name).cloned()).collect();
    for flow in &token_managers {
        if let crate::flow::FlowDef::Token(t) = &**flow {
            match t.start(&plan.process_env, &console) {
                Ok(note) => console.info(&note),
                Err(e) => console.warn(&e),
            }
        }
    }

    // The setup flow runs before any scenario; if it fails none starts.
    if let Some(flow) = &plan.setup {
        let result = crate::flow::setup::run(
            flow,
            &plan.setup_values,
            &plan.process_env,
            &test_tags,
            &metrics,
            plan.setup_timeout,
        )
        .await;
        if let Err(e) = result {
            console.warn(&format!("{e}; no scenario starts"));
            aborted.lock().get_or_insert(Abort::Setup(e));
            stop_new.cancel();
            interrupt.cancel();
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (run, plan) in &scenarios {
        let run = run.clone();
        let executor = plan.executor.clone();
        let start = tokio::time::Instant::from_std(t0) + plan.base.start_time;
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(start) => executor.executor().run(run.clone()).await,
                _ = run.stop_new.cancelled() => {}
            }
            run.stats.finished.store(true, Ordering::Relaxed);
        });
    }

    let all_done = async { while tasks.join_next().await.is_some() {} };
    tokio::pin!(all_done);
    let shutdown = {
        let live = live.clone();
        async move {
            tokio::select! {
                why = shutdown => why,
                why = live.stop_requested() => Abort::Operator(why),
            }
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut all_done => {}
        why = &mut shutdown => {
            console.warn(&format!("stopping: {}; in-flight iterations are cut short, the summary follows", why.describe()));
            aborted.lock().get_or_insert(why);
            stop_new.cancel();
            interrupt.cancel();
            all_done.await;
        }
    }

    live.end();
    progress.stop().await;
    for flow in &token_managers {
        if let crate::flow::FlowDef::Token(t) = &**flow {
            t.shutdown().await;
        }
    }
    // Every VU has ended: flows record what only the end knows (im_lost_total),
    // into the last window.
    for run in &runs {
        run.finish_flow();
    }
    collector_stop.cancel();
    let mut clock = collector.await.expect("window clock task");
    let active = sample_gauges();
    let last = clock.close(&metrics, active);
    let windows = last.seq + 1;
    fold(last);

    let totals = std::mem::take(&mut *totals.lock());
    let elapsed = t0.elapsed();
    let mut totals = totals;
    totals.elapsed = elapsed;
    let thresholds = plan.thresholds.iter().flat_map(|t| t.evaluate(&totals)).collect();
    let scenarios = scenarios
        .iter()
        .map(|(run, plan)| {
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
        })
        .collect();
    let aborted = aborted.lock().clone();
    // Every VU task has ended; the threads only hold idle connections.
    shards.shutdown();
    RunOutcome {
        totals,
        thresholds,
        scenarios,
        elapsed,
        aborted,
        windows,
        segment,
        vu_offset: plan.vu_offset,
        fleet_generators: None,
        delivery: Vec::new(),
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
