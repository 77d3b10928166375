//! Receiver-side de-duplication by (sender, seq) in bounded memory.
//!
//! Per sender, a sliding window remembers which of the last `W` seqs below
//! the highest one arrived (one bit each). A seq inside the window is a
//! duplicate when its bit is set; a new seq lower than the highest is a
//! reorder. A seq older than the whole window cannot be told apart from a
//! duplicate; it is counted as a unique reorder (a window of 1024 seqs at
//! one message per 10 ms spans 10 s of reordering). Senders per receiver
//! are capped too (the least recently heard one is forgotten).

/// What one received message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// First time, in order.
    New,
    /// First time, after a higher seq of the same sender.
    Reordered,
    /// Seen before.
    Duplicate,
}

/// Senders remembered per receiver.
pub const MAX_SENDERS: usize = 8;

/// One sender's window.
struct SeqWindow {
    highest: u64,
    /// Bit i of the window = seq `highest - i` arrived.
    bits: Box<[u64]>,
}

impl SeqWindow {
    fn new(seq: u64, words: usize) -> Self {
        let mut bits = vec![0u64; words].into_boxed_slice();
        bits[0] = 1;
        SeqWindow { highest: seq, bits }
    }

    fn width(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn observe(&mut self, seq: u64) -> Seen {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.bits[0] |= 1;
            return Seen::New;
        }
        let back = self.highest - seq;
        if back >= self.width() {
            return Seen::Reordered;
        }
        let (word, bit) = ((back / 64) as usize, back % 64);
        if self.bits[word] & (1 << bit) != 0 {
            Seen::Duplicate
        } else {
            self.bits[word] |= 1 << bit;
            Seen::Reordered
        }
    }

    /// Moves every bit `n` places towards older seqs.
    fn shift(&mut self, n: u64) {
        if n >= self.width() {
            self.bits.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        let len = self.bits.len();
        for i in (0..len).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s]);
            let lo = src.and_then(|s| s.checked_sub(1)).map_or(0, |s| self.bits[s]);
            self.bits[i] = if bits == 0 { hi } else { (hi << bits) | (lo >> (64 - bits)) };
        }
    }
}

/// A receiver's memory of its senders.
pub struct Dedup {
    words: usize,
    senders: Vec<(u64, u64, SeqWindow)>,
    clock: u64,
}

impl Dedup {
    /// Windows of `window` seqs (a multiple of 64).
    pub fn new(window: usize) -> Self {
        Dedup { words: (window / 64).max(1), senders: Vec::new(), clock: 0 }
    }

    /// Records `seq` from the sender identified by `from`.
    pub fn observe(&mut self, from: &str, seq: u64) -> Seen {
        let key = fnv1a(from.as_bytes());
        self.clock += 1;
        if let Some(entry) = self.senders.iter_mut().find(|(k, _, _)| *k == key) {
            entry.1 = self.clock;
            return entry.2.observe(seq);
        }
        if self.senders.len() >= MAX_SENDERS {
            let oldest = self.senders.iter().enumerate().min_by_key(|(_, e)| e.1).map(|(i, _)| i).unwrap_or(0);
            self.senders.swap_remove(oldest);
        }
        self.senders.push((key, self.clock, SeqWindow::new(seq, self.words)));
        Seen::New
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_and_reorders_exactly() {
        let mut d = Dedup::new(128);
        let seqs = [1u64, 2, 2, 4, 3, 3, 5, 200, 150, 150, 72, 71, 1];
        let got: Vec<Seen> = seqs.iter().map(|s| d.observe("a", *s)).collect();
        use Seen::*;
        assert_eq!(
            got,
            vec![
                New, New, Duplicate, New, Reordered, Duplicate, New, New, Reordered, Duplicate, Reordered,
                // 71 is 129 below 200: older than the window, counted as a unique reorder.
                Reordered, Reordered
            ]
        );
        // Senders are independent.
        assert_eq!(d.observe("b", 3), New);
        assert_eq!(d.observe("b", 3), Duplicate);
    }

    #[test]
    fn matches_a_set_over_a_long_shuffled_stream() {
        let mut d = Dedup::new(1024);
        let mut set = std::collections::HashSet::new();
        let mut highest = 0u64;
        let mut rng = 12345u64;
        for i in 0..100_000u64 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Mostly increasing, with duplicates and short reorders.
            let seq = match rng >> 61 {
                0 => i.saturating_sub((rng >> 20) % 500),
                1 => i.saturating_sub(1),
                _ => i,
            };
            let expected = if !set.insert(seq) {
                Seen::Duplicate
            } else if seq < highest {
                Seen::Reordered
            } else {
                Seen::New
            };
            highest = highest.max(seq);
            assert_eq!(d.observe("s", seq), expected, "seq {seq} at {i}");
        }
    }

    #[test]
    fn forgets_the_least_recent_sender_beyond_the_cap() {
        let mut d = Dedup::new(64);
        for s in 0..MAX_SENDERS {
            d.observe(&s.to_string(), 1);
        }
        d.observe("0", 2); // "1" is now the least recent
        d.observe("new", 1);
        assert_eq!(d.observe("0", 2), Seen::Duplicate);
        assert_eq!(d.observe("1", 1), Seen::New); // forgotten
    }
}
