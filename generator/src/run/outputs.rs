//! Where a run's windows go: the embedded exporter pipeline (`--out`, and
//! the HTML report), the stream to a `volley-exporter` (`--exporter`), the
//! tap that feeds both from the window clock, and at the end the account
//! of what each one stored.

use crate::cli::OutputArgs;
use crate::config::TestPlan;
use crate::console::{Console, Log};
use crate::engine::{Delivery, RunOptions, RunOutcome, WindowTap};
use crate::start::Meeting;
use crate::stream::{StreamConfig, StreamReport, Streamer};
use std::sync::Arc;
use volley_exporter::{OutSpec, Pipeline, PipelineConfig};
use volley_window::threshold::SetSpec;
use volley_window::wire::Hello;

/// The `--out` values.
pub fn parse_outs(raw: &[String]) -> Result<Vec<OutSpec>, String> {
    raw.iter().map(|r| OutSpec::parse(r, |k| std::env::var(k).ok()).map_err(|e| e.to_string())).collect()
}

/// The test id and generator id are written as tags wherever the windows
/// go: refused here if a database could not store them unchanged.
pub fn check_names(output: &OutputArgs) -> Result<(), String> {
    let named = [("--test-id", &output.test_id), ("--generator-id", &output.generator_id)];
    for (flag, value) in named {
        if let Some(v) = value {
            volley_exporter::sink::influx::line::storable(v).map_err(|e| format!("{flag} {v:?}: {e}"))?;
        }
    }
    Ok(())
}

/// The embedded pipeline, when there is an output or a report to feed (the
/// report observes the same merged windows as the outputs). One of a fleet
/// writing directly (`in_fleet`) names its points by its generator id.
pub fn pipeline(
    outs: &[OutSpec],
    output: &OutputArgs,
    opts: &RunOptions,
    in_fleet: bool,
    log: &Log,
) -> Result<Option<Arc<Pipeline>>, i32> {
    if outs.is_empty() && output.report.is_none() {
        return Ok(None);
    }
    let writer = in_fleet.then(|| opts.generator_id.clone());
    let merge = volley_exporter::merge::MergeConfig { wall_clock: false, ..Default::default() };
    let cfg = PipelineConfig { report_tests: Some(1), writer, merge, ..PipelineConfig::default() };
    let p = Pipeline::start(outs, cfg, log.clone()).map_err(super::invalid)?;
    p.register(&opts.test_id, &opts.generator_id);
    Ok(Some(p))
}

/// The stream to the exporter (`--exporter`).
pub fn streamer(
    output: &OutputArgs,
    plan: &TestPlan,
    opts: &RunOptions,
    meeting: &Option<(u32, Meeting)>,
    thresholds: &[SetSpec],
    log: &Log,
) -> Result<Option<Arc<Streamer>>, i32> {
    let Some(url) = &output.exporter else { return Ok(None) };
    let cfg = StreamConfig {
        url: url.clone(),
        token: output.exporter_token.clone().unwrap_or_default(),
        buffer: output.exporter_buffer,
        insecure_tls: output.insecure_skip_tls_verify,
        // The exporter holds the barrier only when the start is agreed there.
        wait_for: match meeting {
            Some((n, Meeting::Exporter)) => Some(*n),
            _ => None,
        },
        thresholds: thresholds.to_vec(),
    };
    let hello = Hello {
        generator: opts.generator_id.clone(),
        test_id: opts.test_id.clone(),
        segment: (!plan.share.is_full()).then(|| plan.share.segment().to_string()),
        tags: plan.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        window_ms: opts.window.as_millis() as u64,
    };
    Streamer::start(cfg, hello, log.clone()).map(|s| Some(Arc::new(s))).map_err(super::invalid)
}

/// Every closed window to the pipeline and the stream.
pub fn tap(pipeline: Option<Arc<Pipeline>>, streamer: Option<Arc<Streamer>>) -> Option<WindowTap> {
    if pipeline.is_none() && streamer.is_none() {
        return None;
    }
    Some(WindowTap(Arc::new(move |w| match (&pipeline, &streamer) {
        (Some(p), Some(s)) => {
            p.offer(w.clone());
            s.push(w);
        }
        (Some(p), None) => {
            p.offer(w);
        }
        (None, Some(s)) => s.push(w),
        (None, None) => {}
    })))
}

/// After the engine: the stream and the pipeline get their time to store
/// the rest, the fleet's verdict replaces this generator's thresholds, and
/// each destination's account goes into the outcome.
pub async fn drain(
    outcome: &mut RunOutcome,
    output: &OutputArgs,
    streamer: Option<&Streamer>,
    fleet: Option<&Streamer>,
    pipeline: Option<Arc<Pipeline>>,
    console: &Console,
) {
    if let Some(s) = streamer {
        let done = s.finish(output.out_timeout, output.verdict_timeout).await;
        outcome.delivery.push(stream_delivery(output.exporter.as_deref().unwrap_or_default(), &done));
    }
    if let Some(s) = fleet {
        match s.verdict() {
            Some(v) => {
                outcome.thresholds = v.outcomes;
                outcome.fleet_generators = Some(v.generators);
            }
            None => console.warn(&format!(
                "the exporter sent no verdict on the fleet's thresholds within --verdict-timeout {}; the thresholds and exit code below judge this generator's own share",
                crate::config::duration::format_duration(output.verdict_timeout)
            )),
        }
    }
    if let Some(p) = pipeline {
        let report = p.finish(output.out_timeout).await;
        outcome.delivery.extend(report.sinks.iter().map(|s| Delivery { line: s.account(), complete: s.complete() }));
    }
}

/// The stream's account line.
fn stream_delivery(url: &str, r: &StreamReport) -> Delivery {
    let complete = r.unacknowledged == 0 && r.dropped == 0 && r.series_dropped == 0;
    let line = if complete {
        format!("exporter {url}: {} windows acknowledged", r.acknowledged)
    } else {
        format!(
            "exporter {url}: {} windows acknowledged; NOT acknowledged: {} unsent or unconfirmed at exit, {} dropped (buffer full); {} series left out (larger than the exporter's frame limit)",
            r.acknowledged, r.unacknowledged, r.dropped, r.series_dropped
        )
    };
    Delivery { line, complete }
}
