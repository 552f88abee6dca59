//! Calls reconstructed from Skylark signalling and media (PROTOCOL.md §6.3, §7): one
//! [`CallRecord`] per call id with set-up latency, duration, end reason, media path and relay,
//! and per-direction packets, bitrate, loss and jitter (RFC 3550 §6.4.1 and A.8 from the
//! frames' sequence numbers and 8 kHz timestamps).
//!
//! How: every message with a call id updates that call. A call's parties are the sender of the
//! first `invite` (caller) and of the first `ringing`/`accept`/`reject` (callee); copies of a
//! message forwarded through super nodes count once (earliest time wins). Media is kept per
//! *leg* (sender, receiver, transport); the path is decided from the legs when the call is
//! reported ([`decide_path`]). A conference leg is an invite naming a mixer; legs with the same
//! mixer and members share the first leg's call id as conference id (the conference's own id
//! never appears on the wire).
//!
//! Guarantees: at most [`MAX_CALLS`] calls tracked at once (the least recently active one is
//! reported as `evicted` to make room), at most [`MAX_LEGS`] media legs per call, names cut to
//! [`MAX_NAME_LEN`] bytes; a call is reported [`LINGER_NS`] after its end message, after
//! [`IDLE_NS`] without messages, or at the end of the input. No panic on any input.
//! Must not: depend on wall-clock time or map iteration order of a hash map.

use crate::pipeline::MsgCtx;
use crate::time::Ts;
use dissectors::registry::{CallInfo, CallSignal, Message};
use dissectors::skylark::ErrorCode;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

/// Calls tracked at once.
pub const MAX_CALLS: usize = 4096;
/// Distinct media legs (sender, receiver, transport) measured per call; frames on further
/// legs are counted in `CallRecord::untracked_frames` only.
pub const MAX_LEGS: usize = 4;
/// Bytes kept of a user name or reason.
pub const MAX_NAME_LEN: usize = 64;
/// A call is reported this long after its first end message (`bye`, `reject`, `cancel`), so
/// forwarded copies and frames still in flight are counted with it.
pub const LINGER_NS: i64 = 5 * Ts::NANOS_PER_SEC;
/// A call without any message for this long is reported (`idle`). Hold keeps a call alive
/// through `hold-keepalive` (every 333 ms, §7.2).
pub const IDLE_NS: i64 = 60 * Ts::NANOS_PER_SEC;
/// Call ids remembered after they were reported, so late stragglers do not open a new call.
pub const MAX_RECENT: usize = 1024;
/// How often (capture time) calls are checked for linger and idle expiry.
const SWEEP_NS: i64 = Ts::NANOS_PER_SEC;
/// Skylark media clock (PROTOCOL.md §5.3: every codec is 8 kHz): nanoseconds per tick.
const NANOS_PER_TICK: i64 = 125_000;

/// RFC 3550 A.1: a jump larger than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: an older sequence number within this is a reordered or duplicate packet.
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Receiver statistics of one media stream: RFC 3550 A.1 sequence tracking (without the
/// probation step: the dissector already vouched for the stream) and A.8 interarrival
/// jitter, kept in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RtpStats {
    started: bool,
    base_seq: u16,
    max_seq: u16,
    /// Shifted count of sequence number cycles (RFC 3550 `cycles`).
    cycles: u32,
    /// RFC 3550 `bad_seq`: the sequence number that confirms a restart after a large jump.
    bad_seq: Option<u16>,
    received: u64,
    last: Option<(Ts, u32)>,
    /// Interarrival jitter estimate in nanoseconds.
    jitter_ns: f64,
}

impl RtpStats {
    /// One frame `seq` with media timestamp `timestamp` arrived at `at`.
    pub fn update(&mut self, at: Ts, seq: u16, timestamp: u32) {
        self.update_seq(seq);
        // A.8: D(i-1,i) = (R_i - R_{i-1}) - (S_i - S_{i-1}), the timestamp difference taken
        // modulo 2^32 so a wrap does not look like a jump.
        if let Some((last_at, last_ts)) = self.last {
            let ticks = i64::from(timestamp.wrapping_sub(last_ts) as i32);
            let d = at
                .since(last_at)
                .saturating_sub(ticks.saturating_mul(NANOS_PER_TICK));
            self.jitter_ns += ((d as f64).abs() - self.jitter_ns) / 16.0;
        }
        self.last = Some((at, timestamp));
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = None;
        self.cycles = 0;
        self.received = 0;
    }

    fn update_seq(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: restart if the next frame continues from here.
            if self.bad_seq == Some(seq) {
                self.init_seq(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return;
            }
        }
        // Otherwise a duplicate or reordered frame: counted as received.
        self.received += 1;
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// RFC 3550 §6.4.1: extended highest sequence number − base + 1.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let extended = u64::from(self.cycles) + u64::from(self.max_seq);
        (extended + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Cumulative number lost (negative with duplicates, as in RFC 3550).
    pub fn lost(&self) -> i64 {
        i64::try_from(self.expected())
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(self.received).unwrap_or(i64::MAX))
    }

    /// Lost fraction of the expected frames, 0 when duplicates outnumber losses.
    pub fn loss_fraction(&self) -> f64 {
        match self.expected() {
            0 => 0.0,
            e => self.lost().max(0) as f64 / e as f64,
        }
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ns / 1e6
    }
}

/// How media flowed (PROTOCOL.md §7.3): the peer's own notion, shared with events.csv.
pub use crate::peer::truth::MediaPath;

/// One media leg as seen in the capture: frames from `src` to `dst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub tcp: bool,
    pub frames: u64,
    /// Skylark message bytes (header included; IP and transport headers excluded).
    pub bytes: u64,
    pub first: Ts,
    pub last: Ts,
    pub rtp: RtpStats,
}

impl Leg {
    fn touches(&self, ip: IpAddr) -> bool {
        self.src.ip() == ip || self.dst.ip() == ip
    }
}

/// The path decision: `(path, relay address)` from the parties' addresses (when the
/// signalling showed them) and the media legs. Direct when a leg runs between the two
/// parties; relayed when the legs meet at a third host (its address as the parties send to
/// it), over TCP when any leg to it is TCP. `None` without media.
pub fn decide_path(
    caller: Option<IpAddr>,
    callee: Option<IpAddr>,
    legs: &[Leg],
) -> Option<(MediaPath, Option<SocketAddr>, IpAddr, Option<IpAddr>)> {
    let first = legs.iter().min_by_key(|l| (l.first, l.src, l.dst))?;
    let a = caller.unwrap_or(first.src.ip());
    let mut hosts: Vec<IpAddr> = Vec::with_capacity(2 * MAX_LEGS);
    for l in legs {
        for ip in [l.src.ip(), l.dst.ip()] {
            if !hosts.contains(&ip) {
                hosts.push(ip);
            }
        }
    }
    // The relay: a host other than the parties that every leg touches (with the parties
    // unknown, only when there are more than two hosts).
    let parties_known = caller.is_some() && callee.is_some();
    let relay_ip = hosts
        .iter()
        .copied()
        .filter(|&h| h != a && Some(h) != callee)
        .find(|&h| (parties_known || hosts.len() > 2) && legs.iter().all(|l| l.touches(h)));
    let b = callee.or_else(|| {
        hosts
            .iter()
            .copied()
            .find(|&h| h != a && Some(h) != relay_ip)
    });
    if let Some(b) = b {
        let direct = legs
            .iter()
            .find(|l| (l.src.ip() == a && l.dst.ip() == b) || (l.src.ip() == b && l.dst.ip() == a));
        if let Some(l) = direct {
            let path = if l.tcp {
                MediaPath::DirectTcp
            } else {
                MediaPath::DirectUdp
            };
            return Some((path, None, a, Some(b)));
        }
    }
    let r = relay_ip?;
    let to_relay: Vec<&Leg> = legs.iter().filter(|l| l.touches(r)).collect();
    let path = if to_relay.iter().any(|l| l.tcp) {
        MediaPath::RelayTcp
    } else {
        MediaPath::RelayUdp
    };
    // The relay's address as a party addresses it (for TCP the listening port).
    let addr = to_relay
        .iter()
        .filter(|l| l.dst.ip() == r)
        .min_by_key(|l| (l.first, l.src))
        .map(|l| l.dst)
        .or_else(|| to_relay.first().map(|l| l.src));
    Some((path, addr, a, b))
}

/// Media measured in one direction of a call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirStats {
    /// Frames the sender put on the path (counted once, on the sender's leg).
    pub packets: u64,
    pub bitrate_kbps: Option<f64>,
    /// From the leg nearest the receiver; `None` without frames.
    pub loss: Option<f64>,
    pub jitter_ms: Option<f64>,
}

fn dir_stats(from: IpAddr, to: Option<IpAddr>, legs: &[Leg]) -> DirStats {
    let sent: Vec<&Leg> = legs.iter().filter(|l| l.src.ip() == from).collect();
    let recv: Vec<&Leg> = match to {
        Some(to) => legs.iter().filter(|l| l.dst.ip() == to).collect(),
        None => Vec::new(),
    };
    let counted = if sent.is_empty() { &recv } else { &sent };
    let packets = counted.iter().map(|l| l.frames).sum();
    let bytes: u64 = counted.iter().map(|l| l.bytes).sum();
    let span = match (
        counted.iter().map(|l| l.first).min(),
        counted.iter().map(|l| l.last).max(),
    ) {
        (Some(a), Some(b)) => b.since(a),
        _ => 0,
    };
    let bitrate_kbps = (span > 0).then(|| bytes as f64 * 8.0 / (span as f64 / 1e9) / 1000.0);
    let measured = if recv.is_empty() { &sent } else { &recv };
    let best = measured.iter().max_by_key(|l| (l.frames, l.first));
    DirStats {
        packets,
        bitrate_kbps,
        loss: best.map(|l| l.rtp.loss_fraction()),
        jitter_ms: best.map(|l| l.rtp.jitter_ms()),
    }
}

/// Why a call's record was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `bye`, with its reason field when present.
    Bye(Option<String>),
    /// `reject` (or an error response to the invite) with its error code.
    Reject(u32),
    Cancel,
    /// No message for [`IDLE_NS`].
    Idle,
    /// Made room for a newer call ([`MAX_CALLS`]).
    Evicted,
    /// Still open at the end of the input.
    Eof,
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Bye(None) => f.write_str("bye"),
            EndReason::Bye(Some(r)) => write!(f, "bye:{r}"),
            EndReason::Reject(c) => write!(f, "reject:{}", ErrorCode::from(*c).name()),
            EndReason::Cancel => f.write_str("cancel"),
            EndReason::Idle => f.write_str("idle"),
            EndReason::Evicted => f.write_str("evicted"),
            EndReason::Eof => f.write_str("eof"),
        }
    }
}

/// One row of `calls.csv`. Direction `ab` is caller → callee.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    pub call_id: u32,
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub caller_addr: Option<SocketAddr>,
    pub callee_addr: Option<SocketAddr>,
    /// First `invite` seen, else the call's first message.
    pub start: Ts,
    pub setup_ringing_ns: Option<i64>,
    pub setup_accept_ns: Option<i64>,
    /// `accept` → `bye` (else → last media frame).
    pub duration_ns: Option<i64>,
    pub end_reason: EndReason,
    pub media_path: Option<MediaPath>,
    pub relay: Option<SocketAddr>,
    pub ab: DirStats,
    pub ba: DirStats,
    pub hold_ns: i64,
    pub conference: Option<u32>,
    pub mixer: Option<String>,
    /// Frames on legs beyond [`MAX_LEGS`] (not measured).
    pub untracked_frames: u64,
}

/// Per-call state: fixed-size apart from names cut to [`MAX_NAME_LEN`].
#[derive(Clone, Debug)]
struct Call {
    id: u32,
    caller: Option<String>,
    callee: Option<String>,
    caller_sig: Option<SocketAddr>,
    callee_sig: Option<SocketAddr>,
    first: Ts,
    last: Ts,
    invite: Option<Ts>,
    ringing: Option<Ts>,
    accept: Option<Ts>,
    end: Option<(Ts, EndReason)>,
    relay_grant: Option<SocketAddr>,
    hold_since: Option<Ts>,
    hold_ns: i64,
    conference: Option<u32>,
    /// Mixer name and a hash of the sorted member list, from a conference invite.
    mixer: Option<String>,
    members: Option<u64>,
    legs: [Option<Leg>; MAX_LEGS],
    untracked_frames: u64,
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end)
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn earliest(slot: &mut Option<Ts>, ts: Ts) {
    if slot.is_none_or(|t| ts < t) {
        *slot = Some(ts);
    }
}

impl Call {
    fn new(id: u32, ts: Ts) -> Call {
        Call {
            id,
            caller: None,
            callee: None,
            caller_sig: None,
            callee_sig: None,
            first: ts,
            last: ts,
            invite: None,
            ringing: None,
            accept: None,
            end: None,
            relay_grant: None,
            hold_since: None,
            hold_ns: 0,
            conference: None,
            mixer: None,
            members: None,
            legs: [None; MAX_LEGS],
            untracked_frames: 0,
        }
    }

    fn media(&mut self, ctx: &MsgCtx, len: u32, seq: u16, timestamp: u32) {
        let tcp = ctx.proto == 6;
        let mut free = None;
        for (i, slot) in self.legs.iter_mut().enumerate() {
            match slot {
                Some(l) if l.src == ctx.src && l.dst == ctx.dst && l.tcp == tcp => {
                    l.frames += 1;
                    l.bytes += u64::from(len);
                    l.first = l.first.min(ctx.ts);
                    l.last = l.last.max(ctx.ts);
                    l.rtp.update(ctx.ts, seq, timestamp);
                    return;
                }
                None if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        match free.and_then(|i| self.legs.get_mut(i)) {
            Some(slot) => {
                let mut rtp = RtpStats::default();
                rtp.update(ctx.ts, seq, timestamp);
                *slot = Some(Leg {
                    src: ctx.src,
                    dst: ctx.dst,
                    tcp,
                    frames: 1,
                    bytes: u64::from(len),
                    first: ctx.ts,
                    last: ctx.ts,
                    rtp,
                });
            }
            None => self.untracked_frames += 1,
        }
    }

    fn end_with(&mut self, ts: Ts, reason: EndReason) {
        if self.end.as_ref().is_none_or(|(t, _)| ts < *t) {
            self.end = Some((ts, reason));
        }
    }

    fn signal(&mut self, ctx: &MsgCtx, msg: &Message, sig: Option<&CallSignal>) {
        let ts = ctx.ts;
        let error = sig.and_then(|s| s.error_code);
        match msg.msg_type.as_ref() {
            // An error response reuses the request's type (PROTOCOL.md §5.2).
            "invite" if error.is_some() && sig.is_some_and(|s| s.caller.is_none()) => {
                self.end_with(ts, EndReason::Reject(error.unwrap_or(0)));
            }
            "invite" => {
                if self.invite.is_none_or(|t| ts < t) {
                    self.invite = Some(ts);
                    self.caller_sig = Some(ctx.src);
                }
                if let Some(s) = sig {
                    if let Some(c) = &s.caller {
                        self.caller.get_or_insert_with(|| cut(c, MAX_NAME_LEN));
                    }
                    if let Some(c) = &s.callee {
                        self.callee.get_or_insert_with(|| cut(c, MAX_NAME_LEN));
                    }
                    if let (Some(m), None) = (&s.mixer, &self.mixer) {
                        self.mixer = Some(cut(m, MAX_NAME_LEN));
                        let mut members: Vec<&str> = s.members.iter().map(String::as_str).collect();
                        members.sort_unstable();
                        let mut h = DefaultHasher::new();
                        (m, members).hash(&mut h);
                        self.members = Some(h.finish());
                    }
                }
            }
            "ringing" | "accept" | "reject" => {
                if self.callee_sig.is_none()
                    || [self.ringing, self.accept]
                        .iter()
                        .flatten()
                        .all(|t| ts < *t)
                {
                    self.callee_sig = Some(ctx.src);
                }
                match msg.msg_type.as_ref() {
                    "ringing" => earliest(&mut self.ringing, ts),
                    "accept" => earliest(&mut self.accept, ts),
                    _ => self.end_with(ts, EndReason::Reject(error.unwrap_or(0))),
                }
            }
            "bye" => {
                let reason = sig
                    .and_then(|s| s.reason.as_deref())
                    .map(|r| cut(r, MAX_NAME_LEN));
                self.end_with(ts, EndReason::Bye(reason));
            }
            "cancel" => self.end_with(ts, EndReason::Cancel),
            "hold" => {
                self.hold_since.get_or_insert(ts);
            }
            "resume" => {
                if let Some(h) = self.hold_since.take() {
                    self.hold_ns = self.hold_ns.saturating_add(ts.since(h).max(0));
                }
            }
            "relay-grant" => {
                if let Some(a) = sig.and_then(|s| s.relay_addr) {
                    self.relay_grant.get_or_insert(a);
                }
            }
            "conf-mixer" => {
                if let (Some(m), None) = (sig.and_then(|s| s.mixer.as_ref()), &self.mixer) {
                    self.mixer = Some(cut(m, MAX_NAME_LEN));
                }
                self.conference.get_or_insert(self.id);
            }
            _ => {}
        }
    }

    fn record(self, reason: EndReason) -> CallRecord {
        let legs: Vec<Leg> = self.legs.iter().flatten().copied().collect();
        let caller_ip = self.caller_sig.map(|a| a.ip());
        let callee_ip = self.callee_sig.map(|a| a.ip());
        let decided = decide_path(caller_ip, callee_ip, &legs);
        let (path, mut relay, a, b) = match decided {
            Some((p, r, a, b)) => (Some(p), r, Some(a), b),
            None => (None, None, caller_ip, callee_ip),
        };
        // The relay's own word for its address when it matches what the media shows.
        if let (Some(r), Some(g)) = (relay, self.relay_grant) {
            if r.ip() == g.ip() {
                relay = Some(g);
            }
        }
        let media_from = |ip: Option<IpAddr>| {
            ip.and_then(|ip| {
                legs.iter()
                    .filter(|l| l.src.ip() == ip)
                    .min_by_key(|l| (l.first, l.dst))
                    .map(|l| l.src)
            })
        };
        let (ab, ba) = match a {
            Some(a) => (
                dir_stats(a, b, &legs),
                b.map(|b| dir_stats(b, Some(a), &legs)),
            ),
            None => (DirStats::default(), None),
        };
        let last_media = legs.iter().map(|l| l.last).max();
        let end_ts = self.end.as_ref().map(|(t, _)| *t);
        let duration_ns = self
            .accept
            .and_then(|acc| end_ts.or(last_media).map(|e| e.since(acc).max(0)));
        let mut hold_ns = self.hold_ns;
        if let Some(h) = self.hold_since {
            hold_ns = hold_ns.saturating_add(end_ts.unwrap_or(self.last).since(h).max(0));
        }
        let start = self.invite.unwrap_or(self.first);
        CallRecord {
            call_id: self.id,
            caller: self.caller,
            callee: self.callee,
            caller_addr: media_from(a).or(self.caller_sig),
            callee_addr: media_from(b).or(self.callee_sig),
            start,
            setup_ringing_ns: self.invite.zip(self.ringing).map(|(i, r)| r.since(i)),
            setup_accept_ns: self.invite.zip(self.accept).map(|(i, r)| r.since(i)),
            duration_ns,
            end_reason: self.end.map_or(reason, |(_, r)| r),
            media_path: path,
            relay,
            ab,
            ba: ba.unwrap_or_default(),
            hold_ns,
            conference: self.conference,
            mixer: self.mixer,
            untracked_frames: self.untracked_frames,
        }
    }
}

/// Reconstructs calls from a stream of decoded messages; see the module doc.
#[derive(Debug)]
pub struct CallTracker {
    calls: BTreeMap<u32, Call>,
    capacity: usize,
    recent: VecDeque<u32>,
    recent_set: BTreeSet<u32>,
    now: Ts,
    next_sweep: Option<Ts>,
    evicted: u64,
}

impl Default for CallTracker {
    fn default() -> Self {
        CallTracker::new()
    }
}

impl CallTracker {
    pub fn new() -> CallTracker {
        CallTracker::with_capacity(MAX_CALLS)
    }

    /// A tracker holding at most `capacity` calls (clamped to 1..=[`MAX_CALLS`]).
    pub fn with_capacity(capacity: usize) -> CallTracker {
        CallTracker {
            calls: BTreeMap::new(),
            capacity: capacity.clamp(1, MAX_CALLS),
            recent: VecDeque::new(),
            recent_set: BTreeSet::new(),
            now: Ts(i64::MIN),
            next_sweep: None,
            evicted: 0,
        }
    }

    /// Calls tracked right now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Calls reported early to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Feeds one decoded message; calls that ended, idled or were evicted go to `out`.
    // Inlined up to the call id: most messages (keepalives, logins, lookups) have none.
    #[inline]
    pub fn message(&mut self, ctx: &MsgCtx, msg: &Message, out: &mut dyn FnMut(CallRecord)) {
        self.now = self.now.max(ctx.ts);
        if self.next_sweep.is_none_or(|t| self.now >= t) {
            self.next_sweep = Some(self.now.add_nanos(SWEEP_NS));
            self.sweep(out);
        }
        if msg.call_id.is_some() && msg.protocol == "skylark" {
            self.call_message(ctx, msg, out);
        }
    }

    /// [`Self::message`] for a Skylark message with a call id.
    fn call_message(&mut self, ctx: &MsgCtx, msg: &Message, out: &mut dyn FnMut(CallRecord)) {
        let Some(id) = msg.call_id.and_then(|c| u32::try_from(c).ok()) else {
            return;
        };
        if self.recent_set.contains(&id) {
            return;
        }
        // Length first: the map search is only needed once the table is full.
        if self.calls.len() >= self.capacity && !self.calls.contains_key(&id) {
            self.evict_one(out);
        }
        let conference = self.conference_of(msg);
        let call = self
            .calls
            .entry(id)
            .or_insert_with(|| Call::new(id, ctx.ts));
        call.first = call.first.min(ctx.ts);
        call.last = call.last.max(ctx.ts);
        match &msg.call {
            Some(CallInfo::Media { seq, timestamp }) => call.media(ctx, msg.len, *seq, *timestamp),
            Some(CallInfo::Signal(sig)) => call.signal(ctx, msg, Some(sig)),
            None => call.signal(ctx, msg, None),
        }
        if let (Some(c), None) = (conference, call.conference) {
            call.conference = Some(c.unwrap_or(id));
        }
    }

    /// For a conference invite: `Some(Some(first leg's id))` when another tracked leg has the
    /// same mixer and members, `Some(None)` for the first leg, `None` for other messages.
    fn conference_of(&self, msg: &Message) -> Option<Option<u32>> {
        let Some(CallInfo::Signal(sig)) = &msg.call else {
            return None;
        };
        let mixer = sig.mixer.as_deref()?;
        if msg.msg_type != "invite" {
            return None;
        }
        let mut members: Vec<&str> = sig.members.iter().map(String::as_str).collect();
        members.sort_unstable();
        let mut h = DefaultHasher::new();
        (mixer, members).hash(&mut h);
        let key = h.finish();
        let own = msg.call_id.and_then(|c| u32::try_from(c).ok());
        Some(
            self.calls
                .values()
                .filter(|c| c.members == Some(key) && Some(c.id) != own)
                .filter_map(|c| c.conference.map(|k| (c.invite.unwrap_or(c.first), k)))
                .min()
                .map(|(_, k)| k),
        )
    }

    fn evict_one(&mut self, out: &mut dyn FnMut(CallRecord)) {
        let oldest = self
            .calls
            .values()
            .min_by_key(|c| (c.last, c.id))
            .map(|c| c.id);
        if let Some(id) = oldest {
            self.evicted += 1;
            self.report(id, EndReason::Evicted, out);
        }
    }

    fn report(&mut self, id: u32, reason: EndReason, out: &mut dyn FnMut(CallRecord)) {
        if let Some(call) = self.calls.remove(&id) {
            out(call.record(reason));
            if self.recent.len() >= MAX_RECENT {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
            self.recent.push_back(id);
            self.recent_set.insert(id);
        }
    }

    /// Reports calls past their linger time or idle, in call-id order.
    fn sweep(&mut self, out: &mut dyn FnMut(CallRecord)) {
        let now = self.now;
        let due: Vec<(u32, EndReason)> = self
            .calls
            .values()
            .filter_map(|c| match &c.end {
                Some((t, _)) if now.since(*t) >= LINGER_NS => Some((c.id, EndReason::Eof)),
                _ if now.since(c.last) >= IDLE_NS => Some((c.id, EndReason::Idle)),
                _ => None,
            })
            .collect();
        for (id, reason) in due {
            self.report(id, reason, out);
        }
    }

    /// End of input: reports every call still tracked, by start time.
    pub fn finish(&mut self, out: &mut dyn FnMut(CallRecord)) {
        let mut rows: Vec<CallRecord> = std::mem::take(&mut self.calls)
            .into_values()
            .map(|c| c.record(EndReason::Eof))
            .collect();
        rows.sort_by_key(|r| (r.start, r.call_id));
        rows.into_iter().for_each(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Dir, Uid};
    use dissectors::registry::Status;
    use proptest::prelude::*;
    use std::borrow::Cow;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ctx(ts: i64, src: &str, dst: &str, tcp: bool) -> MsgCtx {
        MsgCtx {
            uid: Uid(1),
            live_index: 0,
            dir: Dir::Orig,
            ts: Ts(ts),
            src: sa(src),
            dst: sa(dst),
            proto: if tcp { 6 } else { 17 },
            digits: 9,
        }
    }

    fn msg(t: &'static str, call: u32, info: Option<CallInfo>) -> Message {
        Message {
            protocol: "skylark",
            msg_type: Cow::Borrowed(t),
            type_code: dissectors::skylark::MsgType::from_name(t).and_then(|t| t.type_code()),
            txn_id: None,
            call_id: Some(u64::from(call)),
            len: 87,
            status: Status::Complete,
            class: None,
            detail: None,
            call: info,
        }
    }

    fn sig(t: &'static str, call: u32, s: CallSignal) -> Message {
        msg(t, call, Some(CallInfo::Signal(Box::new(s))))
    }

    fn voice(call: u32, seq: u16, timestamp: u32) -> Message {
        msg("voice", call, Some(CallInfo::Media { seq, timestamp }))
    }

    fn invite(caller: &str, callee: &str) -> CallSignal {
        CallSignal {
            caller: Some(caller.into()),
            callee: Some(callee.into()),
            ..CallSignal::default()
        }
    }

    fn feed(seq: &[(i64, u16, u32)]) -> RtpStats {
        let mut r = RtpStats::default();
        for &(t, s, ts) in seq {
            r.update(Ts(t), s, ts);
        }
        r
    }

    #[test]
    fn in_order_frames_lose_nothing_and_have_no_jitter() {
        let frames: Vec<_> = (0..100u16)
            .map(|i| (i64::from(i) * 30 * MS, i, u32::from(i) * 240))
            .collect();
        let r = feed(&frames);
        assert_eq!((r.expected(), r.received(), r.lost()), (100, 100, 0));
        assert_eq!(r.loss_fraction(), 0.0);
        assert_eq!(r.jitter_ms(), 0.0);
    }

    #[test]
    fn gaps_are_lost_frames() {
        let r = feed(&[
            (0, 10, 0),
            (30 * MS, 11, 240),
            (120 * MS, 14, 960),
            (150 * MS, 15, 1200),
        ]);
        assert_eq!((r.expected(), r.received(), r.lost()), (6, 4, 2));
        assert!((r.loss_fraction() - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn sequence_wrap_around_is_extended_not_lost() {
        let frames: Vec<_> = (0..12u16)
            .map(|i| {
                let seq = 65530u16.wrapping_add(i);
                (i64::from(i) * 30 * MS, seq, u32::from(i) * 240)
            })
            .collect();
        let r = feed(&frames);
        assert_eq!((r.expected(), r.received(), r.lost()), (12, 12, 0));
    }

    #[test]
    fn reordered_frames_are_not_lost_and_duplicates_do_not_count_as_negative_loss() {
        let r = feed(&[
            (0, 1, 0),
            (30 * MS, 2, 240),
            (60 * MS, 4, 720),
            (61 * MS, 3, 480),
            (90 * MS, 5, 960),
        ]);
        assert_eq!((r.expected(), r.received(), r.lost()), (5, 5, 0));
        let r = feed(&[(0, 1, 0), (30 * MS, 2, 240), (31 * MS, 2, 240)]);
        assert_eq!(r.lost(), -1);
        assert_eq!(r.loss_fraction(), 0.0);
        // Reordered across the wrap: 65535 arrives after 0.
        let r = feed(&[
            (0, 65534, 0),
            (60 * MS, 0, 480),
            (61 * MS, 65535, 240),
            (90 * MS, 1, 720),
        ]);
        assert_eq!((r.expected(), r.received(), r.lost()), (4, 4, 0));
    }

    #[test]
    fn a_large_jump_restarts_the_sequence_once_confirmed() {
        let r = feed(&[
            (0, 10, 0),
            (30 * MS, 11, 240),
            (60 * MS, 20_000, 480),
            (90 * MS, 20_001, 720),
        ]);
        // RFC 3550 A.1: the first far frame is held as bad_seq; the second confirms a restart.
        assert_eq!((r.expected(), r.received(), r.lost()), (1, 1, 0));
        let r = feed(&[(0, 10, 0), (30 * MS, 20_000, 240), (60 * MS, 11, 480)]);
        assert_eq!((r.expected(), r.received()), (2, 2));
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        // D = +1 ms then −1 ms: J1 = 1/16, J2 = J1 + (1 − J1)/16.
        let r = feed(&[(0, 0, 0), (31 * MS, 1, 240), (60 * MS, 2, 480)]);
        assert!(
            (r.jitter_ms() - 0.12109375).abs() < 1e-9,
            "{}",
            r.jitter_ms()
        );
        // Timestamps wrapping at 2^32 with regular arrivals: no jitter.
        let base = u32::MAX - 300;
        let r = feed(&[
            (0, 0, base),
            (30 * MS, 1, base.wrapping_add(240)),
            (60 * MS, 2, base.wrapping_add(480)),
        ]);
        assert_eq!(r.jitter_ms(), 0.0);
        // A reordered frame is measured as it arrives (A.8 uses arrival order).
        let r = feed(&[(0, 0, 0), (60 * MS, 2, 480), (61 * MS, 1, 240)]);
        assert!(r.jitter_ms() > 0.0);
    }

    fn leg(src: &str, dst: &str, tcp: bool) -> Leg {
        Leg {
            src: sa(src),
            dst: sa(dst),
            tcp,
            frames: 10,
            bytes: 870,
            first: Ts(0),
            last: Ts(270 * MS),
            rtp: RtpStats::default(),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn path_decision() {
        let (a, b, r) = ("10.0.0.1:5000", "10.0.0.2:6000", "10.9.9.9:33033");
        let direct = [leg(a, b, false), leg(b, a, false)];
        let d = decide_path(ip("10.0.0.1"), ip("10.0.0.2"), &direct).unwrap();
        assert_eq!((d.0, d.1), (MediaPath::DirectUdp, None));
        // Without signalling: two hosts are direct too.
        assert_eq!(
            decide_path(None, None, &direct).unwrap().0,
            MediaPath::DirectUdp
        );
        let relayed = [
            leg(a, r, false),
            leg(r, b, false),
            leg(b, r, false),
            leg(r, a, false),
        ];
        let d = decide_path(ip("10.0.0.1"), ip("10.0.0.2"), &relayed).unwrap();
        assert_eq!((d.0, d.1), (MediaPath::RelayUdp, Some(sa(r))));
        let d = decide_path(None, None, &relayed).unwrap();
        assert_eq!((d.0, d.1), (MediaPath::RelayUdp, Some(sa(r))));
        // One leg a TCP stream to the relay.
        let mixed = [
            leg(a, r, true),
            leg(r, b, false),
            leg(b, r, false),
            leg(r, a, true),
        ];
        let d = decide_path(ip("10.0.0.1"), ip("10.0.0.2"), &mixed).unwrap();
        assert_eq!((d.0, d.1), (MediaPath::RelayTcp, Some(sa(r))));
        // Only the relay's outbound leg seen: the relay's source address.
        let d = decide_path(ip("10.0.0.1"), ip("10.0.0.2"), &[leg(r, b, false)]).unwrap();
        assert_eq!((d.0, d.1), (MediaPath::RelayUdp, Some(sa(r))));
        assert_eq!(decide_path(None, None, &[]), None);
        // Parties unknown and a lone leg: direct between its two ends.
        assert_eq!(
            decide_path(None, None, &[leg(a, b, true)]).unwrap().0,
            MediaPath::DirectTcp
        );
    }

    /// A full call: invite/ringing/accept forwarded once, 100 frames each way, hold, bye.
    fn run_call(t: &mut CallTracker, id: u32, t0: i64) -> Vec<CallRecord> {
        let mut out = Vec::new();
        let (a, b, sn) = ("10.0.0.1:5000", "10.0.0.2:6000", "10.9.9.9:33033");
        let mut put =
            |t: &mut CallTracker, c: MsgCtx, m: Message| t.message(&c, &m, &mut |r| out.push(r));
        put(
            t,
            ctx(t0, a, sn, true),
            sig("invite", id, invite("alice", "bob")),
        );
        put(
            t,
            ctx(t0 + 40 * MS, sn, b, true),
            sig("invite", id, invite("alice", "bob")),
        );
        put(
            t,
            ctx(t0 + 50 * MS, b, sn, true),
            sig("ringing", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 90 * MS, sn, a, true),
            sig("ringing", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 2 * S, b, sn, true),
            sig("accept", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 2 * S + 40 * MS, sn, a, true),
            sig("accept", id, CallSignal::default()),
        );
        for i in 0..100u16 {
            let at = t0 + 3 * S + i64::from(i) * 30 * MS;
            put(t, ctx(at, a, b, false), voice(id, i, u32::from(i) * 240));
            if i != 50 {
                put(
                    t,
                    ctx(at + MS, b, a, false),
                    voice(id, 1000 + i, u32::from(i) * 240),
                );
            }
        }
        put(
            t,
            ctx(t0 + 7 * S, a, sn, true),
            sig("hold", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 7 * S + 40 * MS, sn, b, true),
            sig("hold", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 8 * S, a, b, false),
            msg("hold-keepalive", id, None),
        );
        put(
            t,
            ctx(t0 + 9 * S, a, sn, true),
            sig("resume", id, CallSignal::default()),
        );
        put(
            t,
            ctx(t0 + 9 * S + 40 * MS, sn, b, true),
            sig("resume", id, CallSignal::default()),
        );
        let bye = CallSignal {
            reason: Some("hangup".into()),
            ..CallSignal::default()
        };
        put(
            t,
            ctx(t0 + 12 * S, a, sn, true),
            sig("bye", id, bye.clone()),
        );
        put(
            t,
            ctx(t0 + 12 * S + 40 * MS, sn, b, true),
            sig("bye", id, bye),
        );
        out
    }

    #[test]
    fn a_call_is_reconstructed_from_forwarded_signalling_and_media() {
        let mut t = CallTracker::new();
        assert!(run_call(&mut t, 7, 100 * S).is_empty());
        let mut out = Vec::new();
        t.finish(&mut |r| out.push(r));
        let [r] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(r.call_id, 7);
        assert_eq!(
            (r.caller.as_deref(), r.callee.as_deref()),
            (Some("alice"), Some("bob"))
        );
        assert_eq!(r.caller_addr, Some(sa("10.0.0.1:5000")));
        assert_eq!(r.callee_addr, Some(sa("10.0.0.2:6000")));
        assert_eq!(r.start, Ts(100 * S));
        assert_eq!(r.setup_ringing_ns, Some(50 * MS));
        assert_eq!(r.setup_accept_ns, Some(2 * S));
        assert_eq!(r.duration_ns, Some(10 * S));
        assert_eq!(r.end_reason, EndReason::Bye(Some("hangup".into())));
        assert_eq!(r.end_reason.to_string(), "bye:hangup");
        assert_eq!((r.media_path, r.relay), (Some(MediaPath::DirectUdp), None));
        assert_eq!((r.ab.packets, r.ba.packets), (100, 99));
        assert_eq!((r.ab.loss, r.ba.loss), (Some(0.0), Some(0.01)));
        assert_eq!(r.ab.jitter_ms, Some(0.0));
        // 87 bytes per 30 ms over 99 intervals.
        let kbps = r.ab.bitrate_kbps.unwrap();
        assert!(
            (kbps - 100.0 * 87.0 * 8.0 / 2.97 / 1000.0).abs() < 1e-9,
            "{kbps}"
        );
        assert_eq!(r.hold_ns, 2 * S);
        assert_eq!((r.conference, r.mixer.as_deref()), (None, None));
    }

    #[test]
    fn ended_calls_are_reported_after_the_linger_and_stragglers_ignored() {
        let mut t = CallTracker::new();
        run_call(&mut t, 7, 0);
        let mut out = Vec::new();
        let late = ctx(
            12 * S + LINGER_NS + S,
            "10.0.0.1:5000",
            "10.0.0.2:6000",
            false,
        );
        t.message(&late, &voice(7, 500, 0), &mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        assert!(t.is_empty(), "the straggler must not open a new call");
        t.finish(&mut |r| out.push(r));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn idle_calls_are_reported_and_open_ones_at_the_end() {
        let mut t = CallTracker::new();
        let mut out = Vec::new();
        let c = ctx(0, "10.0.0.1:1", "10.0.0.2:2", true);
        t.message(&c, &sig("invite", 1, invite("a", "b")), &mut |r| {
            out.push(r)
        });
        let c2 = ctx(IDLE_NS + S, "10.0.0.1:1", "10.0.0.2:2", true);
        t.message(&c2, &sig("invite", 2, invite("a", "b")), &mut |r| {
            out.push(r)
        });
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].call_id, &out[0].end_reason), (1, &EndReason::Idle));
        assert_eq!(out[0].media_path, None);
        t.finish(&mut |r| out.push(r));
        assert_eq!((out[1].call_id, &out[1].end_reason), (2, &EndReason::Eof));
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_active() {
        let mut t = CallTracker::with_capacity(2);
        let mut out = Vec::new();
        for id in 1..=3u32 {
            let c = ctx(i64::from(id) * MS, "10.0.0.1:1", "10.0.0.2:2", false);
            t.message(&c, &voice(id, 0, 0), &mut |r| out.push(r));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.evicted(), 1);
        assert_eq!(
            (out[0].call_id, &out[0].end_reason),
            (1, &EndReason::Evicted)
        );
    }

    #[test]
    fn rejects_cancels_and_error_responses_end_calls() {
        let mut t = CallTracker::new();
        let mut out = Vec::new();
        let (a, b) = ("10.0.0.1:1", "10.0.0.2:2");
        let mut put =
            |t: &mut CallTracker, c: MsgCtx, m: Message| t.message(&c, &m, &mut |r| out.push(r));
        put(
            &mut t,
            ctx(0, a, b, true),
            sig("invite", 1, invite("a", "b")),
        );
        let busy = CallSignal {
            error_code: Some(7),
            ..CallSignal::default()
        };
        put(&mut t, ctx(MS, b, a, true), sig("reject", 1, busy.clone()));
        put(
            &mut t,
            ctx(0, a, b, true),
            sig("invite", 2, invite("a", "b")),
        );
        put(
            &mut t,
            ctx(MS, a, b, true),
            sig("cancel", 2, CallSignal::default()),
        );
        put(
            &mut t,
            ctx(0, a, b, true),
            sig("invite", 3, invite("a", "b")),
        );
        put(&mut t, ctx(MS, b, a, true), sig("invite", 3, busy));
        t.finish(&mut |r| out.push(r));
        let reasons: Vec<String> = out.iter().map(|r| r.end_reason.to_string()).collect();
        assert_eq!(reasons, ["reject:busy", "cancel", "reject:busy"]);
        assert_eq!(out[0].duration_ns, None);
    }

    #[test]
    fn conference_legs_share_the_first_legs_id() {
        let mut t = CallTracker::new();
        let mut out = Vec::new();
        let conf = |caller: &str, callee: &str, members: &[&str]| CallSignal {
            mixer: Some("bob".into()),
            members: members.iter().map(|m| m.to_string()).collect(),
            ..invite(caller, callee)
        };
        let c = ctx(0, "10.0.0.1:1", "10.0.0.2:2", true);
        t.message(
            &c,
            &sig(
                "invite",
                10,
                conf("alice", "bob", &["alice", "bob", "carol"]),
            ),
            &mut |r| out.push(r),
        );
        let c = ctx(S, "10.0.0.2:2", "10.0.0.3:3", true);
        t.message(
            &c,
            &sig(
                "invite",
                20,
                conf("bob", "carol", &["carol", "alice", "bob"]),
            ),
            &mut |r| out.push(r),
        );
        let c = ctx(S, "10.0.0.2:2", "10.0.0.4:3", true);
        t.message(
            &c,
            &sig("invite", 30, conf("bob", "dave", &["bob", "dave"])),
            &mut |r| out.push(r),
        );
        t.finish(&mut |r| out.push(r));
        let conf: Vec<_> = out
            .iter()
            .map(|r| (r.call_id, r.conference, r.mixer.as_deref()))
            .collect();
        assert_eq!(
            conf,
            [
                (10, Some(10), Some("bob")),
                (20, Some(10), Some("bob")),
                (30, Some(30), Some("bob"))
            ]
        );
    }

    #[test]
    fn names_are_cut_and_made_printable() {
        assert_eq!(cut("ab\ncd", 64), "ab?cd");
        assert_eq!(cut(&"é".repeat(40), MAX_NAME_LEN).len(), 64);
        assert_eq!(cut("aé", 2), "a");
    }

    proptest! {
        #[test]
        fn rtp_stats_stay_sane(frames in proptest::collection::vec((0i64..100_000_000, any::<u16>(), any::<u32>()), 0..300)) {
            let mut r = RtpStats::default();
            let mut at = 0i64;
            for (dt, seq, ts) in frames {
                at += dt;
                r.update(Ts(at), seq, ts);
                let f = r.loss_fraction();
                prop_assert!((0.0..=1.0).contains(&f));
                prop_assert!(r.jitter_ms().is_finite() && r.jitter_ms() >= 0.0);
            }
        }

        #[test]
        fn the_tracker_never_exceeds_its_capacity(
            msgs in proptest::collection::vec((0u8..8, 0u32..12, 0i64..3_000_000_000, any::<u16>(), 0u8..4), 0..200)
        ) {
            let mut t = CallTracker::with_capacity(4);
            let mut rows = 0usize;
            let hosts = ["10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3", "10.0.0.4:4"];
            let mut at = 0;
            for (kind, id, dt, seq, h) in msgs {
                at += dt;
                let m = match kind {
                    0 => sig("invite", id, invite("a", "b")),
                    1 => sig("ringing", id, CallSignal::default()),
                    2 => sig("accept", id, CallSignal::default()),
                    3 => sig("bye", id, CallSignal::default()),
                    4 => sig("hold", id, CallSignal::default()),
                    5 => sig("resume", id, CallSignal::default()),
                    _ => voice(id, seq, u32::from(seq) * 240),
                };
                let src = hosts[usize::from(h)];
                let dst = hosts[usize::from((h + 1) % 4)];
                t.message(&ctx(at, src, dst, h == 3), &m, &mut |_| rows += 1);
                prop_assert!(t.len() <= 4);
            }
            t.finish(&mut |r| {
                rows += 1;
                assert!(r.hold_ns >= 0 && r.duration_ns.is_none_or(|d| d >= 0));
            });
            prop_assert!(t.is_empty());
            prop_assert!(rows <= 200);
        }
    }
}
