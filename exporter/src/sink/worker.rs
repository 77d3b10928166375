//! One task per sink: a bounded queue in front, batched writes, retries.
//!
//! The queue holds `queue_items` data items; what happens when it is full is
//! [`WhenFull`]: the exporter daemon makes its generators wait (nothing is
//! dropped, windows stay unacknowledged in their bounded buffers), a
//! generator writing its own outputs drops the oldest item and counts it
//! as lost. A write that fails because the output is down is retried with
//! exponential backoff (capped, with jitter) for as long as the worker
//! runs, or spooled; nothing it holds is acknowledged meanwhile. A batch
//! refused as bad data is halved until the refused points are isolated:
//! the rest is stored, the refused points are counted and logged with one
//! example. A panic while encoding or sending is caught, counted and
//! logged; the worker goes on with the next batch.

use super::spool::Spool;
use super::{Failure, Item, Prepared, Sink, SinkError};
use crate::Log;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use volley_window::retry::Backoff;

/// What a full queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the oldest data item and count it as lost (a generator's own
    /// outputs: the test cannot wait for them).
    #[default]
    DropOldest,
    /// Keep everything: the pipeline's producers wait until
    /// [`Worker::has_room`] (the exporter stops reading generators' frames,
    /// whose windows stay unacknowledged in their own bounded buffers).
    Wait,
}

/// Requests spent isolating the refused points of one batch; what is not
/// isolated by then is counted as refused.
const ISOLATION_BUDGET: usize = 256;

/// Queue and retry settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Data items the queue holds.
    pub queue_items: usize,
    /// What a full queue does.
    pub when_full: WhenFull,
    /// Items per write request.
    pub batch_items: usize,
    /// First retry delay.
    pub backoff_min: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queue_items: 20_000,
            when_full: WhenFull::default(),
            batch_items: 500,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// What a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Items written.
    pub items_written: u64,
    /// Points written.
    pub points_written: u64,
    /// Compressed bytes sent in successful writes.
    pub bytes_written: u64,
    /// Write requests that succeeded.
    pub writes: u64,
    /// Write attempts that failed and were retried.
    pub retries: u64,
    /// Items not written because encoding them failed (or panicked).
    pub rejected: u64,
    /// Points the output refused as bad data (the rest of their batches
    /// was stored).
    pub points_rejected: u64,
    /// Items dropped because the queue was full.
    pub dropped: u64,
    /// Panics caught while encoding or sending.
    pub panics: u64,
    /// Whether the output was down when the counters were read.
    pub failing: bool,
    /// Items written to the disk spool while the sink was down.
    pub spooled: u64,
    /// Spooled batches sent after the sink came back.
    pub replayed: u64,
    /// Batches still in the spool when the worker stopped (kept on disk for
    /// the next start).
    pub spool_left: u64,
    /// Items still queued when the worker stopped.
    pub unwritten: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Queued items, numbered in arrival order.
#[derive(Default)]
struct Queue {
    items: VecDeque<(u64, Item)>,
    next_id: u64,
    /// Data items (markers excluded), for the bound.
    data: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    stats: Mutex<WorkerStats>,
    wake: Notify,
    /// Set when no more items will come: drain, then stop.
    closing: AtomicBool,
    /// Cancelled when the drain deadline passed: stop now.
    abandon: CancellationToken,
    /// Batches in the spool (for reports).
    spool_len: AtomicU64,
    /// Set while the output is down (for `/ready`).
    failing: AtomicBool,
    cfg: WorkerConfig,
}

/// The handle to one running sink worker.
pub struct Worker {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    name: String,
}

impl Worker {
    /// Starts a worker for `sink` on the current runtime; `log` receives
    /// warnings (first failure, recovery, rejections).
    pub fn start(sink: Arc<dyn Sink>, cfg: WorkerConfig, log: Log, spool: Option<Spool>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            stats: Mutex::new(WorkerStats::default()),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            abandon: CancellationToken::new(),
            spool_len: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            cfg,
        });
        let name = sink.name();
        if let Some(s) = &spool {
            shared.spool_len.store(s.len() as u64, Ordering::Relaxed);
        }
        let task = tokio::spawn(run(sink, shared.clone(), log, spool));
        Self { shared, task: Mutex::new(Some(task)), name }
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues an item; never blocks. With [`WhenFull::DropOldest`] a full
    /// queue drops its oldest data item and taints the markers behind it
    /// (markers are never dropped and do not count); with
    /// [`WhenFull::Wait`] producers check [`Worker::has_room`] first.
    pub fn push(&self, item: Item) {
        {
            let mut q = self.shared.queue.lock();
            let is_data = !matches!(item, Item::Marker(_));
            let full = q.data >= self.shared.cfg.queue_items;
            if is_data && full && self.shared.cfg.when_full == WhenFull::DropOldest {
                if let Some(pos) = q.items.iter().position(|(_, i)| !matches!(i, Item::Marker(_))) {
                    q.items.remove(pos);
                    q.data -= 1;
                    q.items.iter().skip(pos).for_each(|(_, i)| {
                        if let Item::Marker(m) = i {
                            m.taint();
                        }
                    });
                    self.shared.stats.lock().dropped += 1;
                }
            }
            let id = q.next_id;
            q.next_id += 1;
            q.data += is_data as usize;
            q.items.push_back((id, item));
        }
        self.shared.wake.notify_one();
    }

    /// Data items waiting.
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().data
    }

    /// Whether the queue is below its bound.
    pub fn has_room(&self) -> bool {
        self.shared.queue.lock().data < self.shared.cfg.queue_items
    }

    /// Whether the output is down right now (its last write failed).
    pub fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        let mut stats = self.shared.stats.lock().clone();
        stats.failing = self.failing();
        stats
    }

    /// Writes what is queued, for at most `deadline`, then stops; returns the
    /// final counters (`unwritten` counts what could not be written in time).
    pub async fn finish(&self, deadline: Duration) -> WorkerStats {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(mut task) = task {
            if tokio::time::timeout(deadline, &mut task).await.is_err() {
                self.shared.abandon.cancel();
                let _ = task.await;
            }
        }
        let mut stats = self.shared.stats.lock().clone();
        stats.unwritten = self.shared.queue.lock().data as u64;
        stats.spool_left = self.shared.spool_len.load(Ordering::Relaxed);
        stats
    }
}

/// The worker's view of its sink.
struct Run {
    sink: Arc<dyn Sink>,
    shared: Arc<Shared>,
    log: Log,
    spool: Option<Spool>,
    /// Set while the sink is failing: no attempt before this instant.
    retry_at: Option<tokio::time::Instant>,
    backoff: Backoff,
}

enum Sent {
    /// Stored (maybe without some points refused as bad data).
    Ok,
    /// The output is down: retry later.
    Failed,
}

impl Run {
    /// One request, with a panic in the sink caught and reported as an
    /// output failure.
    async fn send_once(&self, batch: &Prepared) -> Option<Result<super::WriteOk, SinkError>> {
        use futures_util::FutureExt as _;
        let send = std::panic::AssertUnwindSafe(self.sink.send(batch)).catch_unwind();
        let result = tokio::select! {
            r = send => r,
            _ = self.shared.abandon.cancelled() => return None,
        };
        Some(result.unwrap_or_else(|panic| {
            self.shared.stats.lock().panics += 1;
            Err(SinkError::down(format!("{}: the write panicked: {}", self.sink.name(), panic_message(&panic))))
        }))
    }

    /// Stores a batch: one request, and when the output refuses it as bad
    /// data, halves until the refused points are isolated.
    async fn attempt(&mut self, batch: &Prepared, items: usize) -> Option<Sent> {
        match self.send_once(batch).await? {
            Ok(ok) => {
                self.stored(ok, items);
                Some(Sent::Ok)
            }
            Err(e) if e.failure == Failure::Down => {
                self.down(e.message);
                Some(Sent::Failed)
            }
            Err(e) => self.isolate(batch, items, e.message).await,
        }
    }

    /// Halves a refused batch until every piece is stored or is one refused
    /// point (or the budget is spent). Writes are idempotent, so pieces an
    /// output had already stored (InfluxDB 1.x's partial write) may be sent
    /// again.
    async fn isolate(&mut self, batch: &Prepared, items: usize, first: String) -> Option<Sent> {
        let mut pending = vec![(batch.clone(), Some(first))];
        let (mut stored, mut refused, mut budget) = (super::WriteOk::default(), 0u64, ISOLATION_BUDGET);
        let mut example: Option<String> = None;
        while let Some((piece, known)) = pending.pop() {
            let outcome = match known {
                Some(why) => Err(SinkError::bad_data(why)),
                None if budget == 0 => Err(SinkError::bad_data("isolation budget spent".to_string())),
                None => {
                    budget -= 1;
                    self.send_once(&piece).await?
                }
            };
            match outcome {
                Ok(ok) => {
                    stored.points += ok.points;
                    stored.bytes += ok.bytes;
                    refused += ok.refused.map_or(0, |r| r.0);
                }
                Err(e) if e.failure == Failure::Down => {
                    // Gone while isolating: the whole batch again later.
                    self.down(e.message);
                    return Some(Sent::Failed);
                }
                Err(e) => match self.sink.split(&piece).filter(|_| budget > 0) {
                    Some([a, b]) => {
                        pending.push((b, None));
                        pending.push((a, None));
                    }
                    None => {
                        refused += piece.points;
                        if example.is_none() {
                            let sample = self.sink.example(&piece).unwrap_or_default();
                            example = Some(format!("{} (e.g. {sample})", e.message));
                        }
                    }
                },
            }
        }
        stored.refused = Some((refused, example.unwrap_or_default()));
        self.stored(stored, items);
        Some(Sent::Ok)
    }

    /// Counts a stored batch; logs refused points and a recovery.
    fn stored(&mut self, ok: super::WriteOk, items: usize) {
        if self.retry_at.take().is_some() {
            (self.log)(format!("{}: writing again", self.sink.name()));
        }
        self.shared.failing.store(false, Ordering::Relaxed);
        self.backoff.succeeded();
        let mut s = self.shared.stats.lock();
        if let Some((n, why)) = ok.refused.filter(|r| r.0 > 0) {
            (self.log)(format!("{}: {n} points refused as bad data and not stored: {why}", self.sink.name()));
            s.points_rejected += n;
            s.last_error = Some(why);
        }
        s.items_written += items as u64;
        s.points_written += ok.points;
        s.bytes_written += ok.bytes;
        s.writes += 1;
    }

    /// The output is down: count, log the first failure, back off.
    fn down(&mut self, message: String) {
        if self.retry_at.is_none() {
            let queued = self.shared.queue.lock().data;
            let spooled = self.spool.as_ref().map_or(String::new(), |s| format!(", {} batches spooled", s.len()));
            (self.log)(format!("{message}; retrying with backoff, {queued} items queued{spooled}"));
        }
        self.shared.failing.store(true, Ordering::Relaxed);
        {
            let mut s = self.shared.stats.lock();
            s.retries += 1;
            s.last_error = Some(message);
        }
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff.failed());
    }

    fn may_try(&self) -> bool {
        self.retry_at.is_none_or(|t| tokio::time::Instant::now() >= t)
    }

    /// Sleeps until the next retry, new items, or the end.
    async fn pause(&self) -> bool {
        let retry = async {
            match self.retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shared.wake.notified() => true,
            _ = retry => true,
            _ = self.shared.abandon.cancelled() => false,
        }
    }

    /// Sends the oldest spooled batch if allowed; true if one left the spool.
    async fn replay(&mut self) -> Option<bool> {
        let may_try = self.may_try();
        let Some(spool) = self.spool.as_mut() else { return Some(false) };
        if spool.is_empty() || !may_try {
            return Some(false);
        }
        match spool.peek() {
            None => Some(false),
            Some(Err(problem)) => {
                (self.log)(problem);
                Some(true)
            }
            Some(Ok(batch)) => match self.attempt(&batch, 0).await? {
                Sent::Ok => {
                    let spool = self.spool.as_mut().expect("checked");
                    spool.pop();
                    self.shared.stats.lock().replayed += 1;
                    Some(true)
                }
                Sent::Failed => Some(false),
            },
        }
    }

    /// Removes the queue's front up to `last_id` and lets its markers fire;
    /// when the data was lost instead of stored, they fire tainted.
    fn complete(&self, last_id: u64, lost: bool) {
        let mut passed = Vec::new();
        {
            let mut q = self.shared.queue.lock();
            while q.items.front().is_some_and(|(id, _)| *id <= last_id) {
                let (_, item) = q.items.pop_front().expect("front exists");
                match item {
                    Item::Marker(m) => passed.push(m),
                    _ => q.data -= 1,
                }
            }
        }
        for m in passed {
            if lost {
                m.taint();
            }
            m.pass();
        }
    }

    /// Encodes a batch; a failure or a panic loses its items (counted).
    fn prepare(&self, batch: &[Item], data: usize) -> Option<Prepared> {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.sink.prepare(batch)));
        let why = match result {
            Ok(Ok(p)) => return Some(p),
            Ok(Err(e)) => e.message,
            Err(panic) => {
                self.shared.stats.lock().panics += 1;
                format!("encoding panicked: {}", panic_message(&panic))
            }
        };
        (self.log)(format!("{}: cannot encode {data} items: {why}", self.sink.name()));
        let mut s = self.shared.stats.lock();
        s.rejected += data as u64;
        s.last_error = Some(why);
        None
    }
}

async fn run(sink: Arc<dyn Sink>, shared: Arc<Shared>, log: Log, spool: Option<Spool>) {
    let backoff = Backoff::new(shared.cfg.backoff_min, shared.cfg.backoff_max);
    let mut r = Run { sink, shared, log, spool, retry_at: None, backoff };
    work(&mut r).await;
    r.shared.spool_len.store(r.spool.as_ref().map_or(0, |s| s.len() as u64), Ordering::Relaxed);
}

async fn work(r: &mut Run) {
    let batch_items = r.shared.cfg.batch_items;
    loop {
        r.shared.spool_len.store(r.spool.as_ref().map_or(0, |s| s.len() as u64), Ordering::Relaxed);
        // What is spooled is older than anything queued: it goes first.
        match r.replay().await {
            None => return,
            Some(true) => continue,
            Some(false) => {}
        }
        let spool_backlog = r.spool.as_ref().is_some_and(|s| !s.is_empty());
        let (batch, last_id): (Vec<Item>, Option<u64>) = {
            let q = r.shared.queue.lock();
            let taken: Vec<&(u64, Item)> = q.items.iter().take(batch_items).collect();
            (taken.iter().map(|(_, i)| i.clone()).collect(), taken.last().map(|(id, _)| *id))
        };
        let Some(last_id) = last_id else {
            if r.shared.closing.load(Ordering::Acquire) && !spool_backlog {
                return;
            }
            if !r.pause().await {
                return;
            }
            continue;
        };
        let data = batch.iter().filter(|i| !matches!(i, Item::Marker(_))).count();
        if data == 0 {
            // Markers alone: everything before them is stored.
            r.complete(last_id, false);
            continue;
        }
        let Some(prepared) = r.prepare(&batch, data) else {
            r.complete(last_id, true);
            continue;
        };
        // While the sink is down (or the spool still holds older batches),
        // new batches go to the spool, in order, if it has room.
        let spool_first = spool_backlog || !r.may_try();
        if spool_first {
            if let Some(spool) = r.spool.as_mut() {
                if spool.has_room(&prepared) {
                    match spool.push(&prepared) {
                        Ok(()) => {
                            r.shared.stats.lock().spooled += data as u64;
                            r.complete(last_id, false);
                            continue;
                        }
                        Err(e) => (r.log)(format!("{}: cannot spool: {e}", r.sink.name())),
                    }
                }
            }
            // No spool, or it is full: wait for the sink, keep the batch.
            if !r.pause().await {
                return;
            }
            continue;
        }
        match r.attempt(&prepared, data).await {
            None => return,
            Some(Sent::Ok) => r.complete(last_id, false),
            // Prepared again on the next attempt only for stateless sinks;
            // a stateful encoder must not advance twice, so the batch is
            // spooled now if possible, else retried as prepared.
            Some(Sent::Failed) => {
                let mut stored = false;
                if let Some(spool) = r.spool.as_mut() {
                    if spool.has_room(&prepared) && spool.push(&prepared).is_ok() {
                        r.shared.stats.lock().spooled += data as u64;
                        stored = true;
                    }
                }
                if stored {
                    r.complete(last_id, false);
                    continue;
                }
                // Retry this very encoding until it goes through.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(r.retry_at.unwrap_or_else(tokio::time::Instant::now)) => {}
                        _ = r.shared.abandon.cancelled() => return,
                    }
                    match r.attempt(&prepared, data).await {
                        None => return,
                        Some(Sent::Ok) => break,
                        Some(Sent::Failed) => {}
                    }
                }
                r.complete(last_id, false);
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
