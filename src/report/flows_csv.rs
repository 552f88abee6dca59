//! `flows.csv`: one row per flow, RFC 4180 with a header row, sorted by start time (then by
//! creation order), written as flows end through an [`OrderedSpool`] so memory stays bounded.
//! The schema is documented column by column in `docs/csv.md`; changing it bumps
//! [`FLOWS_SCHEMA_VERSION`].
//!
//! The per-class columns come from a [`ClassCounts`] the caller accumulates from the flow's
//! classified messages; this module only encodes them and never classifies anything itself.

use super::csv_row::CsvRow;
use super::spool::{OrderedSpool, SpoolKey};
use crate::flow::{Dir, FlowRecord};
use arrayvec::ArrayVec;
use dissectors::registry::TrafficClass;
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Version of the `flows.csv` column set (see `docs/csv.md`).
pub const FLOWS_SCHEMA_VERSION: u32 = 2;

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
    "class",
    "msgs_login",
    "msgs_lookup",
    "msgs_signalling",
    "msgs_keepalive",
    "msgs_media",
    "bytes_login",
    "bytes_lookup",
    "bytes_signalling",
    "bytes_keepalive",
    "bytes_media",
    "evidence",
];

/// Distinct message kinds kept per flow for the `evidence` column.
pub const MAX_EVIDENCE: usize = 4;
/// Longest message kind kept in `evidence` (kinds are short names; this bounds memory).
pub const MAX_EVIDENCE_KIND_LEN: usize = 48;

/// Skylark messages that confirm a flow as Skylark on their own (without an answered
/// transaction): "several consistent messages" of the classification rule.
pub const MIN_SKYLARK_MSGS: u32 = 3;
/// Transaction ids remembered per flow to pair requests with answers.
pub const MAX_PENDING_TXNS: usize = 8;

/// Per-class message and byte counts of one flow, its first distinct message kinds, and the
/// evidence that it really is Skylark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub msgs: [u64; 5],
    pub bytes: [u64; 5],
    /// First distinct message kinds, at most [`MAX_EVIDENCE`]. Inline, like `txns`: a
    /// million short flows would otherwise make two small allocations each.
    pub evidence: ArrayVec<Cow<'static, str>, MAX_EVIDENCE>,
    /// Skylark messages decoded in the flow.
    pub skylark_msgs: u32,
    /// A Skylark transaction id sent one way was answered the other way: random bytes that
    /// pass the header checksum will not also echo a 32-bit id (PROTOCOL.md §3).
    pub skylark_answered: bool,
    /// Recent Skylark transaction ids with the direction that sent them, until one is
    /// answered.
    txns: ArrayVec<(Dir, u32), MAX_PENDING_TXNS>,
}

impl ClassCounts {
    /// Counts one message of `len` bytes, kind `kind`, class `class` (if any).
    // A `Cow` rather than `&str`: a static kind name is kept without allocating.
    #[allow(clippy::ptr_arg)]
    pub fn add(&mut self, class: Option<TrafficClass>, kind: &Cow<'static, str>, len: u32) {
        if let Some(i) = class.map(TrafficClass::index) {
            if let (Some(m), Some(b)) = (self.msgs.get_mut(i), self.bytes.get_mut(i)) {
                *m = m.saturating_add(1);
                *b = b.saturating_add(u64::from(len));
            }
        }
        if self.evidence.len() < MAX_EVIDENCE
            && kind.len() <= MAX_EVIDENCE_KIND_LEN
            && !self.evidence.iter().any(|k| k == kind)
        {
            let _ = self.evidence.try_push(kind.clone()); // room checked above
        }
    }

    /// Nothing counted yet (a message that leaves no trace keeps it so: callers may only
    /// treat `true` as "maybe the first message").
    pub fn is_empty(&self) -> bool {
        self.msgs == [0; 5] && self.evidence.is_empty() && self.skylark_msgs == 0
    }

    /// Notes one Skylark message sent in direction `dir` with transaction id `txn`.
    pub fn add_skylark(&mut self, dir: Dir, txn: Option<u64>) {
        self.skylark_msgs = self.skylark_msgs.saturating_add(1);
        if self.skylark_answered {
            return; // nothing left to learn from ids
        }
        // Skylark transaction ids are 32-bit (PROTOCOL.md §3.1); 0 is none.
        let Some(txn) = txn.and_then(|t| u32::try_from(t).ok()).filter(|t| *t != 0) else {
            return;
        };
        if self.txns.iter().any(|&(d, t)| t == txn && d != dir) {
            self.skylark_answered = true;
        } else if !self.txns.contains(&(dir, txn)) {
            if self.txns.len() >= MAX_PENDING_TXNS {
                self.txns.remove(0);
            }
            let _ = self.txns.try_push((dir, txn)); // room made above
        }
    }

    /// The flow is called Skylark only with evidence: [`MIN_SKYLARK_MSGS`] decoded messages,
    /// or a request answered with its transaction id.
    pub fn skylark_confirmed(&self) -> bool {
        self.skylark_answered || self.skylark_msgs >= MIN_SKYLARK_MSGS
    }

    /// The `service` column: a Skylark claim without enough evidence is written `skylark?`.
    pub fn service<'s>(&self, claimed: Option<&'s str>) -> &'s str {
        match claimed {
            Some("skylark") if !self.skylark_confirmed() => "skylark?",
            Some(s) => s,
            None => "",
        }
    }

    /// The class with the most bytes (ties: the one with more messages, then column order);
    /// `None` without classified messages.
    pub fn dominant(&self) -> Option<TrafficClass> {
        let mut best: Option<(usize, (u64, u64))> = None;
        for (i, (b, m)) in self.bytes.iter().zip(self.msgs.iter()).enumerate() {
            if *m == 0 {
                continue;
            }
            if best.is_none_or(|(_, k)| (*b, *m) > k) {
                best = Some((i, (*b, *m)));
            }
        }
        best.and_then(|(i, _)| TrafficClass::ALL.get(i).copied())
    }
}

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

    /// Encodes `rec` without classified messages (empty class, zero counts).
    pub fn push(&mut self, rec: &FlowRecord, digits: u8) -> io::Result<()> {
        self.push_classified(rec, digits, &ClassCounts::default())
    }

    /// Encodes `rec` with `digits` fractional digits of seconds and its messages' class
    /// counts, and queues it.
    pub fn push_classified(
        &mut self,
        rec: &FlowRecord,
        digits: u8,
        counts: &ClassCounts,
    ) -> io::Result<()> {
        let o = rec.dir(Dir::Orig);
        let r = rec.dir(Dir::Resp);
        let row = &mut self.row;
        row.clear();
        row.uid(&rec.uid.encode())
            .ts(rec.ts_start, digits)
            .ts(rec.ts_end, digits)
            .secs(rec.duration_ns(), digits)
            .str(rec.proto_name())
            .ip(rec.orig.addr.to_ip())
            .uint(u64::from(rec.orig.port))
            .ip(rec.resp.addr.to_ip())
            .uint(u64::from(rec.resp.port))
            .uint(o.pkts)
            .uint(o.bytes)
            .uint(o.payload)
            .uint(r.pkts)
            .uint(r.bytes)
            .uint(r.payload)
            .str(rec.state())
            .str(rec.history())
            .uint(u64::from(rec.proto))
            .str(rec.end.as_str())
            .str(counts.service(rec.service))
            .str(counts.dominant().map_or("", TrafficClass::as_str));
        for m in counts.msgs {
            row.uint(m);
        }
        for b in counts.bytes {
            row.uint(b);
        }
        row.joined(&counts.evidence, ";");
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_per_class_and_dominant_by_bytes() {
        let mut c = ClassCounts::default();
        assert_eq!(c.dominant(), None);
        c.add(Some(TrafficClass::Login), &"hc-probe".into(), 40);
        c.add(Some(TrafficClass::Media), &"media".into(), 30);
        c.add(Some(TrafficClass::Media), &"media".into(), 30);
        c.add(None, &"dns-query".into(), 500);
        assert_eq!(c.msgs, [1, 0, 0, 0, 2]);
        assert_eq!(c.bytes, [40, 0, 0, 0, 60]);
        assert_eq!(c.dominant(), Some(TrafficClass::Media));
        assert_eq!(c.evidence.as_slice(), ["hc-probe", "media", "dns-query"]);
    }

    #[test]
    fn skylark_needs_an_answer_or_several_messages() {
        let mut c = ClassCounts::default();
        assert_eq!(c.service(Some("skylark")), "skylark?");
        c.add_skylark(Dir::Orig, Some(7));
        c.add_skylark(Dir::Orig, Some(7));
        assert_eq!(
            c.service(Some("skylark")),
            "skylark?",
            "a retransmission is no answer"
        );
        c.add_skylark(Dir::Resp, Some(8));
        assert_eq!(c.service(Some("skylark")), "skylark", "three messages");
        let mut c = ClassCounts::default();
        c.add_skylark(Dir::Orig, Some(7));
        c.add_skylark(Dir::Resp, Some(7));
        assert!(c.skylark_confirmed(), "answered by transaction id");
        let mut c = ClassCounts::default();
        c.add_skylark(Dir::Orig, Some(0));
        c.add_skylark(Dir::Resp, Some(0));
        assert!(
            !c.skylark_confirmed(),
            "id 0 (media, notifications) pairs nothing"
        );
        assert_eq!(c.service(Some("stun")), "stun");
        assert_eq!(c.service(None), "");
    }

    #[test]
    fn pending_transactions_are_bounded() {
        let mut c = ClassCounts::default();
        for t in 1..1000 {
            c.add_skylark(Dir::Orig, Some(t));
        }
        assert!(c.txns.len() <= MAX_PENDING_TXNS);
        c.add_skylark(Dir::Resp, Some(999));
        assert!(c.skylark_answered);
    }

    #[test]
    fn evidence_is_distinct_bounded_and_skips_long_kinds() {
        let mut c = ClassCounts::default();
        c.add(None, &"x".repeat(MAX_EVIDENCE_KIND_LEN + 1).into(), 1);
        for k in ["a", "a", "b", "c", "d", "e"] {
            c.add(None, &k.to_string().into(), 1);
        }
        assert_eq!(c.evidence.as_slice(), ["a", "b", "c", "d"]);
        assert_eq!(c.dominant(), None);
    }

    proptest! {
        #[test]
        fn dominant_has_the_most_bytes(ops in proptest::collection::vec((0usize..6, any::<u32>()), 0..50)) {
            let mut c = ClassCounts::default();
            for (i, len) in &ops {
                c.add(TrafficClass::ALL.get(*i).copied(), &"k".into(), *len);
            }
            let total: u64 = c.msgs.iter().sum();
            prop_assert_eq!(total, ops.iter().filter(|(i, _)| *i < 5).count() as u64);
            match c.dominant() {
                None => prop_assert_eq!(total, 0),
                Some(d) => {
                    let i = d.index();
                    prop_assert!(c.bytes.iter().all(|b| *b <= c.bytes[i]));
                }
            }
        }
    }
}
