//! The command line's commands: which one, and its arguments turned into
//! what [`crate::run`] (or the command's own module) runs.

use crate::cli::{Cli, Command, RunArgs};
use crate::config::{self, Overrides};
use crate::control;
use crate::exit;
use crate::run::{execute, report_invalid};
use clap::Parser;
use std::ffi::OsString;

/// Runs the CLI with `args` and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::INVALID_CONFIG } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Demo(args) => crate::demo::run(args),
        Command::WsPing(args) => crate::preset::run(crate::preset::Preset::WsPing, args),
        Command::ImE2e(args) => crate::preset::run(crate::preset::Preset::ImE2e, args),
        Command::Status(args) => control::client::run(control::client::Verb::Status, args),
        Command::Pause(args) => control::client::run(control::client::Verb::Pause, args),
        Command::Resume(args) => control::client::run(control::client::Verb::Resume, args),
        Command::Stop(args) => control::client::run(control::client::Verb::Stop, args),
        Command::Scale(args) => control::client::scale(args),
        Command::Import(crate::cli::ImportCommand::Har(args)) => import_har(&args),
    }
}

fn run_command(args: RunArgs) -> i32 {
    let overrides = Overrides {
        vus: args.vus,
        duration: args.duration,
        iterations: args.iterations,
        env: args.env.clone(),
        system_env: !args.no_system_env,
        split: args.split.to_split(),
        local_ips: args.local_ips.clone(),
        base_dir: None,
        flags: args.options.to_flags(args.output.insecure_skip_tls_verify),
    };
    let plan = match config::load_file(&args.file, &overrides) {
        Ok(plan) => plan,
        Err(errors) => {
            report_invalid(&errors);
            return exit::INVALID_CONFIG;
        }
    };
    execute(plan, &args.output, |_| async {})
}

/// `volley import har`: writes the scenario and says what it holds.
fn import_har(args: &crate::cli::HarArgs) -> i32 {
    let opts = crate::har::ImportOptions { include_static: args.include_static, max_sleep: args.max_sleep };
    let imported = match crate::har::import_file(&args.file, &opts) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ERROR {e}");
            return exit::INVALID_CONFIG;
        }
    };
    let source = args.file.file_name().map_or_else(|| "recording".into(), |n| n.to_string_lossy().into_owned());
    let yaml = imported.to_yaml(&source);
    let target = args.output.clone().unwrap_or_else(|| args.file.with_extension("yaml"));
    if target.as_os_str() == "-" {
        print!("{yaml}");
        return exit::OK;
    }
    if let Err(e) = std::fs::write(&target, yaml) {
        eprintln!("ERROR cannot write {}: {e}", target.display());
        return exit::INTERNAL;
    }
    eprintln!(
        "INFO wrote {} with {} requests ({} static assets left out, {} redirect hops followed by the client); run it with: volley run {}",
        target.display(),
        imported.requests,
        imported.static_assets,
        imported.redirects,
        target.display()
    );
    exit::OK
}
