//! The worker's policies, against an in-process sink whose answers the test
//! scripts (the real outputs are exercised end to end in `tests/`): what is
//! acknowledged when, what is counted, what a full queue does. Time is
//! paused, so backoff costs nothing.

use super::*;
use crate::merge::HealthPoint;
use crate::sink::{Marker, WriteFuture, WriteOk};
use std::sync::atomic::AtomicUsize;

/// Encodes each health item as the line `<generator>`; refuses a request
/// holding a line named `poison` as bad data; is down while `down` is set;
/// panics on encoding a line named `panic`.
#[derive(Default)]
struct Scripted {
    down: AtomicBool,
    stored: Mutex<Vec<String>>,
    requests: AtomicUsize,
}

impl Sink for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }

    fn prepare(&self, batch: &[Item]) -> Result<Prepared, SinkError> {
        let lines: Vec<String> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Health(h) => Some(h.generator.clone()),
                _ => None,
            })
            .collect();
        assert!(!lines.iter().any(|l| l == "panic"), "cannot encode this");
        Ok(Prepared { points: lines.len() as u64, body: lines.join("\n").into_bytes().into() })
    }

    fn send<'a>(&'a self, batch: &'a Prepared) -> WriteFuture<'a> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(SinkError::from_status(401, "HTTP 401 Unauthorized"));
            }
            let text = String::from_utf8(batch.body.to_vec()).unwrap();
            if text.lines().any(|l| l == "poison") {
                return Err(SinkError::from_status(400, "HTTP 400: unable to parse"));
            }
            self.stored.lock().extend(text.lines().map(str::to_string));
            Ok(WriteOk { points: batch.points, bytes: batch.body.len() as u64, refused: None })
        })
    }

    fn split(&self, batch: &Prepared) -> Option<[Prepared; 2]> {
        let text = String::from_utf8(batch.body.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        (lines.len() > 1).then(|| {
            let (a, b) = lines.split_at(lines.len() / 2);
            let p = |l: &[&str]| Prepared { points: l.len() as u64, body: l.join("\n").into_bytes().into() };
            [p(a), p(b)]
        })
    }

    fn example(&self, batch: &Prepared) -> Option<String> {
        String::from_utf8(batch.body.to_vec()).ok()
    }
}

fn health(name: &str) -> Item {
    Item::Health(Arc::new(HealthPoint {
        test_id: "t".into(),
        generator: name.into(),
        start_unix_ms: 0,
        len_ms: 1000,
        health: Default::default(),
    }))
}

fn marker() -> (Item, Arc<AtomicUsize>) {
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    (
        Item::Marker(Marker::new(1, move || {
            f.fetch_add(1, Ordering::Relaxed);
        })),
        fired,
    )
}

fn start(sink: Arc<Scripted>, cfg: WorkerConfig) -> (Worker, Arc<Mutex<Vec<String>>>) {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let l = logs.clone();
    (Worker::start(sink, cfg, Arc::new(move |m| l.lock().push(m)), None), logs)
}

/// Long enough (in paused time) for the longest backoff to pass.
async fn settle() {
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn nothing_is_acknowledged_while_the_output_is_down() {
    let sink = Arc::new(Scripted::default());
    sink.down.store(true, Ordering::Relaxed);
    let (w, logs) = start(sink.clone(), WorkerConfig::default());
    w.push(health("a"));
    w.push(health("b"));
    let (m, fired) = marker();
    w.push(m);
    settle().await;
    assert_eq!(fired.load(Ordering::Relaxed), 0, "acknowledged while the output answered 401");
    assert!(w.failing());
    assert!(sink.requests.load(Ordering::Relaxed) > 3, "retried with backoff");
    assert_eq!(logs.lock().iter().filter(|l| l.contains("retrying with backoff")).count(), 1);
    sink.down.store(false, Ordering::Relaxed);
    settle().await;
    assert_eq!(fired.load(Ordering::Relaxed), 1);
    assert_eq!(*sink.stored.lock(), ["a", "b"]);
    let stats = w.finish(Duration::from_secs(1)).await;
    assert_eq!((stats.items_written, stats.points_written, stats.points_rejected, stats.failing), (2, 2, 0, false));
}

#[tokio::test(start_paused = true)]
async fn a_poison_point_is_isolated_and_the_rest_stored() {
    let sink = Arc::new(Scripted::default());
    let (w, logs) = start(sink.clone(), WorkerConfig::default());
    for name in ["a", "b", "c", "poison", "d", "e", "f", "g"] {
        w.push(health(name));
    }
    let (m, fired) = marker();
    w.push(m);
    settle().await;
    let mut stored = sink.stored.lock().clone();
    stored.sort();
    assert_eq!(stored, ["a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(fired.load(Ordering::Relaxed), 1, "what was stored is acknowledged");
    let stats = w.finish(Duration::from_secs(1)).await;
    assert_eq!((stats.points_written, stats.points_rejected), (7, 1));
    let log = logs.lock().join("\n");
    assert!(
        log.contains("scripted: 1 points refused as bad data and not stored: HTTP 400: unable to parse (e.g. poison)"),
        "{log}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_the_oldest_and_never_acknowledges_it() {
    let sink = Arc::new(Scripted::default());
    sink.down.store(true, Ordering::Relaxed);
    let cfg = WorkerConfig { queue_items: 2, ..WorkerConfig::default() };
    let (w, _) = start(sink.clone(), cfg);
    w.push(health("a"));
    let (m, fired) = marker();
    w.push(m);
    w.push(health("b"));
    w.push(health("c"));
    let (m2, fired2) = marker();
    w.push(m2);
    sink.down.store(false, Ordering::Relaxed);
    settle().await;
    assert_eq!(*sink.stored.lock(), ["b", "c"]);
    assert_eq!(fired.load(Ordering::Relaxed), 0, "the marker after a dropped item is tainted");
    assert_eq!(fired2.load(Ordering::Relaxed), 1);
    let stats = w.finish(Duration::from_secs(1)).await;
    assert_eq!(stats.dropped, 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_queue_keeps_everything_and_says_when_it_is_full() {
    let sink = Arc::new(Scripted::default());
    sink.down.store(true, Ordering::Relaxed);
    let cfg = WorkerConfig { queue_items: 2, when_full: WhenFull::Wait, ..WorkerConfig::default() };
    let (w, _) = start(sink.clone(), cfg);
    w.push(health("a"));
    assert!(w.has_room());
    w.push(health("b"));
    assert!(!w.has_room());
    w.push(health("c"));
    sink.down.store(false, Ordering::Relaxed);
    settle().await;
    assert_eq!(*sink.stored.lock(), ["a", "b", "c"]);
    assert!(w.has_room());
    assert_eq!(w.finish(Duration::from_secs(1)).await.dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_while_encoding_is_caught_counted_and_not_acknowledged() {
    let sink = Arc::new(Scripted::default());
    let (w, logs) = start(sink.clone(), WorkerConfig::default());
    w.push(health("panic"));
    let (m, fired) = marker();
    w.push(m);
    settle().await;
    w.push(health("after"));
    let (m2, fired2) = marker();
    w.push(m2);
    settle().await;
    assert_eq!(fired.load(Ordering::Relaxed), 0);
    assert_eq!(fired2.load(Ordering::Relaxed), 1, "the worker goes on");
    assert_eq!(*sink.stored.lock(), ["after"]);
    let stats = w.finish(Duration::from_secs(1)).await;
    assert_eq!((stats.panics, stats.rejected), (1, 1));
    assert!(logs.lock().iter().any(|l| l.contains("encoding panicked: cannot encode this")));
}
