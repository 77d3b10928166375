//! Fault injection on MSG deliveries: duplicate, reorder, drop.
//!
//! Faults are applied per recipient connection, in delivery order, so that
//! what a receiver can observe matches what was injected one for one:
//! - a duplicated delivery is written twice in a row (the receiver sees one
//!   duplicate and no reorder);
//! - a reordered delivery is held back and written right after the next
//!   delivery to the same connection (the receiver sees exactly one seq
//!   lower than one already seen); the delivery that overtakes it is never
//!   itself faulted, and a held delivery with no successor within
//!   [`HOLD_LIMIT`] is released in order and not counted;
//! - a dropped delivery is never written.

use std::time::Duration;

/// How long a held-back delivery waits for a successor to overtake it.
pub const HOLD_LIMIT: Duration = Duration::from_millis(250);

/// Shares of deliveries to fault, in percent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// Written twice.
    pub dup_pct: f64,
    /// Overtaken by the next delivery.
    pub reorder_pct: f64,
    /// Not written.
    pub drop_pct: f64,
    /// Added to every delivery.
    pub delay: Duration,
}

impl FaultPlan {
    /// Checks that the shares are percentages adding up to at most 100.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in
            [("--dup-pct", self.dup_pct), ("--reorder-pct", self.reorder_pct), ("--drop-pct", self.drop_pct)]
        {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 100, got {v}"));
            }
        }
        if self.dup_pct + self.reorder_pct + self.drop_pct > 100.0 {
            return Err("--dup-pct, --reorder-pct and --drop-pct add up to more than 100".into());
        }
        Ok(())
    }

    /// True when no delivery is ever faulted.
    pub fn is_clean(&self) -> bool {
        self.dup_pct == 0.0 && self.reorder_pct == 0.0 && self.drop_pct == 0.0
    }
}

/// What one connection's fault state decided, with the counter to bump.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing injected.
    None,
    /// Written twice.
    Duplicated,
    /// Not written.
    Dropped,
    /// Held back (not counted until overtaken).
    Held,
    /// A held delivery was overtaken by this one and written after it.
    Reordered,
}

/// Per-connection fault state: a tiny RNG and at most one held delivery.
pub struct Injector<T> {
    rng: u64,
    held: Option<T>,
}

impl<T: Clone> Injector<T> {
    /// A fresh state; `seed` makes the choices reproducible.
    pub fn new(seed: u64) -> Self {
        Self { rng: seed ^ 0x9E37_79B9_7F4A_7C15, held: None }
    }

    /// True while a delivery is held back.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Decides the fate of `item`; returns what to write now and what was injected.
    pub fn apply(&mut self, plan: &FaultPlan, item: T) -> (Vec<T>, Fault) {
        if let Some(held) = self.held.take() {
            return (vec![item, held], Fault::Reordered);
        }
        let roll = self.next_pct();
        if roll < plan.drop_pct {
            (Vec::new(), Fault::Dropped)
        } else if roll < plan.drop_pct + plan.dup_pct {
            (vec![item.clone(), item], Fault::Duplicated)
        } else if roll < plan.drop_pct + plan.dup_pct + plan.reorder_pct {
            self.held = Some(item);
            (Vec::new(), Fault::Held)
        } else {
            (vec![item], Fault::None)
        }
    }

    /// Releases a held delivery that nothing overtook (in order, not counted).
    pub fn release(&mut self) -> Option<T> {
        self.held.take()
    }

    /// A uniform value in [0, 100), from splitmix64.
    fn next_pct(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_what_a_receiver_would_see() {
        let plan = FaultPlan { dup_pct: 10.0, reorder_pct: 10.0, drop_pct: 10.0, delay: Duration::ZERO };
        let mut inj = Injector::new(7);
        let (mut written, mut dup, mut reorder, mut drop) = (Vec::new(), 0, 0, 0);
        for seq in 0..10_000u64 {
            let (out, fault) = inj.apply(&plan, seq);
            written.extend(out);
            match fault {
                Fault::Duplicated => dup += 1,
                Fault::Reordered => reorder += 1,
                Fault::Dropped => drop += 1,
                _ => {}
            }
        }
        written.extend(inj.release());
        // A receiver's view: duplicates, seqs lower than the highest seen, missing seqs.
        let (mut seen, mut highest, mut r_dup, mut r_reorder) = (std::collections::HashSet::new(), None, 0, 0);
        for &s in &written {
            if !seen.insert(s) {
                r_dup += 1;
                continue;
            }
            if highest.is_some_and(|h| s < h) {
                r_reorder += 1;
            }
            highest = highest.max(Some(s));
        }
        assert_eq!((r_dup, r_reorder, 10_000 - seen.len()), (dup, reorder, drop));
        // Roughly the configured shares.
        for n in [dup, reorder, drop] {
            assert!((700..1300).contains(&n), "{n}");
        }
    }

    #[test]
    fn rejects_impossible_plans() {
        let bad = FaultPlan { drop_pct: 120.0, ..FaultPlan::default() };
        assert!(bad.validate().unwrap_err().contains("--drop-pct"));
        let sum = FaultPlan { dup_pct: 60.0, drop_pct: 60.0, ..FaultPlan::default() };
        assert!(sum.validate().unwrap_err().contains("more than 100"));
    }
}
