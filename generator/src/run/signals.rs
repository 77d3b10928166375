//! What stops a run early: Ctrl-C or SIGTERM (a second one exits at once),
//! or the exporter aborting the fleet's test.

use crate::console::Console;
use crate::engine::Abort;
use crate::exit;
use crate::stream::Streamer;
use std::sync::Arc;

/// Resolves with why the run must stop: a signal, or the fleet's abort
/// (when the exporter judges the thresholds).
pub async fn stop(console: Console, fleet: Option<Arc<Streamer>>) -> Abort {
    tokio::select! {
        _ = shutdown_signal(console) => Abort::Signal,
        why = async { match &fleet { Some(s) => s.aborted().await, None => std::future::pending().await } } => {
            Abort::Threshold(format!("the exporter aborted the test: {why}"))
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM; a second one exits at once.
pub async fn shutdown_signal(console: Console) {
    wait_signal().await;
    tokio::spawn(async move {
        wait_signal().await;
        console.warn("second signal: exiting without a summary");
        std::process::exit(exit::EXTERNAL_ABORT);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
