//! `flows.csv`: one row per flow, RFC 4180 with a header row, sorted by start time (then by
//! creation order), written as flows end through an [`OrderedSpool`] so memory stays bounded.
//! The schema is documented column by column in `docs/csv.md`; changing it bumps
//! [`FLOWS_SCHEMA_VERSION`].

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
];

/// Memory for rows waiting behind a long-lived flow before they spill to disk.
const SPOOL_MEM_BYTES: usize = 64 << 20;

pub struct FlowsCsv {
    out: BufWriter<File>,
    spool: OrderedSpool,
    row: csv::Writer<Vec<u8>>,
    /// Highest watermark released so far: rows are keyed no lower, so a flow whose start lies
    /// before it (the capture clock went backwards) is placed where it was seen.
    released: SpoolKey,
    rows: u64,
}

impl FlowsCsv {
    pub fn create(path: &Path) -> io::Result<FlowsCsv> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let mut header = csv::Writer::from_writer(Vec::new());
        header.write_record(FLOWS_COLUMNS).map_err(io::Error::other)?;
        out.write_all(&header.into_inner().map_err(|e| io::Error::other(e.to_string()))?)?;
        let spill_dir = path.parent().map(Path::to_path_buf);
        Ok(FlowsCsv {
            out,
            spool: OrderedSpool::new(SPOOL_MEM_BYTES, spill_dir),
            row: csv::Writer::from_writer(Vec::with_capacity(512)),
            released: (i64::MIN, 0),
            rows: 0,
        })
    }

    /// Encodes `rec` with `digits` fractional digits of seconds and queues it.
    pub fn push(&mut self, rec: &FlowRecord, digits: u8) -> io::Result<()> {
        let o = rec.dir(Dir::Orig);
        let r = rec.dir(Dir::Resp);
        let ip = |e: crate::flow::Endpoint| e.addr.to_ip().to_string();
        let fields: [String; 19] = [
            rec.uid.to_string(),
            rec.ts_start.display(digits).to_string(),
            rec.ts_end.display(digits).to_string(),
            SecsDisplay {
                nanos: rec.duration_ns(),
                digits,
            }
            .to_string(),
            rec.proto_name().to_string(),
            ip(rec.orig),
            rec.orig.port.to_string(),
            ip(rec.resp),
            rec.resp.port.to_string(),
            o.pkts.to_string(),
            o.bytes.to_string(),
            o.payload.to_string(),
            r.pkts.to_string(),
            r.bytes.to_string(),
            r.payload.to_string(),
            rec.state().to_string(),
            rec.history().to_string(),
            rec.proto.to_string(),
            rec.end.as_str().to_string(),
        ];
        self.row.write_record(&fields).map_err(io::Error::other)?;
        self.row.flush()?;
        let key = (rec.ts_start.0, rec.seq).max(self.released);
        self.spool.push(key, self.row.get_ref())?;
        self.row.get_mut().clear();
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
