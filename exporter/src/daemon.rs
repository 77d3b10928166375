//! `volley-exporter`: the daemon around the pipeline and the ingest server.

use crate::health::Health;
use crate::ingest::Ingest;
use crate::merge::MergeConfig;
use crate::out::{redact, OutSpec};
use crate::pipeline::{OnStored, Pipeline, PipelineConfig, PipelineReport, SpoolConfig};
use crate::secret::Secret;
use crate::selfmetrics::SelfMetrics;
use crate::sink::worker::{WhenFull, WorkerConfig};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exit code for invalid flags (as the generator's, and k6's).
pub const EXIT_INVALID: i32 = 104;

/// Merges window reports from many generators and writes them to InfluxDB.
#[derive(Parser, Debug)]
#[command(
    name = "volley-exporter",
    version,
    about = "Merges window reports streamed by volley generators and writes them to the outputs"
)]
pub struct Args {
    /// Address to listen on for generators (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:6565")]
    pub listen: String,
    /// Token generators must present (`Authorization: Bearer …`).
    #[arg(long, env = "VOLLEY_EXPORTER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Output, repeatable (same syntax as `volley run --out`).
    #[arg(long = "out", short = 'o', value_name = "KIND=URL")]
    pub out: Vec<String>,
    /// How long after a window's first report it is written even if some
    /// generator has not reported it.
    #[arg(long, default_value = crate::merge::DEFAULT_GRACE, value_parser = duration_arg)]
    pub grace: Duration,
    /// How long an incomplete window keeps accepting late reports after its
    /// grace period (each one rewrites the window's points).
    #[arg(long, default_value = crate::merge::DEFAULT_LATE_HORIZON, value_parser = duration_arg)]
    pub late_horizon: Duration,
    /// Largest frame accepted from a generator, in bytes.
    #[arg(long, default_value_t = volley_window::wire::DEFAULT_MAX_FRAME, value_parser = volley_window::wire::parse_frame_limit)]
    pub max_frame_bytes: usize,
    /// Generator connections open at once (more are closed and counted).
    #[arg(long, default_value_t = 20_000)]
    pub max_connections: usize,
    /// Tests held at once (a hello for one more is refused and counted).
    #[arg(long, default_value_t = 100)]
    pub max_tests: usize,
    /// Series one test may hold over its open windows (more are left out
    /// and counted).
    #[arg(long, default_value_t = crate::merge::DEFAULT_MAX_SERIES)]
    pub max_series: usize,
    /// PEM certificate chain: serve `wss://` instead of `ws://`.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Spool batches an output cannot take yet to this directory (survives
    /// restarts); without it they wait in memory.
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
    /// Spool size limit per output, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub spool_max_bytes: u64,
    /// How long to keep writing after a stop signal.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub out_timeout: Duration,
    /// Serve `/ready`, `/stats` and `/report?testid=…` over HTTP on this address.
    #[arg(long)]
    pub health_listen: Option<String>,
    /// Tests whose report timelines are kept for `/report` (the least
    /// recently updated is forgotten first; each holds at most 360 points).
    #[arg(long, default_value_t = crate::report::DEFAULT_TESTS)]
    pub report_tests: usize,
    /// Export the exporter's own counters with the OpenTelemetry SDK to this
    /// OTLP/gRPC receiver (`otlp=grpc://HOST:4317`).
    #[arg(long, value_name = "otlp=grpc://HOST:PORT")]
    pub self_metrics: Option<String>,
    /// How often the own counters are exported.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub self_metrics_interval: Duration,
    /// Print ingest and sink counters this often (0 = never).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub stats_interval: Duration,
    /// Alert rules (YAML) evaluated on the merged windows and posted to a
    /// webhook (see the README's "Alert rules").
    #[arg(long, value_name = "FILE")]
    pub alert_rules: Option<PathBuf>,
    /// Enables the fleet control API on `--health-listen`
    /// (`GET`/`PATCH /v1/status?testid=…`: status, pause, resume, scale,
    /// stop every generator of a test), for clients with this bearer token.
    #[arg(long, env = "VOLLEY_CONTROL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub control_token: Option<String>,
    /// Serve `/stats` and `/report` without the exporter token (by default
    /// they need it, as a bearer token or a Basic-auth password).
    #[arg(long)]
    pub open_stats: bool,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    volley_window::duration::parse_duration(s)
}

fn log(msg: &str) {
    eprintln!("volley-exporter: {msg}");
}

/// Runs the daemon; returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_INVALID } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let outs: Result<Vec<OutSpec>, String> =
        args.out.iter().map(|r| OutSpec::parse(r, |k| std::env::var(k).ok()).map_err(|e| e.to_string())).collect();
    let outs = match outs {
        Ok(o) => o,
        Err(e) => {
            log(&format!("invalid configuration: {e}"));
            return EXIT_INVALID;
        }
    };
    if args.token.is_empty() {
        log("invalid configuration: --token (or VOLLEY_EXPORTER_TOKEN) must not be empty");
        return EXIT_INVALID;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => match tls_acceptor(c, k) {
            Ok(a) => Some(a),
            Err(e) => {
                log(&format!("invalid configuration: {e}"));
                return EXIT_INVALID;
            }
        },
        _ => None,
    };
    let rules = match args.alert_rules.as_deref().map(crate::alert::Rules::load).transpose() {
        Ok(r) => r,
        Err(e) => {
            e.0.iter().for_each(|m| log(&format!("invalid configuration: --alert-rules {m}")));
            return EXIT_INVALID;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            log(&format!("cannot start the runtime: {e}"));
            return 1;
        }
    };
    runtime.block_on(serve(args, outs, tls, rules))
}

async fn serve(
    args: Args,
    outs: Vec<OutSpec>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    rules: Option<crate::alert::Rules>,
) -> i32 {
    match run(args, outs, tls, rules).await {
        Ok(()) => 0,
        Err(problem) => {
            log(&format!("invalid configuration: {problem}"));
            EXIT_INVALID
        }
    }
}

/// The daemon, from its listeners to its drain; an error is a
/// configuration problem found while starting.
async fn run(
    args: Args,
    outs: Vec<OutSpec>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    rules: Option<crate::alert::Rules>,
) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let (pipeline, ingest) = start_pipeline(&args, &outs, tls.clone())?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    // First line on stdout: scripts and tests read the address from it.
    let signals = StopSignals::install();
    println!("volley-exporter listening on {scheme}://{addr}");
    for o in &args.out {
        log(&format!("output {}", redact(o)));
    }
    let shutdown = CancellationToken::new();
    let alerts = rules.map(|r| {
        let cfg = crate::alert::EngineConfig::for_grace(args.grace);
        crate::alert::Alerts::start(r, cfg, Default::default(), &pipeline, Arc::new(|m: String| log(&m)))
    });
    let health = start_health(&args, &pipeline, &ingest).await?;
    let self_metrics = start_self_metrics(&args, &pipeline, &ingest)?;
    let server = tokio::spawn(ingest.clone().serve(listener, shutdown.clone()));
    let ticker = tokio::spawn(tick(pipeline.clone(), shutdown.clone()));
    let stats = tokio::spawn(print_stats(
        pipeline.clone(),
        ingest.clone(),
        alerts.clone(),
        args.stats_interval,
        shutdown.clone(),
    ));

    signals.wait().await;
    health.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    log("stopping: writing what is merged; unfinished windows stay unacknowledged for the next exporter");
    shutdown.cancel();
    let _ = server.await;
    let _ = ticker.await;
    let _ = stats.await;
    let report = pipeline.finish_with(args.out_timeout, false).await;
    log(&status_line(&ingest, &pipeline));
    log_report(&report);
    if let Some(a) = &alerts {
        log(&a.stop(args.out_timeout.min(Duration::from_secs(10))).await.line());
    }
    if let Some(m) = self_metrics {
        // The SDK's shutdown blocks on its last export.
        let _ = tokio::task::spawn_blocking(move || m.shutdown()).await;
    }
    Ok(())
}

/// The pipeline, and the ingest server its acknowledgements go back
/// through (the ack hook reaches the server once it exists).
fn start_pipeline(
    args: &Args,
    outs: &[OutSpec],
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(Arc<Pipeline>, Arc<Ingest>), String> {
    let cfg = PipelineConfig {
        merge: MergeConfig {
            grace: args.grace,
            late_horizon: args.late_horizon,
            max_series: args.max_series,
            ..MergeConfig::default()
        },
        spool: args.spool_dir.clone().map(|dir| SpoolConfig { dir, max_bytes: args.spool_max_bytes }),
        report_tests: Some(args.report_tests),
        // Generators wait (their windows stay unacknowledged) rather than
        // the exporter dropping what it may already have promised.
        worker: WorkerConfig { when_full: WhenFull::Wait, ..WorkerConfig::default() },
        ..PipelineConfig::default()
    };
    let ingest_cell: Arc<OnceLock<Arc<Ingest>>> = Arc::new(OnceLock::new());
    let hook: OnStored = {
        let cell = ingest_cell.clone();
        Arc::new(move |test: &str, reports: &[(String, u64)]| {
            if let Some(i) = cell.get() {
                i.acknowledge(test, reports);
            }
        })
    };
    let pipeline = Pipeline::start_with_acks(outs, cfg, Arc::new(|m: String| log(&m)), Some(hook))?;
    let limits = crate::ingest::Limits {
        max_frame: args.max_frame_bytes,
        max_connections: args.max_connections,
        max_tests: args.max_tests,
    };
    let token = Secret::new(args.token.clone());
    let ingest = Ingest::new(pipeline.clone(), token, limits, tls, args.late_horizon, Arc::new(|m: String| log(&m)));
    let _ = ingest_cell.set(ingest.clone());
    Ok((pipeline, ingest))
}

/// `/ready`, `/stats` and `/report` on `--health-listen`, stopped only when
/// the process ends (it reports the drain).
async fn start_health(args: &Args, pipeline: &Arc<Pipeline>, ingest: &Arc<Ingest>) -> Result<Arc<Health>, String> {
    let health = Arc::new(Health {
        ingest: ingest.clone(),
        pipeline: pipeline.clone(),
        ready: AtomicBool::new(true),
        reports: pipeline.reports(),
        control_token: args.control_token.clone().filter(|t| !t.is_empty()).map(Secret::new),
        reader_token: (!args.open_stats).then(|| Secret::new(args.token.clone())),
        http: Default::default(),
    });
    if let Some(addr) = &args.health_listen {
        let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("--health-listen {addr}: {e}"))?;
        let bound = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        log(&format!("health on http://{bound}/ready and /stats, reports on http://{bound}/report"));
        tokio::spawn(crate::health::serve(l, health.clone(), CancellationToken::new()));
    }
    Ok(health)
}

/// `--self-metrics`: the exporter's own counters over OTLP.
fn start_self_metrics(
    args: &Args,
    pipeline: &Arc<Pipeline>,
    ingest: &Arc<Ingest>,
) -> Result<Option<SelfMetrics>, String> {
    let Some(raw) = &args.self_metrics else { return Ok(None) };
    let spec = OutSpec::parse(raw, |_| None).map_err(|e| e.to_string().replacen("--out", "--self-metrics", 1))?;
    SelfMetrics::start(&spec, args.self_metrics_interval, ingest.clone(), pipeline.clone()).map(Some)
}

/// Flushes windows when their grace ends.
async fn tick(pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    loop {
        let wait = pipeline
            .next_deadline()
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => pipeline.poll(),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// `--stats-interval`: a status line (and the alerts' counters) now and then.
async fn print_stats(
    pipeline: Arc<Pipeline>,
    ingest: Arc<Ingest>,
    alerts: Option<Arc<crate::alert::Alerts>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                log(&status_line(&ingest, &pipeline));
                alerts.iter().for_each(|a| log(&a.stats().line()));
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

fn status_line(ingest: &Ingest, pipeline: &Pipeline) -> String {
    let i = ingest.stats.snapshot().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    let m = pipeline.merge_stats();
    let sinks = pipeline
        .sink_stats()
        .iter()
        .map(|s| {
            format!(
                "[{}: points={} retries={} dropped={} queued]",
                s.name, s.stats.points_written, s.stats.retries, s.stats.dropped
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{i} merged={} late={} duplicates={} too_late={} off_clock={} series_dropped={} flushes={} {sinks}",
        m.merged, m.late, m.duplicates, m.too_late, m.off_clock, m.series_dropped, m.flushes
    )
}

fn log_report(report: &PipelineReport) {
    for s in &report.sinks {
        log(&s.account());
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("--tls-cert {}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// SIGINT and SIGTERM, caught from the moment this is created: a signal
/// that arrives before the daemon waits for it still stops it cleanly.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
        }
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
