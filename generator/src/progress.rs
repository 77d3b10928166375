//! The live progress display: k6-style lines, redrawn every 200 ms on a
//! terminal and printed every 5 s otherwise (so logs stay readable).

use crate::console::Console;
use crate::engine::ScenarioRun;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running progress display.
pub struct Progress {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts drawing the progress of `runs`; `planned` is the longest
    /// scenario end (for the bar).
    pub fn start(console: Console, runs: Vec<Arc<ScenarioRun>>, planned: Duration) -> Progress {
        let stop = CancellationToken::new();
        let period = if console.is_tty() { Duration::from_millis(200) } else { Duration::from_secs(5) };
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    tokio::select! {
                        _ = tick.tick() => console.progress(&render(&runs, start.elapsed(), planned, console.is_tty())),
                        _ = stop.cancelled() => break,
                    }
                }
                if console.is_tty() {
                    console.progress(&render(&runs, start.elapsed(), planned, true));
                    console.release_progress();
                }
            })
        };
        Progress { stop, task }
    }

    /// Draws the final state and stops.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The progress lines for the current state.
pub fn render(runs: &[Arc<ScenarioRun>], elapsed: Duration, planned: Duration, bars: bool) -> Vec<String> {
    let (mut active, mut allocated, mut completed, mut interrupted) = (0, 0, 0, 0);
    for r in runs {
        active += r.stats.active.get();
        allocated += r.stats.allocated.load(Ordering::Relaxed);
        completed += r.stats.completed.get();
        interrupted += r.stats.interrupted.get();
    }
    let mut lines = vec![format!(
        "running ({}), {active}/{allocated} VUs, {completed} complete and {interrupted} interrupted iterations",
        clock(elapsed)
    )];
    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in runs {
        let s = &r.stats;
        let state = if s.finished.load(Ordering::Relaxed) {
            "done".to_string()
        } else if let Some(started) = r.started_at() {
            clock(started.elapsed())
        } else {
            "waiting".to_string()
        };
        let share = if planned.is_zero() { 0.0 } else { (elapsed.as_secs_f64() / planned.as_secs_f64()).min(1.0) };
        let bar = if bars {
            let filled = (share * 30.0) as usize;
            format!("[{}{}] ", "=".repeat(filled), " ".repeat(30 - filled))
        } else {
            String::new()
        };
        let dropped = s.dropped.get();
        let dropped = if dropped > 0 { format!(", {dropped} dropped") } else { String::new() };
        lines.push(format!(
            "{:width$} {bar}{state:>8} {}/{} VUs, {} iterations{dropped}",
            r.name,
            s.active.get(),
            s.allocated.load(Ordering::Relaxed),
            s.completed.get(),
        ));
    }
    lines
}

/// `0m05.2s`, as k6's progress clock.
fn clock(d: Duration) -> String {
    let secs = d.as_secs_f64();
    let m = (secs / 60.0).floor();
    format!("{}m{:04.1}s", m, secs - m * 60.0)
}
