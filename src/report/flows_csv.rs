//! `flows.csv`: one row per flow, RFC 4180 with a header row, sorted by start time (then by
//! creation order), written as flows end through an [`OrderedSpool`] so memory stays bounded.
//! The schema is documented column by column in `docs/csv.md`; changing it bumps
//! [`FLOWS_SCHEMA_VERSION`].

use super::csv_row::CsvRow;
use super::spool::{OrderedSpool, SpoolKey};
use crate::flow::{Dir, FlowRecord};
use crate::time::SecsDisplay;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Version of the `flows.csv` column set (see `docs/csv.md`).
pub const FLOWS_SCHEMA_VERSION: u32 = 1;

pub const FLOWS_COLUMNS: &[&str] = &[
    "uid",
    "ts_start",
    "ts_end",
    "duration",
    "proto",
    "orig_addr",
    "orig_port",
    "resp_addr",
    "resp_port",
    "orig_pkts",
    "orig_bytes",
    "orig_payload",
    "resp_pkts",
    "resp_bytes",
    "resp_payload",
    "state",
    "history",
    "ip_proto",
    "end_reason",
    "service",
];

/// Memory for rows waiting behind a long-lived flow before they spill to disk.
const SPOOL_MEM_BYTES: usize = 16 << 20;

pub struct FlowsCsv {
    out: BufWriter<File>,
    spool: OrderedSpool,
    row: CsvRow,
    /// Highest watermark released so far: rows are keyed no lower, so a flow whose start lies
    /// before it (the capture clock went backwards) is placed where it was seen.
    released: SpoolKey,
    rows: u64,
}

impl FlowsCsv {
    pub fn create(path: &Path) -> io::Result<FlowsCsv> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(&CsvRow::header(FLOWS_COLUMNS))?;
        let spill_dir = path.parent().map(Path::to_path_buf);
        Ok(FlowsCsv {
            out,
            spool: OrderedSpool::new(SPOOL_MEM_BYTES, spill_dir),
            row: CsvRow::default(),
            released: (i64::MIN, 0),
            rows: 0,
        })
    }

    /// Encodes `rec` with `digits` fractional digits of seconds and queues it.
    pub fn push(&mut self, rec: &FlowRecord, digits: u8) -> io::Result<()> {
        let o = rec.dir(Dir::Orig);
        let r = rec.dir(Dir::Resp);
        let row = &mut self.row;
        row.clear();
        row.field(rec.uid)
            .field(rec.ts_start.display(digits))
            .field(rec.ts_end.display(digits))
            .field(SecsDisplay {
                nanos: rec.duration_ns(),
                digits,
            })
            .field(rec.proto_name())
            .field(rec.orig.addr.to_ip())
            .field(rec.orig.port)
            .field(rec.resp.addr.to_ip())
            .field(rec.resp.port)
            .field(o.pkts)
            .field(o.bytes)
            .field(o.payload)
            .field(r.pkts)
            .field(r.bytes)
            .field(r.payload)
            .field(rec.state())
            .field(rec.history())
            .field(rec.proto)
            .field(rec.end.as_str())
            .field(rec.service.unwrap_or_default());
        let key = (rec.ts_start.0, rec.seq).max(self.released);
        self.spool.push(key, row.finish())?;
        self.rows += 1;
        Ok(())
    }

    /// Writes every queued row that sorts before `watermark` (the earliest live flow).
    pub fn release_below(&mut self, watermark: SpoolKey) -> io::Result<()> {
        if watermark > self.released {
            self.released = watermark;
            self.spool.release_below(watermark, &mut self.out)?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the remaining rows and flushes the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.spool.finish(&mut self.out)?;
        self.out.flush()
    }
}
