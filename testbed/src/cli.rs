//! The `volley-testbed` command line.

use crate::http::HttpTestbed;
use crate::im::{FaultPlan, ImConfig, ImGateway};
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
    /// A fast HTTP/1.1 target: /, /delay/{ms}, /status/{code}, /bytes/{n}, /json, /echo, /stats,
    /// POST /auth/login, POST /auth/refresh, and /api/… behind a bearer token.
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
        /// HS256 secret of the tokens /auth/login and /auth/refresh issue.
        #[arg(long, default_value = "volley-testbed-secret", hide_default_value = true)]
        jwt_secret: String,
        /// Lifetime of issued tokens (k6 duration: 3s, 1m, 1h).
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        token_ttl: std::time::Duration,
    },
    /// The reference IM gateway: JWT auth, PING/PONG, MSG routing (across
    /// instances through Redis), fault injection; GET /stats for counters.
    Im(ImArgs),
}

/// `volley-testbed im`.
#[derive(clap::Args, Debug)]
pub struct ImArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// The HS256 secret tokens must be signed with.
    #[arg(long, env = "VOLLEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Redis URL for routing messages to users on other gateway instances.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// This instance's number (seeds its fault injection).
    #[arg(long, default_value_t = 0)]
    pub instance_id: u32,
    /// Percent of deliveries sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub dup_pct: f64,
    /// Percent of deliveries held back and sent after the next one.
    #[arg(long, default_value_t = 0.0)]
    pub reorder_pct: f64,
    /// Percent of deliveries discarded.
    #[arg(long, default_value_t = 0.0)]
    pub drop_pct: f64,
    /// Delay added to every delivery, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Share the port with other processes (SO_REUSEPORT).
    #[arg(long)]
    pub reuse_port: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Parses the command line and runs the chosen server until Ctrl-C / SIGTERM.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Http { listen, threads, tls, jwt_secret, token_ttl } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = threads {
                builder.worker_threads(n.max(1));
            }
            let runtime = builder.enable_all().build()?;
            runtime.block_on(async move {
                let auth = crate::http::AuthConfig { secret: jwt_secret, token_ttl };
                let server = HttpTestbed::start_with_auth(listen, tls, auth).await?;
                println!("volley-testbed http listening on {}", server.base_url());
                std::io::stdout().flush()?;
                shutdown_signal().await;
                let stats = server.stats();
                server.shutdown().await;
                eprintln!("volley-testbed http: served {} requests", stats.requests);
                Ok(())
            })
        }
        Command::Im(args) => run_im(args),
    }
}

fn run_im(args: ImArgs) -> anyhow::Result<()> {
    let (soft, _) = crate::limits::raise_open_files()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let config = ImConfig {
            listen: args.listen,
            jwt_secret: args.jwt_secret,
            redis: args.redis,
            instance_id: args.instance_id,
            faults: FaultPlan {
                dup_pct: args.dup_pct,
                reorder_pct: args.reorder_pct,
                drop_pct: args.drop_pct,
                delay: std::time::Duration::from_millis(args.delay_ms),
            },
            reuse_port: args.reuse_port,
        };
        let gateway = ImGateway::start(config).await?;
        println!("volley-testbed im listening on {}", gateway.url());
        std::io::stdout().flush()?;
        eprintln!(
            "volley-testbed im: instance {}, open-files limit {soft} (about {} connections)",
            args.instance_id,
            soft.saturating_sub(64)
        );
        shutdown_signal().await;
        let stats = gateway.stats();
        gateway.shutdown().await;
        println!("{}", serde_json::to_string(&stats)?);
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    volley_window::duration::parse_duration(s)
}
