//! Property tests: frames a hostile or broken peer could send never panic the
//! receiver, never make it allocate more than a bound proportional to the
//! frame, and whatever decodes can be merged, bucketed and queried safely.
//!
//! Forged sketches are written through mirrors of the wire layout below, so
//! every field (bin limit, keys, counts, floats) can be set to anything.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use volley_window::wire::{self, ToExporter};
use volley_window::{Aggregate, Sketch};

/// Counts this thread's live heap bytes and their peak, so a test can bound
/// what one decode allocates (tests run on several threads at once).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            l.set(l.get() + layout.size() as isize);
            let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
        });
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated on this thread while `f` runs, above what was live
/// before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(|p| p.get()) - base).max(0) as usize)
}

/// What decoding a frame of `len` bytes may allocate at its peak: a bin is
/// 1 byte on the wire and 8 in memory, a sketch exists in up to three forms
/// while it is checked, and serde preallocates a claimed sequence length up
/// to 1 MiB before the bytes run out (bincode's limit stops it there).
fn bound(len: usize) -> usize {
    64 * len + (2 << 20)
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ForgedConfig {
    max_num_bins: u32,
    gamma: f64,
    gamma_ln: f64,
    min_value: f64,
    offset: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ForgedStore {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
    is_collapsed: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ForgedSketch {
    config: ForgedConfig,
    store: ForgedStore,
    negative_store: ForgedStore,
    min: f64,
    max: f64,
    sum: f64,
    zero_count: u64,
}

#[derive(Serialize)]
enum ForgedAggregate {
    #[allow(dead_code)]
    Counter(f64),
    #[allow(dead_code)]
    Gauge {
        value: f64,
        min: f64,
        max: f64,
    },
    #[allow(dead_code)]
    Rate {
        passes: u64,
        fails: u64,
    },
    Trend(ForgedSketch),
}

#[derive(Serialize)]
struct ForgedSeries {
    key: volley_window::SeriesKey,
    unit: volley_window::Unit,
    value: ForgedAggregate,
}

#[derive(Serialize)]
struct ForgedReport {
    generator: String,
    test_id: String,
    seq: u64,
    start_unix_ms: u64,
    len_ms: u64,
    series: Vec<ForgedSeries>,
    health: volley_window::HealthRecord,
}

/// Variant 1 of [`ToExporter`] is `Window`.
#[derive(Serialize)]
enum ForgedMessage {
    #[allow(dead_code)]
    Hello(()),
    Window(ForgedReport),
}

fn forged_of(sketch: &Sketch) -> ForgedSketch {
    bincode::deserialize(&bincode::serialize(sketch).unwrap()).unwrap()
}

fn frame_with(sketches: Vec<ForgedSketch>) -> Vec<u8> {
    let series = sketches
        .into_iter()
        .map(|s| ForgedSeries {
            key: volley_window::SeriesKey::new("http_req_duration", volley_window::Tags::new()),
            unit: volley_window::Unit::Time,
            value: ForgedAggregate::Trend(s),
        })
        .collect();
    wire::encode(&ForgedMessage::Window(ForgedReport {
        generator: "g".into(),
        test_id: "t".into(),
        seq: 0,
        start_unix_ms: 1_700_000_000_000,
        len_ms: 1000,
        series,
        health: Default::default(),
    }))
}

fn sketch_of(values: &[f64]) -> Sketch {
    let mut s = Sketch::new();
    values.iter().for_each(|v| s.add(*v));
    s
}

/// One way to break a sketch.
#[derive(Clone, Debug)]
enum Mutation {
    None,
    BinLimit(usize),
    Keys(i32, i32, i32),
    Count(u64),
    Bin(usize, u64),
    Bins(usize),
    Floats(f64, f64, f64),
    ZeroCount(u64),
    Collapsed,
    Gamma(f64),
}

fn special_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-0.0),
        -1e6..1e6f64
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::None),
        prop_oneof![any::<usize>(), Just(1usize << 62), 0..10_000usize].prop_map(Mutation::BinLimit),
        (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(|(a, b, c)| Mutation::Keys(a, b, c)),
        (-5000..70000i32, -5000..70000i32, -5000..70000i32).prop_map(|(a, b, c)| Mutation::Keys(a, b, c)),
        prop_oneof![any::<u64>(), 0..10u64].prop_map(Mutation::Count),
        (0..300usize, prop_oneof![any::<u64>(), Just(u64::MAX)]).prop_map(|(i, c)| Mutation::Bin(i, c)),
        (0..9000usize).prop_map(Mutation::Bins),
        (special_float(), special_float(), special_float()).prop_map(|(a, b, c)| Mutation::Floats(a, b, c)),
        prop_oneof![any::<u64>(), Just(u64::MAX)].prop_map(Mutation::ZeroCount),
        Just(Mutation::Collapsed),
        special_float().prop_map(Mutation::Gamma),
    ]
}

fn apply(s: &mut ForgedSketch, m: &Mutation) {
    let store = &mut s.store;
    match *m {
        Mutation::None => {}
        Mutation::BinLimit(l) => store.bin_limit = l,
        Mutation::Keys(a, b, c) => (store.min_key, store.max_key, store.offset) = (a, b, c),
        Mutation::Count(c) => store.count = c,
        Mutation::Bin(i, c) => {
            if store.bins.is_empty() {
                store.bins.push(c);
            } else {
                let n = store.bins.len();
                store.bins[i % n] = c;
            }
        }
        Mutation::Bins(n) => store.bins.resize(n, 0),
        Mutation::Floats(a, b, c) => (s.min, s.max, s.sum) = (a, b, c),
        Mutation::ZeroCount(z) => s.zero_count = z,
        Mutation::Collapsed => store.is_collapsed = !store.is_collapsed,
        Mutation::Gamma(g) => s.config.gamma = g,
    }
}

/// Everything the exporter does with a sketch; panics are the failure.
fn exercise(decoded: &Sketch, honest: &Sketch) {
    let mut a = honest.clone();
    if a.merge(decoded).is_ok() {
        assert_eq!(a.count(), honest.count() + decoded.count());
    }
    let mut b = decoded.clone();
    for _ in 0..3 {
        let copy = b.clone();
        let _ = b.merge(&copy);
        let _ = b.merge(honest);
    }
    for s in [decoded, &a, &b] {
        let buckets = s.buckets();
        assert!(buckets.counts.len() <= volley_window::sketch::MAX_BINS as usize);
        for q in [0.0, 0.5, 0.99, 1.0] {
            if let Some(v) = s.quantile(q) {
                assert!(!v.is_nan());
            }
        }
        let _ = (s.mean(), s.min(), s.max(), s.sum());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes after a valid header decode or fail; nothing panics.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut frame = [&wire::MAGIC[..], &[wire::VERSION]].concat().to_vec();
        frame.extend_from_slice(&body);
        let (_, peak) = peak_during(|| wire::decode::<ToExporter>(&frame, 1 << 20));
        prop_assert!(peak <= bound(frame.len()), "{} bytes allocated for a {}-byte frame", peak, frame.len());
    }

    /// A valid window with some bytes overwritten decodes or fails safely,
    /// and what decodes is usable.
    #[test]
    fn corrupted_windows_never_panic(
        values in proptest::collection::vec(0.001..1e6f64, 1..300),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let honest = sketch_of(&values);
        let mut frame = frame_with(vec![forged_of(&honest)]);
        for (at, byte) in edits {
            let i = 4 + at % (frame.len() - 4);
            frame[i] = byte;
        }
        let (decoded, peak) = peak_during(|| wire::decode::<ToExporter>(&frame, 1 << 20));
        prop_assert!(peak <= bound(frame.len()), "{} bytes allocated for a {}-byte frame", peak, frame.len());
        if let Ok(ToExporter::Window(w)) = decoded {
            for s in &w.series {
                if let Aggregate::Trend(sk) = &s.value {
                    exercise(sk, &honest);
                }
            }
        }
    }

    /// Forged sketches: every field set to anything. Either refused, or a
    /// sketch whose merges, buckets and quantiles are safe and whose memory
    /// stays within the bin limit.
    #[test]
    fn forged_sketches_are_refused_or_safe(
        values in proptest::collection::vec(prop_oneof![0.0..1e-9f64, 0.001..1e9f64, -1e3..0.0f64], 0..200),
        other in proptest::collection::vec(0.001..1e12f64, 0..200),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let honest = sketch_of(&other);
        let mut forged = forged_of(&sketch_of(&values));
        mutations.iter().for_each(|m| apply(&mut forged, m));
        let frame = frame_with(vec![forged.clone(), forged]);
        let (decoded, peak) = peak_during(|| wire::decode::<ToExporter>(&frame, 1 << 20));
        prop_assert!(peak <= bound(frame.len()), "{} bytes allocated for a {}-byte frame", peak, frame.len());
        match decoded {
            Ok(ToExporter::Window(w)) => {
                for s in &w.series {
                    let Aggregate::Trend(sk) = &s.value else { panic!("a trend was sent") };
                    exercise(sk, &honest);
                }
            }
            Ok(other) => panic!("decoded as {other:?}"),
            Err(e) => prop_assert!(e.to_string().starts_with("malformed frame"), "{}", e),
        }
    }
}

#[test]
fn the_reported_attacks_are_refused_with_their_reason() {
    let honest = forged_of(&sketch_of(&[1.0, 2.0, 3.0]));
    let refused = |f: &dyn Fn(&mut ForgedSketch)| {
        let mut s = honest.clone();
        f(&mut s);
        wire::decode::<ToExporter>(&frame_with(vec![s]), 1 << 20).unwrap_err().to_string()
    };
    assert!(refused(&|s| s.store.bin_limit = 1 << 62).contains("bin limit 4611686018427387904 is not 4096"));
    assert!(refused(&|s| s.store.max_key = 1 << 30).contains("outside"));
    // Count 1 and no bins: the crate's merge would index an empty store.
    assert!(refused(&|s| {
        s.store.bins.clear();
        s.store.count = 1
    })
    .contains("count 1 but its bins hold 0"));
    assert!(refused(&|s| s.sum = f64::NAN).contains("must be finite"));
    assert!(refused(&|s| s.config.gamma = 1.5).contains("is not Volley's"));
}

#[test]
fn merges_refuse_to_overflow() {
    let mut forged = forged_of(&sketch_of(&[1.0]));
    forged.zero_count = u64::MAX - 1;
    let ToExporter::Window(w) = wire::decode::<ToExporter>(&frame_with(vec![forged]), 1 << 20).unwrap() else {
        panic!()
    };
    let Aggregate::Trend(huge) = &w.series[0].value else { panic!() };
    assert_eq!(huge.count(), u64::MAX);
    let mut a = sketch_of(&[5.0]);
    assert_eq!(a.merge(huge).unwrap_err(), volley_window::MergeError::Overflow);
    assert_eq!(a.count(), 1, "a refused merge leaves the sketch unchanged");
}
