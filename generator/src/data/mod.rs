//! Test data: the `data:` section of a scenario file.
//!
//! ```yaml
//! data:
//!   users: { file: users.csv, pick: unique }   # {{data.users.username}}
//!   items: { file: items.json, pick: random }
//! ```
//!
//! A file is read once per process at load time and shared read-only by
//! every VU ([`table`]). `pick` says which row an iteration sees:
//! - `unique`: VU number N has row N for its whole life. VU numbers are
//!   unique across a fleet split by execution segments, so each row is used
//!   by one VU of the whole fleet; more VUs than rows is a load-time error.
//! - `sequential` (the default): each iteration takes the next row of this
//!   generator's part of the file (its execution segment's share of the
//!   rows), wrapping around.
//! - `random`: each iteration takes a row at random from the whole file.
//!
//! # Layout
//! - [`load`]: CSV and JSON readers.
//! - [`table`]: the compact row store.

pub mod load;
pub mod table;

use crate::config::reader::Obj;
use crate::executor::segment::Share;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use table::Table;

/// Fields of one data set.
const FIELDS: &[&str] = &["file", "pick"];

/// Which row an iteration sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// One row per VU, fleet-wide.
    Unique,
    /// The next row per iteration, within this generator's share.
    Sequential,
    /// A random row per iteration.
    Random,
}

/// One data file.
#[derive(Debug)]
pub struct DataSet {
    /// Its name in `{{data.NAME.COLUMN}}`.
    pub name: String,
    /// The rows.
    pub table: Table,
    /// How rows are picked.
    pub pick: Pick,
    /// The next sequential row.
    next: AtomicU64,
    /// This generator's rows for `sequential` (all until assigned).
    range: OnceLock<(usize, usize)>,
}

impl DataSet {
    /// The row iteration-time picking gives VU number `vu` (from 1).
    pub fn row(&self, vu: u64) -> Result<usize, String> {
        let len = self.table.len();
        match self.pick {
            Pick::Unique => usize::try_from(vu.saturating_sub(1)).ok().filter(|r| *r < len).ok_or_else(|| {
                format!("data {}: no row for VU {vu} ({len} rows, pick: unique gives each VU its own)", self.name)
            }),
            Pick::Sequential => {
                let (lo, hi) = *self.range.get_or_init(|| (0, len));
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Ok(lo + (n % (hi - lo) as u64) as usize)
            }
            Pick::Random => Ok(rand::Rng::gen_range(&mut rand::thread_rng(), 0..len)),
        }
    }
}

/// Every data set of a scenario file.
#[derive(Debug, Default)]
pub struct DataSets {
    sets: Vec<DataSet>,
}

impl DataSets {
    /// Reads the `data` section; files are relative to `base` (the scenario
    /// file's directory).
    pub fn parse(obj: Option<Obj>, base: Option<&Path>) -> DataSets {
        let mut sets = Vec::new();
        let Some(obj) = obj else { return DataSets { sets } };
        for (name, def) in obj.entries() {
            let Some(d) = Obj::new(def, obj.path_of(name), obj.report) else { continue };
            if let Err(e) = crate::flow::http::capture::check_name(name)
                .map_err(|_| "a data set's name is letters, digits and _ (not starting with a digit)".to_string())
            {
                obj.error(name, e);
            }
            let pick = match d.string("pick").as_deref() {
                None | Some("sequential") => Some(Pick::Sequential),
                Some("unique") => Some(Pick::Unique),
                Some("random") => Some(Pick::Random),
                Some(other) => {
                    d.error("pick", format!("{other:?} is not a pick (unique, sequential, random)"));
                    None
                }
            };
            let table = d.require("file").and(d.string("file")).and_then(|file| {
                let path = base.map_or_else(|| Path::new(&file).to_path_buf(), |b| b.join(&file));
                load::read(&path).map_err(|e| d.error("file", e)).ok()
            });
            d.finish_with(FIELDS);
            if let (Some(table), Some(pick)) = (table, pick) {
                sets.push(DataSet { name: name.clone(), table, pick, next: AtomicU64::new(0), range: OnceLock::new() });
            }
        }
        DataSets { sets }
    }

    /// The sets.
    pub fn sets(&self) -> &[DataSet] {
        &self.sets
    }

    /// `data.SET.COLUMN` for every column of every set, with its set and
    /// column: the variables the templates may use.
    pub fn variables(&self) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        for (s, set) in self.sets.iter().enumerate() {
            for (c, col) in set.table.columns().iter().enumerate() {
                out.push((format!("data.{}.{col}", set.name), s, c));
            }
        }
        out
    }

    /// Gives `sequential` sets this generator's share of their rows; an
    /// error names a set too small to give every generator a row.
    pub fn assign(&self, share: &Share) -> Result<(), String> {
        for set in &self.sets {
            let len = set.table.len() as u64;
            let (lo, n) = (share.before(len), share.scale(len));
            if set.pick == Pick::Sequential {
                if n == 0 {
                    return Err(format!(
                        "data {}: {len} rows leave none for this generator's segment {}",
                        set.name,
                        share.segment()
                    ));
                }
                let _ = set.range.set((lo as usize, (lo + n) as usize));
            }
        }
        Ok(())
    }

    /// Checks that `unique` sets among `used` have a row for every VU up
    /// to number `highest`.
    pub fn check_unique(&self, used: &[usize], highest: u64) -> Result<(), String> {
        for &i in used {
            let set = &self.sets[i];
            if set.pick == Pick::Unique && (set.table.len() as u64) < highest {
                return Err(format!(
                    "data {}: {} rows for {highest} VUs; pick: unique gives each VU its own row (add rows or use sequential)",
                    set.name,
                    set.table.len()
                ));
            }
        }
        Ok(())
    }
}
