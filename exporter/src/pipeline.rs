//! The exporter pipeline: reports in, merged windows out to every sink.
//!
//! `volley run --out …` embeds it in the generator process (one generator,
//! so every window is complete the moment it is reported); the
//! `volley-exporter` daemon feeds it from many network connections. Each
//! sink has its own [`Worker`], so a slow or absent sink never holds up the
//! others or the test.

use crate::merge::{Event, MergeConfig, MergeStats, Merger};
use crate::observe::Observer;
use crate::out::OutSpec;
use crate::report::Reports;
use crate::sink::spool::Spool;
use crate::sink::worker::{Worker, WorkerConfig, WorkerStats};
use crate::sink::{self, Item, Marker};
use crate::Log;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_window::WindowReport;

/// How the pipeline merges and writes.
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    /// Merge timing.
    pub merge: MergeConfig,
    /// Sink queues and retries.
    pub worker: WorkerConfig,
    /// Where sinks spool what they cannot take yet (none: retry in memory).
    pub spool: Option<SpoolConfig>,
    /// Tests whose report timelines are kept (default
    /// [`crate::report::DEFAULT_TESTS`]).
    pub report_tests: Option<usize>,
    /// The generator writing, when one of a fleet writes to the outputs
    /// itself: every series gets tag `generator` (and OTLP resources
    /// `service.instance.id`), so that generators writing the same test to
    /// one database add up instead of overwriting each other's points.
    pub writer: Option<String>,
}

/// The disk spool's place and bound.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Directory; each output gets a subdirectory named after it.
    pub dir: std::path::PathBuf,
    /// Bytes per output.
    pub max_bytes: u64,
}

/// What one sink did over the pipeline's life.
#[derive(Clone, Debug)]
pub struct SinkReport {
    /// The sink (its `--out` value without secrets).
    pub name: String,
    /// Its counters.
    pub stats: WorkerStats,
}

/// What the pipeline did.
#[derive(Clone, Debug)]
pub struct PipelineReport {
    /// Merge counters.
    pub merge: MergeStats,
    /// Per sink.
    pub sinks: Vec<SinkReport>,
}

impl PipelineReport {
    /// Whether everything merged reached every sink.
    pub fn complete(&self) -> bool {
        self.sinks.iter().all(|s| s.complete())
    }
}

impl SinkReport {
    /// Whether this output stored everything it was given.
    pub fn complete(&self) -> bool {
        let s = &self.stats;
        s.dropped == 0 && s.rejected == 0 && s.points_rejected == 0 && s.unwritten == 0 && s.spool_left == 0
    }

    /// The end-of-run account of this output: stored, spooled, refused and
    /// lost, in windows (items) and points.
    pub fn account(&self) -> String {
        let s = &self.stats;
        let mut line = format!(
            "output {}: stored {} items ({} points) in {} writes",
            self.name, s.items_written, s.points_written, s.writes
        );
        if s.spooled + s.replayed + s.spool_left > 0 {
            line += &format!("; spooled {} items, replayed {} batches", s.spooled, s.replayed);
        }
        if self.complete() {
            return line;
        }
        line += &format!(
            "; NOT STORED: {} points refused as bad data, {} items lost (queue full {}, not encodable {}, unsent at exit {}), {} batches left in the spool",
            s.points_rejected,
            s.dropped + s.rejected + s.unwritten,
            s.dropped,
            s.rejected,
            s.unwritten,
            s.spool_left
        );
        if let Some(e) = &s.last_error {
            line += &format!("; last error: {e}");
        }
        line
    }
}

/// Called with `(test id, [(generator, seq)])` once those reports are stored
/// by every sink (see [`Event::Stored`]).
pub type OnStored = Arc<dyn Fn(&str, &[(String, u64)]) + Send + Sync>;

/// A running pipeline.
pub struct Pipeline {
    merger: Mutex<Merger>,
    workers: Vec<Worker>,
    on_stored: Option<OnStored>,
    /// Added at start-up, read for every item: a read lock is uncontended.
    observers: parking_lot::RwLock<Vec<Arc<dyn Observer>>>,
    /// Every test's report timeline: the HTML report and the run summary
    /// written when a test ends.
    reports: Arc<Reports>,
    /// Panics caught in observers.
    observer_panics: std::sync::atomic::AtomicU64,
    /// Whether the outputs spool what they cannot write yet.
    spooling: bool,
    /// See [`PipelineConfig::writer`].
    writer: Option<String>,
}

/// `spec` as written by `writer` (see [`PipelineConfig::writer`]).
fn identified(spec: &OutSpec, writer: Option<&str>) -> OutSpec {
    match spec {
        OutSpec::Otlp(t) => OutSpec::Otlp(crate::out::OtlpTarget { instance: writer.map(str::to_string), ..t.clone() }),
        other => other.clone(),
    }
}

impl Pipeline {
    /// Builds a sink per `--out` value and starts their workers on the
    /// current tokio runtime. `log` receives the sinks' warnings.
    pub fn start(outs: &[OutSpec], cfg: PipelineConfig, log: Log) -> Result<Arc<Self>, String> {
        Self::start_with_acks(outs, cfg, log, None)
    }

    /// As [`Pipeline::start`], and calls `on_stored` with reports that may be
    /// acknowledged, once all sinks have written (or given up on) everything
    /// queued before.
    pub fn start_with_acks(
        outs: &[OutSpec],
        cfg: PipelineConfig,
        log: Log,
        on_stored: Option<OnStored>,
    ) -> Result<Arc<Self>, String> {
        let mut workers = Vec::with_capacity(outs.len());
        for spec in outs {
            let sink = sink::build(&identified(spec, cfg.writer.as_deref()))?;
            let spool = match &cfg.spool {
                None => None,
                Some(sc) => {
                    let name: String =
                        sink.name().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                    let dir = sc.dir.join(name);
                    let (spool, problems) =
                        Spool::open(&dir, sc.max_bytes).map_err(|e| format!("--spool-dir {}: {e}", dir.display()))?;
                    problems.into_iter().for_each(|p| log(p));
                    if !spool.is_empty() {
                        log(format!(
                            "{}: {} spooled batches from an earlier run will be sent first",
                            sink.name(),
                            spool.len()
                        ));
                    }
                    Some(spool)
                }
            };
            workers.push(Worker::start(sink, cfg.worker.clone(), log.clone(), spool));
        }
        let reports = Arc::new(Reports::new(cfg.report_tests.unwrap_or(crate::report::DEFAULT_TESTS)));
        let observers: Vec<Arc<dyn Observer>> = vec![reports.clone()];
        Ok(Arc::new(Self {
            merger: Mutex::new(Merger::new(cfg.merge)),
            workers,
            on_stored,
            observers: parking_lot::RwLock::new(observers),
            reports,
            observer_panics: Default::default(),
            spooling: cfg.spool.is_some(),
            writer: cfg.writer,
        }))
    }

    /// When the merger next has a deadline (grace or horizon) to act on.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.merger.lock().next_deadline()
    }

    /// Panics caught in observers so far.
    pub fn observer_panics(&self) -> u64 {
        self.observer_panics.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Merge counters so far.
    pub fn merge_stats(&self) -> MergeStats {
        self.merger.lock().stats().clone()
    }

    /// Per-sink counters so far.
    pub fn sink_stats(&self) -> Vec<SinkReport> {
        self.workers.iter().map(|w| SinkReport { name: w.name().to_string(), stats: w.stats() }).collect()
    }

    /// Whether every output's queue is below its bound: with
    /// [`crate::sink::worker::WhenFull::Wait`], producers wait for this.
    pub fn has_room(&self) -> bool {
        self.workers.iter().all(|w| w.has_room())
    }

    /// Whether the outputs spool what they cannot write yet.
    pub fn spools(&self) -> bool {
        self.spooling
    }

    /// The outputs that are down right now.
    pub fn failing(&self) -> Vec<String> {
        self.workers.iter().filter(|w| w.failing()).map(|w| w.name().to_string()).collect()
    }

    /// The sinks' names.
    pub fn sink_names(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.name().to_string()).collect()
    }

    /// The report timelines of the tests merged here (the most recent
    /// [`PipelineConfig::report_tests`]).
    pub fn reports(&self) -> Arc<Reports> {
        self.reports.clone()
    }

    /// Hands every merged window and health point from now on to `observer`
    /// as well.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers.write().push(observer);
    }

    /// Expects reports from `generator` in `test_id`.
    pub fn register(&self, test_id: &str, generator: &str) {
        self.merger.lock().register(test_id, generator, Instant::now());
        self.observers.read().iter().for_each(|o| o.joined(test_id, generator));
    }

    /// Whether `test_id` is held (it has generators or open windows).
    pub fn has_test(&self, test_id: &str) -> bool {
        self.merger.lock().has_test(test_id)
    }

    /// Tests held.
    pub fn tests(&self) -> usize {
        self.merger.lock().tests()
    }

    /// `generator` sends nothing more for `test_id`. After the last one,
    /// the test's windows are written at once, then its run summary.
    pub fn finish_generator(&self, test_id: &str, generator: &str) {
        let ended = self.merger.lock().finish(test_id, generator);
        self.observers.read().iter().for_each(|o| o.finished(test_id, generator));
        if ended {
            let events = self.merger.lock().flush_test(test_id);
            self.deliver(events);
            self.observers.read().iter().for_each(|o| o.ended(test_id));
            self.summarize(test_id);
        }
        self.poll();
    }

    /// Queues the run summary of `test_id` from its timeline.
    fn summarize(&self, test_id: &str) {
        if let Some(mut summary) = self.reports.summary(test_id) {
            summary.generator = self.writer.clone();
            self.dispatch(Item::Summary(Arc::new(summary)));
        }
    }

    /// Merges a report and queues whatever became ready. Never blocks on a
    /// sink.
    pub fn offer(&self, mut report: WindowReport) -> crate::merge::Ingest {
        if let Some(writer) = &self.writer {
            report.series.iter_mut().for_each(|s| s.key.tags.insert("generator", writer.as_str()));
        }
        let now = Instant::now();
        let (outcome, events, health) = {
            let mut m = self.merger.lock();
            let (outcome, health) = m.ingest(report, now);
            (outcome, m.poll(now), health)
        };
        if let Some(h) = health {
            self.dispatch(Item::Health(Arc::new(h)));
        }
        self.deliver(events);
        outcome
    }

    /// Flushes windows whose grace period passed; call it periodically when
    /// generators may fall silent (see [`Merger::next_deadline`]).
    pub fn poll(&self) {
        let events = self.merger.lock().poll(Instant::now());
        self.deliver(events);
    }

    /// Flushes and finalizes everything, writes for at most `deadline`,
    /// stops the workers.
    pub async fn finish(&self, deadline: Duration) -> PipelineReport {
        self.finish_with(deadline, true).await
    }

    /// [`Pipeline::finish`], choosing whether incomplete windows are final.
    pub async fn finish_with(&self, deadline: Duration, all: bool) -> PipelineReport {
        let events = if all { self.merger.lock().flush_all() } else { self.merger.lock().flush_pending() };
        self.deliver(events);
        if all {
            // An embedded run: its test(s) end here.
            for test in self.reports.tests() {
                self.summarize(&test);
            }
        }
        let merge = self.merger.lock().stats().clone();
        let until = tokio::time::Instant::now() + deadline;
        let mut sinks = Vec::new();
        for w in &self.workers {
            let name = w.name().to_string();
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            sinks.push(SinkReport { name, stats: w.finish(left).await });
        }
        PipelineReport { merge, sinks }
    }

    fn deliver(&self, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Flush(w) => self.dispatch(Item::Window(Arc::new(w))),
                Event::Settled { test_id, start_unix_ms } => {
                    self.observers.read().iter().for_each(|o| o.settled(&test_id, start_unix_ms));
                }
                Event::Stored { test_id, reports } => {
                    if let Some(hook) = &self.on_stored {
                        let hook = hook.clone();
                        let marker = Marker::new(self.workers.len(), move || hook(&test_id, &reports));
                        if !self.workers.is_empty() {
                            self.dispatch(Item::Marker(marker));
                        }
                    }
                }
            }
        }
    }

    fn dispatch(&self, item: Item) {
        for o in self.observers.read().iter() {
            // An observer (report, alerts, thresholds) that panics on one
            // window must not take the outputs down with it.
            let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &item {
                Item::Window(w) => o.window(w),
                Item::Health(h) => o.health(h),
                Item::Summary(_) | Item::Marker(_) => {}
            }));
            if seen.is_err() {
                self.observer_panics.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        for w in &self.workers {
            w.push(item.clone());
        }
    }
}
