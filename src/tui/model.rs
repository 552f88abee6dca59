//! The UI's model: flows, messages, calls and report tables accumulated from the [`Feed`]'s
//! events, plus the few distributions the views draw (phone-home contacts, keepalive
//! intervals, per-call packets, jitter and loss per second).
//!
//! Guarantees: every collection is bounded by a `MAX_*` constant; what does not fit is
//! counted (`msgs_dropped`, `flows_dropped`), never a reason to stop. Must not: know about
//! terminals or view state.
//!
//! [`Feed`]: super::feed::Feed

use super::feed::{CallRow, Event, FlowRow, MsgRow, Tables};
use crate::flow::Uid;
use crate::measure::calls::RtpStats;
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

/// Messages kept (about 176 bytes each).
pub const MAX_MESSAGES: usize = 1 << 20;
/// Flows kept.
pub const MAX_FLOWS: usize = 1 << 20;
/// Ended calls kept.
pub const MAX_CALLS: usize = 4096;
/// Seconds of per-call series (packets, jitter, loss) kept per call.
pub const MAX_SERIES_SECS: usize = 3600;
/// Media senders tracked per call series.
pub const MAX_SERIES_SENDERS: usize = 8;
/// Client–home pairs whose contact times are kept, and contacts kept per pair.
pub const MAX_HOME_PAIRS: usize = 4096;
pub const MAX_CONTACTS_PER_PAIR: usize = 10_000;
/// Keepalive intervals kept (all pairs together), and pairs tracked.
pub const MAX_KEEPALIVE_INTERVALS: usize = 100_000;
pub const MAX_KEEPALIVE_PAIRS: usize = 20_000;
/// Messages per block of the time index (each block records its earliest and latest time,
/// so the timeline skips blocks outside its window).
pub const TIME_BLOCK: usize = 4096;
/// Hosts given a timeline lane.
pub const MAX_HOSTS: usize = 4096;

/// A message as kept for the views: [`MsgRow`] without what the flow already knows (its
/// endpoints) or what only the call series needs (media fields) — about 170 bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub uid: Uid,
    pub ts: Ts,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub proto: u8,
    pub protocol: &'static str,
    pub msg_type: std::borrow::Cow<'static, str>,
    pub kind: std::borrow::Cow<'static, str>,
    pub class: Option<TrafficClass>,
    pub home: bool,
    pub len: u32,
    pub call_id: Option<u64>,
    pub index_in_flow: u32,
}

/// A flow: from its first message or its record, whichever comes first.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    pub uid: Uid,
    pub proto: u8,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub start: Ts,
    pub end: Ts,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub service: Option<&'static str>,
    pub state: &'static str,
    /// The flow's record arrived (it ended).
    pub ended: bool,
    /// Indices into [`Model::msgs`], in arrival order.
    pub msgs: Vec<u32>,
    pub class_counts: [u32; 5],
    /// A message went to a home endpoint.
    pub home: bool,
}

impl FlowEntry {
    /// The class with most messages.
    pub fn class(&self) -> Option<TrafficClass> {
        let (i, n) = self
            .class_counts
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, usize::MAX - *i))?;
        if *n == 0 {
            return None;
        }
        TrafficClass::ALL.get(i).copied()
    }

    pub fn proto_name(&self) -> &'static str {
        crate::flow::proto_name(self.proto)
    }
}

/// Per-second packets, jitter and loss of one call's media.
#[derive(Clone, Debug, Default)]
pub struct CallSeries {
    pub start: Ts,
    pub pkts: Vec<u32>,
    /// Worst sender's jitter (ms) at the end of each second.
    pub jitter_ms: Vec<f32>,
    /// Cumulative lost frames (all senders) at the end of each second.
    pub lost: Vec<u64>,
    /// Per (sender, receiver): a relay forwards both directions from one address.
    senders: Vec<((SocketAddr, SocketAddr), RtpStats)>,
}

impl CallSeries {
    fn frame(&mut self, at: Ts, from: (SocketAddr, SocketAddr), seq: u16, timestamp: u32) {
        if self.pkts.is_empty() {
            self.start = at;
        }
        let Ok(sec) = usize::try_from(at.since(self.start) / Ts::NANOS_PER_SEC) else {
            return;
        };
        if sec >= MAX_SERIES_SECS {
            return;
        }
        let pos = self.senders.iter().position(|(a, _)| *a == from);
        let pos = match pos {
            Some(p) => p,
            None if self.senders.len() < MAX_SERIES_SENDERS => {
                self.senders.push((from, RtpStats::default()));
                self.senders.len() - 1
            }
            None => return,
        };
        if let Some((_, s)) = self.senders.get_mut(pos) {
            s.update(at, seq, timestamp);
        }
        let jitter = self
            .senders
            .iter()
            .map(|(_, s)| s.jitter_ms())
            .fold(0.0f64, f64::max) as f32;
        let lost: u64 = self
            .senders
            .iter()
            .map(|(_, s)| s.lost().max(0) as u64)
            .sum();
        while self.pkts.len() <= sec {
            let (j, l) = (
                self.jitter_ms.last().copied().unwrap_or(0.0),
                self.lost.last().copied().unwrap_or(0),
            );
            self.pkts.push(0);
            self.jitter_ms.push(j);
            self.lost.push(l);
        }
        if let Some(p) = self.pkts.get_mut(sec) {
            *p += 1;
        }
        if let Some(j) = self.jitter_ms.get_mut(sec) {
            *j = jitter;
        }
        if let Some(l) = self.lost.get_mut(sec) {
            *l = lost;
        }
    }

    /// Frames lost in each second.
    pub fn lost_per_sec(&self) -> Vec<u64> {
        let mut prev = 0;
        self.lost
            .iter()
            .map(|&l| {
                let d = l.saturating_sub(prev);
                prev = l;
                d
            })
            .collect()
    }
}

/// Everything the views show.
#[derive(Default)]
pub struct Model {
    pub flows: Vec<FlowEntry>,
    flow_index: FxHashMap<Uid, usize>,
    pub msgs: Vec<Msg>,
    /// (earliest, latest) time of each [`TIME_BLOCK`] messages of `msgs`.
    pub blocks: Vec<(Ts, Ts)>,
    pub msgs_dropped: u64,
    pub flows_dropped: u64,
    pub calls: Vec<CallRow>,
    pub calls_dropped: u64,
    pub series: FxHashMap<u64, CallSeries>,
    pub tables: Tables,
    /// Role per host address, from the hosts table.
    pub roles: FxHashMap<IpAddr, String>,
    /// Hosts seen in messages, in first-seen order.
    pub hosts: Vec<IpAddr>,
    host_set: FxHashMap<IpAddr, usize>,
    /// Contact start times per (client, home), as the phone-home report counts them.
    pub contacts: FxHashMap<(IpAddr, IpAddr), Vec<Ts>>,
    /// Intervals between consecutive keepalives of a client–super-node pair (seconds).
    pub keepalive_intervals: Vec<f64>,
    last_keepalive: FxHashMap<(IpAddr, IpAddr), Ts>,
    pub first: Option<Ts>,
    pub last: Option<Ts>,
    pub done: bool,
    /// Bumped on every change (views cache on it).
    pub version: u64,
    /// Timestamp precision to print with.
    pub digits: u8,
}

impl Model {
    pub fn new() -> Model {
        Model {
            digits: 6,
            ..Model::default()
        }
    }

    /// Applies one batch of events.
    pub fn apply(&mut self, batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        self.version += 1;
        for e in batch {
            match e {
                Event::Flow(f) => self.flow(f),
                Event::Msg(m) => self.msg(*m),
                Event::Call(c) => {
                    if self.calls.len() < MAX_CALLS {
                        self.calls.push(*c);
                    } else {
                        self.calls_dropped += 1;
                    }
                }
                Event::Tables(t) => self.set_tables(*t),
                Event::Contact { client, home, ts } => self.contact(client, home, ts),
                Event::Done { first, last } => {
                    self.done = true;
                    if let Some(f) = first {
                        self.see(f);
                    }
                    if let Some(l) = last {
                        self.see(l);
                    }
                }
            }
        }
    }

    fn see(&mut self, t: Ts) {
        if self.first.is_none_or(|f| t < f) {
            self.first = Some(t);
        }
        if self.last.is_none_or(|l| t > l) {
            self.last = Some(t);
        }
    }

    fn set_tables(&mut self, t: Tables) {
        self.roles.clear();
        if let (Some(a), Some(r)) = (t.hosts.col("addr"), t.hosts.col("role")) {
            for row in &t.hosts.rows {
                if let (Some(addr), Some(role)) = (row.get(a), row.get(r)) {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        self.roles.insert(ip, role.clone());
                    }
                }
            }
        }
        self.tables = t;
    }

    /// The flow's slot, created if new and there is room.
    fn slot(&mut self, uid: Uid, make: impl FnOnce() -> FlowEntry) -> Option<usize> {
        if let Some(&i) = self.flow_index.get(&uid) {
            return Some(i);
        }
        if self.flows.len() >= MAX_FLOWS {
            self.flows_dropped += 1;
            return None;
        }
        self.flows.push(make());
        let i = self.flows.len() - 1;
        self.flow_index.insert(uid, i);
        Some(i)
    }

    fn flow(&mut self, f: FlowRow) {
        self.see(f.start);
        self.see(f.end);
        let Some(i) = self.slot(f.uid, || FlowEntry {
            uid: f.uid,
            proto: f.proto,
            orig: f.orig,
            resp: f.resp,
            start: f.start,
            end: f.end,
            pkts: [0; 2],
            bytes: [0; 2],
            service: None,
            state: "",
            ended: false,
            msgs: Vec::new(),
            class_counts: [0; 5],
            home: false,
        }) else {
            return;
        };
        if let Some(e) = self.flows.get_mut(i) {
            e.orig = f.orig;
            e.resp = f.resp;
            e.start = f.start;
            e.end = f.end;
            e.pkts = f.pkts;
            e.bytes = f.bytes;
            e.service = f.service;
            e.state = f.state;
            e.ended = true;
        }
    }

    fn host(&mut self, ip: IpAddr) {
        if !self.host_set.contains_key(&ip) && self.host_set.len() < MAX_HOSTS {
            self.host_set.insert(ip, self.hosts.len());
            self.hosts.push(ip);
        }
    }

    fn msg(&mut self, m: MsgRow) {
        self.see(m.ts);
        self.host(m.src.ip());
        self.host(m.dst.ip());
        if m.kind == "sn-refresh" {
            self.keepalive(m.src.ip(), m.dst.ip(), m.ts);
        }
        if let (Some((seq, timestamp)), Some(call)) = (m.media, m.call_id) {
            if self.series.len() < MAX_CALLS || self.series.contains_key(&call) {
                self.series
                    .entry(call)
                    .or_default()
                    .frame(m.ts, (m.src, m.dst), seq, timestamp);
            }
        }
        let (uid, endpoints, proto, ts) = (m.uid, m.endpoints, m.proto, m.ts);
        let slot = self.slot(uid, || FlowEntry {
            uid,
            proto,
            orig: endpoints.0,
            resp: endpoints.1,
            start: ts,
            end: ts,
            pkts: [0; 2],
            bytes: [0; 2],
            service: Some(m.protocol),
            state: "",
            ended: false,
            msgs: Vec::new(),
            class_counts: [0; 5],
            home: false,
        });
        let idx = self.msgs.len();
        let keep = idx < MAX_MESSAGES;
        if let Some(e) = slot.and_then(|i| self.flows.get_mut(i)) {
            if let Some(c) = m.class {
                if let Some(n) = e.class_counts.get_mut(c.index()) {
                    *n += 1;
                }
            }
            e.home |= m.home;
            if !e.ended {
                e.end = e.end.max(ts);
            }
            if keep {
                e.msgs.push(idx as u32);
            }
        }
        if keep {
            let m = Msg {
                uid: m.uid,
                ts: m.ts,
                src: m.src,
                dst: m.dst,
                proto: m.proto,
                protocol: m.protocol,
                msg_type: m.msg_type,
                kind: m.kind,
                class: m.class,
                home: m.home,
                len: m.len,
                call_id: m.call_id,
                index_in_flow: u32::try_from(m.index_in_flow).unwrap_or(u32::MAX),
            };
            if idx % TIME_BLOCK == 0 {
                self.blocks.push((ts, ts));
            } else if let Some(b) = self.blocks.last_mut() {
                b.0 = b.0.min(ts);
                b.1 = b.1.max(ts);
            }
            self.msgs.push(m);
        } else {
            self.msgs_dropped += 1;
        }
    }

    fn contact(&mut self, client: IpAddr, home: IpAddr, ts: Ts) {
        let key = (client, home);
        if !self.contacts.contains_key(&key) && self.contacts.len() >= MAX_HOME_PAIRS {
            return;
        }
        let v = self.contacts.entry(key).or_default();
        if v.len() < MAX_CONTACTS_PER_PAIR {
            v.push(ts);
        }
    }

    fn keepalive(&mut self, client: IpAddr, sn: IpAddr, ts: Ts) {
        let key = (client, sn);
        if !self.last_keepalive.contains_key(&key)
            && self.last_keepalive.len() >= MAX_KEEPALIVE_PAIRS
        {
            return;
        }
        if let Some(last) = self.last_keepalive.insert(key, ts) {
            if self.keepalive_intervals.len() < MAX_KEEPALIVE_INTERVALS {
                self.keepalive_intervals.push(ts.since(last) as f64 / 1e9);
            }
        }
    }

    /// The messages whose time may lie in `[t0, t1)` (whole blocks; callers still check).
    pub fn msgs_between(&self, t0: Ts, t1: Ts) -> impl Iterator<Item = &Msg> {
        self.blocks
            .iter()
            .enumerate()
            .filter(move |(_, (lo, hi))| *hi >= t0 && *lo < t1)
            .flat_map(move |(i, _)| {
                let start = i * TIME_BLOCK;
                self.msgs
                    .get(start..(start + TIME_BLOCK).min(self.msgs.len()))
                    .unwrap_or(&[])
            })
    }

    /// The (originator, responder) of a message's flow (its own ends if the flow was not
    /// kept).
    pub fn endpoints(&self, m: &Msg) -> (SocketAddr, SocketAddr) {
        self.flow_by_uid(m.uid)
            .map_or((m.src, m.dst), |f| (f.orig, f.resp))
    }

    pub fn flow_by_uid(&self, uid: Uid) -> Option<&FlowEntry> {
        self.flow_index.get(&uid).and_then(|&i| self.flows.get(i))
    }

    /// The role shown for a host (`?` until the hosts table names it).
    pub fn role(&self, ip: IpAddr) -> &str {
        self.roles.get(&ip).map(String::as_str).unwrap_or("?")
    }

    /// Intervals between consecutive phone-home contacts (seconds), all pairs.
    pub fn contact_intervals(&self) -> Vec<f64> {
        let mut out = Vec::new();
        for v in self.contacts.values() {
            for w in v.windows(2) {
                if let [a, b] = w {
                    out.push(b.since(*a) as f64 / 1e9);
                }
            }
        }
        out
    }
}
