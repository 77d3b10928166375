//! Live control of a running test: pause, resume, scale the
//! `externally-controlled` scenarios up to their `maxVUs`, stop, status.
//!
//! The same [`Live`] answers the generator's own HTTP API ([`api`], local
//! numbers) and the exporter's fleet commands (through the stream; fleet
//! numbers, of which this generator takes its execution segment's share,
//! so the generators of a split test scale to exactly the total asked).
//!
//! As in k6, only `externally-controlled` VUs can be paused: every other
//! executor follows a schedule on the test's clock, and pausing it would
//! make its rates and stages lie. A pause is refused while such a scenario
//! still runs. A paused or removed VU ends its current iteration first;
//! the scenario's `duration` keeps counting while paused.
//!
//! # Layout
//! - this file: the control state and the rules above.
//! - [`api`]: the token-protected HTTP API (`GET`/`PATCH /v1/status`).
//! - [`client`]: `volley status|pause|resume|scale|stop`.

pub mod api;
pub mod client;

use crate::config::TestPlan;
use crate::engine::ScenarioRun;
use crate::executor::segment::Share;
use crate::executor::ExecutorConfig;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;
use volley_window::control::{Command, ScenarioStatus, Status};

/// Whose numbers a command carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// This generator's own VUs.
    Local,
    /// The whole fleet's: scaled by this generator's execution segment.
    Fleet,
}

struct Controlled {
    name: String,
    max_vus: u64,
    vus: watch::Sender<u64>,
}

/// The control state of one run.
pub struct Live {
    paused: watch::Sender<bool>,
    scenarios: Vec<Controlled>,
    share: Share,
    runs: OnceLock<Vec<(Arc<ScenarioRun>, &'static str)>>,
    stop: watch::Sender<Option<String>>,
    ended: AtomicBool,
    tainted: AtomicBool,
    /// One command at a time, so a check and its change are atomic.
    apply: Mutex<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("status", &self.status()).finish()
    }
}

/// What an externally-controlled scenario's VUs follow.
pub struct Targets {
    /// VUs asked for.
    pub vus: watch::Receiver<u64>,
    /// Paused.
    pub paused: watch::Receiver<bool>,
}

impl Live {
    /// The control state of `plan` (its externally-controlled scenarios
    /// start at their configured `vus`).
    pub fn new(plan: &TestPlan) -> Arc<Self> {
        let scenarios = plan
            .scenarios
            .iter()
            .filter_map(|s| match &s.executor {
                ExecutorConfig::ExternallyControlled(c) => {
                    Some(Controlled { name: s.name.clone(), max_vus: c.max_vus, vus: watch::channel(c.vus).0 })
                }
                _ => None,
            })
            .collect();
        Arc::new(Self {
            paused: watch::channel(false).0,
            scenarios,
            share: plan.share.clone(),
            runs: OnceLock::new(),
            stop: watch::channel(None).0,
            ended: AtomicBool::new(false),
            tainted: AtomicBool::new(false),
            apply: Mutex::new(()),
        })
    }

    /// The targets an externally-controlled scenario follows.
    pub fn targets(&self, scenario: &str) -> Option<Targets> {
        let c = self.scenarios.iter().find(|c| c.name == scenario)?;
        Some(Targets { vus: c.vus.subscribe(), paused: self.paused.subscribe() })
    }

    /// The engine hands over the running scenarios (for the status).
    pub fn attach(&self, runs: Vec<(Arc<ScenarioRun>, &'static str)>) {
        let _ = self.runs.set(runs);
    }

    /// The run is over.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// Whether a threshold fails on the data so far.
    pub fn set_tainted(&self, tainted: bool) {
        self.tainted.store(tainted, Ordering::Relaxed);
    }

    /// Resolves with the reason once a stop was asked for.
    pub async fn stop_requested(&self) -> String {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Applies `command` and returns the status after it; the error says
    /// why nothing was changed.
    pub fn apply(&self, command: &Command, scope: Scope) -> Result<Status, String> {
        let _one = self.apply.lock();
        if self.ended.load(Ordering::Relaxed) && (command.paused.is_some() || command.vus.is_some()) {
            return Err("the test has ended".into());
        }
        // Check everything before changing anything.
        let scale = match command.vus {
            None => None,
            Some(asked) => {
                let c = self.pick(command.scenario.as_deref())?;
                let vus = match scope {
                    Scope::Local => asked,
                    Scope::Fleet => self.share.scale(asked),
                };
                if vus > c.max_vus {
                    return Err(match scope {
                        Scope::Local => {
                            format!("vus: {vus} is more than maxVUs {} of scenario {}", c.max_vus, c.name)
                        }
                        Scope::Fleet => format!(
                            "vus: {asked} for the fleet is {vus} for this generator's segment {}, more than its maxVUs {} of scenario {}",
                            self.share.segment(),
                            c.max_vus,
                            c.name
                        ),
                    });
                }
                Some((c, vus))
            }
        };
        if command.paused == Some(true) {
            if self.scenarios.is_empty() {
                return Err("paused: this test has no externally-controlled scenario to pause".into());
            }
            if let Some((run, kind)) = self.scheduled_running() {
                return Err(format!(
                    "paused: scenario {} ({kind}) runs on a schedule and cannot be paused; only externally-controlled scenarios can",
                    run.name
                ));
            }
        }
        if let Some((c, vus)) = scale {
            c.vus.send_replace(vus);
        }
        if let Some(p) = command.paused {
            self.paused.send_replace(p);
        }
        if command.stopped {
            let why = "stopped through the control API".to_string();
            self.stop.send_if_modified(|s| s.is_none() && s.replace(why).is_none());
        }
        Ok(self.status())
    }

    fn pick(&self, scenario: Option<&str>) -> Result<&Controlled, String> {
        match (scenario, &self.scenarios[..]) {
            (_, []) => Err("vus: this test has no externally-controlled scenario to scale".into()),
            (None, [one]) => Ok(one),
            (None, many) => Err(format!(
                "scenario: name the externally-controlled scenario to scale (one of {})",
                many.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
            (Some(name), all) => all.iter().find(|c| c.name == name).ok_or_else(|| {
                format!(
                    "scenario: {name:?} is not an externally-controlled scenario of this test (they are: {})",
                    all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            }),
        }
    }

    /// A scenario on a schedule that has not finished.
    fn scheduled_running(&self) -> Option<&(Arc<ScenarioRun>, &'static str)> {
        self.runs
            .get()?
            .iter()
            .find(|(run, kind)| *kind != "externally-controlled" && !run.stats.finished.load(Ordering::Relaxed))
    }

    /// Where the test stands.
    pub fn status(&self) -> Status {
        let runs = self.runs.get();
        let sum = |f: &dyn Fn(&ScenarioRun) -> u64| runs.map_or(0, |r| r.iter().map(|(run, _)| f(run)).sum());
        let ended = self.ended.load(Ordering::Relaxed);
        let stopped = self.stop.borrow().is_some();
        let paused = *self.paused.borrow();
        let running = runs.is_some() && !ended;
        Status {
            status: match (ended, stopped, paused, running) {
                (true, _, _, _) => "ended",
                (_, true, _, _) => "stopping",
                (_, _, true, _) => "paused",
                (_, _, _, true) => "running",
                _ => "starting",
            }
            .into(),
            paused,
            vus: sum(&|r| r.stats.active.get()),
            vus_max: sum(&|r| r.stats.allocated.load(Ordering::Relaxed)),
            stopped,
            running,
            tainted: self.tainted.load(Ordering::Relaxed),
            scenarios: self
                .scenarios
                .iter()
                .map(|c| ScenarioStatus { name: c.name.clone(), vus: *c.vus.borrow(), max_vus: c.max_vus })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Overrides};

    fn live(doc: &str, overrides: &Overrides) -> Arc<Live> {
        Live::new(&load(&serde_json::from_str(doc).unwrap(), overrides).unwrap())
    }

    const TWO: &str = r#"{"options": {"scenarios": {
        "ext": {"executor": "externally-controlled", "vus": 2, "maxVUs": 10, "duration": "1m"},
        "fixed": {"executor": "constant-vus", "vus": 1, "duration": "1m"}}},
        "flows": {"default": {"type": "noop"}}}"#;

    #[test]
    fn scales_within_max_vus_and_names_what_is_wrong() {
        let l = live(TWO, &Overrides::default());
        let scale = |vus, scenario: Option<&str>| Command {
            vus: Some(vus),
            scenario: scenario.map(String::from),
            ..Default::default()
        };
        let st = l.apply(&scale(7, None), Scope::Local).unwrap();
        assert_eq!(st.scenarios, vec![ScenarioStatus { name: "ext".into(), vus: 7, max_vus: 10 }]);
        assert_eq!(*l.targets("ext").unwrap().vus.borrow(), 7);
        assert_eq!(
            l.apply(&scale(11, None), Scope::Local).unwrap_err(),
            "vus: 11 is more than maxVUs 10 of scenario ext"
        );
        let err = l.apply(&scale(3, Some("fixed")), Scope::Local).unwrap_err();
        assert!(
            err.contains("\"fixed\" is not an externally-controlled scenario of this test (they are: ext)"),
            "{err}"
        );
        assert_eq!(l.status().scenarios[0].vus, 7, "a refused command changes nothing");
    }

    #[test]
    fn a_fleet_number_is_scaled_by_the_segment() {
        let mut o = Overrides::default();
        o.split.segment = Some("1/4:2/4".into());
        o.split.sequence = Some("0,1/4,2/4,3/4,1".into());
        let l = live(TWO, &o);
        // maxVUs 10 over four segments: this one has 3 (3+2+3+2 or similar);
        // the fleet's 8 VUs give it 2.
        let st = l.apply(&Command { vus: Some(8), ..Default::default() }, Scope::Fleet).unwrap();
        assert_eq!(st.scenarios[0].vus, 2);
        let err = l.apply(&Command { vus: Some(40), ..Default::default() }, Scope::Fleet).unwrap_err();
        assert!(
            err.contains("vus: 40 for the fleet is 10 for this generator's segment 1/4:1/2, more than its maxVUs 3"),
            "{err}"
        );
    }

    #[test]
    fn pausing_needs_only_externally_controlled_scenarios_running() {
        let l = live(TWO, &Overrides::default());
        let pause = Command { paused: Some(true), ..Default::default() };
        // Before the engine attached the scenarios nothing runs yet.
        assert!(l.apply(&pause, Scope::Local).unwrap().paused);
        let none = live(
            r#"{"options": {"vus": 1, "duration": "1s"}, "flows": {"default": {"type": "noop"}}}"#,
            &Overrides::default(),
        );
        assert!(none.apply(&pause, Scope::Local).unwrap_err().contains("no externally-controlled scenario"));
        let stop = l.apply(&Command { stopped: true, ..Default::default() }, Scope::Local).unwrap();
        assert_eq!((stop.stopped, stop.status.as_str()), (true, "stopping"));
    }
}
