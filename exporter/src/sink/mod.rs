//! Where merged windows go. A sink turns a batch of items into one write
//! request; the [`worker`] around it owns the bounded queue, batching,
//! retries with capped exponential backoff and jitter, and the counters.
//!
//! - [`influx`]: InfluxDB line protocol over the v1 or v2 write API.
//! - [`otlp`]: OTLP metrics over gRPC or HTTP/protobuf.
//! - [`file`](mod@file): JSON lines or CSV in a file.
//! - [`spool`]: batches a sink could not take yet, on disk.

pub mod file;
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
/// acknowledge windows only after they are stored. A sink that lost data
/// queued before it (a full queue dropping its oldest items, an encoding
/// that failed) taints it, and a tainted marker never fires: those windows
/// stay unacknowledged, so the generator keeps them and says so at its end.
pub struct Marker {
    remaining: std::sync::atomic::AtomicUsize,
    tainted: std::sync::atomic::AtomicBool,
    action: Box<dyn Fn() + Send + Sync>,
}

impl Marker {
    /// A marker that fires `action` after `sinks` passes.
    pub fn new(sinks: usize, action: impl Fn() + Send + Sync + 'static) -> Arc<Self> {
        let m = Arc::new(Self { remaining: sinks.into(), tainted: false.into(), action: Box::new(action) });
        if sinks == 0 {
            (m.action)();
        }
        m
    }

    /// Data this marker covers was lost by one sink: it must not fire.
    pub fn taint(&self) {
        self.tainted.store(true, std::sync::atomic::Ordering::Release);
    }

    /// One sink passed it.
    pub fn pass(&self) {
        if self.remaining.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1
            && !self.tainted.load(std::sync::atomic::Ordering::Acquire)
        {
            (self.action)();
        }
    }
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Marker")
    }
}

/// What a failed write means for the data in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The output cannot take anything now (unreachable, overloaded, its
    /// credentials or database refused): the same request may succeed
    /// later. Retried with backoff, spooled if a spool is configured, never
    /// acknowledged.
    Down,
    /// The output refused what the request holds: smaller requests isolate
    /// the points it refuses, the rest is stored (see [`Sink::split`]).
    BadData,
}

/// Why a write failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What the failure means for the batch.
    pub failure: Failure,
    /// What went wrong, for the log.
    pub message: String,
}

impl SinkError {
    /// The output is down; try again later.
    pub fn down(message: impl Into<String>) -> Self {
        Self { failure: Failure::Down, message: message.into() }
    }

    /// The output refused the data.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self { failure: Failure::BadData, message: message.into() }
    }

    /// Classifies an HTTP answer that is not a success, the same way for
    /// every HTTP output: only 400, 413 and 422 say something about the
    /// data; every other status (5xx, 408, 429, and also 401/403/404 of a
    /// rotated token or a missing database) is an output that cannot store
    /// anything yet, so nothing is acknowledged until it can.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        match volley_window::retry::classify(status) {
            volley_window::retry::Answer::BadRequest => Self::bad_data(message),
            _ => Self::down(message),
        }
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOk {
    /// Points (InfluxDB lines, OTLP data points) written.
    pub points: u64,
    /// Request body bytes sent (after compression).
    pub bytes: u64,
    /// Points of the request the output refused while storing the rest
    /// (OTLP's partial success), with its reason.
    pub refused: Option<(u64, String)>,
}

/// A destination for merged windows.
pub trait Sink: Send + Sync + 'static {
    /// A short name for logs: the `--out` value without secrets.
    fn name(&self) -> String;

    /// Encodes a batch (markers carry no data). Called once per batch.
    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError>;

    /// Sends a prepared batch in one request. Called again after a
    /// failure, so the request must be idempotent.
    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a>;

    /// Two halves of a batch the output refused as bad data, to find the
    /// points it refuses; `None` when the batch cannot be split (one point,
    /// or an encoding that does not split).
    fn split(&self, _batch: &Prepared) -> Option<[Prepared; 2]> {
        None
    }

    /// A readable sample of a refused batch, for the log.
    fn example(&self, _batch: &Prepared) -> Option<String> {
        None
    }
}

/// Builds the sink for one `--out` value.
pub fn build(spec: &OutSpec) -> Result<Arc<dyn Sink>, String> {
    match spec {
        OutSpec::Influx(t) => Ok(Arc::new(influx::InfluxSink::new(t.clone())?)),
        OutSpec::Otlp(t) => Ok(Arc::new(otlp::OtlpSink::new(t.clone())?)),
        OutSpec::File(t) => Ok(Arc::new(file::FileSink::new(t.clone())?)),
    }
}
