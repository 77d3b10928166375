//! Simulates a fleet of generators for the exporter benchmark: each
//! connection speaks the real protocol (hello, one window per interval with
//! a fixed set of series, goodbye) and measures how long after a window's
//! end its acknowledgement arrives. The exporter acknowledges a window only
//! once every output stored it, so with InfluxDB as the output this is the
//! delay until the window is queryable.
//!
//! With `--hostile N`, N more connections misbehave for as long as the
//! honest ones run: random bytes behind a valid header, honest windows with
//! bytes overwritten, truncated frames, text messages, frames the exporter
//! sends (not generators), frames before the hello; each reconnects whenever the
//! exporter closes it. They use test ids of their own, so the honest test's
//! totals stay checkable.

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use volley_window::wire::{self, Hello, ToExporter, ToGenerator};
use volley_window::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Sketch, Tags, Unit, WindowReport};

#[derive(Parser)]
struct Args {
    /// Exporter URL.
    #[arg(long)]
    exporter: String,
    /// Token.
    #[arg(long)]
    token: String,
    /// Simulated generators.
    #[arg(long, default_value_t = 100)]
    generators: usize,
    /// Series per window (half trends, half counters).
    #[arg(long, default_value_t = 50)]
    series: usize,
    /// Windows each generator sends.
    #[arg(long, default_value_t = 60)]
    windows: u64,
    /// Samples per trend series per window.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Test id.
    #[arg(long, default_value = "fleet-bench")]
    test_id: String,
    /// Misbehaving connections alongside the honest generators.
    #[arg(long, default_value_t = 0)]
    hostile: usize,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn window(g: usize, seq: u64, start: u64, args: &Args) -> WindowReport {
    let mut series = Vec::with_capacity(args.series);
    for s in 0..args.series {
        let tags = Tags::from_pairs([("scenario", "api".to_string()), ("name", format!("endpoint-{}", s / 2))]);
        let value = if s % 2 == 0 {
            let mut sk = Sketch::new();
            for k in 0..args.samples {
                // Latency-like values, different per generator and window.
                let x = ((k * 7919 + g * 104_729 + seq as usize * 31) % 10_000) as f64;
                sk.add(1.0 + x * x / 1.0e6);
            }
            Aggregate::Trend(sk)
        } else {
            Aggregate::Counter(args.samples as f64)
        };
        let metric = if s % 2 == 0 { "http_req_duration" } else { "http_reqs" };
        series.push(SeriesWindow { key: SeriesKey::new(metric, tags), unit: Unit::Time, value });
    }
    WindowReport {
        generator: format!("sim-{g}"),
        test_id: args.test_id.clone(),
        seq,
        start_unix_ms: start,
        len_ms: 1000,
        series,
        health: HealthRecord { rss_bytes: 10_000_000, active_vus: 10, ..Default::default() },
    }
}

async fn generator(g: usize, args: std::sync::Arc<Args>, first_start: u64) -> Vec<u64> {
    let mut req = args.exporter.as_str().into_client_request().expect("exporter URL");
    req.headers_mut().insert("authorization", format!("Bearer {}", args.token).parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect to the exporter");
    let (mut tx, mut rx) = ws.split();
    let hello = Hello {
        generator: format!("sim-{g}"),
        test_id: args.test_id.clone(),
        segment: None,
        tags: vec![],
        window_ms: 1000,
    };
    tx.send(Message::Binary(wire::encode(&ToExporter::Hello(hello)).into())).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut delays = Vec::new();
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Binary(b) = msg {
                if let Ok(ToGenerator::Ack { seqs }) = wire::decode::<ToGenerator>(&b, 1 << 20) {
                    let now = now_ms();
                    for s in seqs {
                        // Window s ended at first_start + (s + 1) s.
                        delays.push(now.saturating_sub(first_start + (s + 1) * 1000));
                    }
                }
            }
        }
        delays
    });
    for seq in 0..args.windows {
        let end = first_start + (seq + 1) * 1000;
        let wait = end.saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let w = window(g, seq, first_start + seq * 1000, &args);
        tx.send(Message::Binary(wire::encode(&ToExporter::Window(w)).into())).await.unwrap();
    }
    let goodbye = ToExporter::Goodbye { last_seq: Some(args.windows - 1) };
    tx.send(Message::Binary(wire::encode(&goodbye).into())).await.unwrap();
    // Wait for the last acknowledgements, then close.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let _ = tx.close().await;
    reader.await.unwrap_or_default()
}

/// xorshift64: enough randomness for garbage, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One bad message of a random kind.
fn garbage(rng: &mut Rng, h: usize, args: &Args) -> Message {
    let header = [&wire::MAGIC[..], &[wire::VERSION]].concat();
    match rng.below(5) {
        0 => {
            let mut f = header;
            (0..rng.below(4096)).for_each(|_| f.push(rng.next() as u8));
            Message::Binary(f.into())
        }
        1 => {
            let honest = window(h, 0, (now_ms() / 1000) * 1000, args);
            let mut f = wire::encode(&ToExporter::Window(WindowReport {
                generator: format!("hostile-{h}"),
                test_id: format!("hostile-{h}"),
                ..honest
            }));
            for _ in 0..1 + rng.below(8) {
                let i = 4 + rng.below(f.len() as u64 - 4) as usize;
                f[i] = rng.next() as u8;
            }
            Message::Binary(f.into())
        }
        2 => {
            let f = wire::encode(&ToExporter::Goodbye { last_seq: Some(rng.next()) });
            Message::Binary(f[..rng.below(f.len() as u64) as usize].to_vec().into())
        }
        3 => Message::Text("{\"hello\": true}".into()),
        _ => Message::Binary(wire::encode(&ToGenerator::Ack { seqs: vec![1, 2, 3] }).into()),
    }
}

/// A misbehaving connection, reconnecting until `stop`; returns the bad
/// messages it sent.
async fn hostile(h: usize, args: std::sync::Arc<Args>, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (h as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut sent = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut req = args.exporter.as_str().into_client_request().expect("exporter URL");
        req.headers_mut().insert("authorization", format!("Bearer {}", args.token).parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if rng.below(4) > 0 {
            let hello = Hello {
                generator: format!("hostile-{h}"),
                test_id: format!("hostile-{h}"),
                segment: None,
                tags: vec![],
                window_ms: 1000,
            };
            let _ = ws.send(Message::Binary(wire::encode(&ToExporter::Hello(hello)).into())).await;
        }
        // Until the exporter closes the connection.
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if ws.send(garbage(&mut rng, h, &args)).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    sent
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args = std::sync::Arc::new(Args::parse());
    let first_start = (now_ms() / 1000 + 2) * 1000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bad: Vec<_> = (0..args.hostile).map(|h| tokio::spawn(hostile(h, args.clone(), stop.clone()))).collect();
    let tasks: Vec<_> = (0..args.generators).map(|g| tokio::spawn(generator(g, args.clone(), first_start))).collect();
    let mut delays = Vec::new();
    for t in tasks {
        delays.extend(t.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut hostile_messages = 0;
    for t in bad {
        hostile_messages += t.await.unwrap_or(0);
    }
    delays.sort_unstable();
    let pct = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    let expected = args.generators as u64 * args.windows;
    println!(
        "{{\"acked\": {}, \"expected\": {expected}, \"hostile_messages\": {hostile_messages}, \"delay_ms_p50\": {}, \"delay_ms_p99\": {}, \"delay_ms_max\": {}}}",
        delays.len(),
        pct(0.5),
        pct(0.99),
        delays.last().copied().unwrap_or(0)
    );
}
