//! Merged windows as OTLP metrics, built directly with opentelemetry-proto:
//! the OpenTelemetry SDK aggregates raw measurements itself and has no way
//! to take a histogram that is already aggregated, like a merged sketch.
//!
//! - trends → exponential histograms at scale 6, whose buckets are the
//!   DDSketch buckets one for one (see `volley_window::Sketch::buckets`);
//! - counters → monotonic sums; rates → monotonic sums `<name>.passes` and
//!   `<name>.fails` plus a gauge `<name>` (the window's ratio);
//! - gauges → gauges; generator health → gauges `generator_health.<field>`;
//! - resource attributes `service.name = volley`, `volley.test_id`, and
//!   `service.instance.id` when a generator of a fleet writes directly;
//!   every data point also carries the series' tags and `testid`.
//!
//! Temporality is cumulative by default (what Prometheus and Mimir expect):
//! the encoder keeps a running total per series, so its memory grows with
//! the number of series, never with time. Delta sends each window on its own.
//!
//! A rewritten window (a late report merged after the window was sent) is
//! applied as the difference from the version sent before, which the encoder
//! keeps for the last [`KEPT_WINDOWS`] windows: counts and buckets add up
//! exactly either way. In delta temporality the difference goes out as a
//! second point for the same interval.

use crate::merge::{HealthPoint, MergedWindow};
use crate::sink::Item;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets as OtelBuckets, metric::Data, number_data_point, AggregationTemporality,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::{BTreeMap, HashMap, VecDeque};
use volley_window::sketch::{MIN_VALUE, OTEL_SCALE};
use volley_window::{Aggregate, SeriesKey, Unit};

/// Windows whose last sent version is kept for rewrites.
pub const KEPT_WINDOWS: usize = 64;

pub use crate::out::OtlpTemporality as Temporality;

/// A histogram as bucket counts: it can be added to and subtracted from.
#[derive(Clone, Debug, Default)]
struct Hist {
    zero: i64,
    buckets: BTreeMap<i32, i64>,
    count: i64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Hist {
    fn from_aggregate(a: &Aggregate) -> Self {
        let Aggregate::Trend(sk) = a else { return Hist::default() };
        let b = sk.buckets();
        let mut h = Hist {
            zero: b.zero_count as i64,
            count: sk.count() as i64,
            sum: sk.sum(),
            min: sk.min(),
            max: sk.max(),
            ..Default::default()
        };
        for (i, c) in b.counts.iter().enumerate() {
            if *c > 0 {
                h.buckets.insert(b.offset + i as i32, *c as i64);
            }
        }
        h
    }

    /// `self += sign * other`; extremes only widen.
    fn add(&mut self, other: &Hist, sign: i64) {
        self.zero += sign * other.zero;
        self.count += sign * other.count;
        self.sum += sign as f64 * other.sum;
        for (k, c) in &other.buckets {
            *self.buckets.entry(*k).or_insert(0) += sign * c;
        }
        self.buckets.retain(|_, c| *c != 0);
        if sign > 0 {
            self.min = min_opt(self.min, other.min);
            self.max = max_opt(self.max, other.max);
        }
    }

    fn point(&self, attributes: Vec<KeyValue>, start: u64, time: u64) -> ExponentialHistogramDataPoint {
        let positive = match (self.buckets.keys().next(), self.buckets.keys().next_back()) {
            (Some(lo), Some(hi)) => {
                let mut counts = vec![0u64; (hi - lo + 1) as usize];
                for (k, c) in &self.buckets {
                    counts[(k - lo) as usize] = (*c).max(0) as u64;
                }
                Some(OtelBuckets { offset: *lo, bucket_counts: counts })
            }
            _ => None,
        };
        ExponentialHistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: time,
            count: self.count.max(0) as u64,
            sum: Some(self.sum),
            scale: OTEL_SCALE,
            zero_count: self.zero.max(0) as u64,
            positive,
            negative: None,
            flags: 0,
            exemplars: vec![],
            min: self.min,
            max: self.max,
            zero_threshold: MIN_VALUE,
        }
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Running state of one series (cumulative temporality).
#[derive(Clone, Debug)]
struct Running {
    start_ns: u64,
    counter: f64,
    passes: i64,
    fails: i64,
    hist: Hist,
}

/// Turns batches of merged windows into export requests.
pub struct Encoder {
    temporality: Temporality,
    running: HashMap<(String, SeriesKey), Running>,
    sent: HashMap<(String, u64), HashMap<SeriesKey, Aggregate>>,
    sent_order: VecDeque<(String, u64)>,
    instance: Option<String>,
}

/// Data points of one metric, collected across a batch.
#[derive(Default)]
struct MetricPoints {
    unit: &'static str,
    sums: Vec<NumberDataPoint>,
    gauges: Vec<NumberDataPoint>,
    hists: Vec<ExponentialHistogramDataPoint>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn number(attributes: Vec<KeyValue>, start: u64, time: u64, value: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        exemplars: vec![],
        flags: 0,
        value: Some(value),
    }
}

fn as_number(v: f64) -> number_data_point::Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        number_data_point::Value::AsInt(v as i64)
    } else {
        number_data_point::Value::AsDouble(v)
    }
}

const MS: u64 = 1_000_000;

impl Encoder {
    /// An encoder with no history.
    pub fn new(temporality: Temporality) -> Self {
        Self { temporality, running: HashMap::new(), sent: HashMap::new(), sent_order: VecDeque::new(), instance: None }
    }

    /// Adds resource attribute `service.instance.id = instance`.
    pub fn with_instance(mut self, instance: Option<String>) -> Self {
        self.instance = instance;
        self
    }

    /// Series with running state (memory check).
    pub fn series(&self) -> usize {
        self.running.len()
    }

    /// One request for a batch; `points` counts its data points.
    pub fn encode(&mut self, batch: &[Item]) -> (ExportMetricsServiceRequest, u64) {
        // test id → metric name → points
        let mut by_test: BTreeMap<String, BTreeMap<String, MetricPoints>> = BTreeMap::new();
        for item in batch {
            match item {
                Item::Window(w) => self.window(w, by_test.entry(w.test_id.clone()).or_default()),
                Item::Health(h) => health(h, by_test.entry(h.test_id.clone()).or_default()),
                // Cumulative sums and histograms already carry the run's
                // totals; OTLP has no separate summary.
                Item::Summary(_) | Item::Marker(_) => {}
            }
        }
        let temporality = match self.temporality {
            Temporality::Cumulative => AggregationTemporality::Cumulative,
            Temporality::Delta => AggregationTemporality::Delta,
        } as i32;
        let mut points = 0u64;
        let resource_metrics = by_test
            .into_iter()
            .map(|(test_id, metrics)| {
                let metrics = metrics
                    .into_iter()
                    .flat_map(|(name, m)| {
                        points += (m.sums.len() + m.gauges.len() + m.hists.len()) as u64;
                        let mut out = Vec::new();
                        let metric = |name: &str, data: Data| Metric {
                            name: name.to_string(),
                            description: String::new(),
                            unit: m.unit.to_string(),
                            metadata: vec![],
                            data: Some(data),
                        };
                        if !m.hists.is_empty() {
                            out.push(metric(
                                &name,
                                Data::ExponentialHistogram(ExponentialHistogram {
                                    data_points: m.hists,
                                    aggregation_temporality: temporality,
                                }),
                            ));
                        }
                        if !m.sums.is_empty() {
                            out.push(metric(
                                &name,
                                Data::Sum(Sum {
                                    data_points: m.sums,
                                    aggregation_temporality: temporality,
                                    is_monotonic: true,
                                }),
                            ));
                        }
                        if !m.gauges.is_empty() {
                            out.push(metric(&name, Data::Gauge(Gauge { data_points: m.gauges })));
                        }
                        out
                    })
                    .collect();
                let mut attributes = vec![kv("service.name", "volley"), kv("volley.test_id", &test_id)];
                if let Some(instance) = &self.instance {
                    attributes.push(kv("service.instance.id", instance));
                }
                ResourceMetrics {
                    resource: Some(Resource { attributes, dropped_attributes_count: 0, entity_refs: vec![] }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "volley".into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            attributes: vec![],
                            dropped_attributes_count: 0,
                        }),
                        metrics,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect();
        (ExportMetricsServiceRequest { resource_metrics }, points)
    }

    fn window(&mut self, w: &MergedWindow, out: &mut BTreeMap<String, MetricPoints>) {
        let start = w.start_unix_ms * MS;
        let end = (w.start_unix_ms + w.len_ms.max(1)) * MS;
        let key = (w.test_id.clone(), w.start_unix_ms);
        let previous = self.sent.remove(&key).unwrap_or_default();
        let mut now_sent = HashMap::with_capacity(w.series.len());
        for s in &w.series {
            let old = previous.get(&s.key);
            let mut attrs: Vec<KeyValue> = s.key.tags.iter().map(|(k, v)| kv(k, v)).collect();
            attrs.push(kv("testid", &w.test_id));
            let unit = unit_of(&s.key.metric, s.unit);
            let running = self.running.entry((w.test_id.clone(), s.key.clone())).or_insert_with(|| Running {
                start_ns: start,
                counter: 0.0,
                passes: 0,
                fails: 0,
                hist: Hist::default(),
            });
            let (from, cumulative) = match self.temporality {
                Temporality::Cumulative => (running.start_ns, true),
                Temporality::Delta => (start, false),
            };
            match &s.value {
                Aggregate::Counter(c) => {
                    let d = c - old.map_or(0.0, |o| if let Aggregate::Counter(x) = o { *x } else { 0.0 });
                    running.counter += d;
                    let v = if cumulative { running.counter } else { d };
                    let m = out.entry(s.key.metric.clone()).or_default();
                    m.unit = unit;
                    m.sums.push(number(attrs, from, end, as_number(v)));
                }
                Aggregate::Rate { passes, fails } => {
                    let (op, of) = match old {
                        Some(Aggregate::Rate { passes, fails }) => (*passes as i64, *fails as i64),
                        _ => (0, 0),
                    };
                    let (dp, df) = (*passes as i64 - op, *fails as i64 - of);
                    running.passes += dp;
                    running.fails += df;
                    let (p, f) = if cumulative { (running.passes, running.fails) } else { (dp, df) };
                    let total = passes + fails;
                    for (suffix, v) in [("passes", p), ("fails", f)] {
                        let m = out.entry(format!("{}.{suffix}", s.key.metric)).or_default();
                        m.unit = "1";
                        m.sums.push(number(attrs.clone(), from, end, number_data_point::Value::AsInt(v)));
                    }
                    if total > 0 {
                        let m = out.entry(s.key.metric.clone()).or_default();
                        m.unit = "1";
                        m.gauges.push(number(
                            attrs,
                            start,
                            end,
                            number_data_point::Value::AsDouble(*passes as f64 / total as f64),
                        ));
                    }
                }
                Aggregate::Gauge { value, .. } => {
                    let m = out.entry(s.key.metric.clone()).or_default();
                    m.unit = unit;
                    m.gauges.push(number(attrs, start, end, as_number(*value)));
                }
                Aggregate::Trend(_) => {
                    let mut delta = Hist::from_aggregate(&s.value);
                    if let Some(o) = old {
                        delta.add(&Hist::from_aggregate(o), -1);
                        // Extremes of the difference are not known; the new
                        // version's are the best bound.
                        let now = Hist::from_aggregate(&s.value);
                        delta.min = now.min;
                        delta.max = now.max;
                    }
                    running.hist.add(&delta, 1);
                    let h = if cumulative { &running.hist } else { &delta };
                    if h.count > 0 || cumulative {
                        let m = out.entry(s.key.metric.clone()).or_default();
                        m.unit = unit;
                        m.hists.push(h.point(attrs, from, end));
                    }
                }
            }
            now_sent.insert(s.key.clone(), s.value.clone());
        }
        self.sent.insert(key.clone(), now_sent);
        self.sent_order.retain(|k| *k != key);
        self.sent_order.push_back(key);
        while self.sent_order.len() > KEPT_WINDOWS {
            if let Some(old) = self.sent_order.pop_front() {
                self.sent.remove(&old);
            }
        }
    }
}

/// The OTLP unit of a series (UCUM). Trends and data are `ms` and `By`; a
/// fraction (the rate gauges) and a plain count are `1`. A gauge that counts
/// things or states gets an annotation in braces instead: Prometheus
/// translation drops that, where it would turn `1` on a gauge into a
/// `_ratio` suffix (`vus_ratio` for a number of VUs).
fn unit_of(metric: &str, unit: Unit) -> &'static str {
    match unit {
        Unit::Time => "ms",
        Unit::Data => "By",
        Unit::None => match metric {
            "vus" | "vus_max" => "{vu}",
            "threshold" => "{status}",
            _ => "1",
        },
    }
}

fn health(h: &HealthPoint, out: &mut BTreeMap<String, MetricPoints>) {
    let start = h.start_unix_ms * MS;
    let end = (h.start_unix_ms + h.len_ms.max(1)) * MS;
    let attrs = vec![kv("generator", &h.generator), kv("testid", &h.test_id)];
    let r = &h.health;
    let mut fields: Vec<(&str, &'static str, f64)> = vec![
        ("rss_bytes", "By", r.rss_bytes as f64),
        ("cpu_seconds", "s", r.cpu_seconds),
        ("active_vus", "{vu}", r.active_vus as f64),
        ("dropped_iterations", "{iteration}", r.dropped_iterations as f64),
        ("windows_buffered", "{window}", r.windows_buffered as f64),
        ("windows_dropped", "{window}", r.windows_dropped as f64),
    ];
    if let Some(lag) = r.start_lag_p99_ms {
        fields.push(("start_lag_p99", "ms", lag));
    }
    for (name, unit, v) in fields {
        let m = out.entry(format!("generator_health.{name}")).or_default();
        m.unit = unit;
        m.gauges.push(number(attrs.clone(), start, end, as_number(v)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use volley_window::{HealthRecord, SeriesWindow, Sketch, Tags};

    fn window(start: u64, iterations: f64, samples: &[f64]) -> Item {
        let mut sk = Sketch::new();
        samples.iter().for_each(|v| sk.add(*v));
        let tags = Tags::from_pairs([("scenario", "s")]);
        Item::Window(Arc::new(MergedWindow {
            test_id: "t".into(),
            start_unix_ms: start,
            len_ms: 1000,
            series: vec![
                SeriesWindow {
                    key: SeriesKey::new("iterations", tags.clone()),
                    unit: Unit::None,
                    value: Aggregate::Counter(iterations),
                },
                SeriesWindow {
                    key: SeriesKey::new("iteration_duration", tags),
                    unit: Unit::Time,
                    value: Aggregate::Trend(sk),
                },
            ],
            reporters: 1,
        }))
    }

    fn metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> Vec<&'a Data> {
        req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .filter(|m| m.name == name)
            .filter_map(|m| m.data.as_ref())
            .collect()
    }

    fn sum_value(req: &ExportMetricsServiceRequest, name: &str) -> i64 {
        match metric(req, name)[0] {
            Data::Sum(s) => match s.data_points[0].value {
                Some(number_data_point::Value::AsInt(v)) => v,
                ref other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn hist(req: &ExportMetricsServiceRequest, name: &str) -> ExponentialHistogramDataPoint {
        match metric(req, name)[0] {
            Data::ExponentialHistogram(h) => h.data_points[0].clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_generator_writing_directly_names_itself_in_the_resource() {
        let attrs = |e: &mut Encoder| -> Vec<String> {
            let (req, _) = e.encode(&[window(1000, 1.0, &[1.0])]);
            req.resource_metrics[0].resource.as_ref().unwrap().attributes.iter().map(|a| a.key.clone()).collect()
        };
        assert_eq!(attrs(&mut Encoder::new(Temporality::Cumulative)), ["service.name", "volley.test_id"]);
        let mut named = Encoder::new(Temporality::Cumulative).with_instance(Some("gen-2".into()));
        assert_eq!(attrs(&mut named), ["service.name", "volley.test_id", "service.instance.id"]);
    }

    #[test]
    fn cumulative_sums_and_histograms_add_up_and_rewrites_are_not_counted_twice() {
        let mut e = Encoder::new(Temporality::Cumulative);
        let (r1, _) = e.encode(&[window(1000, 10.0, &[1.5, 2.5])]);
        assert_eq!(sum_value(&r1, "iterations"), 10);
        let (r2, _) = e.encode(&[window(2000, 5.0, &[3.0])]);
        assert_eq!(sum_value(&r2, "iterations"), 15);
        let h = hist(&r2, "iteration_duration");
        assert_eq!((h.count, h.sum, h.scale, h.start_time_unix_nano), (3, Some(7.0), 6, 1000 * MS));
        // Window 2000 rewritten with a late report: 5 -> 8 iterations.
        let (r3, _) = e.encode(&[window(2000, 8.0, &[3.0, 4.5, 5.5])]);
        assert_eq!(sum_value(&r3, "iterations"), 18);
        let h = hist(&r3, "iteration_duration");
        assert_eq!((h.count, h.sum), (5, Some(17.0)));
        let b = h.positive.unwrap();
        assert_eq!(b.bucket_counts.iter().sum::<u64>(), 5);
        // Each value sits in the OpenTelemetry bucket of its index at scale 6
        // (values off the bucket boundaries).
        for v in [1.5f64, 2.5, 3.0, 4.5, 5.5] {
            let idx = (v.log2() * 64.0).floor() as i32;
            assert!(b.bucket_counts[(idx - b.offset) as usize] >= 1, "{v}");
        }
        assert_eq!(e.series(), 2);
    }

    #[test]
    fn delta_sends_each_window_and_the_difference_of_a_rewrite() {
        let mut e = Encoder::new(Temporality::Delta);
        let (r1, _) = e.encode(&[window(1000, 10.0, &[1.0])]);
        let (r2, _) = e.encode(&[window(2000, 5.0, &[1.0])]);
        let (r3, _) = e.encode(&[window(2000, 8.0, &[1.0, 1.0])]);
        assert_eq!(
            (sum_value(&r1, "iterations"), sum_value(&r2, "iterations"), sum_value(&r3, "iterations")),
            (10, 5, 3)
        );
        let h = hist(&r3, "iteration_duration");
        assert_eq!((h.count, h.start_time_unix_nano, h.time_unix_nano), (1, 2000 * MS, 3000 * MS));
    }

    #[test]
    fn gauges_of_counted_things_carry_an_annotation_not_the_ratio_unit() {
        let tags = Tags::from_pairs([("scenario", "s")]);
        let gauge = |metric: &str, unit| SeriesWindow {
            key: SeriesKey::new(metric, tags.clone()),
            unit,
            value: Aggregate::Gauge { value: 3.0, min: 3.0, max: 3.0 },
        };
        let w = Item::Window(Arc::new(MergedWindow {
            test_id: "t".into(),
            start_unix_ms: 1000,
            len_ms: 1000,
            series: vec![
                gauge("vus", Unit::None),
                gauge("vus_max", Unit::None),
                gauge("threshold", Unit::None),
                gauge("queue_depth", Unit::None),
                gauge("payload", Unit::Data),
                SeriesWindow {
                    key: SeriesKey::new("http_req_failed", tags.clone()),
                    unit: Unit::None,
                    value: Aggregate::Rate { passes: 1, fails: 3 },
                },
                SeriesWindow {
                    key: SeriesKey::new("iterations", tags),
                    unit: Unit::None,
                    value: Aggregate::Counter(2.0),
                },
            ],
            reporters: 1,
        }));
        let h = Item::Health(Arc::new(HealthPoint {
            test_id: "t".into(),
            generator: "g".into(),
            start_unix_ms: 1000,
            len_ms: 1000,
            health: HealthRecord { start_lag_p99_ms: Some(1.0), ..Default::default() },
        }));
        let (req, _) = Encoder::new(Temporality::Cumulative).encode(&[w, h]);
        let units: BTreeMap<&str, &str> = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.unit.as_str()))
            .collect();
        let expected = [
            ("vus", "{vu}"),
            ("vus_max", "{vu}"),
            ("threshold", "{status}"),
            ("queue_depth", "1"),
            ("payload", "By"),
            ("http_req_failed", "1"),
            ("http_req_failed.passes", "1"),
            ("iterations", "1"),
            ("generator_health.rss_bytes", "By"),
            ("generator_health.cpu_seconds", "s"),
            ("generator_health.active_vus", "{vu}"),
            ("generator_health.dropped_iterations", "{iteration}"),
            ("generator_health.windows_buffered", "{window}"),
            ("generator_health.windows_dropped", "{window}"),
            ("generator_health.start_lag_p99", "ms"),
        ];
        for (name, unit) in expected {
            assert_eq!(units.get(name).copied(), Some(unit), "{name} in {units:?}");
        }
    }
}
