//! Alert rules evaluated on the merged, fleet-wide data
//! (`volley-exporter --alert-rules FILE`), posted to a webhook in
//! Alertmanager's format.
//!
//! # Rules
//!
//! ```text
//! <stat> of <metric>[{tag:value,…}] over <duration> <op> <number>[%]
//! no data from a generator for <duration>
//! growth of generator rss over <duration> <op> <number>[%]
//! ```
//!
//! - `stat`, as in k6 thresholds: `p(N)`, `avg`, `min`, `max`, `med` (trends);
//!   `count` (a counter's increments in the range; samples of a trend or
//!   rate); `rate` (a rate metric's passes / (passes + fails); a counter's
//!   increments per second over the time the range covers); `value` (a
//!   gauge's last value).
//! - `{tag:value,…}` selects a sub-metric: every series whose tags contain
//!   the selector is merged, exactly like k6 sub-metric thresholds.
//! - `duration` in k6 syntax (`30s`, `1m30s`); `op` one of `>`, `>=`, `<`,
//!   `<=`, `==`, `!=`; a number may end in `%` (`1%` = 0.01).
//! - Silence: a generator that joined or sent health and has neither
//!   finished cleanly nor sent anything for the duration (exporter's clock).
//! - Growth: a generator's RSS floor now against its floor `duration` ago,
//!   as a fraction (`10%`): the lowest RSS of the newest tenth of the
//!   duration against the lowest of the tenth that ended where it begins, so
//!   the ups and downs of the load are not growth; known only once the
//!   generator has reported for the whole duration, so warm-up is not
//!   growth either.
//!
//! Every rule is evaluated per test id (and per generator for silence and
//! growth), with the states of Prometheus alerts: inactive → pending →
//! firing after holding for `for` → resolved. A range holds the selected
//! aggregate of each window (sketches merged exactly, counters and rate
//! counts summed), keyed by window start so a rewrite replaces.
//!
//! # Bounds
//!
//! Memory is rules × test ids × windows per range (at most
//! [`range::MAX_WINDOWS`]), plus generators × growth ranges. At most 64 test
//! ids are tracked (the least recently active is evicted, counted); a test
//! idle for twice the longest rule span plus one minute is forgotten unless
//! one of its alerts fires. The outbox holds 1024 notifications (the oldest
//! dropped and counted).
//!
//! # Layout
//! - [`rule`]: the rule file and the expression grammar; every problem is
//!   reported at once with its place.
//! - [`range`]: a rule's sliding range of window aggregates, and RSS ranges.
//! - [`state`]: one alert instance's state machine.
//! - [`engine`]: the observer of the pipeline and the ticker: ranges and
//!   instances per test id, transitions to notifications.
//! - [`stats`]: the counters (fired, resolved, delivered, failures, drops).
//! - [`webhook`]: Alertmanager's webhook payload, the bounded outbox, and
//!   delivery with retries.
//!
//! Windows, health points and generator events come from the pipeline
//! ([`crate::observe::Observer`]) into the [`engine::Engine`]; transitions
//! go to the [`webhook::Outbox`], which one task delivers.

pub mod engine;
pub mod range;
pub mod rule;
pub mod state;
pub mod stats;
pub mod webhook;

pub use engine::{Engine, EngineConfig};
pub use rule::{RuleErrors, Rules};
pub use stats::AlertStats;
pub use webhook::DeliveryConfig;

use crate::pipeline::Pipeline;
pub use crate::Log;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running alert engine: the observer, its ticker and its delivery task.
pub struct Alerts {
    engine: Arc<Engine>,
    outbox: Arc<webhook::Outbox>,
    stop: CancellationToken,
    tasks: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
}

impl Alerts {
    /// Starts evaluating `rules` on everything `pipeline` merges from now on.
    /// Needs a tokio runtime.
    pub fn start(
        rules: Rules,
        cfg: EngineConfig,
        delivery: DeliveryConfig,
        pipeline: &Pipeline,
        log: Log,
    ) -> Arc<Self> {
        let counters = Arc::new(stats::Counters::default());
        let outbox = Arc::new(webhook::Outbox::new(delivery.queue, counters.clone(), log.clone()));
        let every = rules.evaluate;
        let external_url = rules.external_url.clone();
        log(format!(
            "alerts: {} rules, evaluated every window and every {}, posted to {}",
            rules.rules.len(),
            volley_window::duration::format_duration(every),
            webhook::shown(&rules.webhook)
        ));
        let engine = Arc::new(Engine::new(rules, cfg, outbox.clone(), counters, log));
        pipeline.observe(engine.clone());
        let stop = CancellationToken::new();
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = interval.tick() => engine.tick(Instant::now(), engine::wall_ms()),
                        _ = stop.cancelled() => return,
                    }
                }
            })
        };
        let delivery = tokio::spawn(webhook::deliver(outbox.clone(), delivery, external_url));
        Arc::new(Self { engine, outbox, stop, tasks: Mutex::new(Some((ticker, delivery))) })
    }

    /// Counters and state size now.
    pub fn stats(&self) -> AlertStats {
        self.engine.stats()
    }

    /// The counters as a JSON object, for `/stats`.
    pub fn stats_json(&self) -> String {
        self.stats().json()
    }

    /// Stops the ticker and delivers what is queued for at most `deadline`.
    /// Alerts still firing are not resolved (the exporter stopping says
    /// nothing about the test).
    pub async fn stop(&self, deadline: Duration) -> AlertStats {
        let tasks = self.tasks.lock().take();
        if let Some((ticker, mut delivery)) = tasks {
            self.stop.cancel();
            let _ = ticker.await;
            self.outbox.close();
            if tokio::time::timeout(deadline, &mut delivery).await.is_err() {
                delivery.abort();
            }
        }
        self.stats()
    }
}
