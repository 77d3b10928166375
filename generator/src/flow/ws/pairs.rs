//! The im-e2e pairs of one scenario: even VU slots send to the next slot.
//!
//! Pairs stay inside one generator process, so both ends share this table:
//! a sender learns its partner's user id and whether the partner is
//! authenticated (it sends only then, so a receiver still connecting is not
//! counted as loss), and a draining receiver learns when its sender is done
//! and how many messages it sent. At the end, `im_lost_total` is the sum of
//! sent minus the sum of uniquely received. One slot is a few atomics;
//! the table is sized by the scenario's maximum VUs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One VU slot.
#[derive(Default)]
pub struct Slot {
    /// Global VU number of the VU in this slot (0: none yet).
    pub vu: AtomicU64,
    /// Authenticated and reading.
    pub online: AtomicBool,
    /// Messages this slot sent (senders).
    pub sent: AtomicU64,
    /// Unique messages this slot received (receivers).
    pub unique: AtomicU64,
    /// The sender sent its last message.
    pub done: AtomicBool,
}

/// The slots of a scenario.
pub struct Pairs {
    slots: Box<[Slot]>,
}

impl Pairs {
    /// A table for up to `max_vus` VUs.
    pub fn new(max_vus: u64) -> Self {
        Pairs { slots: (0..max_vus).map(|_| Slot::default()).collect() }
    }

    /// Slot `index`, when the scenario can have that many VUs.
    pub fn slot(&self, index: u64) -> Option<&Slot> {
        self.slots.get(index as usize)
    }

    /// The partner of slot `index`: the next one for a sender (even), the
    /// previous one for a receiver (odd).
    pub fn partner(&self, index: u64) -> Option<&Slot> {
        if index.is_multiple_of(2) {
            self.slot(index + 1)
        } else {
            self.slot(index - 1)
        }
    }

    /// Sent minus uniquely received over every slot.
    pub fn lost(&self) -> u64 {
        let sent: u64 = self.slots.iter().map(|s| s.sent.load(Ordering::Relaxed)).sum();
        let unique: u64 = self.slots.iter().map(|s| s.unique.load(Ordering::Relaxed)).sum();
        sent.saturating_sub(unique)
    }
}
