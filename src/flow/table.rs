//! The bidirectional flow table: sans-IO, driven by capture time.
//!
//! `ingest(packet)` updates (or creates) the packet's flow and returns its slot and the
//! packet's direction; flows that end — idle past their protocol's timeout, evicted by the
//! live-flow cap, a closed TCP connection whose endpoints are reused, or still live at
//! `finish` — are handed to a [`FlowSink`]. Memory is bounded by `max_flows` slots.
//!
//! Idle detection is O(1) per packet: each protocol class keeps its live flows in an
//! intrusive list ordered by last activity (a packet moves its flow to the tail), so
//! expired flows are always at the heads.

use super::Dir;
use super::conn_state::ConnState;
use super::index::FlowIndex;
use super::key::FlowKey;
use super::live_starts::LiveStarts;
use super::record::{DirStats, EndReason, FlowRecord, Uid};
use crate::decode::tcp_flags::{ACK, SYN};
use crate::decode::{L4, Packet};
use crate::time::Ts;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;
use std::net::IpAddr;

const NIL: u32 = u32::MAX;

/// Idle timeouts per protocol class, in nanoseconds of capture time (`None`: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleTimeouts {
    pub tcp: Option<i64>,
    pub udp: Option<i64>,
    pub other: Option<i64>,
}

impl IdleTimeouts {
    /// TCP 3600 s; UDP 300 s — longer than Rossi et al.'s 200 s, so a flow refreshed every
    /// 60 s by keepalives is never split; ICMP and other protocols 60 s.
    pub const DEFAULT: IdleTimeouts = IdleTimeouts {
        tcp: Some(3600 * Ts::NANOS_PER_SEC),
        udp: Some(300 * Ts::NANOS_PER_SEC),
        other: Some(60 * Ts::NANOS_PER_SEC),
    };

    pub const NONE: IdleTimeouts = IdleTimeouts {
        tcp: None,
        udp: None,
        other: None,
    };

    fn for_class(&self, class: usize) -> Option<i64> {
        match class {
            CLASS_TCP => self.tcp,
            CLASS_UDP => self.udp,
            _ => self.other,
        }
    }
}

impl Default for IdleTimeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Clone, Debug)]
pub struct FlowConfig {
    pub idle: IdleTimeouts,
    /// Live flows at most; when full, the least recently active flow is evicted.
    pub max_flows: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle: IdleTimeouts::DEFAULT,
            max_flows: 1 << 21,
        }
    }
}

impl FlowConfig {
    /// Live flows the table really holds at most (a table always has room for one), so
    /// also the bound on every live index and slot.
    pub fn max_live(&self) -> usize {
        self.max_flows.max(1)
    }
}

/// Receives flows as they end, with the per-flow application state attached to them.
pub trait FlowSink<A> {
    fn flow_ended(&mut self, record: FlowRecord, app: A);
}

impl<A, F: FnMut(FlowRecord, A)> FlowSink<A> for F {
    fn flow_ended(&mut self, record: FlowRecord, app: A) {
        self(record, app)
    }
}

/// Counters of the table itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    pub flows_created: u64,
    pub flows_evicted: u64,
    pub flows_idle_expired: u64,
    pub flows_reused: u64,
    pub peak_live: usize,
    /// Packets whose timestamp is earlier than one already seen.
    pub ts_backwards: u64,
}

/// Result of ingesting a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// Slot of the flow (valid until the flow ends); use with [`FlowTable::app_mut`].
    pub slot: u32,
    pub dir: Dir,
    /// The packet created the flow.
    pub created: bool,
}

const _: () = assert!(
    size_of::<Option<Slot<crate::dissect::FlowApp>>>() <= 256,
    "a slot outgrew four cache lines"
);

const CLASS_TCP: usize = 0;
const CLASS_UDP: usize = 1;
const CLASS_OTHER: usize = 2;

/// A live flow. Aligned to a cache line so that the packet path, which reads or writes
/// nearly all of it, loads as few lines as the slot's size allows: four with the
/// dissectors' state (at 272 bytes, unaligned, it spanned five).
#[repr(align(64))]
struct Slot<A> {
    key: FlowKey,
    /// The originator is the key's `lo` endpoint.
    orig_is_lo: bool,
    class: u8,
    seq: u64,
    /// Computed once at creation: consumers ask for it on every dissected packet.
    uid: Uid,
    ts_start: Ts,
    ts_last: Ts,
    stats: [DirStats; 2],
    conn: ConnState,
    app: A,
}

/// A slot's neighbours in its class's activity list. Kept apart from the slots: moving a
/// flow to the tail rewrites both neighbours' links, and 8-byte links in a dense vector are
/// far likelier to be cached than the neighbours' whole slots.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

pub struct FlowTable<A = ()> {
    config: FlowConfig,
    /// Slot numbers by their flow's key hash (the key lives in the slot only).
    index: FlowIndex,
    hasher: FxBuildHasher,
    slots: Vec<Option<Slot<A>>>,
    /// `links[i]` belongs to `slots[i]`.
    links: Vec<Link>,
    free: Vec<u32>,
    lists: [List; 3],
    /// (start, seq) of every live flow: the smallest is the report watermark.
    live_starts: LiveStarts,
    next_seq: u64,
    now: Ts,
    stats: FlowTableStats,
}

impl<A: Default> FlowTable<A> {
    pub fn new(config: FlowConfig) -> FlowTable<A> {
        // Slots and links never outnumber the live flows (see `create`).
        let (mut slots, mut links) = (Vec::new(), Vec::new());
        crate::prefetch::reserve_ceiling(&mut slots, config.max_live());
        crate::prefetch::reserve_ceiling(&mut links, config.max_live());
        FlowTable {
            index: FlowIndex::with_capacity(config.max_flows.min(1 << 16)),
            hasher: FxBuildHasher,
            config,
            slots,
            links,
            free: Vec::new(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 3],
            live_starts: LiveStarts::default(),
            next_seq: 0,
            now: Ts(i64::MIN),
            stats: FlowTableStats::default(),
        }
    }

    pub fn stats(&self) -> &FlowTableStats {
        &self.stats
    }

    pub fn live(&self) -> usize {
        self.index.len()
    }

    /// Latest capture time seen.
    pub fn now(&self) -> Ts {
        self.now
    }

    /// `(start ns, seq)` below which no flow can still end: the earliest-starting live flow,
    /// or — with none live — the current time and the next creation number (unless the
    /// capture clock goes backwards, which callers must tolerate).
    pub fn watermark(&self) -> (i64, u64) {
        self.live_starts
            .first()
            .unwrap_or((self.now.0, self.next_seq))
    }

    /// The uid the flow in `slot` will be reported with.
    pub fn uid(&self, slot: u32) -> Uid {
        self.slot(slot).map_or(Uid(0), |s| s.uid)
    }

    pub fn app_mut(&mut self, slot: u32) -> Option<&mut A> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .map(|s| &mut s.app)
    }

    /// Accounts `pkt` to its flow. Returns `None` for packets without a flow key (never, for
    /// now: every IP packet has one; ICMP and other protocols use ports 0).
    pub fn ingest(&mut self, pkt: &Packet<'_>, sink: &mut impl FlowSink<A>) -> Ingested {
        self.ingest_hinted(pkt, sink, None)
    }

    /// [`Self::ingest`], given the slot a look ahead found for `pkt`'s flow
    /// ([`Self::prefetch_flow`]). A key has at most one slot, so when that slot holds the
    /// packet's key it is the flow, found without hashing the key or probing the index;
    /// otherwise (no hint, the flow ended, another flow took the slot) it is looked up.
    pub fn ingest_hinted(
        &mut self,
        pkt: &Packet<'_>,
        sink: &mut impl FlowSink<A>,
        hint: Option<u32>,
    ) -> Ingested {
        if pkt.ts < self.now {
            self.stats.ts_backwards += 1;
        } else {
            self.now = pkt.ts;
        }
        self.expire(self.now, sink);

        let (key, src_is_lo) = key_of(pkt);
        let tcp = match &pkt.l4 {
            L4::Tcp(t) => Some(t),
            _ => None,
        };
        let pure_syn = tcp.is_some_and(|t| t.flags & (SYN | ACK) == SYN);

        // The key's hash, computed once and only if needed (no hint, or a new flow).
        let (found, known) = match hint.filter(|&i| self.slot(i).is_some_and(|s| s.key == key)) {
            Some(idx) => (Some(idx), None),
            None => {
                let hash = self.hash_of(pkt);
                (self.lookup(hash, &key), Some(hash))
            }
        };
        let hash = |t: &Self| known.unwrap_or_else(|| t.hash_of(pkt));
        let mut created = false;
        let idx = match found {
            Some(idx) if pure_syn && self.is_closed(idx) => {
                self.end_flow(idx, EndReason::Reused, sink);
                created = true;
                self.create(hash(self), key, src_is_lo, pkt, sink)
            }
            Some(idx) => idx,
            None => {
                created = true;
                self.create(hash(self), key, src_is_lo, pkt, sink)
            }
        };

        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            unreachable!("index points at a live slot");
        };
        let dir = if src_is_lo == slot.orig_is_lo {
            Dir::Orig
        } else {
            Dir::Resp
        };
        let st = &mut slot.stats[dir.index()];
        st.pkts += u64::from(pkt.frames);
        st.bytes += pkt.wire_len;
        st.payload += u64::from(pkt.payload_len());
        if pkt.ts > slot.ts_last {
            slot.ts_last = pkt.ts;
        }
        match &pkt.l4 {
            L4::Tcp(t) => slot
                .conn
                .on_tcp(dir, t.flags, t.seq, t.payload_len, t.window),
            _ if pkt.payload_len() > 0 => slot.conn.note(dir, b'D'),
            _ => {}
        }
        let class = usize::from(slot.class);
        self.touch(idx, class);
        Ingested {
            slot: idx,
            dir,
            created,
        }
    }

    /// The hash `pkt`'s flow is filed under, for [`Self::prefetch_entry`] and
    /// [`Self::prefetch_flow`].
    #[inline]
    pub fn hash_of(&self, pkt: &Packet<'_>) -> u64 {
        let (proto, src, dst) = parts_of(pkt);
        FlowKey::hash_of(&self.hasher, proto, src, dst)
    }

    /// Hints that a packet of the flow with `hash` comes soon: loads its index entry. Call
    /// [`Self::prefetch_flow`] later, once the entry has arrived.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Hints that a packet of the flow with `hash` comes soon: loads its slot and activity
    /// link, as found through the (by now loaded) index entry. Returns that slot, likely
    /// the flow's, for [`Self::app_in`] once it has arrived.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) -> Option<u32> {
        let idx = self.index.likely(hash)?;
        self.prefetch_slot(idx);
        Some(idx)
    }

    /// Hints that the flow in slot `idx` (from [`Self::prefetch_flow`], its link loaded by
    /// now) is about to move to its list's tail: loads its neighbours' links, which that
    /// rewrites.
    #[inline]
    pub fn prefetch_neighbours(&self, idx: u32) {
        if let Some(&Link { prev, next }) = self.links.get(idx as usize) {
            crate::prefetch::prefetch(&self.links, prev as usize);
            crate::prefetch::prefetch(&self.links, next as usize);
        }
    }

    /// The application state of the flow in slot `idx` (from [`Self::prefetch_flow`]; by
    /// now maybe another flow's): for prefetching what the state points to.
    #[inline]
    pub fn app_in(&self, idx: u32) -> Option<&A> {
        Some(&self.slot(idx)?.app)
    }

    /// Ends every flow idle past its timeout at capture time `now`.
    pub fn expire(&mut self, now: Ts, sink: &mut impl FlowSink<A>) {
        for class in 0..3 {
            let Some(timeout) = self.config.idle.for_class(class) else {
                continue;
            };
            loop {
                let head = self.lists[class].head;
                let Some(slot) = self.slot(head) else { break };
                if now.since(slot.ts_last) <= timeout {
                    break;
                }
                self.stats.flows_idle_expired += 1;
                self.prefetch_next_in_list(head);
                self.end_flow(head, EndReason::Idle, sink);
            }
        }
    }

    /// Ends every live flow (end of input), in order of last activity.
    pub fn finish(&mut self, sink: &mut impl FlowSink<A>) {
        for class in 0..3 {
            while self.lists[class].head != NIL {
                let head = self.lists[class].head;
                self.prefetch_next_in_list(head);
                self.end_flow(head, EndReason::Eof, sink);
            }
        }
        // `end_flow` leaves these to be cleared at once here (hundreds of thousands of
        // flows may still be live at the end of a capture).
        self.index.clear();
        self.live_starts.clear();
    }

    /// Starts loading the slot and link of the flow after `idx` in its activity list: flows
    /// ended in list order (idle, or at the end of input) are long out of the cache, and
    /// each one's misses then overlap the ending of the one before.
    fn prefetch_next_in_list(&self, idx: u32) {
        if let Some(&Link { next, .. }) = self.links.get(idx as usize) {
            self.prefetch_slot(next);
        }
    }

    /// Starts loading slot `idx` and its link (nothing for an index out of range).
    #[inline]
    fn prefetch_slot(&self, idx: u32) {
        crate::prefetch::prefetch(&self.slots, idx as usize);
        crate::prefetch::prefetch(&self.links, idx as usize);
    }

    fn slot(&self, idx: u32) -> Option<&Slot<A>> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn is_closed(&self, idx: u32) -> bool {
        self.slot(idx).is_some_and(|s| s.conn.tcp_closed())
    }

    fn lookup(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        self.index
            .find(hash, |idx| self.slot(idx).is_some_and(|s| s.key == *key))
    }

    fn create(
        &mut self,
        hash: u64,
        key: FlowKey,
        src_is_lo: bool,
        pkt: &Packet<'_>,
        sink: &mut impl FlowSink<A>,
    ) -> u32 {
        if self.index.len() >= self.config.max_live() {
            self.evict_oldest(sink);
        }
        // The originator sends the first packet — except that a SYN+ACK seen first was sent
        // by the responder (its SYN was missed), so the flow is flipped (`^`).
        let mut conn = ConnState::default();
        let syn_ack_first = matches!(&pkt.l4, L4::Tcp(t) if t.flags & (SYN | ACK) == SYN | ACK);
        let orig_is_lo = if syn_ack_first {
            conn.note_flipped();
            !src_is_lo
        } else {
            src_is_lo
        };
        let class = match pkt.ip_proto {
            6 => CLASS_TCP,
            17 => CLASS_UDP,
            _ => CLASS_OTHER,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.flows_created += 1;
        let slot = Slot {
            key,
            orig_is_lo,
            class: class as u8,
            seq,
            uid: Uid(uid_hash(&key, pkt.ts, seq)),
            ts_start: pkt.ts,
            ts_last: pkt.ts,
            stats: [DirStats::default(); 2],
            conn,
            app: A::default(),
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.slots[idx as usize] = Some(slot);
                idx
            }
            None => {
                crate::prefetch::push_huge(&mut self.slots, Some(slot));
                crate::prefetch::push_huge(&mut self.links, UNLINKED);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, idx);
        self.live_starts.insert((pkt.ts.0, seq), idx);
        self.link_tail(idx, class);
        self.stats.peak_live = self.stats.peak_live.max(self.index.len());
        idx
    }

    fn evict_oldest(&mut self, sink: &mut impl FlowSink<A>) {
        let oldest = (0..3)
            .filter_map(|c| {
                let head = self.lists[c].head;
                self.slot(head).map(|s| (s.ts_last, head))
            })
            .min();
        if let Some((_, idx)) = oldest {
            self.stats.flows_evicted += 1;
            self.end_flow(idx, EndReason::Evicted, sink);
        }
    }

    fn end_flow(&mut self, idx: u32, end: EndReason, sink: &mut impl FlowSink<A>) {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) else {
            return;
        };
        // At the end of input (`finish`, the only `Eof`) the index goes all at once.
        // Otherwise the flow's index entry, out of the cache too, loads while it unlinks.
        let hash = (end != EndReason::Eof).then(|| self.hasher.hash_one(slot.key));
        if let Some(hash) = hash {
            self.index.prefetch(hash);
        }
        self.unlink(idx, usize::from(slot.class));
        self.free.push(idx);
        if let Some(hash) = hash {
            let slots = &self.slots;
            self.live_starts
                .remove((slot.ts_start.0, slot.seq), |i, seq| {
                    slots
                        .get(i as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.seq == seq)
                });
            self.index.remove(hash, idx);
        }
        if end == EndReason::Reused {
            self.stats.flows_reused += 1;
        }
        let (orig, resp) = if slot.orig_is_lo {
            (slot.key.lo, slot.key.hi)
        } else {
            (slot.key.hi, slot.key.lo)
        };
        let record = FlowRecord {
            uid: slot.uid,
            seq: slot.seq,
            proto: slot.key.proto,
            orig,
            resp,
            ts_start: slot.ts_start,
            ts_end: slot.ts_last,
            stats: slot.stats,
            conn: slot.conn,
            end,
            service: None,
            live_index: idx,
        };
        sink.flow_ended(record, slot.app);
    }

    /// Moves the flow in slot `idx` (of list `class`) to its list's tail.
    fn touch(&mut self, idx: u32, class: usize) {
        if self.lists[class].tail != idx {
            self.unlink(idx, class);
            self.link_tail(idx, class);
        }
    }

    fn link_tail(&mut self, idx: u32, class: usize) {
        let tail = self.lists[class].tail;
        if let Some(l) = self.links.get_mut(idx as usize) {
            *l = Link {
                prev: tail,
                next: NIL,
            };
        }
        match self.links.get_mut(tail as usize) {
            Some(t) => t.next = idx,
            None => self.lists[class].head = idx,
        }
        self.lists[class].tail = idx;
    }

    fn unlink(&mut self, idx: u32, class: usize) {
        let Some(&Link { prev, next }) = self.links.get(idx as usize) else {
            return;
        };
        match self.links.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.lists[class].head = next,
        }
        match self.links.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.lists[class].tail = prev,
        }
        if let Some(l) = self.links.get_mut(idx as usize) {
            *l = UNLINKED;
        }
    }
}

/// The packet's flow key, and whether its sender is the key's `lo` endpoint.
#[inline]
fn key_of(pkt: &Packet<'_>) -> (FlowKey, bool) {
    let (proto, src, dst) = parts_of(pkt);
    FlowKey::of(proto, src, dst)
}

/// What a packet's flow key is made of: protocol, and sender and receiver (address, port;
/// port 0 for a transport without ports).
#[inline]
fn parts_of<'p>(pkt: &'p Packet<'_>) -> (u8, (&'p IpAddr, u16), (&'p IpAddr, u16)) {
    let (sport, dport) = pkt.ports().unwrap_or((0, 0));
    (pkt.ip_proto, (&pkt.src, sport), (&pkt.dst, dport))
}

/// splitmix64 over the key, start time and creation order: a stable uid (no dependence on
/// std's hasher, which may change between Rust versions).
fn uid_hash(key: &FlowKey, start: Ts, seq: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut h = mix(u64::from(key.proto) ^ (start.0 as u64));
    for ep in [key.lo, key.hi] {
        let bytes = super::key::number(&ep.addr.to_ip());
        h = mix(h ^ (bytes as u64));
        h = mix(h ^ ((bytes >> 64) as u64));
        h = mix(h ^ u64::from(ep.port));
    }
    mix(h ^ seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tcp_flags::{FIN, PSH, RST};
    use crate::decode::{TcpSegment, UdpDatagram};

    fn udp(t_s: i64, src: &str, sport: u16, dst: &str, dport: u16, len: u32) -> Packet<'static> {
        Packet {
            ts: Ts(t_s * Ts::NANOS_PER_SEC),
            wire_len: u64::from(42 + len),
            frames: 1,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_proto: 17,
            l4: L4::Udp(UdpDatagram {
                src_port: sport,
                dst_port: dport,
                payload_len: len,
                payload: &[],
            }),
            truncated: false,
        }
    }

    fn tcp(t_s: i64, from_a: bool, flags: u8, seq: u32, len: u32) -> Packet<'static> {
        let (src, dst, sp, dp) = if from_a {
            ("10.0.0.1", "10.0.0.2", 40000, 80)
        } else {
            ("10.0.0.2", "10.0.0.1", 80, 40000)
        };
        Packet {
            ts: Ts(t_s * Ts::NANOS_PER_SEC),
            wire_len: u64::from(54 + len),
            frames: 1,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_proto: 6,
            l4: L4::Tcp(TcpSegment {
                src_port: sp,
                dst_port: dp,
                seq,
                ack: 0,
                flags,
                window: 1000,
                payload_len: len,
                payload: &[],
            }),
            truncated: false,
        }
    }

    #[track_caller]
    fn run(config: FlowConfig, pkts: &[Packet<'_>]) -> Vec<FlowRecord> {
        let mut table = FlowTable::<()>::new(config);
        let mut out = Vec::new();
        let mut sink = |r: FlowRecord, ()| out.push(r);
        for p in pkts {
            table.ingest(p, &mut sink);
        }
        table.finish(&mut sink);
        out.sort_by_key(|r| (r.ts_start, r.seq));
        out
    }

    #[test]
    fn both_directions_count_into_one_flow() {
        let recs = run(
            FlowConfig::default(),
            &[
                udp(0, "10.0.0.9", 5000, "10.0.0.1", 53, 30),
                udp(1, "10.0.0.1", 53, "10.0.0.9", 5000, 90),
                udp(2, "10.0.0.9", 5000, "10.0.0.1", 53, 30),
            ],
        );
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.orig.port, 5000);
        assert_eq!(r.resp.port, 53);
        assert_eq!(r.dir(Dir::Orig).pkts, 2);
        assert_eq!(r.dir(Dir::Orig).bytes, 144);
        assert_eq!(r.dir(Dir::Orig).payload, 60);
        assert_eq!(r.dir(Dir::Resp).pkts, 1);
        assert_eq!(r.state(), "SF");
        assert_eq!(r.history(), "Dd");
        assert_eq!(r.duration_ns(), 2 * Ts::NANOS_PER_SEC);
        assert_eq!(r.end, EndReason::Eof);
    }

    #[test]
    fn syn_ack_seen_first_flips_the_originator() {
        let recs = run(
            FlowConfig::default(),
            &[tcp(0, false, SYN | ACK, 500, 0), tcp(1, true, ACK, 101, 0)],
        );
        assert_eq!(recs[0].orig.port, 40000);
        assert_eq!(recs[0].history(), "^hA");
    }

    #[test]
    fn udp_default_timeout_keeps_a_60s_keepalive_flow_whole() {
        let pkts: Vec<_> = (0..30)
            .map(|i| udp(i * 60, "10.0.0.9", 5000, "10.0.0.1", 7000, 20))
            .collect();
        assert_eq!(run(FlowConfig::default(), &pkts).len(), 1);
    }

    #[test]
    fn idle_timeouts_split_flows_and_none_disables_them() {
        let pkts = [
            udp(0, "10.0.0.9", 5000, "10.0.0.1", 7000, 20),
            udp(1000, "10.0.0.9", 5000, "10.0.0.1", 7000, 20),
        ];
        let split = run(FlowConfig::default(), &pkts);
        assert_eq!(split.len(), 2);
        assert_eq!(split[0].end, EndReason::Idle);
        let cfg = FlowConfig {
            idle: IdleTimeouts::NONE,
            ..FlowConfig::default()
        };
        assert_eq!(run(cfg, &pkts).len(), 1);
    }

    #[test]
    fn the_cap_evicts_the_least_recently_active_flow() {
        let cfg = FlowConfig {
            idle: IdleTimeouts::NONE,
            max_flows: 2,
        };
        let recs = run(
            cfg,
            &[
                udp(0, "10.0.0.1", 1, "10.0.0.2", 1, 1),
                udp(1, "10.0.0.1", 2, "10.0.0.2", 2, 1),
                udp(2, "10.0.0.1", 1, "10.0.0.2", 1, 1), // flow 1 active again
                udp(3, "10.0.0.1", 3, "10.0.0.2", 3, 1), // evicts flow 2
            ],
        );
        assert_eq!(recs.len(), 3);
        let evicted: Vec<_> = recs
            .iter()
            .filter(|r| r.end == EndReason::Evicted)
            .map(|r| r.orig.port)
            .collect();
        assert_eq!(evicted, [2]);
    }

    #[test]
    fn live_slots_never_exceed_the_cap() {
        let cfg = FlowConfig {
            idle: IdleTimeouts::NONE,
            max_flows: 100,
        };
        let mut table = FlowTable::<()>::new(cfg);
        let mut ended = 0;
        let mut sink = |_r: FlowRecord, ()| ended += 1;
        for i in 0..10_000u32 {
            let p = udp(
                i64::from(i),
                "10.0.0.1",
                (i % 60000) as u16,
                "10.0.0.2",
                9,
                1,
            );
            table.ingest(&p, &mut sink);
            assert!(table.live() <= 100);
        }
        assert!(table.slots.len() <= 100);
        table.finish(&mut sink);
        assert_eq!(ended, 10_000);
    }

    #[test]
    fn a_new_syn_after_close_starts_a_new_flow() {
        let recs = run(
            FlowConfig::default(),
            &[
                tcp(0, true, SYN, 100, 0),
                tcp(0, false, SYN | ACK, 500, 0),
                tcp(1, true, ACK | PSH, 101, 10),
                tcp(2, true, RST, 111, 0),
                tcp(3, true, SYN, 9000, 0),
            ],
        );
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].end, EndReason::Reused);
        assert_eq!(recs[0].state(), "RSTO");
        assert_eq!(recs[1].state(), "S0");
    }

    #[test]
    fn retransmitted_syn_stays_in_its_flow() {
        let recs = run(
            FlowConfig::default(),
            &[
                tcp(0, true, SYN, 1, 0),
                tcp(1, true, SYN, 1, 0),
                tcp(3, true, SYN, 1, 0),
            ],
        );
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].dir(Dir::Orig).pkts, 3);
    }

    #[test]
    fn fin_handshake_then_late_ack_stays_in_flow() {
        let recs = run(
            FlowConfig::default(),
            &[
                tcp(0, true, SYN, 1, 0),
                tcp(0, false, SYN | ACK, 1, 0),
                tcp(0, true, FIN | ACK, 2, 0),
                tcp(0, false, FIN | ACK, 2, 0),
                tcp(0, true, ACK, 3, 0),
            ],
        );
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].state(), "SF");
    }

    #[test]
    fn slots_for_the_cap_are_reserved_up_front_and_never_moved() {
        let cfg = FlowConfig {
            max_flows: 1_000_000,
            ..FlowConfig::default()
        };
        let mut table = FlowTable::<()>::new(cfg);
        assert!(table.slots.capacity() >= 1_000_000 && table.links.capacity() >= 1_000_000);
        let buffers = (table.slots.as_ptr(), table.links.as_ptr());
        let mut sink = |_r: FlowRecord, ()| {};
        for port in 0..1000 {
            table.ingest(&udp(1, "10.0.0.1", port, "10.0.0.2", 1, 1), &mut sink);
        }
        assert_eq!(table.slots.len(), 1000);
        assert_eq!((table.slots.as_ptr(), table.links.as_ptr()), buffers);
    }

    #[test]
    fn watermark_is_the_earliest_live_start() {
        let mut table = FlowTable::<()>::new(FlowConfig::default());
        let mut sink = |_r: FlowRecord, ()| {};
        assert_eq!(table.watermark(), (i64::MIN, 0));
        table.ingest(&udp(5, "10.0.0.1", 1, "10.0.0.2", 1, 1), &mut sink);
        table.ingest(&udp(7, "10.0.0.1", 2, "10.0.0.2", 2, 1), &mut sink);
        assert_eq!(table.watermark(), (5 * Ts::NANOS_PER_SEC, 0));
        // Flow 1 goes idle (UDP 300 s) at t = 400; flow 2 is refreshed.
        table.ingest(&udp(300, "10.0.0.1", 2, "10.0.0.2", 2, 1), &mut sink);
        table.ingest(&udp(400, "10.0.0.1", 2, "10.0.0.2", 2, 1), &mut sink);
        assert_eq!(table.watermark(), (7 * Ts::NANOS_PER_SEC, 1));
    }

    #[test]
    fn a_slot_hint_finds_the_same_flow_as_a_lookup_whatever_it_names() {
        let (a, b) = (
            udp(1, "10.0.0.1", 1, "10.0.0.2", 1, 1),
            udp(1, "10.0.0.2", 1, "10.0.0.1", 1, 1),
        );
        let c = udp(2, "10.0.0.3", 3, "10.0.0.4", 4, 1);
        let run = |hints: &[Option<u32>]| {
            let mut table = FlowTable::<()>::new(FlowConfig::default());
            let mut ended = Vec::new();
            let mut sink = |r: FlowRecord, ()| ended.push(r);
            let mut got = Vec::new();
            for (p, hint) in [&a, &c, &b, &a, &c].into_iter().zip(hints) {
                // The look-ahead's loads for the hint: never a panic, whatever it names.
                if let Some(h) = *hint {
                    table.prefetch_neighbours(h);
                }
                got.push(table.ingest_hinted(p, &mut sink, *hint));
            }
            table.finish(&mut sink);
            let recs: Vec<_> = ended.iter().map(|r| (r.uid, r.stats)).collect();
            (got, recs)
        };
        let plain = run(&[None; 5]);
        // a is slot 0, c slot 1: the right slot, another flow's, an empty one, out of range.
        for hints in [
            [None, None, Some(0), Some(0), Some(1)],
            [Some(1), Some(0), Some(1), Some(1), Some(0)],
            [Some(5), Some(9), Some(u32::MAX), Some(2), Some(7)],
        ] {
            assert_eq!(run(&hints), plain, "{hints:?}");
        }
        assert_eq!(plain.0[2].dir, Dir::Resp);
        assert_eq!(plain.1.len(), 2);
    }

    #[test]
    fn backwards_timestamps_are_counted_not_fatal() {
        let mut table = FlowTable::<()>::new(FlowConfig::default());
        let mut sink = |_r: FlowRecord, ()| {};
        table.ingest(&udp(10, "10.0.0.1", 1, "10.0.0.2", 1, 1), &mut sink);
        table.ingest(&udp(5, "10.0.0.1", 1, "10.0.0.2", 1, 1), &mut sink);
        assert_eq!(table.stats().ts_backwards, 1);
        assert_eq!(table.now(), Ts(10 * Ts::NANOS_PER_SEC));
    }

    #[test]
    fn uids_are_stable_and_distinct() {
        let pkts = [
            udp(0, "10.0.0.1", 1, "10.0.0.2", 1, 1),
            udp(0, "10.0.0.1", 2, "10.0.0.2", 1, 1),
        ];
        let a = run(FlowConfig::default(), &pkts);
        let b = run(FlowConfig::default(), &pkts);
        assert_eq!(a[0].uid, b[0].uid);
        assert_ne!(a[0].uid, a[1].uid);
        let _ = RST;
    }
}
