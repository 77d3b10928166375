//! The scenario file: k6 `options` plus Volley's `flows`, read into a
//! validated [`TestPlan`].
//!
//! # Layout
//! - [`duration`]: k6 duration strings.
//! - [`local_ips`]: k6's `--local-ips` / `localIPs` source address pool.
//! - [`k6_options`]: the request and summary options, and their flags.
//! - [`reader`]: the validating reader that reports every problem with its
//!   field path.
//! - this file: the document's top level, `options` and the cross-checks
//!   between scenarios, flows and environment.

pub mod capacity;
pub mod duration;
pub mod k6_options;
pub mod local_ips;
pub mod reader;

use crate::executor::segment::{self, Segment, Share};
use crate::executor::{BaseConfig, ExecutorConfig, DEFAULT_GRACEFUL_STOP};
use crate::flow::{FlowDef, Flows};
use crate::summary::stats::TrendStat;
use crate::threshold::ThresholdSet;
pub use k6_options::OptionFlags;
use reader::{ConfigError, ConfigErrors, Obj, Report};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use volley_window::Tags;

/// One scenario of a plan.
#[derive(Debug)]
pub struct ScenarioPlan {
    /// Scenario name (a key of `options.scenarios`).
    pub name: String,
    /// Options every executor has.
    pub base: BaseConfig,
    /// The executor and its options.
    pub executor: ExecutorConfig,
}

/// A validated test: what `volley run` executes.
#[derive(Debug)]
pub struct TestPlan {
    /// Scenarios, in file order.
    pub scenarios: Vec<ScenarioPlan>,
    /// Thresholds per metric or sub-metric.
    pub thresholds: Vec<ThresholdSet>,
    /// Trend columns of the summary.
    pub summary_trend_stats: Vec<TrendStat>,
    /// `summaryTimeUnit`: every time of the summary in one unit.
    pub summary_time_unit: Option<crate::summary::format::TimeUnit>,
    /// Tags on every metric.
    pub tags: Tags,
    /// Compiled flows by name.
    pub flows: Flows,
    /// Environment per scenario (process env, `-e`, scenario `env`).
    pub env: HashMap<String, HashMap<String, String>>,
    /// Process environment and `-e` (what token managers' Redis settings read).
    pub process_env: HashMap<String, String>,
    /// Token-manager flows this run runs or reads, by name.
    pub token_managers: Vec<String>,
    /// This generator's execution segment (the whole test unless split);
    /// the scenarios' executors are already scaled to it.
    pub share: Share,
    /// VU numbers start after this one: the VUs the earlier segments of the
    /// sequence number, so VU numbers (and the user ids built from them)
    /// never collide across generators.
    pub vu_offset: u64,
    /// Source addresses of the VUs' connections (`--local-ips`,
    /// `options.localIPs`), checked to be usable on this machine.
    pub local_ips: Option<Arc<local_ips::IpPool>>,
    /// The `setup` flow, run once before the scenarios.
    pub setup: Option<Arc<FlowDef>>,
    /// What the setup flow captures, for every other flow.
    pub setup_values: Arc<crate::flow::setup::SetupValues>,
    /// `setupTimeout`.
    pub setup_timeout: Duration,
}

/// Command-line settings that shape the plan.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--vus`: replaces the scenarios by one `default` scenario.
    pub vus: Option<u64>,
    /// `--duration`: likewise (constant-vus).
    pub duration: Option<Duration>,
    /// `--iterations`: likewise (shared-iterations).
    pub iterations: Option<u64>,
    /// `-e NAME=VALUE` pairs.
    pub env: Vec<(String, String)>,
    /// Whether the process environment is visible to templates.
    pub system_env: bool,
    /// How the test is split across generators.
    pub split: Split,
    /// `--local-ips`: the VUs' source addresses (wins over `options.localIPs`).
    pub local_ips: Option<String>,
    /// Where the relative paths of the file start (data files, multipart
    /// files): the scenario file's directory. `None`: the working directory.
    pub base_dir: Option<std::path::PathBuf>,
    /// k6's option flags (`--tag`, `--no-thresholds`, …).
    pub flags: OptionFlags,
}

/// `--execution-segment`, `--execution-segment-sequence` and `--vu-offset`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// This generator's segment, e.g. `1/4:2/4` (k6's syntax).
    pub segment: Option<String>,
    /// Every generator's segments, e.g. `0,1/4,2/4,3/4,1`.
    pub sequence: Option<String>,
    /// Overrides the first VU number (default: after the earlier segments' VUs).
    pub vu_offset: Option<u64>,
}

const TOP_FIELDS: &[&str] = &["options", "data", "flows"];
const OPTION_FIELDS: &[&str] = &[
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

/// Reads and validates a scenario file (`.json`, `.yaml` or `.yml`).
pub fn load_file(path: &Path, overrides: &Overrides) -> Result<TestPlan, ConfigErrors> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| single(&shown, format!("cannot read the scenario file: {e}")))?;
    let doc = parse_document(&text, path).map_err(|e| single(&shown, e))?;
    let mut overrides = overrides.clone();
    if overrides.base_dir.is_none() {
        overrides.base_dir = path.parent().map(Path::to_path_buf);
    }
    load(&doc, &overrides)
}

fn single(path: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { path: path.to_string(), message }])
}

/// Parses JSON or YAML text into a document (JSON is also valid YAML, but its
/// own parser gives better positions).
pub fn parse_document(text: &str, path: &Path) -> Result<Value, String> {
    check_shape(text)?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
    }
}

/// Largest scenario file read.
pub const MAX_FILE_BYTES: usize = 16 << 20;
/// Deepest nesting of `[` and `{` in a scenario file. The parsers would
/// refuse deeper documents too, but only after work that grows with the
/// square of the depth; no real scenario comes near this.
pub const MAX_NESTING: usize = 64;

/// Refuses, before parsing, a file too large or too deeply nested to be a
/// scenario. Brackets inside strings count too: a string holding 64
/// unclosed brackets is not worth a special case.
fn check_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!("the file has {} bytes; a scenario file may have at most {MAX_FILE_BYTES}", text.len()));
    }
    let mut depth = 0usize;
    for (line, l) in text.lines().enumerate() {
        for c in l.bytes() {
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_NESTING {
                return Err(format!("line {}: nested deeper than {MAX_NESTING} levels of [ and {{", line + 1));
            }
        }
    }
    Ok(())
}

/// Validates a parsed document.
pub fn load(doc: &Value, overrides: &Overrides) -> Result<TestPlan, ConfigErrors> {
    let report = Report::default();
    let plan = read_plan(doc, overrides, &report);
    match plan {
        Some(plan) if report.is_clean() => Ok(plan),
        _ => Err(report.into_result(()).err().unwrap_or_else(|| single("", "invalid scenario file".into()))),
    }
}

fn read_plan(doc: &Value, overrides: &Overrides, report: &Report) -> Option<TestPlan> {
    let top = Obj::new(doc, "", report)?;
    let options = top.object("options");
    let data_obj = top.object("data");
    let flows_obj = top.object("flows");
    top.finish_with(TOP_FIELDS);

    let mut process_env: HashMap<String, String> = HashMap::new();
    if overrides.system_env {
        process_env.extend(std::env::vars());
    }
    process_env.extend(overrides.env.iter().cloned());

    let mut scope = crate::flow::Scope {
        http: k6_options::http_options(options.as_ref(), &overrides.flags, report),
        data: Arc::new(crate::data::DataSets::parse(data_obj, overrides.base_dir.as_deref())),
        setup: Default::default(),
        base: overrides.base_dir.clone(),
    };
    let mut flows: Flows = HashMap::new();
    // Flows written but invalid: their problems are reported already, so a
    // scenario using one is not also told the flow does not exist.
    let mut invalid_flows: Vec<String> = Vec::new();
    // The setup flow first: what it captures is a variable of the others.
    let setup = flows_obj.as_ref().and_then(|f| {
        let def = f.get(crate::flow::setup::NAME)?;
        let flow = read_flow(f, crate::flow::setup::NAME, def, &scope, &process_env)?;
        match &flow {
            FlowDef::Http(h) => {
                scope.setup = Arc::new(crate::flow::setup::SetupValues::new(h.captured()));
                Some(Arc::new(flow))
            }
            _ => {
                report.error(f.path_of(crate::flow::setup::NAME), "the setup flow must be of type http");
                None
            }
        }
    });
    if let Some(f) = &flows_obj {
        for (name, def) in f.entries().filter(|(n, _)| *n != crate::flow::setup::NAME) {
            match read_flow(f, name, def, &scope, &process_env) {
                Some(flow) => {
                    flows.insert(name.clone(), Arc::new(flow));
                }
                None => invalid_flows.push(name.clone()),
            }
        }
    }
    let mut setup_timeout = crate::flow::setup::DEFAULT_TIMEOUT;
    let summary_time_unit = k6_options::time_unit(options.as_ref(), &overrides.flags, report);

    let mut scenarios = Vec::new();
    let mut thresholds = Vec::new();
    let mut trend_stats = crate::summary::stats::default_trend_stats();
    let mut tags = Tags::new();
    // k6 takes the split from the options too; the command line wins.
    let mut segment = overrides.split.segment.clone().map(|s| ("--execution-segment".to_string(), s));
    let mut sequence = overrides.split.sequence.clone().map(|s| ("--execution-segment-sequence".to_string(), s));
    let mut local_ips = overrides.local_ips.clone().map(|s| ("--local-ips".to_string(), s));
    if let Some(options) = options {
        if let Some(text) = options.string("localIPs") {
            local_ips.get_or_insert((options.path_of("localIPs"), text));
        }
        if segment.is_none() {
            segment = options.string("executionSegment").map(|s| (options.path_of("executionSegment"), s));
        }
        if sequence.is_none() {
            sequence =
                options.string("executionSegmentSequence").map(|s| (options.path_of("executionSegmentSequence"), s));
        }
        if let Some(list) = options.array("summaryTrendStats") {
            match crate::summary::stats::parse_trend_stats(list) {
                Ok(stats) => trend_stats = stats,
                Err(e) => options.error("summaryTrendStats", e),
            }
        }
        tags = Tags::from_pairs(options.string_map("tags").unwrap_or_default());
        for (k, v) in tags.iter() {
            options.check_tag(&format!("tags.{k}"), k, v);
        }
        if let Some(t) = options.object("thresholds") {
            thresholds = crate::threshold::parse_all(t);
        }
        scenarios = read_scenarios(&options);
        if let Some(d) = options.duration("setupTimeout") {
            setup_timeout = d;
        }
        let known: Vec<&str> = OPTION_FIELDS.iter().chain(k6_options::FIELDS).copied().collect();
        options.finish_with(&known);
    }
    for (k, v) in &overrides.flags.tags {
        reader::check_tag(report, "--tag", k, v);
        tags.insert(k.as_str(), v.as_str());
    }
    if let Some(stats) = k6_options::trend_stats(&overrides.flags, report) {
        trend_stats = stats;
    }
    if let Some(default) = default_scenario(overrides) {
        scenarios = vec![default];
    }
    if scenarios.is_empty() && report.is_clean() {
        report.error(
            "options.scenarios",
            "no scenario to run: define options.scenarios, or pass --vus and --duration (or --iterations)",
        );
    }

    let token_managers = link_tokens(&flows, report);

    // Cross-checks: every scenario's flow exists and its environment is set.
    let mut env = HashMap::new();
    let mut used_managers: Vec<String> = Vec::new();
    for s in &scenarios {
        let path = format!("options.scenarios.{}", s.name);
        let mut scenario_env = process_env.clone();
        scenario_env.extend(s.base.env.iter().cloned());
        if let Some(flow) = flows.get(&s.base.exec) {
            if token_managers.contains(&s.base.exec) {
                used_managers.push(s.base.exec.clone());
            }
            if let Some(refs) = flow.token_refs() {
                used_managers.extend(refs.flows().into_iter().map(str::to_string));
            }
        }
        match flows.get(&s.base.exec) {
            Some(flow) => {
                for var in flow.env_refs() {
                    if !scenario_env.contains_key(var) {
                        report.error(
                            path.clone(),
                            format!("flow \"{}\" uses {{{{env.{var}}}}}, which is not set (pass -e {var}=VALUE or set it in the scenario's env)", s.base.exec),
                        );
                    }
                }
            }
            None if invalid_flows.contains(&s.base.exec) => {}
            None if flows_obj.is_some() || s.base.exec != "default" => {
                let mut names: Vec<&str> = flows.keys().map(String::as_str).collect();
                names.sort_unstable();
                report.error(
                    format!("{path}.exec"),
                    format!(
                        "flow \"{}\" is not defined in flows (defined: {})",
                        s.base.exec,
                        if names.is_empty() { "none".into() } else { names.join(", ") }
                    ),
                );
            }
            None => {
                report
                    .error("flows", "is required: define at least the flow \"default\" (e.g. {default: {type: noop}})");
            }
        }
        env.insert(s.name.clone(), scenario_env);
    }
    used_managers.sort_unstable();
    used_managers.dedup();
    for name in &used_managers {
        if let Some(FlowDef::Token(t)) = flows.get(name).map(|f| &**f) {
            for var in t.config().shared_env_refs() {
                if !process_env.contains_key(var) {
                    report.error(
                        format!("flows.{name}"),
                        format!("uses {{{{env.{var}}}}}, which is not set (pass -e {var}=VALUE; the Redis settings are read once per process, not per scenario)"),
                    );
                }
            }
            if let Err(e) = t.check_redis(&process_env) {
                report.error(format!("flows.{name}.redis"), e);
            }
        }
    }
    let local_ips = local_ips.and_then(|(path, text)| read_local_ips(&path, &text, report));
    let share = read_share(segment, sequence, report).unwrap_or_default();
    let vu_offset = overrides
        .split
        .vu_offset
        .unwrap_or_else(|| scenarios.iter().map(|s| share.before(s.executor.executor().max_vus())).sum());
    check_data(&scope.data, &scenarios, &flows, setup.as_deref(), &share, vu_offset, report);
    for s in &mut scenarios {
        s.executor = s.executor.segmented(&share);
    }
    check_capacity(&scenarios, report);
    // Custom metrics are defined by the flows, parsed above.
    let custom = crate::metrics::custom::all();
    let known_metrics: Vec<&str> = crate::metrics::builtin::ALL.iter().chain(custom.iter()).map(|d| d.name).collect();
    for set in &thresholds {
        if !known_metrics.contains(&set.metric.as_str()) {
            let hint = reader::closest(&set.metric, &known_metrics)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            report.error(
                format!("options.thresholds.{}", set.source),
                format!("no metric named \"{}\"{hint}", set.metric),
            );
        }
    }
    if overrides.flags.no_thresholds {
        thresholds.clear();
    }
    Some(TestPlan {
        scenarios,
        thresholds,
        summary_trend_stats: trend_stats,
        summary_time_unit,
        tags,
        flows,
        env,
        process_env,
        token_managers: used_managers,
        share,
        vu_offset,
        local_ips,
        setup,
        setup_values: scope.setup.clone(),
        setup_timeout,
    })
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

/// Gives sequential data sets this generator's rows, and checks that a
/// `unique` set has a row for every VU number of the fleet up to this
/// generator's last.
fn check_data(
    data: &crate::data::DataSets,
    scenarios: &[ScenarioPlan],
    flows: &Flows,
    setup: Option<&FlowDef>,
    share: &Share,
    vu_offset: u64,
    report: &Report,
) {
    if let Err(e) = data.assign(share) {
        report.error("data", e);
    }
    let mut used: Vec<usize> = scenarios
        .iter()
        .filter_map(|s| flows.get(&s.base.exec))
        .map(|f| &**f)
        .chain(setup)
        .filter_map(|f| match f {
            FlowDef::Http(h) => Some(h.data_sets().to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    used.sort_unstable();
    used.dedup();
    let local: u64 =
        scenarios.iter().map(|s| share.scale(s.executor.executor().max_vus())).fold(0, u64::saturating_add);
    if let Err(e) = data.check_unique(&used, vu_offset.saturating_add(local)) {
        report.error("data", e);
    }
}

/// Refuses a VU count (this generator's share of every scenario) that
/// cannot fit in this machine's memory.
fn check_capacity(scenarios: &[ScenarioPlan], report: &Report) {
    let Some(memory) = capacity::machine_memory() else { return };
    let total: u64 = scenarios.iter().map(|s| s.executor.executor().max_vus()).fold(0, u64::saturating_add);
    if let Err(e) = capacity::check_vus(total, memory) {
        let path = match scenarios {
            [one] => format!("options.scenarios.{}", one.name),
            _ => "options.scenarios".to_string(),
        };
        report.error(path, e);
    }
}

/// Parses the source address pool and checks that this machine can send
/// from each address: an address it does not have would fail every
/// connection, so it is refused before anything starts.
fn read_local_ips(path: &str, text: &str, report: &Report) -> Option<Arc<local_ips::IpPool>> {
    match local_ips::IpPool::parse(text) {
        Ok(pool) => match pool.unusable() {
            None => Some(Arc::new(pool)),
            Some((ip, e)) => {
                report.error(path, format!("{ip} cannot be a source address on this machine: {e}"));
                None
            }
        },
        Err(e) => {
            report.error(path, e);
            None
        }
    }
}

/// Reads the execution segment and its sequence, each with where it came
/// from (a flag or an option path) for the error message.
fn read_share(segment: Option<(String, String)>, sequence: Option<(String, String)>, report: &Report) -> Option<Share> {
    let seq = match &sequence {
        Some((path, text)) => match segment::parse_sequence(text) {
            Ok(seq) => Some(seq),
            Err(e) => {
                report.error(path.clone(), e);
                return None;
            }
        },
        None => None,
    };
    let (path, seg) = match &segment {
        Some((path, text)) => match Segment::parse(text) {
            Ok(seg) => (path.clone(), seg),
            Err(e) => {
                report.error(path.clone(), e);
                return None;
            }
        },
        None if seq.is_some() => {
            let (path, _) = sequence.as_ref().expect("a sequence");
            report.error(
                path.clone(),
                "needs an execution segment too (--execution-segment FROM:TO): which of the sequence's segments does this generator run?",
            );
            return None;
        }
        None => return Some(Share::full()),
    };
    match Share::new(seg, seq) {
        Ok(share) => Some(share),
        Err(e) => {
            report.error(path, e);
            None
        }
    }
}

/// Resolves every flow's `{{token}}` references to the token-manager flows;
/// returns the names of those.
fn link_tokens(flows: &Flows, report: &Report) -> Vec<String> {
    let managers: std::collections::BTreeMap<String, Arc<crate::flow::token::TokenStore>> = flows
        .iter()
        .filter_map(|(name, f)| match &**f {
            FlowDef::Token(t) => Some((name.clone(), t.store().clone())),
            _ => None,
        })
        .collect();
    let mut names: Vec<&String> = flows.keys().collect();
    names.sort_unstable();
    for name in names {
        let flow = &flows[name];
        if let Some(refs) = flow.token_refs() {
            let own = matches!(**flow, FlowDef::Token(_)).then_some(name.as_str());
            for e in refs.link(&managers, own) {
                report.error(format!("flows.{name}"), e);
            }
        }
    }
    managers.into_keys().collect()
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

#[cfg(test)]
mod tests;
