//! Fleet-wide thresholds: a test's thresholds judged on the merged data of
//! all its generators, which no single generator can see.
//!
//! Each generator sends its scenario's thresholds after its hello (they are
//! the same for every generator of a test; the first copy is kept). This
//! observer folds every merged window into one aggregate per threshold set —
//! the merge of every series the set selects — and:
//! - after each window, judges the rules with `abortOnFail` whose
//!   `delayAbortEval` has passed; the first failure aborts every generator
//!   of the test (once);
//! - when the test ends (its last generator finished or was lost), judges
//!   everything and sends the verdict to every generator still connected,
//!   which exits with it (99 when a threshold failed).
//!
//! Memory: a window can be rewritten by a late report until the merger
//! evicts it, so each test keeps the per-set contributions of its open
//! windows apart and folds them into the settled totals when the merger
//! settles them. That is bounded by the merger's open windows × sets, never
//! by the test's length; at most [`MAX_TESTS`] tests are tracked.

use crate::merge::MergedWindow;
use crate::observe::Observer;
use crate::Log;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use volley_window::threshold::{Outcome, SetSpec, ThresholdSet};
use volley_window::Aggregate;

/// Tests tracked at once; registering another forgets the least recent.
pub const MAX_TESTS: usize = 64;

/// What the exporter must tell the generators of a test.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Stop now: a rule with `abortOnFail` failed on the merged data.
    Abort {
        /// Why, naming the threshold and the observed value.
        reason: String,
    },
    /// The test is over: the fleet's outcome.
    Verdict {
        /// Every threshold's outcome.
        outcomes: Vec<Outcome>,
        /// Generators whose data it covers.
        generators: u32,
    },
}

/// Called with `(test id, decision)`; must not block.
pub type Notify = Arc<dyn Fn(&str, Decision) + Send + Sync>;

/// Fleet thresholds of every tracked test.
pub struct FleetThresholds {
    tests: Mutex<HashMap<String, TestState>>,
    notify: Notify,
    log: Log,
    clock: AtomicU64,
}

struct TestState {
    sets: Vec<ThresholdSet>,
    /// Per set: the merge of every settled window.
    settled: Vec<Option<Aggregate>>,
    /// Per open window (by start): per set, its contribution.
    open: BTreeMap<u64, Vec<Option<Aggregate>>>,
    first_start: Option<u64>,
    last_end: u64,
    generators: std::collections::HashSet<String>,
    aborted: Option<String>,
    verdict: Option<(Vec<Outcome>, u32)>,
    touched: u64,
}

impl TestState {
    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.first_start.map_or(0, |s| self.last_end.saturating_sub(s)))
    }

    /// Per set: settled and open windows merged.
    fn merged(&self, only: impl Fn(usize) -> bool) -> Vec<Option<Aggregate>> {
        (0..self.sets.len())
            .map(|i| {
                if !only(i) {
                    return None;
                }
                let mut out = self.settled[i].clone();
                for parts in self.open.values() {
                    merge_into(&mut out, parts[i].as_ref());
                }
                out
            })
            .collect()
    }

    fn judge_all(&self) -> Vec<Outcome> {
        let merged = self.merged(|_| true);
        let elapsed = self.elapsed();
        self.sets.iter().zip(&merged).flat_map(|(set, agg)| set.judge(agg.as_ref(), elapsed)).collect()
    }
}

fn merge_into(into: &mut Option<Aggregate>, part: Option<&Aggregate>) {
    if let Some(part) = part {
        match into {
            // A metric reported with two kinds is a conflict the merger
            // already counted; the threshold keeps what it had.
            Some(have) => {
                let _ = have.merge(part);
            }
            None => *into = Some(part.clone()),
        }
    }
}

impl FleetThresholds {
    /// Tells `notify` what to send to a test's generators.
    pub fn new(notify: Notify, log: Log) -> Arc<Self> {
        Arc::new(Self { tests: Mutex::new(HashMap::new()), notify, log, clock: AtomicU64::new(0) })
    }

    /// A generator of `test_id` sent its thresholds. The first copy of a
    /// test is kept. Returns the abort reason when the test was already
    /// aborted (tell the newcomer at once), or an error naming the
    /// threshold the exporter cannot parse.
    pub fn register(&self, test_id: &str, generator: &str, sets: &[SetSpec]) -> Result<Option<String>, String> {
        let touched = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut tests = self.tests.lock();
        if let Some(t) = tests.get_mut(test_id) {
            t.generators.insert(generator.to_string());
            t.touched = touched;
            return Ok(t.aborted.clone());
        }
        let parsed = sets.iter().map(ThresholdSet::from_spec).collect::<Result<Vec<_>, _>>()?;
        if tests.len() >= MAX_TESTS {
            if let Some(oldest) = tests.iter().min_by_key(|(_, t)| t.touched).map(|(k, _)| k.clone()) {
                tests.remove(&oldest);
            }
        }
        let n = parsed.len();
        tests.insert(
            test_id.to_string(),
            TestState {
                sets: parsed,
                settled: vec![None; n],
                open: BTreeMap::new(),
                first_start: None,
                last_end: 0,
                generators: [generator.to_string()].into(),
                aborted: None,
                verdict: None,
                touched,
            },
        );
        Ok(None)
    }

    /// The fleet's outcome of a finished test, if it was judged.
    pub fn verdict(&self, test_id: &str) -> Option<(Vec<Outcome>, u32)> {
        self.tests.lock().get(test_id).and_then(|t| t.verdict.clone())
    }

    /// Tests with thresholds, for `/stats`: id, sets, aborted, judged, passed.
    pub fn stats(&self) -> Vec<serde_json::Value> {
        let tests = self.tests.lock();
        let mut out: Vec<(u64, serde_json::Value)> = tests
            .iter()
            .map(|(id, t)| {
                let v = serde_json::json!({
                    "test_id": id,
                    "sets": t.sets.len(),
                    "generators": t.generators.len(),
                    "aborted": t.aborted,
                    "judged": t.verdict.is_some(),
                    "passed": t.verdict.as_ref().map(|(o, _)| o.iter().all(|o| o.ok)),
                });
                (t.touched, v)
            })
            .collect();
        out.sort_by_key(|(t, _)| *t);
        out.into_iter().map(|(_, v)| v).collect()
    }
}

impl Observer for FleetThresholds {
    fn window(&self, w: &MergedWindow) {
        let abort = {
            let mut tests = self.tests.lock();
            let Some(t) = tests.get_mut(&w.test_id) else { return };
            let mut parts: Vec<Option<Aggregate>> = vec![None; t.sets.len()];
            for s in &w.series {
                for (i, set) in t.sets.iter().enumerate() {
                    if set.selects(&s.key) {
                        merge_into(&mut parts[i], Some(&s.value));
                    }
                }
            }
            // A rewrite replaces the window's earlier contribution.
            t.open.insert(w.start_unix_ms, parts);
            t.first_start = Some(t.first_start.map_or(w.start_unix_ms, |f| f.min(w.start_unix_ms)));
            t.last_end = t.last_end.max(w.start_unix_ms + w.len_ms);
            if t.aborted.is_some() || t.verdict.is_some() {
                return;
            }
            let elapsed = t.elapsed();
            let merged = t.merged(|i| t.sets[i].may_abort(elapsed));
            let failing = t.sets.iter().zip(&merged).flat_map(|(set, agg)| set.aborting(agg.as_ref(), elapsed)).next();
            failing.map(|o| {
                let observed = o.observed.map_or("no data".to_string(), |v| format!("{v:.3}"));
                let reason = format!(
                    "threshold {} on {} failed on the merged data of {} generator{} (observed {observed})",
                    o.source,
                    o.key,
                    t.generators.len(),
                    if t.generators.len() == 1 { "" } else { "s" }
                );
                t.aborted = Some(reason.clone());
                reason
            })
        };
        if let Some(reason) = abort {
            (self.log)(format!("test {}: {reason}; aborting every generator (abortOnFail)", w.test_id));
            (self.notify)(&w.test_id, Decision::Abort { reason });
        }
    }

    fn settled(&self, test_id: &str, start_unix_ms: u64) {
        let mut tests = self.tests.lock();
        let Some(t) = tests.get_mut(test_id) else { return };
        if let Some(parts) = t.open.remove(&start_unix_ms) {
            for (into, part) in t.settled.iter_mut().zip(&parts) {
                merge_into(into, part.as_ref());
            }
        }
    }

    fn joined(&self, test_id: &str, generator: &str) {
        if let Some(t) = self.tests.lock().get_mut(test_id) {
            t.generators.insert(generator.to_string());
        }
    }

    fn ended(&self, test_id: &str) {
        let decided = {
            let mut tests = self.tests.lock();
            let Some(t) = tests.get_mut(test_id) else { return };
            let outcomes = t.judge_all();
            let generators = t.generators.len() as u32;
            t.verdict = Some((outcomes.clone(), generators));
            (outcomes, generators)
        };
        let (outcomes, generators) = decided;
        let failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| {
                let observed = o.observed.map_or("no data".to_string(), |v| format!("{v:.3}"));
                format!("{} on {} (observed {observed})", o.source, o.key)
            })
            .collect();
        (self.log)(format!(
            "test {test_id}: thresholds on the merged data of {generators} generator{}: {} passed, {} failed{}",
            if generators == 1 { "" } else { "s" },
            outcomes.len() - failed.len(),
            failed.len(),
            if failed.is_empty() { String::new() } else { format!(": {}", failed.join("; ")) }
        ));
        (self.notify)(test_id, Decision::Verdict { outcomes, generators });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use volley_window::threshold::RuleSpec;
    use volley_window::{SeriesKey, SeriesWindow, Sketch, Tags, Unit};

    fn spec(key: &str, source: &str, abort: bool) -> SetSpec {
        SetSpec {
            key: key.into(),
            rules: vec![RuleSpec { source: source.into(), abort_on_fail: abort, delay_abort_eval_ms: 0 }],
        }
    }

    fn window(start: u64, scenario: &str, durations: &[f64], fails: u64) -> MergedWindow {
        let mut sk = Sketch::new();
        durations.iter().for_each(|d| sk.add(*d));
        let tags = Tags::from_pairs([("scenario", scenario)]);
        MergedWindow {
            test_id: "t".into(),
            start_unix_ms: start,
            len_ms: 1000,
            series: vec![
                SeriesWindow {
                    key: SeriesKey::new("http_req_duration", tags.clone()),
                    unit: Unit::Time,
                    value: Aggregate::Trend(sk),
                },
                SeriesWindow {
                    key: SeriesKey::new("http_req_failed", tags),
                    unit: Unit::None,
                    value: Aggregate::Rate { passes: fails, fails: 10 - fails },
                },
            ],
            reporters: 2,
        }
    }

    type Seen = Arc<Mutex<Vec<(String, Decision)>>>;

    fn fleet() -> (Arc<FleetThresholds>, Seen) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let f = FleetThresholds::new(Arc::new(move |t: &str, d| s.lock().push((t.to_string(), d))), Arc::new(|_| {}));
        (f, seen)
    }

    #[test]
    fn judges_the_merge_of_every_window_and_sub_metric() {
        let (f, seen) = fleet();
        let sets =
            [spec("http_req_duration{scenario:a}", "max<100", false), spec("http_req_failed", "rate<0.25", false)];
        assert_eq!(f.register("t", "g1", &sets).unwrap(), None);
        f.joined("t", "g2");
        f.window(&window(0, "a", &[10.0, 20.0], 1));
        f.window(&window(1000, "b", &[500.0], 2));
        f.settled("t", 0);
        f.window(&window(2000, "a", &[90.0], 3));
        f.ended("t");
        let seen = seen.lock();
        let Decision::Verdict { outcomes, generators } = &seen[0].1 else { panic!("{seen:?}") };
        assert_eq!(*generators, 2);
        // Scenario b's 500 ms is outside the selector; 90 is the max of a.
        assert!(outcomes[0].ok, "{outcomes:?}");
        assert!((outcomes[0].observed.unwrap() - 90.0).abs() < 1.0, "{outcomes:?}");
        // 6 failures in 30 requests over all windows: 0.2.
        assert_eq!(outcomes[1].observed, Some(0.2));
        assert!(outcomes[1].ok);
    }

    #[test]
    fn a_rewrite_replaces_the_window_and_abort_fires_once() {
        let (f, seen) = fleet();
        f.register("t", "g1", &[spec("http_req_failed", "rate<0.5", true)]).unwrap();
        f.window(&window(0, "a", &[1.0], 4));
        // The same window rewritten with a late report: 4 → 6 failures of 10.
        f.window(&window(0, "a", &[1.0], 6));
        f.window(&window(1000, "a", &[1.0], 7));
        let seen = seen.lock().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let Decision::Abort { reason } = &seen[0].1 else { panic!() };
        assert!(
            reason.contains("rate<0.5 on http_req_failed failed on the merged data of 1 generator (observed 0.600)"),
            "{reason}"
        );
        assert_eq!(f.register("t", "late", &[]).unwrap().as_deref(), Some(reason.as_str()));
    }

    #[test]
    fn refuses_what_it_cannot_parse_and_forgets_the_oldest_test() {
        let (f, _) = fleet();
        let err = f.register("t", "g", &[spec("checks", "rate>>1", false)]).unwrap_err();
        assert!(err.contains("rate>>1"), "{err}");
        for i in 0..=MAX_TESTS {
            f.register(&format!("t{i}"), "g", &[spec("checks", "rate>0.9", false)]).unwrap();
        }
        let ids: Vec<String> = f.stats().iter().map(|v| v["test_id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), MAX_TESTS);
        assert!(!ids.contains(&"t0".to_string()));
    }
}
