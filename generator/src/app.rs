//! What each command does: parse, build the runtime, run, report, exit code.

use crate::cli::{Cli, Command, OutputArgs, RunArgs};
use crate::config::{self, Overrides, TestPlan};
use crate::console::Console;
use crate::control::{self, Live, Scope};
use crate::engine::{self, Abort, Delivery, RunOptions, RunOutcome};
use crate::exit;
use crate::start::{self, synchronized_start, Barrier, Meeting};
use crate::stream::{StreamConfig, StreamReport, Streamer};
use clap::Parser;
use std::ffi::OsString;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use volley_exporter::report::{html::Verdict, Reports};
use volley_exporter::{OutSpec, Pipeline, PipelineConfig};
use volley_window::wire::Hello;

/// How long a run waits for the exporter's welcome (its clock) before it
/// starts on its own clock.
const CLOCK_WAIT: Duration = Duration::from_secs(3);

/// Runs the CLI with `args` and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID_CONFIG } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Demo(args) => crate::demo::run(args),
        Command::WsPing(args) => crate::preset::run(crate::preset::Preset::WsPing, args),
        Command::ImE2e(args) => crate::preset::run(crate::preset::Preset::ImE2e, args),
        Command::Status(args) => control::client::run(control::client::Verb::Status, args),
        Command::Pause(args) => control::client::run(control::client::Verb::Pause, args),
        Command::Resume(args) => control::client::run(control::client::Verb::Resume, args),
        Command::Stop(args) => control::client::run(control::client::Verb::Stop, args),
        Command::Scale(args) => control::client::scale(args),
        Command::Import(crate::cli::ImportCommand::Har(args)) => import_har(&args),
    }
}

fn run_command(args: RunArgs) -> i32 {
    let overrides = Overrides {
        vus: args.vus,
        duration: args.duration,
        iterations: args.iterations,
        env: args.env.clone(),
        system_env: !args.no_system_env,
        split: args.split.to_split(),
        local_ips: args.local_ips.clone(),
        base_dir: None,
        flags: args.options.to_flags(args.output.insecure_skip_tls_verify),
    };
    let plan = match config::load_file(&args.file, &overrides) {
        Ok(plan) => plan,
        Err(errors) => {
            report_invalid(&errors);
            return exit::INVALID_CONFIG;
        }
    };
    execute(plan, &args.output, |_| async {})
}

/// `volley import har`: writes the scenario and says what it holds.
fn import_har(args: &crate::cli::HarArgs) -> i32 {
    let opts = crate::har::ImportOptions { include_static: args.include_static, max_sleep: args.max_sleep };
    let imported = match crate::har::import_file(&args.file, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ERROR {e}");
            return exit::INVALID_CONFIG;
        }
    };
    let source = args.file.file_name().map_or_else(|| "recording".into(), |n| n.to_string_lossy().into_owned());
    let yaml = imported.to_yaml(&source);
    let target = args.output.clone().unwrap_or_else(|| args.file.with_extension("yaml"));
    if target.as_os_str() == "-" {
        print!("{yaml}");
        return exit::OK;
    }
    if let Err(e) = std::fs::write(&target, yaml) {
        eprintln!("ERROR cannot write {}: {e}", target.display());
        return exit::INTERNAL;
    }
    eprintln!(
        "INFO wrote {} with {} requests ({} static assets left out, {} redirect hops followed by the client); run it with: volley run {}",
        target.display(),
        imported.requests,
        imported.static_assets,
        imported.redirects,
        target.display()
    );
    exit::OK
}

/// Prints configuration problems, one per line, each with its field path.
pub fn report_invalid(errors: &config::reader::ConfigErrors) {
    eprintln!(
        "ERROR invalid configuration ({} problem{}):",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
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
    let outs = match parse_outs(&output.out) {
        Ok(outs) => outs,
        Err(e) => {
            eprintln!("ERROR invalid configuration (1 problem):\n  {e}");
            return exit::INVALID_CONFIG;
        }
    };
    if let Err(e) = check_names(output) {
        eprintln!("ERROR invalid configuration (1 problem):\n  {e}");
        return exit::INVALID_CONFIG;
    }
    if let Some(ms) = output.clock_skew {
        crate::clock::set_skew(ms);
    }
    let console = Console::new(output.quiet);
    let mut opts = RunOptions {
        window: output.window,
        series_cap: output.series_cap,
        test_id: output.test_id.clone().unwrap_or_else(engine::default_test_id),
        generator_id: output.generator_id.clone().unwrap_or_else(engine::default_generator_id),
        threads: output.threads.unwrap_or(RunOptions::default().threads),
        ..RunOptions::default()
    };
    let meeting = match start::meeting(output, &opts.test_id) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ERROR invalid configuration (1 problem):\n  {e}");
            return exit::INVALID_CONFIG;
        }
    };
    let style =
        crate::summary::text::Style { stats: plan.summary_trend_stats.clone(), time_unit: plan.summary_time_unit };
    let threshold_specs: Vec<_> = plan.thresholds.iter().map(|t| t.to_spec()).collect();
    let live = Live::new(&plan);
    opts.live = Some(live.clone());
    let mut report: Option<Arc<Reports>> = None;
    let opts_test_id = opts.test_id.clone();
    report_connection_capacity(&plan, &console);
    let outcome = runtime.block_on(async {
        let log_console = console.clone();
        let log: Arc<dyn Fn(String) + Send + Sync> = Arc::new(move |m: String| log_console.warn(&m));
        // The report observes the same merged windows as the outputs, so a
        // pipeline runs for it even without any --out.
        let pipeline = if outs.is_empty() && output.report.is_none() {
            None
        } else {
            // One of a fleet writing directly: its points carry its name.
            let in_fleet = !plan.share.is_full() || meeting.is_some() || output.generator_id.is_some();
            let writer = in_fleet.then(|| opts.generator_id.clone());
            let merge = volley_exporter::merge::MergeConfig { wall_clock: false, ..Default::default() };
            let cfg = PipelineConfig { report_tests: Some(1), writer, merge, ..PipelineConfig::default() };
            match Pipeline::start(&outs, cfg, log.clone()) {
                Ok(p) => {
                    if output.report.is_some() {
                        report = Some(p.reports());
                    }
                    p.register(&opts.test_id, &opts.generator_id);
                    Some(p)
                }
                Err(e) => {
                    eprintln!("ERROR invalid configuration (1 problem):\n  {e}");
                    return Err(exit::INVALID_CONFIG);
                }
            }
        };
        let streamer = match &output.exporter {
            None => None,
            Some(url) => {
                let cfg = StreamConfig {
                    url: url.clone(),
                    token: output.exporter_token.clone().unwrap_or_default(),
                    buffer: output.exporter_buffer,
                    insecure_tls: output.insecure_skip_tls_verify,
                    // The exporter holds the barrier only when the start is agreed there.
                    wait_for: match &meeting {
                        Some((n, Meeting::Exporter)) => Some(*n),
                        _ => None,
                    },
                    thresholds: threshold_specs.clone(),
                };
                let hello = Hello {
                    generator: opts.generator_id.clone(),
                    test_id: opts.test_id.clone(),
                    segment: (!plan.share.is_full()).then(|| plan.share.segment().to_string()),
                    tags: plan.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    window_ms: opts.window.as_millis() as u64,
                };
                match Streamer::start(cfg, hello, log.clone()) {
                    Ok(s) => Some(Arc::new(s)),
                    Err(e) => {
                        eprintln!("ERROR invalid configuration (1 problem):\n  {e}");
                        return Err(exit::INVALID_CONFIG);
                    }
                }
            }
        };
        if let Some(s) = &streamer {
            let live = live.clone();
            s.set_control(Arc::new(move |c| live.apply(c, Scope::Fleet)));
            // Windows are stamped on the exporter's clock.
            match s.clock_offset(CLOCK_WAIT).await {
                Some(offset) => opts.clock_offset_ms = offset,
                None => console.warn(&format!(
                    "the exporter was not reached within {} s: windows are stamped on this machine's clock",
                    CLOCK_WAIT.as_secs()
                )),
            }
        }
        let api_stop = tokio_util::sync::CancellationToken::new();
        let _api_stop = api_stop.clone().drop_guard();
        if let Some(addr) = &output.address {
            let Some(token) = output.control_token.clone().filter(|t| !t.is_empty()) else {
                eprintln!("ERROR invalid configuration (1 problem):\n  --address: the control API needs --control-token (or VOLLEY_CONTROL_TOKEN)");
                return Err(exit::INVALID_CONFIG);
            };
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("ERROR invalid configuration (1 problem):\n  --address {addr}: {e}");
                    return Err(exit::INVALID_CONFIG);
                }
            };
            let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.clone());
            console.info(&format!("control API on http://{bound}/v1/status"));
            let secret = volley_exporter::secret::Secret::new(token);
            tokio::spawn(control::api::serve(listener, live.clone(), secret, log.clone(), api_stop.clone()));
        }
        if pipeline.is_some() || streamer.is_some() {
            let (p, s) = (pipeline.clone(), streamer.clone());
            opts.on_window = Some(engine::WindowTap(Arc::new(move |w| match (&p, &s) {
                (Some(p), Some(s)) => {
                    p.offer(w.clone());
                    s.push(w);
                }
                (Some(p), None) => {
                    p.offer(w);
                }
                (None, Some(s)) => s.push(w),
                (None, None) => {}
            })));
        }
        before(runtime.handle()).await;
        if let Some((n, meeting)) = &meeting {
            let barrier = match meeting {
                Meeting::Exporter => Barrier::Exporter(streamer.as_ref().expect("an exporter meeting has a stream")),
                Meeting::Redis(r) => {
                    if streamer.is_some() {
                        console
                            .info("--wait-redis: the start is agreed in Redis; windows still stream to the exporter");
                    }
                    Barrier::Redis(r)
                }
            };
            if let Err(code) = synchronized_start(barrier, *n, output.wait_timeout, &console).await {
                if let Some(s) = &streamer {
                    s.finish(Duration::from_secs(2), Duration::ZERO).await;
                }
                return Err(code);
            }
        }
        // With an exporter, the thresholds are the fleet's: it judges them
        // on the merged data and decides aborts and the verdict.
        let fleet = streamer.clone().filter(|_| !threshold_specs.is_empty());
        opts.fleet_thresholds = fleet.is_some();
        let stop = {
            let (console, fleet) = (console.clone(), fleet.clone());
            async move {
                tokio::select! {
                    _ = shutdown_signal(console) => Abort::Signal,
                    why = async { match &fleet { Some(s) => s.aborted().await, None => std::future::pending().await } } => {
                        Abort::Threshold(format!("the exporter aborted the test: {why}"))
                    }
                }
            }
        };
        let mut outcome = engine::run(plan, opts, console.clone(), stop).await;
        if let Some(s) = &streamer {
            let done = s.finish(output.out_timeout, output.verdict_timeout).await;
            outcome.delivery.push(stream_delivery(output.exporter.as_deref().unwrap_or_default(), &done));
        }
        if let Some(s) = &fleet {
            match s.verdict() {
                Some(v) => {
                    outcome.thresholds = v.outcomes;
                    outcome.fleet_generators = Some(v.generators);
                }
                None => console.warn(&format!(
                    "the exporter sent no verdict on the fleet's thresholds within --verdict-timeout {}; the thresholds and exit code below judge this generator's own share",
                    crate::config::duration::format_duration(output.verdict_timeout)
                )),
            }
        }
        if let Some(p) = pipeline {
            let report = p.finish(output.out_timeout).await;
            outcome.delivery.extend(report.sinks.iter().map(|s| Delivery { line: s.account(), complete: s.complete() }));
        }
        Ok(outcome)
    });
    match outcome {
        Ok(outcome) => {
            let code = finish(&outcome, output, &style);
            match (&report, &output.report) {
                (Some(r), Some(path)) => match write_report(r, path, &opts_test_id, &outcome) {
                    Ok(()) => {
                        console.info(&format!("report written to {}", path.display()));
                        code
                    }
                    Err(e) => {
                        eprintln!("ERROR cannot write the report {}: {e}", path.display());
                        if code == exit::OK {
                            exit::INTERNAL
                        } else {
                            code
                        }
                    }
                },
                _ => code,
            }
        }
        Err(code) => code,
    }
}

/// Renders this generator's report: the charts from its merged windows, the
/// thresholds as the summary judged them.
fn write_report(reports: &Reports, path: &std::path::Path, test_id: &str, outcome: &RunOutcome) -> std::io::Result<()> {
    let verdicts = outcome
        .thresholds
        .iter()
        .map(|o| Verdict { metric: o.key.clone(), expression: o.source.clone(), ok: o.ok, observed: o.observed })
        .collect();
    let mut notes = Vec::new();
    match &outcome.aborted {
        Some(Abort::Threshold(why)) => notes.push(format!("aborted: {why}")),
        Some(Abort::Signal) => notes.push("interrupted before the end of its schedule".to_string()),
        Some(Abort::Operator(why)) => notes.push(format!("stopped: {why}")),
        Some(Abort::Setup(e)) => notes.push(e.to_string()),
        None => {}
    }
    let source = format!("volley run, {}", crate::config::duration::format_duration(outcome.elapsed));
    let html = reports
        .render(test_id, source, Some(verdicts), notes)
        .ok_or_else(|| std::io::Error::other("the test produced no window"))?;
    std::fs::write(path, html)
}

/// For plans that hold WebSocket connections: raises the open-files limit
/// to its hard limit and says how many connections this process can hold,
/// warning when the scenarios want more (run several generators then).
fn report_connection_capacity(plan: &TestPlan, console: &Console) {
    let wanted: u64 = plan
        .scenarios
        .iter()
        .filter(|s| plan.flows.get(&s.base.exec).is_some_and(|f| matches!(**f, crate::flow::FlowDef::Ws(_))))
        .map(|s| s.executor.executor().max_vus())
        .sum();
    if wanted == 0 {
        return;
    }
    match volley_testbed::limits::raise_open_files() {
        Ok((soft, _)) => {
            // A few descriptors go to the runtime, outputs and the exporter.
            let capacity = soft.saturating_sub(64);
            let line = format!("open-files limit {soft}: this process can hold about {capacity} WebSocket connections; the scenarios need up to {wanted}");
            if wanted > capacity {
                console.warn(&format!(
                    "{line}. Split the VUs over several volley processes (with --local-ips to spread source addresses) streaming to one volley-exporter"
                ));
            } else {
                console.info(&line);
            }
        }
        Err(e) => console.warn(&format!("cannot read the open-files limit: {e}")),
    }
}

fn stream_delivery(url: &str, r: &StreamReport) -> Delivery {
    let complete = r.unacknowledged == 0 && r.dropped == 0 && r.series_dropped == 0;
    let line = if complete {
        format!("exporter {url}: {} windows acknowledged", r.acknowledged)
    } else {
        format!(
            "exporter {url}: {} windows acknowledged; NOT acknowledged: {} unsent or unconfirmed at exit, {} dropped (buffer full); {} series left out (larger than the exporter's frame limit)",
            r.acknowledged, r.unacknowledged, r.dropped, r.series_dropped
        )
    };
    Delivery { line, complete }
}

/// The test id and generator id are written as tags wherever the windows
/// go: refused here if a database could not store them unchanged.
fn check_names(output: &OutputArgs) -> Result<(), String> {
    let named = [("--test-id", &output.test_id), ("--generator-id", &output.generator_id)];
    for (flag, value) in named {
        if let Some(v) = value {
            volley_exporter::sink::influx::line::storable(v).map_err(|e| format!("{flag} {v:?}: {e}"))?;
        }
    }
    Ok(())
}

fn parse_outs(raw: &[String]) -> Result<Vec<OutSpec>, String> {
    raw.iter().map(|r| OutSpec::parse(r, |k| std::env::var(k).ok()).map_err(|e| e.to_string())).collect()
}

/// Prints and writes the results; returns the exit code.
pub fn finish(outcome: &RunOutcome, output: &OutputArgs, style: &crate::summary::text::Style) -> i32 {
    if !output.no_summary {
        print!("{}", crate::summary::text::render(outcome, style));
    }
    if let Some(path) = &output.summary_export {
        let doc = crate::summary::export::to_json(outcome, &style.stats);
        let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("ERROR cannot write the summary export {}: {e}", path.display());
            return exit::INTERNAL;
        }
    }
    // The summary ends with what became of the data; a destination that
    // did not store everything changes the exit code (unless a failed
    // threshold or an abort already did).
    for d in &outcome.delivery {
        eprintln!("{} {}", if d.complete { "INFO" } else { "ERROR" }, d.line);
    }
    let incomplete = outcome.delivery.iter().filter(|d| !d.complete).count();
    match (&outcome.aborted, outcome.thresholds_ok()) {
        (Some(Abort::Setup(crate::flow::setup::SetupError::Timeout(_))), _) => exit::SETUP_TIMEOUT,
        (Some(Abort::Setup(_)), _) => exit::SCRIPT_EXCEPTION,
        (_, false) | (Some(Abort::Threshold(_)), _) => exit::THRESHOLDS_FAILED,
        (Some(Abort::Signal | Abort::Operator(_)), true) => exit::EXTERNAL_ABORT,
        (None, true) if incomplete > 0 => {
            eprintln!(
                "ERROR {incomplete} destination(s) did not store everything measured within --out-flush-timeout (exit code {})",
                exit::OUTPUT_INCOMPLETE
            );
            exit::OUTPUT_INCOMPLETE
        }
        (None, true) => exit::OK,
    }
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits at once.
async fn shutdown_signal(console: Console) {
    wait_signal().await;
    tokio::spawn(async move {
        wait_signal().await;
        console.warn("second signal: exiting without a summary");
        std::process::exit(exit::EXTERNAL_ABORT);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
