//! Execution-segment arithmetic: k6's own expected stripes and scales, then
//! properties over random segmentations.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn share(segment: &str, sequence: Option<&str>) -> Share {
    let seq = sequence.map(|s| parse_sequence(s).unwrap());
    Share::new(Segment::parse(segment).unwrap(), seq).unwrap()
}

fn positions(s: &Share) -> (Vec<u64>, u64) {
    (s.striping.positions[s.index].clone(), s.striping.cycle)
}

#[test]
fn stripes_are_the_ones_k6_picks() {
    // k6's lib/execution_segment_test.go TestGetStripedOffsets, written as
    // positions within the cycle instead of a start and gaps.
    let full = "0,0.3,0.5,0.6,0.7,0.8,0.9,1";
    let other = "0,0.2,0.5,0.6,0.7,0.8,0.9,1";
    let cases: &[(Option<&str>, &str, &[u64], u64)] = &[
        (Some(full), "0:0.3", &[0, 4, 7], 10),
        (Some(full), "0.3:0.5", &[1, 5], 10),
        (Some(full), "0.5:0.6", &[2], 10),
        (Some(full), "0.6:0.7", &[3], 10),
        (Some(full), "0.8:0.9", &[8], 10),
        (Some(full), "0.9:1", &[9], 10),
        (Some(other), "0.9:1", &[9], 10),
        (Some(other), "0:0.2", &[1, 5], 10),
        (Some(other), "0.6:0.7", &[3], 10),
        (Some("0,0.2,0.5"), "0:0.2", &[3, 9], 10),
        (Some("0,0.2,0.5"), "0.2:0.5", &[1, 5, 7], 10),
        (Some("0,2/5,4/5"), "0:2/5", &[0, 3], 5),
        (Some("0,2/5,4/5"), "2/5:4/5", &[1, 4], 5),
        (None, "0:0.2", &[1], 5),
        (None, "0:1/5", &[1], 5),
        (None, "0:2/10", &[1], 5),
        (None, "0:0.4", &[1, 3], 5),
        (None, "2/5:4/5", &[1, 4], 5),
        (None, "1/10:5/10", &[1, 3, 5, 9], 10),
    ];
    for &(seq, seg, want, cycle) in cases {
        assert_eq!(positions(&share(seg, seq)), (want.to_vec(), cycle), "{seg} in {seq:?}");
    }
}

#[test]
fn scales_match_k6() {
    for seq in [None, Some("0,0.5,1")] {
        let first = share("0.5", seq);
        assert_eq!((first.scale(2), first.scale(3)), (1, 2));
        let second = share("0.5:1.0", seq);
        assert_eq!((second.scale(2), second.scale(3)), (1, 1));
    }
    assert_eq!(share("0:7/20", Some("0,7/20,7/10,1")).scale(50), 18);
    // A full sequence of one segment scales nothing.
    assert_eq!(share("0:1", None).scale(12345), 12345);
    assert!(share("0:1", Some("0,1")).is_full());
}

#[test]
fn rescaling_follows_how_a_value_was_split() {
    let s = share("0:1/3", Some("0,1/3,2/3,1"));
    let r = s.rescaled(20).unwrap();
    assert_eq!(r.sequence(), "0,7/20,7/10,1");
    assert_eq!(r.segment().to_string(), "0:7/20");
    // 1 VU over three segments: only one segment has it, and the others
    // get nothing to rescale by.
    let owners: Vec<bool> =
        ["0:1/3", "1/3:2/3", "2/3:1"].iter().map(|seg| share(seg, Some("0,1/3,2/3,1")).rescaled(1).is_some()).collect();
    assert_eq!(owners.iter().filter(|o| **o).count(), 1);
}

#[test]
fn points_parse_as_fractions_decimals_and_percentages() {
    let r = |s: &str| Ratio::parse(s).map(|r| r.to_string());
    assert_eq!(r("1/4").unwrap(), "1/4");
    assert_eq!(r("2/4").unwrap(), "1/2");
    assert_eq!(r("0.25").unwrap(), "1/4");
    assert_eq!(r(".5").unwrap(), "1/2");
    assert_eq!(r("25%").unwrap(), "1/4");
    assert_eq!(r("1").unwrap(), "1");
    assert_eq!(r("1.0").unwrap(), "1");
    assert_eq!(Segment::parse("1/4:2/4").unwrap().to_string(), "1/4:1/2");
    assert_eq!(Segment::parse("1/2").unwrap().to_string(), "0:1/2");
    assert!(Segment::parse("").unwrap().is_full());
}

#[test]
fn bad_points_and_segments_say_what_is_wrong() {
    let err = |s: &str| Segment::parse(s).unwrap_err();
    assert!(err("abc").contains("\"abc\" is not a fraction"), "{}", err("abc"));
    assert!(err("1/0").contains("divides by zero"));
    assert!(err("-1/4:1/2").contains("negative"));
    assert!(err("2").contains("ends after 1"));
    assert!(err("1/2:1/4").contains("must start before it ends"));
    assert!(err("1/2:1/2").contains("must start before it ends"));
    assert!(err("12.5%").contains("whole percentage"));
    assert!(parse_sequence("0.5").unwrap_err().contains("at least two points"));
    assert!(parse_sequence("0,1/2,1/3,1").unwrap_err().contains("1/2:1/3 must start before it ends"));
    let missing = Share::new(Segment::parse("1/3:2/3").unwrap(), Some(parse_sequence("0,1/4,1/2,3/4,1").unwrap()));
    assert_eq!(missing.unwrap_err(), "the segment 1/3:2/3 is not one of the sequence 0,1/4,1/2,3/4,1");
    let awkward = Share::new(Segment::parse("0:1/999983").unwrap(), Some(parse_sequence("0,1/999983,1/2,1").unwrap()));
    assert!(awkward.unwrap_err().contains("no common denominator up to 1000000"));
}

/// A random sequence of adjoining segments; full (0 to 1) or not.
fn random_sequence(rng: &mut StdRng) -> Vec<Segment> {
    let mut points = vec![Ratio::ZERO, Ratio::ONE];
    for _ in 0..rng.gen_range(0..7) {
        let den = rng.gen_range(2..=16u128);
        points.push(Ratio::new(rng.gen_range(1..den), den).unwrap());
    }
    if rng.gen_bool(0.2) {
        points.retain(|p| *p != Ratio::ZERO);
    }
    if rng.gen_bool(0.2) {
        points.retain(|p| *p != Ratio::ONE);
    }
    points.sort();
    points.dedup();
    if points.len() < 2 {
        points = vec![Ratio::ZERO, Ratio::ONE];
    }
    points.windows(2).map(|w| Segment::new(w[0], w[1]).unwrap()).collect()
}

/// Every segment's share of a random sequence (filled in to 0..1).
pub(crate) fn random_shares(rng: &mut StdRng) -> Vec<Share> {
    let seq = random_sequence(rng);
    let first = Share::new(seq[0], Some(seq.clone())).unwrap();
    first.striping.segments.iter().map(|s| Share::new(*s, Some(seq.clone())).unwrap()).collect()
}

#[test]
fn the_shares_of_a_sequence_partition_every_count() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..400 {
        let shares = random_shares(&mut rng);
        let cycle = shares[0].striping.cycle;
        let values: Vec<u64> =
            (0..=2 * cycle + 3).chain([rng.gen_range(0..1_000_000), rng.gen_range(0..u32::MAX as u64)]).collect();
        for &v in &values {
            let parts: Vec<u64> = shares.iter().map(|s| s.scale(v)).collect();
            assert_eq!(parts.iter().sum::<u64>(), v, "{} of {v}: {parts:?}", shares[0].sequence());
            for (i, s) in shares.iter().enumerate() {
                assert_eq!(s.before(v), parts[..i].iter().sum::<u64>());
            }
        }
        // The indices below n: each owned by exactly one share, as many as
        // its scale of n, in ascending order.
        let n = 3 * cycle + rng.gen_range(0..cycle + 1);
        let mut owner = vec![usize::MAX; n as usize];
        for (i, s) in shares.iter().enumerate() {
            let own: Vec<u64> = s.indices().take_while(|&x| x < n).collect();
            assert!(own.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(own.len() as u64, s.scale(n));
            for x in own {
                assert_eq!(owner[x as usize], usize::MAX, "index {x} owned twice in {}", s.sequence());
                owner[x as usize] = i;
            }
        }
        assert!(owner.iter().all(|&o| o != usize::MAX), "an index without owner in {}", shares[0].sequence());
        // Rescaling by a value splits any other value completely too.
        let by = rng.gen_range(1..50);
        let w = rng.gen_range(0..500);
        let total: u64 = shares.iter().filter_map(|s| s.rescaled(by)).map(|r| r.scale(w)).sum();
        assert_eq!(total, w, "{} rescaled by {by}, of {w}", shares[0].sequence());
        for s in &shares {
            assert_eq!(s.rescaled(by).is_some(), s.scale(by) > 0);
        }
    }
}
