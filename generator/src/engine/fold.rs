//! What happens to each closed window: it is added to the run totals, the
//! thresholds are judged on them (an `abortOnFail` that fails stops the
//! test), and the window goes on to the outputs' tap with the thresholds'
//! state as `threshold` gauges.

use super::{Abort, WindowTap};
use crate::console::Console;
use crate::control::Live;
use crate::metrics::builtin::THRESHOLD;
use crate::summary::totals::RunTotals;
use crate::threshold::{Judge, Outcome, ThresholdSet};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use volley_window::{Aggregate, SeriesKey, SeriesWindow, Tags, WindowReport};

/// Folds windows into a run; cheap to clone (the window clock's task and
/// the final window share it).
#[derive(Clone)]
pub struct WindowFold {
    /// The run totals so far.
    pub totals: Arc<Mutex<RunTotals>>,
    /// Why the run stopped early, first reason wins.
    pub aborted: Arc<Mutex<Option<Abort>>>,
    thresholds: Vec<ThresholdSet>,
    stop_new: CancellationToken,
    interrupt: CancellationToken,
    console: Console,
    tap: Option<WindowTap>,
    /// False when the exporter judges the fleet's thresholds.
    local_aborts: bool,
    live: Arc<Live>,
    t0: Instant,
}

/// The stop signals a failed `abortOnFail` pulls.
pub struct Stops {
    /// No new iterations.
    pub stop_new: CancellationToken,
    /// Cut the running ones.
    pub interrupt: CancellationToken,
}

impl WindowFold {
    /// A fold for a run that started at `t0`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        thresholds: Vec<ThresholdSet>,
        stops: Stops,
        console: Console,
        tap: Option<WindowTap>,
        local_aborts: bool,
        live: Arc<Live>,
        t0: Instant,
    ) -> WindowFold {
        WindowFold {
            totals: Arc::default(),
            aborted: Arc::default(),
            thresholds,
            stop_new: stops.stop_new,
            interrupt: stops.interrupt,
            console,
            tap,
            local_aborts,
            live,
            t0,
        }
    }

    /// Takes one closed window.
    pub fn fold(&self, mut report: WindowReport) {
        let mut totals = self.totals.lock();
        totals.add_window(&report.series);
        totals.elapsed = self.t0.elapsed();
        let outcomes: Vec<Outcome> = self.thresholds.iter().flat_map(|t| t.evaluate(&totals)).collect();
        self.live.set_tainted(outcomes.iter().any(|o| !o.ok));
        if self.tap.is_some() {
            report.series.extend(threshold_series(outcomes));
        }
        if self.local_aborts {
            let failing: Vec<Outcome> =
                self.thresholds.iter().flat_map(|t| t.aborting_on(&totals, totals.elapsed)).collect();
            if let Some(first) = failing.first() {
                self.abort(format!("threshold {} on {} failed", first.source, first.key));
            }
        }
        drop(totals);
        if let Some(tap) = &self.tap {
            (tap.0)(report);
        }
    }

    fn abort(&self, why: String) {
        let mut aborted = self.aborted.lock();
        if aborted.is_none() {
            self.console.warn(&format!("{why}; aborting the test (abortOnFail)"));
            *aborted = Some(Abort::Threshold(why));
            self.stop_new.cancel();
            self.interrupt.cancel();
        }
    }
}

/// The `threshold` gauges of a window: 1 while a threshold holds, 0 once
/// it fails.
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
