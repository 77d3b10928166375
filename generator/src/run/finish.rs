//! The end of a run: the text summary, the summary export, the HTML
//! report, the account of every destination, and the exit code.

use crate::cli::OutputArgs;
use crate::config::TestPlan;
use crate::console::Console;
use crate::engine::{Abort, RunOutcome};
use crate::exit;
use volley_exporter::report::{html::Verdict, Reports};

/// Prints the summary, writes the export and the report; returns the exit
/// code (a report that cannot be written turns a success into 103).
pub fn finish_run(
    outcome: &RunOutcome,
    output: &OutputArgs,
    style: &crate::summary::text::Style,
    report: Option<&Reports>,
    test_id: &str,
    console: &Console,
) -> i32 {
    let code = finish(outcome, output, style);
    let (Some(r), Some(path)) = (report, &output.report) else { return code };
    match write_report(r, path, test_id, outcome) {
        Ok(()) => {
            console.info(&format!("report written to {}", path.display()));
            code
        }
        Err(e) => {
            eprintln!("ERROR cannot write the report {}: {e}", path.display());
            if code == exit::OK {
                exit::INTERNAL
            } else {
                code
            }
        }
    }
}

/// Renders this generator's report: the charts from its merged windows, the
/// thresholds as the summary judged them.
fn write_report(reports: &Reports, path: &std::path::Path, test_id: &str, outcome: &RunOutcome) -> std::io::Result<()> {
    let verdicts = outcome
        .thresholds
        .iter()
        .map(|o| Verdict { metric: o.key.clone(), expression: o.source.clone(), ok: o.ok, observed: o.observed })
        .collect();
    let mut notes = Vec::new();
    match &outcome.aborted {
        Some(Abort::Threshold(why)) => notes.push(format!("aborted: {why}")),
        Some(Abort::Signal) => notes.push("interrupted before the end of its schedule".to_string()),
        Some(Abort::Operator(why)) => notes.push(format!("stopped: {why}")),
        Some(Abort::Setup(e)) => notes.push(e.to_string()),
        None => {}
    }
    let source = format!("volley run, {}", crate::config::duration::format_duration(outcome.elapsed));
    let html = reports
        .render(test_id, source, Some(verdicts), notes)
        .ok_or_else(|| std::io::Error::other("the test produced no window"))?;
    std::fs::write(path, html)
}

/// For plans that hold WebSocket connections: raises the open-files limit
/// to its hard limit and says how many connections this process can hold,
/// warning when the scenarios want more (run several generators then).
pub fn report_connection_capacity(plan: &TestPlan, console: &Console) {
    let wanted: u64 = plan
        .scenarios
        .iter()
        .filter(|s| plan.flows.get(&s.base.exec).is_some_and(|f| matches!(**f, crate::flow::FlowDef::Ws(_))))
        .map(|s| s.executor.executor().max_vus())
        .sum();
    if wanted == 0 {
        return;
    }
    match volley_testbed::limits::raise_open_files() {
        Ok((soft, _)) => {
            // A few descriptors go to the runtime, outputs and the exporter.
            let capacity = soft.saturating_sub(64);
            let line = format!("open-files limit {soft}: this process can hold about {capacity} WebSocket connections; the scenarios need up to {wanted}");
            if wanted > capacity {
                console.warn(&format!(
                    "{line}. Split the VUs over several volley processes (with --local-ips to spread source addresses) streaming to one volley-exporter"
                ));
            } else {
                console.info(&line);
            }
        }
        Err(e) => console.warn(&format!("cannot read the open-files limit: {e}")),
    }
}

/// Prints and writes the results; returns the exit code.
pub fn finish(outcome: &RunOutcome, output: &OutputArgs, style: &crate::summary::text::Style) -> i32 {
    if !output.no_summary {
        print!("{}", crate::summary::text::render(outcome, style));
    }
    if let Some(path) = &output.summary_export {
        let doc = crate::summary::export::to_json(outcome, &style.stats);
        let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialize");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("ERROR cannot write the summary export {}: {e}", path.display());
            return exit::INTERNAL;
        }
    }
    // The summary ends with what became of the data; a destination that
    // did not store everything changes the exit code (unless a failed
    // threshold or an abort already did).
    for d in &outcome.delivery {
        eprintln!("{} {}", if d.complete { "INFO" } else { "ERROR" }, d.line);
    }
    let incomplete = outcome.delivery.iter().filter(|d| !d.complete).count();
    match (&outcome.aborted, outcome.thresholds_ok()) {
        (Some(Abort::Setup(crate::flow::setup::SetupError::Timeout(_))), _) => exit::SETUP_TIMEOUT,
        (Some(Abort::Setup(_)), _) => exit::SCRIPT_EXCEPTION,
        (_, false) | (Some(Abort::Threshold(_)), _) => exit::THRESHOLDS_FAILED,
        (Some(Abort::Signal | Abort::Operator(_)), true) => exit::EXTERNAL_ABORT,
        (None, true) if incomplete > 0 => {
            eprintln!(
                "ERROR {incomplete} destination(s) did not store everything measured within --out-flush-timeout (exit code {})",
                exit::OUTPUT_INCOMPLETE
            );
            exit::OUTPUT_INCOMPLETE
        }
        (None, true) => exit::OK,
    }
}
