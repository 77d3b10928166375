//! `type: token-manager`: one auth token fetched, refreshed before it
//! expires and shared by every VU of every generator.
//!
//! k6 VUs cannot share memory, so the usual k6 recipe is a one-VU scenario
//! that writes the token to Redis and a Redis GET before every request of
//! every VU. Here the manager is a flow like any other (run it in a one-VU
//! scenario as long as the test), and readers pay nothing per request:
//!
//! - writer: the VU running this flow logs in (or refreshes), stores the
//!   token with `SET key token PX lifetime`, publishes it, and refreshes at
//!   `refreshAt` × lifetime; failures retry with a capped backoff. With
//!   Redis, a lease (`SET NX PX`, renewed) makes it the only writer of the
//!   whole fleet; the other generators' managers stand by and take over
//!   within a lease period if it dies.
//! - readers: each process holds the token in a [`store::TokenStore`],
//!   fed by the process's own manager, by Redis pub/sub and by a periodic
//!   GET; VUs copy it when it changes and wait (bounded) when there is none.
//! - without Redis, the same flow shares the token within the process.
//!
//! # Layout
//! - [`config`]: the flow's fields.
//! - [`store`]: the process's token and each VU's copy.
//! - [`refs`]: `{{token}}` references resolved to their manager.
//! - [`fleet`]: the token in Redis: keys, lease and listener.
//! - [`manager`]: the writer's schedule.

pub mod config;
pub mod fleet;
pub mod manager;
pub mod refs;
pub mod store;

pub use config::FIELDS;
pub use refs::TokenRefs;
pub use store::{TokenCache, TokenStore};

use crate::config::reader::Obj;
use crate::console::Console;
use crate::flow::http::{HttpFlow, HttpVu};
use crate::metrics::builtin::{TOKEN_REFRESH_FAIL, TOKEN_REFRESH_OK};
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use config::ManagerConfig;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;
use volley_window::Tags;

/// A compiled token-manager flow.
pub struct TokenManagerFlow {
    cfg: ManagerConfig,
    login: HttpFlow,
    refresh: Option<HttpFlow>,
    store: Arc<TokenStore>,
    /// Set by [`TokenManagerFlow::start`]: Redis, when configured.
    shared: OnceLock<Shared>,
    /// One writer per process, whatever the number of VUs running the flow.
    writer: tokio::sync::Mutex<manager::Writer>,
}

/// What [`TokenManagerFlow::start`] sets up for the run.
struct Shared {
    redis: Option<fleet::RedisTarget>,
    console: Console,
    stop: CancellationToken,
}

impl std::fmt::Debug for TokenManagerFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManagerFlow").field("cfg", &self.cfg).finish()
    }
}

/// A VU's state when it runs the manager.
pub struct ManagerVu {
    login: HttpVu,
    refresh: Option<HttpVu>,
    ok: SeriesId,
    fail: SeriesId,
    metrics: Metrics,
}

impl TokenManagerFlow {
    /// Reads the flow `name`.
    pub fn parse(obj: &Obj, name: &str) -> Option<TokenManagerFlow> {
        let (cfg, requests) = ManagerConfig::parse(obj, name)?;
        let login = HttpFlow::single(requests.login, cfg.insecure_tls);
        let refresh = requests.refresh.map(|r| HttpFlow::single(r, cfg.insecure_tls));
        let store = Arc::new(TokenStore::new(name, cfg.wait));
        Some(TokenManagerFlow {
            login,
            refresh,
            store,
            shared: OnceLock::new(),
            writer: tokio::sync::Mutex::new(manager::Writer::new()),
            cfg,
        })
    }

    /// The process's token.
    pub fn store(&self) -> &Arc<TokenStore> {
        &self.store
    }

    /// The flow's settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    /// Token references of the refresh request (its `{{token}}` is this
    /// flow's own token).
    pub fn token_refs(&self) -> Option<&TokenRefs> {
        self.refresh.as_ref().map(HttpFlow::token_refs)
    }

    /// Environment variables the flow reads.
    pub fn env_refs(&self) -> Vec<&str> {
        let mut refs = self.login.env_refs();
        refs.extend(self.refresh.iter().flat_map(HttpFlow::env_refs));
        refs.extend(self.cfg.shared_env_refs());
        refs
    }

    /// Checks the Redis URL as rendered from `env` (nothing connects).
    pub fn check_redis(&self, env: &HashMap<String, String>) -> Result<(), String> {
        match self.redis_url(env) {
            Some(url) => fleet::RedisTarget::new(&url, "k", None).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The Redis URL rendered from `env`; `None` when absent or empty.
    fn redis_url(&self, env: &HashMap<String, String>) -> Option<String> {
        let ctx = crate::flow::IterCtx { vu: 0, iter: 0, scenario: "", env, stopping: None, tokens: &[] };
        self.cfg.redis.as_ref().map(|t| t.render(&ctx).trim().to_string()).filter(|u| !u.is_empty())
    }

    /// Connects the flow to Redis for the run, when it has a Redis URL
    /// (rendered from `env`), and starts the listener that keeps this
    /// process's token current. Without Redis the token is shared within
    /// the process only. Returns what to tell the user.
    pub fn start(&self, env: &HashMap<String, String>, console: &Console) -> Result<String, String> {
        let ctx = crate::flow::IterCtx { vu: 0, iter: 0, scenario: "", env, stopping: None, tokens: &[] };
        let stop = CancellationToken::new();
        let (redis, note) = match self.redis_url(env) {
            Some(url) => {
                let key = self.cfg.key.render(&ctx);
                let channel = self.cfg.channel.as_ref().map(|c| c.render(&ctx));
                let target = fleet::RedisTarget::new(&url, &key, channel.as_deref())
                    .map_err(|e| format!("flows.{}.redis: {e}", self.cfg.name))?;
                let note = format!(
                    "token-manager {}: token shared through Redis at {} (key {}, channel {})",
                    self.cfg.name, target.shown, target.key, target.channel
                );
                tokio::spawn(fleet::listen(
                    target.clone(),
                    self.store.clone(),
                    self.cfg.poll,
                    stop.clone(),
                    console.clone(),
                ));
                (Some(target), note)
            }
            None => (None, format!("token-manager {}: token shared within this process (no redis set)", self.cfg.name)),
        };
        let _ = self.shared.set(Shared { redis, console: console.clone(), stop });
        Ok(note)
    }

    /// Ends the run: stops the listener and gives up the lease, so a
    /// generator still running takes over at once.
    pub async fn shutdown(&self) {
        let Some(shared) = self.shared.get() else { return };
        shared.stop.cancel();
        if let Some(redis) = &shared.redis {
            if let Ok(mut w) = tokio::time::timeout(std::time::Duration::from_secs(1), self.writer.lock()).await {
                w.release(redis).await;
            }
        }
    }

    /// Per-VU state for a VU whose metrics carry `tags` and whose
    /// requests go out from `local` when given (`--local-ips`).
    pub fn new_vu(&self, tags: &Tags, metrics: &Metrics, local: Option<std::net::IpAddr>) -> ManagerVu {
        let mut t = tags.clone();
        t.insert("token", self.cfg.name.clone());
        let (ok, fail) = (metrics.series(TOKEN_REFRESH_OK, t.clone()), metrics.series(TOKEN_REFRESH_FAIL, t));
        // Recorded as zero at once: a standby's summary says "0 refreshes",
        // not nothing.
        metrics.add(ok, 0.0);
        metrics.add(fail, 0.0);
        ManagerVu {
            login: self.login.new_vu(tags, metrics, local),
            refresh: self.refresh.as_ref().map(|r| r.new_vu(tags, metrics, local)),
            ok,
            fail,
            metrics: metrics.clone(),
        }
    }
}
