//! `messages.csv`: one row per decoded application message (Skylark, STUN, DNS, HTTP, TLS
//! hello), in the order decoded — capture order, except that a TCP message appears once its
//! last byte arrived in order. Schema documented in `docs/csv.md`.

use super::csv_row::CsvRow;
use crate::classify::Classified;
use crate::flow::{Dir, Uid};
use crate::time::Ts;
use dissectors::registry::Message;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub const MESSAGES_COLUMNS: &[&str] = &[
    "ts", "uid", "dir", "protocol", "msg_type", "txn_id", "call_id", "len", "status", "class",
    "detail", "home",
];

pub struct MessagesCsv {
    out: BufWriter<File>,
    row: CsvRow,
    rows: u64,
}

impl MessagesCsv {
    pub fn create(path: &Path) -> io::Result<MessagesCsv> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(&CsvRow::header(MESSAGES_COLUMNS))?;
        Ok(MessagesCsv {
            out,
            row: CsvRow::default(),
            rows: 0,
        })
    }

    /// Writes one row; `c` is the classifier's verdict (its class fills `class`, falling back
    /// to the dissector's).
    pub fn write(
        &mut self,
        uid: Uid,
        dir: Dir,
        ts: Ts,
        msg: &Message,
        c: &Classified,
        digits: u8,
    ) -> io::Result<()> {
        let row = &mut self.row;
        row.clear();
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        row.field(ts.display(digits))
            .field(uid)
            .field(dir.as_str())
            .field(msg.protocol)
            .field(&msg.msg_type)
            .field(opt(msg.txn_id))
            .field(opt(msg.call_id))
            .field(msg.len)
            .field(msg.status.as_str())
            .field(
                c.class
                    .or(msg.class)
                    .map(|c| c.as_str())
                    .unwrap_or_default(),
            )
            .field(msg.detail.as_deref().unwrap_or_default())
            .field(c.home);
        self.out.write_all(row.finish())?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}
