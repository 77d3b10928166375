//! Synchronized start (`volley --wait-for N`): the generators of a test
//! start their schedules at one common instant, agreed here.
//!
//! Each generator says it is ready once it is set up; when the N-th
//! generator of a test is ready the exporter fixes the start a short lead
//! ahead (so every generator hears of it before it comes) and tells each one
//! how long to wait. The answer is a delay, not a clock time, so the
//! machines' clocks need not agree. A generator that becomes ready after
//! the start is told how late it is, starts at once, and is listed as a late
//! joiner on `/stats` and in the log: its load is shifted, never silently.

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How far ahead of the N-th ready the common start is set.
pub const START_LEAD: Duration = Duration::from_millis(1000);
/// Tests whose barrier is remembered; the oldest is forgotten beyond this.
const MAX_TESTS: usize = 64;
/// Generators remembered per barrier: the ready set is bounded like the
/// fleet a test may have, and late joiners beyond this are only counted.
const MAX_GENERATORS: usize = 4096;

/// What to tell a generator that said it is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Fewer than the expected generators are ready: wait.
    Wait {
        /// Ready so far, this one included.
        ready: u32,
    },
    /// The start is agreed: these generators (this one among them) start
    /// `in_ms` from now.
    Release {
        /// Every generator of the release.
        generators: Vec<String>,
        /// Until the common start.
        in_ms: u64,
        /// How many were ready.
        ready: u32,
    },
    /// The start was agreed before: start after `in_ms` (if it is still
    /// ahead) or at once, `late_ms` after it.
    Start {
        /// Until the common start (0 when it has passed).
        in_ms: u64,
        /// Since the common start (0 when it is still ahead).
        late_ms: u64,
        /// How many were ready at the release.
        ready: u32,
    },
}

#[derive(Debug)]
struct Barrier {
    expected: u32,
    ready: BTreeSet<String>,
    start: Option<Instant>,
    released_with: u32,
    late: Vec<(String, u64)>,
    late_count: u64,
}

/// The barriers of recent tests.
#[derive(Debug, Default)]
pub struct Barriers {
    tests: Mutex<(HashMap<String, Barrier>, VecDeque<String>)>,
}

/// A barrier as `/stats` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarrierState {
    /// The test.
    pub test_id: String,
    /// Generators the test waits for.
    pub expected: u32,
    /// Generators ready (before and after the start).
    pub ready: u32,
    /// Whether the start was agreed.
    pub started: bool,
    /// Generators that became ready after the start, and how late (ms).
    pub late: Vec<(String, u64)>,
}

impl Barriers {
    /// `generator` of `test_id` is ready and the test waits for `expected`
    /// generators (generators that disagree about it: the largest counts).
    pub fn ready(&self, test_id: &str, generator: &str, expected: u32) -> Decision {
        self.ready_at(test_id, generator, expected, Instant::now())
    }

    fn ready_at(&self, test_id: &str, generator: &str, expected: u32, now: Instant) -> Decision {
        let mut guard = self.tests.lock();
        let (tests, order) = &mut *guard;
        if !tests.contains_key(test_id) {
            if order.len() >= MAX_TESTS {
                if let Some(old) = order.pop_front() {
                    tests.remove(&old);
                }
            }
            order.push_back(test_id.to_string());
            tests.insert(
                test_id.to_string(),
                Barrier {
                    expected,
                    ready: BTreeSet::new(),
                    start: None,
                    released_with: 0,
                    late: Vec::new(),
                    late_count: 0,
                },
            );
        }
        let b = tests.get_mut(test_id).expect("inserted above");
        if let Some(start) = b.start {
            let already = b.ready.contains(generator);
            if !already && b.ready.len() < MAX_GENERATORS {
                b.ready.insert(generator.to_string());
            }
            if start > now {
                return Decision::Start { in_ms: millis(start - now), late_ms: 0, ready: b.released_with };
            }
            let late_ms = millis(now - start);
            if !already {
                b.late_count += 1;
                if b.late.len() < MAX_GENERATORS {
                    b.late.push((generator.to_string(), late_ms));
                }
            }
            return Decision::Start { in_ms: 0, late_ms, ready: b.released_with };
        }
        b.expected = b.expected.max(expected);
        if b.ready.len() < MAX_GENERATORS {
            b.ready.insert(generator.to_string());
        }
        let ready = b.ready.len() as u32;
        if ready < b.expected {
            return Decision::Wait { ready };
        }
        b.start = Some(now + START_LEAD);
        b.released_with = ready;
        Decision::Release { generators: b.ready.iter().cloned().collect(), in_ms: millis(START_LEAD), ready }
    }

    /// Every remembered barrier, oldest first.
    pub fn states(&self) -> Vec<BarrierState> {
        let guard = self.tests.lock();
        let (tests, order) = &*guard;
        order
            .iter()
            .filter_map(|id| {
                let b = tests.get(id)?;
                Some(BarrierState {
                    test_id: id.clone(),
                    expected: b.expected,
                    ready: b.ready.len() as u32,
                    started: b.start.is_some(),
                    late: b.late.clone(),
                })
            })
            .collect()
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_ready_generator_releases_everyone_and_a_late_one_is_told_how_late() {
        let b = Barriers::default();
        let t0 = Instant::now();
        assert_eq!(b.ready_at("t", "g1", 3, t0), Decision::Wait { ready: 1 });
        // A reconnect repeats the ready: still one generator.
        assert_eq!(b.ready_at("t", "g1", 3, t0), Decision::Wait { ready: 1 });
        assert_eq!(b.ready_at("t", "g2", 3, t0), Decision::Wait { ready: 2 });
        let t1 = t0 + Duration::from_millis(50);
        match b.ready_at("t", "g3", 3, t1) {
            Decision::Release { generators, in_ms, ready } => {
                assert_eq!(generators, vec!["g1", "g2", "g3"]);
                assert_eq!((in_ms, ready), (1000, 3));
            }
            other => panic!("expected a release, got {other:?}"),
        }
        // A released generator that reconnects before the start waits the rest.
        let before = t1 + Duration::from_millis(400);
        assert_eq!(b.ready_at("t", "g2", 3, before), Decision::Start { in_ms: 600, late_ms: 0, ready: 3 });
        // A fourth generator 2.5 s after the start is late, and listed once.
        let after = t1 + Duration::from_millis(3500);
        assert_eq!(b.ready_at("t", "g4", 3, after), Decision::Start { in_ms: 0, late_ms: 2500, ready: 3 });
        assert_eq!(b.ready_at("t", "g4", 3, after), Decision::Start { in_ms: 0, late_ms: 2500, ready: 3 });
        let state = &b.states()[0];
        assert_eq!((state.expected, state.ready, state.started), (3, 4, true));
        assert_eq!(state.late, vec![("g4".to_string(), 2500)]);
    }

    #[test]
    fn tests_are_separate_and_the_largest_expectation_counts() {
        let b = Barriers::default();
        let t0 = Instant::now();
        assert_eq!(b.ready_at("a", "g1", 2, t0), Decision::Wait { ready: 1 });
        assert_eq!(
            b.ready_at("b", "g1", 1, t0),
            Decision::Release { generators: vec!["g1".into()], in_ms: 1000, ready: 1 }
        );
        // g2 of test a thinks one is enough; g1 asked for two: two it is.
        assert!(matches!(b.ready_at("a", "g2", 1, t0), Decision::Release { ready: 2, .. }));
    }

    #[test]
    fn old_tests_are_forgotten_beyond_the_bound() {
        let b = Barriers::default();
        let t0 = Instant::now();
        for i in 0..MAX_TESTS + 5 {
            b.ready_at(&format!("t{i}"), "g", 2, t0);
        }
        let states = b.states();
        assert_eq!(states.len(), MAX_TESTS);
        assert_eq!(states[0].test_id, "t5");
    }
}
