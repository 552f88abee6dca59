//! Lookups (PROTOCOL.md §8.6), calls (§8.7), media (§7) and conferences (§7.4) of the client.
//!
//! - **Lookup**: recursive search only (ring 0 over the SN session); the SN walks the rings.
//!   `EventKind::Lookup` reports `rings` = the `ring` field the SN put in its result (0 when
//!   absent: answered from its directory or cache) and `nodes` = nodes this client asked
//!   (1, its SN). Results are cached `lookup_cache_s`.
//! - **Caller**: `Lookup → [RelayWait] → [Connecting] → Calling ─ringing→ Ringing ─accept→
//!   Established ⇄ held → ended`; 10 s without `ringing` or 65 s without an answer: `cancel`.
//!   Signalling goes over a direct TCP connection when the callee is public, else over the
//!   SN session. Media path (§7.3): direct UDP when either side is public or both are cone;
//!   relayed UDP when a side is symmetric (or direct media brought nothing within 3 s of
//!   `accept`: `bye no-media`, then a new relayed call); relayed TCP for a UDP-blocked side.
//!   The invite of a relayed call also carries `relay-addr` and `relay-token` (known ids
//!   not listed for `invite`, ignored by other receivers per §4.5) so a UDP-blocked callee
//!   can open its TCP leg.
//! - **Callee**: `ringing` at once; `auto_answer` accepts, else the `answer` / `reject`
//!   commands, else `reject declined timeout` after 60 s; `busy` when already in a call.
//! - **Media**: one `voice` per `frame_ms` from accept to bye, never suppressed, synthetic
//!   payloads from [`synth_frame`] (deterministic per seed, call and sequence number), with
//!   `redundancy` previous frames; on hold `hold-keepalive` every `hold_keepalive_ms`.
//!   Direct paths latch onto the source address of received frames.
//! - **Conference**: the creator looks every member up and elects the mixer with
//!   [`elect_mixer`]. Each member is one ordinary call leg with the mixer (own call id, so SN
//!   forwarding and relays work per leg); the invite carries `members` and `mixer`. The
//!   mixer sends `mix` instead of `voice` on each leg and `conf-mixer` to every leg after
//!   each join or leave; members send `conf-join` after accepting. When the creator is not
//!   the mixer it invites only the mixer, which then invites the rest.

use super::login::user_list;
use super::{Client, ConnId, ConnKind, FAR, NatType, ms, secs};
use crate::peer::truth::{EventKind, MediaPath};
use crate::time::Ts;
use dissectors::skylark::MAX_REDUNDANCY;
use dissectors::skylark::codec::{Body, Media, Message};
use dissectors::skylark::header::Flags;
use dissectors::skylark::messages::{ErrorCode, FieldId, MsgType};
use dissectors::skylark::object::{Object, Value};
use rand::RngExt;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// Lookups in flight.
pub const MAX_LOOKUPS: usize = 32;
/// Cached lookup results.
pub const MAX_LOOKUP_CACHE: usize = 256;
/// Call legs at once (a conference mixer holds one per member).
pub const MAX_CALLS: usize = 16;
/// Conference members besides the creator.
pub const MAX_CONF_MEMBERS: usize = MAX_CALLS - 1;
/// Frames sent at once when the driver woke us late (older ones are skipped, like a real
/// audio clock would drop them).
pub const MAX_CATCHUP_FRAMES: u32 = 4;
/// sky-sim codec id (§5.3).
pub const CODEC_SKY_SIM: u32 = 1;

/// A directory entry (PROTOCOL.md §4.4 `entry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub user: String,
    pub status: u32,
    pub addr: Option<SocketAddr>,
    pub sn_addr: Option<SocketAddr>,
    pub nat: NatType,
}

impl Entry {
    pub fn from_object(o: &Object) -> Option<Entry> {
        let Value::List(items) = &o.value else {
            return None;
        };
        let mut e = Entry {
            user: String::new(),
            status: 0,
            addr: None,
            sn_addr: None,
            nat: NatType::Unknown,
        };
        for i in items {
            match (i.id, &i.value) {
                (FieldId::User, Value::Str(s)) => e.user = s.clone(),
                (FieldId::Status, Value::U32(v)) => e.status = *v,
                (FieldId::Addr, Value::Addr(a)) => e.addr = Some(*a),
                (FieldId::SnAddr, Value::Addr(a)) => e.sn_addr = Some(*a),
                (FieldId::NatType, Value::U32(v)) => e.nat = NatType::from_code(*v),
                _ => {}
            }
        }
        (!e.user.is_empty()).then_some(e)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    User,
    Call(u32),
    Conference,
}

#[derive(Debug)]
struct PendingLookup {
    txn: u32,
    target: String,
    deadline: Ts,
    purpose: Purpose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    Lookup,
    RelayWait,
    Connecting,
    Calling,
    Ringing,
    /// Callee side: invite received, ringing sent, no answer yet.
    Incoming,
    Established,
}

#[derive(Debug)]
struct Call {
    id: u32,
    peer: String,
    outgoing: bool,
    state: CallState,
    sig: Option<ConnId>,
    invite_txn: u32,
    relay_txn: u32,
    deadline: Option<Ts>,
    entry: Option<Entry>,
    path: MediaPath,
    relay: Option<SocketAddr>,
    relay_token: Option<Vec<u8>>,
    relay_conn: Option<ConnId>,
    relay_ready: bool,
    media_to: Option<SocketAddr>,
    frame_ms: u32,
    redundancy: u32,
    next_frame: Option<Ts>,
    hold: bool,
    next_keepalive: Option<Ts>,
    ka_seq: u32,
    seq: u16,
    timestamp: u32,
    history: VecDeque<Vec<u8>>,
    sent: u64,
    received: u64,
    no_media_deadline: Option<Ts>,
    relayed_retry: bool,
    /// Conference: all members (mixer included) and the mixer, from the invite.
    members: Vec<String>,
    mixer: Option<String>,
    /// This node mixes for this leg (sends `mix`).
    mixing: bool,
    mixer_announced: bool,
}

/// A conference being created here (lookups of the members, then the election).
#[derive(Debug)]
struct Conference {
    id: u32,
    members: Vec<String>,
    entries: HashMap<String, Entry>,
    waiting: usize,
}

/// Lookups, calls and conferences of a client.
#[derive(Debug, Default)]
pub(super) struct Calls {
    lookups: Vec<PendingLookup>,
    cache: HashMap<String, (Entry, Ts)>,
    calls: Vec<Call>,
    conf: Option<Conference>,
}

impl Calls {
    pub fn summary(&self) -> String {
        let est = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Established)
            .count();
        format!("{} ({} established)", self.calls.len(), est)
    }
}

/// What the mixer election knows of a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixerCandidate {
    pub name: String,
    /// nat-type code (§5.3); 1 = public.
    pub nat: u32,
    /// Declared uplink; directory entries carry none, so members other than the creator
    /// count 0.
    pub uplink_kbps: u32,
    pub is_creator: bool,
}

/// The "most powerful participant" (PROTOCOL.md §7.4): a public address first, then the
/// highest declared uplink, then the creator, then the smallest user name (so every
/// participant computing it gets the same answer). `None` for no candidates.
pub fn elect_mixer(c: &[MixerCandidate]) -> Option<usize> {
    c.iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            (a.nat == 1)
                .cmp(&(b.nat == 1))
                .then(a.uplink_kbps.cmp(&b.uplink_kbps))
                .then(a.is_creator.cmp(&b.is_creator))
                .then(b.name.cmp(&a.name))
        })
        .map(|(i, _)| i)
}

/// A deterministic synthetic voice frame of `len` bytes: xorshift64* noise seeded by
/// (`seed`, `call_id`, `seq`), so runs are reproducible and every frame differs.
pub fn synth_frame(seed: u64, call_id: u32, seq: u16, len: usize, out: &mut Vec<u8>) {
    let mut x = seed ^ (u64::from(call_id) << 16) ^ u64::from(seq) ^ 0x9e37_79b9_7f4a_7c15;
    if x == 0 {
        x = 1;
    }
    out.clear();
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let take = (len - out.len()).min(8);
        out.extend_from_slice(v.to_be_bytes().get(..take).unwrap_or_default());
    }
}

/// sky-sim frame bytes per frame interval (§5.3).
pub fn frame_bytes(frame_ms: u32) -> usize {
    match frame_ms {
        20 => 45,
        60 => 135,
        _ => 67,
    }
}

fn call_id_of(m: &Message) -> Option<u32> {
    m.call_id().filter(|c| *c != 0)
}

fn get_str(m: &Message, id: FieldId) -> Option<&str> {
    match m.get(id) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

fn get_addr(m: &Message, id: FieldId) -> Option<SocketAddr> {
    match m.get(id) {
        Some(Value::Addr(a)) => Some(*a),
        _ => None,
    }
}

fn get_u32(m: &Message, id: FieldId) -> Option<u32> {
    match m.get(id) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    }
}

impl Client {
    // ---------------------------------------------------------------- lookup

    pub(super) fn cmd_lookup(&mut self, user: &str) {
        if !self.is_online() {
            self.note("lookup: not online".into());
            return;
        }
        self.start_lookup(user, Purpose::User);
    }

    fn cached_entry(&self, user: &str) -> Option<Entry> {
        let ttl = secs(self.cfg.lookup_cache_s);
        self.calls
            .cache
            .get(user)
            .filter(|(_, t)| self.now.since(*t) < ttl)
            .map(|(e, _)| e.clone())
    }

    fn start_lookup(&mut self, user: &str, purpose: Purpose) {
        let Some(sn) = self.login.sn else {
            self.lookup_done(user, None, 0, purpose);
            return;
        };
        if self.calls.lookups.len() >= MAX_LOOKUPS || user.is_empty() || user.len() > 64 {
            self.stats.ignored += 1;
            self.lookup_done(user, None, 0, purpose);
            return;
        }
        let m = self.request(
            MsgType::Search,
            vec![
                Object::str(FieldId::Target, user),
                Object::u32(FieldId::Ring, 0),
            ],
        );
        self.send_tcp(sn.conn, &m);
        self.calls.lookups.push(PendingLookup {
            txn: m.txn_id,
            target: user.to_string(),
            deadline: self.now.add_nanos(ms(self.cfg.lookup_deadline_ms)),
            purpose,
        });
    }

    pub(super) fn on_lookup_reply(&mut self, m: &Message) {
        if !m.flags.is_response() {
            self.stats.unexpected += 1;
            return;
        }
        let Some(i) = self.calls.lookups.iter().position(|l| l.txn == m.txn_id) else {
            self.stats.unexpected += 1;
            return;
        };
        let l = self.calls.lookups.swap_remove(i);
        let entry = match (m.msg_type, m.flags.is_error()) {
            (MsgType::SearchResult, false) => m
                .objects()
                .iter()
                .find(|o| o.id == FieldId::Entry)
                .and_then(Entry::from_object)
                .filter(|e| e.user == l.target),
            _ => None,
        };
        let rings = get_u32(m, FieldId::Ring).unwrap_or(0);
        if let Some(e) = &entry {
            if self.calls.cache.len() >= MAX_LOOKUP_CACHE {
                let ttl = secs(self.cfg.lookup_cache_s);
                let now = self.now;
                self.calls.cache.retain(|_, (_, t)| now.since(*t) < ttl);
            }
            if self.calls.cache.len() < MAX_LOOKUP_CACHE {
                self.calls
                    .cache
                    .insert(e.user.clone(), (e.clone(), self.now));
            }
        }
        self.lookup_done(&l.target, entry, rings, l.purpose);
    }

    fn lookup_done(&mut self, target: &str, entry: Option<Entry>, rings: u32, p: Purpose) {
        let found = entry
            .as_ref()
            .filter(|e| e.status != 0)
            .and_then(|e| e.addr);
        self.out.event(
            self.now,
            EventKind::Lookup {
                target: target.to_string(),
                found,
                rings,
                nodes: u32::from(self.login.sn.is_some()),
            },
        );
        match p {
            Purpose::User => {}
            Purpose::Call(id) => self.call_resolved(id, entry),
            Purpose::Conference => self.conf_resolved(target, entry),
        }
    }

    // ---------------------------------------------------------------- commands

    fn active(&self) -> bool {
        !self.calls.calls.is_empty() || self.calls.conf.is_some()
    }

    fn new_call_id(&mut self) -> u32 {
        loop {
            let id = self.rng.random::<u32>();
            if id != 0 && !self.calls.calls.iter().any(|c| c.id == id) {
                return id;
            }
        }
    }

    fn blank_call(&self, id: u32, peer: &str, outgoing: bool, state: CallState) -> Call {
        Call {
            id,
            peer: peer.to_string(),
            outgoing,
            state,
            sig: None,
            invite_txn: 0,
            relay_txn: 0,
            deadline: None,
            entry: None,
            path: MediaPath::DirectUdp,
            relay: None,
            relay_token: None,
            relay_conn: None,
            relay_ready: false,
            media_to: None,
            frame_ms: self.cfg.frame_ms,
            redundancy: self.cfg.redundancy,
            next_frame: None,
            hold: false,
            next_keepalive: None,
            ka_seq: 0,
            seq: 0,
            timestamp: 0,
            history: VecDeque::new(),
            sent: 0,
            received: 0,
            no_media_deadline: None,
            relayed_retry: false,
            members: Vec::new(),
            mixer: None,
            mixing: false,
            mixer_announced: false,
        }
    }

    fn call_failed(&mut self, peer: &str, reason: String) {
        self.out.event(
            self.now,
            EventKind::CallFailed {
                peer: peer.to_string(),
                reason,
            },
        );
    }

    pub(super) fn cmd_call(&mut self, user: &str) {
        if !self.is_online() {
            self.call_failed(user, "not online".into());
            return;
        }
        if user == self.cfg.name || user.is_empty() || user.len() > 64 {
            self.call_failed(user, "bad callee".into());
            return;
        }
        if self.active() {
            self.call_failed(user, "already in a call".into());
            return;
        }
        self.place_call(user, Vec::new(), None, false);
    }

    /// Starts an outgoing leg (ordinary call, or a conference leg with members and mixer).
    fn place_call(
        &mut self,
        user: &str,
        members: Vec<String>,
        mixer: Option<String>,
        relayed: bool,
    ) {
        if self.calls.calls.len() >= MAX_CALLS {
            self.call_failed(user, "too many calls".into());
            return;
        }
        let id = self.new_call_id();
        let mut c = self.blank_call(id, user, true, CallState::Lookup);
        c.mixing = mixer.as_deref() == Some(self.cfg.name.as_str());
        c.members = members;
        c.mixer = mixer;
        c.relayed_retry = relayed;
        self.calls.calls.push(c);
        match self.cached_entry(user) {
            Some(e) => self.call_resolved(id, Some(e)),
            None => self.start_lookup(user, Purpose::Call(id)),
        }
    }

    fn idx(&self, id: u32) -> Option<usize> {
        self.calls.calls.iter().position(|c| c.id == id)
    }

    fn drop_call(&mut self, id: u32) -> Option<Call> {
        let i = self.idx(id)?;
        let c = self.calls.calls.swap_remove(i);
        if let Some(r) = c.relay_conn {
            self.close_conn(r);
        }
        if let Some(s) = c.sig {
            let shared = self.calls.calls.iter().any(|o| o.sig == Some(s));
            let is_sn = self.login.sn.is_some_and(|x| x.conn == s);
            if !shared && !is_sn {
                self.close_conn(s);
            }
        }
        Some(c)
    }

    fn call_resolved(&mut self, id: u32, entry: Option<Entry>) {
        let Some(i) = self.idx(id) else {
            return;
        };
        let peer = self
            .calls
            .calls
            .get(i)
            .map(|c| c.peer.clone())
            .unwrap_or_default();
        let Some(e) = entry.filter(|e| e.status != 0 && e.addr.is_some()) else {
            self.drop_call(id);
            self.call_failed(&peer, "offline (not-found)".into());
            return;
        };
        let me = self.login.nat;
        // §7.3: direct between two public parties, or two cone NATs (latching opens both
        // bindings); a NATed party calling a public one is relayed, as Skype was measured
        // to do (Baset & Schulzrinne §4.4).
        let direct = (me == NatType::Public && e.nat == NatType::Public)
            || (me == NatType::Cone && e.nat == NatType::Cone);
        let relay_needed = !direct;
        let Some(c) = self.calls.calls.get_mut(i) else {
            return;
        };
        c.entry = Some(e);
        if relay_needed || c.relayed_retry {
            self.request_relay(id);
        } else {
            self.send_invite(id);
        }
    }

    fn request_relay(&mut self, id: u32) {
        let Some(sn) = self.login.sn else {
            self.fail_call(id, "no super node for a relay");
            return;
        };
        let txn = self.txn();
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) else {
            return;
        };
        c.state = CallState::RelayWait;
        c.relay_txn = txn;
        c.sig = Some(sn.conn);
        c.deadline = Some(self.now.add_nanos(ms(self.cfg.register_wait_ms)));
        let m = Message::new(
            MsgType::RelayRequest,
            Flags::REQUEST,
            txn,
            vec![
                Object::u32(FieldId::CallId, id),
                Object::str(FieldId::Callee, &c.peer),
            ],
        );
        self.send_tcp(sn.conn, &m);
    }

    fn fail_call(&mut self, id: u32, reason: &str) {
        if let Some(c) = self.drop_call(id) {
            self.call_failed(&c.peer, reason.to_string());
        }
    }

    fn my_media_addr(&self) -> SocketAddr {
        match self.login.nat {
            NatType::Public | NatType::Cone | NatType::Symmetric => {
                self.login.reflexive.unwrap_or(self.cfg.addr)
            }
            _ => self.cfg.addr,
        }
    }

    fn send_invite(&mut self, id: u32) {
        let Some(i) = self.idx(id) else {
            return;
        };
        let direct = self
            .calls
            .calls
            .get(i)
            .and_then(|c| c.entry.as_ref())
            .filter(|e| e.nat == NatType::Public)
            .and_then(|e| e.addr);
        let sig = match direct {
            Some(a) => self.new_conn(ConnKind::PeerOut, a),
            None => self.login.sn.map(|s| s.conn),
        };
        let Some(sig) = sig else {
            self.fail_call(id, "no signalling path");
            return;
        };
        let Some(c) = self.calls.calls.get_mut(i) else {
            return;
        };
        c.sig = Some(sig);
        if direct.is_some() {
            c.state = CallState::Connecting;
            c.deadline = Some(self.now.add_nanos(ms(self.cfg.tcp_connect_timeout_ms)));
        } else {
            self.write_invite(id);
        }
    }

    fn write_invite(&mut self, id: u32) {
        let txn = self.txn();
        let media = self.my_media_addr();
        let now = self.now;
        let ring_wait = secs(self.cfg.ringing_wait_s);
        let name = self.cfg.name.clone();
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) else {
            return;
        };
        c.state = CallState::Calling;
        c.invite_txn = txn;
        c.deadline = Some(now.add_nanos(ring_wait));
        let mut objs = vec![
            Object::u32(FieldId::CallId, id),
            Object::str(FieldId::Caller, &name),
            Object::str(FieldId::Callee, &c.peer),
            Object::addr(FieldId::MediaAddr, c.relay.unwrap_or(media)),
            Object::list(
                FieldId::Codecs,
                vec![Object::u32(FieldId::Codec, CODEC_SKY_SIM)],
            ),
            Object::u32(FieldId::FrameMs, c.frame_ms),
            Object::u32(FieldId::Redundancy, c.redundancy),
        ];
        if let (Some(r), Some(t)) = (c.relay, &c.relay_token) {
            objs.push(Object::addr(FieldId::RelayAddr, r));
            objs.push(Object::blob(FieldId::RelayToken, t));
        }
        if let Some(mx) = &c.mixer {
            let users = c
                .members
                .iter()
                .map(|u| Object::str(FieldId::User, u))
                .collect();
            objs.push(Object::list(FieldId::Members, users));
            objs.push(Object::str(FieldId::Mixer, mx));
        }
        let sig = c.sig;
        let m = Message::new(MsgType::Invite, Flags::REQUEST, txn, objs);
        if let Some(s) = sig {
            self.send_tcp(s, &m);
        }
    }

    pub(super) fn peer_connected(&mut self, conn: ConnId) {
        let id = self
            .calls
            .calls
            .iter()
            .find(|c| c.sig == Some(conn) && c.state == CallState::Connecting)
            .map(|c| c.id);
        match id {
            Some(id) => self.write_invite(id),
            None => self.stats.unexpected += 1,
        }
    }

    pub(super) fn relay_connected(&mut self, conn: ConnId) {
        let Some(c) = self.calls.calls.iter().find(|c| c.relay_conn == Some(conn)) else {
            self.close_conn(conn);
            return;
        };
        let mut objs = vec![
            Object::u32(FieldId::CallId, c.id),
            Object::str(FieldId::Callee, &c.peer),
        ];
        if let Some(t) = &c.relay_token {
            objs.push(Object::blob(FieldId::RelayToken, t));
        }
        let m = self.request(MsgType::RelayRequest, objs);
        self.send_tcp(conn, &m);
    }

    fn open_relay_tcp(&mut self, id: u32) {
        let relay = self
            .idx(id)
            .and_then(|i| self.calls.calls.get(i))
            .and_then(|c| c.relay);
        let Some(r) = relay else {
            return;
        };
        let conn = self.new_conn(ConnKind::Relay, r);
        if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
            c.relay_conn = conn;
            c.path = MediaPath::RelayTcp;
        }
    }

    pub(super) fn cmd_hold(&mut self, hold: bool) {
        let ids: Vec<u32> = self
            .calls
            .calls
            .iter()
            .filter(|c| c.state == CallState::Established && c.hold != hold)
            .map(|c| c.id)
            .collect();
        if ids.is_empty() {
            self.note(format!(
                "{}: no established call",
                if hold { "hold" } else { "resume" }
            ));
            return;
        }
        for id in ids {
            let t = if hold { MsgType::Hold } else { MsgType::Resume };
            self.notify(id, t, None);
            self.set_hold(id, hold);
        }
    }

    fn set_hold(&mut self, id: u32, hold: bool) {
        let now = self.now;
        if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
            c.hold = hold;
            if hold {
                c.next_keepalive = Some(now);
                c.next_frame = None;
            } else {
                c.next_keepalive = None;
                c.next_frame = Some(now);
            }
        }
    }

    /// Sends a signalling notification (cancel, hold, resume, bye) on the call's path.
    fn notify(&mut self, id: u32, t: MsgType, reason: Option<&str>) {
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
            return;
        };
        let Some(sig) = c.sig else {
            return;
        };
        let mut objs = vec![Object::u32(FieldId::CallId, id)];
        if let Some(r) = reason {
            objs.push(Object::str(FieldId::Reason, r));
        }
        let m = self.request(t, objs);
        self.send_tcp(sig, &m);
    }

    pub(super) fn cmd_hangup(&mut self) {
        let ids: Vec<(u32, CallState, bool)> = self
            .calls
            .calls
            .iter()
            .map(|c| (c.id, c.state, c.outgoing))
            .collect();
        if ids.is_empty() {
            self.note("hangup: no call".into());
        }
        self.calls.conf = None;
        for (id, state, outgoing) in ids {
            match state {
                CallState::Established => {
                    self.notify(id, MsgType::Bye, Some("hangup"));
                    self.end_call(id, "hangup");
                }
                CallState::Incoming => self.reject(id, ErrorCode::Declined, "hangup"),
                CallState::Calling | CallState::Ringing if outgoing => {
                    self.notify(id, MsgType::Cancel, None);
                    self.end_call(id, "cancelled");
                }
                _ => self.end_call(id, "cancelled"),
            }
        }
    }

    fn end_call(&mut self, id: u32, reason: &str) {
        if let Some(c) = self.drop_call(id) {
            self.out.event(
                self.now,
                EventKind::CallEnd {
                    call_id: u64::from(c.id),
                    reason: format!("{reason} (sent {}, received {})", c.sent, c.received),
                },
            );
        }
    }

    pub(super) fn cmd_answer(&mut self, accept: bool) {
        let id = self
            .calls
            .calls
            .iter()
            .find(|c| c.state == CallState::Incoming)
            .map(|c| c.id);
        match (id, accept) {
            (Some(id), true) => self.accept(id),
            (Some(id), false) => self.reject(id, ErrorCode::Declined, "declined"),
            (None, _) => self.note("no incoming call".into()),
        }
    }

    // ---------------------------------------------------------------- callee

    fn reply(&mut self, conn: ConnId, t: MsgType, txn: u32, objs: Vec<Object>) {
        let m = Message::new(t, Flags::RESP, txn, objs);
        self.send_tcp(conn, &m);
    }

    fn on_invite(&mut self, conn: ConnId, m: &Message) {
        let id = call_id_of(m);
        let caller = get_str(m, FieldId::Caller).map(str::to_string);
        let callee = get_str(m, FieldId::Callee);
        let media = get_addr(m, FieldId::MediaAddr);
        let frame_ms = get_u32(m, FieldId::FrameMs);
        let (Some(id), Some(caller), Some(callee), Some(media), Some(frame_ms)) =
            (id, caller, callee, media, frame_ms)
        else {
            self.stats.malformed += 1;
            return;
        };
        let err = |code: ErrorCode| vec![Object::u32(FieldId::ErrorCode, code.into())];
        if callee != self.cfg.name {
            let m2 = Message::new(
                MsgType::Invite,
                Flags::ERR,
                m.txn_id,
                err(ErrorCode::NotFound),
            );
            self.send_tcp(conn, &m2);
            return;
        }
        let codec_ok = match m.get(FieldId::Codecs) {
            Some(Value::List(l)) => l.iter().any(|o| o.value == Value::U32(CODEC_SKY_SIM)),
            _ => false,
        };
        if !codec_ok || ![20, 30, 60].contains(&frame_ms) {
            let m2 = Message::new(
                MsgType::Invite,
                Flags::ERR,
                m.txn_id,
                err(ErrorCode::BadRequest),
            );
            self.send_tcp(conn, &m2);
            return;
        }
        let mixer = get_str(m, FieldId::Mixer).map(str::to_string);
        let conf_ok = mixer.is_some()
            && self.calls.calls.iter().all(|c| c.mixer.is_some())
            && self.calls.calls.len() < MAX_CALLS;
        if (self.active() && !conf_ok) || self.idx(id).is_some() {
            let mut o = err(ErrorCode::Busy);
            o.insert(0, Object::u32(FieldId::CallId, id));
            self.reply(conn, MsgType::Reject, m.txn_id, o);
            return;
        }
        let mut c = self.blank_call(id, &caller, false, CallState::Incoming);
        c.sig = Some(conn);
        c.invite_txn = m.txn_id;
        c.media_to = Some(media);
        c.frame_ms = frame_ms;
        c.redundancy = get_u32(m, FieldId::Redundancy)
            .unwrap_or(0)
            .min(self.cfg.redundancy);
        c.relay = get_addr(m, FieldId::RelayAddr);
        c.relay_token = match m.get(FieldId::RelayToken) {
            Some(Value::Blob(b)) => Some(b.clone()),
            _ => None,
        };
        if c.relay.is_some() {
            c.path = MediaPath::RelayUdp;
        }
        c.members = user_list(m, FieldId::Members);
        c.members.truncate(MAX_CONF_MEMBERS + 1);
        c.mixing = mixer.as_deref() == Some(self.cfg.name.as_str());
        c.mixer = mixer;
        c.deadline = Some(self.now.add_nanos(secs(self.cfg.answer_timeout_s)));
        self.calls.calls.push(c);
        self.reply(
            conn,
            MsgType::Ringing,
            m.txn_id,
            vec![Object::u32(FieldId::CallId, id)],
        );
        if self.cfg.auto_answer {
            self.accept(id);
        }
    }

    fn reject(&mut self, id: u32, code: ErrorCode, reason: &str) {
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
            return;
        };
        let (sig, txn, peer) = (c.sig, c.invite_txn, c.peer.clone());
        if let Some(s) = sig {
            self.reply(
                s,
                MsgType::Reject,
                txn,
                vec![
                    Object::u32(FieldId::CallId, id),
                    Object::u32(FieldId::ErrorCode, code.into()),
                    Object::str(FieldId::Reason, reason),
                ],
            );
        }
        self.drop_call(id);
        self.call_failed(&peer, format!("rejected incoming: {reason}"));
    }

    fn accept(&mut self, id: u32) {
        let media = self.my_media_addr();
        let blocked = self.login.nat == NatType::UdpBlocked;
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
            return;
        };
        let (sig, txn, relay) = (c.sig, c.invite_txn, c.relay);
        let Some(sig) = sig else {
            return;
        };
        self.reply(
            sig,
            MsgType::Accept,
            txn,
            vec![
                Object::u32(FieldId::CallId, id),
                Object::addr(FieldId::MediaAddr, relay.unwrap_or(media)),
                Object::u32(FieldId::Codec, CODEC_SKY_SIM),
            ],
        );
        if blocked && relay.is_some() {
            self.open_relay_tcp(id);
        }
        self.established(id, None);
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
            return;
        };
        let (mixer, members, mixing, peer) =
            (c.mixer.clone(), c.members.clone(), c.mixing, c.peer.clone());
        match mixer {
            Some(mx) if mixing => {
                // The creator invited us as mixer: invite the remaining members.
                self.announce_mixer(id, &mx);
                let others: Vec<String> = members
                    .iter()
                    .filter(|u| **u != self.cfg.name && **u != peer)
                    .cloned()
                    .collect();
                for u in others {
                    self.place_call(&u, members.clone(), Some(mx.clone()), false);
                }
                self.send_conf_mixer_all();
            }
            Some(_) => self.send_conf_join(sig, id, media),
            None => {}
        }
    }

    fn announce_mixer(&mut self, id: u32, mixer: &str) {
        if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
            if c.mixer_announced {
                return;
            }
            c.mixer_announced = true;
        }
        self.out.event(
            self.now,
            EventKind::ConferenceMixer {
                call_id: u64::from(id),
                mixer: mixer.to_string(),
            },
        );
    }

    /// Both sides: the call is up; start media and report the path.
    fn established(&mut self, id: u32, accept_media: Option<SocketAddr>) {
        let now = self.now;
        let no_media = ms(self.cfg.no_media_fallback_ms);
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) else {
            return;
        };
        c.state = CallState::Established;
        c.deadline = None;
        if c.path == MediaPath::DirectUdp {
            if let Some(a) = accept_media {
                c.media_to = Some(a);
            }
            if c.outgoing && !c.relayed_retry {
                c.no_media_deadline = Some(now.add_nanos(no_media));
            }
        } else if c.relay.is_some() {
            c.media_to = c.relay;
        }
        c.next_frame = Some(now);
        let (peer, path, relay) = (c.peer.clone(), c.path, c.relay);
        self.stats.calls_set_up += 1;
        self.out.event(
            now,
            EventKind::CallSetup {
                call_id: u64::from(id),
                peer,
                path,
                relay,
            },
        );
    }

    // ---------------------------------------------------------------- signalling input

    pub(super) fn on_peer_msg(&mut self, conn: ConnId, m: Message) {
        if m.msg_type.is_media() || m.msg_type == MsgType::HoldKeepalive {
            // Media on a TCP relay leg: no UDP source to latch onto.
            self.on_media(None, Some(conn), &m);
            return;
        }
        if m.flags.is_error() {
            self.on_error_reply(&m);
            return;
        }
        match m.msg_type {
            MsgType::Invite if !m.flags.is_response() => self.on_invite(conn, &m),
            MsgType::Ringing | MsgType::Accept | MsgType::Reject | MsgType::RelayGrant
                if m.flags.is_response() =>
            {
                self.on_answer(conn, &m)
            }
            MsgType::Cancel | MsgType::Hold | MsgType::Resume | MsgType::Bye => {
                self.on_notification(&m)
            }
            MsgType::ConfJoin | MsgType::ConfLeave | MsgType::ConfMixer => self.on_conf_msg(&m),
            _ => self.stats.unexpected += 1,
        }
    }

    fn on_error_reply(&mut self, m: &Message) {
        let code = ErrorCode::from(get_u32(m, FieldId::ErrorCode).unwrap_or(0));
        let id = self
            .calls
            .calls
            .iter()
            .find(|c| match m.msg_type {
                MsgType::Invite => c.outgoing && c.invite_txn == m.txn_id,
                MsgType::RelayRequest => c.relay_txn == m.txn_id,
                _ => false,
            })
            .map(|c| c.id);
        match id {
            Some(id) => {
                let why = if code == ErrorCode::NotFound {
                    "offline (not-found)".to_string()
                } else {
                    code.name().to_string()
                };
                self.fail_call(id, &why);
            }
            None if m.msg_type == MsgType::Search => self.on_lookup_reply(m),
            None => self.stats.unexpected += 1,
        }
    }

    fn on_answer(&mut self, conn: ConnId, m: &Message) {
        let Some(id) = call_id_of(m) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(i) = self.idx(id) else {
            self.stats.unexpected += 1;
            return;
        };
        let Some(c) = self.calls.calls.get_mut(i) else {
            return;
        };
        let ring_timeout = secs(self.cfg.caller_ring_timeout_s);
        match (m.msg_type, c.state) {
            (MsgType::Ringing, CallState::Calling) if c.outgoing => {
                c.state = CallState::Ringing;
                c.deadline = Some(self.now.add_nanos(ring_timeout));
            }
            (MsgType::Accept, CallState::Calling | CallState::Ringing) if c.outgoing => {
                let media = get_addr(m, FieldId::MediaAddr);
                let (mixer, mixing) = (c.mixer.clone(), c.mixing);
                self.established(id, media);
                if let Some(mx) = mixer {
                    self.announce_mixer(id, &mx);
                    if mixing {
                        self.send_conf_mixer_all();
                    } else {
                        // The creator's leg to the elected mixer: join it.
                        let me = self.my_media_addr();
                        self.send_conf_join(conn, id, me);
                    }
                }
            }
            (MsgType::Reject, CallState::Calling | CallState::Ringing) if c.outgoing => {
                let code = ErrorCode::from(get_u32(m, FieldId::ErrorCode).unwrap_or(0));
                let reason = get_str(m, FieldId::Reason).unwrap_or("");
                let why = format!("{} {reason}", code.name()).trim().to_string();
                self.fail_call(id, &why);
            }
            (MsgType::RelayGrant, CallState::RelayWait) if c.relay_txn == m.txn_id => {
                let addr = get_addr(m, FieldId::RelayAddr);
                let token = match m.get(FieldId::RelayToken) {
                    Some(Value::Blob(b)) => Some(b.clone()),
                    _ => None,
                };
                let Some(addr) = addr else {
                    self.stats.malformed += 1;
                    return;
                };
                c.relay = Some(addr);
                c.relay_token = token;
                c.path = MediaPath::RelayUdp;
                if self.login.nat == NatType::UdpBlocked {
                    self.open_relay_tcp(id);
                }
                self.send_invite_via_sn(id);
            }
            (MsgType::RelayGrant, _) if c.relay_conn == Some(conn) => c.relay_ready = true,
            _ => self.stats.unexpected += 1,
        }
    }

    /// Relayed calls signal through the SN (the callee may be behind any NAT).
    fn send_invite_via_sn(&mut self, id: u32) {
        let sn = self.login.sn.map(|s| s.conn);
        if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
            c.sig = sn;
        }
        self.write_invite(id);
    }

    fn on_notification(&mut self, m: &Message) {
        let Some(id) = call_id_of(m) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(state) = self
            .idx(id)
            .and_then(|i| self.calls.calls.get(i))
            .map(|c| c.state)
        else {
            self.stats.unexpected += 1;
            return;
        };
        match (m.msg_type, state) {
            (MsgType::Cancel, CallState::Incoming) => {
                self.end_call(id, "cancelled by caller");
            }
            (MsgType::Hold, CallState::Established) => self.set_hold(id, true),
            (MsgType::Resume, CallState::Established) => self.set_hold(id, false),
            (MsgType::Bye, _) => {
                let r = get_str(m, FieldId::Reason).unwrap_or("bye").to_string();
                self.end_call(id, &format!("remote {r}"));
                self.conf_member_left(id);
            }
            _ => self.stats.unexpected += 1,
        }
    }

    pub(super) fn call_conn_lost(&mut self, conn: ConnId) {
        let ids: Vec<(u32, CallState, bool)> = self
            .calls
            .calls
            .iter()
            .filter(|c| c.sig == Some(conn) || c.relay_conn == Some(conn))
            .map(|c| (c.id, c.state, c.relay_conn == Some(conn)))
            .collect();
        for (id, state, relay) in ids {
            if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
                if relay {
                    c.relay_conn = None;
                } else {
                    c.sig = None;
                }
            }
            match state {
                CallState::Established => self.end_call(id, "connection closed"),
                // A public callee that cannot be reached directly: try through the SN.
                CallState::Connecting if !relay && self.login.sn.is_some() => {
                    self.send_invite_via_sn(id)
                }
                _ => self.fail_call(id, "callee unreachable"),
            }
        }
    }

    /// Whether a call uses this connection (accepted connections without one are closed
    /// after [`super::MAX_IDLE_ACCEPTED_S`]).
    pub(super) fn conn_in_use(&self, conn: ConnId) -> bool {
        self.calls
            .calls
            .iter()
            .any(|c| c.sig == Some(conn) || c.relay_conn == Some(conn))
    }

    // ---------------------------------------------------------------- conference

    pub(super) fn cmd_conference(&mut self, users: &[&str]) {
        if !self.is_online() || self.active() {
            self.note("conference: not online or already in a call".into());
            return;
        }
        let mut members: Vec<String> = Vec::new();
        for u in users.iter().take(MAX_CONF_MEMBERS) {
            if *u != self.cfg.name && !members.iter().any(|m| m == u) && !u.is_empty() {
                members.push((*u).to_string());
            }
        }
        let id = self.new_call_id();
        self.calls.conf = Some(Conference {
            id,
            members: members.clone(),
            entries: HashMap::new(),
            waiting: members.len(),
        });
        for u in members {
            match self.cached_entry(&u) {
                Some(e) => self.conf_resolved(&u, Some(e)),
                None => self.start_lookup(&u, Purpose::Conference),
            }
        }
    }

    fn conf_resolved(&mut self, user: &str, entry: Option<Entry>) {
        let Some(conf) = self.calls.conf.as_mut() else {
            return;
        };
        conf.waiting = conf.waiting.saturating_sub(1);
        match entry.filter(|e| e.status != 0 && e.addr.is_some()) {
            Some(e) => {
                conf.entries.insert(user.to_string(), e);
            }
            None => conf.members.retain(|m| m != user),
        }
        if conf.waiting > 0 {
            return;
        }
        let Some(conf) = self.calls.conf.take() else {
            return;
        };
        if conf.members.is_empty() {
            self.note("conference: no member reachable".into());
            return;
        }
        let mut cands = vec![MixerCandidate {
            name: self.cfg.name.clone(),
            nat: self.login.nat.code(),
            uplink_kbps: self.cfg.uplink_kbps,
            is_creator: true,
        }];
        for m in &conf.members {
            let nat = conf.entries.get(m).map_or(0, |e| e.nat.code());
            cands.push(MixerCandidate {
                name: m.clone(),
                nat,
                uplink_kbps: 0,
                is_creator: false,
            });
        }
        let mixer = elect_mixer(&cands)
            .and_then(|i| cands.get(i))
            .map(|c| c.name.clone())
            .unwrap_or_else(|| self.cfg.name.clone());
        self.out.event(
            self.now,
            EventKind::ConferenceMixer {
                call_id: u64::from(conf.id),
                mixer: mixer.clone(),
            },
        );
        let mut all = vec![self.cfg.name.clone()];
        all.extend(conf.members.iter().cloned());
        if mixer == self.cfg.name {
            for m in &conf.members {
                self.place_call(m, all.clone(), Some(mixer.clone()), false);
            }
        } else {
            self.place_call(&mixer, all, Some(mixer.clone()), false);
        }
        for c in self.calls.calls.iter_mut() {
            c.mixer_announced = true;
        }
    }

    fn on_conf_msg(&mut self, m: &Message) {
        let Some(id) = call_id_of(m) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
            self.stats.unexpected += 1;
            return;
        };
        match m.msg_type {
            MsgType::ConfJoin | MsgType::ConfLeave if c.mixing => {
                if m.msg_type == MsgType::ConfLeave {
                    self.notify(id, MsgType::Bye, Some("left"));
                    self.end_call(id, "member left");
                }
                self.send_conf_mixer_all();
            }
            MsgType::ConfMixer if !c.mixing => {
                let mixer = get_str(m, FieldId::Mixer).unwrap_or("").to_string();
                let members = user_list(m, FieldId::Members);
                if let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get_mut(i)) {
                    c.members = members;
                    if let Some(a) = get_addr(m, FieldId::MediaAddr) {
                        if c.path == MediaPath::DirectUdp {
                            c.media_to = Some(a);
                        }
                    }
                }
                self.announce_mixer(id, &mixer);
            }
            _ => self.stats.unexpected += 1,
        }
    }

    fn conf_member_left(&mut self, _id: u32) {
        if self.calls.calls.iter().any(|c| c.mixing) {
            self.send_conf_mixer_all();
        }
    }

    /// `conf-join` on the signalling connection `conn`: this member's media address for
    /// the conference's mixer (PROTOCOL.md §6.3).
    fn send_conf_join(&mut self, conn: ConnId, id: u32, media: SocketAddr) {
        let m = self.request(
            MsgType::ConfJoin,
            vec![
                Object::u32(FieldId::CallId, id),
                Object::str(FieldId::User, &self.cfg.name),
                Object::addr(FieldId::MediaAddr, media),
            ],
        );
        self.send_tcp(conn, &m);
    }

    /// Mixer: tells every established leg who is in the conference.
    fn send_conf_mixer_all(&mut self) {
        let mut members = vec![self.cfg.name.clone()];
        members.extend(
            self.calls
                .calls
                .iter()
                .filter(|c| c.mixing && c.state == CallState::Established)
                .map(|c| c.peer.clone()),
        );
        let legs: Vec<(u32, Option<ConnId>)> = self
            .calls
            .calls
            .iter()
            .filter(|c| c.mixing && c.state == CallState::Established)
            .map(|c| (c.id, c.sig))
            .collect();
        let media = self.my_media_addr();
        for (id, sig) in legs {
            let Some(sig) = sig else {
                continue;
            };
            let users = members
                .iter()
                .map(|u| Object::str(FieldId::User, u))
                .collect();
            let m = self.request(
                MsgType::ConfMixer,
                vec![
                    Object::u32(FieldId::CallId, id),
                    Object::str(FieldId::Mixer, &self.cfg.name),
                    Object::addr(FieldId::MediaAddr, media),
                    Object::list(FieldId::Members, users),
                ],
            );
            self.send_tcp(sig, &m);
        }
    }

    // ---------------------------------------------------------------- media

    pub(super) fn on_media(
        &mut self,
        from: Option<SocketAddr>,
        _conn: Option<ConnId>,
        m: &Message,
    ) {
        let id = m.txn_id;
        let hk_id = if m.msg_type == MsgType::HoldKeepalive {
            call_id_of(m)
        } else {
            Some(id)
        };
        let Some(c) = hk_id
            .and_then(|id| self.idx(id))
            .and_then(|i| self.calls.calls.get_mut(i))
        else {
            self.stats.unexpected += 1;
            return;
        };
        if c.state != CallState::Established {
            self.stats.unexpected += 1;
            return;
        }
        if matches!(m.body, Body::Media(_)) {
            c.received += 1;
            self.stats.voice_received += 1;
        }
        c.no_media_deadline = None;
        if c.path == MediaPath::DirectUdp {
            if let Some(f) = from {
                // §7.3: latch onto the source of received frames.
                c.media_to = Some(f);
            }
        }
    }

    fn send_frames(&mut self, i: usize) {
        let now = self.now;
        let seed = self.cfg.seed;
        let Some(c) = self.calls.calls.get_mut(i) else {
            return;
        };
        let Some(mut next) = c.next_frame else {
            return;
        };
        let step = ms(u64::from(c.frame_ms));
        let behind = now.since(next) / step.max(1);
        if behind >= i64::from(MAX_CATCHUP_FRAMES) {
            let skip = behind - i64::from(MAX_CATCHUP_FRAMES) + 1;
            next = next.add_nanos(skip.saturating_mul(step));
            let skip16 = u16::try_from(skip.min(i64::from(u16::MAX))).unwrap_or(u16::MAX);
            c.seq = c.seq.wrapping_add(skip16);
            c.timestamp = c
                .timestamp
                .wrapping_add((8 * c.frame_ms).wrapping_mul(u32::from(skip16)));
        }
        let len = frame_bytes(c.frame_ms);
        let mut msgs = Vec::new();
        while next <= now {
            let mut payload = Vec::with_capacity(len);
            synth_frame(seed, c.id, c.seq, len, &mut payload);
            let redundancy: Vec<Vec<u8>> = c
                .history
                .iter()
                .take(c.redundancy as usize)
                .cloned()
                .collect();
            let media = Media {
                seq: c.seq,
                timestamp: c.timestamp,
                codec: CODEC_SKY_SIM as u8,
                redundancy,
                payload: payload.clone(),
            };
            if c.redundancy > 0 {
                c.history.push_front(payload);
                c.history.truncate(MAX_REDUNDANCY);
            }
            let t = if c.mixing {
                MsgType::Mix
            } else {
                MsgType::Voice
            };
            msgs.push(Message::media(t, c.id, media));
            c.seq = c.seq.wrapping_add(1);
            c.timestamp = c.timestamp.wrapping_add(8 * c.frame_ms);
            c.sent += 1;
            next = next.add_nanos(step);
        }
        c.next_frame = Some(next);
        let (to, tcp) = media_route(c);
        for m in msgs {
            self.stats.voice_sent += 1;
            self.send_media(to, tcp, &m);
        }
    }

    fn send_media(&mut self, to: Option<SocketAddr>, tcp: Option<ConnId>, m: &Message) {
        match (tcp, to) {
            (Some(conn), _) => self.send_tcp(conn, m),
            (None, Some(to)) => self.send_udp(to, m),
            (None, None) => self.stats.ignored += 1,
        }
    }

    fn send_hold_keepalive(&mut self, i: usize) {
        let now = self.now;
        let period = ms(self.cfg.hold_keepalive_ms.max(1));
        let Some(c) = self.calls.calls.get_mut(i) else {
            return;
        };
        let Some(next) = c.next_keepalive.filter(|t| *t <= now) else {
            return;
        };
        c.ka_seq = c.ka_seq.wrapping_add(1);
        c.next_keepalive = Some(next.add_nanos(period).max(now));
        let (id, seq) = (c.id, c.ka_seq);
        let (to, tcp) = media_route(c);
        let m = self.request(
            MsgType::HoldKeepalive,
            vec![
                Object::u32(FieldId::CallId, id),
                Object::u32(FieldId::Seq, seq),
            ],
        );
        self.stats.hold_keepalives_sent += 1;
        self.send_media(to, tcp, &m);
    }

    // ---------------------------------------------------------------- timers

    pub(super) fn call_timers(&mut self) {
        let now = self.now;
        let mut expired = Vec::new();
        self.calls.lookups.retain(|l| {
            if l.deadline <= now {
                expired.push((l.target.clone(), l.purpose.clone()));
                false
            } else {
                true
            }
        });
        for (t, p) in expired {
            self.lookup_done(&t, None, 0, p);
        }
        let due: Vec<(u32, CallState, bool)> = self
            .calls
            .calls
            .iter()
            .filter(|c| c.deadline.is_some_and(|d| d <= now))
            .map(|c| (c.id, c.state, c.outgoing))
            .collect();
        for (id, state, outgoing) in due {
            match state {
                CallState::Incoming => self.reject(id, ErrorCode::Declined, "timeout"),
                CallState::Calling if outgoing => {
                    self.notify(id, MsgType::Cancel, None);
                    self.fail_call(id, "no ringing (timeout)");
                }
                CallState::Ringing if outgoing => {
                    self.notify(id, MsgType::Cancel, None);
                    self.fail_call(id, "no answer (timeout)");
                }
                _ => self.fail_call(id, "timeout"),
            }
        }
        let no_media: Vec<u32> = self
            .calls
            .calls
            .iter()
            .filter(|c| c.no_media_deadline.is_some_and(|d| d <= now) && c.received == 0)
            .map(|c| c.id)
            .collect();
        for id in no_media {
            // §7.3: no frame within 3 s of accept on a direct path: bye, redial relayed.
            let Some(c) = self.idx(id).and_then(|i| self.calls.calls.get(i)) else {
                continue;
            };
            let (peer, members, mixer) = (c.peer.clone(), c.members.clone(), c.mixer.clone());
            self.notify(id, MsgType::Bye, Some("no-media"));
            self.end_call(id, "no-media");
            self.place_call(&peer, members, mixer, true);
        }
        for i in 0..self.calls.calls.len() {
            let Some(c) = self.calls.calls.get(i) else {
                break;
            };
            if c.state != CallState::Established {
                continue;
            }
            if c.hold {
                self.send_hold_keepalive(i);
            } else if c.next_frame.is_some_and(|t| t <= now) {
                self.send_frames(i);
            }
        }
    }

    pub(super) fn calls_deadline(&self) -> Ts {
        let mut d = FAR;
        for l in &self.calls.lookups {
            d = d.min(l.deadline);
        }
        for c in &self.calls.calls {
            for t in [c.deadline, c.no_media_deadline] {
                d = super::min_opt(d, t);
            }
            if c.state == CallState::Established {
                d = super::min_opt(
                    d,
                    if c.hold {
                        c.next_keepalive
                    } else {
                        c.next_frame
                    },
                );
            }
        }
        d
    }
}

/// Where a call's media goes: the relay TCP leg once granted, else a UDP address.
fn media_route(c: &Call) -> (Option<SocketAddr>, Option<ConnId>) {
    match (c.path, c.relay_conn) {
        (MediaPath::RelayTcp, Some(conn)) if c.relay_ready => (None, Some(conn)),
        (MediaPath::RelayTcp, _) => (None, None),
        _ => (c.media_to, None),
    }
}
