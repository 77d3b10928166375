//! Where merged windows go. A sink turns a batch of items into one write
//! request; the [`worker`] around it owns the bounded queue, batching,
//! retries with capped exponential backoff and jitter, and the counters.
//!
//! - [`influx`]: InfluxDB line protocol over the v1 or v2 write API.
//! - [`otlp`]: OTLP metrics over gRPC or HTTP/protobuf.
//! - [`spool`]: batches a sink could not take yet, on disk.

pub mod influx;
pub mod otlp;
pub mod spool;
pub mod worker;

use crate::merge::{HealthPoint, MergedWindow, RunSummary};
use crate::out::OutSpec;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One thing to write.
#[derive(Clone, Debug)]
pub enum Item {
    /// A merged window (or its rewrite).
    Window(Arc<MergedWindow>),
    /// One generator's health in one window.
    Health(Arc<HealthPoint>),
    /// A finished test's run totals.
    Summary(Arc<RunSummary>),
    /// Not data: reached once every item queued before it was written (or
    /// given up on) by this sink.
    Marker(Arc<Marker>),
}

/// Fires its action once every sink has passed it: the exporter uses it to
/// acknowledge windows only after they are stored.
pub struct Marker {
    remaining: std::sync::atomic::AtomicUsize,
    action: Box<dyn Fn() + Send + Sync>,
}

impl Marker {
    /// A marker that fires `action` after `sinks` passes.
    pub fn new(sinks: usize, action: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        let m = Arc::new(Self { remaining: sinks.into(), action: Box::new(action) });
        if sinks == 0 {
            (m.action)();
        }
        m
    }

    /// One sink passed it.
    pub fn pass(&self) {
        if self.remaining.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            (self.action)();
        }
    }
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Marker")
    }
}

/// Why a write failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Whether writing the same batch again may succeed (server down,
    /// overloaded, timed out) or not (the server rejected the data).
    pub retryable: bool,
    /// What went wrong, for the log.
    pub message: String,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn retry(message: impl Into<String>) -> Self {
        Self { retryable: true, message: message.into() }
    }

    /// A failure that will repeat.
    pub fn reject(message: impl Into<String>) -> Self {
        Self { retryable: false, message: message.into() }
    }
}

/// A boxed write future.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<WriteOk, SinkError>> + Send + 'a>>;

/// A batch encoded for one sink, sent as is on every attempt (a stateful
/// encoding, such as OTLP's cumulative sums, must advance only once).
#[derive(Clone, Debug, Default)]
pub struct Prepared {
    /// The request body.
    pub body: bytes::Bytes,
    /// Points it holds.
    pub points: u64,
}

/// What a successful write stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOk {
    /// Points (InfluxDB lines, OTLP data points) written.
    pub points: u64,
    /// Request body bytes sent (after compression).
    pub bytes: u64,
}

/// A destination for merged windows.
pub trait Sink: Send + Sync + 'static {
    /// A short name for logs: the `--out` value without secrets.
    fn name(&self) -> String;

    /// Encodes a batch (markers carry no data). Called once per batch.
    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError>;

    /// Sends a prepared batch in one request. Called again after a
    /// retryable error, so the request must be idempotent.
    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a>;
}

/// Builds the sink for one `--out` value.
pub fn build(spec: &OutSpec) -> Result<Arc<dyn Sink>, String> {
    match spec {
        OutSpec::Influx(t) => Ok(Arc::new(influx::InfluxSink::new(t.clone())?)),
        OutSpec::Otlp(t) => Ok(Arc::new(otlp::OtlpSink::new(t.clone())?)),
    }
}
