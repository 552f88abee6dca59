//! Streaming reader of labels.csv (docs/csv.md): one row at a time, plain or gzip, rows of
//! one capture point only. Holds one row of lookahead; never the file.

use super::{Label, open_maybe_gz, parse_ts};
use crate::peer::truth::LABEL_COLUMNS;
use dissectors::registry::TrafficClass;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Why the labels cannot be used. Displayed as one line.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("cannot read labels {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("labels {path}: not a labels.csv file (missing column '{column}')")]
    Header { path: String, column: &'static str },
    #[error("labels {path}, line {line}: {what}")]
    Row {
        path: String,
        line: u64,
        what: String,
    },
}

/// The columns the join needs: labels.csv's first eleven (`crate::peer::truth`).
const COLUMNS: &[&str] = match LABEL_COLUMNS.split_at_checked(11) {
    Some((head, _)) => head,
    None => LABEL_COLUMNS,
};

/// Reads labels in file order, keeping the rows of one capture point.
pub struct LabelReader {
    path: String,
    rows: csv::StringRecordsIntoIter<Box<dyn Read + Send>>,
    idx: [usize; 11],
    capture_idx: Option<usize>,
    /// The selected capture point; `None` until the first row when not given.
    capture: Option<String>,
    peeked: Option<Label>,
    done: bool,
}

impl LabelReader {
    /// Opens `path` and checks its header. `capture`: the capture point to keep (default:
    /// the first row's).
    pub fn open(path: &Path, capture: Option<String>) -> Result<LabelReader, LabelError> {
        let name = path.display().to_string();
        let input = open_maybe_gz(path).map_err(|source| LabelError::Open {
            path: name.clone(),
            source,
        })?;
        LabelReader::from_read(name, input, capture)
    }

    /// Reads labels from `input` (already decompressed), named `name` in errors.
    pub fn from_read(
        name: String,
        input: Box<dyn Read + Send>,
        capture: Option<String>,
    ) -> Result<LabelReader, LabelError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let headers = rdr.headers().cloned().map_err(|e| LabelError::Row {
            path: name.clone(),
            line: 1,
            what: format!("not a labels.csv file ({e})"),
        })?;
        let mut idx = [0usize; 11];
        for (slot, col) in idx.iter_mut().zip(COLUMNS) {
            *slot = headers
                .iter()
                .position(|h| h == *col)
                .ok_or(LabelError::Header {
                    path: name.clone(),
                    column: col,
                })?;
        }
        let capture_idx = headers.iter().position(|h| h == "capture");
        Ok(LabelReader {
            path: name,
            rows: rdr.into_records(),
            idx,
            capture_idx,
            capture,
            peeked: None,
            done: false,
        })
    }

    /// The selected capture point (known after the first row).
    pub fn capture(&self) -> &str {
        self.capture.as_deref().unwrap_or_default()
    }

    fn row_error(&self, line: u64, what: impl Into<String>) -> LabelError {
        LabelError::Row {
            path: self.path.clone(),
            line,
            what: what.into(),
        }
    }

    /// The next label of the selected capture point without consuming it.
    pub fn peek(&mut self) -> Result<Option<&Label>, LabelError> {
        if self.peeked.is_none() && !self.done {
            self.peeked = self.read()?;
            self.done = self.peeked.is_none();
        }
        Ok(self.peeked.as_ref())
    }

    /// Consumes and returns the next label.
    pub fn next_label(&mut self) -> Result<Option<Label>, LabelError> {
        self.peek()?;
        Ok(self.peeked.take())
    }

    fn read(&mut self) -> Result<Option<Label>, LabelError> {
        loop {
            let Some(rec) = self.rows.next() else {
                return Ok(None);
            };
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                self.row_error(line, e.to_string())
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            let point = self
                .capture_idx
                .and_then(|i| rec.get(i))
                .unwrap_or_default();
            match &self.capture {
                Some(c) if c != point => continue,
                Some(_) => {}
                None => self.capture = Some(point.to_string()),
            }
            let get = |i: usize| rec.get(self.idx.get(i).copied().unwrap_or(usize::MAX));
            let field = |i: usize| {
                get(i).ok_or_else(|| {
                    self.row_error(
                        line,
                        format!("missing field '{}'", COLUMNS.get(i).unwrap_or(&"?")),
                    )
                })
            };
            let ts = parse_ts(field(0)?).ok_or_else(|| self.row_error(line, "bad timestamp"))?;
            let proto = match field(1)? {
                "udp" => 17,
                "tcp" => 6,
                t => return Err(self.row_error(line, format!("unknown transport {}", quoted(t)))),
            };
            let addr = |a: usize, p: usize| -> Result<SocketAddr, LabelError> {
                let ip: IpAddr = field(a)?
                    .parse()
                    .map_err(|_| self.row_error(line, "bad address"))?;
                let port: u16 = field(p)?
                    .parse()
                    .map_err(|_| self.row_error(line, "bad port"))?;
                Ok(SocketAddr::new(ip, port))
            };
            let src = addr(2, 3)?;
            let dst = addr(4, 5)?;
            let kind = field(6)?.to_string();
            let class = field(7)?;
            let class = TrafficClass::from_name(class)
                .ok_or_else(|| self.row_error(line, format!("unknown class {}", quoted(class))))?;
            let home = match field(8)? {
                "true" => true,
                "false" | "" => false,
                h => return Err(self.row_error(line, format!("bad home flag {}", quoted(h)))),
            };
            let id = |i: usize| -> Result<Option<u64>, LabelError> {
                match field(i)? {
                    "" => Ok(None),
                    v => v
                        .parse()
                        .map(Some)
                        .map_err(|_| self.row_error(line, format!("bad id {}", quoted(v)))),
                }
            };
            let txn_id = id(9)?;
            let call_id = id(10)?;
            return Ok(Some(Label {
                ts,
                proto,
                src,
                dst,
                kind,
                class,
                home,
                txn_id,
                call_id,
            }));
        }
    }
}

/// A field as an error quotes it: one line (control characters escaped), at most
/// `MAX_QUOTED` characters.
fn quoted(v: &str) -> String {
    const MAX_QUOTED: usize = 40;
    let mut s: String = v
        .chars()
        .take(MAX_QUOTED)
        .flat_map(char::escape_debug)
        .collect();
    if v.chars().nth(MAX_QUOTED).is_some() {
        s.push('…');
    }
    format!("'{s}'")
}
