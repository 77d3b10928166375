//! The window clock: closes a window every `len` on absolute boundaries,
//! turns it into a [`WindowReport`] and folds it into the run totals.
//!
//! Boundaries are aligned to multiples of `len` in Unix time, not to the
//! test start: generators started at different moments on different
//! machines then close windows with the same start, which is what the
//! exporter merges on. The first window is shorter (it begins at the test
//! start); `len_ms` says how much of each window the generator covered.

use super::health;
use crate::metrics::Metrics;
use std::time::{Duration, Instant};
use volley_window::{Aggregate, HealthRecord, SeriesWindow, WindowReport};

/// Numbers windows and stamps them with wall-clock starts.
pub struct WindowClock {
    /// Monotonic test start.
    pub t0: Instant,
    /// Unix start (ms) of the aligned window holding `t0`.
    aligned_unix_ms: u64,
    /// How far into that window `t0` falls.
    phase: Duration,
    /// Window length.
    pub len: Duration,
    seq: u64,
    last_cpu: Duration,
    /// Identity stamped on reports.
    pub generator: String,
    /// Test run id stamped on reports.
    pub test_id: String,
}

impl WindowClock {
    /// A clock starting now, reading this process's clock moved by
    /// `offset_ms` (to the exporter's, see [`crate::clock`]).
    pub fn new(len: Duration, generator: String, test_id: String, offset_ms: i64) -> Self {
        let t0 = Instant::now();
        let now_unix_ms = u64::try_from(crate::clock::unix_now_ms().saturating_add(offset_ms)).unwrap_or(0);
        let len_ms = (len.as_millis() as u64).max(1);
        let aligned_unix_ms = now_unix_ms - now_unix_ms % len_ms;
        let phase = Duration::from_millis(now_unix_ms - aligned_unix_ms);
        Self { t0, aligned_unix_ms, phase, len, seq: 0, last_cpu: health::cpu_time(), generator, test_id }
    }

    /// Where window `seq` starts, relative to `t0` (the first is negative,
    /// so it saturates to `t0`).
    fn window_start(&self, seq: u64) -> Duration {
        (self.len * seq as u32).saturating_sub(self.phase)
    }

    /// When the current window ends.
    pub fn next_boundary(&self) -> Instant {
        self.t0 + self.window_start(self.seq + 1)
    }

    /// Closes the current window (at its boundary, or early for the last one).
    pub fn close(&mut self, metrics: &Metrics, active_vus: u64) -> WindowReport {
        let series = metrics.close_window();
        let start = self.window_start(self.seq);
        let end = self.window_start(self.seq + 1);
        let len = self.t0.elapsed().min(end).saturating_sub(start);
        let cpu = health::cpu_time();
        let health = HealthRecord {
            rss_bytes: health::rss_bytes(),
            cpu_seconds: (cpu - self.last_cpu).as_secs_f64(),
            active_vus,
            dropped_iterations: sum_counter(&series, "dropped_iterations"),
            start_lag_p99_ms: lag_p99(&series),
            ..HealthRecord::default()
        };
        self.last_cpu = cpu;
        let report = WindowReport {
            generator: self.generator.clone(),
            test_id: self.test_id.clone(),
            seq: self.seq,
            start_unix_ms: self.aligned_unix_ms + self.seq * self.len.as_millis() as u64,
            len_ms: len.as_millis() as u64,
            series,
            health,
        };
        self.seq += 1;
        report
    }
}

fn sum_counter(series: &[SeriesWindow], metric: &str) -> u64 {
    series
        .iter()
        .filter(|s| s.key.metric == metric)
        .map(|s| match s.value {
            Aggregate::Counter(c) => c as u64,
            _ => 0,
        })
        .sum()
}

fn lag_p99(series: &[SeriesWindow]) -> Option<f64> {
    let mut merged: Option<volley_window::Sketch> = None;
    for s in series.iter().filter(|s| s.key.metric == "iteration_start_lag") {
        if let Aggregate::Trend(sk) = &s.value {
            match &mut merged {
                Some(m) => {
                    let _ = m.merge(sk);
                }
                None => merged = Some(sk.clone()),
            }
        }
    }
    merged.and_then(|m| m.quantile(0.99))
}

/// The window clock's task: closes a window at every boundary and folds
/// it into the run.
pub struct Ticking {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<WindowClock>,
}

/// Starts the window clock.
pub fn tick(
    mut clock: WindowClock,
    metrics: Metrics,
    gauges: super::VuGauges,
    fold: super::fold::WindowFold,
) -> Ticking {
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        loop {
            let boundary = tokio::time::Instant::from_std(clock.next_boundary());
            tokio::select! {
                _ = tokio::time::sleep_until(boundary) => {}
                _ = stopped.cancelled() => break,
            }
            let active = gauges.sample();
            let report = clock.close(&metrics, active);
            fold.fold(report);
        }
        clock
    });
    Ticking { stop, task }
}

impl Ticking {
    /// Stops the clock and closes the last (partial) window; returns how
    /// many windows the run had.
    pub async fn last_window(self, metrics: &Metrics, active_vus: u64, fold: &super::fold::WindowFold) -> u64 {
        self.stop.cancel();
        let mut clock = self.task.await.expect("window clock task");
        let last = clock.close(metrics, active_vus);
        let windows = last.seq + 1;
        fold.fold(last);
        windows
    }
}
