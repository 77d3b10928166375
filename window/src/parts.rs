//! Windows larger than the exporter's frame limit: a generator splits one
//! into [`ToExporter::WindowPart`] frames of whole series, the exporter
//! joins them back into one report before merging. A single series that
//! cannot fit a frame on its own is left out and counted (the caller warns).

use crate::report::WindowReport;
use crate::wire::{encode, ToExporter, MAX_PARTS};

/// Joined windows may hold at most this many frame bytes (so a connection's
/// pending parts are bounded whatever its frame limit).
pub const MAX_JOINED_BYTES: usize = 64 << 20;

/// The frames that carry `report` within `max_frame` bytes each, and how
/// many series had to be left out because one alone exceeds the limit.
pub fn frames(report: &WindowReport, max_frame: usize) -> (Vec<Vec<u8>>, usize) {
    let whole = encode(&ToExporter::Window(report.clone()));
    if whole.len() <= max_frame {
        return (vec![whole], 0);
    }
    // Series, each with its encoded size, packed greedily in order.
    let empty = WindowReport { series: Vec::new(), ..report.clone() };
    let overhead = encode(&part(&empty, 0, 0)).len();
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = overhead;
    let mut dropped = 0;
    for (i, s) in report.series.iter().enumerate() {
        let one = WindowReport { series: vec![s.clone()], ..empty.clone() };
        let size = encode(&part(&one, 0, 0)).len() - overhead;
        if overhead + size > max_frame {
            dropped += 1;
            continue;
        }
        if used + size > max_frame {
            groups.push(Vec::new());
            used = overhead;
        }
        groups.last_mut().expect("one group at least").push(i);
        used += size;
    }
    let parts = groups.len() as u32;
    let frames = groups
        .iter()
        .enumerate()
        .map(|(n, g)| {
            let series = g.iter().map(|i| report.series[*i].clone()).collect();
            encode(&part(&WindowReport { series, ..empty.clone() }, n as u32, parts))
        })
        .collect();
    (frames, dropped)
}

fn part(report: &WindowReport, part: u32, parts: u32) -> ToExporter {
    ToExporter::WindowPart { report: report.clone(), part, parts }
}

/// Joins the parts of one connection's windows, which arrive in order.
#[derive(Default)]
pub struct Joiner {
    pending: Option<Pending>,
}

struct Pending {
    report: WindowReport,
    next: u32,
    parts: u32,
    bytes: usize,
}

impl Joiner {
    /// Adds one part (`frame_bytes` long on the wire). Returns the whole
    /// window after its last part, or why the parts do not fit together
    /// (the connection is then closed and nothing of the window is kept).
    pub fn add(
        &mut self,
        report: WindowReport,
        part: u32,
        parts: u32,
        frame_bytes: usize,
    ) -> Result<Option<WindowReport>, String> {
        if parts == 0 || parts > MAX_PARTS || part >= parts {
            self.pending = None;
            return Err(format!("window part {part} of {parts}: at most {MAX_PARTS} parts, numbered from 0"));
        }
        let mut pending = match self.pending.take() {
            None if part == 0 => {
                Pending { report: WindowReport { series: Vec::new(), ..report.clone() }, next: 0, parts, bytes: 0 }
            }
            None => return Err(format!("window part {part} of {parts} without its first part")),
            Some(p) => p,
        };
        let same = pending.report.seq == report.seq
            && pending.report.start_unix_ms == report.start_unix_ms
            && pending.parts == parts
            && pending.next == part;
        if !same {
            return Err(format!(
                "window part {part} of {parts} (seq {}) does not continue part {} of {} (seq {})",
                report.seq, pending.next, pending.parts, pending.report.seq
            ));
        }
        pending.bytes += frame_bytes;
        if pending.bytes > MAX_JOINED_BYTES {
            return Err(format!("window seq {} exceeds {MAX_JOINED_BYTES} bytes in parts", report.seq));
        }
        pending.report.series.extend(report.series);
        pending.report.health = report.health;
        pending.next += 1;
        if pending.next == pending.parts {
            return Ok(Some(pending.report));
        }
        self.pending = Some(pending);
        Ok(None)
    }

    /// Whether a window is half joined (a connection that ends now loses
    /// nothing: the window is unacknowledged and will be resent whole).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode;
    use crate::{Aggregate, HealthRecord, SeriesKey, SeriesWindow, Sketch, Tags, Unit};

    fn report(series: usize) -> WindowReport {
        let mut sk = Sketch::new();
        (1..=500).for_each(|v| sk.add(v as f64));
        WindowReport {
            generator: "g".into(),
            test_id: "t".into(),
            seq: 3,
            start_unix_ms: 1_700_000_000_000,
            len_ms: 1000,
            series: (0..series)
                .map(|i| SeriesWindow {
                    key: SeriesKey::new("http_req_duration", Tags::from_pairs([("name", format!("/item/{i:04}"))])),
                    unit: Unit::Time,
                    value: Aggregate::Trend(sk.clone()),
                })
                .collect(),
            health: HealthRecord { rss_bytes: 9, ..Default::default() },
        }
    }

    fn join(frames: &[Vec<u8>], max: usize) -> WindowReport {
        let mut j = Joiner::default();
        let mut whole = None;
        for f in frames {
            assert!(f.len() <= max, "{} > {max}", f.len());
            match decode::<ToExporter>(f, max).unwrap() {
                ToExporter::Window(w) => whole = Some(w),
                ToExporter::WindowPart { report, part, parts } => whole = j.add(report, part, parts, f.len()).unwrap(),
                other => panic!("{other:?}"),
            }
        }
        assert!(!j.is_pending());
        whole.expect("joined")
    }

    #[test]
    fn a_large_window_is_split_to_the_limit_and_joined_whole() {
        let r = report(60);
        let (one, dropped) = frames(&r, 16 << 20);
        assert_eq!((one.len(), dropped), (1, 0));
        let (parts, dropped) = frames(&r, 8192);
        assert!(parts.len() > 3, "{}", parts.len());
        assert_eq!(dropped, 0);
        let back = join(&parts, 8192);
        let keys = |w: &WindowReport| w.series.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&back), keys(&r));
        assert_eq!(encode(&ToExporter::Window(back.clone())), encode(&ToExporter::Window(r.clone())));
        assert_eq!((back.seq, back.start_unix_ms, back.health.rss_bytes), (3, r.start_unix_ms, 9));
    }

    #[test]
    fn a_series_larger_than_a_frame_is_left_out_and_counted() {
        let r = report(3);
        let (parts, dropped) = frames(&r, 600);
        assert_eq!(dropped, 3);
        assert!(join(&parts, 600).series.is_empty());
    }

    #[test]
    fn parts_out_of_order_or_forged_are_refused() {
        let r = report(1);
        let mut j = Joiner::default();
        assert!(j.add(r.clone(), 1, 2, 10).unwrap_err().contains("without its first part"));
        assert!(j.add(r.clone(), 0, MAX_PARTS + 1, 10).unwrap_err().contains("at most"));
        assert!(j.add(r.clone(), 0, 3, 10).unwrap().is_none());
        let other = WindowReport { seq: 4, ..r.clone() };
        assert!(j.add(other, 1, 3, 10).unwrap_err().contains("does not continue"));
        assert!(j.add(r.clone(), 0, 2, MAX_JOINED_BYTES).unwrap().is_none());
        assert!(j.add(r, 1, 2, 1).unwrap_err().contains("exceeds"));
    }
}
