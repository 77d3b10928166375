//! The rows of one data file, held once per process in two allocations.
//!
//! Every cell is stored in one string, each followed by a separator, with
//! the start of each row kept as a `u32` offset: a table costs its text
//! plus four bytes a row, whatever the number of VUs that read it. Cells
//! are found by scanning their row, which has a handful of columns.

/// Ends every cell in the text (refused inside a cell).
const SEP: char = '\u{1f}';

/// A table of text cells with named columns.
#[derive(Debug, Default)]
pub struct Table {
    columns: Vec<String>,
    text: String,
    rows: Vec<u32>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: Vec<String>) -> Table {
        Table { columns, text: String::new(), rows: Vec::new() }
    }

    /// Reserves room for `bytes` of cell text.
    pub fn reserve(&mut self, bytes: usize) {
        self.text.reserve(bytes);
    }

    /// Appends a row of exactly one cell per column.
    pub fn push_row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
        let start = u32::try_from(self.text.len()).map_err(|_| "the data is larger than 4 GiB".to_string())?;
        let mut n = 0;
        for cell in cells {
            if cell.contains(SEP) {
                self.text.truncate(start as usize);
                return Err("a value holds the control character U+001F".into());
            }
            self.text.push_str(cell);
            self.text.push(SEP);
            n += 1;
        }
        if n != self.columns.len() {
            self.text.truncate(start as usize);
            return Err(format!("{n} values for {} columns", self.columns.len()));
        }
        if u32::try_from(self.text.len()).is_err() {
            self.text.truncate(start as usize);
            return Err("the data is larger than 4 GiB".into());
        }
        self.rows.push(start);
        Ok(())
    }

    /// Frees what the loading reserved beyond the data.
    pub fn shrink(&mut self) {
        self.text.shrink_to_fit();
        self.rows.shrink_to_fit();
    }

    /// Column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The cell of `row` in column `col` (both in range).
    pub fn cell(&self, row: usize, col: usize) -> &str {
        let start = self.rows[row] as usize;
        let end = self.rows.get(row + 1).map_or(self.text.len(), |&e| e as usize);
        self.text[start..end].split(SEP).nth(col).unwrap_or("")
    }

    /// Bytes held (what memory the table costs).
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.rows.capacity() * 4 + self.columns.iter().map(String::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_come_back_by_row_and_column() {
        let mut t = Table::new(vec!["user".into(), "pass".into()]);
        t.push_row(["u1", "p1"]).unwrap();
        t.push_row(["", "p,2"]).unwrap();
        assert!(t.push_row(["only one"]).unwrap_err().contains("1 values for 2 columns"));
        assert!(t.push_row(["a\u{1f}b", "c"]).unwrap_err().contains("U+001F"));
        t.push_row(["u3", "p3"]).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t.cell(0, 0), t.cell(0, 1), t.cell(1, 0), t.cell(1, 1), t.cell(2, 1)),
            ("u1", "p1", "", "p,2", "p3")
        );
        t.shrink();
        assert_eq!(t.bytes(), "u1p1p,2u3p3".len() + 6 + 3 * 4 + 8);
    }
}
