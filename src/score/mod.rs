//! Scoring: joins the analyzer's classified messages with ground-truth labels (labels.csv of
//! `p2ptrace sim`, `lab` or `peer`) and measures the classification (docs/score.md).
//!
//! The join is a streaming symmetric hash join. Labels are read in file order, just far
//! enough ahead of the newest message (its time plus the tolerance); each side waits in a
//! pending table keyed by (transport, sender, receiver, kind) until a partner on the other
//! side arrives with equal transaction/call ids (where both have one) and a timestamp within
//! the tolerance — the earliest candidate wins (pairs in sending order). An entry older than
//! [`HORIZON_NS`] behind both sides' newest time, or beyond [`MAX_PENDING`] per side, leaves
//! unmatched. So memory is bounded by the traffic of one horizon (capped), never by the
//! capture or label file's length.
//!
//! Guarantees: deterministic (pending tables are only looked up by key, and expired in
//! arrival order), never panics on any input. It must not change what the analyzer
//! decides: it only observes [`Classified`] verdicts.

use crate::classify::Classified;
use crate::time::Ts;
use dissectors::registry::{CallInfo, Message, TrafficClass};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

mod labels;
pub use labels::{LabelError, LabelReader};

/// How long an unmatched entry waits for its partner behind the newest time of both sides
/// (late TCP messages are delivered when their stream is repaired or ends).
pub const HORIZON_NS: i64 = 120 * Ts::NANOS_PER_SEC;
/// How much later than its label a TCP message may be decoded: a lost segment delays
/// in-order delivery until its retransmission (labels carry the first transmission's time).
pub const TCP_LATE_NS: i64 = 30 * Ts::NANOS_PER_SEC;
/// Pending entries per side at most; beyond it the oldest leaves unmatched.
pub const MAX_PENDING: usize = 1 << 20;
/// Distinct mismatch groups tracked (beyond: counted in one `other` group).
pub const MAX_MISMATCH_GROUPS: usize = 4096;
/// Mismatch rows in the report.
pub const WORST_ROWS: usize = 10;

/// One ground-truth row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub ts: Ts,
    /// IP protocol: 6 TCP, 17 UDP.
    pub proto: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub kind: String,
    pub class: TrafficClass,
    pub home: bool,
    pub txn_id: Option<u64>,
    pub call_id: Option<u64>,
}

/// One analyzer message, as the join sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub ts: Ts,
    pub proto: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// See [`Observed::txn_id_of`].
    pub txn_id: Option<u64>,
    pub call_id: Option<u64>,
    pub verdict: Classified,
}

impl Observed {
    /// The `txn_id` a message joins on, as its label has it
    /// ([`crate::peer::truth::skylark_txn_id`]): the transaction id, or a media frame's
    /// sequence number.
    pub fn txn_id_of(msg: &Message) -> Option<u64> {
        match msg.call {
            Some(CallInfo::Media { seq, .. }) => Some(u64::from(seq)),
            _ => msg.txn_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    src: SocketAddr,
    dst: SocketAddr,
    kind: String,
}

fn ids_agree(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Entries waiting for a partner, per key sorted by time.
struct Pending<T> {
    by_key: FxHashMap<Key, VecDeque<(u64, Ts, T)>>,
    /// Arrival order, for expiry: (time, key, sequence number).
    order: VecDeque<(Ts, Key, u64)>,
    seq: u64,
}

impl<T> Pending<T> {
    fn new() -> Self {
        Pending {
            by_key: FxHashMap::default(),
            order: VecDeque::new(),
            seq: 0,
        }
    }

    fn insert(&mut self, key: Key, ts: Ts, item: T) {
        self.seq += 1;
        let bucket = self.by_key.entry(key.clone()).or_default();
        // Usually in time order: insert after every entry not later than `ts`.
        let at = bucket.partition_point(|e| e.1 <= ts);
        bucket.insert(at, (self.seq, ts, item));
        self.order.push_back((ts, key, self.seq));
    }

    /// Removes and returns the entry under `key` that pairs with time `ts`: the earliest of
    /// those that `fits` with a time in `[ts - before, ts + after]`. Earliest, not nearest:
    /// both sides of a key are one sender's messages in sending order, so pairing in order
    /// survives a delay longer than their spacing, where nearest-wins would take a later
    /// partner and leave two entries unmatched.
    fn take(
        &mut self,
        key: &Key,
        ts: Ts,
        (before, after): (i64, i64),
        fits: impl Fn(&T) -> bool,
    ) -> Option<T> {
        let bucket = self.by_key.get_mut(key)?;
        let t = ts.as_nanos();
        let lo = bucket.partition_point(|e| e.1.as_nanos() < t.saturating_sub(before));
        let hi = t.saturating_add(after);
        let i = lo
            + bucket
                .iter()
                .skip(lo)
                .take_while(|e| e.1.as_nanos() <= hi)
                .position(|e| fits(&e.2))?;
        let item = bucket.remove(i).map(|e| e.2);
        if bucket.is_empty() {
            self.by_key.remove(key);
        }
        item
    }

    /// Pops entries older than `before` (or beyond the cap), still unmatched, in arrival order.
    fn expire(&mut self, before: Option<Ts>, out: &mut impl FnMut(T)) {
        while let Some((ts, _, _)) = self.order.front() {
            let old = before.is_none_or(|b| *ts < b);
            if !old && self.order.len() <= MAX_PENDING {
                break;
            }
            let Some((_, key, seq)) = self.order.pop_front() else {
                break;
            };
            if let Some(bucket) = self.by_key.get_mut(&key) {
                if let Some(i) = bucket.iter().position(|e| e.0 == seq) {
                    if let Some((_, _, item)) = bucket.remove(i) {
                        out(item);
                    }
                }
                if bucket.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// One cell of the mismatch table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MismatchKey {
    kind: String,
    label: String,
    analyzer: String,
}

#[derive(Clone, Debug)]
struct MismatchRow {
    count: u64,
    first_ts: Ts,
    src: SocketAddr,
    dst: SocketAddr,
}

/// Per-class counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts {
    /// Labels of this class matched to a message of this class.
    pub true_pos: u64,
    /// Labels of this class.
    pub support: u64,
    /// Analyzer messages of this class (matched, or unmatched overlay messages).
    pub predicted: u64,
}

impl ClassCounts {
    /// `true_pos / predicted` (0 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio(self.true_pos, self.predicted)
    }
    /// `true_pos / support` (0 without support).
    pub fn recall(&self) -> f64 {
        ratio(self.true_pos, self.support)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The column/row names of the confusion matrix.
pub const CLASSES: [&str; 5] = ["login", "lookup", "signalling", "keepalive", "media"];

fn class_name(c: Option<TrafficClass>) -> &'static str {
    c.map_or("none", TrafficClass::as_str)
}

/// The measurements.
#[derive(Debug, Default)]
pub struct Tally {
    pub labels: u64,
    pub matched: u64,
    /// Overlay (classified) analyzer messages with no label.
    pub unlabelled: u64,
    /// (label class or `unlabelled`, analyzer class or `none` / `unmatched`) → count.
    pub confusion: BTreeMap<(String, String), u64>,
    pub classes: BTreeMap<&'static str, ClassCounts>,
    /// The `home` flag as a binary class.
    pub home: ClassCounts,
    /// How far each matched message's time is from its label's.
    pub offsets: Offsets,
    mismatches: BTreeMap<MismatchKey, MismatchRow>,
    mismatch_overflow: u64,
}

/// The time offsets of matched pairs (message time minus label time): the distribution of
/// their size, to set `--tolerance-ms` by, and how many messages came before their label
/// (a clock ahead of the labeller's).
#[derive(Debug, Default)]
pub struct Offsets {
    /// Microseconds of |offset|, 3 significant digits; created at the first pair.
    hist: Option<hdrhistogram::Histogram<u64>>,
    /// The largest |offset| in µs, exact.
    max_us: u64,
    pub message_first: u64,
}

/// Largest offset recorded (1 h 1 min, in µs): the widest tolerance plus TCP lateness.
const MAX_OFFSET_US: u64 = 3_660_000_000;

impl Offsets {
    fn record(&mut self, offset_ns: i64) {
        if offset_ns < 0 {
            self.message_first += 1;
        }
        let us = (offset_ns.unsigned_abs() / 1000).min(MAX_OFFSET_US);
        self.max_us = self.max_us.max(us);
        if self.hist.is_none() {
            self.hist = hdrhistogram::Histogram::new_with_max(MAX_OFFSET_US, 3).ok();
        }
        if let Some(h) = &mut self.hist {
            let _ = h.record(us);
        }
    }

    /// (median, p99, max) of |offset| in milliseconds; `None` before the first pair.
    pub fn summary_ms(&self) -> Option<(f64, f64, f64)> {
        Some((
            self.quantile_ms(0.5)?,
            self.quantile_ms(0.99)?,
            self.max_ms()?,
        ))
    }

    /// |offset| at quantile `q` (0 to 1) in milliseconds (within 0.1 %); `None` before the
    /// first pair.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let h = self.hist.as_ref().filter(|h| !h.is_empty())?;
        Some(h.lowest_equivalent(h.value_at_quantile(q)) as f64 / 1000.0)
    }

    /// The largest |offset| in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        self.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|_| self.max_us as f64 / 1000.0)
    }
}

impl Tally {
    fn class_mut(&mut self, c: TrafficClass) -> &mut ClassCounts {
        self.classes.entry(c.as_str()).or_default()
    }

    fn mismatch(&mut self, key: MismatchKey, ts: Ts, src: SocketAddr, dst: SocketAddr) {
        if let Some(row) = self.mismatches.get_mut(&key) {
            row.count += 1;
        } else if self.mismatches.len() < MAX_MISMATCH_GROUPS {
            self.mismatches.insert(
                key,
                MismatchRow {
                    count: 1,
                    first_ts: ts,
                    src,
                    dst,
                },
            );
        } else {
            self.mismatch_overflow += 1;
        }
    }

    fn pair(&mut self, l: &Label, m: &Observed) {
        self.matched += 1;
        self.offsets
            .record(m.ts.as_nanos().saturating_sub(l.ts.as_nanos()));
        let got = m.verdict.class;
        *self
            .confusion
            .entry((l.class.as_str().into(), class_name(got).into()))
            .or_default() += 1;
        if got == Some(l.class) {
            self.class_mut(l.class).true_pos += 1;
        } else {
            self.mismatch(
                MismatchKey {
                    kind: l.kind.clone(),
                    label: l.class.as_str().into(),
                    analyzer: class_name(got).into(),
                },
                l.ts,
                l.src,
                l.dst,
            );
        }
        if let Some(c) = got {
            self.class_mut(c).predicted += 1;
        }
        if l.home && m.verdict.home {
            self.home.true_pos += 1;
        }
        if m.verdict.home {
            self.home.predicted += 1;
        }
        if l.home != m.verdict.home {
            self.mismatch(
                MismatchKey {
                    kind: l.kind.clone(),
                    label: format!("home={}", l.home),
                    analyzer: format!("home={}", m.verdict.home),
                },
                l.ts,
                l.src,
                l.dst,
            );
        }
    }

    fn label_seen(&mut self, l: &Label) {
        self.labels += 1;
        self.class_mut(l.class).support += 1;
        if l.home {
            self.home.support += 1;
        }
    }

    fn unmatched_label(&mut self, l: &Label) {
        *self
            .confusion
            .entry((l.class.as_str().into(), "unmatched".into()))
            .or_default() += 1;
        self.mismatch(
            MismatchKey {
                kind: l.kind.clone(),
                label: l.class.as_str().into(),
                analyzer: "unmatched".into(),
            },
            l.ts,
            l.src,
            l.dst,
        );
    }

    fn unmatched_message(&mut self, m: &Observed) {
        // Traffic with no role in the overlay is not a false positive.
        let Some(c) = m.verdict.class else {
            return;
        };
        self.unlabelled += 1;
        self.class_mut(c).predicted += 1;
        if m.verdict.home {
            self.home.predicted += 1;
        }
        *self
            .confusion
            .entry(("unlabelled".into(), c.as_str().into()))
            .or_default() += 1;
        self.mismatch(
            MismatchKey {
                kind: m.verdict.kind.to_string(),
                label: "unlabelled".into(),
                analyzer: c.as_str().into(),
            },
            m.ts,
            m.src,
            m.dst,
        );
    }

    /// The worst mismatch groups, most frequent first: (kind, label, analyzer, count,
    /// first time, sender, receiver).
    pub fn worst(&self) -> Vec<(&str, &str, &str, u64, Ts, SocketAddr, SocketAddr)> {
        let mut v: Vec<_> = self
            .mismatches
            .iter()
            .map(|(k, r)| {
                (
                    k.kind.as_str(),
                    k.label.as_str(),
                    k.analyzer.as_str(),
                    r.count,
                    r.first_ts,
                    r.src,
                    r.dst,
                )
            })
            .collect();
        v.sort_by(|a, b| b.3.cmp(&a.3).then(a.4.cmp(&b.4)));
        v.truncate(WORST_ROWS);
        v
    }

    /// Mismatches beyond the tracked groups.
    pub fn mismatch_overflow(&self) -> u64 {
        self.mismatch_overflow
    }
}

/// The streaming join (see the module doc).
pub struct Join {
    tol: i64,
    labels: Pending<Label>,
    msgs: Pending<Observed>,
    label_wm: Option<Ts>,
    msg_wm: Option<Ts>,
    pub tally: Tally,
}

impl Join {
    /// `tolerance_ns`: the largest time difference of a matched pair.
    pub fn new(tolerance_ns: i64) -> Join {
        Join {
            tol: tolerance_ns.max(0),
            labels: Pending::new(),
            msgs: Pending::new(),
            label_wm: None,
            msg_wm: None,
            tally: Tally::default(),
        }
    }

    /// Labels up to this time can still pair with the next message: read them first.
    pub fn read_labels_until(&self, msg_ts: Ts) -> Ts {
        msg_ts.add_nanos(self.tol)
    }

    pub fn label(&mut self, l: Label) {
        self.tally.label_seen(&l);
        self.label_wm = Some(self.label_wm.map_or(l.ts, |w| w.max(l.ts)));
        let key = Key {
            proto: l.proto,
            src: l.src,
            dst: l.dst,
            kind: l.kind.clone(),
        };
        let late = if l.proto == 6 { TCP_LATE_NS } else { 0 };
        let window = (self.tol, self.tol.saturating_add(late));
        let found = self.msgs.take(&key, l.ts, window, |m| {
            ids_agree(l.txn_id, m.txn_id) && ids_agree(l.call_id, m.call_id)
        });
        match found {
            Some(m) => self.tally.pair(&l, &m),
            None => self.labels.insert(key, l.ts, l),
        }
        self.expire();
    }

    pub fn message(&mut self, m: Observed) {
        self.msg_wm = Some(self.msg_wm.map_or(m.ts, |w| w.max(m.ts)));
        let key = Key {
            proto: m.proto,
            src: m.src,
            dst: m.dst,
            kind: m.verdict.kind.to_string(),
        };
        let late = if m.proto == 6 { TCP_LATE_NS } else { 0 };
        let window = (self.tol.saturating_add(late), self.tol);
        let found = self.labels.take(&key, m.ts, window, |l| {
            ids_agree(l.txn_id, m.txn_id) && ids_agree(l.call_id, m.call_id)
        });
        match found {
            Some(l) => self.tally.pair(&l, &m),
            None => self.msgs.insert(key, m.ts, m),
        }
        self.expire();
    }

    fn expire(&mut self) {
        let (Some(a), Some(b)) = (self.label_wm, self.msg_wm) else {
            // One side has not started: only the caps apply.
            self.expire_before(Some(Ts(i64::MIN)));
            return;
        };
        let before = a.min(b).add_nanos(-HORIZON_NS);
        self.expire_before(Some(before));
    }

    fn expire_before(&mut self, before: Option<Ts>) {
        let tally = &mut self.tally;
        self.labels
            .expire(before, &mut |l| tally.unmatched_label(&l));
        self.msgs
            .expire(before, &mut |m| tally.unmatched_message(&m));
    }

    /// Both inputs ended: everything still pending is unmatched.
    pub fn finish(mut self) -> Tally {
        self.expire_before(None);
        self.tally
    }
}

/// Parses `SECS[.FRACTION]` (up to 9 fractional digits) into a timestamp.
pub fn parse_ts(s: &str) -> Option<Ts> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for i in 0..9 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        nanos = nanos * 10 + d;
    }
    secs.checked_mul(Ts::NANOS_PER_SEC)?
        .checked_add(nanos)
        .map(Ts)
}

/// Opens a plain or gzip-compressed file (by its magic bytes).
pub fn open_maybe_gz(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    })
}

fn fmt_addr(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
    }
}

/// The report as text.
pub fn render_text(t: &Tally, capture: &str) -> String {
    let mut s = String::new();
    let pct = |a: u64, b: u64| 100.0 * ratio(a, b);
    let _ = writeln!(
        s,
        "labels      {} (capture point {})",
        t.labels,
        if capture.is_empty() { "-" } else { capture }
    );
    let _ = writeln!(
        s,
        "matched     {} ({:.2}%)",
        t.matched,
        pct(t.matched, t.labels)
    );
    let _ = writeln!(
        s,
        "unlabelled  {} overlay messages without a label",
        t.unlabelled
    );
    let o = &t.offsets;
    if let Some((p50, p99, max)) = o.summary_ms() {
        let _ = writeln!(
            s,
            "offsets     |message - label| median {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms; \
             {} messages before their label",
            o.message_first
        );
    }
    let _ = writeln!(s, "\nconfusion (rows: labels, columns: analyzer)");
    let cols: Vec<&str> = CLASSES
        .iter()
        .copied()
        .chain(["none", "unmatched"])
        .collect();
    let _ = write!(s, "{:<12}", "");
    for c in &cols {
        let _ = write!(s, "{c:>11}");
    }
    s.push('\n');
    for row in CLASSES.iter().copied().chain(["unlabelled"]) {
        let _ = write!(s, "{row:<12}");
        for c in &cols {
            let n = t
                .confusion
                .get(&(row.to_string(), c.to_string()))
                .copied()
                .unwrap_or(0);
            let _ = write!(s, "{n:>11}");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\n{:<12}{:>10}{:>10}{:>10}",
        "class", "precision", "recall", "support"
    );
    for c in CLASSES {
        let k = t.classes.get(c).copied().unwrap_or_default();
        let _ = writeln!(
            s,
            "{c:<12}{:>10.4}{:>10.4}{:>10}",
            k.precision(),
            k.recall(),
            k.support
        );
    }
    let h = t.home;
    let _ = writeln!(
        s,
        "{:<12}{:>10.4}{:>10.4}{:>10}",
        "home",
        h.precision(),
        h.recall(),
        h.support
    );
    let worst = t.worst();
    s.push_str("\nworst mismatches\n");
    if worst.is_empty() {
        s.push_str("  none\n");
    } else {
        let _ = writeln!(
            s,
            "{:>8}  {:<24}{:<12}{:<12}{:<22}example",
            "count", "kind", "label", "analyzer", "first at"
        );
        for (kind, label, analyzer, n, ts, src, dst) in worst {
            let _ = writeln!(
                s,
                "{n:>8}  {kind:<24}{label:<12}{analyzer:<12}{:<22}{} -> {}",
                ts.display(9).to_string(),
                fmt_addr(src),
                fmt_addr(dst)
            );
        }
        if t.mismatch_overflow > 0 {
            let _ = writeln!(s, "  (+{} in untracked groups)", t.mismatch_overflow);
        }
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `{"p50": …, "p99": …, "max": …, "message_first": N}` (ms), or `null` without pairs.
fn offsets_json(o: &Offsets) -> String {
    match o.summary_ms() {
        Some((p50, p99, max)) => format!(
            "{{\"p50\": {p50:.3}, \"p99\": {p99:.3}, \"max\": {max:.3}, \"message_first\": {}}}",
            o.message_first
        ),
        None => "null".into(),
    }
}

/// The report as one JSON object (docs/score.md).
pub fn render_json(t: &Tally, capture: &str) -> String {
    let mut s = format!(
        "{{\"matched\": {}, \"labels\": {}, \"classes\": {{",
        t.matched, t.labels
    );
    let mut first = true;
    for c in CLASSES {
        let Some(k) = t.classes.get(c).copied() else {
            continue;
        };
        if !first {
            s.push_str(", ");
        }
        first = false;
        let _ = write!(
            s,
            "\"{c}\": {{\"precision\": {:.6}, \"recall\": {:.6}, \"support\": {}}}",
            k.precision(),
            k.recall(),
            k.support
        );
    }
    let h = t.home;
    let _ = write!(
        s,
        "}}, \"home\": {{\"precision\": {:.6}, \"recall\": {:.6}, \"support\": {}}}, \
         \"unlabelled\": {}, \"capture\": {}, \"offsets_ms\": {}, \"mismatches\": [",
        h.precision(),
        h.recall(),
        h.support,
        t.unlabelled,
        json_str(capture),
        offsets_json(&t.offsets)
    );
    for (i, (kind, label, analyzer, n, ts, src, dst)) in t.worst().into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(
            s,
            "{{\"kind\": {}, \"label\": {}, \"analyzer\": {}, \"count\": {n}, \"first_ts\": \"{}\", \
             \"src\": \"{}\", \"dst\": \"{}\"}}",
            json_str(kind),
            json_str(label),
            json_str(analyzer),
            ts.display(9),
            fmt_addr(src),
            fmt_addr(dst)
        );
    }
    s.push_str("]}\n");
    s
}

#[cfg(test)]
mod tests;
