//! VU shards: one OS thread per core, each with its own current-thread
//! tokio runtime.
//!
//! A VU lives on one shard for its whole life, with its connections and
//! timers, so its iterations never move between threads: no work stealing,
//! no cross-thread wake-ups on the hot path, and the metric shard and
//! counters it touches belong to its thread alone. Scenarios spread VUs over
//! the shards; the open-model dispatcher stripes its schedule over them.

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// Index of the shard running on this thread (`usize::MAX` elsewhere).
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The VU threads of a run.
pub struct Shards {
    handles: Vec<Handle>,
    stops: Mutex<Vec<oneshot::Sender<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shards {
    /// Starts `n` shard threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Shards> {
        let mut shards = Shards { handles: Vec::new(), stops: Mutex::new(Vec::new()), threads: Mutex::new(Vec::new()) };
        for index in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            shards.handles.push(runtime.handle().clone());
            shards.stops.get_mut().push(stop_tx);
            shards.threads.get_mut().push(std::thread::Builder::new().name(format!("volley-vu-{index}")).spawn(
                move || {
                    SHARD.with(|s| s.set(index));
                    runtime.block_on(async move {
                        let _ = stop_rx.await;
                    });
                },
            )?);
        }
        Ok(shards)
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never empty; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The runtime of shard `index % len`.
    pub fn handle(&self, index: usize) -> &Handle {
        &self.handles[index % self.handles.len()]
    }

    /// Spawns `fut` on shard `index % len`.
    pub fn spawn<F>(&self, index: usize, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle(index).spawn(fut)
    }

    /// Stops every shard thread; tasks still on them are dropped. Blocks
    /// until the threads have exited (they exit at once).
    pub fn shutdown(&self) {
        for stop in self.stops.lock().drain(..) {
            let _ = stop.send(());
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

/// Index of the shard the calling thread runs, if any.
pub fn current_shard() -> Option<usize> {
    let s = SHARD.with(Cell::get);
    (s != usize::MAX).then_some(s)
}

/// A counter with one cache line per shard, so shards never contend on it;
/// reads add the lines up.
pub struct ShardedCounter {
    lines: Box<[CachePadded<AtomicU64>]>,
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self::new(MAX_COUNTER_LINES)
    }
}

/// Lines per counter: shards beyond this share lines (still correct).
const MAX_COUNTER_LINES: usize = 16;

impl ShardedCounter {
    fn new(lines: usize) -> Self {
        Self { lines: (0..lines.max(1)).map(|_| CachePadded::new(AtomicU64::new(0))).collect() }
    }

    #[inline]
    fn line(&self) -> &AtomicU64 {
        let i = current_shard().map_or(self.lines.len() - 1, |s| s % self.lines.len());
        &self.lines[i]
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.line().fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` (the total never goes below what was added).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.line().fetch_sub(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.lines.iter().fold(0u64, |acc, l| acc.wrapping_add(l.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn tasks_run_on_their_shard_and_counters_add_up() {
        let shards = Shards::start(3).unwrap();
        let counter = Arc::new(ShardedCounter::default());
        let mut joins = Vec::new();
        for i in 0..9 {
            let c = counter.clone();
            joins.push(shards.spawn(i, async move {
                c.add(10);
                c.sub(3);
                current_shard()
            }));
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let seen: Vec<Option<usize>> = rt.block_on(async { futures_join(joins).await });
        assert_eq!(seen, (0..9).map(|i| Some(i % 3)).collect::<Vec<_>>());
        assert_eq!(counter.get(), 63);
        shards.shutdown();
    }

    async fn futures_join(joins: Vec<tokio::task::JoinHandle<Option<usize>>>) -> Vec<Option<usize>> {
        let mut out = Vec::new();
        for j in joins {
            out.push(j.await.unwrap());
        }
        out
    }
}
