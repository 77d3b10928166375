//! Synchronized start (`--wait-for N`): the N generators of a test start
//! their schedules at one common instant.
//!
//! Two places can agree that instant, and both end in the same
//! [`StartSignal`], so the waiting around them is one piece of code:
//! - the exporter the generators stream to (`--exporter`), on the stream's
//!   own connection ([`crate::stream::Streamer::wait_start`]);
//! - a Redis server (`--wait-redis`, [`redis`]), for runs without an
//!   exporter (outputs written by each generator, or none).
//!
//! With both `--exporter` and `--wait-redis` the start is agreed in Redis
//! and windows still stream to the exporter, which then holds no barrier
//! for the test: `--wait-redis` is the explicit choice of where to meet,
//! and a fleet may mix generators that stream with some that do not.
//!
//! # Layout
//! - this file: which barrier the flags ask for, and the wait they share
//!   (the timeout, Ctrl-C, the late joiner's warning, sleeping until the
//!   start).
//! - [`redis`]: the barrier in Redis.
//! - [`clock`]: placing an instant of the Redis server's clock on this
//!   machine's clock.
//! - [`signal`]: the agreed start, what every barrier ends in.

pub mod clock;
pub mod redis;
pub mod signal;

pub use signal::StartSignal;

use crate::cli::OutputArgs;
use crate::console::Console;
use crate::exit;
use crate::stream::Streamer;
use std::time::Duration;

/// Where the generators meet, as the flags say.
pub enum Meeting {
    /// Through the exporter (`--exporter` without `--wait-redis`).
    Exporter,
    /// In Redis (`--wait-redis`).
    Redis(Box<redis::RedisBarrier>),
}

/// `--wait-for N` and where: `None` without `--wait-for`. Errors are
/// configuration errors, naming the flags.
pub fn meeting(output: &OutputArgs, test_id: &str) -> Result<Option<(u32, Meeting)>, String> {
    let Some(n) = output.wait_for else {
        return match &output.wait_redis {
            Some(_) => Err("--wait-redis: needs --wait-for N, the number of generators that start together".into()),
            None => Ok(None),
        };
    };
    if n == 0 {
        return Err("--wait-for: must be at least 1 generator".into());
    }
    match (&output.wait_redis, &output.exporter) {
        (Some(url), _) => {
            Ok(Some((n, Meeting::Redis(Box::new(redis::RedisBarrier::new(url, test_id, n, output.wait_timeout)?)))))
        }
        (None, Some(_)) => Ok(Some((n, Meeting::Exporter))),
        (None, None) => {
            Err("--wait-for: needs --exporter or --wait-redis, through which the generators agree on the start".into())
        }
    }
}

/// A barrier ready to wait on.
pub enum Barrier<'a> {
    /// The exporter's, over the stream.
    Exporter(&'a Streamer),
    /// Redis's.
    Redis(&'a redis::RedisBarrier),
}

impl Barrier<'_> {
    /// Where the generators meet, for messages.
    fn place(&self) -> String {
        match self {
            Barrier::Exporter(_) => "at the exporter".into(),
            Barrier::Redis(r) => format!("in Redis at {}", r.shown()),
        }
    }

    async fn wait(&self, console: &Console) -> Result<StartSignal, String> {
        match self {
            Barrier::Exporter(s) => Ok(s.wait_start().await),
            Barrier::Redis(r) => r.wait(console).await,
        }
    }

    /// What is known of the others when giving up.
    fn progress(&self) -> String {
        match self {
            Barrier::Exporter(_) => String::new(),
            Barrier::Redis(r) => format!(" ({} ready)", r.ready_seen()),
        }
    }

    async fn leave(&self) {
        if let Barrier::Redis(r) = self {
            r.leave().await;
        }
    }
}

/// Waits until the barrier has agreed a common start with the other
/// generators of the test, then until that start. A generator that became
/// ready after the others had started starts at once and says how late it
/// is. Ctrl-C, `--wait-timeout` or a barrier that cannot be reached end the
/// wait without a test (exit code 105).
pub async fn synchronized_start(barrier: Barrier<'_>, n: u32, timeout: Duration, console: &Console) -> Result<(), i32> {
    console.info(&format!(
        "waiting for {n} generator{} to be ready {}",
        if n == 1 { "" } else { "s" },
        barrier.place()
    ));
    let signal = tokio::select! {
        signal = barrier.wait(console) => match signal {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("ERROR {e}; nothing ran");
                return Err(exit::EXTERNAL_ABORT);
            }
        },
        _ = tokio::time::sleep(timeout) => {
            eprintln!(
                "ERROR no common start within --wait-timeout {}: fewer than {n} generators of this test became ready {}{}",
                crate::config::duration::format_duration(timeout),
                barrier.place(),
                barrier.progress(),
            );
            barrier.leave().await;
            return Err(exit::EXTERNAL_ABORT);
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopped while waiting for the other generators; nothing ran");
            barrier.leave().await;
            return Err(exit::EXTERNAL_ABORT);
        }
    };
    if signal.late.is_zero() {
        let s = if signal.ready == 1 { "" } else { "s" };
        console.info(&format!("{} generator{s} ready; starting together", signal.ready));
    } else {
        console.warn(&format!(
            "the other {} generators started {:.1} s ago; this one starts now, that much late",
            signal.ready,
            signal.late.as_secs_f64()
        ));
    }
    tokio::select! {
        _ = tokio::time::sleep_until(signal.at) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("stopped while waiting for the common start; nothing ran");
            Err(exit::EXTERNAL_ABORT)
        }
    }
}
