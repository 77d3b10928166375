//! `volley ws-ping` and `volley im-e2e`: the source's PowerShell scripts as
//! commands, with the same knobs. Each builds a one-scenario plan
//! (constant-vus over the IM flow) and runs it through the same validation
//! and engine as a scenario file; `--print-scenario` shows that file.

use crate::cli::{AuthArg, ImPresetArgs};
use crate::config::{self, Overrides};
use crate::exit;
use serde_json::{json, Value};

/// The environment variable the preset passes the secret through, so the
/// secret never appears in the generated scenario.
pub const SECRET_ENV: &str = "VOLLEY_JWT_SECRET";

/// Which preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// `volley ws-ping`
    WsPing,
    /// `volley im-e2e`
    ImE2e,
}

impl Preset {
    fn name(self) -> &'static str {
        match self {
            Preset::WsPing => "ws-ping",
            Preset::ImE2e => "im-e2e",
        }
    }
}

/// The scenario document a preset runs.
pub fn scenario(preset: Preset, a: &ImPresetArgs) -> Value {
    let name = preset.name();
    let mut flow = json!({
        "type": name,
        "urls": a.ws_urls,
        "jwtSecret": format!("{{{{env.{SECRET_ENV}}}}}"),
        "userBase": a.user_base,
        "auth": match a.auth { AuthArg::Header => "header", AuthArg::Query => "query", AuthArg::Frame => "frame" },
        "rolePinned": a.role_pinned,
    });
    let ping_ms = a.ping_interval_ms.unwrap_or(if preset == Preset::WsPing { 1000 } else { 0 });
    flow["pingInterval"] = format!("{ping_ms}ms").into();
    if preset == Preset::ImE2e {
        flow["msgInterval"] = format!("{}ms", a.msg_interval_ms).into();
    }
    if !a.local_addrs.is_empty() {
        flow["localAddrs"] = a.local_addrs.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().into();
    }
    let mut doc = json!({
        "options": {
            "scenarios": {
                name: {
                    "executor": "constant-vus",
                    "vus": a.vus,
                    "duration": format!("{}ms", a.duration.as_millis()),
                    "gracefulStop": "10s",
                    "exec": name,
                }
            }
        },
        "flows": { name: flow }
    });
    // Shown by --print-scenario; the run takes it from the flag (so a
    // problem is reported as --local-ips).
    if let Some(ips) = &a.local_ips {
        doc["options"]["localIPs"] = ips.clone().into();
    }
    doc
}

/// Runs a preset; returns the exit code.
pub fn run(preset: Preset, args: ImPresetArgs) -> i32 {
    let doc = scenario(preset, &args);
    if args.print_scenario {
        println!("{}", serde_yaml::to_string(&doc).unwrap_or_default());
        return exit::OK;
    }
    let Some(secret) = args.jwt_secret.clone() else {
        return crate::console::invalid(format!("--jwt-secret: is required (or set {SECRET_ENV})"));
    };
    let overrides = Overrides {
        env: vec![(SECRET_ENV.into(), secret)],
        system_env: false,
        split: args.split.to_split(),
        local_ips: args.local_ips.clone(),
        ..Overrides::default()
    };
    let plan = match config::load(&doc, &overrides) {
        Ok(plan) => plan,
        Err(errors) => {
            crate::run::report_invalid(&errors);
            return exit::INVALID_CONFIG;
        }
    };
    crate::run::execute(plan, &args.output, |_| async {})
}
