//! The super node (PROTOCOL.md §8.4, §8.6, §8.7, §7.3): one UDP and TCP port (plus optional
//! TCP fallback ports) serving host-cache probes, NAT pings, STUN, client registrations,
//! the directory, lookups, signalling forwarding and media relaying.
//!
//! - UDP (from anyone, [`SuperNodeConfig::udp_rate_per_s`] requests per second per source
//!   IP): `hc-probe`, `fallback-probe`, `nat-ping`, STUN Binding, local-lookup `search`;
//!   `search-result`s / `not-found`s of the SNs this node asked; relayed media.
//! - TCP client connections start UNREGISTERED (only `hc-probe`, `sn-register`, and a
//!   `relay-request` carrying a grant's token are served; other requests get
//!   `unauthenticated`) and become REGISTERED with a credential signed by the login server
//!   (Ed25519, checked against [`SuperNodeConfig::ls_key`]), unexpired and naming the user.
//! - SN links: TCP connections this node opens to other SNs, and accepted connections from
//!   the IP address of an SN in its host cache, carry forwarded signalling (§8.7) both ways.
//!
//! Guarantees: malformed or unexpected input is dropped and counted in [`SnStats`] (TCP:
//! the connection closes), never a panic; every table is bounded (`MAX_*` here and in the
//! submodules); relays only serve calls granted to registered clients, within a per-call
//! bandwidth cap. Must not: forward a local lookup, touch sockets, clocks or files.

pub mod calls;
pub mod directory;
pub mod lookup;
pub mod relay;

use self::calls::Calls;
use self::directory::{Entry, NAT_TYPE_MAX, STATUS_MAX, STATUS_OFFLINE, STATUS_ONLINE, Table};
use self::lookup::{MAX_RINGS, MAX_SEARCHES, Search, referral_ring};
use self::relay::{Drop, Leg, Relays, TOKEN_LEN};
use super::accounts::valid_user;
use super::auth::Credential;
use super::conns::Conns;
pub use super::conns::MAX_CONNS;
use super::error::PeerError;
use super::io::{ConnId, Input, Listen, Node, Output, TcpEvent};
use super::login_server::{
    NO_DEADLINE, error_response, get_blob, get_list, get_str, get_u32, get_u64, secs, unix_secs,
};
use super::outbox::{Dest, Outbox};
use super::stream::{FrameReader, drain_frames};
use super::truth::{EventKind, Role, Transport, skylark_txn_id};
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use dissectors::skylark::codec::{Message, MessageView};
use dissectors::skylark::object::{Object, Value};
use dissectors::skylark::{Dir, ErrorCode, FieldId, Flags, MsgType};
use dissectors::stun::{MessageType as StunType, StunMessage, StunView};
use ed25519_dalek::VerifyingKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::{IpAddr, SocketAddr};

/// PROTOCOL.md §8.4: other SNs a node keeps.
pub const MAX_HOST_CACHE: usize = 200;
/// PROTOCOL.md §6.1: sn-list in probe answers and registration acks.
pub const MAX_SN_LIST: usize = 20;
/// Entries in one presence-report (keeps the body under MAX_BODY_LEN with IPv6 entries).
pub const MAX_PRESENCE_ENTRIES: usize = 100;
/// Messages queued on an SN link while it connects.
pub const MAX_LINK_PENDING: usize = 64;
/// Sources tracked by the UDP rate limiter.
pub const MAX_RATE_SOURCES: usize = 65_536;

/// Super node configuration; defaults are PROTOCOL.md §8.9's.
#[derive(Clone, Debug)]
pub struct SuperNodeConfig {
    pub name: String,
    /// UDP and TCP address (the node's one port).
    pub addr: SocketAddr,
    /// The login server's Ed25519 public key.
    pub ls_key: [u8; 32],
    /// Other SNs: the initial host cache (mesh neighbours, lookup rings).
    pub peers: Vec<SocketAddr>,
    pub seed: u64,
    /// `None`: drawn from the seeded RNG.
    pub node_id: Option<u64>,
    /// Extra TCP listening addresses (ports 80 and 443 on a public node, §2.2).
    pub fallback_tcp: Vec<SocketAddr>,
    pub software: String,
    /// Registered clients at most (§8.4).
    pub capacity: usize,
    pub ttl_s: u64,
    pub idle_close_s: u64,
    pub udp_rate_per_s: u32,
    pub ring_sizes: Vec<usize>,
    pub ring_wait_ms: u64,
    pub search_deadline_s: u64,
    pub cache_s: u64,
    pub call_linger_s: u64,
    pub relay_idle_s: u64,
    /// Relayed bytes per second per call (both directions together).
    pub relay_cap_bps: u64,
}

impl Default for SuperNodeConfig {
    fn default() -> Self {
        SuperNodeConfig {
            name: "supernode".into(),
            addr: SocketAddr::from(([0, 0, 0, 0], 33033)),
            ls_key: [0; 32],
            peers: Vec::new(),
            seed: 0,
            node_id: None,
            fallback_tcp: Vec::new(),
            software: "skylark-sn/1.0.0".into(),
            capacity: 500,
            ttl_s: 259_200,
            idle_close_s: 180,
            udp_rate_per_s: 10,
            ring_sizes: vec![8, 16, 32, 64],
            ring_wait_ms: 1000,
            search_deadline_s: 10,
            cache_s: 300,
            call_linger_s: 30,
            relay_idle_s: 30,
            // A 30 ms voice call is ~2.9 kB/s each way; leave room for redundancy 4.
            relay_cap_bps: 32_000,
        }
    }
}

/// What the super node counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnStats {
    pub udp_in: u64,
    pub malformed_udp: u64,
    pub malformed_tcp: u64,
    pub stun_answered: u64,
    pub stun_dropped: u64,
    pub rate_limited: u64,
    pub unauthenticated: u64,
    pub registered: u64,
    pub register_auth_failed: u64,
    pub register_expired: u64,
    pub overloaded: u64,
    pub bad_request: u64,
    pub local_lookups: u64,
    pub recursive_searches: u64,
    pub searches_found: u64,
    pub searches_not_found: u64,
    pub referrals: u64,
    pub forwarded: u64,
    pub callee_not_registered: u64,
    pub unknown_call: u64,
    pub relay_grants: u64,
    pub relay_refused: u64,
    pub relayed_frames: u64,
    pub relay_dropped: u64,
    /// Well-formed messages nobody asked for (stray responses, notifications out of place).
    pub unexpected: u64,
    pub idle_closed: u64,
    pub refused_conns: u64,
    pub unknown_conn: u64,
    /// Promoted clients learned from `sn-refresh` sn-addr (§8.10).
    pub sns_learned: u64,
}

#[derive(Debug)]
enum Kind {
    /// A client connection; `Some(user)` once registered.
    Client(Option<String>),
    /// Accepted from a known SN's address.
    PeerIn,
    /// Opened by this node to another SN; messages wait in `pending` until connected.
    PeerOut {
        to: SocketAddr,
        pending: Option<Vec<Message>>,
    },
}

struct Conn {
    kind: Kind,
    remote: Option<SocketAddr>,
    reader: FrameReader,
}

struct RateWindow {
    start: Ts,
    count: u32,
    warned: bool,
}

enum Rate {
    Allow,
    WarnOnce,
    Silent,
}

/// The super node state machine.
pub struct SuperNode {
    cfg: SuperNodeConfig,
    ls_key: Option<VerifyingKey>,
    node_id: u64,
    rng: ChaCha8Rng,
    out: Outbox,
    conns: Conns<Conn>,
    host_cache: Vec<SocketAddr>,
    peer_ips: HashSet<IpAddr>,
    directory: Table,
    cache: Table,
    searches: HashMap<u32, Search>,
    next_txn: u32,
    calls: Calls,
    relays: Relays,
    links: HashMap<SocketAddr, ConnId>,
    next_conn: u64,
    rate: HashMap<IpAddr, RateWindow>,
    stats: SnStats,
}

fn is_media(t: MsgType) -> bool {
    matches!(t, MsgType::Voice | MsgType::Mix | MsgType::HoldKeepalive)
}

fn is_signalling(t: MsgType) -> bool {
    t.family() == dissectors::skylark::Family::Signalling
        && !matches!(t, MsgType::RelayRequest | MsgType::RelayGrant)
}

impl SuperNode {
    pub fn new(cfg: SuperNodeConfig) -> Result<SuperNode, PeerError> {
        if cfg.ring_sizes.is_empty() || cfg.ring_sizes.len() > MAX_RINGS {
            return Err(PeerError::Config(format!(
                "ring_sizes: 1 to {MAX_RINGS} rings"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let node_id = cfg.node_id.unwrap_or_else(|| rng.next_u64());
        let next_txn = rng.next_u32();
        let mut host_cache: Vec<SocketAddr> = Vec::new();
        for p in &cfg.peers {
            if *p != cfg.addr && !host_cache.contains(p) && host_cache.len() < MAX_HOST_CACHE {
                host_cache.push(*p);
            }
        }
        Ok(SuperNode {
            ls_key: VerifyingKey::from_bytes(&cfg.ls_key).ok(),
            node_id,
            out: Outbox::new(cfg.name.clone(), Role::SuperNode),
            peer_ips: host_cache.iter().map(SocketAddr::ip).collect(),
            host_cache,
            cfg,
            rng,
            conns: Conns::default(),
            directory: Table::new(directory::MAX_DIRECTORY),
            cache: Table::new(directory::MAX_CACHE),
            searches: HashMap::default(),
            next_txn,
            calls: Calls::default(),
            relays: Relays::default(),
            links: HashMap::default(),
            next_conn: 1,
            rate: HashMap::default(),
            stats: SnStats::default(),
        })
    }

    pub fn stats(&self) -> SnStats {
        self.stats
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Users registered here with a live connection.
    pub fn online(&self) -> usize {
        self.directory.online()
    }

    /// A directory entry (online or offline, unexpired).
    pub fn entry(&self, user: &str, now: Ts) -> Option<&Entry> {
        self.directory.get(user, now)
    }

    pub fn host_cache(&self) -> &[SocketAddr] {
        &self.host_cache
    }

    /// Whether this node relays media of `call` (a grant is live).
    pub fn relays_call(&self, call: u32) -> bool {
        self.relays.get(call).is_some()
    }

    /// PROTOCOL.md §8.10: a registered client announces that it was promoted; only its
    /// own registered address is accepted (a client cannot inject other SNs).
    fn learn_promoted(&mut self, now: Ts, user: &str, msg: &Message) {
        let Some(Value::Addr(sn)) = msg.get(FieldId::SnAddr) else {
            return;
        };
        let sn = *sn;
        let registered = self.directory.get(user, now).and_then(|e| e.addr);
        if registered != Some(sn) || sn == self.cfg.addr {
            self.stats.unexpected += 1;
            return;
        }
        if self.host_cache.contains(&sn) || self.host_cache.len() >= MAX_HOST_CACHE {
            return;
        }
        self.host_cache.push(sn);
        self.stats.sns_learned += 1;
        self.out.event(
            now,
            EventKind::Note {
                what: format!("learned super node {user} at {sn}"),
            },
        );
    }

    fn txn(&mut self) -> u32 {
        self.next_txn = self.next_txn.wrapping_add(1);
        self.next_txn
    }

    fn full(&self) -> bool {
        self.directory.online() >= self.cfg.capacity
    }

    fn some_sns(&self) -> &[SocketAddr] {
        self.host_cache
            .get(..self.host_cache.len().min(MAX_SN_LIST))
            .unwrap_or_default()
    }

    fn lookup_local(&self, user: &str, now: Ts) -> Option<Object> {
        self.directory
            .get(user, now)
            .or_else(|| self.cache.get(user, now))
            .map(|e| e.to_object(user))
    }

    // ---------------------------------------------------------------- timers

    fn next_deadline(&self) -> Ts {
        let idle = secs(self.cfg.idle_close_s);
        let searches = self.searches.values().map(|s| s.ring_deadline);
        [
            self.directory.next_expiry(),
            self.cache.next_expiry(),
            self.calls.next_expiry(secs(self.cfg.call_linger_s)),
            self.relays.next_expiry(secs(self.cfg.relay_idle_s)),
            self.conns.next_idle(idle),
        ]
        .into_iter()
        .flatten()
        .chain(searches)
        .min()
        .unwrap_or(NO_DEADLINE)
    }

    fn on_timeout(&mut self, now: Ts) {
        let idle = secs(self.cfg.idle_close_s);
        for id in self.conns.idle_at(now, idle) {
            self.stats.idle_closed += 1;
            self.close(now, id);
        }
        let due: Vec<u32> = self
            .searches
            .iter()
            .filter(|(_, s)| now >= s.ring_deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.advance_search(now, id);
        }
        self.directory.expire(now);
        self.cache.expire(now);
        self.calls.expire(now, secs(self.cfg.call_linger_s));
        self.relays.expire(now, secs(self.cfg.relay_idle_s));
        self.rate
            .retain(|_, w| now.since(w.start) < Ts::NANOS_PER_SEC);
    }

    // ---------------------------------------------------------------- UDP

    fn rate_check(&mut self, ip: IpAddr, now: Ts) -> Rate {
        if !self.rate.contains_key(&ip) && self.rate.len() >= MAX_RATE_SOURCES {
            self.rate
                .retain(|_, w| now.since(w.start) < Ts::NANOS_PER_SEC);
            if self.rate.len() >= MAX_RATE_SOURCES {
                return Rate::Silent;
            }
        }
        let w = self.rate.entry(ip).or_insert(RateWindow {
            start: now,
            count: 0,
            warned: false,
        });
        if now.since(w.start) >= Ts::NANOS_PER_SEC {
            *w = RateWindow {
                start: now,
                count: 0,
                warned: false,
            };
        }
        w.count = w.count.saturating_add(1);
        if w.count <= self.cfg.udp_rate_per_s {
            Rate::Allow
        } else if !w.warned {
            w.warned = true;
            Rate::WarnOnce
        } else {
            Rate::Silent
        }
    }

    fn udp_send(&mut self, now: Ts, to: SocketAddr, msg: &Message) {
        let local = self.cfg.addr;
        self.out.udp(now, local, Dest { to, home: false }, msg);
    }

    fn on_udp(&mut self, now: Ts, from: SocketAddr, data: &[u8]) {
        self.stats.udp_in += 1;
        match data.first() {
            Some(0x00..=0x03) => self.on_stun(now, from, data),
            Some(&dissectors::skylark::MAGIC) => self.on_skylark_udp(now, from, data),
            _ => self.stats.malformed_udp += 1,
        }
    }

    fn on_stun(&mut self, now: Ts, from: SocketAddr, data: &[u8]) {
        if !matches!(self.rate_check(from.ip(), now), Rate::Allow) {
            self.stats.rate_limited += 1;
            return;
        }
        let fingerprint = StunView::parse(data).ok().map(|v| v.fingerprint_ok());
        let msg = match (StunMessage::parse(data), fingerprint) {
            (Ok(m), Some(None | Some(true))) => m,
            _ => {
                self.stats.stun_dropped += 1;
                return;
            }
        };
        if msg.msg_type != StunType::BINDING_REQUEST
            || msg.magic_cookie != dissectors::stun::MAGIC_COOKIE
        {
            self.stats.stun_dropped += 1;
            return;
        }
        let reply =
            StunMessage::binding_success(msg.transaction_id, from, Some(&self.cfg.software));
        let mut bytes = Vec::with_capacity(reply.buffer_len());
        if reply.emit(&mut bytes).is_err() {
            self.stats.stun_dropped += 1;
            return;
        }
        let mut low = [0u8; 8];
        low.copy_from_slice(&msg.transaction_id[4..]);
        let label = self.out.raw_label(
            now,
            Transport::Udp,
            self.cfg.addr,
            Dest {
                to: from,
                home: false,
            },
            "stun-binding-success",
            TrafficClass::Login,
            Some(u64::from_be_bytes(low)),
        );
        self.out.raw_udp(self.cfg.addr, from, bytes, label);
        self.stats.stun_answered += 1;
    }

    fn on_skylark_udp(&mut self, now: Ts, from: SocketAddr, data: &[u8]) {
        // Media is the hot path: route from the zero-copy view, no owned parse.
        let Ok(view) = MessageView::parse(data) else {
            self.stats.malformed_udp += 1;
            return;
        };
        let t = view.msg_type();
        if is_media(t) {
            match view.call_id() {
                Some(call) => {
                    let id = skylark_txn_id(view.txn_id(), view.frame().map(|m| m.seq));
                    self.relay_frame(now, call, Leg::Udp(from), t, id, data);
                }
                None => self.stats.relay_dropped += 1,
            }
            return;
        }
        let msg = view.to_owned_message();
        let is_request = t.dir() == Some(Dir::Request) && msg.flags == Flags::REQUEST;
        if is_request {
            match self.rate_check(from.ip(), now) {
                Rate::Allow => {}
                Rate::WarnOnce => {
                    self.stats.rate_limited += 1;
                    let e = error_response(t, msg.txn_id, ErrorCode::RateLimited, &[]);
                    self.udp_send(now, from, &e);
                    return;
                }
                Rate::Silent => {
                    self.stats.rate_limited += 1;
                    return;
                }
            }
        }
        match (t, is_request) {
            (MsgType::HcProbe, true) => {
                let reply = self.hc_probe_ack(&msg, from);
                self.udp_send(now, from, &reply);
            }
            (MsgType::FallbackProbe, true) => {
                let reply = Message::new(
                    MsgType::FallbackProbeAck,
                    Flags::RESP,
                    msg.txn_id,
                    vec![
                        Object::u64(FieldId::NodeId, self.node_id),
                        Object::addr(FieldId::Reflexive, from),
                    ],
                );
                self.udp_send(now, from, &reply);
            }
            (MsgType::NatPing, true) => {
                let seq = get_u32(&msg, FieldId::Seq).unwrap_or(0);
                let reply = Message::new(
                    MsgType::NatPong,
                    Flags::RESP,
                    msg.txn_id,
                    vec![
                        Object::u64(FieldId::NodeId, self.node_id),
                        Object::u32(FieldId::Seq, seq),
                        Object::addr(FieldId::Reflexive, from),
                    ],
                );
                self.udp_send(now, from, &reply);
            }
            (MsgType::Search, true) => {
                if let Some(reply) = self.local_lookup(now, &msg) {
                    self.udp_send(now, from, &reply);
                }
            }
            (MsgType::SearchResult, false) => self.on_search_result(now, &msg),
            (MsgType::Search, false) if msg.flags == Flags::ERR => {
                self.on_search_miss(now, msg.txn_id)
            }
            // Known and well-formed but not for an SN over UDP (never answered, §3.3).
            _ => self.stats.unexpected += 1,
        }
    }

    fn hc_probe_ack(&mut self, probe: &Message, from: SocketAddr) -> Message {
        if self.full() {
            self.stats.overloaded += 1;
            return error_response(
                MsgType::HcProbe,
                probe.txn_id,
                ErrorCode::Overloaded,
                self.some_sns(),
            );
        }
        let mut objects = vec![
            Object::u64(FieldId::NodeId, self.node_id),
            Object::addr(FieldId::Reflexive, from),
        ];
        if !self.host_cache.is_empty() {
            objects.push(sn_list_n(self.some_sns(), MAX_SN_LIST));
        }
        Message::new(MsgType::HcProbeAck, Flags::RESP, probe.txn_id, objects)
    }

    /// PROTOCOL.md §8.6 local lookup: directory and cache only, never forwarded.
    fn local_lookup(&mut self, now: Ts, msg: &Message) -> Option<Message> {
        let target = get_str(msg, FieldId::Target)?.to_owned();
        self.stats.local_lookups += 1;
        Some(match self.lookup_local(&target, now) {
            Some(entry) => search_result(msg.txn_id, &target, entry),
            None => error_response(MsgType::Search, msg.txn_id, ErrorCode::NotFound, &[]),
        })
    }

    // ---------------------------------------------------------------- lookups

    fn start_search(&mut self, now: Ts, conn: ConnId, msg: &Message, target: String) {
        if self.searches.len() >= MAX_SEARCHES {
            self.stats.overloaded += 1;
            self.reply_err(now, conn, msg, ErrorCode::Overloaded);
            return;
        }
        self.stats.recursive_searches += 1;
        let id = self.txn();
        let rotation = match self.host_cache.len() {
            0 => 0,
            n => (self.rng.next_u64() % n as u64) as usize,
        };
        self.searches.insert(
            id,
            Search {
                client: conn,
                client_txn: msg.txn_id,
                target,
                ring: 0,
                rotation,
                next_slot: 0,
                pending: 0,
                asked: 0,
                ring_deadline: now,
                deadline: now.add_nanos(secs(self.cfg.search_deadline_s)),
            },
        );
        self.advance_search(now, id);
    }

    /// Moves a search to its next ring, or ends it (deadline, rings or cache exhausted).
    fn advance_search(&mut self, now: Ts, id: u32) {
        let Some(mut s) = self.searches.remove(&id) else {
            return;
        };
        let ring_index = usize::try_from(s.ring).unwrap_or(usize::MAX);
        let size = self.cfg.ring_sizes.get(ring_index).copied();
        let ring = match size {
            Some(size) if now < s.deadline => s.next_ring(&self.host_cache, size),
            _ => Vec::new(),
        };
        if ring.is_empty() {
            self.stats.searches_not_found += 1;
            let e = error_response(MsgType::Search, s.client_txn, ErrorCode::NotFound, &[]);
            self.out.tcp(now, s.client, false, &e);
            self.out.event(
                now,
                EventKind::Note {
                    what: format!("lookup {} not found after {} SNs", s.target, s.asked),
                },
            );
            return;
        }
        let query = Message::new(
            MsgType::Search,
            Flags::REQUEST,
            id,
            vec![
                Object::str(FieldId::Target, &s.target),
                Object::u32(FieldId::Ring, s.ring),
            ],
        );
        for sn in ring {
            self.udp_send(now, sn, &query);
        }
        let wait = i64::try_from(self.cfg.ring_wait_ms)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        s.ring_deadline = now.add_nanos(wait).min(s.deadline);
        self.searches.insert(id, s);
    }

    fn on_search_result(&mut self, now: Ts, msg: &Message) {
        let Some(s) = self.searches.get(&msg.txn_id) else {
            // Late or unsolicited: not cached (it could poison the cache).
            self.stats.unexpected += 1;
            return;
        };
        let expires = now.add_nanos(secs(self.cfg.cache_s));
        let parsed = get_list(msg, FieldId::Entry).and_then(|l| Entry::from_items(l, expires));
        let Some((user, entry)) = parsed.filter(|(u, _)| *u == s.target) else {
            self.stats.unexpected += 1;
            return;
        };
        let Some(s) = self.searches.remove(&msg.txn_id) else {
            return;
        };
        self.stats.searches_found += 1;
        let obj = entry.to_object(&user);
        self.cache.insert(&user, entry);
        let reply = search_result(s.client_txn, &user, obj);
        self.out.tcp(now, s.client, false, &reply);
        self.out.event(
            now,
            EventKind::Note {
                what: format!("lookup {user} found in ring {} ({} SNs)", s.ring, s.asked),
            },
        );
    }

    fn on_search_miss(&mut self, now: Ts, id: u32) {
        let Some(s) = self.searches.get_mut(&id) else {
            self.stats.unexpected += 1;
            return;
        };
        s.pending = s.pending.saturating_sub(1);
        if s.pending == 0 {
            // Everyone in the ring said no: no need to wait out the ring timer.
            self.advance_search(now, id);
        }
    }

    // ---------------------------------------------------------------- TCP

    fn on_tcp(&mut self, now: Ts, conn: ConnId, event: TcpEvent<'_>) {
        match event {
            TcpEvent::Accepted { local, remote } => {
                let kind = if self.peer_ips.contains(&remote.ip()) {
                    Kind::PeerIn
                } else {
                    Kind::Client(None)
                };
                let fresh = Conn {
                    kind,
                    remote: Some(remote),
                    reader: FrameReader::default(),
                };
                if !self
                    .conns
                    .accept(&mut self.out, now, conn, (local, remote), fresh)
                {
                    self.stats.refused_conns += 1;
                }
            }
            TcpEvent::Connected { local } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                let Kind::PeerOut { to, pending } = &mut c.kind else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                let to = *to;
                let pending = pending.take().unwrap_or_default();
                c.remote = Some(to);
                self.conns.touch(&conn, now);
                self.out.conn_up(conn, local, to);
                for m in pending {
                    self.out.tcp(now, conn, false, &m);
                }
            }
            TcpEvent::ConnectFailed => {
                let Some(Conn {
                    kind: Kind::PeerOut { pending, .. },
                    ..
                }) = self.conns.get(&conn)
                else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                // Invites that never left get not-found on the caller's side.
                let invites: Vec<u32> = pending
                    .iter()
                    .flatten()
                    .filter(|m| m.msg_type == MsgType::Invite && m.flags == Flags::REQUEST)
                    .map(|m| m.txn_id)
                    .collect();
                for txn in invites {
                    if let Some((_, caller)) = self.calls.by_invite(conn, txn) {
                        self.stats.callee_not_registered += 1;
                        let e = error_response(MsgType::Invite, txn, ErrorCode::NotFound, &[]);
                        self.send(now, caller, e);
                    }
                }
                self.cleanup(now, conn);
            }
            TcpEvent::Data(data) => {
                let Some(c) = self.conns.touch(&conn, now) else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                c.reader.push(data);
                if drain_frames(
                    self,
                    |s: &mut Self| s.conns.get_mut(&conn).map(|c| (&mut c.reader, ())),
                    |s, (), msg| s.on_tcp_message(now, conn, msg),
                )
                .is_err()
                {
                    self.stats.malformed_tcp += 1;
                    self.close(now, conn);
                }
            }
            TcpEvent::Closed => self.cleanup(now, conn),
        }
    }

    /// Forgets a connection (the peer closed it, or we did).
    fn cleanup(&mut self, now: Ts, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Kind::PeerOut { to, .. } = c.kind {
                self.links.remove(&to);
            }
        }
        let users: Vec<String> = self.directory.users_on(conn).map(str::to_owned).collect();
        for u in users {
            if let Some(e) = self.directory.get_mut(&u) {
                // Presence outlives the connection (§8.4): offline until the ttl.
                e.status = STATUS_OFFLINE;
                e.conn = None;
            }
        }
        self.searches.retain(|_, s| s.client != conn);
        self.calls.conn_closed(conn, now);
        self.relays.conn_closed(conn);
        self.out.conn_down(conn);
    }

    fn close(&mut self, now: Ts, conn: ConnId) {
        self.cleanup(now, conn);
        self.out.close(conn);
    }

    /// Sends on a connection, queueing on an SN link that is still connecting.
    fn send(&mut self, now: Ts, conn: ConnId, msg: Message) {
        if let Some(Conn {
            kind: Kind::PeerOut {
                pending: Some(q), ..
            },
            ..
        }) = self.conns.get_mut(&conn)
        {
            if q.len() < MAX_LINK_PENDING {
                q.push(msg);
            } else {
                self.stats.relay_dropped += 1;
            }
            return;
        }
        self.out.tcp(now, conn, false, &msg);
    }

    fn reply_err(&mut self, now: Ts, conn: ConnId, req: &Message, code: ErrorCode) {
        let e = error_response(req.msg_type, req.txn_id, code, &[]);
        self.send(now, conn, e);
    }

    /// The link to another SN, opened on demand.
    fn link(&mut self, now: Ts, to: SocketAddr) -> Option<ConnId> {
        if let Some(c) = self.links.get(&to) {
            return Some(*c);
        }
        if !self.conns.has_room() {
            return None;
        }
        let conn = ConnId(self.next_conn & !ConnId::ACCEPTED_BIT);
        self.next_conn = self.next_conn.wrapping_add(1);
        let link = Conn {
            kind: Kind::PeerOut {
                to,
                pending: Some(Vec::new()),
            },
            remote: None,
            reader: FrameReader::default(),
        };
        self.conns.insert(now, conn, link);
        self.links.insert(to, conn);
        // From the node's own IP so the other SN recognises an SN link (§8.7).
        self.out
            .connect(conn, Some(SocketAddr::new(self.cfg.addr.ip(), 0)), to);
        Some(conn)
    }

    fn on_tcp_message(&mut self, now: Ts, conn: ConnId, msg: Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (registered, peer) = match &c.kind {
            Kind::Client(u) => (u.clone(), false),
            Kind::PeerIn | Kind::PeerOut { .. } => (None, true),
        };
        let remote = c.remote;
        let t = msg.msg_type;
        let request = t.dir() == Some(Dir::Request) && msg.flags == Flags::REQUEST;
        if is_media(t) {
            match msg.call_id() {
                Some(call) => match msg.to_bytes() {
                    Ok(bytes) => {
                        let id = skylark_txn_id(msg.txn_id, msg.frame().map(|m| m.seq));
                        self.relay_frame(now, call, Leg::Tcp(conn), t, id, &bytes);
                    }
                    Err(_) => self.stats.relay_dropped += 1,
                },
                None => self.stats.relay_dropped += 1,
            }
            return;
        }
        match t {
            MsgType::HcProbe if request => {
                let reflexive = remote.unwrap_or(self.cfg.addr);
                let reply = self.hc_probe_ack(&msg, reflexive);
                self.send(now, conn, reply);
            }
            MsgType::SnRegister if request && !peer => self.register(now, conn, &msg),
            MsgType::RelayRequest if request => {
                self.relay_request(now, conn, &msg, registered.is_some() || peer)
            }
            MsgType::Invite if msg.flags == Flags::ERR => {
                match self.calls.by_invite(conn, msg.txn_id) {
                    Some((call, caller)) => {
                        self.calls.end(call, now);
                        self.stats.forwarded += 1;
                        self.send(now, caller, msg);
                    }
                    None => self.stats.unexpected += 1,
                }
            }
            _ if is_signalling(t) && (registered.is_some() || peer) => {
                self.signalling(now, conn, msg, peer)
            }
            MsgType::Search if request && peer => {
                if let Some(reply) = self.local_lookup(now, &msg) {
                    self.send(now, conn, reply);
                }
            }
            _ => match registered {
                Some(user) if request || t == MsgType::PresenceUpdate => {
                    self.registered_request(now, conn, &user, msg)
                }
                Some(_) => self.stats.unexpected += 1,
                None if request => {
                    // §8.4: UNREGISTERED serves hc-probe and sn-register only.
                    self.stats.unauthenticated += 1;
                    self.reply_err(now, conn, &msg, ErrorCode::Unauthenticated);
                }
                None => self.stats.unexpected += 1,
            },
        }
    }

    fn register(&mut self, now: Ts, conn: ConnId, msg: &Message) {
        let fields = (
            get_str(msg, FieldId::User),
            get_blob(msg, FieldId::CredentialBlob),
            get_u64(msg, FieldId::Expiry),
            msg.get(FieldId::Addr),
            get_u32(msg, FieldId::NatType),
        );
        let (Some(user), Some(blob), Some(expiry), Some(Value::Addr(addr)), Some(nat)) = fields
        else {
            self.stats.bad_request += 1;
            self.reply_err(now, conn, msg, ErrorCode::BadRequest);
            return;
        };
        if !valid_user(user) || nat > NAT_TYPE_MAX {
            self.stats.bad_request += 1;
            self.reply_err(now, conn, msg, ErrorCode::BadRequest);
            return;
        }
        let cred = match self.ls_key.as_ref().map(|k| Credential::verify(blob, k)) {
            Some(Ok(c)) => c,
            _ => {
                self.stats.register_auth_failed += 1;
                self.reply_err(now, conn, msg, ErrorCode::AuthFailed);
                return;
            }
        };
        if cred.expiry != expiry || cred.expiry <= unix_secs(now) {
            self.stats.register_expired += 1;
            self.reply_err(now, conn, msg, ErrorCode::CredentialExpired);
            return;
        }
        if cred.user != user {
            self.stats.register_auth_failed += 1;
            self.reply_err(now, conn, msg, ErrorCode::AuthFailed);
            return;
        }
        let user = user.to_owned();
        let already = self
            .directory
            .get(&user, now)
            .is_some_and(|e| e.conn.is_some());
        if self.full() && !already {
            self.stats.overloaded += 1;
            let e = error_response(
                MsgType::SnRegister,
                msg.txn_id,
                ErrorCode::Overloaded,
                self.some_sns(),
            );
            self.send(now, conn, e);
            return;
        }
        // A previous registration on another connection loses the user.
        if let Some(old) = self.directory.get(&user, now).and_then(|e| e.conn) {
            if let Some(Conn {
                kind: Kind::Client(u),
                ..
            }) = self.conns.get_mut(&old)
            {
                *u = None;
            }
        }
        // This connection registered someone else before: that user goes offline.
        if let Some(Conn {
            kind: Kind::Client(Some(prev)),
            ..
        }) = self.conns.get(&conn)
        {
            let prev = prev.clone();
            if let Some(e) = self.directory.get_mut(&prev) {
                e.status = STATUS_OFFLINE;
                e.conn = None;
            }
        }
        self.cache.remove(&user);
        self.directory.insert(
            &user,
            Entry {
                status: STATUS_ONLINE,
                addr: Some(*addr),
                sn_addr: Some(self.cfg.addr),
                nat_type: Some(nat),
                conn: Some(conn),
                expires: now.add_nanos(secs(self.cfg.ttl_s)),
            },
        );
        if let Some(c) = self.conns.get_mut(&conn) {
            c.kind = Kind::Client(Some(user.clone()));
        }
        self.stats.registered += 1;
        let mut objects = vec![Object::u32(
            FieldId::Ttl,
            u32::try_from(self.cfg.ttl_s).unwrap_or(u32::MAX),
        )];
        if !self.host_cache.is_empty() {
            objects.push(sn_list_n(self.some_sns(), MAX_SN_LIST));
        }
        let ack = Message::new(MsgType::SnRegisterAck, Flags::RESP, msg.txn_id, objects);
        self.send(now, conn, ack);
        self.out.event(
            now,
            EventKind::Note {
                what: format!("registered {user} at {addr} (nat-type {nat})"),
            },
        );
    }

    /// Requests of a REGISTERED client (§8.4) other than signalling and relay.
    fn registered_request(&mut self, now: Ts, conn: ConnId, user: &str, msg: Message) {
        match msg.msg_type {
            MsgType::Search => {
                let (Some(target), Some(ring)) =
                    (get_str(&msg, FieldId::Target), get_u32(&msg, FieldId::Ring))
                else {
                    return self.reply_err(now, conn, &msg, ErrorCode::BadRequest);
                };
                if !valid_user(target) {
                    self.stats.bad_request += 1;
                    return self.reply_err(now, conn, &msg, ErrorCode::BadRequest);
                }
                let target = target.to_owned();
                if let Some(entry) = self.lookup_local(&target, now) {
                    self.stats.local_lookups += 1;
                    let reply = search_result(msg.txn_id, &target, entry);
                    return self.send(now, conn, reply);
                }
                if ring == 0 {
                    return self.start_search(now, conn, &msg, target);
                }
                let sns = referral_ring(&self.host_cache, ring, &self.cfg.ring_sizes);
                if sns.is_empty() {
                    self.stats.searches_not_found += 1;
                    return self.reply_err(now, conn, &msg, ErrorCode::NotFound);
                }
                self.stats.referrals += 1;
                let reply = Message::new(
                    MsgType::SearchReferral,
                    Flags::RESP,
                    msg.txn_id,
                    vec![
                        Object::str(FieldId::Target, &target),
                        Object::u32(FieldId::Ring, ring),
                        sn_list_n(&sns, dissectors::skylark::MAX_LIST_ITEMS),
                    ],
                );
                self.send(now, conn, reply);
            }
            MsgType::PresenceQuery => {
                let users = get_list(&msg, FieldId::Users).unwrap_or_default();
                let entries: Vec<Object> = users
                    .iter()
                    .filter_map(|o| match &o.value {
                        Value::Str(u) => self.lookup_local(u, now),
                        _ => None,
                    })
                    .take(MAX_PRESENCE_ENTRIES)
                    .collect();
                let reply = Message::new(
                    MsgType::PresenceReport,
                    Flags::RESP,
                    msg.txn_id,
                    vec![Object::list(FieldId::Entries, entries)],
                );
                self.send(now, conn, reply);
            }
            MsgType::PresenceUpdate => {
                let status = get_u32(&msg, FieldId::Status).filter(|s| *s <= STATUS_MAX);
                match (get_str(&msg, FieldId::User) == Some(user), status) {
                    (true, Some(s)) => {
                        if let Some(e) = self.directory.get_mut(user) {
                            e.status = s;
                        }
                    }
                    _ => self.stats.unexpected += 1,
                }
            }
            MsgType::HcExchangeRequest => {
                let max = get_u32(&msg, FieldId::MaxCount).unwrap_or(0) as usize;
                let n = max.min(MAX_HOST_CACHE).min(self.host_cache.len());
                let list = sn_list_n(self.host_cache.get(..n).unwrap_or_default(), n);
                let reply = Message::new(MsgType::HcExchange, Flags::RESP, msg.txn_id, vec![list]);
                self.send(now, conn, reply);
            }
            MsgType::SnRefresh => {
                if get_str(&msg, FieldId::User) != Some(user) {
                    self.stats.bad_request += 1;
                    return self.reply_err(now, conn, &msg, ErrorCode::BadRequest);
                }
                let seq = get_u32(&msg, FieldId::Seq).unwrap_or(0);
                let full = get_u32(&msg, FieldId::Full) == Some(1);
                let status = get_u32(&msg, FieldId::Status).filter(|s| *s <= STATUS_MAX);
                let ttl = secs(self.cfg.ttl_s);
                self.learn_promoted(now, user, &msg);
                if let Some(e) = self.directory.get_mut(user) {
                    if full {
                        e.expires = now.add_nanos(ttl);
                    }
                    if let Some(s) = status {
                        e.status = s;
                    }
                }
                let ack = Message::new(
                    MsgType::SnRefreshAck,
                    Flags::RESP,
                    msg.txn_id,
                    vec![Object::u32(FieldId::Seq, seq)],
                );
                self.send(now, conn, ack);
            }
            _ => {
                // Login-server requests and the like: nothing an SN serves.
                self.stats.bad_request += 1;
                self.reply_err(now, conn, &msg, ErrorCode::BadRequest);
            }
        }
    }

    // ---------------------------------------------------------------- signalling

    fn signalling(&mut self, now: Ts, conn: ConnId, msg: Message, from_peer: bool) {
        let Some(call) = msg.call_id() else {
            self.stats.unexpected += 1;
            return;
        };
        let t = msg.msg_type;
        if t == MsgType::Invite && !self.calls.contains(call) {
            return self.route_invite(now, conn, call, msg, from_peer);
        }
        match self.calls.other(call, conn) {
            Some(other) => {
                if matches!(t, MsgType::Reject | MsgType::Cancel | MsgType::Bye) {
                    self.calls.end(call, now);
                }
                if t == MsgType::Bye {
                    // A relay releases the call on a bye seen on the path (§7.3).
                    self.relays.release(call);
                }
                self.stats.forwarded += 1;
                self.send(now, other, msg);
            }
            None if t.dir() == Some(Dir::Request) => {
                self.stats.unknown_call += 1;
                self.reply_err(now, conn, &msg, ErrorCode::UnknownCall);
            }
            None => self.stats.unknown_call += 1,
        }
    }

    fn route_invite(&mut self, now: Ts, conn: ConnId, call: u32, msg: Message, from_peer: bool) {
        let callee = get_str(&msg, FieldId::Callee)
            .unwrap_or_default()
            .to_owned();
        let here = self
            .directory
            .get(&callee, now)
            .and_then(|e| e.conn)
            .filter(|c| *c != conn);
        let next = match here {
            Some(c) => Some(c),
            // Only a client's own SN forwards to another SN: one SN hop, no loops.
            None if !from_peer => self
                .directory
                .get(&callee, now)
                .or_else(|| self.cache.get(&callee, now))
                .and_then(|e| e.sn_addr)
                .filter(|sn| *sn != self.cfg.addr)
                .and_then(|sn| self.link(now, sn)),
            None => None,
        };
        let Some(next) = next else {
            self.stats.callee_not_registered += 1;
            return self.reply_err(now, conn, &msg, ErrorCode::NotFound);
        };
        if !self.calls.open(call, conn, next, msg.txn_id) {
            self.stats.overloaded += 1;
            return self.reply_err(now, conn, &msg, ErrorCode::Overloaded);
        }
        self.stats.forwarded += 1;
        self.send(now, next, msg);
    }

    // ---------------------------------------------------------------- relay

    fn relay_request(&mut self, now: Ts, conn: ConnId, msg: &Message, authenticated: bool) {
        let Some(call) = msg.call_id() else {
            return self.reply_err(now, conn, msg, ErrorCode::BadRequest);
        };
        let token = match get_blob(msg, FieldId::RelayToken) {
            // A TCP leg presenting its grant's token (§7.3 relayed TCP).
            Some(tok) => {
                if !self.relays.admit_tcp(call, tok, conn, now) {
                    self.stats.relay_refused += 1;
                    self.stats.unauthenticated += 1;
                    return self.reply_err(now, conn, msg, ErrorCode::Unauthenticated);
                }
                self.relays.get(call).map(|r| r.token)
            }
            None if authenticated => {
                let mut fresh = [0u8; TOKEN_LEN];
                self.rng.fill_bytes(&mut fresh);
                self.relays.grant(call, fresh, now).map(|r| r.token)
            }
            None => {
                self.stats.relay_refused += 1;
                self.stats.unauthenticated += 1;
                return self.reply_err(now, conn, msg, ErrorCode::Unauthenticated);
            }
        };
        let Some(token) = token else {
            self.stats.relay_refused += 1;
            return self.reply_err(now, conn, msg, ErrorCode::RelayUnavailable);
        };
        self.stats.relay_grants += 1;
        let grant = Message::new(
            MsgType::RelayGrant,
            Flags::RESP,
            msg.txn_id,
            vec![
                Object::u32(FieldId::CallId, call),
                Object::addr(FieldId::RelayAddr, self.cfg.addr),
                Object::blob(FieldId::RelayToken, &token),
            ],
        );
        self.send(now, conn, grant);
    }

    /// Forwards one media-path frame (`bytes`, already validated) to the call's other leg;
    /// `id` is its label's [`skylark_txn_id`].
    fn relay_frame(&mut self, now: Ts, call: u32, from: Leg, t: MsgType, id: u64, bytes: &[u8]) {
        let to = match self
            .relays
            .route(call, from, bytes.len(), now, self.cfg.relay_cap_bps)
        {
            Ok(to) => to,
            Err(Drop::UnknownCall | Drop::ThirdSource | Drop::NoPeerLeg | Drop::OverCap) => {
                self.stats.relay_dropped += 1;
                return;
            }
        };
        let (transport, src, dst) = match to {
            Leg::Udp(a) => (Transport::Udp, self.cfg.addr, Some(a)),
            Leg::Tcp(c) => match self.out.conn_addrs(c) {
                Some((l, r)) => (Transport::Tcp, l, Some(r)),
                None => (Transport::Tcp, self.cfg.addr, None),
            },
        };
        let Some(dst) = dst else {
            self.stats.relay_dropped += 1;
            return;
        };
        let mut label = self.out.raw_label(
            now,
            transport,
            src,
            Dest {
                to: dst,
                home: false,
            },
            t.name(),
            t.class().unwrap_or(TrafficClass::Media),
            Some(id),
        );
        label.call_id = Some(u64::from(call));
        match to {
            Leg::Udp(a) => self.out.raw_udp(self.cfg.addr, a, bytes.to_vec(), label),
            Leg::Tcp(c) => self.out.raw_tcp(c, bytes.to_vec(), label),
        }
        self.stats.relayed_frames += 1;
    }
}

fn search_result(txn: u32, target: &str, entry: Object) -> Message {
    Message::new(
        MsgType::SearchResult,
        Flags::RESP,
        txn,
        vec![Object::str(FieldId::Target, target), entry],
    )
}

fn sn_list_n(sns: &[SocketAddr], max: usize) -> Object {
    Object::list(
        FieldId::SnList,
        sns.iter()
            .take(max)
            .map(|a| Object::addr(FieldId::Addr, *a))
            .collect(),
    )
}

impl Node for SuperNode {
    fn listen(&self) -> Listen {
        let mut tcp = vec![self.cfg.addr];
        tcp.extend(self.cfg.fallback_tcp.iter().copied());
        Listen {
            udp: vec![self.cfg.addr],
            tcp,
        }
    }

    fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Timeout(now) => self.on_timeout(now),
            Input::Udp {
                now, from, data, ..
            } => self.on_udp(now, from, data),
            Input::Tcp { now, conn, event } => self.on_tcp(now, conn, event),
            Input::Command { .. } => self.stats.unexpected += 1,
        }
    }

    fn poll_output(&mut self) -> Output {
        if self.out.is_empty() {
            return Output::Timeout(self.next_deadline());
        }
        self.out.poll(NO_DEADLINE)
    }
}

#[cfg(test)]
mod tests;
