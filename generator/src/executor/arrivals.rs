//! The open-model dispatcher shared by both arrival-rate executors.
//!
//! Iterations start on a schedule of absolute offsets whatever the target's
//! response time. A dedicated OS thread sleeps until each due offset (the
//! tokio timer's 1 ms granularity and late wake-ups would bunch starts and
//! cause false drops at high rates) and, on every wake-up, hands each due
//! iteration to a free VU taken from a lock-free pool. When no VU is free the
//! pool grows up to `maxVUs`; beyond that the iteration is dropped and counted,
//! never queued: a late start would hide the overload it measures.

use crate::engine::{ScenarioRun, Vu};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest the dispatcher sleeps before looking at stop signals again.
const MAX_NAP: Duration = Duration::from_millis(20);
/// The shortest the dispatcher sleeps: at high rates it wakes at most every
/// 200 µs and starts everything due by then in one batch. Waking per
/// iteration would cost a context switch per iteration for the dispatcher and
/// for the worker it wakes, which dominated CPU use at 200k/s.
const MIN_NAP: Duration = Duration::from_micros(200);
const UNASSIGNED: u64 = u64::MAX;

/// A parked VU's mailbox: the scheduled offset of its next iteration.
struct Slot {
    assigned: AtomicU64,
    wake: Notify,
}

/// The pool of VUs of one open-model scenario.
struct Pool {
    free: ArrayQueue<Arc<Slot>>,
    max_vus: u64,
    done: CancellationToken,
    tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
}

/// Runs `offsets` (from the scenario start, ascending, all within
/// `duration`) on a pool of `pre_allocated` VUs that may grow to `max_vus`.
pub async fn run_open(
    run: Arc<ScenarioRun>,
    offsets: impl Iterator<Item = Duration> + Send + 'static,
    duration: Duration,
    pre_allocated: u64,
    max_vus: u64,
) {
    let _deadline = run.begin(duration);
    let start = run.started_at().expect("scenario begun");
    let pool = Arc::new(Pool {
        free: ArrayQueue::new(max_vus.max(1) as usize),
        max_vus,
        done: CancellationToken::new(),
        tasks: TaskTracker::new(),
        runtime: tokio::runtime::Handle::current(),
    });
    // VUs exist before the first iteration is due, as k6's preAllocatedVUs.
    for _ in 0..pre_allocated {
        pool.add_vu(&run, start, UNASSIGNED);
    }

    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
    {
        let (run, pool) = (run.clone(), pool.clone());
        std::thread::Builder::new()
            .name(format!("arrivals-{}", run.name))
            .spawn(move || {
                dispatch(&run, &pool, start, duration, offsets);
                let _ = finished_tx.send(());
            })
            .expect("spawn the arrival dispatcher thread");
    }
    let _ = finished_rx.await;
    pool.done.cancel();
    pool.tasks.close();
    pool.tasks.wait().await;
}

fn dispatch(
    run: &Arc<ScenarioRun>,
    pool: &Arc<Pool>,
    start: Instant,
    duration: Duration,
    offsets: impl Iterator<Item = Duration>,
) {
    for offset in offsets {
        if offset > duration {
            break;
        }
        loop {
            // The scenario's own end coincides with its last offsets; only a
            // stop before the end (Ctrl-C, abortOnFail) cuts the schedule.
            let elapsed = start.elapsed();
            if run.interrupt.is_cancelled() || (run.stop_new.is_cancelled() && elapsed < duration) {
                return;
            }
            if elapsed >= offset {
                break;
            }
            std::thread::sleep((offset - elapsed).clamp(MIN_NAP, MAX_NAP));
        }
        let nanos = offset.as_nanos() as u64;
        match pool.free.pop() {
            Some(slot) => {
                slot.assigned.store(nanos, Ordering::Release);
                slot.wake.notify_one();
            }
            None if run.stats.allocated.load(Ordering::Relaxed) < pool.max_vus => {
                pool.add_vu(run, start, nanos)
            }
            None => run.drop_iteration(),
        }
    }
}

impl Pool {
    /// Allocates a VU; with `first` set it starts that iteration at once,
    /// otherwise it parks in the free pool.
    fn add_vu(self: &Arc<Self>, run: &Arc<ScenarioRun>, start: Instant, first: u64) {
        let slot = Arc::new(Slot {
            assigned: AtomicU64::new(first),
            wake: Notify::new(),
        });
        if first == UNASSIGNED {
            // Capacity is max_vus and each VU holds one slot: cannot be full.
            let _ = self.free.push(slot.clone());
        }
        let vu = run.new_vu();
        let run = run.clone();
        let pool = self.clone();
        self.tasks
            .spawn_on(pool.clone().vu_task(run, slot, vu, start), &self.runtime);
    }

    async fn vu_task(
        self: Arc<Self>,
        run: Arc<ScenarioRun>,
        slot: Arc<Slot>,
        mut vu: Vu,
        start: Instant,
    ) {
        loop {
            let offset = loop {
                let assigned = slot.assigned.swap(UNASSIGNED, Ordering::AcqRel);
                if assigned != UNASSIGNED {
                    break assigned;
                }
                if self.done.is_cancelled() {
                    return;
                }
                tokio::select! {
                    _ = slot.wake.notified() => {}
                    _ = self.done.cancelled() => {}
                }
            };
            let due = start + Duration::from_nanos(offset);
            run.record_lag(Instant::now().saturating_duration_since(due));
            let completed = {
                let _active = run.active();
                run.iterate(&mut vu).await
            };
            if !completed && run.interrupt.is_cancelled() {
                return;
            }
            let _ = self.free.push(slot.clone());
        }
    }
}
