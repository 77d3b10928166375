//! The scenario file: k6 `options` plus Volley's `flows`, read into a
//! validated [`TestPlan`].
//!
//! # Layout
//! - [`duration`]: k6 duration strings.
//! - [`local_ips`]: k6's `--local-ips` / `localIPs` source address pool.
//! - [`k6_options`]: the request and summary options, and their flags.
//! - [`reader`]: the validating reader that reports every problem with its
//!   field path.
//! - `sections`: the `options` and `flows` sections read.
//! - `checks`: the cross-checks between scenarios, flows, tokens, data,
//!   environment and thresholds.
//! - this file: the plan, and reading the document's top level.

pub mod capacity;
mod checks;
pub mod duration;
pub mod k6_options;
pub mod local_ips;
pub mod reader;
mod sections;

use crate::executor::segment::{self, Segment, Share};
use crate::executor::{BaseConfig, ExecutorConfig};
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
    let process_env = process_env(overrides);
    let mut scope = crate::flow::Scope {
        http: k6_options::http_options(options.as_ref(), &overrides.flags, report),
        data: Arc::new(crate::data::DataSets::parse(data_obj, overrides.base_dir.as_deref())),
        setup: Default::default(),
        base: overrides.base_dir.clone(),
    };
    let flows = sections::read_flows(flows_obj.as_ref(), &mut scope, &process_env, report);
    let mut opts = sections::read_options(options, overrides, report);
    let token_managers = checks::link_tokens(&flows.flows, report);
    let (env, used_managers) = checks::scenarios(&opts.scenarios, &flows, &token_managers, &process_env, report);
    let local_ips = opts.local_ips.take().and_then(|(path, text)| read_local_ips(&path, &text, report));
    let share = read_share(opts.segment.take(), opts.sequence.take(), report).unwrap_or_default();
    let vu_offset = overrides
        .split
        .vu_offset
        .unwrap_or_else(|| opts.scenarios.iter().map(|s| share.before(s.executor.executor().max_vus())).sum());
    checks::data(&scope.data, &opts.scenarios, &flows.flows, flows.setup.as_deref(), &share, vu_offset, report);
    for s in &mut opts.scenarios {
        s.executor = s.executor.segmented(&share);
    }
    checks::capacity(&opts.scenarios, report);
    checks::threshold_metrics(&opts.thresholds, report);
    if overrides.flags.no_thresholds {
        opts.thresholds.clear();
    }
    Some(TestPlan {
        scenarios: opts.scenarios,
        thresholds: opts.thresholds,
        summary_trend_stats: opts.trend_stats,
        summary_time_unit: opts.time_unit,
        tags: opts.tags,
        flows: flows.flows,
        env,
        process_env,
        token_managers: used_managers,
        share,
        vu_offset,
        local_ips,
        setup: flows.setup,
        setup_values: scope.setup.clone(),
        setup_timeout: opts.setup_timeout,
    })
}

/// The process environment (unless `--no-system-env`), then `-e` flags.
fn process_env(overrides: &Overrides) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = HashMap::new();
    if overrides.system_env {
        env.extend(std::env::vars());
    }
    env.extend(overrides.env.iter().cloned());
    env
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

#[cfg(test)]
mod tests;
