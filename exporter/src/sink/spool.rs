//! A sink's disk spool: encoded batches the sink could not take yet, one
//! file each, replayed oldest first when the sink is back — also after the
//! exporter restarts, since the files outlive the process.
//!
//! A batch is acknowledged to generators once it is in the spool (written
//! and fsynced), so a sink outage does not fill generators' buffers. The
//! spool is bounded by `max_bytes`; when full, batches wait in the worker's
//! memory queue (itself bounded) and nothing is acknowledged until they are
//! stored somewhere.
//!
//! File format: `<seq>.batch`, a 16-byte header (magic `VSPL`, format
//! version, points as u64 little-endian) and the body exactly as the sink
//! sends it.

use super::Prepared;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"VSPL";
const FORMAT: u32 = 1;
const HEADER: usize = 16;

/// One sink's spool directory.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Spooled files, oldest first: (seq, size).
    files: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
    next_seq: u64,
}

impl Spool {
    /// Opens (or creates) `dir`; batches left by an earlier run are kept for
    /// replay. Unreadable leftovers are reported, not replayed.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<(Self, Vec<String>)> {
        fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(seq) = name.strip_suffix(".batch").and_then(|s| s.parse::<u64>().ok()) else {
                if name.ends_with(".tmp") {
                    // A write cut short by a crash: never acknowledged.
                    let _ = fs::remove_file(entry.path());
                } else {
                    problems.push(format!("{}: not a spool file, left alone", entry.path().display()));
                }
                continue;
            };
            files.push((seq, entry.metadata()?.len()));
        }
        files.sort_unstable();
        let bytes = files.iter().map(|(_, s)| s).sum();
        let next_seq = files.last().map_or(0, |(s, _)| s + 1);
        Ok((Self { dir: dir.to_path_buf(), max_bytes, files: files.into(), bytes, next_seq }, problems))
    }

    /// Batches waiting.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `batch` fits under the bound.
    pub fn has_room(&self, batch: &Prepared) -> bool {
        self.bytes + (HEADER + batch.body.len()) as u64 <= self.max_bytes
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:012}.batch"))
    }

    /// Writes a batch durably (temporary file, fsync, rename).
    pub fn push(&mut self, batch: &Prepared) -> std::io::Result<()> {
        let seq = self.next_seq;
        let tmp = self.dir.join(format!("{seq:012}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            let mut header = [0u8; HEADER];
            header[..4].copy_from_slice(MAGIC);
            header[4..8].copy_from_slice(&FORMAT.to_le_bytes());
            header[8..16].copy_from_slice(&batch.points.to_le_bytes());
            f.write_all(&header)?;
            f.write_all(&batch.body)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.path(seq))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        let size = (HEADER + batch.body.len()) as u64;
        self.files.push_back((seq, size));
        self.bytes += size;
        self.next_seq += 1;
        Ok(())
    }

    /// The oldest batch, if any. A damaged file is removed and reported.
    pub fn peek(&mut self) -> Option<Result<Prepared, String>> {
        let (seq, _) = *self.files.front()?;
        let path = self.path(seq);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                self.pop();
                return Some(Err(format!("{}: {e}", path.display())));
            }
        };
        if data.len() < HEADER || &data[..4] != MAGIC || data[4..8] != FORMAT.to_le_bytes() {
            self.pop();
            return Some(Err(format!("{}: not a spool batch of this version, dropped", path.display())));
        }
        let points = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        Some(Ok(Prepared { body: bytes::Bytes::copy_from_slice(&data[HEADER..]), points }))
    }

    /// Removes the oldest batch (after it was sent).
    pub fn pop(&mut self) {
        if let Some((seq, size)) = self.files.pop_front() {
            let _ = fs::remove_file(self.path(seq));
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u8) -> Prepared {
        Prepared { body: vec![n; 100].into(), points: n as u64 }
    }

    #[test]
    fn batches_survive_a_reopen_in_order_and_respect_the_bound() {
        let dir = std::env::temp_dir().join(format!("volley-spool-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (mut s, problems) = Spool::open(&dir, 3 * 116).unwrap();
        assert!(problems.is_empty());
        for n in 1..=3 {
            assert!(s.has_room(&batch(n)));
            s.push(&batch(n)).unwrap();
        }
        assert!(!s.has_room(&batch(4)), "bounded at 3 batches");
        fs::write(dir.join("000000000099.tmp"), b"half a write").unwrap();
        drop(s);
        let (mut s, _) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!((s.len(), s.bytes()), (3, 348));
        assert!(!dir.join("000000000099.tmp").exists(), "an unfinished write is discarded");
        for n in 1..=3 {
            let b = s.peek().unwrap().unwrap();
            assert_eq!((b.points, b.body[0]), (n as u64, n));
            s.pop();
        }
        assert!(s.peek().is_none() && s.is_empty());
        s.push(&batch(7)).unwrap();
        assert!(dir.join("000000000003.batch").exists(), "numbering continues");
        fs::remove_dir_all(&dir).unwrap();
    }
}
