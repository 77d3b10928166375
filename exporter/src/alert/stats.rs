//! The engine's counters, and how they are shown (`/stats` JSON, the stats
//! line).

use std::sync::atomic::AtomicU64;

/// What the engine did, as counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Alerts that fired.
    pub fired: AtomicU64,
    /// Alerts that resolved.
    pub resolved: AtomicU64,
    /// Notifications the receiver accepted.
    pub delivered: AtomicU64,
    /// Notifications given up (refused, or still failing after the retries).
    pub failed: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Notifications dropped because the outbox was full.
    pub dropped: AtomicU64,
    /// Test ids whose state was evicted by the bound.
    pub tests_evicted: AtomicU64,
    /// Generators whose state was evicted by the bound.
    pub generators_evicted: AtomicU64,
}

/// A snapshot of the counters and the state's size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Rules loaded.
    pub rules: usize,
    /// Test ids tracked now.
    pub tests: usize,
    /// Alert instances firing now.
    pub firing: usize,
    /// See [`Counters`].
    pub fired: u64,
    /// See [`Counters`].
    pub resolved: u64,
    /// See [`Counters`].
    pub delivered: u64,
    /// See [`Counters`].
    pub webhook_failures: u64,
    /// See [`Counters`].
    pub retries: u64,
    /// See [`Counters`].
    pub dropped: u64,
    /// See [`Counters`].
    pub tests_evicted: u64,
    /// See [`Counters`].
    pub generators_evicted: u64,
    /// Notifications waiting for delivery.
    pub queued: usize,
}

impl AlertStats {
    fn pairs(&self) -> [(&'static str, u64); 12] {
        [
            ("rules", self.rules as u64),
            ("tests", self.tests as u64),
            ("firing", self.firing as u64),
            ("fired", self.fired),
            ("resolved", self.resolved),
            ("delivered", self.delivered),
            ("webhook_failures", self.webhook_failures),
            ("retries", self.retries),
            ("dropped", self.dropped),
            ("tests_evicted", self.tests_evicted),
            ("generators_evicted", self.generators_evicted),
            ("queued", self.queued as u64),
        ]
    }

    /// `{"rules":…,"fired":…,…}`, for `/stats`.
    pub fn json(&self) -> String {
        let fields: Vec<String> = self.pairs().iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    }

    /// `alerts: rules=… fired=… …`, for the stats line.
    pub fn line(&self) -> String {
        let fields: Vec<String> = self.pairs().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("alerts: {}", fields.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_json_and_as_a_line() {
        let s = AlertStats { rules: 2, fired: 3, resolved: 1, queued: 4, ..AlertStats::default() };
        let v: serde_json::Value = serde_json::from_str(&s.json()).unwrap();
        assert_eq!((v["rules"].as_u64(), v["fired"].as_u64(), v["queued"].as_u64()), (Some(2), Some(3), Some(4)));
        assert_eq!(v.as_object().unwrap().len(), 12);
        assert!(
            s.line().starts_with("alerts: rules=2 tests=0 firing=0 fired=3 resolved=1 delivered=0"),
            "{}",
            s.line()
        );
    }
}
