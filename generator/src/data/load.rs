//! Reading data files: CSV with a header row, or JSON (an array of
//! objects). A file is untrusted input: its size is bounded before it is
//! read, every row is checked, and an error names the row.

use super::table::Table;
use std::path::Path;

/// Largest CSV file read (its table fits the `u32` offsets).
pub const MAX_CSV_BYTES: u64 = 2 << 30;
/// Largest JSON file read (parsed whole, so kept smaller).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads `path` by its extension (`.csv` or `.json`).
pub fn read(path: &Path) -> Result<Table, String> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let limit = match ext.as_deref() {
        Some("csv") => MAX_CSV_BYTES,
        Some("json") => MAX_JSON_BYTES,
        _ => return Err(format!("{}: a data file is .csv (with a header row) or .json", path.display())),
    };
    let size = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
    if size > limit {
        return Err(format!(
            "{} has {size} bytes; a .{} data file may have at most {limit}",
            path.display(),
            ext.unwrap()
        ));
    }
    let table = if limit == MAX_CSV_BYTES {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        csv(std::io::BufReader::new(file), size as usize)
    } else {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        json(&bytes)
    };
    let mut table = table.map_err(|e| format!("{}: {e}", path.display()))?;
    if table.is_empty() {
        return Err(format!("{}: has no rows", path.display()));
    }
    table.shrink();
    Ok(table)
}

/// A CSV document whose first record names the columns; `size_hint`
/// reserves the text once.
pub fn csv(reader: impl std::io::Read, size_hint: usize) -> Result<Table, String> {
    let mut r = ::csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(reader);
    let header = r.headers().map_err(|e| csv_error(&e))?.clone();
    let columns = column_names(header.iter())?;
    let mut table = Table::new(columns);
    // The text is about the file's size: reserved once, not grown by doubling.
    table.reserve(size_hint);
    let mut record = ::csv::StringRecord::new();
    loop {
        match r.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                table.push_row(record.iter()).map_err(|e| format!("line {line}: {e}"))?;
            }
            Err(e) => return Err(csv_error(&e)),
        }
    }
    Ok(table)
}

fn csv_error(e: &::csv::Error) -> String {
    match e.position() {
        Some(p) => format!("line {}: {}", p.line(), e.kind_message()),
        None => e.kind_message(),
    }
}

trait KindMessage {
    fn kind_message(&self) -> String;
}

impl KindMessage for ::csv::Error {
    /// The error without the position csv repeats in its own message.
    fn kind_message(&self) -> String {
        match self.kind() {
            ::csv::ErrorKind::Utf8 { .. } => "is not UTF-8 text".into(),
            ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("{len} values where the header has {expected_len} columns")
            }
            _ => self.to_string(),
        }
    }
}

/// A JSON array of objects; the first object's keys are the columns and
/// every object must have exactly those. Values are text as written
/// (strings unquoted).
pub fn json(bytes: &[u8]) -> Result<Table, String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let serde_json::Value::Array(rows) = doc else {
        return Err("must be a JSON array of objects".into());
    };
    let Some(serde_json::Value::Object(first)) = rows.first() else {
        return Err("must be a non-empty JSON array of objects".into());
    };
    let columns = column_names(first.keys().map(String::as_str))?;
    let mut table = Table::new(columns.clone());
    for (i, row) in rows.iter().enumerate() {
        let serde_json::Value::Object(map) = row else {
            return Err(format!("[{i}]: must be an object"));
        };
        if map.len() != columns.len() || !columns.iter().all(|c| map.contains_key(c)) {
            return Err(format!("[{i}]: must have exactly the keys of the first object ({})", columns.join(", ")));
        }
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &map[c] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        table.push_row(cells.iter().map(String::as_str)).map_err(|e| format!("[{i}]: {e}"))?;
    }
    Ok(table)
}

/// Column names must be usable in `{{data.SET.COLUMN}}` and distinct.
fn column_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim_start_matches('\u{feff}').trim();
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!("column {name:?}: a column name is letters, digits, - and _ (at most 128)"));
        }
        if out.iter().any(|c| c == name) {
            return Err(format!("column {name:?} appears twice"));
        }
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err("has no columns".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn csv_with_quotes_and_a_header() {
        let t = csv("\u{feff}user,pass\r\nalice,\"p,1\"\nbob,\"say \"\"hi\"\"\"\n".as_bytes(), 0).unwrap();
        assert_eq!(t.columns(), ["user", "pass"]);
        assert_eq!((t.cell(0, 1), t.cell(1, 0), t.cell(1, 1)), ("p,1", "bob", "say \"hi\""));
        for (bad, why) in [
            ("a,b\n1,2\n3\n", "line 3: 1 values where the header has 2 columns"),
            ("a,a\n1,2\n", "column \"a\" appears twice"),
            ("a b\n1\n", "column \"a b\""),
            ("a,b\n1,\u{1f}\n", "line 2: a value holds the control character"),
        ] {
            let e = csv(bad.as_bytes(), 0).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(csv(&b"a\n\xff\n"[..], 0).unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn json_arrays_of_objects() {
        let t = json(br#"[{"user": "a", "n": 1, "x": null}, {"user": "b", "n": 2.5, "x": true}]"#).unwrap();
        assert_eq!(t.columns(), ["user", "n", "x"]);
        assert_eq!((t.cell(0, 1), t.cell(0, 2), t.cell(1, 1), t.cell(1, 2)), ("1", "", "2.5", "true"));
        for (bad, why) in [
            (&b"{}"[..], "must be a JSON array"),
            (b"[]", "non-empty"),
            (b"[{\"a\":1},{\"b\":1}]", "[1]: must have exactly the keys"),
            (b"[{\"a\":1},2]", "[1]: must be an object"),
            (b"[{\"a\":1}", "invalid JSON"),
        ] {
            let e = json(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn files_are_bounded_and_typed_by_extension() {
        let dir = std::env::temp_dir().join(format!("volley-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let txt = dir.join("users.txt");
        std::fs::write(&txt, "a\n1\n").unwrap();
        assert!(read(&txt).unwrap_err().contains(".csv (with a header row) or .json"));
        let empty = dir.join("empty.csv");
        std::fs::write(&empty, "a,b\n").unwrap();
        assert!(read(&empty).unwrap_err().contains("has no rows"));
        let ok = dir.join("ok.csv");
        std::fs::write(&ok, "a,b\n1,2\n").unwrap();
        assert_eq!(read(&ok).unwrap().cell(0, 1), "2");
        assert!(read(&dir.join("missing.csv")).unwrap_err().contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest! {
        /// Any bytes give a table or an error, never a panic.
        #[test]
        fn any_csv_or_json_bytes_load_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(t) = csv(&bytes[..], bytes.len()) {
                for r in 0..t.len() {
                    for c in 0..t.columns().len() {
                        let _ = t.cell(r, c);
                    }
                }
            }
            let _ = json(&bytes);
        }

        /// Whatever the cells, a CSV written by a CSV writer reads back equal.
        #[test]
        fn csv_round_trips(rows in proptest::collection::vec(proptest::collection::vec("[^\u{1f}]{0,12}", 2), 1..20)) {
            let mut w = ::csv::Writer::from_writer(Vec::new());
            w.write_record(["a", "b"]).unwrap();
            for r in &rows {
                w.write_record(r).unwrap();
            }
            let text = w.into_inner().unwrap();
            let t = csv(&text[..], text.len()).unwrap();
            prop_assert_eq!(t.len(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(t.cell(i, 0), r[0].as_str());
                prop_assert_eq!(t.cell(i, 1), r[1].as_str());
            }
        }
    }
}
