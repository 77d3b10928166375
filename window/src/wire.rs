//! The generator ↔ exporter protocol: versioned, compact binary frames, one
//! per WebSocket binary message.
//!
//! ```text
//! frame = "VLY" | version (1 byte) | bincode(message)
//! ```
//!
//! A generator opens the WebSocket with `Authorization: Bearer <token>`,
//! sends [`ToExporter::Hello`], then one [`ToExporter::Window`] per closed
//! window (sequence numbers from 0 without gaps), and [`ToExporter::Goodbye`]
//! at the end of its run. The exporter answers [`ToGenerator::Welcome`] and
//! acknowledges windows with [`ToGenerator::Ack`] once they can no longer be
//! lost; the generator resends whatever is unacknowledged after a reconnect,
//! and the exporter deduplicates. A generator started with `--wait-for N`
//! sends [`ToExporter::Ready`] before its first window and waits for
//! [`ToGenerator::Start`], which the exporter sends to all of them once N
//! generators of the test are ready. A generator with thresholds sends
//! [`ToExporter::Thresholds`] after its hello: the exporter judges them on
//! the merged data, sends [`ToGenerator::Abort`] to every generator of the
//! test when one with `abortOnFail` fails, and [`ToGenerator::Verdict`] when
//! the test is over.
//!
//! Decoding never trusts the input: the frame size is checked before anything
//! is allocated, and bincode runs with the same limit, so a forged length
//! prefix cannot make the receiver allocate more than the frame could hold.

use crate::control::{Command, Status};
use crate::report::WindowReport;
use crate::threshold::{Outcome, SetSpec};
use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first bytes of every frame.
pub const MAGIC: [u8; 3] = *b"VLY";
/// The protocol version this build speaks.
pub const VERSION: u8 = 2;
/// Default largest frame a receiver accepts (a window report of ~10k series).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// Most parts one window may be split into.
pub const MAX_PARTS: u32 = 1024;

/// Smallest frame limit a receiver may be configured with: a hello and a
/// window of a few dozen series must fit.
pub const MIN_MAX_FRAME: usize = 4096;

/// Parses a configured frame limit (bytes, at least [`MIN_MAX_FRAME`]).
pub fn parse_frame_limit(text: &str) -> Result<usize, String> {
    let n: usize = text.trim().parse().map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if n < MIN_MAX_FRAME {
        return Err(format!("{n} bytes is too small for a frame: use at least {MIN_MAX_FRAME}"));
    }
    Ok(n)
}

/// Sent by a generator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToExporter {
    /// First message of every connection.
    Hello(Hello),
    /// A closed window.
    Window(WindowReport),
    /// Part `part` (from 0) of `parts` of a closed window too large for one
    /// frame of the exporter's announced limit: each part carries some of
    /// the window's series and the same sequence number, start, length and
    /// health; the exporter joins them, in order, into one report.
    WindowPart {
        /// The part's report.
        report: WindowReport,
        /// Its index.
        part: u32,
        /// How many parts the window has (at most [`MAX_PARTS`]).
        parts: u32,
    },
    /// The run is over: no windows after `last_seq`.
    Goodbye {
        /// The last sequence number sent (`None` if no window was).
        last_seq: Option<u64>,
    },
    /// `--wait-for`: this generator is set up and waits for a common start
    /// with the others of its test; sent again after a reconnect until a
    /// [`ToGenerator::Start`] arrives.
    Ready {
        /// How many generators the test waits for.
        expected: u32,
    },
    /// With `--exporter`, a test's thresholds are the fleet's: the exporter
    /// judges them on the merged data of every generator of the test. Sent
    /// after the hello on every connection (the exporter keeps the first).
    Thresholds {
        /// The scenario's thresholds, as written.
        sets: Vec<SetSpec>,
    },
    /// The answer to [`ToGenerator::Control`]: the generator's status after
    /// applying the command, or why it refused it.
    Status {
        /// The command's id.
        id: u64,
        /// The status, or the refusal.
        result: Result<Status, String>,
    },
}

/// Who is connecting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Unique per generator process.
    pub generator: String,
    /// The test run it belongs to.
    pub test_id: String,
    /// Its execution segment, if the test is split (`"1/4:2/4"`).
    pub segment: Option<String>,
    /// User tags of the generator (machine, region, …).
    pub tags: Vec<(String, String)>,
    /// Its window length in milliseconds.
    pub window_ms: u64,
}

/// Sent by the exporter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToGenerator {
    /// The hello was accepted.
    Welcome {
        /// The exporter's name and version.
        exporter: String,
        /// The exporter's clock (ms since the Unix epoch) when it sent this:
        /// generators stamp their windows on it, so that windows of machines
        /// whose clocks disagree still line up.
        clock_unix_ms: u64,
        /// The largest frame the exporter accepts: a generator splits a
        /// larger window into [`ToExporter::WindowPart`]s.
        max_frame_bytes: u64,
    },
    /// These windows are stored for good (written or spooled): forget them.
    Ack {
        /// Sequence numbers.
        seqs: Vec<u64>,
    },
    /// The answer to [`ToExporter::Ready`]: start the schedule `in_ms` after
    /// receiving this. Relative, so the generators' clocks need not agree;
    /// the network delay is the only skew.
    Start {
        /// Milliseconds until the common start (0 when it has passed).
        in_ms: u64,
        /// How long ago the common start was, for a generator that became
        /// ready after it (0 otherwise): it starts at once and says so.
        late_ms: u64,
        /// Generators that were ready when the start was agreed.
        ready: u32,
    },
    /// Stop the test now: a fleet threshold with `abortOnFail` failed on
    /// the merged data (or an operator stopped the fleet).
    Abort {
        /// Why, for the generator's log and summary.
        reason: String,
    },
    /// The fleet's thresholds judged on the merged data of the whole test,
    /// sent to every generator still connected once the last one finished:
    /// it decides their exit codes.
    Verdict {
        /// Every threshold's outcome.
        outcomes: Vec<Outcome>,
        /// How many generators' data it covers.
        generators: u32,
    },
    /// A fleet control command (`PATCH /v1/status?testid=…` on the
    /// exporter); answered with [`ToExporter::Status`].
    Control {
        /// Echoed in the answer.
        id: u64,
        /// What to change (nothing: a status query).
        command: Command,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the header.
    #[error("truncated frame ({0} bytes)")]
    Truncated(usize),
    /// Not a Volley frame.
    #[error("not a Volley frame (bad magic bytes)")]
    BadMagic,
    /// A version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    Version(u8),
    /// Larger than the receiver accepts.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Frame size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit as u64)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes one message as a frame.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    options(usize::MAX).serialize_into(&mut out, msg).expect("protocol messages always serialize");
    out
}

/// Decodes one frame of at most `max_frame` bytes.
pub fn decode<T: DeserializeOwned>(frame: &[u8], max_frame: usize) -> Result<T, WireError> {
    if frame.len() > max_frame {
        return Err(WireError::TooLarge { size: frame.len(), limit: max_frame });
    }
    if frame.len() < 4 {
        return Err(WireError::Truncated(frame.len()));
    }
    if frame[..3] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if frame[3] != VERSION {
        return Err(WireError::Version(frame[3]));
    }
    options(max_frame).deserialize(&frame[4..]).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Sketch, Tags, Unit};

    fn report() -> WindowReport {
        let mut sk = Sketch::new();
        (1..=1000).for_each(|v| sk.add(v as f64 / 7.0));
        WindowReport {
            generator: "g1".into(),
            test_id: "t".into(),
            seq: 7,
            start_unix_ms: 1_700_000_000_000,
            len_ms: 1000,
            series: vec![
                SeriesWindow {
                    key: SeriesKey::new("http_req_duration", Tags::from_pairs([("scenario", "s"), ("status", "200")])),
                    unit: Unit::Time,
                    value: Aggregate::Trend(sk),
                },
                SeriesWindow {
                    key: SeriesKey::new("iterations", Tags::new()),
                    unit: Unit::None,
                    value: Aggregate::Counter(5.0),
                },
            ],
            health: HealthRecord { rss_bytes: 5, ..Default::default() },
        }
    }

    #[test]
    fn a_window_round_trips_and_stays_compact() {
        let frame = encode(&ToExporter::Window(report()));
        assert_eq!(&frame[..4], b"VLY\x02");
        assert!(frame.len() < 2048, "a 1000-sample trend and a counter take {} bytes", frame.len());
        let ToExporter::Window(back) = decode(&frame, DEFAULT_MAX_FRAME).unwrap() else { panic!() };
        let Aggregate::Trend(sk) = &back.series[0].value else { panic!() };
        let Aggregate::Trend(orig) = &report().series[0].value else { panic!() };
        assert_eq!((back.seq, sk.count(), sk.quantile(0.99)), (7, 1000, orig.quantile(0.99)));
    }

    #[test]
    fn bad_frames_are_refused_with_the_reason() {
        let good = encode(&ToExporter::Goodbye { last_seq: Some(3) });
        assert_eq!(decode::<ToExporter>(&good[..2], 1024).unwrap_err(), WireError::Truncated(2));
        assert_eq!(decode::<ToExporter>(b"HTTP/1.1 200", 1024).unwrap_err(), WireError::BadMagic);
        let mut older = good.clone();
        older[3] = 1;
        assert_eq!(
            decode::<ToExporter>(&older, 1024).unwrap_err().to_string(),
            "unsupported protocol version 1 (this build speaks 2)"
        );
        assert_eq!(decode::<ToExporter>(&good, 4).unwrap_err(), WireError::TooLarge { size: good.len(), limit: 4 });
        let window = encode(&ToExporter::Window(report()));
        assert!(matches!(
            decode::<ToExporter>(&window[..window.len() - 5], DEFAULT_MAX_FRAME),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn a_forged_length_cannot_allocate_beyond_the_limit() {
        // Variant 1 (Window), then a string length claiming 2^60 bytes.
        let mut frame = b"VLY\x02".to_vec();
        frame.push(1);
        frame.push(0xfd);
        frame.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(decode::<ToExporter>(&frame, 1 << 20), Err(WireError::Malformed(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..2000 {
            let mut frame = b"VLY\x02".to_vec();
            for _ in 0..(len % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                frame.push(x as u8);
            }
            let _ = decode::<ToExporter>(&frame, 1 << 16);
        }
    }
}
