//! `type: noop`: an iteration that does nothing, optionally after a sleep.
//!
//! With no sleep it measures the executor's own overhead (the empty k6
//! function of the benchmarks); with a sleep it stands in for a request of
//! known duration, which is how executor parity with k6 is tested.

use crate::config::reader::Obj;
use std::time::Duration;

/// Fields of a noop flow.
pub const FIELDS: &[&str] = &["type", "sleep"];

/// A compiled noop flow.
#[derive(Debug, Clone, Default)]
pub struct NoopFlow {
    /// Sleep per iteration.
    pub sleep: Option<Duration>,
}

impl NoopFlow {
    /// Reads `sleep`.
    pub fn parse(obj: &Obj) -> Option<NoopFlow> {
        Some(NoopFlow { sleep: obj.duration("sleep") })
    }

    /// One iteration.
    pub async fn iterate(&self) {
        super::pause(self.sleep).await;
    }
}
