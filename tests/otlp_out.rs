//! `--out otlp=…`: what arrives at an OTLP receiver. The gRPC receiver here
//! is built on opentelemetry-proto's generated server, in process, so the
//! test can read every data point and bucket that volley sent.

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, AggregationTemporality};
use std::sync::{Arc, Mutex};
use volley_tests::*;

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

/// Starts the receiver on a free port; returns its address and what it got.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Receiver) {
    let r = Receiver::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = MetricsServiceServer::new(r.clone());
    rt.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_incoming(listener))
            .await
            .unwrap();
    });
    (addr, r)
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures_core_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_core_stream::from_listener(listener)
}

mod futures_core_stream {
    //! The smallest `Stream` of accepted connections tonic accepts.
    use std::pin::Pin;
    use std::task::{Context, Poll};
    pub use tonic::codegen::tokio_stream::Stream;

    pub struct Incoming(tokio::net::TcpListener);

    pub fn from_listener(l: tokio::net::TcpListener) -> Incoming {
        Incoming(l)
    }

    impl Stream for Incoming {
        type Item = std::io::Result<tokio::net::TcpStream>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_accept(cx).map(|r| Some(r.map(|(s, _)| s)))
        }
    }
}

fn scenario() -> serde_json::Value {
    serde_json::json!({
        "options": {"scenarios": {"s": {"executor": "constant-arrival-rate", "rate": 100, "timeUnit": "1s",
                                        "duration": "3s", "preAllocatedVUs": 5, "maxVUs": 5}}},
        "flows": {"default": {"type": "noop", "sleep": "2ms"}}
    })
}

#[test]
fn grpc_receiver_gets_cumulative_sums_and_exact_exponential_histograms() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (addr, got) = receiver(&rt);
    let (out, summary) =
        run_scenario(&scenario(), &["--out", &format!("otlp=grpc://{addr}"), "--test-id", "otlp-grpc"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let iterations = export_count(&summary, "iterations");
    assert_eq!(iterations, 301);
    let requests = got.0.lock().unwrap().clone();
    assert!(!requests.is_empty(), "nothing arrived: {}", describe(&out));

    let rm = &requests[0].resource_metrics[0];
    let attrs: Vec<(String, String)> = rm
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect();
    assert!(attrs.contains(&("volley.test_id".into(), "otlp-grpc".into())), "{attrs:?}");

    // The last cumulative point of each series is the run's total.
    let metrics: Vec<_> = requests
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .flat_map(|r| r.scope_metrics.iter())
        .flat_map(|s| s.metrics.iter())
        .collect();
    let last_sum = metrics
        .iter()
        .filter(|m| m.name == "iterations")
        .filter_map(|m| match &m.data {
            Some(Data::Sum(s)) => {
                assert!(s.is_monotonic && s.aggregation_temporality == AggregationTemporality::Cumulative as i32);
                s.data_points.last().cloned()
            }
            _ => None,
        })
        .next_back()
        .expect("an iterations sum");
    assert_eq!(last_sum.value, Some(number_data_point::Value::AsInt(iterations as i64)));

    let hist = metrics
        .iter()
        .filter(|m| m.name == "iteration_duration")
        .filter_map(|m| match &m.data {
            Some(Data::ExponentialHistogram(h)) => h.data_points.last().cloned(),
            _ => None,
        })
        .next_back()
        .expect("an iteration_duration histogram");
    assert_eq!(hist.scale, 6);
    assert_eq!(hist.count, iterations);
    let buckets = hist.positive.expect("positive buckets");
    assert_eq!(buckets.bucket_counts.iter().sum::<u64>() + hist.zero_count, iterations);
    // Every iteration slept 2 ms: the bulk sits at or above the index of 2 ms.
    let two_ms = (2f64.log2() * 64.0).floor() as i32 - 1;
    assert!(buckets.offset >= two_ms, "offset {} < {two_ms}", buckets.offset);
    let max = summary["metrics"]["iteration_duration"]["max"].as_f64().unwrap();
    assert_eq!(hist.max, Some(max));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("output otlp grpc http://{addr}/:")), "{stderr}");
}

/// rotel (PyPI), a real OTLP receiver, printing what it receives.
fn rotel_agent() -> std::path::PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-c", "import rotel, os; print(os.path.dirname(rotel.__file__))"])
        .output()
        .expect("python3");
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let agent = std::path::Path::new(&dir).join("rotel-agent");
    assert!(agent.exists(), "rotel is not installed: pip install rotel==0.0.1a15 (tests/run.sh does)");
    agent
}

#[test]
fn rotel_receives_both_transports() {
    let dir = Scratch::new("rotel");
    let (grpc, http) = (closed_port(), closed_port());
    let log = dir.path("rotel.log");
    let mut rotel = std::process::Command::new(rotel_agent())
        .args(["start", "--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .args(["--exporter", "blackhole", "--debug-log", "metrics", "--debug-log-verbosity", "detailed"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start rotel");
    // Ready when both ports accept connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while [grpc, http].iter().any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err()) {
        assert!(std::time::Instant::now() < deadline, "rotel did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let outs = [format!("otlp=grpc://127.0.0.1:{grpc}"), format!("otlp=http://127.0.0.1:{http}")];
    let (out, summary) = run_scenario(&scenario(), &["--out", &outs[0], "--out", &outs[1], "--test-id", "otlp-rotel"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = rotel.kill();
    let _ = rotel.wait();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(" points) in ").count(), 2, "{stderr}");
    assert!(!stderr.contains("NOT STORED"), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    let iterations = export_count(&summary, "iterations");
    // The final cumulative value of `iterations`, once per transport.
    let finals = text
        .split("-> Name: iterations\n")
        .skip(1)
        .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("Value: ")))
        .filter(|v| v.trim() == iterations.to_string())
        .count();
    assert_eq!(finals, 2, "rotel printed:\n{}", &text[..text.len().min(4000)]);
    assert!(text.contains("-> volley.test_id: Str(otlp-rotel)"));
    assert!(text.contains("-> DataType: ExponentialHistogram"));
    assert!(text.contains(&format!("Count: {iterations}\n")), "the last histogram counts every iteration");
}

#[test]
fn the_exporter_reports_its_own_counters_through_the_sdk() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (addr, got) = receiver(&rt);
    let token = "self-metrics-token-0123";
    let mut exp = volley_tests::exporter::Exporter::start(
        token,
        &["--self-metrics", &format!("otlp=grpc://{addr}"), "--self-metrics-interval", "1s"],
    );
    let dir = Scratch::new("selfmetrics");
    let file = dir.write("s.json", &scenario().to_string());
    let out = std::process::Command::new(binary("volley"))
        .args(["run", "--quiet", "--no-summary", "--exporter", &exp.url])
        .arg(&file)
        .env("VOLLEY_EXPORTER_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let acked: u64 = stderr
        .split(": ")
        .find_map(|p| p.strip_suffix(" windows acknowledged\n"))
        .expect("acknowledged")
        .parse()
        .unwrap();
    let log = exp.stop();
    let requests = got.0.lock().unwrap().clone();
    let points: Vec<(String, u64)> = requests
        .iter()
        .flat_map(|r| r.resource_metrics.iter())
        .flat_map(|r| r.scope_metrics.iter())
        .flat_map(|s| s.metrics.iter())
        .filter_map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.last().map(|p| {
                let v = match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v as u64,
                    Some(number_data_point::Value::AsDouble(v)) => v as u64,
                    None => 0,
                };
                (m.name.clone(), v)
            }),
            _ => None,
        })
        .collect();
    let last = |name: &str| points.iter().filter(|(n, _)| n == name).map(|(_, v)| *v).next_back();
    assert_eq!(last("volley_exporter.windows_received"), Some(acked), "{points:?}\n{log}");
    assert_eq!(last("volley_exporter.sessions"), Some(1), "{points:?}");
    let service = requests[0].resource_metrics[0].resource.as_ref().unwrap().attributes.iter().any(|kv| {
        kv.key == "service.name"
            && matches!(kv.value.as_ref().and_then(|v| v.value.as_ref()), Some(any_value::Value::StringValue(s)) if s == "volley-exporter")
    });
    assert!(service, "{:?}", requests[0].resource_metrics[0].resource);
}
