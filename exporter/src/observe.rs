//! In-process consumers of the merged stream, beside the sinks.
//!
//! Sinks write to other systems through bounded queues and retries; an
//! observer is cheaper and synchronous: it is handed every merged window and
//! health point the moment the pipeline produces them, and keeps what it
//! needs in memory of its own (bounded by its configuration). The alert
//! engine and the HTML report are observers.
//!
//! Observers run on the pipeline's caller (the ingest connection or the
//! generator's window clock), so they must not block or do I/O: they update
//! their state and return.

use crate::merge::{HealthPoint, MergedWindow};

/// Sees the pipeline's output as it is produced.
pub trait Observer: Send + Sync + 'static {
    /// A merged window, or its rewrite (same test and start) after a late
    /// report: the rewrite replaces what was seen before.
    fn window(&self, window: &MergedWindow);

    /// One generator's health in one window.
    fn health(&self, _health: &HealthPoint) {}

    /// A generator announced itself for a test.
    fn joined(&self, _test_id: &str, _generator: &str) {}

    /// A generator ended its part of a test cleanly (it will be silent).
    fn finished(&self, _test_id: &str, _generator: &str) {}

    /// The window of `test_id` starting at `start_unix_ms` is final: no
    /// late report can rewrite it any more (the merger evicted it).
    fn settled(&self, _test_id: &str, _start_unix_ms: u64) {}

    /// Every generator of `test_id` finished (or was lost), and every one of
    /// its windows was handed over: the test is over.
    fn ended(&self, _test_id: &str) {}
}
