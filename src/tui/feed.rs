//! The terminal UI's event stream: [`Feed`] is a [`FlowConsumer`] that classifies each
//! message (the same [`Classifier`] and [`Measurements`] the reports use), and forwards flow
//! records, classified messages, ended calls and snapshots of the report tables to the UI
//! thread in batches over a bounded channel.
//!
//! Guarantees: memory bounded (at most [`MAX_QUEUED_BATCHES`] batches of [`BATCH_LEN`] events
//! in flight; per-flow message counters capped by [`MAX_FLOW_COUNTERS`]). In blocking mode
//! (files) nothing is lost: the reader waits for the UI. In dropping mode (live capture) a
//! batch the UI has no room for is dropped and counted in [`Status::ui_dropped`], so capture
//! never waits for the screen. Must not: read clocks or touch the terminal.

use crate::classify::{Classifier, HomeSpec};
use crate::flow::{Dir, FlowRecord, Uid};
use crate::measure::Measurements;
use crate::measure::calls::{CallRecord, CallTracker};
use crate::pipeline::{FlowConsumer, MsgCtx};
use crate::report::csv_row::CsvRow;
use crate::time::Ts;
use dissectors::registry::{CallInfo, Message, TrafficClass};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Events per batch.
pub const BATCH_LEN: usize = 1024;
/// Batches queued between the analysis and the UI thread.
pub const MAX_QUEUED_BATCHES: usize = 64;
/// Messages between two snapshots of the report tables.
pub const SNAPSHOT_EVERY: u64 = 50_000;
/// Dropping mode (live): a batch is sent once this much capture time has passed since the
/// last one, so a quiet network still shows up promptly.
pub const FLUSH_EVERY_NS: i64 = 200_000_000;
/// Dropping mode (live): the report tables are snapshotted at least this often (capture
/// time).
pub const SNAPSHOT_EVERY_NS: i64 = 5_000_000_000;
/// Flows whose messages are numbered (index within the flow); beyond it indices restart.
pub const MAX_FLOW_COUNTERS: usize = 1 << 20;

/// Counters the capture side updates and the status bar shows (all relaxed atomics).
#[derive(Debug, Default)]
pub struct Status {
    /// Frames read (captured).
    pub packets: AtomicU64,
    /// Bytes of those frames on the wire.
    pub bytes: AtomicU64,
    /// Frames the kernel dropped (live capture).
    pub kernel_drops: AtomicU64,
    /// Frames dropped between capture and analysis (live capture's queue).
    pub queue_drops: AtomicU64,
    /// Events dropped because the UI was behind (dropping mode only).
    pub ui_dropped: AtomicU64,
    /// Set when the source has no more frames (end of file, capture stopped).
    pub finished: AtomicU64,
    /// Set by the UI when the user quits: the capture side should stop.
    pub stop: AtomicBool,
    /// Why reading stopped early (a damaged file, a capture error), shown by the UI.
    pub error: std::sync::Mutex<Option<String>>,
}

impl Status {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Records why the source stopped (the first reason is kept).
    pub fn set_error(&self, e: String) {
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
    }

    /// The recorded reason, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|g| g.clone())
    }
}

/// A flow as the UI shows it (from its record, when the flow ended).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRow {
    pub uid: Uid,
    pub proto: u8,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub start: Ts,
    pub end: Ts,
    /// Packets and bytes, originator then responder.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub service: Option<&'static str>,
    pub state: &'static str,
}

impl FlowRow {
    pub fn from_record(r: &FlowRecord) -> FlowRow {
        FlowRow {
            uid: r.uid,
            proto: r.proto,
            orig: SocketAddr::new(r.orig.addr.to_ip(), r.orig.port),
            resp: SocketAddr::new(r.resp.addr.to_ip(), r.resp.port),
            start: r.ts_start,
            end: r.ts_end,
            pkts: [r.stats[0].pkts, r.stats[1].pkts],
            bytes: [r.stats[0].bytes, r.stats[1].bytes],
            service: r.service,
            state: r.state(),
        }
    }
}

/// A classified message: enough to list it, draw it, and build a details reference.
#[derive(Clone, Debug, PartialEq)]
pub struct MsgRow {
    pub uid: Uid,
    pub ts: Ts,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The flow's (originator, responder).
    pub endpoints: (SocketAddr, SocketAddr),
    pub proto: u8,
    /// Registry protocol name (`skylark`, `stun`, …) and its message type.
    pub protocol: &'static str,
    pub msg_type: Cow<'static, str>,
    /// Canonical name (labels.csv's `msg_type`).
    pub kind: Cow<'static, str>,
    pub class: Option<TrafficClass>,
    /// To a home endpoint.
    pub home: bool,
    pub len: u32,
    pub call_id: Option<u64>,
    /// Media frame: sequence number and sampling timestamp.
    pub media: Option<(u16, u32)>,
    /// Position of the message within its flow (0-based).
    pub index_in_flow: usize,
}

/// A report table (the rows of one CSV report, as text).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses CSV text (header row first); malformed rows are skipped.
    pub fn from_csv(bytes: &[u8]) -> Table {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(bytes);
        let columns = r
            .headers()
            .map(|h| h.iter().map(str::to_string).collect())
            .unwrap_or_default();
        let rows = r
            .records()
            .filter_map(Result::ok)
            .map(|rec| rec.iter().map(str::to_string).collect())
            .collect();
        Table { columns, rows }
    }

    /// The index of a column by name.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Snapshots of the measurement reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tables {
    pub hosts: Table,
    pub phonehome: Table,
    pub keepalives: Table,
    pub lookups: Table,
    pub logins: Table,
}

/// One ended call: its calls.csv row and the record behind it.
#[derive(Clone, Debug)]
pub struct CallRow {
    pub fields: Vec<String>,
    pub record: CallRecord,
}

/// What flows from the analysis to the UI.
#[derive(Clone, Debug)]
pub enum Event {
    Flow(FlowRow),
    Msg(Box<MsgRow>),
    Call(Box<CallRow>),
    Tables(Box<Tables>),
    /// A phone-home contact starts (see [`crate::measure::phonehome`]).
    Contact {
        client: IpAddr,
        home: IpAddr,
        ts: Ts,
    },
    /// The source is exhausted; `first`/`last` frame times.
    Done {
        first: Option<Ts>,
        last: Option<Ts>,
    },
}

pub type Batch = Vec<Event>;

/// A bounded channel for batches.
pub fn channel() -> (SyncSender<Batch>, Receiver<Batch>) {
    sync_channel(MAX_QUEUED_BATCHES)
}

/// The [`FlowConsumer`] feeding the UI (Send: runs on the analysis thread).
pub struct Feed {
    tx: SyncSender<Batch>,
    buf: Batch,
    block: bool,
    status: Arc<Status>,
    classifier: Classifier,
    measure: Measurements,
    calls: CallTracker,
    digits: u8,
    since_snapshot: u64,
    first: Option<Ts>,
    last: Option<Ts>,
    index: rustc_hash::FxHashMap<Uid, usize>,
    row: CsvRow,
    /// Capture time of the last flush and of the last snapshot (dropping mode).
    flushed_at: Option<Ts>,
    snapshot_at: Option<Ts>,
}

impl Feed {
    /// A feed sending on `tx`; `block`: wait for the UI rather than drop (files).
    pub fn new(
        tx: SyncSender<Batch>,
        home: Vec<HomeSpec>,
        block: bool,
        status: Arc<Status>,
    ) -> Feed {
        Feed {
            tx,
            buf: Vec::with_capacity(BATCH_LEN),
            block,
            status,
            classifier: Classifier::new(home),
            measure: Measurements::default(),
            calls: CallTracker::new(),
            digits: 6,
            since_snapshot: 0,
            first: None,
            last: None,
            index: Default::default(),
            row: CsvRow::default(),
            flushed_at: None,
            snapshot_at: None,
        }
    }

    fn push(&mut self, e: Event) {
        self.buf.push(e);
        if self.buf.len() >= BATCH_LEN {
            self.flush();
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH_LEN));
        let n = batch.len() as u64;
        if self.block {
            // The UI is gone: nothing to deliver to, keep reading so stats stay right.
            let _ = self.tx.send(batch);
        } else if let Err(TrySendError::Full(_)) = self.tx.try_send(batch) {
            Status::add(&self.status.ui_dropped, n);
        }
    }

    /// Dropping mode: time-based snapshots and flushes, by capture time (live capture time
    /// follows the wall clock closely enough; no clock is read here).
    pub fn pace(&mut self, now: Ts) {
        if self
            .snapshot_at
            .is_none_or(|t| now.since(t) >= SNAPSHOT_EVERY_NS)
        {
            self.snapshot_at = Some(now);
            self.snapshot();
        }
        if self
            .flushed_at
            .is_none_or(|t| now.since(t) >= FLUSH_EVERY_NS)
        {
            self.flushed_at = Some(now);
            self.flush();
        }
    }

    /// Sends a snapshot of the report tables.
    pub fn snapshot(&mut self) {
        self.since_snapshot = 0;
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => b.since(a),
            _ => 0,
        };
        let t = tables(&self.measure, &self.classifier, span);
        self.push(Event::Tables(Box::new(t)));
    }

    /// Ends the stream: reports open calls, a last snapshot and `Done`, and flushes.
    pub fn finish(&mut self) {
        let mut ended = Vec::new();
        self.calls.finish(&mut |c| ended.push(c));
        for c in ended {
            self.call(c);
        }
        self.snapshot();
        let (first, last) = (self.first, self.last);
        self.push(Event::Done { first, last });
        self.flush();
    }

    fn call(&mut self, c: CallRecord) {
        let line = crate::report::calls_csv::render(&mut self.row, &c, self.digits);
        let t = Table::from_csv(
            &[
                CsvRow::header(crate::report::calls_csv::CALLS_COLUMNS).as_slice(),
                line,
            ]
            .concat(),
        );
        let fields = t.rows.into_iter().next().unwrap_or_default();
        self.push(Event::Call(Box::new(CallRow { fields, record: c })));
    }
}

/// The measurement reports rendered as tables.
/// `span_ns`: the time covered so far (for contacts per hour).
pub fn tables(m: &Measurements, classifier: &Classifier, span_ns: i64) -> Tables {
    let render = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut out = Vec::new();
        match f(&mut out) {
            Ok(()) => Table::from_csv(&out),
            Err(_) => Table::default(),
        }
    };
    let rows = m.phonehome_rows(span_ns, classifier);
    let phonehome = render(&|o| crate::measure::phonehome::write_csv(&rows, o));
    Tables {
        hosts: render(&|o| m.hosts.write_csv(o)),
        phonehome,
        keepalives: render(&|o| m.keepalives.write_csv(o)),
        lookups: render(&|o| crate::measure::lookups::write_csv(&m.lookups.rows(), o)),
        logins: render(&|o| crate::measure::logins::write_csv(&m.logins.rows(), o)),
    }
}

impl FlowConsumer for Feed {
    /// Live capture's wall-clock tick: what a quiet link left in the batch goes to the UI
    /// now, not when the next traffic arrives.
    fn flush(&mut self) {
        Feed::flush(self);
    }

    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        self.digits = self.digits.max(digits);
        self.index.remove(&record.uid);
        if self.first.is_none_or(|t| record.ts_start < t) {
            self.first = Some(record.ts_start);
        }
        if self.last.is_none_or(|t| record.ts_end > t) {
            self.last = Some(record.ts_end);
        }
        self.push(Event::Flow(FlowRow::from_record(record)));
        if !self.block {
            self.pace(record.ts_end);
        }
    }

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.digits = self.digits.max(ctx.digits);
        if self.first.is_none_or(|t| ctx.ts < t) {
            self.first = Some(ctx.ts);
        }
        if self.last.is_none_or(|t| ctx.ts > t) {
            self.last = Some(ctx.ts);
        }
        let c = self
            .measure
            .classify_and_observe(&mut self.classifier, ctx, msg);
        let mut ended = Vec::new();
        self.calls.message(ctx, msg, &mut |r| ended.push(r));
        for r in ended {
            self.call(r);
        }
        let full = self.index.len() >= MAX_FLOW_COUNTERS;
        let index_in_flow = match self.index.get_mut(&ctx.uid) {
            Some(i) => {
                *i += 1;
                *i
            }
            None => {
                if full {
                    self.index.clear();
                }
                self.index.insert(ctx.uid, 0);
                0
            }
        };
        let endpoints = match ctx.dir {
            Dir::Orig => (ctx.src, ctx.dst),
            Dir::Resp => (ctx.dst, ctx.src),
        };
        let media = match &msg.call {
            Some(CallInfo::Media { seq, timestamp }) => Some((*seq, *timestamp)),
            _ => None,
        };
        self.push(Event::Msg(Box::new(MsgRow {
            uid: ctx.uid,
            ts: ctx.ts,
            src: ctx.src,
            dst: ctx.dst,
            endpoints,
            proto: ctx.proto,
            protocol: msg.protocol,
            msg_type: msg.msg_type.clone(),
            kind: c.kind,
            class: c.class,
            home: c.home,
            len: msg.len,
            call_id: msg.call_id,
            media,
            index_in_flow,
        })));
        self.since_snapshot += 1;
        if self.since_snapshot >= SNAPSHOT_EVERY {
            self.snapshot();
        }
        if !self.block {
            self.pace(ctx.ts);
        }
    }

    fn packet(&mut self, ctx: &MsgCtx, payload: u32) {
        if let Some((client, home)) = self.measure.packet_uncached(&self.classifier, ctx, payload) {
            self.push(Event::Contact {
                client,
                home,
                ts: ctx.ts,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Dir;

    fn ctx(uid: u64, ts: i64) -> MsgCtx {
        MsgCtx::new(
            Uid(uid),
            0,
            Dir::Orig,
            Ts(ts),
            (
                "10.0.0.5:4000".parse().unwrap(),
                "10.0.0.9:5000".parse().unwrap(),
                Dir::Orig,
            ),
            17,
            6,
        )
    }

    fn voice() -> Message {
        Message {
            protocol: "skylark",
            msg_type: Cow::Borrowed("voice"),
            type_code: dissectors::skylark::MsgType::Voice.type_code(),
            txn_id: None,
            call_id: Some(7),
            len: 80,
            status: dissectors::registry::Status::Complete,
            class: Some(TrafficClass::Media),
            detail: None,
            call: Some(CallInfo::Media {
                seq: 1,
                timestamp: 160,
            }),
        }
    }

    #[test]
    fn dropping_mode_counts_what_the_ui_had_no_room_for() {
        let (tx, rx) = channel();
        let status = Arc::new(Status::default());
        let mut feed = Feed::new(tx, Vec::new(), false, status.clone());
        let n = BATCH_LEN * (MAX_QUEUED_BATCHES + 3);
        for i in 0..n {
            feed.message(&ctx(1, i as i64), &voice());
        }
        feed.flush();
        let received: usize = rx.try_iter().map(|b| b.len()).sum();
        let dropped = Status::get(&status.ui_dropped) as usize;
        assert!(dropped >= 3 * BATCH_LEN, "{dropped}");
        // Every message, plus the table snapshots taken along the way (one at the start).
        assert_eq!(received + dropped, n + n / SNAPSHOT_EVERY as usize + 1);
    }

    #[test]
    fn dropping_mode_sends_a_batch_every_200ms_of_capture_time() {
        let (tx, rx) = channel();
        let mut feed = Feed::new(tx, Vec::new(), false, Arc::new(Status::default()));
        feed.message(&ctx(1, 0), &voice());
        assert_eq!(rx.try_iter().count(), 1, "the first message goes at once");
        feed.message(&ctx(1, 100_000_000), &voice());
        assert_eq!(rx.try_iter().count(), 0);
        feed.message(&ctx(1, 250_000_000), &voice());
        let got: Vec<Batch> = rx.try_iter().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 2);
    }

    #[test]
    fn the_live_tick_sends_what_a_quiet_link_left_buffered() {
        let (tx, rx) = channel();
        let mut feed = Feed::new(tx, Vec::new(), false, Arc::new(Status::default()));
        feed.message(&ctx(1, 0), &voice());
        feed.message(&ctx(1, 100_000_000), &voice());
        assert_eq!(
            rx.try_iter().count(),
            1,
            "the second waits for 200 ms of traffic"
        );
        FlowConsumer::flush(&mut feed);
        let got: Vec<Batch> = rx.try_iter().collect();
        assert_eq!((got.len(), got[0].len()), (1, 1));
        FlowConsumer::flush(&mut feed);
        assert_eq!(rx.try_iter().count(), 0, "nothing buffered, nothing sent");
    }

    #[test]
    fn messages_are_numbered_within_their_flow_and_classified() {
        let (tx, rx) = channel();
        let mut feed = Feed::new(tx, Vec::new(), true, Arc::new(Status::default()));
        for i in 0..3 {
            feed.message(&ctx(1, i), &voice());
        }
        feed.message(&ctx(2, 5), &voice());
        feed.finish();
        let events: Vec<Event> = rx.try_iter().flatten().collect();
        let idx: Vec<(u64, usize)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Msg(m) => Some((m.uid.0, m.index_in_flow)),
                _ => None,
            })
            .collect();
        assert_eq!(idx, vec![(1, 0), (1, 1), (1, 2), (2, 0)]);
        assert!(events.iter().any(|e| matches!(e, Event::Tables(_))));
        assert!(matches!(events.last(), Some(Event::Done { .. })));
        let Some(Event::Msg(m)) = events.first() else {
            panic!()
        };
        assert_eq!(m.class, Some(TrafficClass::Media));
        assert_eq!(m.media, Some((1, 160)));
        assert_eq!(m.endpoints.0, m.src);
    }
}
