//! Stages and the pure arithmetic behind the ramping executors.
//!
//! Kept free of clocks and tasks so that every edge (zero-length stages,
//! ramps down, fractional rates) is unit-tested exactly.

use crate::config::reader::Obj;
use std::time::Duration;

/// One `{duration, target}` stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// How long the ramp to `target` takes.
    pub duration: Duration,
    /// VUs (ramping-vus) or iterations per `timeUnit` (ramping-arrival-rate)
    /// reached at the end of the stage.
    pub target: u64,
}

/// Reads the required, non-empty `stages` list of `obj`.
pub fn parse_stages(obj: &Obj) -> Option<Vec<Stage>> {
    let list = obj.array("stages");
    let Some(list) = list else {
        if !obj.has("stages") {
            obj.error("stages", "is required and must list at least one {duration, target}");
        }
        return None;
    };
    if list.is_empty() {
        obj.error("stages", "must list at least one {duration, target}");
        return None;
    }
    let mut stages = Vec::with_capacity(list.len());
    let mut ok = true;
    for (i, item) in list.iter().enumerate() {
        let Some(stage) = Obj::new(item, format!("{}[{i}]", obj.path_of("stages")), obj.report) else {
            ok = false;
            continue;
        };
        let duration = stage.require("duration").and(stage.duration("duration"));
        let target = stage.require("target").and(stage.uint("target", 0));
        stage.finish_with(&["duration", "target"]);
        match (duration, target) {
            (Some(duration), Some(target)) => stages.push(Stage { duration, target }),
            _ => ok = false,
        }
    }
    ok.then_some(stages)
}

/// Total length of a list of stages.
pub fn total_duration(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// A point where the planned VU count changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VuStep {
    /// Offset from the scenario start.
    pub at: Duration,
    /// VUs that should be running from `at` on.
    pub vus: u64,
}

/// The planned VU count of ramping-vus over time, as k6 ramps it: linear
/// interpolation rounded down while ramping up and up while ramping down, so
/// a VU is only added once the line reaches it and only removed once the line
/// passes below it. Starts with `(0, start_vus)`; one step per whole VU.
pub fn vu_steps(start_vus: u64, stages: &[Stage]) -> Vec<VuStep> {
    let mut steps = vec![VuStep { at: Duration::ZERO, vus: start_vus }];
    let mut push = |at: Duration, vus: u64| match steps.last_mut() {
        Some(last) if last.at == at => last.vus = vus,
        Some(last) if last.vus == vus => {}
        _ => steps.push(VuStep { at, vus }),
    };
    let mut from = start_vus;
    let mut stage_start = Duration::ZERO;
    for stage in stages {
        let to = stage.target;
        let dur = stage.duration.as_nanos();
        if dur == 0 {
            push(stage_start, to);
        } else if to > from {
            let diff = (to - from) as u128;
            for v in from + 1..=to {
                let at = stage_start + nanos(dur * (v - from) as u128 / diff);
                push(at, v);
            }
        } else if to < from {
            let diff = (from - to) as u128;
            for v in (to..from).rev() {
                let at = stage_start + nanos(dur * (from - v) as u128 / diff);
                push(at, v);
            }
        }
        from = to;
        stage_start += stage.duration;
    }
    steps
}

/// The largest VU count a plan reaches.
pub fn max_planned_vus(start_vus: u64, stages: &[Stage]) -> u64 {
    stages.iter().map(|s| s.target).fold(start_vus, u64::max)
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(n.min(u64::MAX as u128) as u64)
}

/// Start offsets of ramping-arrival-rate iterations.
///
/// The i-th iteration (counting from 1) starts when the area under the rate
/// curve reaches i, so the count is the whole part of the total area and the
/// first start comes after the first whole iteration's worth of time. Within
/// a linear stage from rate `a` to `b` over `D`, the area after `x` is
/// `a·x + (b−a)·x²/(2D)`; solving for `x` gives the closed form used here.
#[derive(Clone, Debug)]
pub struct RampingArrivals {
    stages: Vec<(f64, f64, f64)>, // (from rate /s, to rate /s, duration s)
    stage: usize,
    stage_start: f64,
    done_before_stage: f64,
    next_i: f64,
}

impl RampingArrivals {
    /// Offsets for `start_rate` and `stages`, rates per `time_unit`.
    pub fn new(start_rate: u64, time_unit: Duration, stages: &[Stage]) -> Self {
        let unit = time_unit.as_secs_f64();
        let mut from = start_rate as f64 / unit;
        let stages = stages
            .iter()
            .map(|s| {
                let to = s.target as f64 / unit;
                let item = (from, to, s.duration.as_secs_f64());
                from = to;
                item
            })
            .collect();
        Self { stages, stage: 0, stage_start: 0.0, done_before_stage: 0.0, next_i: 1.0 }
    }

    /// The whole number of iterations the plan starts.
    pub fn total(start_rate: u64, time_unit: Duration, stages: &[Stage]) -> u64 {
        let plan = Self::new(start_rate, time_unit, stages);
        let area: f64 = plan.stages.iter().map(|(a, b, d)| d * (a + b) / 2.0).sum();
        (area + EPSILON).floor() as u64
    }
}

impl RampingArrivals {
    /// The start offset of iteration `index` (counting from 0) of the whole
    /// plan, for ascending indices with gaps: an execution segment starts
    /// only the indices it owns. `None` once past the plan's end.
    pub fn at(&mut self, index: u64) -> Option<Duration> {
        self.next_i = index as f64 + 1.0;
        self.next()
    }
}

/// Tolerance for float rounding at whole-number areas (e.g. 2 s × 100/s).
const EPSILON: f64 = 1e-9;

impl Iterator for RampingArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let &(a, b, d) = self.stages.get(self.stage)?;
            let stage_area = d * (a + b) / 2.0;
            let need = self.next_i - self.done_before_stage;
            if need <= stage_area + EPSILON && stage_area > 0.0 {
                let x = if (b - a).abs() < f64::EPSILON {
                    need / a
                } else {
                    let slope = (b - a) / d;
                    let disc = (a * a + 2.0 * slope * need).max(0.0);
                    (disc.sqrt() - a) / slope
                };
                self.next_i += 1.0;
                let at = self.stage_start + x.clamp(0.0, d);
                return Some(Duration::from_secs_f64(at));
            }
            self.done_before_stage += stage_area;
            self.stage_start += d;
            self.stage += 1;
        }
    }
}

/// Start offsets of constant-arrival-rate iterations: one every
/// `time_unit / rate`, from 0 up to and including `duration` (k6 starts both
/// the first at 0 and one at the very end: 200/s over 3 s is 601). Computed
/// from the index, never by adding up periods, so no drift accumulates.
pub fn constant_arrival_offset(i: u64, rate: u64, time_unit: Duration) -> Duration {
    nanos(i as u128 * time_unit.as_nanos() / rate as u128)
}

/// How many constant-arrival-rate iterations the plan starts.
pub fn constant_arrival_total(rate: u64, time_unit: Duration, duration: Duration) -> u64 {
    (duration.as_nanos() * rate as u128 / time_unit.as_nanos()) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64, target: u64) -> Stage {
        Stage { duration: Duration::from_secs_f64(secs), target }
    }

    fn steps(v: &[(f64, u64)]) -> Vec<VuStep> {
        v.iter().map(|&(at, vus)| VuStep { at: Duration::from_secs_f64(at), vus }).collect()
    }

    #[test]
    fn ramps_up_rounding_down_and_down_rounding_up() {
        let plan = vu_steps(0, &[s(4.0, 4), s(1.0, 4), s(2.0, 0)]);
        assert_eq!(
            plan,
            steps(&[(0.0, 0), (1.0, 1), (2.0, 2), (3.0, 3), (4.0, 4), (5.5, 3), (6.0, 2), (6.5, 1), (7.0, 0)])
        );
    }

    #[test]
    fn zero_length_stage_jumps() {
        let plan = vu_steps(2, &[s(0.0, 10), s(1.0, 10), s(0.0, 1)]);
        assert_eq!(plan, steps(&[(0.0, 10), (1.0, 1)]));
        assert_eq!(max_planned_vus(2, &[s(0.0, 10), s(1.0, 10), s(0.0, 1)]), 10);
    }

    #[test]
    fn uneven_ramp_uses_exact_fractions() {
        let plan = vu_steps(1, &[s(1.0, 4)]);
        let ns = |n: u64| Duration::from_nanos(n);
        assert_eq!(
            plan,
            vec![
                VuStep { at: ns(0), vus: 1 },
                VuStep { at: ns(333_333_333), vus: 2 },
                VuStep { at: ns(666_666_666), vus: 3 },
                VuStep { at: ns(1_000_000_000), vus: 4 },
            ]
        );
    }

    #[test]
    fn constant_arrivals_match_k6_counts() {
        assert_eq!(constant_arrival_total(200, Duration::from_secs(1), Duration::from_secs(3)), 601);
        assert_eq!(constant_arrival_total(300, Duration::from_secs(1), Duration::from_secs(4)), 1201);
        // rate 10 per minute: one start every 6 s.
        assert_eq!(constant_arrival_offset(3, 10, Duration::from_secs(60)), Duration::from_secs(18));
        assert_eq!(constant_arrival_total(10, Duration::from_secs(60), Duration::from_secs(60)), 11);
    }

    /// Slow reference: step time finely, integrate the rate numerically and
    /// note when the area crosses each whole number.
    fn reference(start_rate: f64, stages: &[(f64, f64)]) -> Vec<f64> {
        let dt = 1e-5;
        let mut out = Vec::new();
        let (mut area, mut t0, mut from) = (0.0, 0.0, start_rate);
        let mut next = 1.0;
        for &(d, to) in stages {
            let steps = (d / dt).round() as u64;
            for k in 0..steps {
                let x = (k as f64 + 0.5) * dt;
                area += (from + (to - from) * x / d) * dt;
                while area >= next - 1e-9 {
                    out.push(t0 + (k + 1) as f64 * dt);
                    next += 1.0;
                }
            }
            t0 += d;
            from = to;
        }
        out
    }

    #[test]
    fn ramping_arrivals_match_numeric_integration() {
        let cases: Vec<(u64, Vec<(f64, u64)>)> = vec![
            (0, vec![(2.0, 100), (1.0, 100)]),
            (50, vec![(1.5, 10), (2.0, 0), (0.5, 40)]),
            (7, vec![(3.0, 7)]),
            (0, vec![(0.0, 30), (1.0, 30)]),
        ];
        for (start, stages) in cases {
            let st: Vec<Stage> = stages.iter().map(|&(d, t)| s(d, t)).collect();
            let got: Vec<f64> =
                RampingArrivals::new(start, Duration::from_secs(1), &st).map(|d| d.as_secs_f64()).collect();
            let want = reference(start as f64, &stages.iter().map(|&(d, t)| (d, t as f64)).collect::<Vec<_>>());
            assert_eq!(got.len(), want.len(), "count for start {start} {stages:?}");
            assert_eq!(got.len() as u64, RampingArrivals::total(start, Duration::from_secs(1), &st));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 2e-4, "start {start} {stages:?}: {g} vs {w}");
            }
            assert!(got.windows(2).all(|w| w[0] <= w[1]), "offsets must not go back in time");
        }
    }

    #[test]
    fn ramping_arrival_total_is_the_area() {
        let st = [s(2.0, 100), s(1.0, 100)];
        assert_eq!(RampingArrivals::total(0, Duration::from_secs(1), &st), 200);
        let per_minute = [s(60.0, 60)];
        assert_eq!(RampingArrivals::total(0, Duration::from_secs(60), &per_minute), 30);
    }
}
