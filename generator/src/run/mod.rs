//! Running a plan: the runtime, the outputs and the stream around the
//! engine, the start barrier, then the summary and the exit code.
//!
//! [`execute`] reads as the data flow: set up, start the outputs
//! (pipeline, stream, control API), meet the other generators, run the
//! engine with its windows tapped into the outputs, drain the outputs, and
//! report.
//!
//! # Layout
//! - [`outputs`]: the embedded exporter pipeline, the stream to an
//!   exporter, the window tap feeding both, and their delivery lines.
//! - [`control_api`]: this generator's live control API (`--address`).
//! - [`finish`]: the summary, the export, the HTML report, the exit code.
//! - [`signals`]: Ctrl-C / SIGTERM, and the fleet's abort.
//! - this file: the sequence.

pub mod control_api;
pub mod finish;
pub mod outputs;
pub mod signals;

pub use crate::console::{invalid, report_invalid};

use crate::cli::OutputArgs;
use crate::config::TestPlan;
use crate::console::Console;
use crate::control::Live;
use crate::engine::{self, RunOptions, RunOutcome};
use crate::exit;
use crate::start::{self, synchronized_start, Barrier, Meeting};
use crate::stream::Streamer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use volley_exporter::report::Reports;
use volley_exporter::OutSpec;
use volley_window::threshold::SetSpec;

/// How long a run waits for the exporter's welcome (its clock) before it
/// starts on its own clock.
const CLOCK_WAIT: Duration = Duration::from_secs(3);

/// What a run is set up with before the runtime starts.
struct Setup {
    outs: Vec<OutSpec>,
    console: Console,
    opts: RunOptions,
    meeting: Option<(u32, Meeting)>,
    thresholds: Vec<SetSpec>,
    live: Arc<Live>,
}

impl Setup {
    /// Reads the output flags; a problem is the exit code to end with.
    fn new(plan: &TestPlan, output: &OutputArgs) -> Result<Setup, i32> {
        let outs = outputs::parse_outs(&output.out).map_err(invalid)?;
        outputs::check_names(output).map_err(invalid)?;
        if let Some(ms) = output.clock_skew {
            crate::clock::set_skew(ms);
        }
        let live = Live::new(plan);
        let opts = RunOptions {
            window: output.window,
            series_cap: output.series_cap,
            test_id: output.test_id.clone().unwrap_or_else(engine::default_test_id),
            generator_id: output.generator_id.clone().unwrap_or_else(engine::default_generator_id),
            threads: output.threads.unwrap_or(RunOptions::default().threads),
            live: Some(live.clone()),
            ..RunOptions::default()
        };
        let meeting = start::meeting(output, &opts.test_id).map_err(invalid)?;
        let thresholds = plan.thresholds.iter().map(|t| t.to_spec()).collect();
        Ok(Setup { outs, console: Console::new(output.quiet), opts, meeting, thresholds, live })
    }
}

/// Builds the runtime and runs `plan`; `before` runs inside the runtime
/// first (the demo starts its targets there). Returns the exit code.
pub fn execute<F, Fut>(plan: TestPlan, output: &OutputArgs, before: F) -> i32
where
    F: FnOnce(&tokio::runtime::Handle) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("volley-control")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR cannot start the runtime: {e}");
            return exit::INTERNAL;
        }
    };
    let setup = match Setup::new(&plan, output) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let style =
        crate::summary::text::Style { stats: plan.summary_trend_stats.clone(), time_unit: plan.summary_time_unit };
    let (console, test_id) = (setup.console.clone(), setup.opts.test_id.clone());
    finish::report_connection_capacity(&plan, &console);
    let handle = runtime.handle().clone();
    match runtime.block_on(run_plan(plan, output, setup, before(&handle))) {
        Ok((outcome, report)) => finish::finish_run(&outcome, output, &style, report.as_deref(), &test_id, &console),
        Err(code) => code,
    }
}

/// The run inside the runtime: outputs up, the start agreed, the engine,
/// the outputs drained. Returns the outcome and the report's data.
async fn run_plan(
    plan: TestPlan,
    output: &OutputArgs,
    setup: Setup,
    before: impl Future<Output = ()>,
) -> Result<(RunOutcome, Option<Arc<Reports>>), i32> {
    let Setup { outs, console, mut opts, meeting, thresholds, live } = setup;
    let log = console.warn_log();
    let in_fleet = !plan.share.is_full() || meeting.is_some() || output.generator_id.is_some();
    let pipeline = outputs::pipeline(&outs, output, &opts, in_fleet, &log)?;
    let report = pipeline.as_ref().filter(|_| output.report.is_some()).map(|p| p.reports());
    let streamer = outputs::streamer(output, &plan, &opts, &meeting, &thresholds, &log)?;
    if let Some(s) = &streamer {
        join_fleet(s, &live, &mut opts, &console).await;
    }
    let _api = control_api::start(output, &live, &console, &log).await?;
    opts.on_window = outputs::tap(pipeline.clone(), streamer.clone());
    before.await;
    meet(meeting.as_ref(), streamer.as_deref(), output, &console).await?;
    // With an exporter, the thresholds are the fleet's: it judges them on
    // the merged data and decides aborts and the verdict.
    let fleet = streamer.clone().filter(|_| !thresholds.is_empty());
    opts.fleet_thresholds = fleet.is_some();
    let stop = signals::stop(console.clone(), fleet.clone());
    let mut outcome = engine::run(plan, opts, console.clone(), stop).await;
    outputs::drain(&mut outcome, output, streamer.as_deref(), fleet.as_deref(), pipeline, &console).await;
    Ok((outcome, report))
}

/// Takes fleet commands from the exporter, and its clock for the windows.
async fn join_fleet(s: &Streamer, live: &Arc<Live>, opts: &mut RunOptions, console: &Console) {
    let live = live.clone();
    s.set_control(Arc::new(move |c| live.apply(c, crate::control::Scope::Fleet)));
    match s.clock_offset(CLOCK_WAIT).await {
        Some(offset) => opts.clock_offset_ms = offset,
        None => console.warn(&format!(
            "the exporter was not reached within {} s: windows are stamped on this machine's clock",
            CLOCK_WAIT.as_secs()
        )),
    }
}

/// `--wait-for`: waits at the barrier the flags chose.
async fn meet(
    meeting: Option<&(u32, Meeting)>,
    streamer: Option<&Streamer>,
    output: &OutputArgs,
    console: &Console,
) -> Result<(), i32> {
    let Some((n, meeting)) = meeting else { return Ok(()) };
    let barrier = match meeting {
        Meeting::Exporter => Barrier::Exporter(streamer.expect("an exporter meeting has a stream")),
        Meeting::Redis(r) => {
            if streamer.is_some() {
                console.info("--wait-redis: the start is agreed in Redis; windows still stream to the exporter");
            }
            Barrier::Redis(r)
        }
    };
    let met = synchronized_start(barrier, *n, output.wait_timeout, console).await;
    if met.is_err() {
        if let Some(s) = streamer {
            s.finish(Duration::from_secs(2), Duration::ZERO).await;
        }
    }
    met
}
