//! `--address`: this generator's live control API, for as long as the run.

use crate::cli::OutputArgs;
use crate::console::{Console, Log};
use crate::control::Live;
use std::sync::Arc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Starts the API when `--address` is given; it stops when the returned
/// guard drops.
pub async fn start(
    output: &OutputArgs,
    live: &Arc<Live>,
    console: &Console,
    log: &Log,
) -> Result<Option<DropGuard>, i32> {
    let Some(addr) = &output.address else { return Ok(None) };
    let Some(token) = output.control_token.clone().filter(|t| !t.is_empty()) else {
        return Err(super::invalid("--address: the control API needs --control-token (or VOLLEY_CONTROL_TOKEN)"));
    };
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| super::invalid(format!("--address {addr}: {e}")))?;
    let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| addr.clone());
    console.info(&format!("control API on http://{bound}/v1/status"));
    let secret = volley_exporter::secret::Secret::new(token);
    let stop = CancellationToken::new();
    tokio::spawn(crate::control::api::serve(listener, live.clone(), secret, log.clone(), stop.clone()));
    Ok(Some(stop.drop_guard()))
}
