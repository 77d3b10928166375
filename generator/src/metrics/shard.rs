//! Per-thread recording shards.
//!
//! Each OS thread that records gets its own shard behind its own mutex, so the
//! hot path takes an uncontended lock (only the window collector ever competes
//! for it, once per window). The window collector swaps every shard's slots
//! out and merges them; nothing is ever appended per sample.

use super::registry::SeriesId;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use volley_window::{Aggregate, MetricKind};

/// One thread's aggregates for the current window, indexed by series.
#[derive(Default)]
pub struct Shard {
    slots: Vec<Option<Aggregate>>,
}

impl Shard {
    #[inline]
    fn slot(&mut self, id: SeriesId, kind: MetricKind) -> &mut Aggregate {
        let i = id.index();
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i].get_or_insert_with(|| Aggregate::empty(kind))
    }

    /// Adds to a counter.
    #[inline]
    pub fn add(&mut self, id: SeriesId, value: f64) {
        if let Aggregate::Counter(c) = self.slot(id, MetricKind::Counter) {
            *c += value;
        }
    }

    /// Records a rate sample.
    #[inline]
    pub fn rate(&mut self, id: SeriesId, pass: bool) {
        if let Aggregate::Rate { passes, fails } = self.slot(id, MetricKind::Rate) {
            if pass {
                *passes += 1;
            } else {
                *fails += 1;
            }
        }
    }

    /// Records a trend sample.
    #[inline]
    pub fn trend(&mut self, id: SeriesId, value: f64) {
        if let Aggregate::Trend(s) = self.slot(id, MetricKind::Trend) {
            s.add(value);
        }
    }

    /// Takes the window's aggregates, leaving the shard empty.
    pub fn take(&mut self) -> Vec<Option<Aggregate>> {
        std::mem::take(&mut self.slots)
    }
}

/// The set of shards of one metrics store.
pub struct ShardSet {
    /// Unique per set, never reused (an address could be).
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
}

impl Default for ShardSet {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), shards: Mutex::new(Vec::new()) }
    }
}

thread_local! {
    /// This thread's shard per metrics store (tests may run several stores).
    static LOCAL: RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
}

impl ShardSet {
    /// Runs `f` on the calling thread's shard of this set.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let me = self.id;
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, shard)) = local.iter().find(|(owner, _)| *owner == me) {
                return f(&mut shard.lock());
            }
            // First record from this thread: create and register its shard,
            // and forget shards of stores that no longer exist.
            local.retain(|(_, shard)| Arc::strong_count(shard) > 1);
            let shard = Arc::new(Mutex::new(Shard::default()));
            self.shards.lock().push(shard.clone());
            local.push((me, shard.clone()));
            let mut guard = shard.lock();
            f(&mut guard)
        })
    }

    /// Takes every shard's aggregates and merges them per series.
    pub fn drain(&self) -> Vec<Option<Aggregate>> {
        let shards = self.shards.lock().clone();
        let mut merged: Vec<Option<Aggregate>> = Vec::new();
        for shard in shards {
            let slots = shard.lock().take();
            if merged.len() < slots.len() {
                merged.resize_with(slots.len(), || None);
            }
            for (i, slot) in slots.into_iter().enumerate() {
                let Some(agg) = slot else { continue };
                match &mut merged[i] {
                    Some(into) => {
                        // Kinds cannot differ: a series has one kind.
                        let _ = into.merge(&agg);
                    }
                    empty => *empty = Some(agg),
                }
            }
        }
        merged
    }
}

impl Drop for ShardSet {
    fn drop(&mut self) {
        // Break the Arc held by the registration so thread-locals can prune.
        self.shards.lock().clear();
    }
}
