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
        let class = c.class.or(msg.class).map(|c| c.as_str());
        row.ts(ts, digits)
            .uid(uid)
            .str(dir.as_str())
            .str(msg.protocol)
            .str(&msg.msg_type)
            .opt_uint(msg.txn_id)
            .opt_uint(msg.call_id)
            .uint(u64::from(msg.len))
            .str(msg.status.as_str())
            .str(class.unwrap_or_default())
            .str(msg.detail.as_deref().unwrap_or_default())
            .str(if c.home { "true" } else { "false" });
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
