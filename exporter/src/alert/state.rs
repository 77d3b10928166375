//! One alert instance's state machine, as Prometheus's: inactive → pending
//! while the condition holds → firing once it has held for `for` → resolved
//! (inactive again) when it stops holding. A pending alert whose condition
//! stops holding goes back to inactive without a notification, so a blip
//! shorter than `for` never fires.
//!
//! Times are milliseconds on the clock the rule is evaluated on (window
//! ends for data rules, the exporter's clock for silence).

use std::time::Duration;

/// Where an instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The condition does not hold.
    Inactive,
    /// It holds, not yet for `for`.
    Pending {
        /// Since when it holds.
        since_ms: u64,
    },
    /// It has held for `for` and a firing notification went out.
    Firing {
        /// When it fired.
        since_ms: u64,
    },
}

/// What a step asks to be notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Pending (or inactive, with `for: 0`) → firing.
    Fired {
        /// When.
        at_ms: u64,
    },
    /// Firing → inactive.
    Resolved {
        /// When it had fired.
        fired_ms: u64,
        /// When it stopped holding.
        at_ms: u64,
    },
}

/// One alert instance (a rule in a test, or in a test and generator).
#[derive(Clone, Debug)]
pub struct Instance {
    /// Current phase.
    pub phase: Phase,
}

impl Default for Instance {
    fn default() -> Self {
        Self { phase: Phase::Inactive }
    }
}

impl Instance {
    /// True while firing.
    pub fn firing(&self) -> bool {
        matches!(self.phase, Phase::Firing { .. })
    }

    /// Feeds one evaluation. Time never runs backwards for an instance: an
    /// older `now_ms` is taken as the last one seen.
    pub fn step(&mut self, holds: bool, now_ms: u64, hold_for: Duration) -> Option<Transition> {
        let hold_ms = hold_for.as_millis() as u64;
        match (self.phase, holds) {
            (Phase::Inactive, false) => None,
            (Phase::Inactive, true) if hold_ms == 0 => {
                self.phase = Phase::Firing { since_ms: now_ms };
                Some(Transition::Fired { at_ms: now_ms })
            }
            (Phase::Inactive, true) => {
                self.phase = Phase::Pending { since_ms: now_ms };
                None
            }
            (Phase::Pending { since_ms }, true) => {
                let now_ms = now_ms.max(since_ms);
                if now_ms - since_ms >= hold_ms {
                    self.phase = Phase::Firing { since_ms: now_ms };
                    Some(Transition::Fired { at_ms: now_ms })
                } else {
                    None
                }
            }
            (Phase::Pending { .. }, false) => {
                self.phase = Phase::Inactive;
                None
            }
            (Phase::Firing { .. }, true) => None,
            (Phase::Firing { since_ms }, false) => {
                self.phase = Phase::Inactive;
                Some(Transition::Resolved { fired_ms: since_ms, at_ms: now_ms.max(since_ms) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOR: Duration = Duration::from_secs(5);

    fn run(instance: &mut Instance, steps: &[(u64, bool)]) -> Vec<Transition> {
        steps.iter().filter_map(|&(t, holds)| instance.step(holds, t * 1000, FOR)).collect()
    }

    #[test]
    fn fires_only_after_holding_for_the_whole_for() {
        let mut i = Instance::default();
        let got = run(&mut i, &[(0, false), (1, true), (2, true), (5, true)]);
        assert!(got.is_empty());
        assert_eq!(i.phase, Phase::Pending { since_ms: 1000 });
        assert_eq!(run(&mut i, &[(6, true)]), [Transition::Fired { at_ms: 6000 }]);
        assert!(i.firing());
        // Holding on: no second notification.
        assert!(run(&mut i, &[(7, true), (60, true)]).is_empty());
    }

    #[test]
    fn resolves_once() {
        let mut i = Instance::default();
        run(&mut i, &[(0, true), (5, true)]);
        assert!(i.firing());
        let got = run(&mut i, &[(8, false), (9, false), (10, false)]);
        assert_eq!(got, [Transition::Resolved { fired_ms: 5000, at_ms: 8000 }]);
        assert_eq!(i.phase, Phase::Inactive);
    }

    #[test]
    fn a_blip_shorter_than_for_never_fires() {
        let mut i = Instance::default();
        // Holds for 4 s, twice, with a gap: pending restarts each time.
        let got = run(&mut i, &[(0, true), (2, true), (4, true), (5, false), (6, true), (10, true), (11, false)]);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(i.phase, Phase::Inactive);
    }

    #[test]
    fn without_for_it_fires_at_once_and_flaps_with_the_condition() {
        let mut i = Instance::default();
        let got: Vec<_> = [(0, true), (1, false), (2, true)]
            .iter()
            .filter_map(|&(t, h)| i.step(h, t * 1000, Duration::ZERO))
            .collect();
        assert_eq!(
            got,
            [
                Transition::Fired { at_ms: 0 },
                Transition::Resolved { fired_ms: 0, at_ms: 1000 },
                Transition::Fired { at_ms: 2000 }
            ]
        );
    }
}
