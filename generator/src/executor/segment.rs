//! Execution segments: one test split across generators the way k6 splits it.
//!
//! A segment `from:to` is one generator's share of every scenario, with
//! `from` and `to` exact fractions of the whole (1/3 + 1/3 + 1/3 is 1, not
//! 0.999). A sequence (`0,1/4,1/2,3/4,1`) lists the segments of all
//! generators, so each one knows how its neighbours split the counts.
//!
//! Whole things (VUs, iterations, arrival indices) are *striped*: within a
//! cycle of `lcd` consecutive indices, where `lcd` is the least common
//! denominator of the segment lengths, each segment owns fixed positions,
//! spread as evenly as its length allows. Every index belongs to exactly one
//! segment, so the segments together run exactly the unsplit test whatever
//! the counts, and a segment's share of `n` is the number of its positions
//! below `n`. The positions are the ones k6 picks (larger segments choose
//! first; each takes the next index once it is due its next share), so a
//! volley generator and a k6 instance given the same flags run the same
//! iterations.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The largest cycle a sequence may need. A cycle holds one position per
/// index, so this bounds the memory a sequence of awkward fractions takes.
pub const MAX_CYCLE: u64 = 1_000_000;

/// An exact non-negative fraction, always in lowest terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: u64,
    den: u64,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    /// One: the whole test.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num/den` in lowest terms; `None` when `den` is 0 or the reduced
    /// fraction does not fit in 64 bits.
    pub fn new(num: u128, den: u128) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        Some(Ratio { num: u64::try_from(num / g).ok()?, den: u64::try_from(den / g).ok()? })
    }

    /// Reads a point as k6 writes them: a fraction (`1/4`), a decimal
    /// (`0.25`, `1`) or a whole percentage (`25%`).
    pub fn parse(text: &str) -> Result<Ratio, String> {
        let s = text.trim();
        let invalid = || format!("\"{text}\" is not a fraction (1/4), a decimal (0.25) or a percentage (25%)");
        let digits = |d: &str| !d.is_empty() && d.len() <= 18 && d.bytes().all(|b| b.is_ascii_digit());
        if s.starts_with('-') {
            return Err(format!("\"{text}\" is negative; segment points lie between 0 and 1"));
        }
        if let Some(p) = s.strip_suffix('%') {
            if !digits(p) {
                return Err(format!("\"{text}\" is not a whole percentage such as 25%"));
            }
            return Ratio::new(p.parse::<u128>().map_err(|_| invalid())?, 100).ok_or_else(invalid);
        }
        if let Some((n, d)) = s.split_once('/') {
            if !digits(n) || !digits(d) {
                return Err(invalid());
            }
            let (n, d) = (n.parse::<u128>().map_err(|_| invalid())?, d.parse::<u128>().map_err(|_| invalid())?);
            if d == 0 {
                return Err(format!("\"{text}\" divides by zero"));
            }
            return Ratio::new(n, d).ok_or_else(invalid);
        }
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if !(digits(whole) || whole.is_empty() && digits(frac)) || !frac.is_empty() && !digits(frac) {
            return Err(invalid());
        }
        let scale = 10u128.pow(frac.len() as u32);
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        let frac: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| invalid())? };
        Ratio::new(whole * scale + frac, scale).ok_or_else(invalid)
    }

    /// The numerator (lowest terms).
    pub fn num(self) -> u64 {
        self.num
    }

    /// The denominator (lowest terms).
    pub fn den(self) -> u64 {
        self.den
    }

    /// `self − other`, for `self ≥ other`.
    fn minus(self, other: Ratio) -> Ratio {
        let num = self.num as u128 * other.den as u128 - other.num as u128 * self.den as u128;
        Ratio::new(num, self.den as u128 * other.den as u128).expect("the difference of two points fits")
    }

    /// The value as a float, for display and rates.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num as u128 * other.den as u128).cmp(&(other.num as u128 * self.den as u128))
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// One segment `from:to` of the whole test, `0 ≤ from < to ≤ 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where it starts.
    pub from: Ratio,
    /// Where it ends.
    pub to: Ratio,
}

impl Segment {
    /// The whole test, `0:1`.
    pub const FULL: Segment = Segment { from: Ratio::ZERO, to: Ratio::ONE };

    /// Checks the bounds.
    pub fn new(from: Ratio, to: Ratio) -> Result<Segment, String> {
        if to > Ratio::ONE {
            return Err(format!("the segment {from}:{to} ends after 1"));
        }
        if from >= to {
            return Err(format!("the segment {from}:{to} must start before it ends"));
        }
        Ok(Segment { from, to })
    }

    /// Reads `from:to`, or `to` alone for `0:to` (k6's syntax).
    pub fn parse(text: &str) -> Result<Segment, String> {
        let s = text.trim();
        if s.is_empty() {
            return Ok(Segment::FULL);
        }
        let (from, to) = match s.split_once(':') {
            Some((from, to)) => (Ratio::parse(from)?, Ratio::parse(to)?),
            None => (Ratio::ZERO, Ratio::parse(s)?),
        };
        Segment::new(from, to)
    }

    /// `to − from`.
    pub fn length(self) -> Ratio {
        self.to.minus(self.from)
    }

    /// True for `0:1`.
    pub fn is_full(self) -> bool {
        self == Segment::FULL
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from, self.to)
    }
}

/// Reads a sequence of points, `0,1/4,1/2,3/4,1`, into adjoining segments.
pub fn parse_sequence(text: &str) -> Result<Vec<Segment>, String> {
    let points: Vec<&str> = text.split(',').map(str::trim).collect();
    if points.len() < 2 {
        return Err(format!("\"{text}\" needs at least two points, such as 0,1/2,1"));
    }
    let points = points.iter().map(|p| Ratio::parse(p)).collect::<Result<Vec<_>, _>>()?;
    points.windows(2).map(|w| Segment::new(w[0], w[1])).collect()
}

/// The positions every segment of a sequence owns within one cycle.
#[derive(Debug, PartialEq, Eq)]
struct Striping {
    /// Adjoining segments from 0 to 1.
    segments: Vec<Segment>,
    /// The cycle length: the least common denominator of the lengths.
    cycle: u64,
    /// Per segment, its ascending positions in `0..cycle`.
    positions: Vec<Vec<u64>>,
}

impl Striping {
    fn new(segments: Vec<Segment>) -> Result<Striping, String> {
        let mut cycle: u64 = 1;
        for s in &segments {
            let den = s.length().den();
            cycle = cycle
                .checked_mul(den / gcd(cycle as u128, den as u128) as u64)
                .filter(|&c| c <= MAX_CYCLE)
                .ok_or_else(|| {
                    format!(
                        "its segments' lengths have no common denominator up to {MAX_CYCLE}; \
                         use fractions with smaller denominators"
                    )
                })?;
        }
        // Each segment's share of a cycle, and who chooses first: larger
        // shares, ties in sequence order.
        let shares: Vec<u64> = segments.iter().map(|s| s.length().num() * (cycle / s.length().den())).collect();
        let mut order: Vec<usize> = (0..segments.len()).collect();
        order.sort_by(|&a, &b| shares[b].cmp(&shares[a]));
        let mut positions: Vec<Vec<u64>> = shares.iter().map(|&n| Vec::with_capacity(n as usize)).collect();
        for i in 0..cycle {
            // The k-th position of a segment with share n is due from
            // index ceil(k·cycle/n) on: the first due segment takes index i.
            let taker = order.iter().copied().find(|&s| {
                let taken = positions[s].len() as u128;
                i as u128 * shares[s] as u128 >= taken * cycle as u128 && taken < shares[s] as u128
            });
            positions[taker.expect("the shares add up to the cycle")].push(i);
        }
        Ok(Striping { segments, cycle, positions })
    }

    /// How many of the indices `0..value` segment `index` owns.
    fn scale(&self, index: usize, value: u64) -> u64 {
        let own = &self.positions[index];
        (value / self.cycle) * own.len() as u64 + own.partition_point(|&p| p < value % self.cycle) as u64
    }
}

/// This generator's share of the test: a segment within its (filled-in)
/// sequence. Cheap to clone; the default is the whole test.
#[derive(Clone, Debug)]
pub struct Share {
    striping: Arc<Striping>,
    index: usize,
}

impl Default for Share {
    fn default() -> Self {
        Share::full()
    }
}

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && self.striping.segments == other.striping.segments
    }
}

impl Share {
    /// The whole test.
    pub fn full() -> Share {
        let striping = Striping { segments: vec![Segment::FULL], cycle: 1, positions: vec![vec![0]] };
        Share { striping: Arc::new(striping), index: 0 }
    }

    /// The share of `segment` in `sequence`. Without a sequence the segment
    /// stands alone: the rest of 0..1 before and after it counts as one
    /// segment each, as in k6.
    pub fn new(segment: Segment, sequence: Option<Vec<Segment>>) -> Result<Share, String> {
        let mut segments = match sequence {
            Some(seq) if !seq.is_empty() => seq,
            _ => vec![segment],
        };
        let first = segments[0].from;
        if first != Ratio::ZERO {
            segments.insert(0, Segment { from: Ratio::ZERO, to: first });
        }
        let last = segments[segments.len() - 1].to;
        if last != Ratio::ONE {
            segments.push(Segment { from: last, to: Ratio::ONE });
        }
        let Some(index) = segments.iter().position(|s| *s == segment) else {
            let points: Vec<String> = std::iter::once(segments[0].from.to_string())
                .chain(segments.iter().map(|s| s.to.to_string()))
                .collect();
            return Err(format!("the segment {segment} is not one of the sequence {}", points.join(",")));
        };
        Ok(Share { striping: Arc::new(Striping::new(segments)?), index })
    }

    /// True when this share is the whole test.
    pub fn is_full(&self) -> bool {
        self.striping.segments.len() == 1
    }

    /// The segment.
    pub fn segment(&self) -> Segment {
        self.striping.segments[self.index]
    }

    /// The position of the segment in its sequence (0-based).
    pub fn position(&self) -> usize {
        self.index
    }

    /// The filled-in sequence, as points.
    pub fn sequence(&self) -> String {
        let s = &self.striping.segments;
        std::iter::once(s[0].from.to_string()).chain(s.iter().map(|s| s.to.to_string())).collect::<Vec<_>>().join(",")
    }

    /// This share of `value` whole things (VUs, iterations): how many of the
    /// indices `0..value` it owns. The shares of a sequence add up to `value`.
    pub fn scale(&self, value: u64) -> u64 {
        self.striping.scale(self.index, value)
    }

    /// How many of the indices `0..value` the segments before this one own:
    /// where this share's own numbering starts, so that numbers (VU ids)
    /// given out per segment never collide across the sequence.
    pub fn before(&self, value: u64) -> u64 {
        (0..self.index).map(|i| self.striping.scale(i, value)).sum()
    }

    /// The share of `value` split again in proportion to how `value` was
    /// split: a new sequence whose segment lengths are each segment's scale
    /// of `value` over `value`. shared-iterations divides its iterations
    /// this way, following its VUs, so a segment without VUs gets no
    /// iterations. `None` when this segment owns none of `value`.
    pub fn rescaled(&self, value: u64) -> Option<Share> {
        if value == 0 {
            return None;
        }
        if value.is_multiple_of(self.striping.cycle) {
            return Some(self.clone());
        }
        let mut segments = Vec::new();
        let (mut index, mut done) = (None, 0u64);
        for i in 0..self.striping.segments.len() {
            let n = self.striping.scale(i, value);
            if n == 0 {
                continue;
            }
            if i == self.index {
                index = Some(segments.len());
            }
            let from = Ratio::new(done as u128, value as u128)?;
            let to = Ratio::new((done + n) as u128, value as u128)?;
            segments.push(Segment { from, to });
            done += n;
        }
        let index = index?;
        Some(Share { striping: Arc::new(Striping::new(segments).ok()?), index })
    }

    /// The indices this share owns, ascending, without end.
    pub fn indices(&self) -> Indices {
        Indices { striping: self.striping.clone(), index: self.index, cycle_start: 0, next: 0 }
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {}", self.segment(), self.sequence())
    }
}

/// The ascending indices a share owns (see [`Share::indices`]).
#[derive(Clone, Debug)]
pub struct Indices {
    striping: Arc<Striping>,
    index: usize,
    cycle_start: u64,
    next: usize,
}

impl Iterator for Indices {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let own = &self.striping.positions[self.index];
        if self.next == own.len() {
            self.next = 0;
            self.cycle_start = self.cycle_start.checked_add(self.striping.cycle)?;
        }
        let at = self.cycle_start.checked_add(own[self.next])?;
        self.next += 1;
        Some(at)
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
pub(crate) mod tests;
