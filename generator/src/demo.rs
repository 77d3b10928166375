//! `volley demo`: the README's first command. Starts the reference HTTP
//! target and two reference IM gateways (routing to each other in process)
//! on free loopback ports, runs [`demo.yaml`](demo.yaml) (an arrival-rate
//! and a ramping-vus HTTP scenario with checks and thresholds, and a
//! role-pinned im-e2e chat across the gateways, with the browsing VUs
//! sharing one auth token that a token manager refreshes every 1.6 s)
//! against them, and prints
//! the progress and the summary. Needs nothing else.

use crate::cli::DemoArgs;
use crate::config::{self, Overrides};
use crate::exit;
use std::path::Path;
use std::time::Duration;

/// The demo gateways' JWT secret (local, throwaway).
const IM_SECRET: &str = "volley-demo-secret";

/// The demo HTTP target's token secret (local, throwaway).
const TOKEN_SECRET: &str = "volley-demo-token-secret";

/// The demo's scenario file.
pub const SCENARIO: &str = include_str!("demo.yaml");

/// Runs the demo; returns the exit code.
pub fn run(args: DemoArgs) -> i32 {
    // The target must exist before the plan is validated (BASE_URL), and it
    // must live on the test's runtime: start it on a runtime of its own
    // thread, then hand its address to the plan.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let target = std::thread::Builder::new()
        .name("demo-target".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(async move {
                let auth =
                    volley_testbed::AuthConfig { secret: TOKEN_SECRET.into(), token_ttl: Duration::from_secs(2) };
                let testbed =
                    volley_testbed::HttpTestbed::start_with_auth(([127, 0, 0, 1], 0).into(), false, auth).await?;
                let im = |instance_id| volley_testbed::ImConfig {
                    listen: ([127, 0, 0, 1], 0).into(),
                    jwt_secret: IM_SECRET.into(),
                    redis: None,
                    instance_id,
                    faults: Default::default(),
                    reuse_port: false,
                };
                let gateway_a = volley_testbed::ImGateway::start(im(1)).await?;
                let gateway_b = volley_testbed::ImGateway::start_sibling(im(2), &gateway_a).await?;
                let _ = addr_tx.send((testbed.base_url(), gateway_a.url(), gateway_b.url()));
                let _ = stop_rx.await;
                testbed.shutdown().await;
                gateway_a.shutdown().await;
                gateway_b.shutdown().await;
                Ok::<_, anyhow::Error>(())
            })
        })
        .expect("spawn the demo target thread");
    let (base_url, im_a, im_b) = match addr_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(urls) => urls,
        Err(_) => {
            eprintln!("ERROR the demo target did not start: {:?}", target.join());
            return exit::INTERNAL;
        }
    };
    eprintln!(
        "volley demo: HTTP target at {base_url}, IM gateways at {im_a} and {im_b}; running a {} test (arrival-rate + ramping VUs with a shared auth token + im-e2e chat)",
        crate::config::duration::format_duration(args.duration)
    );

    let doc = match scaled_scenario(args.duration) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("ERROR {e}");
            return exit::INVALID_CONFIG;
        }
    };
    let overrides = Overrides {
        env: vec![
            ("BASE_URL".into(), base_url),
            ("IM_URL_A".into(), im_a),
            ("IM_URL_B".into(), im_b),
            ("IM_SECRET".into(), IM_SECRET.into()),
        ],
        ..Overrides::default()
    };
    let plan = match config::load(&doc, &overrides) {
        Ok(plan) => plan,
        Err(errors) => {
            crate::run::report_invalid(&errors);
            return exit::INVALID_CONFIG;
        }
    };
    // The demo always ends with a report: the summary on the terminal, the
    // charts in a file next to where it ran.
    let mut output = args.output.clone();
    output.report.get_or_insert_with(|| std::path::PathBuf::from(DEFAULT_REPORT));
    let code = crate::run::execute(plan, &output, |_| async {});
    let _ = stop_tx.send(());
    let _ = target.join();
    code
}

/// Where `volley demo` writes its HTML report unless `--report` says otherwise.
pub const DEFAULT_REPORT: &str = "volley-demo-report.html";

/// The demo scenario with its schedule stretched or shrunk to `total`
/// (the file is written for 18 s of load in a 20 s demo).
pub fn scaled_scenario(total: Duration) -> Result<serde_json::Value, String> {
    let mut doc = config::parse_document(SCENARIO, Path::new("demo.yaml"))?;
    let load = total.saturating_sub(Duration::from_secs(2)).max(Duration::from_secs(3));
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let scenarios = &mut doc["options"]["scenarios"];
    scenarios["api"]["duration"] = ms(load).into();
    scenarios["chat"]["duration"] = ms(load).into();
    scenarios["token"]["duration"] = ms(load).into();
    for stage in scenarios["browse"]["stages"].as_array_mut().into_iter().flatten() {
        stage["duration"] = ms(load / 3).into();
    }
    Ok(doc)
}
