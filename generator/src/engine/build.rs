//! The scenario runs of a plan: each with its flow, environment, VU
//! numbering, source addresses, console and live control.

use super::ScenarioRun;
use crate::config::TestPlan;
use crate::console::Console;
use crate::control::Live;
use crate::metrics::Metrics;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// One run per scenario of `plan`, in order. VU numbers are shared across
/// scenarios and start after `plan.vu_offset`.
pub fn scenario_runs(
    plan: &TestPlan,
    metrics: &Metrics,
    shards: &Arc<super::shards::Shards>,
    stop_new: &CancellationToken,
    interrupt: &CancellationToken,
    console: &Console,
    live: &Arc<Live>,
) -> Vec<Arc<ScenarioRun>> {
    let vu_ids = Arc::new(AtomicU64::new(plan.vu_offset));
    plan.scenarios
        .iter()
        .map(|s| {
            let flow = plan
                .flows
                .get(&s.base.exec)
                .cloned()
                .unwrap_or_else(|| Arc::new(crate::flow::FlowDef::Noop(Default::default())));
            let env = plan.env.get(&s.name).cloned().unwrap_or_default();
            let run = ScenarioRun::new(
                s.name.clone(),
                s.base.clone(),
                flow,
                s.executor.executor().max_vus(),
                metrics.clone(),
                &plan.tags,
                env,
                vu_ids.clone(),
                shards.clone(),
                stop_new,
                interrupt,
            )
            .with_console(console.clone())
            .with_live(live.clone());
            let run = match &plan.local_ips {
                Some(pool) => run.with_local_ips(pool.clone(), plan.vu_offset),
                None => run,
            };
            Arc::new(run)
        })
        .collect()
}
