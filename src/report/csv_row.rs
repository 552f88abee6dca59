//! A minimal RFC 4180 row encoder writing straight into a reused byte buffer: fields are
//! quoted only when they contain a comma, quote, CR or LF (quotes doubled), rows end with
//! `\n`. Shared by every CSV report so they all quote the same way.

use std::fmt::{self, Write as _};

/// Builds one CSV row at a time in a reused buffer.
#[derive(Default)]
pub struct CsvRow {
    buf: String,
    fields: usize,
    scratch: String,
}

impl CsvRow {
    /// Appends a field rendered by `Display`, quoting it if needed.
    pub fn field(&mut self, value: impl fmt::Display) -> &mut Self {
        self.scratch.clear();
        let _ = write!(self.scratch, "{value}");
        self.separator();
        if self
            .scratch
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        {
            self.buf.push('"');
            for c in self.scratch.chars() {
                if c == '"' {
                    self.buf.push('"');
                }
                self.buf.push(c);
            }
            self.buf.push('"');
        } else {
            self.buf.push_str(&self.scratch);
        }
        self
    }

    fn separator(&mut self) {
        if self.fields > 0 {
            self.buf.push(',');
        }
        self.fields += 1;
    }

    /// Finishes the row (appends the line end) and returns its bytes; the next `field`
    /// starts a new row.
    pub fn finish(&mut self) -> &[u8] {
        self.buf.push('\n');
        self.fields = 0;
        self.buf.as_bytes()
    }

    /// Clears the finished row so the buffer can be reused.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields = 0;
    }

    /// Encodes a header row.
    pub fn header(columns: &[&str]) -> Vec<u8> {
        let mut row = CsvRow::default();
        for c in columns {
            row.field(c);
        }
        row.finish().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed_and_doubles_quotes() {
        let mut row = CsvRow::default();
        row.field("plain")
            .field(42)
            .field("a,b")
            .field("say \"hi\"")
            .field("l1\nl2");
        assert_eq!(
            std::str::from_utf8(row.finish()).unwrap(),
            "plain,42,\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\"\n"
        );
        row.clear();
        row.field("");
        assert_eq!(row.finish(), b"\n");
    }

    #[test]
    fn the_csv_crate_reads_back_what_we_write() {
        let values = ["x", "a,b", "\"q\"", "multi\nline", " spaced ", ""];
        let mut row = CsvRow::default();
        for v in values {
            row.field(v);
        }
        let bytes = row.finish().to_vec();
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        let rec = rd.records().next().unwrap().unwrap();
        assert_eq!(rec.iter().collect::<Vec<_>>(), values);
    }
}
