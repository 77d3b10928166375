//! Property: for every executor, the segments of a random sequence together
//! plan exactly the unsplit scenario (same VUs at every instant, same
//! iterations, the same arrival schedule), read through the scenario file
//! and the command-line flags as a user would write them.

use super::segment::tests::random_shares;
use super::segment::Share;
use super::stages::VuStep;
use super::ExecutorConfig;
use crate::config::{load, Overrides, Split};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

fn plan(scenario: &Value, share: Option<&Share>) -> ExecutorConfig {
    let doc = json!({"options": {"scenarios": {"s": scenario}}, "flows": {"default": {"type": "noop"}}});
    let split = share
        .map(|s| Split { segment: Some(s.segment().to_string()), sequence: Some(s.sequence()), vu_offset: None })
        .unwrap_or_default();
    let overrides = Overrides { split, ..Overrides::default() };
    let mut plan = load(&doc, &overrides).unwrap_or_else(|e| panic!("{scenario}: {e:?}"));
    plan.scenarios.remove(0).executor
}

fn stages(rng: &mut StdRng, max_target: u64) -> Value {
    let n = rng.gen_range(1..4);
    Value::Array(
        (0..n)
            .map(|_| json!({"duration": format!("{}ms", rng.gen_range(1..1500)), "target": rng.gen_range(0..=max_target)}))
            .collect(),
    )
}

fn random_scenario(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..7) {
        0 => {
            let vus = rng.gen_range(1..20);
            json!({"executor": "shared-iterations", "vus": vus, "iterations": vus + rng.gen_range(0..200)})
        }
        1 => json!({"executor": "per-vu-iterations", "vus": rng.gen_range(1..30), "iterations": rng.gen_range(1..9)}),
        2 => json!({"executor": "constant-vus", "vus": rng.gen_range(1..40), "duration": "1s"}),
        3 => json!({"executor": "ramping-vus", "startVUs": rng.gen_range(1..10), "stages": stages(rng, 40)}),
        4 => {
            let pre = rng.gen_range(0..20);
            let unit = ["1s", "700ms", "2s"][rng.gen_range(0..3)];
            json!({"executor": "constant-arrival-rate", "rate": rng.gen_range(1..60),
                   "timeUnit": unit,
                   "duration": format!("{}ms", rng.gen_range(1..3000)),
                   "preAllocatedVUs": pre, "maxVUs": pre + rng.gen_range(1..20)})
        }
        5 => {
            let pre = rng.gen_range(0..20);
            json!({"executor": "ramping-arrival-rate", "startRate": rng.gen_range(0..30), "timeUnit": "1s",
                   "stages": [{"duration": "1s", "target": rng.gen_range(1..60)}, {"duration": "700ms", "target": rng.gen_range(0..60)}],
                   "preAllocatedVUs": pre, "maxVUs": pre + rng.gen_range(1..20)})
        }
        _ => {
            let vus = rng.gen_range(0..20);
            json!({"executor": "externally-controlled", "vus": vus, "maxVUs": vus + rng.gen_range(0..20), "duration": "5s"})
        }
    }
}

/// The planned VU count at `t`.
fn vus_at(steps: &[VuStep], t: Duration) -> u64 {
    steps.iter().take_while(|s| s.at <= t).last().map_or(0, |s| s.vus)
}

/// Every start offset within the duration, merged over `shards` shards.
fn schedule(c: &ExecutorConfig, shards: usize) -> Vec<Duration> {
    let (mut all, end) = match c {
        ExecutorConfig::ConstantArrivalRate(c) => (
            (0..shards).flat_map(|s| c.schedule(s, shards).take_while(|o| *o <= c.duration)).collect::<Vec<_>>(),
            c.duration,
        ),
        ExecutorConfig::RampingArrivalRate(c) => {
            ((0..shards).flat_map(|s| c.schedule(s, shards)).collect(), Duration::MAX)
        }
        _ => unreachable!(),
    };
    all.retain(|o| *o <= end);
    all.sort();
    all
}

#[test]
fn the_segments_of_a_sequence_together_run_the_unsplit_scenario() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in 0..300 {
        let shares = random_shares(&mut rng);
        let scenario = random_scenario(&mut rng);
        let whole = plan(&scenario, None);
        let parts: Vec<ExecutorConfig> = shares.iter().map(|s| plan(&scenario, Some(s))).collect();
        let ctx = format!("case {case}: {scenario} split {}", shares[0].sequence());
        let sum = |f: &dyn Fn(&ExecutorConfig) -> u64| parts.iter().map(f).sum::<u64>();
        let max_vus = |c: &ExecutorConfig| c.executor().max_vus();
        assert_eq!(sum(&max_vus), max_vus(&whole), "max VUs, {ctx}");
        match &whole {
            ExecutorConfig::SharedIterations(w) => {
                let f = |c: &ExecutorConfig| match c {
                    ExecutorConfig::SharedIterations(c) => (c.vus, c.iterations),
                    _ => unreachable!(),
                };
                assert_eq!(sum(&|c| f(c).0), w.vus, "{ctx}");
                assert_eq!(sum(&|c| f(c).1), w.iterations, "{ctx}");
                assert!(parts.iter().all(|c| f(c).0 > 0 || f(c).1 == 0), "iterations without VUs, {ctx}");
            }
            ExecutorConfig::PerVuIterations(w) => {
                let f = |c: &ExecutorConfig| match c {
                    ExecutorConfig::PerVuIterations(c) => c.vus * c.iterations,
                    _ => unreachable!(),
                };
                assert_eq!(sum(&f), w.vus * w.iterations, "{ctx}");
            }
            ExecutorConfig::ConstantVus(_) => {}
            ExecutorConfig::ExternallyControlled(w) => {
                let f = |c: &ExecutorConfig| match c {
                    ExecutorConfig::ExternallyControlled(c) => c.vus,
                    _ => unreachable!(),
                };
                assert_eq!(sum(&f), w.vus, "{ctx}");
            }
            ExecutorConfig::RampingVus(w) => {
                let whole_steps = w.plan();
                let part_steps: Vec<Vec<VuStep>> = parts
                    .iter()
                    .map(|c| match c {
                        ExecutorConfig::RampingVus(c) => c.plan(),
                        _ => unreachable!(),
                    })
                    .collect();
                for t in whole_steps.iter().chain(part_steps.iter().flatten()).map(|s| s.at) {
                    let split: u64 = part_steps.iter().map(|p| vus_at(p, t)).sum();
                    assert_eq!(split, vus_at(&whole_steps, t), "VUs at {t:?}, {ctx}");
                }
            }
            ExecutorConfig::ConstantArrivalRate(_) | ExecutorConfig::RampingArrivalRate(_) => {
                let pre = |c: &ExecutorConfig| match c {
                    ExecutorConfig::ConstantArrivalRate(c) => c.pre_allocated_vus,
                    ExecutorConfig::RampingArrivalRate(c) => c.pre_allocated_vus,
                    _ => unreachable!(),
                };
                assert_eq!(sum(&pre), pre(&whole), "preAllocatedVUs, {ctx}");
                // A segment without a VU for the scenario gets no arrival.
                for p in &parts {
                    if max_vus(p) == 0 {
                        assert!(schedule(p, 1).is_empty(), "arrivals without a VU, {ctx}");
                    }
                }
                let want = schedule(&whole, 1);
                let mut got: Vec<Duration> = parts.iter().flat_map(|p| schedule(p, rng.gen_range(1..4))).collect();
                got.sort();
                assert_eq!(got, want, "arrival schedule, {ctx}");
            }
        }
    }
}

#[test]
fn vu_numbers_continue_where_the_earlier_segments_stop() {
    let doc = json!({
        "options": {"scenarios": {
            "a": {"executor": "constant-vus", "vus": 10, "duration": "1s"},
            "b": {"executor": "constant-arrival-rate", "rate": 5, "duration": "1s", "preAllocatedVUs": 2, "maxVUs": 6},
        }},
        "flows": {"default": {"type": "noop"}},
    });
    let seq = "0,1/4,1/2,3/4,1";
    let mut next = 0;
    for seg in ["0:1/4", "1/4:1/2", "1/2:3/4", "3/4:1"] {
        let split = Split { segment: Some(seg.into()), sequence: Some(seq.into()), vu_offset: None };
        let plan = load(&doc, &Overrides { split, ..Overrides::default() }).unwrap();
        assert_eq!(plan.vu_offset, next, "{seg}");
        next += plan.scenarios.iter().map(|s| s.executor.executor().max_vus()).sum::<u64>();
    }
    assert_eq!(next, 16);
    let split = Split { segment: Some("1/2:3/4".into()), sequence: Some(seq.into()), vu_offset: Some(1000) };
    assert_eq!(load(&doc, &Overrides { split, ..Overrides::default() }).unwrap().vu_offset, 1000);
}

#[test]
fn a_bad_split_names_the_flag_or_option() {
    let doc = |opts: Value| {
        let mut options = json!({"scenarios": {"s": {"executor": "constant-vus", "vus": 2, "duration": "1s"}}});
        options.as_object_mut().unwrap().extend(opts.as_object().unwrap().clone());
        json!({"options": options, "flows": {"default": {"type": "noop"}}})
    };
    let err =
        |d: &Value, split: Split| format!("{:?}", load(d, &Overrides { split, ..Overrides::default() }).unwrap_err());
    let flag = Split { segment: Some("3/4:1/2".into()), ..Split::default() };
    let e = err(&doc(json!({})), flag);
    assert!(e.contains("--execution-segment") && e.contains("must start before it ends"), "{e}");
    let e = err(&doc(json!({"executionSegmentSequence": "0,1/2,1"})), Split::default());
    assert!(e.contains("options.executionSegmentSequence") && e.contains("needs an execution segment too"), "{e}");
    let e = err(&doc(json!({"executionSegment": "1/3:2/3", "executionSegmentSequence": "0,1/2,1"})), Split::default());
    assert!(e.contains("options.executionSegment") && e.contains("not one of the sequence 0,1/2,1"), "{e}");
    // The flags win over the options.
    let flag = Split { segment: Some("1/2:1".into()), ..Split::default() };
    let plan = load(&doc(json!({"executionSegment": "bogus"})), &Overrides { split: flag, ..Overrides::default() });
    assert_eq!(plan.unwrap().share.segment().to_string(), "1/2:1");
}
