//! Evaluation: per test id, every rule's range and alert instances; the
//! observer side (windows, health, generators joining and finishing) and the
//! ticker side (silence, data that stopped coming, idle tests).
//!
//! Clocks: a data rule is evaluated at its test's *data time*, the end of
//! the newest merged window (generator clocks, aligned to Unix time), so
//! `for` and ranges follow the data however late the exporter merges it.
//! When a test's windows stop coming, the ticker moves its data time on with
//! the exporter's clock once `stale_after` (the merge grace and some) has
//! passed since the newest window arrived: its windows then leave the
//! ranges, and its alerts resolve for lack of data, as in Prometheus.
//! Silence is measured on the exporter's clock alone.

use super::range::{select, Mismatch, Range, RssRange};
use super::rule::{Condition, Rule, Rules};
use super::state::{Instance, Transition};
use super::stats::{AlertStats, Counters};
use super::webhook::{Notification, Outbox};
use super::Log;
use crate::merge::{HealthPoint, MergedWindow};
use crate::observe::Observer;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bounds and clocks of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Test ids tracked at once; a new one beyond evicts the least recently
    /// active (counted).
    pub max_tests: usize,
    /// Generators tracked per test; a new one beyond evicts the least
    /// recently seen (counted).
    pub max_generators: usize,
    /// How long after a test's newest window arrived its data time starts
    /// following the exporter's clock.
    pub stale_after: Duration,
}

impl EngineConfig {
    /// The daemon's bounds, for a merge grace of `grace`.
    pub fn for_grace(grace: Duration) -> Self {
        Self { max_tests: 64, max_generators: 1024, stale_after: grace + Duration::from_secs(5) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self::for_grace(Duration::from_secs(5))
    }
}

/// The alert engine: an [`Observer`] of the pipeline plus a ticker.
pub struct Engine {
    rules: Rules,
    cfg: EngineConfig,
    idle_after: Duration,
    state: Mutex<HashMap<String, TestState>>,
    outbox: Arc<Outbox>,
    counters: Arc<Counters>,
    log: Log,
    /// Per rule: a statistic/type mismatch was logged.
    mismatch_logged: Vec<AtomicBool>,
    evicted_logged: AtomicBool,
}

struct TestState {
    last_activity: Instant,
    /// End of the newest window and when it arrived.
    newest: Option<(u64, Instant)>,
    /// Time of the last evaluation of data rules (never goes back).
    eval_ms: u64,
    /// One per metric rule.
    metric: Vec<MetricState>,
    generators: HashMap<String, GenState>,
}

struct MetricState {
    rule: usize,
    range: Range,
    instance: Instance,
}

struct GenState {
    last_seen: Instant,
    /// Per silence rule.
    silence: Vec<(usize, Instance)>,
    /// Per growth rule.
    rss: Vec<(usize, RssRange, Instance)>,
}

impl TestState {
    fn firing(&self) -> usize {
        self.metric.iter().filter(|m| m.instance.firing()).count()
            + self
                .generators
                .values()
                .map(|g| {
                    g.silence.iter().filter(|s| s.1.firing()).count() + g.rss.iter().filter(|r| r.2.firing()).count()
                })
                .sum::<usize>()
    }
}

/// A transition to announce, built under the lock, sent after it.
struct Event {
    rule: usize,
    test_id: String,
    generator: Option<String>,
    transition: Transition,
    value: Option<f64>,
    /// What was observed, for the log line.
    detail: String,
}

/// The exporter's clock, ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A number as alerts show it: whole numbers plain, others rounded to what
/// a reader compares (412.3, 2.46, 0.0123).
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        let s = format!("{v:.4}");
        if s.trim_start_matches('-') == "0.0000" {
            format!("{v:.2e}")
        } else {
            s
        }
    }
}

impl Engine {
    /// An engine for `rules` whose notifications go to `outbox`.
    pub fn new(rules: Rules, cfg: EngineConfig, outbox: Arc<Outbox>, counters: Arc<Counters>, log: Log) -> Self {
        let idle_after = rules.longest_span() * 2 + Duration::from_secs(60);
        let mismatch_logged = rules.rules.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            rules,
            cfg,
            idle_after,
            state: Mutex::new(HashMap::new()),
            outbox,
            counters,
            log,
            mismatch_logged,
            evicted_logged: AtomicBool::new(false),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Counters and state size now.
    pub fn stats(&self) -> AlertStats {
        let (tests, firing) = {
            let s = self.state.lock();
            (s.len(), s.values().map(TestState::firing).sum())
        };
        let c = &self.counters;
        AlertStats {
            rules: self.rules.rules.len(),
            tests,
            firing,
            fired: c.fired.load(Ordering::Relaxed),
            resolved: c.resolved.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            webhook_failures: c.failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            tests_evicted: c.tests_evicted.load(Ordering::Relaxed),
            generators_evicted: c.generators_evicted.load(Ordering::Relaxed),
            queued: self.outbox.len(),
        }
    }

    /// How long a test without activity (and without a firing alert) is kept.
    pub fn idle_after(&self) -> Duration {
        self.idle_after
    }

    fn new_test(&self, now: Instant) -> TestState {
        let metric = self
            .rules
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.condition {
                Condition::Metric(m) => {
                    Some(MetricState { rule: i, range: Range::new(m.cmp.range), instance: Instance::default() })
                }
                _ => None,
            })
            .collect();
        TestState { last_activity: now, newest: None, eval_ms: 0, metric, generators: HashMap::new() }
    }

    fn new_generator(&self, now: Instant) -> GenState {
        let mut g = GenState { last_seen: now, silence: Vec::new(), rss: Vec::new() };
        for (i, r) in self.rules.rules.iter().enumerate() {
            match &r.condition {
                Condition::Silence { .. } => g.silence.push((i, Instance::default())),
                Condition::RssGrowth(c) => g.rss.push((i, RssRange::new(c.range), Instance::default())),
                Condition::Metric(_) => {}
            }
        }
        g
    }

    /// The test's state, created (evicting the least recently active test
    /// beyond the bound) when new.
    fn test<'a>(&self, tests: &'a mut HashMap<String, TestState>, test_id: &str, now: Instant) -> &'a mut TestState {
        if !tests.contains_key(test_id) {
            if tests.len() >= self.cfg.max_tests.max(1) {
                let oldest = tests.iter().min_by_key(|(_, t)| t.last_activity).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    let t = tests.remove(&k).expect("listed");
                    self.counters.tests_evicted.fetch_add(1, Ordering::Relaxed);
                    if !self.evicted_logged.swap(true, Ordering::Relaxed) {
                        (self.log)(format!(
                            "alerts: more than {} test ids; the state of the least recently active ({k}, {} firing) is dropped without notifications; further evictions are only counted",
                            self.cfg.max_tests,
                            t.firing()
                        ));
                    }
                }
            }
            tests.insert(test_id.to_string(), self.new_test(now));
        }
        let t = tests.get_mut(test_id).expect("inserted");
        t.last_activity = now;
        t
    }

    fn generator<'a>(&self, test: &'a mut TestState, generator: &str, now: Instant) -> &'a mut GenState {
        if !test.generators.contains_key(generator) {
            if test.generators.len() >= self.cfg.max_generators.max(1) {
                let oldest = test.generators.iter().min_by_key(|(_, g)| g.last_seen).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    test.generators.remove(&k);
                    self.counters.generators_evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
            test.generators.insert(generator.to_string(), self.new_generator(now));
        }
        test.generators.get_mut(generator).expect("inserted")
    }

    /// A merged window (or a rewrite) arrived at `now`.
    pub fn on_window(&self, w: &MergedWindow, now: Instant) {
        let mut events = Vec::new();
        {
            let mut tests = self.state.lock();
            let test = self.test(&mut tests, &w.test_id, now);
            let end = w.start_unix_ms + w.len_ms;
            if test.newest.is_none_or(|(e, _)| end >= e) {
                test.newest = Some((end, now));
            }
            for m in &mut test.metric {
                let Condition::Metric(c) = &self.rules.rules[m.rule].condition else { continue };
                m.range.put(w.start_unix_ms, w.len_ms, select(&w.series, &c.metric, &c.selector));
            }
            let at = test.eval_ms.max(test.newest.map_or(0, |n| n.0));
            self.evaluate_data(&w.test_id, test, at, &mut events);
        }
        self.announce(events);
    }

    /// Evaluates the test's data rules at `at_ms`.
    fn evaluate_data(&self, test_id: &str, test: &mut TestState, at_ms: u64, events: &mut Vec<Event>) {
        test.eval_ms = test.eval_ms.max(at_ms);
        for m in &mut test.metric {
            let rule = &self.rules.rules[m.rule];
            let Condition::Metric(c) = &rule.condition else { continue };
            m.range.advance(test.eval_ms);
            let value = match m.range.value(c.stat) {
                Ok(v) => v,
                Err(Mismatch(kind)) => {
                    if !self.mismatch_logged[m.rule].swap(true, Ordering::Relaxed) {
                        (self.log)(format!(
                            "alert {}: {} is a {kind} in test {test_id}; {} does not apply to it, the rule never fires",
                            rule.name, c.metric, c.stat
                        ));
                    }
                    None
                }
            };
            let holds = value.is_some_and(|v| c.cmp.holds(v));
            if let Some(transition) = m.instance.step(holds, test.eval_ms, rule.hold_for) {
                let detail = match value {
                    Some(v) if holds => {
                        format!("{} = {} {} {}", c.cmp.lhs, format_value(v), c.cmp.op.symbol(), c.cmp.bound_text)
                    }
                    Some(v) => format!(
                        "{} = {}, no longer {} {}",
                        c.cmp.lhs,
                        format_value(v),
                        c.cmp.op.symbol(),
                        c.cmp.bound_text
                    ),
                    None => format!("{}: no data", c.cmp.lhs),
                };
                events.push(Event {
                    rule: m.rule,
                    test_id: test_id.to_string(),
                    generator: None,
                    transition,
                    value,
                    detail,
                });
            }
        }
    }

    /// A generator's health point arrived at `now`.
    pub fn on_health(&self, h: &HealthPoint, now: Instant) {
        let mut events = Vec::new();
        {
            let mut tests = self.state.lock();
            let test = self.test(&mut tests, &h.test_id, now);
            let g = self.generator(test, &h.generator, now);
            g.last_seen = now;
            self.heard_from(&h.test_id, &h.generator, g, &mut events);
            let at = h.start_unix_ms + h.len_ms;
            for (rule, rss, instance) in &mut g.rss {
                let r = &self.rules.rules[*rule];
                let Condition::RssGrowth(c) = &r.condition else { continue };
                let growth = rss.add(at, h.health.rss_bytes);
                let holds = growth.is_some_and(|v| c.holds(v));
                if let Some(transition) = instance.step(holds, at, r.hold_for) {
                    let shown = growth.map_or("no data".into(), |v| format!("{:.1}%", v * 100.0));
                    let detail = if holds {
                        format!("{} = {shown} {} {}", c.lhs, c.op.symbol(), c.bound_text)
                    } else {
                        format!("{} = {shown}, no longer {} {}", c.lhs, c.op.symbol(), c.bound_text)
                    };
                    events.push(Event {
                        rule: *rule,
                        test_id: h.test_id.clone(),
                        generator: Some(h.generator.clone()),
                        transition,
                        value: growth.map(|v| v * 100.0),
                        detail,
                    });
                }
            }
        }
        self.announce(events);
    }

    /// A silent generator spoke again: its silence alerts resolve at once.
    fn heard_from(&self, test_id: &str, generator: &str, g: &mut GenState, events: &mut Vec<Event>) {
        for (rule, instance) in &mut g.silence {
            if let Some(transition) = instance.step(false, wall_ms(), self.rules.rules[*rule].hold_for) {
                events.push(Event {
                    rule: *rule,
                    test_id: test_id.to_string(),
                    generator: Some(generator.to_string()),
                    transition,
                    value: Some(0.0),
                    detail: "the generator reports again".into(),
                });
            }
        }
    }

    /// A generator announced itself at `now`.
    pub fn on_joined(&self, test_id: &str, generator: &str, now: Instant) {
        let mut events = Vec::new();
        {
            let mut tests = self.state.lock();
            let test = self.test(&mut tests, test_id, now);
            let g = self.generator(test, generator, now);
            g.last_seen = now;
            self.heard_from(test_id, generator, g, &mut events);
        }
        self.announce(events);
    }

    /// A generator ended cleanly: it is no longer expected to report, and
    /// its alerts resolve.
    pub fn on_finished(&self, test_id: &str, generator: &str, now: Instant) {
        let mut events = Vec::new();
        {
            let mut tests = self.state.lock();
            let test = self.test(&mut tests, test_id, now);
            if let Some(mut g) = test.generators.remove(generator) {
                self.heard_from(test_id, generator, &mut g, &mut events);
                for (rule, _, instance) in &mut g.rss {
                    if let Some(transition) = instance.step(false, wall_ms(), self.rules.rules[*rule].hold_for) {
                        events.push(Event {
                            rule: *rule,
                            test_id: test_id.to_string(),
                            generator: Some(generator.to_string()),
                            transition,
                            value: None,
                            detail: "the generator finished".into(),
                        });
                    }
                }
            }
        }
        self.announce(events);
    }

    /// The ticker: silence, data that stopped coming, idle tests. `wall_ms`
    /// stamps silence transitions.
    pub fn tick(&self, now: Instant, wall_ms: u64) {
        let mut events = Vec::new();
        {
            let mut tests = self.state.lock();
            for (test_id, test) in tests.iter_mut() {
                if let Some((end, arrived)) = test.newest {
                    let quiet = now.saturating_duration_since(arrived);
                    if let Some(beyond) = quiet.checked_sub(self.cfg.stale_after) {
                        let at = end + beyond.as_millis() as u64;
                        if at > test.eval_ms {
                            self.evaluate_data(test_id, test, at, &mut events);
                        }
                    }
                }
                for (generator, g) in test.generators.iter_mut() {
                    let silent = now.saturating_duration_since(g.last_seen);
                    for (rule, instance) in &mut g.silence {
                        let r = &self.rules.rules[*rule];
                        let Condition::Silence { after } = r.condition else { continue };
                        let holds = silent >= after;
                        if let Some(transition) = instance.step(holds, wall_ms, r.hold_for) {
                            events.push(Event {
                                rule: *rule,
                                test_id: test_id.clone(),
                                generator: Some(generator.clone()),
                                transition,
                                value: Some(silent.as_secs_f64()),
                                detail: format!("{} (silent for {:.1}s)", r.text, silent.as_secs_f64()),
                            });
                        }
                    }
                }
            }
            tests.retain(|_, t| now.saturating_duration_since(t.last_activity) < self.idle_after || t.firing() > 0);
        }
        self.announce(events);
    }

    /// Logs and queues the notifications of `events`.
    fn announce(&self, events: Vec<Event>) {
        for e in events {
            let rule = &self.rules.rules[e.rule];
            let (firing, starts_ms, ends_ms) = match e.transition {
                Transition::Fired { at_ms } => (true, at_ms, None),
                Transition::Resolved { fired_ms, at_ms } => (false, fired_ms, Some(at_ms)),
            };
            let counter = if firing { &self.counters.fired } else { &self.counters.resolved };
            counter.fetch_add(1, Ordering::Relaxed);
            let whom = match &e.generator {
                Some(g) => format!("testid={} generator={g}", e.test_id),
                None => format!("testid={}", e.test_id),
            };
            (self.log)(format!(
                "alert {} {} for {whom}: {}",
                rule.name,
                if firing { "firing" } else { "resolved" },
                e.detail
            ));
            let (labels, annotations) = self.describe(rule, &e);
            self.outbox.push(Notification {
                url: rule.webhook.clone().unwrap_or_else(|| self.rules.webhook.clone()),
                firing,
                labels,
                annotations,
                starts_ms,
                ends_ms,
            });
        }
    }

    /// The alert's labels and annotations (templates filled in).
    fn describe(&self, rule: &Rule, e: &Event) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut labels = rule.labels.clone();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("testid".into(), e.test_id.clone());
        if let Some(g) = &e.generator {
            labels.insert("generator".into(), g.clone());
        }
        let value = match (&rule.condition, e.value) {
            (_, None) => "no data".to_string(),
            (Condition::RssGrowth(_), Some(v)) => format!("{v:.1}%"),
            (Condition::Silence { .. }, Some(v)) => format!("{v:.1}s"),
            (Condition::Metric(_), Some(v)) => format_value(v),
        };
        let mut annotations: BTreeMap<String, String> =
            rule.annotations.iter().map(|(k, v)| (k.clone(), fill(v, &value, &labels))).collect();
        annotations.entry("value".into()).or_insert(value);
        annotations.entry("expression".into()).or_insert_with(|| rule.text.clone());
        annotations.entry("description".into()).or_insert_with(|| e.detail.clone());
        (labels, annotations)
    }
}

/// Fills `{{ $value }}` and `{{ $labels.NAME }}` (spaces optional).
fn fill(template: &str, value: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            rest = &rest[open..];
            break;
        };
        let inner = rest[open + 2..open + close].trim();
        match inner {
            "$value" => out.push_str(value),
            _ => match inner.strip_prefix("$labels.") {
                Some(name) => out.push_str(labels.get(name).map_or("", String::as_str)),
                None => out.push_str(&rest[open..open + close + 2]),
            },
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

impl Observer for Engine {
    fn window(&self, window: &MergedWindow) {
        self.on_window(window, Instant::now());
    }

    fn health(&self, health: &HealthPoint) {
        self.on_health(health, Instant::now());
    }

    fn joined(&self, test_id: &str, generator: &str) {
        self.on_joined(test_id, generator, Instant::now());
    }

    fn finished(&self, test_id: &str, generator: &str) {
        self.on_finished(test_id, generator, Instant::now());
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
