//! The open-model dispatcher shared by both arrival-rate executors.
//!
//! Iterations start on a schedule of absolute offsets whatever the target's
//! response time. The schedule is striped over the VU threads (iteration `i`
//! belongs to shard `i mod n`); on each shard a dispatcher task hands its due
//! iterations to free VUs of that shard, so waking a VU is a local operation.
//! A timer thread supplies the precision tokio's 1 ms timer lacks: it sleeps
//! until the earliest due iteration (at least 200 µs, so high rates are
//! served in batches) and wakes the shards that have work due.
//!
//! The VU pool is global in effect, as in k6: a shard without a free VU takes
//! one from another shard, then grows the pool up to `maxVUs`; only when no VU
//! is free anywhere and none can be added is the iteration dropped and
//! counted, never queued: a late start would hide the overload it measures.
//!
//! A VU that was handed an iteration but has not yet been polled is not busy
//! with the target, only waiting for its thread. When the operating system
//! pauses a shard's thread for a few milliseconds, the dispatcher catches up
//! with a burst of due iterations on its return; before counting one as
//! dropped it lets those VUs run (they are on its own thread), so a drop
//! always means that every VU was inside an iteration. The late starts still
//! show in `iteration_start_lag`.

use crate::engine::{ScenarioRun, Vu};
use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio_util::task::TaskTracker;

/// The longest the timer thread sleeps before looking at stop signals again.
const MAX_NAP: Duration = Duration::from_millis(20);
/// The shortest it sleeps: at high rates shards are woken at most every
/// 200 µs and start everything due by then in one batch, instead of paying a
/// context switch per iteration.
const MIN_NAP: Duration = Duration::from_micros(200);
const UNASSIGNED: u64 = u64::MAX;
const FINISHED: u64 = u64::MAX;

/// The schedule of one shard: the offsets of iterations `shard`, `shard + n`, ...
pub type Stripe = Box<dyn Iterator<Item = Duration> + Send>;

/// A parked VU's mailbox: the scheduled offset of its next iteration.
struct Slot {
    assigned: AtomicU64,
    waker: AtomicWaker,
    home: usize,
}

impl Slot {
    fn assign(&self, offset_nanos: u64) {
        self.assigned.store(offset_nanos, Ordering::Release);
        self.waker.wake();
    }
}

/// One shard's part of the dispatch.
struct ShardState {
    free: ArrayQueue<Arc<Slot>>,
    /// VUs of this shard handed an iteration they have not yet taken.
    handed: AtomicU64,
    /// Offset (ns) of the shard's next undispatched iteration, or FINISHED.
    next_due: AtomicU64,
    waker: AtomicWaker,
}

struct Dispatch {
    run: Arc<ScenarioRun>,
    /// Set once every pre-allocated VU is parked, so setting VUs up never
    /// eats into the schedule.
    start: OnceLock<Instant>,
    /// VUs that have parked in a pool at least once.
    parked: AtomicU64,
    duration: Duration,
    shards: Vec<ShardState>,
    /// VUs that may still be added (maxVUs minus allocated).
    budget: AtomicU64,
    /// Set on a stop before the schedule's end.
    stopped: AtomicBool,
    /// Set once every shard finished dispatching: idle VUs exit.
    done: AtomicBool,
    slots: Mutex<Vec<Arc<Slot>>>,
    tasks: TaskTracker,
}

/// Runs the schedule `stripe(shard, shards)` (offsets from the scenario start,
/// ascending) up to `duration`, on `pre_allocated` VUs that may grow to `max_vus`.
pub async fn run_open(
    run: Arc<ScenarioRun>,
    stripe: impl Fn(usize, usize) -> Stripe,
    duration: Duration,
    pre_allocated: u64,
    max_vus: u64,
) {
    let n = run.shards.len();
    let d = Arc::new(Dispatch {
        run: run.clone(),
        start: OnceLock::new(),
        parked: AtomicU64::new(0),
        duration,
        shards: (0..n)
            .map(|_| ShardState {
                free: ArrayQueue::new(max_vus.max(1) as usize),
                handed: AtomicU64::new(0),
                next_due: AtomicU64::new(0),
                waker: AtomicWaker::new(),
            })
            .collect(),
        budget: AtomicU64::new(max_vus),
        stopped: AtomicBool::new(false),
        done: AtomicBool::new(false),
        slots: Mutex::new(Vec::new()),
        tasks: TaskTracker::new(),
    });
    // VUs exist before the first iteration is due, as k6's preAllocatedVUs.
    for i in 0..pre_allocated {
        if d.reserve_vu() {
            d.add_vu(i as usize % n, UNASSIGNED);
        }
    }
    let setup_limit = Instant::now() + Duration::from_secs(10);
    while d.parked.load(Ordering::Acquire) < pre_allocated && Instant::now() < setup_limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _deadline = run.begin(duration);
    let _ = d.start.set(run.started_at().expect("scenario begun"));
    let dispatchers: Vec<_> = (0..n).map(|s| run.shards.spawn(s, d.clone().dispatch_shard(s, stripe(s, n)))).collect();
    let timer = {
        let d = d.clone();
        std::thread::Builder::new()
            .name(format!("arrivals-{}", run.name))
            .spawn(move || d.timer())
            .expect("spawn the arrival timer thread")
    };
    for task in dispatchers {
        let _ = task.await;
    }
    let _ = tokio::task::spawn_blocking(move || timer.join()).await;
    d.done.store(true, Ordering::Release);
    for slot in d.slots.lock().iter() {
        slot.waker.wake();
    }
    d.tasks.close();
    d.tasks.wait().await;
}

impl Dispatch {
    /// The schedule's zero (only read once dispatching has begun).
    fn start(&self) -> Instant {
        *self.start.get().expect("dispatch started")
    }

    /// The timer thread: wakes shards whose next iteration is due.
    fn timer(&self) {
        loop {
            let elapsed = self.start().elapsed();
            // The scenario's own end coincides with its last offsets; only a
            // stop before the end (Ctrl-C, abortOnFail) cuts the schedule.
            if self.run.interrupt.is_cancelled() || (self.run.stop_new.is_cancelled() && elapsed < self.duration) {
                self.stopped.store(true, Ordering::Release);
                self.shards.iter().for_each(|s| s.waker.wake());
                return;
            }
            let now = elapsed.as_nanos() as u64;
            let mut earliest = FINISHED;
            let mut pending = false;
            for s in &self.shards {
                let due = s.next_due.load(Ordering::Acquire);
                if due == FINISHED {
                    continue;
                }
                pending = true;
                if due <= now {
                    // It will publish its next offset once it has dispatched:
                    // look again after the shortest nap.
                    s.waker.wake();
                    earliest = earliest.min(now);
                } else {
                    earliest = earliest.min(due);
                }
            }
            if !pending {
                return;
            }
            let nap = Duration::from_nanos(earliest.saturating_sub(now));
            std::thread::sleep(nap.clamp(MIN_NAP, MAX_NAP));
        }
    }

    /// One shard's dispatcher task: starts its stripe's iterations when due.
    async fn dispatch_shard(self: Arc<Self>, shard: usize, mut stripe: Stripe) {
        let me = &self.shards[shard];
        let within = |o: &Duration| *o <= self.duration;
        let mut next = stripe.next().filter(within);
        while let Some(due) = next {
            me.next_due.store(due.as_nanos() as u64, Ordering::Release);
            poll_fn(|cx| {
                me.waker.register(cx.waker());
                if self.stopped.load(Ordering::Acquire) || self.start().elapsed() >= due {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            let now = self.start().elapsed();
            while let Some(due) = next.filter(|d| *d <= now) {
                let offset = due.as_nanos() as u64;
                let mut started = self.hand_local(shard, offset);
                // Bounded: a yield lets every VU handed an iteration take it.
                for _ in 0..4 {
                    if started || me.handed.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                    started = self.hand_local(shard, offset);
                }
                if !started {
                    self.start_elsewhere(shard, offset);
                }
                next = stripe.next().filter(within);
            }
        }
        me.next_due.store(FINISHED, Ordering::Release);
    }

    /// Hands a due iteration to a free VU of `shard`, if it has one.
    fn hand_local(&self, shard: usize, offset: u64) -> bool {
        match self.shards[shard].free.pop() {
            Some(slot) => {
                self.hand(&slot, offset);
                true
            }
            None => false,
        }
    }

    fn hand(&self, slot: &Slot, offset: u64) {
        self.shards[slot.home].handed.fetch_add(1, Ordering::AcqRel);
        slot.assign(offset);
    }

    /// Hands a due iteration to a free VU of another shard, grows the pool,
    /// or drops it.
    fn start_elsewhere(self: &Arc<Self>, shard: usize, offset: u64) {
        let n = self.shards.len();
        for k in 1..n {
            if let Some(slot) = self.shards[(shard + k) % n].free.pop() {
                self.hand(&slot, offset);
                return;
            }
        }
        if self.reserve_vu() {
            self.add_vu(shard, offset);
        } else {
            self.run.drop_iteration();
        }
    }

    fn reserve_vu(&self) -> bool {
        self.budget.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1)).is_ok()
    }

    /// Allocates a VU on `shard`; with `first` set it starts that iteration
    /// at once, otherwise it parks in the shard's free pool.
    fn add_vu(self: &Arc<Self>, shard: usize, first: u64) {
        let slot = Arc::new(Slot { assigned: AtomicU64::new(first), waker: AtomicWaker::new(), home: shard });
        if first == UNASSIGNED {
            // Capacity is maxVUs and a VU holds one slot: never full.
            let _ = self.shards[shard].free.push(slot.clone());
        } else {
            self.shards[shard].handed.fetch_add(1, Ordering::AcqRel);
        }
        self.slots.lock().push(slot.clone());
        let vu = self.run.new_vu();
        self.tasks.spawn_on(self.clone().vu_task(slot, vu), self.run.shards.handle(shard));
    }

    async fn vu_task(self: Arc<Self>, slot: Arc<Slot>, mut vu: Vu) {
        let mut first = true;
        loop {
            let offset = poll_fn(|cx| {
                slot.waker.register(cx.waker());
                if std::mem::take(&mut first) {
                    self.parked.fetch_add(1, Ordering::Release);
                }
                let assigned = slot.assigned.swap(UNASSIGNED, Ordering::AcqRel);
                if assigned != UNASSIGNED {
                    self.shards[slot.home].handed.fetch_sub(1, Ordering::AcqRel);
                    Poll::Ready(Some(assigned))
                } else if self.done.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            })
            .await;
            let Some(offset) = offset else { return };
            let due = self.start() + Duration::from_nanos(offset);
            self.run.record_lag(Instant::now().saturating_duration_since(due));
            let completed = {
                let _active = self.run.active();
                self.run.iterate(&mut vu).await
            };
            if !completed && self.run.interrupt.is_cancelled() {
                return;
            }
            let _ = self.shards[slot.home].free.push(slot.clone());
        }
    }
}
