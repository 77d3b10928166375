//! Cross-checks a plan needs once every section is read: each scenario's
//! flow exists and its environment is set, token managers are linked and
//! their Redis settings complete, data sets cover the VUs, the VUs fit in
//! memory, thresholds name metrics that exist.

use super::reader::{self, Report};
use super::sections::FlowsRead;
use super::{capacity, ScenarioPlan};
use crate::executor::segment::Share;
use crate::flow::{FlowDef, Flows};
use crate::threshold::ThresholdSet;
use std::collections::HashMap;
use std::sync::Arc;

/// Every scenario's flow exists and the environment its templates read is
/// set; returns each scenario's environment and the token managers the run
/// uses.
pub(super) fn scenarios(
    scenarios: &[ScenarioPlan],
    flows: &FlowsRead,
    token_managers: &[String],
    process_env: &HashMap<String, String>,
    report: &Report,
) -> (HashMap<String, HashMap<String, String>>, Vec<String>) {
    let mut env = HashMap::new();
    let mut used_managers: Vec<String> = Vec::new();
    for s in scenarios {
        let mut scenario_env = process_env.clone();
        scenario_env.extend(s.base.env.iter().cloned());
        if let Some(flow) = flows.flows.get(&s.base.exec) {
            if token_managers.contains(&s.base.exec) {
                used_managers.push(s.base.exec.clone());
            }
            if let Some(refs) = flow.token_refs() {
                used_managers.extend(refs.flows().into_iter().map(str::to_string));
            }
        }
        flow_exists(s, flows, &scenario_env, report);
        env.insert(s.name.clone(), scenario_env);
    }
    used_managers.sort_unstable();
    used_managers.dedup();
    for name in &used_managers {
        if let Some(FlowDef::Token(t)) = flows.flows.get(name).map(|f| &**f) {
            for var in t.config().shared_env_refs() {
                if !process_env.contains_key(var) {
                    report.error(
                        format!("flows.{name}"),
                        format!("uses {{{{env.{var}}}}}, which is not set (pass -e {var}=VALUE; the Redis settings are read once per process, not per scenario)"),
                    );
                }
            }
            if let Err(e) = t.check_redis(process_env) {
                report.error(format!("flows.{name}.redis"), e);
            }
        }
    }
    (env, used_managers)
}

/// The scenario's flow is defined (or was written and is invalid) and the
/// environment its templates read is set.
fn flow_exists(s: &ScenarioPlan, flows: &FlowsRead, env: &HashMap<String, String>, report: &Report) {
    let path = format!("options.scenarios.{}", s.name);
    match flows.flows.get(&s.base.exec) {
        Some(flow) => {
            for var in flow.env_refs() {
                if !env.contains_key(var) {
                    report.error(
                        path.clone(),
                        format!("flow \"{}\" uses {{{{env.{var}}}}}, which is not set (pass -e {var}=VALUE or set it in the scenario's env)", s.base.exec),
                    );
                }
            }
        }
        None if flows.invalid.contains(&s.base.exec) => {}
        None if s.base.exec == crate::flow::setup::NAME => report.error(
            format!("{path}.exec"),
            "the flow \"setup\" runs once before the scenarios; a scenario cannot run it",
        ),
        None if flows.given || s.base.exec != "default" => {
            let mut names: Vec<&str> = flows.flows.keys().map(String::as_str).collect();
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
            report.error("flows", "is required: define at least the flow \"default\" (e.g. {default: {type: noop}})");
        }
    }
}

/// Thresholds name built-in metrics or the file's custom ones.
pub(super) fn threshold_metrics(thresholds: &[ThresholdSet], report: &Report) {
    // Custom metrics are defined by the flows, read before.
    let custom = crate::metrics::custom::all();
    let known: Vec<&str> = crate::metrics::builtin::ALL.iter().chain(custom.iter()).map(|d| d.name).collect();
    for set in thresholds {
        if !known.contains(&set.metric.as_str()) {
            let hint =
                reader::closest(&set.metric, &known).map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default();
            report.error(
                format!("options.thresholds.{}", set.source),
                format!("no metric named \"{}\"{hint}", set.metric),
            );
        }
    }
}

/// Gives sequential data sets this generator's rows, and checks that a
/// `unique` set has a row for every VU number of the fleet up to this
/// generator's last.
pub(super) fn data(
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
pub(super) fn capacity(scenarios: &[ScenarioPlan], report: &Report) {
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

/// Resolves every flow's `{{token}}` references to the token-manager flows;
/// returns the names of those.
pub(super) fn link_tokens(flows: &Flows, report: &Report) -> Vec<String> {
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
