//! A VU's state for an http flow: its connections and cookie jar, the
//! iteration's variables, loop counters and data rows, and the series it
//! records into.

use super::client::{ConnectTimings, Connection};
use super::config::RequestStep;
use super::cookies;
use super::steps::{self, Over};
use super::target::{Outcome, Target};
use super::vars::Value;
use crate::flow::token::store::TokenCache;
use crate::flow::{FlowError, IterCtx};
use crate::metrics::builtin::*;
use crate::metrics::registry::SeriesId;
use crate::metrics::Metrics;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use volley_window::Tags;

/// A redirect hop resolved: from which URL, its `Location`, where to.
pub(super) type Hop = (Box<str>, Box<str>, Arc<Target>);

/// Series a VU caches per request (statuses times redirect hops).
const MAX_CACHED_SERIES: usize = 16;

/// The series of one (step, status code).
#[derive(Clone, Copy)]
pub(super) struct RequestSeries {
    pub(super) reqs: SeriesId,
    pub(super) duration: SeriesId,
    pub(super) waiting: SeriesId,
    pub(super) connecting: SeriesId,
    pub(super) tls: SeriesId,
    pub(super) failed: SeriesId,
}

/// A VU's copies of the shared tokens, and its connections.
pub struct HttpVu {
    pub(super) tokens: Vec<TokenCache>,
    pub(super) io: VuIo,
}

/// A request's series for one status and redirect hop URL.
type CachedSeries = (u16, Option<Box<str>>, RequestSeries);

/// A VU's connections and cached series.
pub(super) struct VuIo {
    pub(super) conns: Vec<Connection>,
    /// The source address of its connections (`--local-ips`), if set.
    pub(super) local: Option<IpAddr>,
    /// Per request: its parsed URL (the last one, for a templated URL).
    pub(super) targets: Vec<Option<Arc<Target>>>,
    /// Per request: its last redirect hop.
    pub(super) hops: Vec<Option<Hop>>,
    pub(super) metrics: Metrics,
    pub(super) tags: Tags,
    /// Per request: `(status, redirect hop URL, series)`; a handful of
    /// statuses per request.
    pub(super) series: Vec<Vec<CachedSeries>>,
    /// Per request: one `checks` series per check, then one per capture
    /// (`capture NAME`).
    pub(super) checks: Vec<Vec<SeriesId>>,
    /// This iteration's variables, by slot.
    pub(super) vars: Vec<Value>,
    /// Per group: its `group_duration` series, and when it was entered.
    pub(super) groups: Vec<(SeriesId, Instant)>,
    /// Per loop: the pass it is on.
    pub(super) loops: Vec<u64>,
    /// Per metric step: its series.
    pub(super) custom: Vec<SeriesId>,
    /// Per data set: this iteration's row.
    pub(super) rows: Vec<usize>,
    /// System tags `systemTags` leaves out.
    pub(super) dropped_tags: Vec<&'static str>,
    /// This iteration's cookies.
    pub(super) jar: cookies::Jar,
    pub(super) data_sent: SeriesId,
    pub(super) data_received: SeriesId,
}

/// `tags` without the names in `dropped` (what `systemTags` leaves out).
pub(super) fn without(tags: Tags, dropped: &[&str]) -> Tags {
    if dropped.is_empty() {
        return tags;
    }
    Tags::from_pairs(tags.iter().filter(|(k, _)| !dropped.contains(k)))
}

impl VuIo {
    /// Starts the next pass of a loop, setting its variables; false when
    /// the loop is done.
    pub(super) fn next_pass(&mut self, t: &steps::LoopTest) -> bool {
        let pass = self.loops[t.id];
        let more = match t.over {
            Over::Count(n) => pass < n,
            Over::List { list, item } => match usize::try_from(pass).ok().and_then(|i| self.vars[list].item(i)) {
                Some(value) => {
                    let value = value.to_string();
                    self.vars[item].set_text(&value);
                    true
                }
                None => false,
            },
        };
        if more {
            let mut index = std::mem::take(&mut self.vars[t.index]);
            if let Value::Text(s) = &mut index {
                s.clear();
                let _ = std::fmt::Write::write_fmt(s, format_args!("{pass}"));
            }
            self.vars[t.index] = index;
        }
        more
    }

    /// Records one sample of a custom metric; a value that is not a number
    /// ends the iteration (a rate takes a truth instead).
    pub(super) fn sample(&mut self, m: &steps::MetricStep, ctx: &IterCtx<'_>) -> Result<(), FlowError> {
        let mut text = String::new();
        m.value.render_with(ctx, &self.vars[..], &mut text);
        let id = self.custom[m.index];
        if m.def.kind == volley_window::MetricKind::Rate {
            self.metrics.rate(id, crate::flow::condition::truthy(&text));
            return Ok(());
        }
        let value: f64 = text
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| FlowError::Step(format!("metric {}: {text:?} is not a number", m.def.name)))?;
        match m.def.kind {
            volley_window::MetricKind::Counter => self.metrics.add(id, value),
            volley_window::MetricKind::Gauge => self.metrics.set_gauge(id, value),
            _ => self.metrics.trend(id, value),
        }
        Ok(())
    }

    /// Records one answered (or failed) request in its step's series.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &mut self,
        r: &RequestStep,
        url: &str,
        hop: Option<&str>,
        status: u16,
        outcome: Option<&Outcome>,
        timings: &ConnectTimings,
    ) {
        let series = self.request_series(status, r, url, hop);
        let failed = !(200..400).contains(&status);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        self.metrics.batch(|s| {
            s.add(series.reqs, 1.0);
            s.rate(series.failed, failed);
            s.trend(series.connecting, ms(timings.connecting));
            s.trend(series.tls, ms(timings.tls));
            if let Some(o) = outcome {
                s.trend(series.duration, ms(o.duration));
                s.trend(series.waiting, ms(o.waiting));
            }
        });
    }

    /// Stores the step's captures from `outcome` and counts each as the
    /// check `capture NAME`; the first one that found nothing (and has no
    /// default) is returned by name, which ends the iteration.
    pub(super) fn capture<'r>(
        &mut self,
        step: usize,
        r: &'r RequestStep,
        outcome: Option<&Outcome>,
        json: &mut Option<Option<serde_json::Value>>,
    ) -> Result<(), &'r str> {
        let empty = http::HeaderMap::new();
        let (body, headers) = outcome.map_or((&[][..], &empty), |o| (o.body.as_slice(), &o.headers));
        let ids = &self.checks[step][r.checks.len()..];
        let mut missing = None;
        for (c, id) in r.captures.iter().zip(ids) {
            let value = c.extract(body, headers, json);
            self.metrics.batch(|s| s.rate(*id, value.is_some()));
            match value {
                Some(v) => self.vars[c.slot] = v,
                None => {
                    missing = Some(c.name.as_str());
                    break;
                }
            }
        }
        missing.map_or(Ok(()), Err)
    }

    /// The series of request `r` answered with `status`; `hop` is the URL
    /// of a redirect hop. Cached per request, status and hop URL; the cache
    /// is bounded ([`MAX_CACHED_SERIES`]), past it the registry resolves.
    pub(super) fn request_series(
        &mut self,
        status: u16,
        r: &RequestStep,
        url: &str,
        hop: Option<&str>,
    ) -> RequestSeries {
        let cache = &self.series[r.index];
        if let Some((_, _, s)) = cache.iter().find(|(code, h, _)| *code == status && h.as_deref() == hop) {
            return *s;
        }
        let mut tags = self.tags.clone();
        for (k, v) in &r.tags {
            tags.insert(k.as_str(), v.as_str());
        }
        if let Some(g) = &r.group {
            tags.insert("group", g.as_str());
        }
        tags.insert("method", r.method.as_str());
        tags.insert("status", status.to_string());
        // A URL that varies per VU or iteration is tagged by its template,
        // so it cannot create a series per request.
        let (name, url) = match (&r.name, hop, r.url.is_static()) {
            (Some(n), Some(h), _) => (n.clone(), h.to_string()),
            (None, Some(h), _) => (h.to_string(), h.to_string()),
            (Some(n), None, true) => (n.clone(), url.to_string()),
            (Some(n), None, false) => (n.clone(), r.url.source().to_string()),
            (None, None, true) => (url.to_string(), url.to_string()),
            (None, None, false) => (r.url.source().to_string(), r.url.source().to_string()),
        };
        tags.insert("name", name);
        tags.insert("url", url);
        tags.insert("expected_response", if (200..400).contains(&status) { "true" } else { "false" });
        let tags = without(tags, &self.dropped_tags);
        let m = &self.metrics;
        let s = RequestSeries {
            reqs: m.series(HTTP_REQS, tags.clone()),
            duration: m.series(HTTP_REQ_DURATION, tags.clone()),
            waiting: m.series(HTTP_REQ_WAITING, tags.clone()),
            connecting: m.series(HTTP_REQ_CONNECTING, tags.clone()),
            tls: m.series(HTTP_REQ_TLS_HANDSHAKING, tags.clone()),
            failed: m.series(HTTP_REQ_FAILED, tags),
        };
        if self.series[r.index].len() < MAX_CACHED_SERIES {
            self.series[r.index].push((status, hop.map(Box::from), s));
        }
        s
    }
}
