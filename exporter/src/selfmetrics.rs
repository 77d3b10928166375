//! The exporter's own metrics, through the OpenTelemetry SDK and
//! opentelemetry-otlp (`--self-metrics otlp=grpc://HOST:4317`): ingest,
//! merge and per-output counters as observable instruments, exported
//! periodically. Unlike test data, these are plain process counters, which
//! is exactly what the SDK is for.

use crate::ingest::Ingest;
use crate::out::{OtlpProtocol, OutSpec};
use crate::pipeline::Pipeline;
use crate::sink::worker::WorkerStats;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running meter provider; export a last time with [`SelfMetrics::shutdown`].
pub struct SelfMetrics {
    provider: SdkMeterProvider,
}

impl SelfMetrics {
    /// Starts exporting every `interval` to the OTLP/gRPC receiver `spec`.
    pub fn start(
        spec: &OutSpec,
        interval: Duration,
        ingest: Arc<Ingest>,
        pipeline: Arc<Pipeline>,
    ) -> Result<Self, String> {
        let OutSpec::Otlp(target) = spec else {
            return Err(format!("--self-metrics {spec}: must be an otlp=grpc://HOST:PORT output"));
        };
        if target.protocol != OtlpProtocol::Grpc {
            return Err(format!("--self-metrics {spec}: only OTLP/gRPC (otlp=grpc://…) is supported"));
        }
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(target.endpoint.as_str().trim_end_matches('/'))
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("--self-metrics {spec}: {e}"))?;
        let reader = PeriodicReader::builder(exporter).with_interval(interval).build();
        let resource = Resource::builder().with_service_name("volley-exporter").build();
        let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
        let meter = provider.meter("volley-exporter");

        // Process-wide counters: (name, description, reader).
        type Read = Box<dyn Fn(&Ingest, &Pipeline) -> u64 + Send + Sync>;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let totals: Vec<(&str, &str, Read)> = vec![
            ("connections", "TCP connections accepted", Box::new(move |i, _| load(&i.stats.connections))),
            ("sessions", "generators that said hello", Box::new(move |i, _| load(&i.stats.sessions))),
            ("auth_failures", "handshakes refused for the token", Box::new(move |i, _| load(&i.stats.auth_failures))),
            ("rejected", "connections closed for bad input", Box::new(move |i, _| load(&i.stats.rejected))),
            ("windows_received", "window reports received", Box::new(move |i, _| load(&i.stats.windows))),
            ("windows_merged", "reports merged", Box::new(|_, p| p.merge_stats().merged)),
            ("windows_late", "reports merged after their window was written", Box::new(|_, p| p.merge_stats().late)),
            ("windows_duplicate", "resent reports ignored", Box::new(|_, p| p.merge_stats().duplicates)),
            ("windows_too_late", "reports after their window was evicted", Box::new(|_, p| p.merge_stats().too_late)),
            (
                "windows_off_clock",
                "reports stamped too far ahead of the exporter's clock",
                Box::new(|_, p| p.merge_stats().off_clock),
            ),
        ];
        for (name, description, read) in totals {
            let (i, p) = (ingest.clone(), pipeline.clone());
            let _ = meter
                .u64_observable_counter(format!("volley_exporter.{name}"))
                .with_description(description)
                .with_callback(move |o| o.observe(read(&i, &p), &[]))
                .build();
        }
        // Per-output counters, with attribute `output`.
        type PerOutput = fn(&WorkerStats) -> u64;
        let outputs: [(&str, &str, PerOutput); 3] = [
            ("points", "points written per output", |s| s.points_written),
            ("dropped", "items dropped for a full queue, per output", |s| s.dropped),
            ("spooled", "items spooled to disk, per output", |s| s.spooled),
        ];
        for (name, description, read) in outputs {
            let p = pipeline.clone();
            let _ = meter
                .u64_observable_counter(format!("volley_exporter.output.{name}"))
                .with_description(description)
                .with_callback(move |o| {
                    for s in p.sink_stats() {
                        o.observe(read(&s.stats), &[KeyValue::new("output", s.name.clone())]);
                    }
                })
                .build();
        }
        Ok(Self { provider })
    }

    /// Exports a last time and stops.
    pub fn shutdown(self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}
