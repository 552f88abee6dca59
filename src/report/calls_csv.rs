//! `calls.csv`: one row per call reconstructed by [`crate::measure::calls`], in the order calls
//! are reported (ended, idle or evicted; the rest by start time at the end of the input).
//! Schema documented in `docs/csv.md`. Must not: compute anything beyond formatting.

use super::csv_row::CsvRow;
use super::sessions::CallDigest;
use crate::measure::calls::{CallRecord, CallTracker};
use crate::pipeline::MsgCtx;
use dissectors::registry::Message;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub const CALLS_COLUMNS: &[&str] = &[
    "call_id",
    "caller",
    "callee",
    "caller_addr",
    "callee_addr",
    "start",
    "setup_ringing_s",
    "setup_accept_s",
    "duration_s",
    "end_reason",
    "media_path",
    "relay",
    "packets_ab",
    "packets_ba",
    "bitrate_kbps_ab",
    "bitrate_kbps_ba",
    "loss_ab",
    "loss_ba",
    "jitter_ms_ab",
    "jitter_ms_ba",
    "hold_s",
    "conference",
    "mixer",
];

pub struct CallsCsv {
    out: BufWriter<File>,
    row: CsvRow,
    rows: u64,
}

/// Seconds from nanoseconds with `digits` fractional digits, truncated (exact, no float).
fn secs(ns: Option<i64>, digits: u8) -> String {
    let Some(ns) = ns else {
        return String::new();
    };
    let digits = u32::from(digits.min(9));
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    let whole = abs / 1_000_000_000;
    if digits == 0 {
        return format!("{sign}{whole}");
    }
    let frac = (abs % 1_000_000_000) / 10u64.pow(9 - digits);
    format!("{sign}{whole}.{frac:0width$}", width = digits as usize)
}

fn fixed(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl CallsCsv {
    pub fn create(path: &Path) -> io::Result<CallsCsv> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&CsvRow::header(CALLS_COLUMNS))?;
        Ok(CallsCsv {
            out,
            row: CsvRow::default(),
            rows: 0,
        })
    }

    /// Writes one call; `digits` is the capture's timestamp precision.
    pub fn write(&mut self, c: &CallRecord, digits: u8) -> io::Result<()> {
        self.out.write_all(render(&mut self.row, c, digits))?;
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

/// The CSV row of one call (without writing it).
pub fn render<'r>(row: &'r mut CsvRow, c: &CallRecord, digits: u8) -> &'r [u8] {
    row.clear();
    let party = |name: &Option<String>, addr| match name {
        Some(n) => n.clone(),
        None => opt(addr),
    };
    row.uint(u64::from(c.call_id))
        .str(&party(&c.caller, c.caller_addr))
        .str(&party(&c.callee, c.callee_addr))
        .str(&opt(c.caller_addr))
        .str(&opt(c.callee_addr))
        .field(c.start.display(digits))
        .str(&secs(c.setup_ringing_ns, digits))
        .str(&secs(c.setup_accept_ns, digits))
        .str(&secs(c.duration_ns, digits))
        .field(&c.end_reason)
        .str(c.media_path.map(|p| p.as_str()).unwrap_or_default())
        .str(&opt(c.relay))
        .uint(c.ab.packets)
        .uint(c.ba.packets)
        .str(&fixed(c.ab.bitrate_kbps, 3))
        .str(&fixed(c.ba.bitrate_kbps, 3))
        .str(&fixed(c.ab.loss, 6))
        .str(&fixed(c.ba.loss, 6))
        .str(&fixed(c.ab.jitter_ms, 3))
        .str(&fixed(c.ba.jitter_ms, 3))
        .str(&secs(Some(c.hold_ns), digits))
        .str(&opt(c.conference))
        .str(c.mixer.as_deref().unwrap_or_default());
    row.finish()
}

/// Calls fed straight from the message stream: a [`CallTracker`] whose reported calls go
/// into the summary's [`CallDigest`] and, when asked for, are written to `calls.csv` as they
/// come. The first write error is kept and returned by `finish`.
pub struct CallsReport {
    tracker: CallTracker,
    out: Reported,
}

/// Where reported calls go.
struct Reported {
    csv: Option<CallsCsv>,
    digest: CallDigest,
    digits: u8,
    error: Option<io::Error>,
}

impl Reported {
    fn call(&mut self, c: CallRecord) {
        self.digest.add(&c);
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.write(&c, self.digits) {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl CallsReport {
    /// Calls for the summary only (no `calls.csv`).
    pub fn summary_only() -> CallsReport {
        CallsReport {
            tracker: CallTracker::new(),
            out: Reported {
                csv: None,
                digest: CallDigest::default(),
                digits: 6,
                error: None,
            },
        }
    }

    pub fn create(path: &Path) -> io::Result<CallsReport> {
        let mut r = CallsReport::summary_only();
        r.out.csv = Some(CallsCsv::create(path)?);
        Ok(r)
    }

    pub fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let out = &mut self.out;
        out.digits = out.digits.max(ctx.digits);
        self.tracker.message(ctx, msg, &mut |c| out.call(c));
    }

    /// Reports the calls still open and flushes `calls.csv`: the calls' digest, and the rows
    /// written (`None` without the file) or the first error writing them.
    pub fn finish(mut self) -> (CallDigest, Option<io::Result<u64>>) {
        let out = &mut self.out;
        self.tracker.finish(&mut |c| out.call(c));
        let Reported {
            csv, digest, error, ..
        } = self.out;
        let written = csv.map(|csv| match error {
            Some(e) => Err(e),
            None => {
                let rows = csv.rows();
                csv.finish().map(|()| rows)
            }
        });
        (digest, written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::calls::{DirStats, EndReason, MediaPath};
    use crate::time::Ts;

    #[test]
    fn seconds_are_exact_at_the_capture_precision() {
        assert_eq!(secs(Some(29_874_238_123), 6), "29.874238");
        assert_eq!(secs(Some(29_874_238_123), 9), "29.874238123");
        assert_eq!(secs(Some(-1_500_000_000), 3), "-1.500");
        assert_eq!(secs(Some(7), 0), "0");
        assert_eq!(secs(None, 6), "");
    }

    #[test]
    fn a_row_has_every_column_and_falls_back_to_addresses() {
        let rec = CallRecord {
            call_id: 42,
            caller: None,
            callee: Some("bob, jr".into()),
            caller_addr: Some("10.0.0.1:5000".parse().unwrap()),
            callee_addr: None,
            start: Ts(1_000_000_000),
            setup_ringing_ns: Some(40_000_000),
            setup_accept_ns: None,
            duration_ns: None,
            end_reason: EndReason::Eof,
            media_path: Some(MediaPath::RelayTcp),
            relay: Some("10.9.9.9:443".parse().unwrap()),
            ab: DirStats {
                packets: 3,
                bitrate_kbps: Some(23.2),
                loss: Some(0.0),
                jitter_ms: Some(1.5),
            },
            ba: DirStats::default(),
            hold_ns: 0,
            conference: Some(42),
            mixer: Some("bob".into()),
            untracked_frames: 0,
        };
        let mut row = CsvRow::default();
        let text = String::from_utf8(render(&mut row, &rec, 6).to_vec()).unwrap();
        assert_eq!(
            text,
            "42,10.0.0.1:5000,\"bob, jr\",10.0.0.1:5000,,1.000000,0.040000,,,eof,relay-tcp,\
             10.9.9.9:443,3,0,23.200,,0.000000,,1.500,,0.000000,42,bob\n"
        );
        assert_eq!(text.matches(',').count(), CALLS_COLUMNS.len()); // one quoted comma
    }
}
