//! NAT boxes: the RFC 4787 / RFC 5382 behaviour of a home or carrier NAT, applied in place
//! to raw IPv4 packets (no link header) crossing between a private side and one public
//! address.
//!
//! Four kinds: full cone, address-restricted and port-restricted cone use
//! endpoint-independent mapping (one public port per private ip:port and protocol) with
//! endpoint-independent, address-dependent and address-and-port-dependent filtering;
//! symmetric maps each (private endpoint, remote endpoint) pair to its own public port and
//! admits only that remote endpoint. UDP and TCP have separate port spaces.
//!
//! Guarantees: arbitrary bytes never panic; translated packets keep valid IPv4 and UDP/TCP
//! checksums ([`packet::rewrite`]); output depends only on the configuration (seed
//! included) and the packet/time sequence — ports come from a seeded ChaCha8 stream, and
//! hash maps serve lookups only, never iteration. Expiry is lazy on lookup plus a sweep of
//! at most [`SWEEP_BUDGET`] bindings per list and call (expiry lists are kept in idle
//! order, so sweeping is O(1) amortized). Every table is bounded ([`MAX_BINDINGS`],
//! [`MAX_FILTER_PEERS`]); the packet path does not allocate except when a binding or
//! filter peer is first created.
//!
//! Must not: route, fragment, answer ICMP, or read the wall clock. Time only comes from the
//! `now` arguments; a `now` earlier than one already seen is treated as the latest seen.

use super::packet::{self, PROTO_TCP};
use crate::time::Ts;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

/// Bindings per protocol. Half the public port range, so random probing for a free port
/// needs about two tries even with a full table; creating more gives `TableFull`.
pub const MAX_BINDINGS: usize = 32_768;
/// Remote addresses (address-restricted) or endpoints (port-restricted) a binding's filter
/// remembers; sending to one more forgets the one sent to least recently.
pub const MAX_FILTER_PEERS: usize = 64;
/// Expired bindings reclaimed per expiry list by each `outbound`/`inbound` call.
pub const SWEEP_BUDGET: usize = 16;
/// Lowest port handed out when the private port cannot be kept.
pub const PORT_MIN: u16 = 1024;
/// Random ports tried before a linear scan for a free one.
const RANDOM_PROBES: usize = 32;

const SEC: i64 = 1_000_000_000;
/// RFC 4787 REQ-5: a UDP mapping lives at least 2 minutes.
pub const DEFAULT_UDP_TIMEOUT_NS: i64 = 120 * SEC;
/// RFC 5382 REQ-5: an established TCP connection lives at least 2 h 4 min.
pub const DEFAULT_TCP_ESTABLISHED_TIMEOUT_NS: i64 = 7440 * SEC;
/// RFC 5382 REQ-5: partially open or closing TCP connections live 4 minutes.
pub const DEFAULT_TCP_TRANSITORY_TIMEOUT_NS: i64 = 240 * SEC;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// NAT behaviour, in the classic (RFC 3489) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    FullCone,
    AddressRestricted,
    PortRestricted,
    Symmetric,
}

impl NatKind {
    pub const ALL: [NatKind; 4] = [
        NatKind::FullCone,
        NatKind::AddressRestricted,
        NatKind::PortRestricted,
        NatKind::Symmetric,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NatKind::FullCone => "full-cone",
            NatKind::AddressRestricted => "address-restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
        }
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NatKind {
    type Err = String;

    fn from_str(s: &str) -> Result<NatKind, String> {
        NatKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown NAT kind {s:?}; valid: full-cone, address-restricted, \
                     port-restricted, symmetric"
                )
            })
    }
}

/// A NAT box's configuration. Timeouts are idle times in nanoseconds (values below 1 ns are
/// taken as 1 ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    pub kind: NatKind,
    pub public_ip: Ipv4Addr,
    pub udp_timeout_ns: i64,
    pub tcp_established_timeout_ns: i64,
    pub tcp_transitory_timeout_ns: i64,
    pub seed: u64,
}

impl NatConfig {
    /// RFC 4787 / RFC 5382 default timeouts.
    pub fn new(kind: NatKind, public_ip: Ipv4Addr, seed: u64) -> NatConfig {
        NatConfig {
            kind,
            public_ip,
            udp_timeout_ns: DEFAULT_UDP_TIMEOUT_NS,
            tcp_established_timeout_ns: DEFAULT_TCP_ESTABLISHED_TIMEOUT_NS,
            tcp_transitory_timeout_ns: DEFAULT_TCP_TRANSITORY_TIMEOUT_NS,
            seed,
        }
    }
}

/// Why a packet was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// IPv4 but neither UDP nor TCP (or truncated, or a non-first fragment).
    NotTcpUdp,
    /// IPv6 or not an IP packet at all.
    NotIpv4,
    /// Inbound to a public port with no live binding (includes unsolicited TCP SYNs).
    NoBinding,
    /// Inbound from a source the binding's filter does not admit.
    Filtered,
    /// No binding could be created: [`MAX_BINDINGS`] reached for the protocol.
    TableFull,
    /// Inbound to an address other than the public one.
    NotForUs,
}

/// What to do with a packet after [`Nat::outbound`] / [`Nat::inbound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward the (rewritten) packet.
    Forward,
    /// Discard it; the packet bytes are unchanged.
    Drop(DropReason),
}

/// Counters since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Bindings held now (may include expired ones not yet reclaimed; [`Nat::expire`]
    /// first for an exact count).
    pub bindings: usize,
    pub created: u64,
    pub expired: u64,
    pub translated_out: u64,
    pub translated_in: u64,
    pub dropped_in: u64,
    pub dropped_out: u64,
}

const NIL: u32 = u32::MAX;
/// Remote part of a cone binding's key (encoded endpoints use 48 bits, so no clash).
const NO_REMOTE: u64 = u64::MAX;
/// Expiry list of UDP bindings and established TCP ones.
const LIST_LONG: usize = 0;
/// Expiry list of partially open and closing TCP bindings.
const LIST_TRANSITORY: usize = 1;

fn enc(a: SocketAddrV4) -> u64 {
    (u64::from(a.ip().to_bits()) << 16) | u64::from(a.port())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TcpPhase {
    /// Only outbound packets so far (RFC 5382 "partially open": transitory timeout).
    Opening,
    Established,
    /// RST seen, or FIN both ways.
    Closing,
}

#[derive(Clone, Copy)]
struct Peer {
    key: u64,
    last: i64,
}

struct Binding {
    live: bool,
    private: SocketAddrV4,
    /// Encoded remote endpoint for symmetric bindings, else `NO_REMOTE`.
    remote: u64,
    public_port: u16,
    /// Last refresh; the expiry lists are ordered by it.
    last: i64,
    list: usize,
    prev: u32,
    next: u32,
    phase: TcpPhase,
    fin_out: bool,
    fin_in: bool,
    /// Filter of restricted cone kinds; capacity kept when the slot is reused.
    peers: Vec<Peer>,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// One protocol's bindings: a slab indexed by `u32`, two hash indexes, and the intrusive
/// expiry lists (each ordered by `last` because time never goes back and a refresh moves a
/// binding to its list's tail).
struct Table {
    slab: Vec<Binding>,
    free: Vec<u32>,
    by_private: FxHashMap<(u64, u64), u32>,
    by_public: FxHashMap<u16, u32>,
    lists: [List; 2],
    timeouts: [i64; 2],
    live: usize,
    expired: u64,
}

impl Table {
    fn new(timeouts: [i64; 2]) -> Table {
        Table {
            slab: Vec::new(),
            free: Vec::new(),
            by_private: FxHashMap::default(),
            by_public: FxHashMap::default(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 2],
            timeouts: timeouts.map(|t| t.max(1)),
            live: 0,
            expired: 0,
        }
    }

    fn get(&self, i: u32) -> Option<&Binding> {
        self.slab.get(i as usize).filter(|b| b.live)
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut Binding> {
        self.slab.get_mut(i as usize).filter(|b| b.live)
    }

    fn is_expired(&self, i: u32, now: i64) -> bool {
        self.get(i).is_some_and(|b| {
            let timeout = self.timeouts.get(b.list).copied().unwrap_or(1);
            now.saturating_sub(b.last) >= timeout
        })
    }

    fn unlink(&mut self, i: u32) {
        let Some(b) = self.slab.get(i as usize) else {
            return;
        };
        let (prev, next, list) = (b.prev, b.next, b.list);
        match self.slab.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if let Some(l) = self.lists.get_mut(list) {
                    l.head = next;
                }
            }
        }
        match self.slab.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(l) = self.lists.get_mut(list) {
                    l.tail = prev;
                }
            }
        }
    }

    fn push_back(&mut self, i: u32, list: usize) {
        let Some(tail) = self.lists.get(list).map(|l| l.tail) else {
            return;
        };
        if let Some(b) = self.slab.get_mut(i as usize) {
            b.list = list;
            b.prev = tail;
            b.next = NIL;
        }
        match self.slab.get_mut(tail as usize) {
            Some(t) => t.next = i,
            None => {
                if let Some(l) = self.lists.get_mut(list) {
                    l.head = i;
                }
            }
        }
        if let Some(l) = self.lists.get_mut(list) {
            l.tail = i;
        }
    }

    /// Marks the binding used at `now` and files it under `list`.
    fn touch(&mut self, i: u32, now: i64, list: usize) {
        self.unlink(i);
        if let Some(b) = self.slab.get_mut(i as usize) {
            b.last = now;
        }
        self.push_back(i, list);
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let Some(b) = self.get_mut(i) else {
            return;
        };
        b.live = false;
        b.peers.clear();
        let key = (enc(b.private), b.remote);
        let port = b.public_port;
        self.by_private.remove(&key);
        self.by_public.remove(&port);
        self.free.push(i);
        self.live = self.live.saturating_sub(1);
        self.expired += 1;
    }

    /// Reclaims expired bindings from the list heads, at most `budget` per list.
    fn sweep(&mut self, now: i64, budget: usize) -> usize {
        let mut n = 0;
        for list in [LIST_LONG, LIST_TRANSITORY] {
            for _ in 0..budget {
                let head = self.lists.get(list).map_or(NIL, |l| l.head);
                if head == NIL || !self.is_expired(head, now) {
                    break;
                }
                self.remove(head);
                n += 1;
            }
        }
        n
    }

    /// Whether `port` can be handed out, reclaiming an expired holder.
    fn port_free(&mut self, port: u16, now: i64) -> bool {
        match self.by_public.get(&port).copied() {
            None => true,
            Some(i) if self.is_expired(i, now) => {
                self.remove(i);
                true
            }
            Some(_) => false,
        }
    }

    fn alloc_port(&mut self, now: i64, keep: Option<u16>, rng: &mut ChaCha8Rng) -> Option<u16> {
        if let Some(p) = keep.filter(|&p| p != 0) {
            if self.port_free(p, now) {
                return Some(p);
            }
        }
        let mut p = PORT_MIN;
        for _ in 0..RANDOM_PROBES {
            p = rng.random_range(PORT_MIN..=u16::MAX);
            if self.port_free(p, now) {
                return Some(p);
            }
        }
        // Unlucky or nearly full: walk the range from the last candidate.
        let span = u32::from(u16::MAX - PORT_MIN) + 1;
        let start = u32::from(p.wrapping_sub(PORT_MIN));
        for k in 1..span {
            let q = PORT_MIN.wrapping_add(((start + k) % span) as u16);
            if self.port_free(q, now) {
                return Some(q);
            }
        }
        None
    }

    fn insert(&mut self, key: (u64, u64), private: SocketAddrV4, port: u16, now: i64) -> u32 {
        let fresh = Binding {
            live: true,
            private,
            remote: key.1,
            public_port: port,
            last: now,
            list: LIST_LONG,
            prev: NIL,
            next: NIL,
            phase: TcpPhase::Opening,
            fin_out: false,
            fin_in: false,
            peers: Vec::new(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(b) = self.slab.get_mut(i as usize) {
                    let peers = std::mem::take(&mut b.peers);
                    *b = Binding { peers, ..fresh };
                }
                i
            }
            None => {
                // MAX_BINDINGS keeps this far below NIL.
                let i = self.slab.len() as u32;
                self.slab.push(fresh);
                i
            }
        };
        self.push_back(i, LIST_LONG);
        self.by_private.insert(key, i);
        self.by_public.insert(port, i);
        self.live += 1;
        i
    }
}

/// A packet's fields the NAT acts on.
struct Parsed {
    tcp: bool,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
}

fn parse(pkt: &[u8]) -> Result<Parsed, DropReason> {
    let b0 = *pkt.first().ok_or(DropReason::NotIpv4)?;
    if b0 >> 4 != 4 {
        return Err(DropReason::NotIpv4);
    }
    // A non-first fragment has no ports where `tuple` would look for them.
    let frag = pkt.get(6..8).ok_or(DropReason::NotTcpUdp)?;
    if u16::from_be_bytes([frag[0], frag[1]]) & 0x1fff != 0 {
        return Err(DropReason::NotTcpUdp);
    }
    let t = packet::tuple(pkt).ok_or(DropReason::NotTcpUdp)?;
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (t.src, t.dst) else {
        return Err(DropReason::NotIpv4);
    };
    let tcp = t.proto == PROTO_TCP;
    // The whole fixed L4 header must be there for the checksum rewrite.
    let l4_end = usize::from(b0 & 0x0f) * 4 + if tcp { 20 } else { 8 };
    if pkt.len() < l4_end {
        return Err(DropReason::NotTcpUdp);
    }
    let flags = if tcp {
        packet::tcp_info(pkt).ok_or(DropReason::NotTcpUdp)?.0
    } else {
        0
    };
    Ok(Parsed {
        tcp,
        src,
        dst,
        flags,
    })
}

/// One NAT box. See the module documentation.
pub struct Nat {
    kind: NatKind,
    public_ip: Ipv4Addr,
    rng: ChaCha8Rng,
    udp: Table,
    tcp: Table,
    /// Latest time seen; earlier `now`s are raised to it so the expiry lists stay ordered.
    now: i64,
    created: u64,
    translated_out: u64,
    translated_in: u64,
    dropped_in: u64,
    dropped_out: u64,
}

impl Nat {
    pub fn new(cfg: NatConfig) -> Nat {
        let udp = cfg.udp_timeout_ns;
        Nat {
            kind: cfg.kind,
            public_ip: cfg.public_ip,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            udp: Table::new([udp, udp]),
            tcp: Table::new([
                cfg.tcp_established_timeout_ns,
                cfg.tcp_transitory_timeout_ns,
            ]),
            now: i64::MIN,
            created: 0,
            translated_out: 0,
            translated_in: 0,
            dropped_in: 0,
            dropped_out: 0,
        }
    }

    pub fn kind(&self) -> NatKind {
        self.kind
    }

    pub fn public_ip(&self) -> Ipv4Addr {
        self.public_ip
    }

    pub fn stats(&self) -> NatStats {
        NatStats {
            bindings: self.udp.live + self.tcp.live,
            created: self.created,
            expired: self.udp.expired + self.tcp.expired,
            translated_out: self.translated_out,
            translated_in: self.translated_in,
            dropped_in: self.dropped_in,
            dropped_out: self.dropped_out,
        }
    }

    /// Reclaims every binding idle past its timeout at `now`; returns how many.
    pub fn expire(&mut self, now: Ts) -> usize {
        let now = self.advance(now);
        self.udp.sweep(now, MAX_BINDINGS) + self.tcp.sweep(now, MAX_BINDINGS)
    }

    fn advance(&mut self, now: Ts) -> i64 {
        self.now = self.now.max(now.0);
        self.now
    }

    /// A packet leaving the private side: src rewritten to the public mapping (created if
    /// needed).
    pub fn outbound(&mut self, now: Ts, pkt: &mut [u8]) -> Verdict {
        let v = self.outbound_inner(now, pkt);
        match v {
            Verdict::Forward => self.translated_out += 1,
            Verdict::Drop(_) => self.dropped_out += 1,
        }
        v
    }

    /// A packet arriving from outside: if its dst is public_ip:port of a live binding whose
    /// filter admits the packet's source, dst is rewritten to the private endpoint.
    pub fn inbound(&mut self, now: Ts, pkt: &mut [u8]) -> Verdict {
        let v = self.inbound_inner(now, pkt);
        match v {
            Verdict::Forward => self.translated_in += 1,
            Verdict::Drop(_) => self.dropped_in += 1,
        }
        v
    }

    fn outbound_inner(&mut self, now: Ts, pkt: &mut [u8]) -> Verdict {
        let now = self.advance(now);
        self.udp.sweep(now, SWEEP_BUDGET);
        self.tcp.sweep(now, SWEEP_BUDGET);
        let p = match parse(pkt) {
            Ok(p) => p,
            Err(r) => return Verdict::Drop(r),
        };
        let (kind, rng) = (self.kind, &mut self.rng);
        let table = if p.tcp { &mut self.tcp } else { &mut self.udp };
        let remote = if kind == NatKind::Symmetric {
            enc(p.dst)
        } else {
            NO_REMOTE
        };
        let key = (enc(p.src), remote);
        let existing = match table.by_private.get(&key).copied() {
            Some(i) if table.is_expired(i, now) => {
                table.remove(i);
                None
            }
            other => other,
        };
        let i = match existing {
            Some(i) => i,
            None => {
                if table.live >= MAX_BINDINGS {
                    return Verdict::Drop(DropReason::TableFull);
                }
                let keep = (kind != NatKind::Symmetric).then_some(p.src.port());
                let Some(port) = table.alloc_port(now, keep, rng) else {
                    return Verdict::Drop(DropReason::TableFull);
                };
                self.created += 1;
                table.insert(key, p.src, port, now)
            }
        };
        let Some(b) = table.get_mut(i) else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        let peer = match kind {
            NatKind::AddressRestricted => Some(u64::from(p.dst.ip().to_bits())),
            NatKind::PortRestricted => Some(enc(p.dst)),
            NatKind::FullCone | NatKind::Symmetric => None,
        };
        if let Some(key) = peer {
            remember(&mut b.peers, key, now);
        }
        let list = if p.tcp {
            tcp_update(b, p.flags, true)
        } else {
            LIST_LONG
        };
        let public = SocketAddrV4::new(self.public_ip, b.public_port);
        table.touch(i, now, list);
        if packet::rewrite(pkt, Some(public.into()), None) {
            Verdict::Forward
        } else {
            Verdict::Drop(DropReason::NotTcpUdp)
        }
    }

    fn inbound_inner(&mut self, now: Ts, pkt: &mut [u8]) -> Verdict {
        let now = self.advance(now);
        self.udp.sweep(now, SWEEP_BUDGET);
        self.tcp.sweep(now, SWEEP_BUDGET);
        let p = match parse(pkt) {
            Ok(p) => p,
            Err(r) => return Verdict::Drop(r),
        };
        if *p.dst.ip() != self.public_ip {
            return Verdict::Drop(DropReason::NotForUs);
        }
        let kind = self.kind;
        let table = if p.tcp { &mut self.tcp } else { &mut self.udp };
        let Some(i) = table.by_public.get(&p.dst.port()).copied() else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        if table.is_expired(i, now) {
            table.remove(i);
            return Verdict::Drop(DropReason::NoBinding);
        }
        let Some(b) = table.get_mut(i) else {
            return Verdict::Drop(DropReason::NoBinding);
        };
        let admitted = match kind {
            NatKind::FullCone => true,
            NatKind::AddressRestricted => {
                let ip = u64::from(p.src.ip().to_bits());
                b.peers.iter().any(|q| q.key == ip)
            }
            NatKind::PortRestricted => {
                let ep = enc(p.src);
                b.peers.iter().any(|q| q.key == ep)
            }
            NatKind::Symmetric => b.remote == enc(p.src),
        };
        if !admitted {
            return Verdict::Drop(DropReason::Filtered);
        }
        let list = if p.tcp {
            tcp_update(b, p.flags, false)
        } else {
            LIST_LONG
        };
        let private = b.private;
        table.touch(i, now, list);
        if packet::rewrite(pkt, None, Some(private.into())) {
            Verdict::Forward
        } else {
            Verdict::Drop(DropReason::NotTcpUdp)
        }
    }
}

/// Adds `key` to a filter (or refreshes it), forgetting the least recently used peer when
/// full (the first such on ties, so the choice is deterministic).
fn remember(peers: &mut Vec<Peer>, key: u64, now: i64) {
    if let Some(q) = peers.iter_mut().find(|q| q.key == key) {
        q.last = now;
        return;
    }
    if peers.len() < MAX_FILTER_PEERS {
        peers.push(Peer { key, last: now });
        return;
    }
    // `min_by_key` keeps the first of equal minima: deterministic.
    if let Some(o) = peers.iter_mut().min_by_key(|q| q.last) {
        *o = Peer { key, last: now };
    }
}

/// RFC 5382 connection phase after a packet; returns the expiry list it puts the binding on.
fn tcp_update(b: &mut Binding, flags: u8, outbound: bool) -> usize {
    if flags & RST != 0 {
        b.phase = TcpPhase::Closing;
    } else {
        // A fresh SYN from the private side reuses a closing binding for a new connection.
        if outbound && flags & (SYN | ACK) == SYN && b.phase == TcpPhase::Closing {
            b.phase = TcpPhase::Opening;
            b.fin_out = false;
            b.fin_in = false;
        }
        if flags & FIN != 0 {
            if outbound {
                b.fin_out = true;
            } else {
                b.fin_in = true;
            }
        }
        // The remote answered: the connection is open both ways.
        if !outbound && b.phase == TcpPhase::Opening {
            b.phase = TcpPhase::Established;
        }
        if b.fin_out && b.fin_in {
            b.phase = TcpPhase::Closing;
        }
    }
    if b.phase == TcpPhase::Established {
        LIST_LONG
    } else {
        LIST_TRANSITORY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::IpAddr;

    const PUB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const HOST: &str = "10.0.0.2:5000";
    const A1: &str = "203.0.113.1:1";
    const A2: &str = "203.0.113.1:2";
    const B1: &str = "203.0.113.2:1";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn t(secs: i64) -> Ts {
        Ts(secs * SEC)
    }

    fn nat(kind: NatKind) -> Nat {
        Nat::new(NatConfig::new(kind, PUB, 7))
    }

    fn udp(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        packet::udp(src, dst, b"payload!", 1).unwrap()
    }

    fn tcp(src: SocketAddr, dst: SocketAddr, flags: u8) -> Vec<u8> {
        let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
            panic!("v4 only")
        };
        let mut b = PacketBuilder::ipv4(s.ip().octets(), d.ip().octets(), 64).tcp(
            s.port(),
            d.port(),
            1000,
            4096,
        );
        if flags & SYN != 0 {
            b = b.syn();
        }
        if flags & ACK != 0 {
            b = b.ack(1);
        }
        if flags & FIN != 0 {
            b = b.fin();
        }
        if flags & RST != 0 {
            b = b.rst();
        }
        let mut v = Vec::new();
        b.write(&mut v, b"data").unwrap();
        v
    }

    fn src_of(p: &[u8]) -> SocketAddr {
        packet::tuple(p).unwrap().src
    }

    fn dst_of(p: &[u8]) -> SocketAddr {
        packet::tuple(p).unwrap().dst
    }

    /// Sends `p` out, expects it forwarded, returns its public source.
    fn out(n: &mut Nat, now: Ts, mut p: Vec<u8>) -> SocketAddr {
        assert_eq!(n.outbound(now, &mut p), Verdict::Forward);
        assert!(checksums_ok(&p));
        src_of(&p)
    }

    /// Sends `p` in; on forward, returns the private destination.
    fn inb(n: &mut Nat, now: Ts, mut p: Vec<u8>) -> Result<SocketAddr, DropReason> {
        let before = p.clone();
        match n.inbound(now, &mut p) {
            Verdict::Forward => {
                assert!(checksums_ok(&p));
                Ok(dst_of(&p))
            }
            Verdict::Drop(r) => {
                assert_eq!(p, before, "dropped packets are left untouched");
                Err(r)
            }
        }
    }

    /// Recomputes IPv4 and L4 checksums from scratch with etherparse.
    fn checksums_ok(pkt: &[u8]) -> bool {
        let sp = SlicedPacket::from_ip(pkt).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &sp.net else {
            return false;
        };
        let h = ip.header().to_header();
        if h.calc_header_checksum() != h.header_checksum {
            return false;
        }
        match &sp.transport {
            Some(TransportSlice::Udp(u)) => {
                u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap() == u.checksum()
            }
            Some(TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap() == t.checksum()
            }
            _ => false,
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in NatKind::ALL {
            assert_eq!(k.as_str().parse::<NatKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        let e = "cone".parse::<NatKind>().unwrap_err();
        for k in NatKind::ALL {
            assert!(e.contains(k.as_str()), "{e}");
        }
        let c = NatConfig::new(NatKind::Symmetric, PUB, 1);
        assert_eq!(c.udp_timeout_ns, 120 * SEC);
        assert_eq!(c.tcp_established_timeout_ns, 7440 * SEC);
        assert_eq!(c.tcp_transitory_timeout_ns, 240 * SEC);
        assert_eq!(Nat::new(c).public_ip(), PUB);
    }

    #[test]
    fn classic_behaviour_table() {
        use NatKind::*;
        // kind, A:2 admitted, B:1 admitted, one public port for A:1 and B:1
        for (kind, a2, b1, same) in [
            (FullCone, true, true, true),
            (AddressRestricted, true, false, true),
            (PortRestricted, false, false, true),
            (Symmetric, false, false, false),
        ] {
            let mut n = nat(kind);
            let pa = out(&mut n, t(0), udp(sa(HOST), sa(A1)));
            assert_eq!(pa.ip(), PUB);
            assert_eq!(inb(&mut n, t(1), udp(sa(A1), pa)), Ok(sa(HOST)), "{kind}");
            let want = |ok| {
                if ok {
                    Ok(sa(HOST))
                } else {
                    Err(DropReason::Filtered)
                }
            };
            assert_eq!(inb(&mut n, t(1), udp(sa(A2), pa)), want(a2), "{kind} A:2");
            assert_eq!(inb(&mut n, t(1), udp(sa(B1), pa)), want(b1), "{kind} B:1");
            let pb = out(&mut n, t(2), udp(sa(HOST), sa(B1)));
            assert_eq!(pa == pb, same, "{kind}: {pa} {pb}");
            assert_eq!(inb(&mut n, t(3), udp(sa(B1), pb)), Ok(sa(HOST)), "{kind}");
            // The same holds for TCP once the private side opened the connection.
            let pt = out(&mut n, t(4), tcp(sa(HOST), sa(A1), SYN));
            let synack = tcp(sa(A1), pt, SYN | ACK);
            assert_eq!(inb(&mut n, t(4), synack), Ok(sa(HOST)), "{kind}");
            let got = inb(&mut n, t(4), tcp(sa(B1), pt, SYN));
            assert_eq!(got, want(b1), "{kind} TCP B:1");
            let s = n.stats();
            assert_eq!(s.bindings, if same { 2 } else { 3 });
            assert_eq!(s.created, s.bindings as u64);
            assert_eq!(s.translated_out, 3);
        }
    }

    #[test]
    fn cone_kinds_preserve_ports_per_protocol() {
        for kind in [
            NatKind::FullCone,
            NatKind::AddressRestricted,
            NatKind::PortRestricted,
        ] {
            let mut n = nat(kind);
            assert_eq!(out(&mut n, t(0), udp(sa(HOST), sa(A1))).port(), 5000);
            assert_eq!(out(&mut n, t(0), udp(sa("10.0.0.9:80"), sa(A1))).port(), 80);
            // Taken: a seeded-random port instead.
            let other = out(&mut n, t(0), udp(sa("10.0.0.3:5000"), sa(A1))).port();
            assert!(other >= PORT_MIN && other != 5000, "{other}");
            // TCP has its own port space.
            let p = out(&mut n, t(0), tcp(sa("10.0.0.3:5000"), sa(A1), SYN)).port();
            assert_eq!(p, 5000);
        }
    }

    #[test]
    fn symmetric_picks_random_ports() {
        let mut n = nat(NatKind::Symmetric);
        let mut seen = BTreeSet::new();
        for i in 1..=20u16 {
            let dst = SocketAddr::from(([203, 0, 113, 1], i));
            let p = out(&mut n, t(0), udp(sa(HOST), dst)).port();
            assert!(p >= PORT_MIN);
            assert!(seen.insert(p), "fresh port per remote endpoint");
            // The same pair reuses its mapping.
            assert_eq!(out(&mut n, t(0), udp(sa(HOST), dst)).port(), p);
        }
        assert!(!seen.contains(&5000) || seen.len() > 1);
    }

    #[test]
    fn udp_expiry_and_refresh() {
        let mut n = nat(NatKind::PortRestricted);
        let p = out(&mut n, t(0), udp(sa(HOST), sa(A1)));
        // Outbound refreshes.
        out(&mut n, t(100), udp(sa(HOST), sa(A1)));
        assert_eq!(inb(&mut n, t(219), udp(sa(A1), p)), Ok(sa(HOST)));
        // Inbound refreshed at 219: alive until 339.
        assert_eq!(inb(&mut n, t(338), udp(sa(A1), p)), Ok(sa(HOST)));
        assert_eq!(
            inb(&mut n, t(458), udp(sa(A1), p)),
            Err(DropReason::NoBinding)
        );
        let s = n.stats();
        assert_eq!((s.bindings, s.expired, s.created), (0, 1, 1));
        // A new binding; the filter starts empty again.
        let mut n2 = nat(NatKind::PortRestricted);
        out(&mut n2, t(0), udp(sa(HOST), sa(A1)));
        out(&mut n2, t(200), udp(sa(HOST), sa(B1)));
        assert_eq!(n2.stats().created, 2);
        assert_eq!(
            inb(&mut n2, t(201), udp(sa(A1), p)),
            Err(DropReason::Filtered)
        );
        // Explicit sweep.
        assert_eq!(n2.expire(t(319)), 0);
        assert_eq!(n2.expire(t(320)), 1);
        assert_eq!(n2.stats().bindings, 0);
    }

    #[test]
    fn sweep_is_bounded_per_call() {
        let mut n = nat(NatKind::FullCone);
        for i in 0..40u16 {
            out(
                &mut n,
                t(0),
                udp(SocketAddr::from(([10, 0, 0, 2], 2000 + i)), sa(A1)),
            );
        }
        out(&mut n, t(500), udp(sa(HOST), sa(A1)));
        assert_eq!(n.stats().bindings, 40 - SWEEP_BUDGET + 1);
        assert!(lists_ok(&n.udp));
        out(&mut n, t(500), udp(sa(HOST), sa(A1)));
        out(&mut n, t(500), udp(sa(HOST), sa(A1)));
        assert_eq!(n.stats().bindings, 1);
        assert_eq!(n.stats().expired, 40);
    }

    /// Opens a TCP connection through `n` at `now`; returns the public endpoint.
    fn handshake(n: &mut Nat, now: Ts) -> SocketAddr {
        let p = out(n, now, tcp(sa(HOST), sa(A1), SYN));
        assert_eq!(inb(n, now, tcp(sa(A1), p, SYN | ACK)), Ok(sa(HOST)));
        out(n, now, tcp(sa(HOST), sa(A1), ACK));
        p
    }

    #[test]
    fn tcp_established_then_transitory_after_fins() {
        let mut n = nat(NatKind::PortRestricted);
        let p = handshake(&mut n, t(0));
        assert_eq!(inb(&mut n, t(7000), tcp(sa(A1), p, ACK)), Ok(sa(HOST)));
        // A half close keeps the established timeout.
        out(&mut n, t(7000), tcp(sa(HOST), sa(A1), FIN | ACK));
        assert_eq!(inb(&mut n, t(14000), tcp(sa(A1), p, ACK)), Ok(sa(HOST)));
        assert_eq!(
            inb(&mut n, t(14000), tcp(sa(A1), p, FIN | ACK)),
            Ok(sa(HOST))
        );
        out(&mut n, t(14000), tcp(sa(HOST), sa(A1), ACK));
        assert_eq!(inb(&mut n, t(14239), tcp(sa(A1), p, ACK)), Ok(sa(HOST)));
        let got = inb(&mut n, t(14479), tcp(sa(A1), p, ACK));
        assert_eq!(got, Err(DropReason::NoBinding));
        // Established bindings do expire after their own timeout.
        let mut n = nat(NatKind::FullCone);
        let p = handshake(&mut n, t(0));
        assert_eq!(
            inb(&mut n, t(7440), tcp(sa(A1), p, ACK)),
            Err(DropReason::NoBinding)
        );
    }

    #[test]
    fn tcp_transitory_after_rst_either_way() {
        for outbound_rst in [true, false] {
            let mut n = nat(NatKind::Symmetric);
            let p = handshake(&mut n, t(0));
            if outbound_rst {
                out(&mut n, t(10), tcp(sa(HOST), sa(A1), RST));
            } else {
                assert_eq!(inb(&mut n, t(10), tcp(sa(A1), p, RST)), Ok(sa(HOST)));
            }
            let mut m = nat(NatKind::Symmetric);
            let q = handshake(&mut m, t(0));
            assert_eq!(p, q, "same seed, same port");
            assert_eq!(inb(&mut n, t(249), tcp(sa(A1), p, ACK)), Ok(sa(HOST)));
            let got = inb(&mut n, t(489), tcp(sa(A1), p, ACK));
            assert_eq!(got, Err(DropReason::NoBinding));
        }
        // A new SYN from the private side reopens a closing binding.
        let mut n = nat(NatKind::FullCone);
        let p = handshake(&mut n, t(0));
        out(&mut n, t(1), tcp(sa(HOST), sa(A1), RST));
        assert_eq!(out(&mut n, t(2), tcp(sa(HOST), sa(A1), SYN)), p);
        assert_eq!(inb(&mut n, t(2), tcp(sa(A1), p, SYN | ACK)), Ok(sa(HOST)));
        assert_eq!(inb(&mut n, t(1000), tcp(sa(A1), p, ACK)), Ok(sa(HOST)));
    }

    #[test]
    fn tcp_unanswered_syn_uses_transitory_timeout() {
        let mut n = nat(NatKind::FullCone);
        let p = out(&mut n, t(0), tcp(sa(HOST), sa(A1), SYN));
        let got = inb(&mut n, t(240), tcp(sa(A1), p, SYN | ACK));
        assert_eq!(got, Err(DropReason::NoBinding));
    }

    #[test]
    fn unsolicited_syn_is_dropped() {
        let mut n = nat(NatKind::FullCone);
        let to = SocketAddr::from((PUB, 5000));
        assert_eq!(
            inb(&mut n, t(0), tcp(sa(A1), to, SYN)),
            Err(DropReason::NoBinding)
        );
        // A UDP binding on the same port number does not open TCP.
        out(&mut n, t(0), udp(sa(HOST), sa(A1)));
        assert_eq!(
            inb(&mut n, t(0), tcp(sa(A1), to, SYN)),
            Err(DropReason::NoBinding)
        );
        assert_eq!(inb(&mut n, t(0), udp(sa(A1), to)), Ok(sa(HOST)));
        let s = n.stats();
        assert_eq!((s.dropped_in, s.translated_in, s.bindings), (2, 1, 1));
    }

    #[test]
    fn checksums_stay_valid_both_ways() {
        for kind in NatKind::ALL {
            let mut n = nat(kind);
            let mut p = tcp(sa(HOST), sa(A1), SYN);
            let orig = p.clone();
            assert_eq!(n.outbound(t(0), &mut p), Verdict::Forward);
            assert!(checksums_ok(&p));
            assert_eq!(dst_of(&p), sa(A1));
            assert_eq!(p.len(), orig.len());
            let public = src_of(&p);
            let mut r = tcp(sa(A1), public, SYN | ACK);
            assert_eq!(n.inbound(t(0), &mut r), Verdict::Forward);
            assert!(checksums_ok(&r));
            assert_eq!((src_of(&r), dst_of(&r)), (sa(A1), sa(HOST)));
            for payload in [&b""[..], b"x", b"odd length!", &[0xff; 300]] {
                let mut u = packet::udp(sa(HOST), sa(A1), payload, 9).unwrap();
                assert_eq!(n.outbound(t(1), &mut u), Verdict::Forward);
                assert!(checksums_ok(&u));
                let mut v = packet::udp(sa(A1), src_of(&u), payload, 9).unwrap();
                assert_eq!(n.inbound(t(1), &mut v), Verdict::Forward);
                assert!(checksums_ok(&v));
                assert_eq!(packet::udp_payload(&v), Some(payload));
            }
        }
    }

    #[test]
    fn non_nat_packets_are_dropped_untouched() {
        let mut n = nat(NatKind::FullCone);
        let mut v6 = packet::udp(sa("[fd00::2]:5000"), sa("[2001:db8::1]:1"), b"x", 0).unwrap();
        let keep = v6.clone();
        assert_eq!(
            n.outbound(t(0), &mut v6),
            Verdict::Drop(DropReason::NotIpv4)
        );
        assert_eq!(n.inbound(t(0), &mut v6), Verdict::Drop(DropReason::NotIpv4));
        assert_eq!(v6, keep);
        let mut icmp = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 2], [203, 0, 113, 1], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, b"ping")
            .unwrap();
        assert_eq!(
            n.outbound(t(0), &mut icmp),
            Verdict::Drop(DropReason::NotTcpUdp)
        );
        assert_eq!(
            n.outbound(t(0), &mut []),
            Verdict::Drop(DropReason::NotIpv4)
        );
        // Truncated UDP header, non-first fragment.
        let full = udp(sa(HOST), sa(A1));
        let mut short = full[..24].to_vec();
        assert_eq!(
            n.outbound(t(0), &mut short),
            Verdict::Drop(DropReason::NotTcpUdp)
        );
        let mut frag = full.clone();
        frag[7] = 1;
        assert_eq!(
            n.outbound(t(0), &mut frag),
            Verdict::Drop(DropReason::NotTcpUdp)
        );
        let got = inb(&mut n, t(0), udp(sa(A1), sa("198.51.100.2:5000")));
        assert_eq!(got, Err(DropReason::NotForUs));
        let s = n.stats();
        assert_eq!((s.dropped_out, s.dropped_in, s.bindings), (5, 2, 0));
    }

    #[test]
    fn filter_forgets_least_recent_peer() {
        let mut n = nat(NatKind::PortRestricted);
        let peer = |i: u16| SocketAddr::from(([203, 0, 113, 1], i));
        let mut p = sa("0.0.0.0:0");
        for i in 1..=MAX_FILTER_PEERS as u16 {
            p = out(&mut n, Ts(i64::from(i)), udp(sa(HOST), peer(i)));
        }
        out(&mut n, Ts(100), udp(sa(HOST), peer(1)));
        out(&mut n, Ts(101), udp(sa(HOST), peer(1000)));
        assert_eq!(inb(&mut n, Ts(102), udp(peer(1), p)), Ok(sa(HOST)));
        assert_eq!(
            inb(&mut n, Ts(102), udp(peer(2), p)),
            Err(DropReason::Filtered)
        );
        assert_eq!(inb(&mut n, Ts(102), udp(peer(3), p)), Ok(sa(HOST)));
        assert_eq!(inb(&mut n, Ts(102), udp(peer(1000), p)), Ok(sa(HOST)));
    }

    #[test]
    fn table_full_bound() {
        let mut n = nat(NatKind::FullCone);
        for i in 0..MAX_BINDINGS as u32 {
            let src = SocketAddr::from((Ipv4Addr::from_bits(0x0a00_0000 + i), 4000));
            out(&mut n, t(0), udp(src, sa(A1)));
        }
        assert_eq!(n.stats().bindings, MAX_BINDINGS);
        let mut p = udp(sa("10.200.0.1:4000"), sa(A1));
        assert_eq!(
            n.outbound(t(1), &mut p),
            Verdict::Drop(DropReason::TableFull)
        );
        // Existing mappings and the other protocol still work.
        out(&mut n, t(1), udp(sa("10.0.0.1:4000"), sa(A1)));
        out(&mut n, t(1), tcp(sa("10.200.0.1:4000"), sa(A1), SYN));
        // Room again once bindings expire.
        out(&mut n, t(200), udp(sa("10.200.0.1:4000"), sa(A1)));
        assert_eq!(n.stats().dropped_out, 1);
    }

    #[test]
    fn port_scan_finds_the_last_free_port() {
        let mut tb = Table::new([SEC, SEC]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let i = tb.insert((1, NO_REMOTE), SocketAddrV4::new(PUB, 1), 1, 0);
        for port in PORT_MIN..=u16::MAX {
            if port != 40_000 {
                tb.by_public.insert(port, i);
            }
        }
        assert_eq!(tb.alloc_port(0, Some(7), &mut rng), Some(7));
        assert_eq!(tb.alloc_port(0, None, &mut rng), Some(40_000));
        tb.by_public.insert(40_000, i);
        assert_eq!(tb.alloc_port(0, None, &mut rng), None);
    }

    #[test]
    fn time_going_back_is_clamped() {
        let mut n = nat(NatKind::FullCone);
        let p = out(&mut n, t(100), udp(sa(HOST), sa(A1)));
        assert_eq!(inb(&mut n, t(50), udp(sa(B1), p)), Ok(sa(HOST)));
        assert_eq!(inb(&mut n, t(-5), udp(sa(B1), p)), Ok(sa(HOST)));
        assert_eq!(
            inb(&mut n, t(220), udp(sa(B1), p)),
            Err(DropReason::NoBinding)
        );
    }

    /// Both expiry lists together hold exactly the live bindings, each list in `last` order,
    /// and both indexes point at them.
    fn lists_ok(tb: &Table) -> bool {
        let mut count = 0;
        for (l, list) in tb.lists.iter().enumerate() {
            let (mut i, mut prev, mut last) = (list.head, NIL, i64::MIN);
            while i != NIL {
                let Some(b) = tb.get(i) else { return false };
                if b.prev != prev || b.list != l || b.last < last || count > tb.slab.len() {
                    return false;
                }
                if tb.by_public.get(&b.public_port) != Some(&i)
                    || tb.by_private.get(&(enc(b.private), b.remote)) != Some(&i)
                {
                    return false;
                }
                (prev, last, i, count) = (i, b.last, b.next, count + 1);
            }
            if list.tail != prev {
                return false;
            }
        }
        count == tb.live && tb.by_public.len() == tb.live && tb.by_private.len() == tb.live
    }

    /// Runs a fixed mixed workload; returns every verdict and resulting packet.
    fn workload(seed: u64) -> Vec<(Verdict, Vec<u8>)> {
        let mut n = Nat::new(NatConfig::new(NatKind::Symmetric, PUB, seed));
        let mut log = Vec::new();
        for i in 0..200u16 {
            let host = SocketAddr::from(([10, 0, 0, (i % 5) as u8], 3000 + i % 3));
            let remote = SocketAddr::from(([203, 0, 113, (i % 7) as u8], 1 + i % 4));
            let mut p = if i % 2 == 0 {
                udp(host, remote)
            } else {
                tcp(host, remote, SYN)
            };
            let v = n.outbound(t(i64::from(i)), &mut p);
            log.push((v, p.clone()));
            let mut r = if i % 2 == 0 {
                udp(remote, src_of(&p))
            } else {
                tcp(remote, src_of(&p), SYN | ACK)
            };
            let v = n.inbound(t(i64::from(i)), &mut r);
            log.push((v, r));
        }
        log
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = workload(42);
        assert_eq!(a, workload(42));
        assert_ne!(a, workload(43));
        assert!(a.iter().all(|(v, _)| *v == Verdict::Forward));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Out {
            host: u8,
            sport: u8,
            remote: u8,
            rport: u8,
            tcp: bool,
            flags: u8,
        },
        In {
            remote: u8,
            rport: u8,
            pick: usize,
            tcp: bool,
            flags: u8,
        },
        Step(i64),
        Garbage(Vec<u8>, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let flags = prop::sample::select(vec![SYN, SYN | ACK, ACK, FIN | ACK, RST, 0]);
        prop_oneof![
            4 => (0..3u8, 0..2u8, 0..3u8, 0..2u8, any::<bool>(), flags.clone()).prop_map(
                |(host, sport, remote, rport, tcp, flags)| Op::Out {
                    host, sport, remote, rport, tcp, flags
                }
            ),
            4 => (0..3u8, 0..2u8, any::<usize>(), any::<bool>(), flags).prop_map(
                |(remote, rport, pick, tcp, flags)| Op::In { remote, rport, pick, tcp, flags }
            ),
            2 => (-2i64..40).prop_map(Op::Step),
            1 => (prop::collection::vec(any::<u8>(), 0..60), any::<bool>())
                .prop_map(|(b, o)| Op::Garbage(b, o)),
        ]
    }

    proptest! {
        #[test]
        fn random_traffic_only_reaches_live_senders(
            kind in prop::sample::select(NatKind::ALL.to_vec()),
            seed in any::<u64>(),
            ops in prop::collection::vec(op(), 1..200),
        ) {
            let mut cfg = NatConfig::new(kind, PUB, seed);
            cfg.udp_timeout_ns = 30 * SEC;
            cfg.tcp_established_timeout_ns = 60 * SEC;
            cfg.tcp_transitory_timeout_ns = 10 * SEC;
            let mut n = Nat::new(cfg);
            let mut now = 0i64;
            let mut seen_now = 0i64;
            // (tcp, public port) -> (private endpoint, last refresh)
            let mut live: BTreeMap<(bool, u16), (SocketAddr, i64)> = BTreeMap::new();
            // (tcp, public port, remote) the public port has sent to
            let mut sent: BTreeSet<(bool, u16, SocketAddr)> = BTreeSet::new();
            let mut ports: Vec<(bool, u16)> = Vec::new();
            for op in ops {
                match op {
                    Op::Step(dt) => {
                        now += dt * SEC;
                        prop_assert!(lists_ok(&n.udp) && lists_ok(&n.tcp));
                    }
                    Op::Garbage(mut b, o) => {
                        seen_now = seen_now.max(now);
                        let before = b.clone();
                        let v = if o { n.outbound(Ts(now), &mut b) } else { n.inbound(Ts(now), &mut b) };
                        if v != Verdict::Forward {
                            prop_assert_eq!(b, before);
                        }
                    }
                    Op::Out { host, sport, remote, rport, tcp: is_tcp, flags } => {
                        seen_now = seen_now.max(now);
                        let src = SocketAddr::from(([10, 0, 0, 2 + host], 5000 + u16::from(sport)));
                        let dst = SocketAddr::from(([203, 0, 113, 1 + remote], 1 + u16::from(rport)));
                        let mut p = if is_tcp { tcp(src, dst, flags) } else { udp(src, dst) };
                        prop_assert_eq!(n.outbound(Ts(now), &mut p), Verdict::Forward);
                        prop_assert!(checksums_ok(&p));
                        let public = src_of(&p);
                        prop_assert_eq!(public.ip(), IpAddr::from(PUB));
                        prop_assert_eq!(dst_of(&p), dst);
                        live.insert((is_tcp, public.port()), (src, seen_now));
                        sent.insert((is_tcp, public.port(), dst));
                        ports.push((is_tcp, public.port()));
                    }
                    Op::In { remote, rport, pick, tcp: is_tcp, flags } => {
                        seen_now = seen_now.max(now);
                        let src = SocketAddr::from(([203, 0, 113, 1 + remote], 1 + u16::from(rport)));
                        let port = match ports.get(pick % ports.len().max(1)) {
                            Some(&(_, p)) if pick % 5 != 0 => p,
                            _ => (pick % 65536) as u16,
                        };
                        let to = SocketAddr::from((PUB, port));
                        let mut p = if is_tcp { tcp(src, to, flags) } else { udp(src, to) };
                        if n.inbound(Ts(now), &mut p) == Verdict::Forward {
                            prop_assert!(checksums_ok(&p));
                            prop_assert_eq!(src_of(&p), src);
                            let Some(&(private, last)) = live.get(&(is_tcp, port)) else {
                                return Err(TestCaseError::fail("forwarded to a port never mapped"));
                            };
                            prop_assert_eq!(dst_of(&p), private);
                            let timeout = if is_tcp { 60 * SEC } else { 30 * SEC };
                            prop_assert!(seen_now - last < timeout, "binding was dead");
                            let sent_to = match kind {
                                NatKind::FullCone => true,
                                NatKind::AddressRestricted => sent
                                    .range((is_tcp, port, SocketAddr::from(([0, 0, 0, 0], 0)))..)
                                    .take_while(|(tc, pp, _)| *tc == is_tcp && *pp == port)
                                    .any(|(_, _, r)| r.ip() == src.ip()),
                                _ => sent.contains(&(is_tcp, port, src)),
                            };
                            prop_assert!(sent_to, "filter admitted a stranger");
                            live.insert((is_tcp, port), (private, seen_now));
                        }
                    }
                }
            }
            prop_assert!(lists_ok(&n.udp) && lists_ok(&n.tcp));
            n.expire(Ts(now));
            prop_assert!(lists_ok(&n.udp) && lists_ok(&n.tcp));
            let s = n.stats();
            prop_assert_eq!(s.created, s.expired + s.bindings as u64);
        }
    }
}
