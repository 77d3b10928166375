//! One task per sink: a bounded queue in front, batched writes, retries.
//!
//! The queue holds at most `queue_items` items. When it is full the oldest
//! item is dropped and counted (`dropped`): a sink that is down for longer
//! than the queue covers loses the oldest data, never the process's memory.
//! Failed writes are retried with exponential backoff (capped, with jitter)
//! for as long as the worker runs; a batch the server rejects outright is
//! counted and logged once, and the worker moves on.

use super::{Item, Prepared, Sink, SinkError};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Queue and retry settings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Items the queue holds before dropping the oldest.
    pub queue_items: usize,
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
    /// Items the server rejected outright.
    pub rejected: u64,
    /// Items dropped because the queue was full.
    pub dropped: u64,
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
    pub fn start(sink: Arc<dyn Sink>, cfg: WorkerConfig, log: Arc<dyn Fn(String) + Send + Sync>) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            stats: Mutex::new(WorkerStats::default()),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            abandon: CancellationToken::new(),
            cfg,
        });
        let name = sink.name();
        let task = tokio::spawn(run(sink, shared.clone(), log));
        Self { shared, task: Mutex::new(Some(task)), name }
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues an item; never blocks. A full queue drops its oldest data
    /// item (markers are never dropped and do not count).
    pub fn push(&self, item: Item) {
        {
            let mut q = self.shared.queue.lock();
            let is_data = !matches!(item, Item::Marker(_));
            if is_data && q.data >= self.shared.cfg.queue_items {
                if let Some(pos) = q.items.iter().position(|(_, i)| !matches!(i, Item::Marker(_))) {
                    q.items.remove(pos);
                    q.data -= 1;
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

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats.lock().clone()
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
        stats
    }
}

async fn run(sink: Arc<dyn Sink>, shared: Arc<Shared>, log: Arc<dyn Fn(String) + Send + Sync>) {
    let cfg = shared.cfg.clone();
    let mut failing = false;
    loop {
        let (batch, last_id): (Vec<Item>, Option<u64>) = {
            let q = shared.queue.lock();
            let taken: Vec<&(u64, Item)> = q.items.iter().take(cfg.batch_items).collect();
            (taken.iter().map(|(_, i)| i.clone()).collect(), taken.last().map(|(id, _)| *id))
        };
        let Some(last_id) = last_id else {
            if shared.closing.load(Ordering::Acquire) {
                return;
            }
            shared.wake.notified().await;
            continue;
        };
        let data = batch.iter().filter(|i| !matches!(i, Item::Marker(_))).count();
        let mut delay = cfg.backoff_min;
        // A batch of markers alone needs no write.
        let mut written = data == 0;
        let prepared = if written { Ok(Prepared::default()) } else { sink.prepare(&batch) };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                log(format!("{}: cannot encode {data} items: {}", sink.name(), e.message));
                shared.stats.lock().rejected += data as u64;
                written = true;
                Prepared::default()
            }
        };
        while !written {
            let result = tokio::select! {
                r = sink.send(&prepared) => r,
                _ = shared.abandon.cancelled() => return,
            };
            match result {
                Ok(ok) => {
                    if failing {
                        log(format!("{}: writing again", sink.name()));
                        failing = false;
                    }
                    let mut s = shared.stats.lock();
                    s.items_written += data as u64;
                    s.points_written += ok.points;
                    s.bytes_written += ok.bytes;
                    s.writes += 1;
                    written = true;
                }
                Err(SinkError { retryable: false, message }) => {
                    log(format!("{message} ({data} items not written)"));
                    let mut s = shared.stats.lock();
                    s.rejected += data as u64;
                    s.last_error = Some(message);
                    written = true;
                }
                Err(SinkError { retryable: true, message }) => {
                    if !failing {
                        log(format!("{message}; retrying with backoff, {} items queued", shared.queue.lock().data));
                        failing = true;
                    }
                    {
                        let mut s = shared.stats.lock();
                        s.retries += 1;
                        s.last_error = Some(message);
                    }
                    let jittered = delay.mul_f64(0.5 + rand::random::<f64>());
                    tokio::select! {
                        _ = tokio::time::sleep(jittered) => {}
                        _ = shared.abandon.cancelled() => return,
                    }
                    delay = (delay * 2).min(cfg.backoff_max);
                }
            }
        }
        // Remove the batch (items dropped meanwhile for a full queue are
        // already gone), then let its markers fire.
        let mut passed = Vec::new();
        {
            let mut q = shared.queue.lock();
            while q.items.front().is_some_and(|(id, _)| *id <= last_id) {
                let (_, item) = q.items.pop_front().expect("front exists");
                match item {
                    Item::Marker(m) => passed.push(m),
                    _ => q.data -= 1,
                }
            }
        }
        passed.iter().for_each(|m| m.pass());
    }
}
