//! `flows.csv`: one row per flow, RFC 4180 with a header row, sorted by start time (then by
//! creation order), written as flows end through an [`OrderedSpool`] so memory stays bounded.
//! The schema is documented column by column in `docs/csv.md`; changing it bumps
//! [`FLOWS_SCHEMA_VERSION`].
//!
//! The per-class columns come from a [`ClassCounts`] the caller accumulates from the flow's
//! classified messages; this module only encodes them and never classifies anything itself.

use super::csv_row::CsvRow;
use super::file_sink::FileSink;
use super::spool::{OrderedSpool, SpoolKey};
use crate::flow::{Dir, FlowRecord};
use arrayvec::ArrayVec;
use dissectors::registry::TrafficClass;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::io::{self, Write};
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
/// Distinct kinds [`EvidenceKinds`] names; a kind first seen after that is left out of the
/// `evidence` column (48-byte names: at most 3 MB).
pub const MAX_EVIDENCE_KINDS: usize = u16::MAX as usize;

/// The message kinds named in `evidence` columns, each stored once: a flow keeps 2-byte ids,
/// not names (four 24-byte names inline were a third of the per-flow state, ~60 MB at the
/// `large` capture's 637 k live flows).
#[derive(Debug, Default)]
pub struct EvidenceKinds {
    names: Vec<Cow<'static, str>>,
    ids: FxHashMap<Cow<'static, str>, u16>,
}

impl EvidenceKinds {
    fn name(&self, id: u16) -> &str {
        self.names.get(usize::from(id)).map_or("", |n| n.as_ref())
    }

    /// `kind`'s id, given it one if it is new; `None` once [`MAX_EVIDENCE_KINDS`] are named.
    // A `Cow` rather than `&str`: a static kind name is kept without allocating.
    #[allow(clippy::ptr_arg)]
    fn id(&mut self, kind: &Cow<'static, str>) -> Option<u16> {
        if let Some(&id) = self.ids.get(kind.as_ref()) {
            return Some(id);
        }
        let id = u16::try_from(self.names.len())
            .ok()
            .filter(|&id| usize::from(id) < MAX_EVIDENCE_KINDS)?;
        self.names.push(kind.clone());
        self.ids.insert(kind.clone(), id);
        Some(id)
    }
}

/// Recent Skylark transaction ids of a flow and the direction that sent each, oldest first,
/// packed (34 bytes rather than 68 as `(Dir, u32)` pairs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PendingTxns {
    ids: [u32; MAX_PENDING_TXNS],
    /// Bit `i`: `ids[i]` was sent by the responder.
    from_resp: u8,
    len: u8,
}

impl PendingTxns {
    fn iter(&self) -> impl Iterator<Item = (Dir, u32)> + '_ {
        self.ids
            .iter()
            .take(usize::from(self.len))
            .enumerate()
            .map(|(i, &t)| {
                let dir = if self.from_resp & (1 << i) != 0 {
                    Dir::Resp
                } else {
                    Dir::Orig
                };
                (dir, t)
            })
    }

    /// Remembers `(dir, txn)`, forgetting the oldest when full.
    fn push(&mut self, dir: Dir, txn: u32) {
        let mut len = usize::from(self.len);
        if len >= MAX_PENDING_TXNS {
            self.ids.copy_within(1.., 0);
            self.from_resp >>= 1;
            len = MAX_PENDING_TXNS - 1;
        }
        if let Some(slot) = self.ids.get_mut(len) {
            *slot = txn;
        }
        let bit = 1u8 << len;
        match dir {
            Dir::Resp => self.from_resp |= bit,
            Dir::Orig => self.from_resp &= !bit,
        }
        self.len = (len + 1) as u8; // at most MAX_PENDING_TXNS
    }
}

/// Per-class message and byte counts of one flow, its first distinct message kinds, and the
/// evidence that it really is Skylark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub msgs: [u64; 5],
    pub bytes: [u64; 5],
    /// First distinct message kinds, at most [`MAX_EVIDENCE`], as [`EvidenceKinds`] ids.
    /// Inline, like `txns`: a million short flows would otherwise make two small
    /// allocations each.
    evidence: ArrayVec<u16, MAX_EVIDENCE>,
    /// Skylark messages decoded in the flow.
    pub skylark_msgs: u32,
    /// A Skylark transaction id sent one way was answered the other way: random bytes that
    /// pass the header checksum will not also echo a 32-bit id (PROTOCOL.md §3).
    pub skylark_answered: bool,
    /// Recent Skylark transaction ids with the direction that sent them, until one is
    /// answered.
    txns: PendingTxns,
}

impl ClassCounts {
    /// Counts one message of `len` bytes, kind `kind` (named in `kinds` if it becomes
    /// evidence), class `class` (if any).
    // A `Cow` rather than `&str`: a static kind name is kept without allocating.
    #[allow(clippy::ptr_arg)]
    pub fn add(
        &mut self,
        class: Option<TrafficClass>,
        kind: &Cow<'static, str>,
        len: u32,
        kinds: &mut EvidenceKinds,
    ) {
        if let Some(i) = class.map(TrafficClass::index) {
            if let (Some(m), Some(b)) = (self.msgs.get_mut(i), self.bytes.get_mut(i)) {
                *m = m.saturating_add(1);
                *b = b.saturating_add(u64::from(len));
            }
        }
        if self.evidence.len() < MAX_EVIDENCE
            && kind.len() <= MAX_EVIDENCE_KIND_LEN
            && !self.has_evidence(kind, kinds)
        {
            if let Some(id) = kinds.id(kind) {
                let _ = self.evidence.try_push(id); // room checked above
            }
        }
    }

    /// Whether `kind` is in the flow's evidence. Names compared, not ids: looking the kind
    /// up would cost a hash per message. Their addresses first: a dissector's static name is
    /// stored as that same `&'static str`, so most messages match without comparing bytes.
    fn has_evidence(&self, kind: &str, kinds: &EvidenceKinds) -> bool {
        let mut names = self.evidence.iter().map(|&id| kinds.name(id));
        names.clone().any(|name| core::ptr::eq(name, kind)) || names.any(|name| name == kind)
    }

    /// The `evidence` column's kinds, in the order first seen.
    pub fn evidence<'k>(&self, kinds: &'k EvidenceKinds) -> ArrayVec<&'k str, MAX_EVIDENCE> {
        self.evidence.iter().map(|&id| kinds.name(id)).collect()
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
        if self.txns.iter().any(|(d, t)| t == txn && d != dir) {
            self.skylark_answered = true;
        } else if !self.txns.iter().any(|p| p == (dir, txn)) {
            self.txns.push(dir, txn);
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
    out: FileSink,
    spool: OrderedSpool,
    row: CsvRow,
    /// Highest watermark released so far: rows are keyed no lower, so a flow whose start lies
    /// before it (the capture clock went backwards) is placed where it was seen.
    released: SpoolKey,
    rows: u64,
}

impl FlowsCsv {
    pub fn create(path: &Path) -> io::Result<FlowsCsv> {
        let mut out = FileSink::create(path)?;
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
        self.push_classified(
            rec,
            digits,
            &ClassCounts::default(),
            &EvidenceKinds::default(),
        )
    }

    /// Encodes `rec` with `digits` fractional digits of seconds and its messages' class
    /// counts (their evidence named in `kinds`), and queues it.
    pub fn push_classified(
        &mut self,
        rec: &FlowRecord,
        digits: u8,
        counts: &ClassCounts,
        kinds: &EvidenceKinds,
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
        row.joined(&counts.evidence(kinds), ";");
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

    /// Writes the remaining rows and waits until all are in the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.spool.finish(&mut self.out)?;
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_per_class_and_dominant_by_bytes() {
        let mut c = ClassCounts::default();
        let mut kinds = EvidenceKinds::default();
        assert_eq!(c.dominant(), None);
        c.add(
            Some(TrafficClass::Login),
            &"hc-probe".into(),
            40,
            &mut kinds,
        );
        c.add(Some(TrafficClass::Media), &"media".into(), 30, &mut kinds);
        c.add(Some(TrafficClass::Media), &"media".into(), 30, &mut kinds);
        c.add(None, &"dns-query".into(), 500, &mut kinds);
        assert_eq!(c.msgs, [1, 0, 0, 0, 2]);
        assert_eq!(c.bytes, [40, 0, 0, 0, 60]);
        assert_eq!(c.dominant(), Some(TrafficClass::Media));
        assert_eq!(
            c.evidence(&kinds).as_slice(),
            ["hc-probe", "media", "dns-query"]
        );
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
        assert!(usize::from(c.txns.len) <= MAX_PENDING_TXNS);
        c.add_skylark(Dir::Resp, Some(999));
        assert!(c.skylark_answered);
    }

    #[test]
    fn pending_transactions_forget_the_oldest_and_keep_directions() {
        let mut p = PendingTxns::default();
        for t in 1..=10 {
            p.push(if t % 3 == 0 { Dir::Resp } else { Dir::Orig }, t);
        }
        let expected: Vec<(Dir, u32)> = (3..=10)
            .map(|t| (if t % 3 == 0 { Dir::Resp } else { Dir::Orig }, t))
            .collect();
        assert_eq!(p.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn evidence_kinds_are_named_once_and_bounded() {
        let mut kinds = EvidenceKinds::default();
        let (mut a, mut b) = (ClassCounts::default(), ClassCounts::default());
        a.add(
            None,
            &"stun-binding-request".to_string().into(),
            1,
            &mut kinds,
        );
        b.add(None, &"stun-binding-request".into(), 1, &mut kinds);
        b.add(None, &"dns-query".into(), 1, &mut kinds);
        assert_eq!(kinds.names.len(), 2, "one name per distinct kind");
        assert_eq!(
            b.evidence(&kinds).as_slice(),
            ["stun-binding-request", "dns-query"]
        );
        for i in kinds.names.len()..MAX_EVIDENCE_KINDS + 10 {
            let _ = kinds.id(&i.to_string().into());
        }
        assert_eq!(kinds.names.len(), MAX_EVIDENCE_KINDS);
        let mut c = ClassCounts::default();
        c.add(None, &"new-kind".into(), 1, &mut kinds);
        c.add(None, &"dns-query".into(), 1, &mut kinds);
        assert_eq!(
            c.evidence(&kinds).as_slice(),
            ["dns-query"],
            "a new kind past the cap is left out"
        );
    }

    #[test]
    fn evidence_is_distinct_bounded_and_skips_long_kinds() {
        let mut c = ClassCounts::default();
        let mut kinds = EvidenceKinds::default();
        c.add(
            None,
            &"x".repeat(MAX_EVIDENCE_KIND_LEN + 1).into(),
            1,
            &mut kinds,
        );
        for k in ["a", "a", "b", "c", "d", "e"] {
            c.add(None, &k.to_string().into(), 1, &mut kinds);
        }
        assert_eq!(c.evidence(&kinds).as_slice(), ["a", "b", "c", "d"]);
        assert_eq!(c.dominant(), None);
    }

    #[test]
    fn a_kind_is_the_same_evidence_by_address_or_by_bytes() {
        let (mut c, mut kinds) = (ClassCounts::default(), EvidenceKinds::default());
        let name: &'static str = "nat-ping";
        c.add(None, &Cow::Borrowed(name), 1, &mut kinds);
        c.add(None, &Cow::Borrowed(name), 1, &mut kinds); // the same address
        c.add(None, &Cow::Owned(name.to_string()), 1, &mut kinds); // other bytes, equal
        c.add(None, &"nat-pong".into(), 1, &mut kinds);
        assert_eq!(c.evidence(&kinds).as_slice(), ["nat-ping", "nat-pong"]);
    }

    proptest! {
        #[test]
        fn dominant_has_the_most_bytes(ops in proptest::collection::vec((0usize..6, any::<u32>()), 0..50)) {
            let mut c = ClassCounts::default();
            let mut kinds = EvidenceKinds::default();
            for (i, len) in &ops {
                c.add(TrafficClass::ALL.get(*i).copied(), &"k".into(), *len, &mut kinds);
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
