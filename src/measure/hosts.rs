//! Who is who (`hosts.csv`): every address that sent or received transport payload, with the
//! role its decoded messages show and the evidence for it (PROTOCOL.md §8: which messages a
//! login server, home server, super node, relay or client sends and answers), its peers and
//! its bytes (from the packets, decoded or not, so they agree with flows.csv).
//!
//! Rules, strongest first: answering `auth-challenge`/`credential` → login-server; answering
//! an HTTP version check → home; answering `hc-probe`, `sn-register` or `search` →
//! super-node; forwarding media frames of calls it is not a party to (voice in from one peer
//! and out to another with the same call id) → relay (a super node that relays is reported
//! as `super-node+relay`); sending `sn-register` or `hc-probe` → client; else other.
//!
//! Must not: keep per-message state — counters per host and a bounded set of call ids per
//! host for the relay rule.

use crate::classify::Known;
use crate::flow::Dir;
use crate::report::csv_row::CsvRow;
use crate::report::summary::thousands;
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::{self, Write};
use std::net::IpAddr;

/// Hosts tracked; packets and messages of further hosts are counted and dropped.
pub const MAX_HOSTS: usize = 100_000;
/// Distinct peers counted per host (beyond it the count saturates).
pub const MAX_PEERS: usize = 4096;
/// Peers remembered over all hosts (~100 MB): every address with payload has a row, so a
/// large real capture could otherwise fill every host's set.
pub const MAX_PEER_ENTRIES: usize = 4_000_000;
/// Call ids remembered per host and direction for the relay rule.
pub const MAX_CALLS: usize = 256;

/// Evidence bits.
const ANSWERS_AUTH: u16 = 1;
const ANSWERS_VERSION: u16 = 1 << 1;
const ANSWERS_SN: u16 = 1 << 2;
const FORWARDS_MEDIA: u16 = 1 << 3;
const REGISTERS: u16 = 1 << 4;
const PROBES: u16 = 1 << 5;

const EVIDENCE: &[(u16, &str)] = &[
    (ANSWERS_AUTH, "answers-auth"),
    (ANSWERS_VERSION, "answers-version-check"),
    (ANSWERS_SN, "answers-sn-requests"),
    (FORWARDS_MEDIA, "forwards-media"),
    (REGISTERS, "registers-with-sn"),
    (PROBES, "probes-sns"),
];

/// What every message updates, kept small (64 bytes with its key) so the table of ten
/// thousand hosts stays in the core's L2 cache: a message looks up two hosts, and with the
/// sets inline (120 bytes) each lookup was a miss (~4 % of a run on `large`).
#[derive(Default)]
struct Host {
    evidence: u16,
    bytes_sent: u64,
    bytes_received: u64,
    /// Media frames (bytes) this host forwarded for others.
    bytes_relayed: u64,
    /// Read only for a flow's first message and for media.
    sets: Box<HostSets>,
}

#[derive(Default)]
struct HostSets {
    peers: Peers,
    media_in: FxHashMap<u64, IpAddr>,
}

/// A host's distinct peers. A peer with a row in the table is kept as its slot: 4 bytes to
/// hash and store rather than a 17-byte `IpAddr` (a million flows' first packets add two
/// each). An address keeps one slot, or none, for the whole run, so the two sets never
/// hold the same peer.
#[derive(Default)]
struct Peers {
    /// Slot + 1 of peers in the table.
    in_table: FxHashSet<u32>,
    /// Peers the full table has no slot for.
    outside: FxHashSet<IpAddr>,
    /// A peer was left out (the host's or the table's cap).
    saturated: bool,
}

impl Peers {
    fn len(&self) -> usize {
        self.in_table.len() + self.outside.len()
    }

    /// Adds the peer at `slot` (a resolved [`FlowHosts`] slot) with address `ip`; whether
    /// it is new.
    fn insert(&mut self, slot: u32, ip: IpAddr) -> bool {
        if slot == ABSENT {
            self.outside.insert(ip)
        } else {
            self.in_table.insert(slot)
        }
    }

    fn contains(&self, slot: u32, ip: IpAddr) -> bool {
        if slot == ABSENT {
            self.outside.contains(&ip)
        } else {
            self.in_table.contains(&slot)
        }
    }
}

/// Accumulates packets and messages; output ordered by address (hash maps for speed, sorted
/// on output).
#[derive(Default)]
pub struct Hosts {
    /// Slot in `hosts` of each address.
    index: FxHashMap<IpAddr, u32>,
    hosts: Vec<(IpAddr, Host)>,
    pub dropped: u64,
    /// Peers remembered over all hosts (at most [`MAX_PEER_ENTRIES`]).
    peer_entries: usize,
}

/// A [`FlowHosts`] slot not looked up yet.
const UNRESOLVED: u32 = 0;
/// A [`FlowHosts`] slot of an address the full table has no room for.
const ABSENT: u32 = u32::MAX;

/// The table slots of a flow's two addresses, looked up on its first message and kept with
/// the flow's state: later messages skip both hash lookups (a flow's addresses never
/// change). A fresh one (`default()`) looks them up again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowHosts {
    /// Slot + 1 of the flow's originator and responder (by [`Dir::index`]), or
    /// [`UNRESOLVED`] / [`ABSENT`].
    slots: [u32; 2],
    /// The two addresses are noted as each other's peers (on the flow's first packet with
    /// payload: every later one joins the same two).
    peered: bool,
}

/// One decoded message as the host table sees it.
pub struct HostMsg {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The side of the flow that sent it (picks the [`FlowHosts`] slots).
    pub dir: Dir,
    /// The classifier's kind.
    pub known: Known,
    /// The message's length (counted as relayed when it forwards media).
    pub bytes: u64,
    /// Call id of a media frame.
    pub call_id: Option<u64>,
}

/// A packet with transport payload, as the host table sees it.
pub struct HostPacket {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The side of the flow that sent it.
    pub dir: Dir,
    /// Transport payload bytes.
    pub payload: u64,
}

pub const COLUMNS: &[&str] = &[
    "addr",
    "role",
    "evidence",
    "peers",
    "bytes_sent",
    "bytes_received",
    "bytes_relayed",
];

impl Hosts {
    /// The host in `slot`, looking it up (and adding it while there is room) on first use.
    // Inlined: two per packet, and after a flow's first packet the slot is resolved.
    #[inline]
    /// Starts loading the rows of a flow's two hosts, once looked up (see
    /// [`crate::prefetch`]): with a row per packet, and far more flows than the cache holds
    /// between two packets of one host, the row is otherwise a miss a packet.
    pub fn prefetch(&self, flow: &FlowHosts) {
        for slot in flow.slots {
            // UNRESOLVED - 1 and ABSENT - 1 are past any table MAX_HOSTS allows.
            crate::prefetch::prefetch(&self.hosts, slot.wrapping_sub(1) as usize);
        }
    }

    fn host(&mut self, a: IpAddr, slot: &mut u32) -> Option<&mut Host> {
        if *slot == UNRESOLVED {
            *slot = self.resolve(a);
        }
        // ABSENT - 1 is past any table MAX_HOSTS allows.
        match self.hosts.get_mut((*slot - 1) as usize) {
            Some((_, h)) => Some(h),
            None => {
                self.dropped += 1;
                None
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&mut self, a: IpAddr) -> u32 {
        if let Some(&i) = self.index.get(&a) {
            return i + 1;
        }
        if self.hosts.len() >= MAX_HOSTS {
            return ABSENT;
        }
        let i = self.hosts.len() as u32; // below MAX_HOSTS
        self.hosts.push((a, Host::default()));
        self.index.insert(a, i);
        i + 1
    }

    /// One decoded message (evidence for roles, media for relaying); `flow` holds the slots
    /// of the message's flow.
    pub fn observe(&mut self, m: &HostMsg, flow: &mut FlowHosts) {
        let sender_bits = match m.known {
            Known::AuthChallenge | Known::Credential => ANSWERS_AUTH,
            Known::HttpVersionResponse => ANSWERS_VERSION,
            Known::HcProbeAck | Known::SnRegisterAck | Known::SearchResult => ANSWERS_SN,
            Known::SnRegister => REGISTERS,
            Known::HcProbe => PROBES,
            _ => 0,
        };
        // The call of a media frame, for the relay rule.
        let media_call = m
            .call_id
            .filter(|_| matches!(m.known, Known::Voice | Known::Mix | Known::HoldKeepalive));
        if sender_bits == 0 && media_call.is_none() {
            return; // nothing about roles (its packet counts the bytes)
        }
        let (src, dst) = (m.src, m.dst);
        if let Some(h) = self.host(src, &mut flow.slots[m.dir.index()]) {
            h.evidence |= sender_bits;
            // Sending frames of a call that arrived from another peer: relaying.
            if let Some(c) = media_call {
                if h.sets.media_in.get(&c).is_some_and(|from| *from != dst) {
                    h.evidence |= FORWARDS_MEDIA;
                    h.bytes_relayed += m.bytes;
                }
            }
        }
        if let Some(c) = media_call {
            if let Some(h) = self.host(dst, &mut flow.slots[m.dir.flip().index()]) {
                let media_in = &mut h.sets.media_in;
                if media_in.len() < MAX_CALLS || media_in.contains_key(&c) {
                    media_in.insert(c, src);
                }
            }
        }
    }

    /// One packet with payload (bytes and peers); `flow` holds the slots of its flow.
    pub fn packet(&mut self, p: &HostPacket, flow: &mut FlowHosts) {
        let (from, to) = (p.dir.index(), p.dir.flip().index());
        if let Some(h) = self.host(p.src, &mut flow.slots[from]) {
            h.bytes_sent += p.payload;
        }
        if let Some(h) = self.host(p.dst, &mut flow.slots[to]) {
            h.bytes_received += p.payload;
        }
        if !flow.peered {
            flow.peered = true;
            self.note_peer(flow.slots[from], (flow.slots[to], p.dst));
            self.note_peer(flow.slots[to], (flow.slots[from], p.src));
        }
    }

    /// Notes `peer` (its resolved [`FlowHosts`] slot and address) for the host in `slot`.
    fn note_peer(&mut self, slot: u32, (peer_slot, peer): (u32, IpAddr)) {
        let Some((_, h)) = self.hosts.get_mut(slot.wrapping_sub(1) as usize) else {
            return;
        };
        let peers = &mut h.sets.peers;
        if peers.len() < MAX_PEERS && self.peer_entries < MAX_PEER_ENTRIES {
            if peers.insert(peer_slot, peer) {
                self.peer_entries += 1;
            }
        } else if !peers.contains(peer_slot, peer) {
            peers.saturated = true;
        }
    }

    /// Hosts seen.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn write_csv<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(&CsvRow::header(COLUMNS))?;
        let mut r = CsvRow::default();
        let mut all: Vec<&(IpAddr, Host)> = self.hosts.iter().collect();
        all.sort_unstable_by_key(|(a, _)| *a);
        for (addr, h) in all {
            let evidence: Vec<&str> = EVIDENCE
                .iter()
                .filter(|(bit, _)| h.evidence & bit != 0)
                .map(|(_, name)| *name)
                .collect();
            r.clear();
            r.ip(*addr)
                .str(role(h.evidence))
                .str(&evidence.join(";"))
                .str(&format!(
                    "{}{}",
                    h.sets.peers.len(),
                    if h.sets.peers.saturated { "+" } else { "" }
                ))
                .uint(h.bytes_sent)
                .uint(h.bytes_received)
                .uint(h.bytes_relayed);
            out.write_all(r.finish())?;
        }
        Ok(())
    }

    /// The summary's `hosts` line: how many hosts play each role, strongest role first
    /// (`None` without hosts).
    pub fn summary_line(&self) -> Option<String> {
        if self.hosts.is_empty() {
            return None;
        }
        let mut counts = [0u64; ROLES.len()];
        for (_, h) in &self.hosts {
            let r = role(h.evidence);
            if let Some(i) = ROLES.iter().position(|x| *x == r) {
                counts[i] += 1;
            }
        }
        let roles: Vec<String> = ROLES
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{r} {}", thousands(n)))
            .collect();
        let dropped = match self.dropped {
            0 => String::new(),
            n => format!(
                " ({} packets and messages of further hosts dropped at the {}-host cap)",
                thousands(n),
                thousands(MAX_HOSTS as u64)
            ),
        };
        Some(format!(
            "hosts        {}: {}{dropped}\n",
            thousands(self.hosts.len() as u64),
            roles.join(", ")
        ))
    }

    /// The inferred role of `addr`, when it was seen.
    pub fn role_of(&self, addr: IpAddr) -> Option<&'static str> {
        let &i = self.index.get(&addr)?;
        self.hosts.get(i as usize).map(|(_, h)| role(h.evidence))
    }
}

/// Every role [`role`] gives, strongest first.
const ROLES: [&str; 7] = [
    "login-server",
    "home",
    "super-node+relay",
    "super-node",
    "relay",
    "client",
    "other",
];

fn role(e: u16) -> &'static str {
    if e & ANSWERS_AUTH != 0 {
        "login-server"
    } else if e & ANSWERS_VERSION != 0 {
        "home"
    } else if e & ANSWERS_SN != 0 && e & FORWARDS_MEDIA != 0 {
        "super-node+relay"
    } else if e & ANSWERS_SN != 0 {
        "super-node"
    } else if e & FORWARDS_MEDIA != 0 {
        "relay"
    } else if e & (REGISTERS | PROBES) != 0 {
        "client"
    } else {
        "other"
    }
}

const _: () = assert!(
    size_of::<(IpAddr, Host)>() <= 64,
    "a host fills one cache line"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One message in one packet, alone in its flow (nothing cached).
    fn observe(
        h: &mut Hosts,
        src: IpAddr,
        dst: IpAddr,
        kind: &str,
        bytes: u64,
        call_id: Option<u64>,
    ) {
        let flow = &mut FlowHosts::default();
        let m = HostMsg {
            src,
            dst,
            dir: Dir::Orig,
            known: Known::from_name(kind),
            bytes,
            call_id,
        };
        h.observe(&m, flow);
        h.packet(&packet(src, dst, Dir::Orig, bytes), flow);
    }

    fn packet(src: IpAddr, dst: IpAddr, dir: Dir, payload: u64) -> HostPacket {
        HostPacket {
            src,
            dst,
            dir,
            payload,
        }
    }

    fn host<'a>(h: &'a Hosts, a: &IpAddr) -> &'a Host {
        &h.hosts[h.index[a] as usize].1
    }

    fn host_mut<'a>(h: &'a mut Hosts, a: &IpAddr) -> &'a mut Host {
        &mut h.hosts[h.index[a] as usize].1
    }

    #[test]
    fn roles_follow_the_messages_hosts_answer_and_forward() {
        let (ls, home, sn, a, b, x) = (
            ip("198.51.100.10"),
            ip("198.51.100.80"),
            ip("203.0.113.1"),
            ip("100.64.0.1"),
            ip("100.64.0.2"),
            ip("192.0.2.9"),
        );
        let mut h = Hosts::default();
        observe(&mut h, a, ls, "auth-hello", 60, None);
        observe(&mut h, ls, a, "auth-challenge", 80, None);
        observe(&mut h, a, home, "http-version-check", 200, None);
        observe(&mut h, home, a, "http-version-response", 150, None);
        observe(&mut h, a, sn, "hc-probe", 30, None);
        observe(&mut h, sn, a, "hc-probe-ack", 30, None);
        observe(&mut h, b, sn, "sn-register", 90, None);
        observe(&mut h, sn, b, "sn-register-ack", 40, None);
        // sn relays call 7: a → sn → b and back.
        for _ in 0..3 {
            observe(&mut h, a, sn, "voice", 100, Some(7));
            observe(&mut h, sn, b, "voice", 100, Some(7));
            observe(&mut h, b, sn, "voice", 100, Some(7));
            observe(&mut h, sn, a, "voice", 100, Some(7));
        }
        observe(&mut h, x, a, "dns-query", 40, None);
        let role = |a| h.role_of(a).unwrap();
        assert_eq!(role(ls), "login-server");
        assert_eq!(role(home), "home");
        assert_eq!(role(sn), "super-node+relay");
        assert_eq!(role(a), "client");
        assert_eq!(role(b), "client");
        assert_eq!(role(x), "other");
        let mut out = Vec::new();
        h.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("203.0.113.1,super-node+relay,answers-sn-requests;forwards-media,2,"),
            "{text}"
        );
        // Direct media between the parties is not relaying.
        let mut d = Hosts::default();
        observe(&mut d, a, b, "voice", 100, Some(9));
        observe(&mut d, b, a, "voice", 100, Some(9));
        assert_eq!(d.role_of(a), Some("other"));
    }

    #[test]
    fn bytes_come_from_packets_and_peers_from_a_flows_first_packet() {
        let mut h = Hosts::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flow = FlowHosts::default();
        // A message counts no bytes: its packet does, decoded or not.
        let m = HostMsg {
            src: a,
            dst: b,
            dir: Dir::Orig,
            known: Known::HcProbe,
            bytes: 10,
            call_id: None,
        };
        h.observe(&m, &mut flow);
        assert_eq!(host(&h, &a).bytes_sent, 0);
        assert_eq!(host(&h, &a).sets.peers.len(), 0, "peers come with packets");
        h.packet(&packet(a, b, Dir::Orig, 10), &mut flow);
        h.packet(&packet(b, a, Dir::Resp, 700), &mut flow);
        assert_eq!(
            (host(&h, &a).bytes_sent, host(&h, &a).bytes_received),
            (10, 700)
        );
        assert_eq!(
            (host(&h, &b).bytes_sent, host(&h, &b).bytes_received),
            (700, 10)
        );
        let slot = |x: &IpAddr| h.index[x] + 1;
        assert!(
            host(&h, &a).sets.peers.contains(slot(&b), b)
                && host(&h, &b).sets.peers.contains(slot(&a), a)
        );
        // Later packets of the flow do not look at the peer sets (the flow says so).
        host_mut(&mut h, &a).sets.peers.in_table.clear();
        h.packet(&packet(a, b, Dir::Orig, 1), &mut flow);
        assert_eq!(host(&h, &a).sets.peers.len(), 0);
    }

    #[test]
    fn a_flows_hosts_can_be_prefetched_in_any_state() {
        let mut h = Hosts::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut flow = FlowHosts::default();
        h.prefetch(&flow);
        h.packet(&packet(a, b, Dir::Orig, 10), &mut flow);
        assert!(flow.slots.iter().all(|&s| s != UNRESOLVED && s != ABSENT));
        h.prefetch(&flow);
        flow.slots = [ABSENT, u32::MAX - 1];
        h.prefetch(&flow);
    }

    #[test]
    fn hosts_and_peers_are_bounded() {
        let mut h = Hosts::default();
        let hub = ip("10.0.0.1");
        for i in 0..(MAX_PEERS as u32 + 5) {
            observe(
                &mut h,
                IpAddr::from((0x0b00_0000 + i).to_be_bytes()),
                hub,
                "x",
                1,
                None,
            );
        }
        let mut out = Vec::new();
        h.write_csv(&mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains(&format!("10.0.0.1,other,,{MAX_PEERS}+,"))
        );
    }

    #[test]
    fn peers_outside_a_full_table_are_counted_once_each() {
        let mut h = Hosts::default();
        let hub = ip("10.0.0.1");
        let _ = h.resolve(hub);
        for i in 1..MAX_HOSTS as u32 {
            let _ = h.resolve(IpAddr::from((0x0b00_0000 + i).to_be_bytes()));
        }
        let (x, y) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for peer in [x, y, x, y] {
            h.packet(&packet(hub, peer, Dir::Orig, 5), &mut FlowHosts::default());
        }
        let peers = &host(&h, &hub).sets.peers;
        assert_eq!((peers.in_table.len(), peers.outside.len()), (0, 2));
        assert!(peers.contains(ABSENT, x) && !peers.contains(ABSENT, ip("192.0.2.3")));
        // In-table peers are kept by slot, each once.
        let z = IpAddr::from(0x0b00_0001u32.to_be_bytes());
        for _ in 0..2 {
            h.packet(&packet(hub, z, Dir::Orig, 5), &mut FlowHosts::default());
        }
        assert_eq!(host(&h, &hub).sets.peers.len(), 3);
    }

    #[test]
    fn every_role_is_in_the_summarys_list() {
        for evidence in 0..=u16::from(u8::MAX) {
            assert!(ROLES.contains(&role(evidence)), "{evidence:#x}");
        }
    }

    #[test]
    fn peers_over_all_hosts_are_bounded_too() {
        let mut h = Hosts::default();
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        observe(&mut h, a, b, "x", 1, None);
        h.peer_entries = MAX_PEER_ENTRIES - 1;
        observe(&mut h, a, c, "x", 1, None); // a notes c; c cannot note a
        assert_eq!(h.peer_entries, MAX_PEER_ENTRIES);
        observe(&mut h, a, b, "x", 1, None); // known peers are still known
        let mut out = Vec::new();
        h.write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("10.0.0.1,other,,2,"), "{text}");
        assert!(text.contains("10.0.0.3,other,,0+,"), "{text}");
    }

    #[test]
    fn a_flows_cached_slots_count_like_fresh_lookups_both_ways() {
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let (mut cached, mut fresh) = (Hosts::default(), Hosts::default());
        let mut flow = FlowHosts::default();
        observe(&mut cached, c, a, "x", 1, None); // a takes a slot before the flow
        observe(&mut fresh, c, a, "x", 1, None);
        for (i, dir) in [Dir::Orig, Dir::Resp, Dir::Resp, Dir::Orig]
            .into_iter()
            .enumerate()
        {
            let (src, dst) = if dir == Dir::Orig { (a, b) } else { (b, a) };
            let m = HostMsg {
                src,
                dst,
                dir,
                known: Known::Voice,
                bytes: 10 + i as u64,
                call_id: Some(3),
            };
            cached.observe(&m, &mut flow);
            cached.packet(&packet(src, dst, dir, m.bytes), &mut flow);
            let fresh_flow = &mut FlowHosts::default();
            fresh.observe(&m, fresh_flow);
            fresh.packet(&packet(src, dst, dir, m.bytes), fresh_flow);
        }
        assert_ne!(flow, FlowHosts::default());
        for x in [a, b, c] {
            let (h, f) = (host(&cached, &x), host(&fresh, &x));
            assert_eq!(
                (
                    h.bytes_sent,
                    h.bytes_received,
                    h.evidence,
                    h.sets.peers.len()
                ),
                (
                    f.bytes_sent,
                    f.bytes_received,
                    f.evidence,
                    f.sets.peers.len()
                )
            );
        }
        assert_eq!(
            (
                host(&cached, &a).bytes_sent,
                host(&cached, &a).bytes_received
            ),
            (10 + 13, 11 + 12 + 1)
        );
    }

    #[test]
    fn a_full_table_drops_new_hosts_and_keeps_counting_known_ones() {
        let mut h = Hosts::default();
        for i in 0..MAX_HOSTS as u32 {
            h.resolve(IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
        }
        let (known, new) = (ip("10.0.0.5"), ip("192.0.2.1"));
        let mut flow = FlowHosts::default();
        for _ in 0..3 {
            h.packet(&packet(new, known, Dir::Orig, 7), &mut flow);
        }
        assert_eq!(h.len(), MAX_HOSTS);
        assert_eq!(h.dropped, 3);
        assert_eq!(
            h.summary_line().unwrap(),
            "hosts        100,000: other 100,000 (3 packets and messages of further hosts \
             dropped at the 100,000-host cap)\n"
        );
        assert_eq!(host(&h, &known).bytes_received, 21);
        assert_eq!(h.role_of(new), None);
    }
}
