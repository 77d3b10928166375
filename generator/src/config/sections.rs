//! The `options` and `flows` sections of a scenario file.

use super::reader::{self, Obj, Report};
use super::{k6_options, Overrides, ScenarioPlan};
use crate::executor::{BaseConfig, ExecutorConfig, DEFAULT_GRACEFUL_STOP};
use crate::flow::{FlowDef, Flows};
use crate::summary::stats::TrendStat;
use crate::threshold::ThresholdSet;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use volley_window::Tags;

pub(super) const OPTION_FIELDS: &[&str] = &[
    "scenarios",
    "thresholds",
    "summaryTrendStats",
    "tags",
    "vus",
    "duration",
    "iterations",
    "stages",
    "executionSegment",
    "executionSegmentSequence",
    "localIPs",
    "setupTimeout",
];

/// What `options` (and the flags that set options) say.
pub(super) struct Options {
    pub scenarios: Vec<ScenarioPlan>,
    pub thresholds: Vec<ThresholdSet>,
    pub trend_stats: Vec<TrendStat>,
    pub time_unit: Option<crate::summary::format::TimeUnit>,
    pub tags: Tags,
    /// `(where it was given, value)` for the split and the source addresses.
    pub segment: Option<(String, String)>,
    pub sequence: Option<(String, String)>,
    pub local_ips: Option<(String, String)>,
    pub setup_timeout: Duration,
}

/// Reads `options`; the command line wins where it says something.
pub(super) fn read_options(options: Option<Obj>, overrides: &Overrides, report: &Report) -> Options {
    let mut o = Options {
        scenarios: Vec::new(),
        thresholds: Vec::new(),
        trend_stats: crate::summary::stats::default_trend_stats(),
        time_unit: k6_options::time_unit(options.as_ref(), &overrides.flags, report),
        tags: Tags::new(),
        // k6 takes the split from the options too; the command line wins.
        segment: overrides.split.segment.clone().map(|s| ("--execution-segment".to_string(), s)),
        sequence: overrides.split.sequence.clone().map(|s| ("--execution-segment-sequence".to_string(), s)),
        local_ips: overrides.local_ips.clone().map(|s| ("--local-ips".to_string(), s)),
        setup_timeout: crate::flow::setup::DEFAULT_TIMEOUT,
    };
    if let Some(options) = options {
        read_file_options(options, &mut o);
    }
    for (k, v) in &overrides.flags.tags {
        reader::check_tag(report, "--tag", k, v);
        o.tags.insert(k.as_str(), v.as_str());
    }
    if let Some(stats) = k6_options::trend_stats(&overrides.flags, report) {
        o.trend_stats = stats;
    }
    if let Some(default) = default_scenario(overrides) {
        o.scenarios = vec![default];
    }
    if o.scenarios.is_empty() && report.is_clean() {
        report.error(
            "options.scenarios",
            "no scenario to run: define options.scenarios, or pass --vus and --duration (or --iterations)",
        );
    }
    o
}

fn read_file_options(options: Obj, o: &mut Options) {
    if let Some(text) = options.string("localIPs") {
        o.local_ips.get_or_insert((options.path_of("localIPs"), text));
    }
    if o.segment.is_none() {
        o.segment = options.string("executionSegment").map(|s| (options.path_of("executionSegment"), s));
    }
    if o.sequence.is_none() {
        o.sequence =
            options.string("executionSegmentSequence").map(|s| (options.path_of("executionSegmentSequence"), s));
    }
    if let Some(list) = options.array("summaryTrendStats") {
        match crate::summary::stats::parse_trend_stats(list) {
            Ok(stats) => o.trend_stats = stats,
            Err(e) => options.error("summaryTrendStats", e),
        }
    }
    o.tags = Tags::from_pairs(options.string_map("tags").unwrap_or_default());
    for (k, v) in o.tags.iter() {
        options.check_tag(&format!("tags.{k}"), k, v);
    }
    if let Some(t) = options.object("thresholds") {
        o.thresholds = crate::threshold::parse_all(t);
    }
    o.scenarios = read_scenarios(&options);
    if let Some(d) = options.duration("setupTimeout") {
        o.setup_timeout = d;
    }
    let known: Vec<&str> = OPTION_FIELDS.iter().chain(k6_options::FIELDS).copied().collect();
    options.finish_with(&known);
}

/// The flows of a file.
pub(super) struct FlowsRead {
    pub flows: Flows,
    /// Flows written but invalid: their problems are reported already, so
    /// a scenario using one is not also told the flow does not exist.
    pub invalid: Vec<String>,
    /// Whether the file has a `flows` section.
    pub given: bool,
    /// The `setup` flow.
    pub setup: Option<Arc<FlowDef>>,
}

/// Reads `flows`: the setup flow first (what it captures is a variable of
/// the others, so `scope` learns it), then every other flow.
pub(super) fn read_flows(
    flows_obj: Option<&Obj>,
    scope: &mut crate::flow::Scope,
    process_env: &HashMap<String, String>,
    report: &Report,
) -> FlowsRead {
    let mut out = FlowsRead { flows: HashMap::new(), invalid: Vec::new(), given: flows_obj.is_some(), setup: None };
    let Some(f) = flows_obj else { return out };
    if let Some(def) = f.get(crate::flow::setup::NAME) {
        match read_flow(f, crate::flow::setup::NAME, def, scope, process_env) {
            Some(flow @ FlowDef::Http(_)) => {
                if let FlowDef::Http(h) = &flow {
                    scope.setup = Arc::new(crate::flow::setup::SetupValues::new(h.captured()));
                }
                out.setup = Some(Arc::new(flow));
            }
            Some(_) => report.error(f.path_of(crate::flow::setup::NAME), "the setup flow must be of type http"),
            None => {}
        }
    }
    for (name, def) in f.entries().filter(|(n, _)| *n != crate::flow::setup::NAME) {
        match read_flow(f, name, def, scope, process_env) {
            Some(flow) => {
                out.flows.insert(name.clone(), Arc::new(flow));
            }
            None => out.invalid.push(name.clone()),
        }
    }
    out
}

/// Reads flow `name` of the `flows` object `f`.
fn read_flow(
    f: &Obj,
    name: &str,
    def: &Value,
    scope: &crate::flow::Scope,
    process_env: &HashMap<String, String>,
) -> Option<FlowDef> {
    let resolved = match crate::flow::ws::config::resolve_user_base(def, process_env) {
        Ok(r) => r,
        Err(e) => {
            f.report.error(reader::join(&f.path_of(name), "userBase"), e);
            return None;
        }
    };
    let def = resolved.as_ref().unwrap_or(def);
    Obj::new(def, f.path_of(name), f.report).and_then(|o| FlowDef::parse(o, name, scope))
}

fn read_scenarios(options: &Obj) -> Vec<ScenarioPlan> {
    let mut out = Vec::new();
    if let Some(map) = options.object("scenarios") {
        for (name, value) in map.entries() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                map.error(name, "scenario names may contain only letters, digits, '_' and '-'");
                continue;
            }
            let Some(obj) = Obj::new(value, map.path_of(name), options.report) else {
                continue;
            };
            if let Some((base, executor)) = ExecutorConfig::parse(obj) {
                out.push(ScenarioPlan { name: name.clone(), base, executor });
            }
        }
    }
    // k6's shortcut options create a scenario named "default".
    let shortcut = ["vus", "duration", "iterations", "stages"].iter().any(|f| options.has(f));
    if shortcut {
        if !out.is_empty() {
            options.error("scenarios", "cannot be combined with the shortcut options vus/duration/iterations/stages");
            return out;
        }
        let vus = options.uint("vus", 1);
        let duration = options.duration("duration");
        let iterations = options.uint("iterations", 1);
        let stages = options.has("stages").then(|| crate::executor::stages::parse_stages(options)).flatten();
        let executor = if let Some(stages) = stages {
            Some(ExecutorConfig::RampingVus(crate::executor::ramping_vus::Config {
                start_vus: vus.unwrap_or(1),
                stages,
                graceful_ramp_down: crate::executor::ramping_vus::DEFAULT_GRACEFUL_RAMP_DOWN,
                share: Default::default(),
            }))
        } else {
            shortcut_executor(vus, duration, iterations)
        };
        if let Some(executor) = executor {
            out.push(ScenarioPlan { name: "default".into(), base: default_base(), executor });
        }
    }
    out
}

fn default_base() -> BaseConfig {
    BaseConfig {
        start_time: Duration::ZERO,
        graceful_stop: DEFAULT_GRACEFUL_STOP,
        exec: "default".into(),
        env: Vec::new(),
        tags: Tags::new(),
    }
}

fn shortcut_executor(vus: Option<u64>, duration: Option<Duration>, iterations: Option<u64>) -> Option<ExecutorConfig> {
    use crate::executor::{constant_vus, per_vu_iterations, shared_iterations};
    let vus = vus.unwrap_or(1);
    Some(match (duration, iterations) {
        (_, Some(iterations)) => ExecutorConfig::SharedIterations(shared_iterations::Config {
            vus: vus.min(iterations),
            iterations,
            max_duration: duration.unwrap_or(per_vu_iterations::DEFAULT_MAX_DURATION),
        }),
        (Some(d), None) if !d.is_zero() => ExecutorConfig::ConstantVus(constant_vus::Config { vus, duration: d }),
        _ => ExecutorConfig::PerVuIterations(per_vu_iterations::Config {
            vus,
            iterations: 1,
            max_duration: per_vu_iterations::DEFAULT_MAX_DURATION,
        }),
    })
}

fn default_scenario(o: &Overrides) -> Option<ScenarioPlan> {
    if o.vus.is_none() && o.duration.is_none() && o.iterations.is_none() {
        return None;
    }
    let executor = shortcut_executor(o.vus, o.duration, o.iterations)?;
    Some(ScenarioPlan { name: "default".into(), base: default_base(), executor })
}
