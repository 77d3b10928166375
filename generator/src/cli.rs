//! The `volley` command line.

use crate::config::duration::parse_duration;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Volley: distributed load and soak testing with k6's executors.
#[derive(Parser, Debug)]
#[command(name = "volley", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario file (YAML or JSON with k6 `options` and `flows`).
    Run(RunArgs),
    /// Start local testbed targets and run a short mixed test against them.
    Demo(DemoArgs),
    /// Keep one authenticated WebSocket per VU and measure PING/PONG round trips.
    WsPing(ImPresetArgs),
    /// Single-chat end to end: even VUs send to the next VU, receivers count
    /// unique, duplicate, reordered and lost messages and the latency.
    ImE2e(ImPresetArgs),
    /// Show a running test's status (through its control API).
    Status(ControlArgs),
    /// Pause a running test's externally-controlled VUs.
    Pause(ControlArgs),
    /// Resume them.
    Resume(ControlArgs),
    /// Change the VUs of a running externally-controlled scenario (up to maxVUs).
    Scale(ScaleArgs),
    /// Stop a running test (it exits 105 after its summary).
    Stop(ControlArgs),
    /// Write a scenario file from a recording.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `volley import`.
#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// A browser's network recording (HAR): its requests, headers, bodies
    /// and think times, static assets left out.
    Har(HarArgs),
}

/// `volley import har`.
#[derive(Args, Debug)]
pub struct HarArgs {
    /// The recording (`.har`).
    pub file: PathBuf,
    /// Where to write the scenario (default: next to the recording, `.yaml`;
    /// `-` for standard output).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Keep images, style sheets, scripts, fonts and media.
    #[arg(long)]
    pub include_static: bool,
    /// The longest think time written.
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub max_sleep: Duration,
}

/// Where the control API of a running test is.
#[derive(Args, Debug)]
pub struct ControlArgs {
    /// The generator's `--address`, or with `--test-id` the exporter's
    /// `--health-listen`.
    #[arg(long, short = 'a', value_name = "HOST:PORT")]
    pub address: String,
    /// Command every generator of this test, through the exporter at `--address`.
    #[arg(long, value_name = "ID")]
    pub test_id: Option<String>,
    /// The control API's bearer token.
    #[arg(long, env = "VOLLEY_CONTROL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub control_token: Option<String>,
}

/// `volley scale`.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Where the test is.
    #[command(flatten)]
    pub control: ControlArgs,
    /// VUs to run (through the exporter: the whole fleet's, split by segment).
    #[arg(long, short = 'u')]
    pub vus: u64,
    /// The externally-controlled scenario, when the test has several.
    #[arg(long)]
    pub scenario: Option<String>,
}

/// How the token travels besides the AUTH frame.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthArg {
    /// `Authorization: Bearer <token>` on the handshake.
    Header,
    /// `?token=<token>` on the URL.
    Query,
    /// Only the AUTH frame.
    Frame,
}

/// `volley ws-ping` and `volley im-e2e`.
#[derive(Args, Debug)]
pub struct ImPresetArgs {
    /// Gateway URLs, separated by ';'.
    #[arg(long, default_value = "ws://127.0.0.1:9001/ws")]
    pub ws_urls: String,
    /// HS256 secret the gateway checks tokens with.
    #[arg(long, env = "VOLLEY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// VUs (one connection each).
    #[arg(long, short = 'u', default_value_t = 10)]
    pub vus: u64,
    /// Test length.
    #[arg(long, short = 'd', default_value = "30s", value_parser = duration_arg)]
    pub duration: Duration,
    /// Time between messages of a sender (im-e2e).
    #[arg(long, default_value_t = 1000)]
    pub msg_interval_ms: u64,
    /// Time between PINGs (ws-ping default 1000; im-e2e default 0 = none).
    #[arg(long)]
    pub ping_interval_ms: Option<u64>,
    /// Even VUs connect to the first URL, odd VUs to the second.
    #[arg(long)]
    pub role_pinned: bool,
    /// User id of VU n is user-base + n; give each load machine its own.
    #[arg(long, default_value_t = 0)]
    pub user_base: u64,
    /// How the token travels besides the AUTH frame.
    #[arg(long, value_enum, default_value = "header")]
    pub auth: AuthArg,
    /// Source addresses to spread connections over (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub local_addrs: Vec<std::net::IpAddr>,
    /// Source addresses in k6's --local-ips syntax: addresses, ranges
    /// (`10.0.0.1-10.0.0.9`) and CIDR blocks, comma-separated.
    #[arg(long, value_name = "IPS", conflicts_with = "local_addrs")]
    pub local_ips: Option<String>,
    /// Print the scenario file this preset runs and exit.
    #[arg(long)]
    pub print_scenario: bool,
    #[command(flatten)]
    /// How the test is split across generators.
    pub split: SplitArgs,
    #[command(flatten)]
    /// Output settings shared with `run`.
    pub output: OutputArgs,
}

/// `volley run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Replace the scenarios by one `default` scenario with this many VUs.
    #[arg(long, short = 'u')]
    pub vus: Option<u64>,
    /// Replace the scenarios by one constant-vus `default` scenario of this length.
    #[arg(long, short = 'd', value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Replace the scenarios by one shared-iterations `default` scenario.
    #[arg(long, short = 'i')]
    pub iterations: Option<u64>,
    /// Environment variable for templates (`{{env.NAME}}`), repeatable.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE", value_parser = env_arg)]
    pub env: Vec<(String, String)>,
    /// Do not expose the process environment to templates.
    #[arg(long)]
    pub no_system_env: bool,
    /// Source addresses of the VUs' connections, as k6's --local-ips:
    /// addresses, ranges and CIDR blocks, comma-separated
    /// (`10.0.0.1,10.0.0.5-10.0.0.9,192.168.0.0/30`); VUs take them round
    /// robin. Wins over `options.localIPs`.
    #[arg(long, value_name = "IPS")]
    pub local_ips: Option<String>,
    #[command(flatten)]
    /// How the test is split across generators.
    pub split: SplitArgs,
    #[command(flatten)]
    /// k6's option flags.
    pub options: OptionArgs,
    #[command(flatten)]
    /// Output settings shared with `demo`.
    pub output: OutputArgs,
}

/// k6's flags that set options of the scenario file (a flag wins over the
/// file).
#[derive(Args, Debug, Clone, Default)]
pub struct OptionArgs {
    /// Tag every metric with NAME=VALUE (repeatable), as `options.tags`.
    #[arg(long = "tag", value_name = "NAME=VALUE", value_parser = env_arg)]
    pub tags: Vec<(String, String)>,
    /// Do not judge thresholds (they are neither shown nor change the exit code).
    #[arg(long)]
    pub no_thresholds: bool,
    /// The summary's trend columns, comma-separated (`avg,p(95),p(99.9)`).
    #[arg(long, value_name = "STATS")]
    pub summary_trend_stats: Option<String>,
    /// Show every time of the summary in one unit: `s`, `ms` or `us`.
    #[arg(long, value_name = "UNIT")]
    pub summary_time_unit: Option<String>,
    /// The system tags request metrics keep, comma-separated (`method,status,name`).
    #[arg(long, value_name = "TAGS")]
    pub system_tags: Option<String>,
    /// Print every HTTP request and response head on stderr (`=full`: the
    /// bodies too); credentials are masked.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "", value_name = "full")]
    pub http_debug: Option<String>,
    /// A new connection for every request (`noConnectionReuse`).
    #[arg(long)]
    pub no_connection_reuse: bool,
    /// Keep no response body unless a request sets `responseType: text`.
    #[arg(long)]
    pub discard_response_bodies: bool,
    /// The User-Agent of requests that set none (`""`: none).
    #[arg(long, value_name = "TEXT")]
    pub user_agent: Option<String>,
    /// Redirects followed per request.
    #[arg(long, value_name = "N")]
    pub max_redirects: Option<u32>,
}

impl OptionArgs {
    /// The plan's view of the flags.
    pub fn to_flags(&self, insecure: bool) -> crate::config::OptionFlags {
        crate::config::OptionFlags {
            tags: self.tags.clone(),
            no_thresholds: self.no_thresholds,
            summary_trend_stats: self.summary_trend_stats.clone(),
            summary_time_unit: self.summary_time_unit.clone(),
            system_tags: self.system_tags.clone(),
            http_debug: self.http_debug.clone(),
            no_connection_reuse: self.no_connection_reuse,
            discard_response_bodies: self.discard_response_bodies,
            user_agent: self.user_agent.clone(),
            max_redirects: self.max_redirects,
            insecure_skip_tls_verify: insecure,
        }
    }
}

/// Splitting one test across generators, as k6's execution segments.
#[derive(Args, Debug, Clone, Default)]
pub struct SplitArgs {
    /// The part of the test this generator runs, `FROM:TO` in fractions,
    /// decimals or percentages (`1/4:2/4`, `0.25:0.5`, `25%:50%`).
    #[arg(long, value_name = "FROM:TO")]
    pub execution_segment: Option<String>,
    /// Every generator's segment boundaries (`0,1/4,2/4,3/4,1`): with it,
    /// VUs and iterations are striped exactly as k6 stripes them, so the
    /// segments together run the unsplit test.
    #[arg(long, value_name = "POINTS")]
    pub execution_segment_sequence: Option<String>,
    /// Number this generator's VUs from N+1 (default: after the VUs of the
    /// earlier segments, so VU numbers and user ids never collide).
    #[arg(long, value_name = "N")]
    pub vu_offset: Option<u64>,
}

impl SplitArgs {
    /// The plan's view of the flags.
    pub fn to_split(&self) -> crate::config::Split {
        crate::config::Split {
            segment: self.execution_segment.clone(),
            sequence: self.execution_segment_sequence.clone(),
            vu_offset: self.vu_offset,
        }
    }
}

/// Output and run settings shared by `run` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write k6's summary-export JSON to this path.
    #[arg(long, value_name = "PATH")]
    pub summary_export: Option<PathBuf>,
    /// Write the HTML report (summary, thresholds, charts over time) to this
    /// path when the test ends (`volley demo` writes `volley-demo-report.html`
    /// unless told otherwise).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Hide the live progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Do not print the end-of-test summary.
    #[arg(long)]
    pub no_summary: bool,
    /// Metric window length.
    #[arg(long, default_value = "1s", value_parser = volley_window::duration::parse_window)]
    pub window: Duration,
    /// Series per metric before further tag combinations fold into one.
    #[arg(long, default_value_t = crate::metrics::registry::DEFAULT_SERIES_CAP, value_parser = at_least_one)]
    pub series_cap: usize,
    /// Test run id stamped on every window (default: `volley-<unix time>`).
    #[arg(long)]
    pub test_id: Option<String>,
    /// This generator's name in a fleet (default: HOST-PID). Given, it also
    /// makes `--out` tag every point with `generator`, as a segment or
    /// `--wait-for` does, so that generators writing one test to the same
    /// database add up instead of overwriting each other.
    #[arg(long, env = "VOLLEY_GENERATOR_ID", value_name = "NAME")]
    pub generator_id: Option<String>,
    /// Moves this process's clock (`-30s`, `2m`): for tests of fleets whose
    /// clocks disagree.
    #[arg(long, hide = true, allow_hyphen_values = true, value_parser = skew_arg, value_name = "DURATION")]
    pub clock_skew: Option<i64>,
    /// VU threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Send metrics to an output, repeatable: `influxdb=http://HOST:8086/DB`
    /// (v1 API), `influxdb=http://HOST:8086?org=ORG&bucket=BUCKET` (v2 API,
    /// token in VOLLEY_INFLUXDB_TOKEN), `otlp=grpc://HOST:4317`,
    /// `otlp=http://HOST:4318`.
    #[arg(long = "out", short = 'o', value_name = "KIND=URL")]
    pub out: Vec<String>,
    /// Stream windows to a volley-exporter (`ws://HOST:PORT` or `wss://…`).
    #[arg(long, value_name = "URL")]
    pub exporter: Option<String>,
    /// The exporter's token.
    #[arg(long, env = "VOLLEY_EXPORTER_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub exporter_token: Option<String>,
    /// Start together with N generators of the same test id: each says it is
    /// ready to the exporter (or in Redis, with --wait-redis), and one common
    /// start is fixed once N are.
    #[arg(long, value_name = "N")]
    pub wait_for: Option<u32>,
    /// Agree the --wait-for start in this Redis (`redis://[:PASSWORD@]HOST:PORT[/DB]`)
    /// instead of at the exporter; for runs without one. With --exporter too,
    /// the start is agreed here and windows still stream to the exporter.
    #[arg(long, env = "VOLLEY_WAIT_REDIS", hide_env_values = true, value_name = "URL")]
    pub wait_redis: Option<String>,
    /// How long `--wait-for` waits for the others before giving up.
    #[arg(long, default_value = "10m", value_parser = duration_arg, value_name = "DURATION")]
    pub wait_timeout: Duration,
    /// With `--exporter`, thresholds are the fleet's, judged by the exporter
    /// on merged data: how long this generator waits after its own end for
    /// the verdict (the others may still be running). Without one in time,
    /// the exit code reflects this generator's own share, with a warning.
    #[arg(long, default_value = "2m", value_parser = duration_arg, value_name = "DURATION")]
    pub verdict_timeout: Duration,
    /// Unacknowledged windows kept for the exporter before the oldest is dropped.
    #[arg(long, default_value_t = 600, value_name = "WINDOWS", value_parser = at_least_one)]
    pub exporter_buffer: usize,
    /// Accept any TLS certificate (a `wss://` exporter with a self-signed one).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// How long to keep writing to the outputs (and waiting for the
    /// exporter's acknowledgements) after the test ends; what is not stored
    /// by then makes the exit code 112.
    #[arg(long = "out-flush-timeout", alias = "out-timeout", default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub out_timeout: Duration,
    /// Serve the control API (k6's `/v1/status`: status, pause, resume,
    /// scale, stop) on this address; needs `--control-token`.
    #[arg(long, short = 'a', value_name = "HOST:PORT")]
    pub address: Option<String>,
    /// The control API's bearer token.
    #[arg(long, env = "VOLLEY_CONTROL_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub control_token: Option<String>,
}

/// `volley demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Total length of the demo.
    #[arg(long, default_value = "20s", value_parser = duration_arg)]
    pub duration: Duration,
    #[command(flatten)]
    /// Output settings shared with `run`.
    pub output: OutputArgs,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// A signed duration in milliseconds (`-30s`).
fn skew_arg(s: &str) -> Result<i64, String> {
    let (sign, rest) = s.strip_prefix('-').map_or((1, s), |r| (-1, r));
    Ok(sign * i64::try_from(parse_duration(rest)?.as_millis()).map_err(|_| format!("{s:?} is too long"))?)
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

fn env_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} must be NAME=VALUE")),
    }
}
