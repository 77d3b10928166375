//! Merges the window reports of many generators into one window per
//! (test, window start), and decides when a window is written and when its
//! reports may be acknowledged.
//!
//! A window is flushed as soon as every generator expected to report it has
//! done so, or once a grace period has passed since its first report arrived
//! (measured on the exporter's clock, so generator clock skew does not
//! matter). Its merged state then stays in memory for a late horizon: a
//! report that arrives meanwhile (a slow or late-joining generator) is merged
//! and the whole window flushed again; sinks overwrite the same series and
//! timestamp, so the rewrite is idempotent. After the horizon the window is
//! evicted; a report for it after that cannot be merged correctly and is
//! counted as too late. Memory is bounded by (windows within the horizon ×
//! series), never by run length.
//!
//! Acknowledgements: the reports of a complete window are acknowledged once
//! it is flushed; those of an incomplete one only when it is evicted, so that
//! an exporter restarted meanwhile gets every report of it again and rebuilds
//! it whole. Every acknowledgement is an [`Event::Stored`], which the
//! pipeline delivers only after the sinks wrote what came before it.
//!
//! Reports are deduplicated per (generator, window start): a generator that
//! resends after a reconnect cannot count anything twice.
//!
//! Clocks: generators stamp windows on the exporter's clock (it is in the
//! welcome), so honest windows of one start arrive together. A window is
//! evicted only once the exporter's own clock has also passed its end plus
//! grace and horizon, so a generator whose clock is ahead (say, one that
//! could not reach the exporter at its start) keeps its windows open for
//! the others instead of pushing the test's horizon past them; a window
//! stamped more than [`MAX_AHEAD`] in the future is refused, counted, and
//! never acknowledged (its generator ends with its windows unconfirmed).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use volley_window::{HealthRecord, SeriesKey, SeriesWindow, WindowReport};

/// How far ahead of the exporter's clock a window may start.
pub const MAX_AHEAD: Duration = Duration::from_secs(300);

/// The exporter's clock, ms since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Timing and bounds of the merge.
#[derive(Clone, Debug)]
pub struct MergeConfig {
    /// How long after a window's first report it is flushed even if some
    /// generator has not reported it.
    pub grace: Duration,
    /// How long a flushed window still accepts late reports (and rewrites).
    pub late_horizon: Duration,
    /// Open windows per test beyond which the oldest are forced final.
    pub max_open_windows: usize,
    /// Series one test may hold in memory, over all its open windows; a
    /// report's new series beyond it are left out and counted
    /// (`series_dropped`). With `max_open_windows` and the exporter's test
    /// cap, this bounds the merge's memory whatever generators send.
    pub max_series: usize,
    /// Judge windows against this process's clock: refuse those more than
    /// [`MAX_AHEAD`] ahead, hold each until the clock passes its end. Off
    /// in a generator's embedded pipeline, which merges only its own
    /// windows (stamped on the exporter's clock when it streams to one).
    pub wall_clock: bool,
}

/// Default [`MergeConfig::max_series`]: room for a fleet's windows of
/// 10,000 merged series each while 100 of them are open (a backlog resent
/// after an exporter restart), about 300 MB at most.
pub const DEFAULT_MAX_SERIES: usize = 1_000_000;

/// Default [`MergeConfig::grace`], as `--grace` writes it.
pub const DEFAULT_GRACE: &str = "5s";
/// Default [`MergeConfig::late_horizon`], as `--late-horizon` writes it.
pub const DEFAULT_LATE_HORIZON: &str = "10s";

impl Default for MergeConfig {
    fn default() -> Self {
        let parse = |text| volley_window::duration::parse_duration(text).expect("a valid default duration");
        Self {
            grace: parse(DEFAULT_GRACE),
            late_horizon: parse(DEFAULT_LATE_HORIZON),
            max_open_windows: 600,
            max_series: DEFAULT_MAX_SERIES,
            wall_clock: true,
        }
    }
}

/// A window merged across generators, ready for the sinks.
#[derive(Clone, Debug)]
pub struct MergedWindow {
    /// Test run.
    pub test_id: String,
    /// Window start, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Longest window length reported for it.
    pub len_ms: u64,
    /// Merged series, sorted by key.
    pub series: Vec<SeriesWindow>,
    /// How many generators' reports it contains.
    pub reporters: usize,
}

/// A finished test's run totals, per metric (tags merged away except
/// `check`), written once when its last generator says goodbye (or an
/// embedded run ends).
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Test run.
    pub test_id: String,
    /// End of its last window, ms since the Unix epoch.
    pub end_unix_ms: u64,
    /// Merged series, sorted by key.
    pub series: Vec<SeriesWindow>,
    /// The generator that wrote it, when one of a fleet writes directly
    /// (see `PipelineConfig::writer`): each one's summary is its own point.
    pub generator: Option<String>,
}

/// One generator's health in one window (never merged).
#[derive(Clone, Debug)]
pub struct HealthPoint {
    /// Test run.
    pub test_id: String,
    /// Generator id.
    pub generator: String,
    /// Window start, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// Window length.
    pub len_ms: u64,
    /// What the generator reported.
    pub health: HealthRecord,
}

/// What the merger asks of its caller.
#[derive(Clone, Debug)]
pub enum Event {
    /// Write this window (again, if it was written before).
    Flush(MergedWindow),
    /// These reports, `(generator, seq)`, may be acknowledged once the
    /// flushes before this event are written.
    Stored {
        /// Test run.
        test_id: String,
        /// The reports.
        reports: Vec<(String, u64)>,
    },
    /// The window is evicted: what was flushed last is final.
    Settled {
        /// Test run.
        test_id: String,
        /// Window start, ms since the Unix epoch.
        start_unix_ms: u64,
    },
}

/// What became of one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingest {
    /// Merged into its window.
    Merged,
    /// Merged into a window that had already been flushed: it will be rewritten.
    Late,
    /// Already merged before (a resend): acknowledged again, not counted.
    Duplicate,
    /// Its window was evicted before this report came: it cannot be merged
    /// any more (counted), and is acknowledged so that it is not resent.
    TooLate,
    /// Its series did not merge with the window's (a metric reported with
    /// two types); the rest of the report was merged.
    Conflict,
    /// Stamped more than [`MAX_AHEAD`] ahead of the exporter's clock:
    /// refused, counted, not acknowledged.
    OffClock,
}

/// Counters of the merge, for health metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Reports received.
    pub received: u64,
    /// Reports merged (late ones included).
    pub merged: u64,
    /// Reports merged after their window was flushed.
    pub late: u64,
    /// Resent reports ignored.
    pub duplicates: u64,
    /// Reports whose window was already evicted.
    pub too_late: u64,
    /// Series that could not be merged (type conflicts).
    pub conflicts: u64,
    /// Window flushes (rewrites included).
    pub flushes: u64,
    /// Windows evicted early because too many were open.
    pub forced: u64,
    /// Reports refused for a start too far ahead of the exporter's clock.
    pub off_clock: u64,
    /// Series left out because a window reached `max_series`.
    pub series_dropped: u64,
}

/// The merge state of all tests.
pub struct Merger {
    cfg: MergeConfig,
    /// The wall clock at one monotonic instant: `wall(now)` reads the
    /// exporter's clock for any `Instant` (so tests can drive both).
    anchor: (Instant, u64),
    tests: HashMap<String, TestState>,
    stats: MergeStats,
    /// Acknowledgements owed for resent or too-late reports.
    reacks: Vec<(String, (String, u64))>,
}

#[derive(Default)]
struct TestState {
    generators: HashMap<String, GenState>,
    windows: BTreeMap<u64, WindowState>,
    /// Windows starting before this are evicted.
    horizon: u64,
    /// Series held in all its open windows (bounded by `max_series`).
    held_series: usize,
}

struct GenState {
    registered_at: Instant,
    finished: bool,
    last_start: Option<u64>,
    /// Highest sequence number of this generator in an evicted window.
    evicted_seq: Option<u64>,
}

impl GenState {
    fn new(now: Instant) -> Self {
        Self { registered_at: now, finished: false, last_start: None, evicted_seq: None }
    }
}

struct Report {
    generator: String,
    seq: u64,
    acked: bool,
}

struct WindowState {
    len_ms: u64,
    series: BTreeMap<SeriesKey, SeriesWindow>,
    reports: Vec<Report>,
    first_seen: Instant,
    flushed: bool,
    dirty: bool,
}

impl WindowState {
    /// Marks every unacknowledged report acknowledged and returns them.
    fn take_unacked(&mut self) -> Vec<(String, u64)> {
        self.reports
            .iter_mut()
            .filter(|r| !r.acked)
            .map(|r| {
                r.acked = true;
                (r.generator.clone(), r.seq)
            })
            .collect()
    }
}

impl Merger {
    /// An empty merger.
    pub fn new(cfg: MergeConfig) -> Self {
        Self {
            cfg,
            anchor: (Instant::now(), unix_now_ms()),
            tests: HashMap::new(),
            stats: MergeStats::default(),
            reacks: Vec::new(),
        }
    }

    /// The exporter's clock at `now`, ms since the Unix epoch.
    fn wall(&self, now: Instant) -> u64 {
        let (at, unix) = self.anchor;
        match now.checked_duration_since(at) {
            Some(d) => unix.saturating_add(d.as_millis() as u64),
            None => unix.saturating_sub(at.duration_since(now).as_millis() as u64),
        }
    }

    /// The instant the exporter's clock reads `unix_ms`.
    fn instant_at(&self, unix_ms: u64) -> Instant {
        let (at, unix) = self.anchor;
        at + Duration::from_millis(unix_ms.saturating_sub(unix))
    }

    /// The merge counters so far.
    pub fn stats(&self) -> &MergeStats {
        &self.stats
    }

    /// Whether `test_id` is held.
    pub fn has_test(&self, test_id: &str) -> bool {
        self.tests.contains_key(test_id)
    }

    /// Tests held (generators or windows).
    pub fn tests(&self) -> usize {
        self.tests.len()
    }

    /// Expects windows from `generator` in `test_id` from now on.
    pub fn register(&mut self, test_id: &str, generator: &str, now: Instant) {
        let test = self.tests.entry(test_id.to_string()).or_default();
        test.generators.entry(generator.to_string()).or_insert_with(|| GenState::new(now)).finished = false;
    }

    /// `generator` will send no more windows of `test_id`: windows are no
    /// longer held back waiting for it. True when every generator of the
    /// test has now finished.
    pub fn finish(&mut self, test_id: &str, generator: &str) -> bool {
        match self.tests.get_mut(test_id) {
            Some(t) => {
                if let Some(g) = t.generators.get_mut(generator) {
                    g.finished = true;
                }
                t.generators.values().all(|g| g.finished)
            }
            None => false,
        }
    }

    /// Flushes, acknowledges and evicts every window of one test (all its
    /// generators finished: nothing more will come).
    pub fn flush_test(&mut self, test_id: &str) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(test) = self.tests.get_mut(test_id) {
            drain(test_id, test, &mut self.stats, &mut events);
        }
        events
    }

    /// Merges one report. The health record comes back to be written as is
    /// (unless the report was a resend or too late).
    pub fn ingest(&mut self, report: WindowReport, now: Instant) -> (Ingest, Option<HealthPoint>) {
        self.stats.received += 1;
        let ahead = Duration::from_millis(report.start_unix_ms.saturating_sub(self.wall(now)));
        if self.cfg.wall_clock && ahead > MAX_AHEAD {
            self.stats.off_clock += 1;
            return (Ingest::OffClock, None);
        }
        let test = self.tests.entry(report.test_id.clone()).or_default();
        let gen = test.generators.entry(report.generator.clone()).or_insert_with(|| GenState::new(now));
        let start = report.start_unix_ms;
        let ack_later = (report.test_id.clone(), (report.generator.clone(), report.seq));
        if !test.windows.contains_key(&start) && start < test.horizon {
            if gen.evicted_seq.is_some_and(|s| report.seq <= s) {
                self.stats.duplicates += 1;
                self.reacks.push(ack_later);
                return (Ingest::Duplicate, None);
            }
            self.stats.too_late += 1;
            self.reacks.push(ack_later);
            return (Ingest::TooLate, None);
        }
        gen.last_start = Some(gen.last_start.map_or(start, |l| l.max(start)));
        let w = test.windows.entry(start).or_insert_with(|| WindowState {
            len_ms: report.len_ms,
            series: BTreeMap::new(),
            reports: Vec::new(),
            first_seen: now,
            flushed: false,
            dirty: false,
        });
        if let Some(r) = w.reports.iter().find(|r| r.generator == report.generator) {
            self.stats.duplicates += 1;
            // Acknowledged before: say so again (the first ack was lost).
            // Otherwise the window's own acknowledgement will cover it.
            if r.acked {
                self.reacks.push(ack_later);
            }
            return (Ingest::Duplicate, None);
        }
        w.reports.push(Report { generator: report.generator.clone(), seq: report.seq, acked: false });
        w.len_ms = w.len_ms.max(report.len_ms);
        let mut outcome = if w.flushed { Ingest::Late } else { Ingest::Merged };
        for s in report.series {
            let full = test.held_series >= self.cfg.max_series;
            match w.series.get_mut(&s.key) {
                Some(have) => {
                    if have.value.merge(&s.value).is_err() {
                        self.stats.conflicts += 1;
                        outcome = Ingest::Conflict;
                    }
                }
                None if full => self.stats.series_dropped += 1,
                None => {
                    w.series.insert(s.key.clone(), s);
                    test.held_series += 1;
                }
            }
        }
        w.dirty = true;
        self.stats.merged += 1;
        if w.flushed {
            self.stats.late += 1;
        }
        let health = HealthPoint {
            test_id: report.test_id,
            generator: report.generator,
            start_unix_ms: start,
            len_ms: report.len_ms,
            health: report.health,
        };
        (outcome, Some(health))
    }

    /// Flushes windows that are complete or past their grace period,
    /// acknowledges what may be, and evicts windows past their horizon.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events = self.take_reacks();
        let (grace, horizon, max_open) = (self.cfg.grace, self.cfg.late_horizon, self.cfg.max_open_windows);
        let wall = self.wall(now);
        let settle_ms = if self.cfg.wall_clock { (grace + horizon).as_millis() as u64 } else { 0 };
        let wall = if self.cfg.wall_clock { wall } else { u64::MAX };
        for (test_id, test) in &mut self.tests {
            let forced = test.windows.len().saturating_sub(max_open);
            let starts: Vec<u64> = test.windows.keys().copied().collect();
            for (i, start) in starts.into_iter().enumerate() {
                let force = i < forced;
                let w = test.windows.get_mut(&start).expect("listed");
                let expired = now >= w.first_seen + grace;
                let all_in = complete(&test.generators, start, w);
                if w.dirty && (force || expired || w.flushed || all_in) {
                    events.push(Event::Flush(snapshot(test_id, start, w)));
                    w.dirty = false;
                    w.flushed = true;
                    self.stats.flushes += 1;
                }
                if w.flushed && all_in {
                    push_stored(&mut events, test_id, w.take_unacked());
                }
                // Past its horizon on both clocks: since its first report
                // here, and since its end on the exporter's clock.
                let settled = now >= w.first_seen + grace + horizon && wall >= start + w.len_ms + settle_ms;
                if force || settled {
                    if force {
                        self.stats.forced += 1;
                    }
                    let w = test.windows.remove(&start).expect("listed");
                    evict(test, test_id, start, w, &mut events);
                }
            }
        }
        self.tests.retain(|_, t| !t.windows.is_empty() || t.generators.values().any(|g| !g.finished));
        events
    }

    /// Flushes, acknowledges and evicts every window (the end of an
    /// embedded run, or of a daemon whose generators all finished).
    pub fn flush_all(&mut self) -> Vec<Event> {
        let mut events = self.take_reacks();
        for (test_id, test) in &mut self.tests {
            drain(test_id, test, &mut self.stats, &mut events);
        }
        events
    }

    /// Writes every window with unwritten changes but acknowledges only the
    /// complete ones: for a daemon that stops while generators still run.
    /// Incomplete windows stay unacknowledged, so their generators resend
    /// them to the next exporter, which rebuilds them whole.
    pub fn flush_pending(&mut self) -> Vec<Event> {
        let mut events = self.take_reacks();
        for (test_id, test) in &mut self.tests {
            for (start, w) in test.windows.iter_mut() {
                if w.dirty {
                    events.push(Event::Flush(snapshot(test_id, *start, w)));
                    w.dirty = false;
                    w.flushed = true;
                    self.stats.flushes += 1;
                }
                if complete(&test.generators, *start, w) {
                    push_stored(&mut events, test_id, w.take_unacked());
                }
            }
        }
        events
    }

    /// When `poll` may next have something to do (for a sleeping caller).
    pub fn next_deadline(&self) -> Option<Instant> {
        let (grace, horizon) = (self.cfg.grace, self.cfg.late_horizon);
        let settle_ms = (grace + horizon).as_millis() as u64;
        self.tests
            .values()
            .flat_map(|t| t.windows.iter())
            .map(|(start, w)| {
                if w.flushed && !w.dirty && self.cfg.wall_clock {
                    (w.first_seen + grace + horizon).max(self.instant_at(start + w.len_ms + settle_ms))
                } else if w.flushed && !w.dirty {
                    w.first_seen + grace + horizon
                } else {
                    w.first_seen + grace
                }
            })
            .min()
    }

    /// Windows held in memory.
    pub fn open_windows(&self) -> usize {
        self.tests.values().map(|t| t.windows.len()).sum()
    }

    fn take_reacks(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for (test_id, report) in self.reacks.drain(..) {
            push_stored(&mut events, &test_id, vec![report]);
        }
        events
    }
}

fn push_stored(events: &mut Vec<Event>, test_id: &str, reports: Vec<(String, u64)>) {
    if !reports.is_empty() {
        events.push(Event::Stored { test_id: test_id.to_string(), reports });
    }
}

/// Has every generator expected for the window reported it? A generator is
/// expected if it registered before the window's first report and has not
/// finished before reaching it. (One that joins later is not waited for; its
/// report is still merged within the late horizon.)
fn complete(generators: &HashMap<String, GenState>, start: u64, w: &WindowState) -> bool {
    generators.iter().all(|(id, g)| {
        let expected = g.registered_at <= w.first_seen && !(g.finished && g.last_start.is_none_or(|l| l < start));
        !expected || w.reports.iter().any(|r| r.generator == *id)
    })
}

fn snapshot(test_id: &str, start: u64, w: &mut WindowState) -> MergedWindow {
    MergedWindow {
        test_id: test_id.to_string(),
        start_unix_ms: start,
        len_ms: w.len_ms,
        series: w.series.values().cloned().collect(),
        reporters: w.reports.len(),
    }
}

/// Flushes what is unwritten, acknowledges and evicts every window of a test.
fn drain(test_id: &str, test: &mut TestState, stats: &mut MergeStats, events: &mut Vec<Event>) {
    for (start, mut w) in std::mem::take(&mut test.windows) {
        if w.dirty {
            events.push(Event::Flush(snapshot(test_id, start, &mut w)));
            stats.flushes += 1;
        }
        evict(test, test_id, start, w, events);
    }
}

fn evict(test: &mut TestState, test_id: &str, start: u64, mut w: WindowState, events: &mut Vec<Event>) {
    test.horizon = test.horizon.max(start + 1);
    test.held_series -= w.series.len();
    for r in &w.reports {
        if let Some(gen) = test.generators.get_mut(&r.generator) {
            gen.evicted_seq = Some(gen.evicted_seq.map_or(r.seq, |s| s.max(r.seq)));
        }
    }
    push_stored(events, test_id, w.take_unacked());
    events.push(Event::Settled { test_id: test_id.to_string(), start_unix_ms: start });
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
