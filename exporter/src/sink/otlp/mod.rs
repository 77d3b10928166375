//! The OTLP sink: `ExportMetricsServiceRequest`s (see [`encode`]) over
//! OTLP/gRPC (tonic) or OTLP/HTTP with protobuf bodies (reqwest, gzip).

pub mod encode;

use super::{Item, Prepared, Sink, SinkError, WriteFuture, WriteOk};
use crate::out::{OtlpProtocol, OtlpTarget, OutSpec};
use encode::Encoder;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use parking_lot::Mutex;
use prost::Message;
use std::time::Duration;

/// Sends metrics to one OTLP receiver.
pub struct OtlpSink {
    name: String,
    encoder: Mutex<Encoder>,
    transport: Transport,
}

enum Transport {
    Grpc(MetricsServiceClient<tonic::transport::Channel>),
    Http { client: reqwest::Client, url: url::Url },
}

impl OtlpSink {
    /// A sink for `target`; call from within a tokio runtime.
    pub fn new(target: OtlpTarget) -> Result<Self, String> {
        let name = OutSpec::Otlp(target.clone()).to_string();
        let temporality = target.temporality;
        let transport = match target.protocol {
            OtlpProtocol::Grpc => {
                let endpoint =
                    tonic::transport::Endpoint::from_shared(target.endpoint.as_str().trim_end_matches('/').to_string())
                        .map_err(|e| format!("--out {name}: {e}"))?
                        .connect_timeout(Duration::from_secs(5))
                        .timeout(Duration::from_secs(30));
                Transport::Grpc(MetricsServiceClient::new(endpoint.connect_lazy()))
            }
            OtlpProtocol::HttpProtobuf => {
                let mut url = target.endpoint.clone();
                let base = url.path().trim_end_matches('/').to_string();
                url.set_path(&format!("{base}/v1/metrics"));
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| format!("--out {name}: cannot build an HTTP client: {e}"))?;
                Transport::Http { client, url }
            }
        };
        Ok(Self {
            name,
            encoder: Mutex::new(Encoder::new(temporality).with_instance(target.instance.clone())),
            transport,
        })
    }

    async fn send_prepared(&self, batch: &Prepared) -> Result<WriteOk, SinkError> {
        if batch.points == 0 {
            return Ok(WriteOk::default());
        }
        let bytes = batch.body.len() as u64;
        match &self.transport {
            Transport::Grpc(client) => {
                let request = ExportMetricsServiceRequest::decode(batch.body.clone())
                    .map_err(|e| SinkError::bad_data(format!("{}: {e}", self.name)))?;
                let mut client = client.clone();
                match client.export(request).await {
                    Ok(resp) => {
                        // A partial success stored the rest of the request.
                        let refused = resp
                            .into_inner()
                            .partial_success
                            .filter(|p| p.rejected_data_points > 0)
                            .map(|p| (p.rejected_data_points.max(0) as u64, p.error_message));
                        let points = batch.points.saturating_sub(refused.as_ref().map_or(0, |r| r.0));
                        Ok(WriteOk { points, bytes, refused })
                    }
                    Err(status) => {
                        use tonic::Code::*;
                        let message = format!("{}: gRPC {:?}: {}", self.name, status.code(), status.message());
                        // Only an argument the receiver refuses is about the
                        // data; unauthenticated, not found and the rest mean
                        // it cannot store anything yet.
                        match status.code() {
                            InvalidArgument | OutOfRange => Err(SinkError::bad_data(message)),
                            _ => Err(SinkError::down(message)),
                        }
                    }
                }
            }
            Transport::Http { client, url } => {
                let body = super::influx::gzip(&batch.body)?;
                let resp = client
                    .post(url.clone())
                    .header("Content-Type", "application/x-protobuf")
                    .header("Content-Encoding", "gzip")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| SinkError::down(format!("{}: {e}", self.name)))?;
                let status = resp.status();
                if status.is_success() {
                    return Ok(WriteOk { points: batch.points, bytes, refused: None });
                }
                Err(SinkError::from_status(status.as_u16(), format!("{}: HTTP {status}", self.name)))
            }
        }
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError> {
        let (request, points) = self.encoder.lock().encode(batch);
        Ok(Prepared { body: request.encode_to_vec().into(), points })
    }

    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a> {
        Box::pin(self.send_prepared(batch))
    }
}
