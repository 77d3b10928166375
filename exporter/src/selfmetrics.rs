//! The exporter's own metrics, through the OpenTelemetry SDK and
//! opentelemetry-otlp (`--self-metrics otlp=grpc://HOST:4317`): ingest,
//! merge and per-output counters as observable instruments, exported
//! periodically. Unlike test data, these are plain process counters, which
//! is exactly what the SDK is for.

use crate::ingest::Ingest;
use crate::out::{OtlpProtocol, OutSpec};
use crate::pipeline::Pipeline;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
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

        let counter = |name: &'static str, description: &'static str, read: Box<dyn Fn() -> u64 + Send + Sync>| {
            meter
                .u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |o| o.observe(read(), &[]))
                .build()
        };
        let i = ingest.clone();
        let _ = counter(
            "volley_exporter.connections",
            "TCP connections accepted",
            Box::new(move || i.stats.snapshot()[0].1),
        );
        let i = ingest.clone();
        let _ = counter(
            "volley_exporter.sessions",
            "generators that said hello",
            Box::new(move || i.stats.snapshot()[1].1),
        );
        let i = ingest.clone();
        let _ = counter(
            "volley_exporter.auth_failures",
            "handshakes refused for the token",
            Box::new(move || i.stats.snapshot()[2].1),
        );
        let i = ingest.clone();
        let _ = counter(
            "volley_exporter.rejected",
            "connections closed for bad input",
            Box::new(move || i.stats.snapshot()[3].1),
        );
        let i = ingest.clone();
        let _ = counter(
            "volley_exporter.windows_received",
            "window reports received",
            Box::new(move || i.stats.snapshot()[4].1),
        );
        let p = pipeline.clone();
        let _ = counter("volley_exporter.windows_merged", "reports merged", Box::new(move || p.merge_stats().merged));
        let p = pipeline.clone();
        let _ = counter(
            "volley_exporter.windows_late",
            "reports merged after their window was written",
            Box::new(move || p.merge_stats().late),
        );
        let p = pipeline.clone();
        let _ = counter(
            "volley_exporter.windows_duplicate",
            "resent reports ignored",
            Box::new(move || p.merge_stats().duplicates),
        );
        let p = pipeline.clone();
        let _ = counter(
            "volley_exporter.windows_too_late",
            "reports after their window was evicted",
            Box::new(move || p.merge_stats().too_late),
        );
        let p = pipeline.clone();
        let _ = meter
            .u64_observable_counter("volley_exporter.output.points")
            .with_description("points written per output")
            .with_callback(move |o| {
                for s in p.sink_stats() {
                    o.observe(s.stats.points_written, &[KeyValue::new("output", s.name.clone())]);
                }
            })
            .build();
        let p = pipeline.clone();
        let _ = meter
            .u64_observable_counter("volley_exporter.output.dropped")
            .with_description("items dropped for a full queue, per output")
            .with_callback(move |o| {
                for s in p.sink_stats() {
                    o.observe(s.stats.dropped, &[KeyValue::new("output", s.name.clone())]);
                }
            })
            .build();
        let p = pipeline;
        let _ = meter
            .u64_observable_counter("volley_exporter.output.spooled")
            .with_description("items spooled to disk, per output")
            .with_callback(move |o| {
                for s in p.sink_stats() {
                    o.observe(s.stats.spooled, &[KeyValue::new("output", s.name.clone())]);
                }
            })
            .build();
        Ok(Self { provider })
    }

    /// Exports a last time and stops.
    pub fn shutdown(self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}
