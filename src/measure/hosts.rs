//! Who is who (`hosts.csv`): every address that sent or received a decoded message, with the
//! role its traffic shows and the evidence for it (PROTOCOL.md §8: which messages a login
//! server, home server, super node, relay or client sends and answers).
//!
//! Rules, strongest first: answering `auth-challenge`/`credential` → login-server; answering
//! an HTTP version check → home; answering `hc-probe`, `sn-register` or `search` →
//! super-node; forwarding media frames of calls it is not a party to (voice in from one peer
//! and out to another with the same call id) → relay (a super node that relays is reported
//! as `super-node+relay`); sending `sn-register` or `hc-probe` → client; else other.
//!
//! Must not: keep per-message state — counters per host and a bounded set of call ids per
//! host for the relay rule.

use crate::report::csv_row::CsvRow;
use rustc_hash::{FxHashMap, FxHashSet};
use std::io::{self, Write};
use std::net::IpAddr;

/// Hosts tracked; messages of further hosts are counted and dropped.
pub const MAX_HOSTS: usize = 100_000;
/// Distinct peers counted per host (beyond it the count saturates).
pub const MAX_PEERS: usize = 4096;
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
    peers: FxHashSet<IpAddr>,
    peers_saturated: bool,
    media_in: FxHashMap<u64, IpAddr>,
}

/// Accumulates messages; output ordered by address (hash maps for speed, sorted on output).
#[derive(Default)]
pub struct Hosts {
    hosts: FxHashMap<IpAddr, Host>,
    pub dropped: u64,
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
    fn host(&mut self, a: IpAddr) -> Option<&mut Host> {
        // One lookup in the usual case (room left); `get_mut` only once the table is full.
        if self.hosts.len() < MAX_HOSTS {
            return Some(self.hosts.entry(a).or_default());
        }
        match self.hosts.get_mut(&a) {
            Some(h) => Some(h),
            None => {
                self.dropped += 1;
                None
            }
        }
    }

    /// One decoded message: `kind` is its canonical name (Skylark message name, or
    /// `http-version-response` and the like), `call_id` for media frames. `new_pair`: the
    /// first message between these endpoints in this flow (peers are noted only then — every
    /// later message of the flow joins the same two addresses).
    pub fn observe(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        kind: &str,
        bytes: u64,
        call_id: Option<u64>,
        new_pair: bool,
    ) {
        let sender_bits = match kind {
            "auth-challenge" | "credential" => ANSWERS_AUTH,
            "http-version-response" => ANSWERS_VERSION,
            "hc-probe-ack" | "sn-register-ack" | "search-result" => ANSWERS_SN,
            "sn-register" => REGISTERS,
            "hc-probe" => PROBES,
            _ => 0,
        };
        let media = matches!(kind, "voice" | "mix" | "hold-keepalive");
        if let Some(h) = self.host(src) {
            h.evidence |= sender_bits;
            h.bytes_sent += bytes;
            if new_pair {
                note_peer(h, dst);
            }
            if let (true, Some(c)) = (media, call_id) {
                // Sending frames of a call that arrived from another peer: relaying.
                if h.sets.media_in.get(&c).is_some_and(|from| *from != dst) {
                    h.evidence |= FORWARDS_MEDIA;
                    h.bytes_relayed += bytes;
                }
            }
        }
        if let Some(h) = self.host(dst) {
            h.bytes_received += bytes;
            if new_pair {
                note_peer(h, src);
            }
            if let (true, Some(c)) = (media, call_id) {
                let media_in = &mut h.sets.media_in;
                if media_in.len() < MAX_CALLS || media_in.contains_key(&c) {
                    media_in.insert(c, src);
                }
            }
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
        let mut all: Vec<(&IpAddr, &Host)> = self.hosts.iter().collect();
        all.sort_unstable_by_key(|(a, _)| **a);
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
                    if h.sets.peers_saturated { "+" } else { "" }
                ))
                .uint(h.bytes_sent)
                .uint(h.bytes_received)
                .uint(h.bytes_relayed);
            out.write_all(r.finish())?;
        }
        Ok(())
    }

    /// The inferred role of `addr`, when it was seen.
    pub fn role_of(&self, addr: IpAddr) -> Option<&'static str> {
        self.hosts.get(&addr).map(|h| role(h.evidence))
    }
}

fn note_peer(h: &mut Host, peer: IpAddr) {
    let sets = &mut *h.sets;
    if sets.peers.len() < MAX_PEERS {
        sets.peers.insert(peer);
    } else if !sets.peers.contains(&peer) {
        sets.peers_saturated = true;
    }
}

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
        h.observe(a, ls, "auth-hello", 60, None, true);
        h.observe(ls, a, "auth-challenge", 80, None, true);
        h.observe(a, home, "http-version-check", 200, None, true);
        h.observe(home, a, "http-version-response", 150, None, true);
        h.observe(a, sn, "hc-probe", 30, None, true);
        h.observe(sn, a, "hc-probe-ack", 30, None, true);
        h.observe(b, sn, "sn-register", 90, None, true);
        h.observe(sn, b, "sn-register-ack", 40, None, true);
        // sn relays call 7: a → sn → b and back.
        for _ in 0..3 {
            h.observe(a, sn, "voice", 100, Some(7), true);
            h.observe(sn, b, "voice", 100, Some(7), true);
            h.observe(b, sn, "voice", 100, Some(7), true);
            h.observe(sn, a, "voice", 100, Some(7), true);
        }
        h.observe(x, a, "dns-query", 40, None, true);
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
        d.observe(a, b, "voice", 100, Some(9), true);
        d.observe(b, a, "voice", 100, Some(9), true);
        assert_eq!(d.role_of(a), Some("other"));
    }

    #[test]
    fn peers_are_noted_on_a_new_pair_only() {
        let mut h = Hosts::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        h.observe(a, b, "x", 10, None, false);
        assert!(
            h.hosts[&a].sets.peers.is_empty(),
            "not a new pair: bytes only"
        );
        assert_eq!(h.hosts[&a].bytes_sent, 10);
        h.observe(b, a, "x", 5, None, true);
        assert!(h.hosts[&a].sets.peers.contains(&b) && h.hosts[&b].sets.peers.contains(&a));
    }

    #[test]
    fn hosts_and_peers_are_bounded() {
        let mut h = Hosts::default();
        let hub = ip("10.0.0.1");
        for i in 0..(MAX_PEERS as u32 + 5) {
            h.observe(
                IpAddr::from((0x0b00_0000 + i).to_be_bytes()),
                hub,
                "x",
                1,
                None,
                true,
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
}
