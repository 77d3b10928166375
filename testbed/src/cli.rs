//! The `volley-testbed` command line.

use crate::http::HttpTestbed;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;

/// Reference servers for Volley's demos, tests and benchmarks.
#[derive(Parser, Debug)]
#[command(name = "volley-testbed", version, about)]
pub struct Cli {
    /// Which server to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Servers.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// A fast HTTP/1.1 target: /, /delay/{ms}, /status/{code}, /bytes/{n}, /json, /echo, /stats.
    Http {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// Serve HTTPS with a fresh self-signed certificate.
        #[arg(long)]
        tls: bool,
    },
}

/// Parses the command line and runs the chosen server until Ctrl-C / SIGTERM.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Http { listen, threads, tls } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = threads {
                builder.worker_threads(n.max(1));
            }
            let runtime = builder.enable_all().build()?;
            runtime.block_on(async move {
                let server =
                    if tls { HttpTestbed::start_tls(listen).await? } else { HttpTestbed::start(listen).await? };
                println!("volley-testbed http listening on {}", server.base_url());
                std::io::stdout().flush()?;
                shutdown_signal().await;
                let stats = server.stats();
                server.shutdown().await;
                eprintln!("volley-testbed http: served {} requests", stats.requests);
                Ok(())
            })
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
