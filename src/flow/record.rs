//! What the flow table reports about a flow when it ends: a Zeek `conn.log`-like record.

use super::Dir;
use super::conn_state::ConnState;
use super::key::Endpoint;
use crate::time::Ts;
use std::fmt;

/// Per-direction counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// IP packets (a reassembled datagram counts as the number of its fragments).
    pub pkts: u64,
    /// Bytes on the wire: the frames' original lengths, as tshark counts them.
    pub bytes: u64,
    /// Transport payload bytes as sent (from the IP/UDP lengths; retransmissions included).
    pub payload: u64,
}

/// Why a flow record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Idle longer than its protocol's timeout.
    Idle,
    /// Evicted to respect the live-flow cap (the least recently active flow goes first).
    Evicted,
    /// A TCP connection closed and a new SYN reused its endpoints.
    Reused,
    /// Still live at the end of the input.
    Eof,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Evicted => "evicted",
            EndReason::Reused => "reused",
            EndReason::Eof => "eof",
        }
    }
}

/// A stable, unique flow identifier (`C` + 11 base-62 digits, like Zeek's uids), derived
/// from the flow's key, start time and creation order so that two runs agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub u64);

/// A uid's 12 ASCII characters (see [`Uid::encode`]).
#[derive(Clone, Copy)]
pub struct UidText([u8; 12]);

/// A flow's uid with its text, kept beside per-flow state so that a report writing a row
/// per message encodes each flow's uid once rather than once per row (11 base-62 digits
/// are 11 divisions). Always right: a different uid is encoded afresh.
#[derive(Clone, Copy)]
pub struct UidCache {
    uid: Uid,
    text: UidText,
}

impl Default for UidCache {
    fn default() -> UidCache {
        UidCache {
            uid: Uid(0),
            text: Uid(0).encode(),
        }
    }
}

impl UidCache {
    /// `uid`'s text, encoded only if it is not the one cached.
    #[inline]
    pub fn text(&mut self, uid: Uid) -> &UidText {
        if self.uid != uid {
            *self = UidCache {
                uid,
                text: uid.encode(),
            };
        }
        &self.text
    }
}

impl UidText {
    /// The characters as bytes (ASCII), for writers that skip the UTF-8 check.
    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("C00000000000")
    }
}

impl Uid {
    /// `C` and 11 base-62 digits, as Zeek prints connection uids; without `fmt`.
    pub fn encode(self) -> UidText {
        const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        // 11 digits as two independent halves (5 high, 6 low): two short chains of
        // dependent divisions instead of one long one (a row per message carries a uid).
        const LOW: u64 = 62u64.pow(6);
        let mut buf = [b'0'; 12];
        buf[0] = b'C';
        let (high, low) = buf[1..].split_at_mut(5);
        let (mut h, mut l) = (self.0 / LOW, self.0 % LOW);
        for slot in high.iter_mut().rev() {
            *slot = DIGITS[(h % 62) as usize];
            h /= 62;
        }
        for slot in low.iter_mut().rev() {
            *slot = DIGITS[(l % 62) as usize];
            l /= 62;
        }
        UidText(buf)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

/// One flow, as reported.
#[derive(Clone, Debug)]
pub struct FlowRecord {
    pub uid: Uid,
    /// Creation order within the run (tie-breaker for equal start times).
    pub seq: u64,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, …).
    pub proto: u8,
    pub orig: Endpoint,
    pub resp: Endpoint,
    pub ts_start: Ts,
    pub ts_end: Ts,
    /// Indexed by [`Dir::index`].
    pub stats: [DirStats; 2],
    pub conn: ConnState,
    pub end: EndReason,
    /// Application protocol of the dissector that claimed the flow (`skylark`, `stun`,
    /// `dns`, `http`, `tls`), when one did.
    pub service: Option<&'static str>,
    /// The flow's place among live flows, as in [`crate::pipeline::MsgCtx::live_index`]:
    /// free for reuse once this record is out.
    pub live_index: u32,
}

impl FlowRecord {
    pub fn dir(&self, dir: Dir) -> &DirStats {
        &self.stats[dir.index()]
    }

    pub fn total_pkts(&self) -> u64 {
        self.stats[0].pkts + self.stats[1].pkts
    }

    pub fn total_bytes(&self) -> u64 {
        self.stats[0].bytes + self.stats[1].bytes
    }

    pub fn duration_ns(&self) -> i64 {
        self.ts_end.since(self.ts_start)
    }

    pub fn proto_name(&self) -> &'static str {
        proto_name(self.proto)
    }

    /// Zeek's `conn_state`: the TCP state machine for TCP; `S0` (one-way) or `SF`
    /// (answered) for UDP; `OTH` otherwise.
    pub fn state(&self) -> &'static str {
        match self.proto {
            6 => self.conn.tcp_state(),
            17 if self.stats[1].pkts == 0 => "S0",
            17 => "SF",
            _ => "OTH",
        }
    }

    pub fn history(&self) -> &str {
        self.conn.history()
    }
}

/// Lower-case protocol name as used in reports (`tcp`, `udp`, `icmp`, …, else the number).
pub fn proto_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6-in-ip",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmp6",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        _ => "ip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_zeek_and_are_fixed_width() {
        assert_eq!(Uid(0).to_string(), "C00000000000");
        assert_eq!(Uid(u64::MAX).to_string().len(), 12);
        assert_ne!(Uid(1).to_string(), Uid(2).to_string());
    }

    #[test]
    fn a_uid_cache_gives_each_uid_its_own_text_whatever_came_before() {
        let mut cache = UidCache::default();
        for uid in [0, 0, 7, 7, 0, u64::MAX, 62, 7].map(Uid) {
            assert_eq!(cache.text(uid).as_str(), uid.to_string());
        }
    }

    proptest::proptest! {
        /// The split encoding is plain base 62, 11 digits, for every uid.
        #[test]
        fn uids_are_base_62(v in proptest::prelude::any::<u64>(), shift in 0u32..64) {
            let v = v >> shift;
            let text = Uid(v).to_string();
            proptest::prop_assert!(text.starts_with('C'));
            let decoded = text[1..].bytes().fold(0u128, |acc, d| {
                let digit = match d {
                    b'0'..=b'9' => d - b'0',
                    b'A'..=b'Z' => d - b'A' + 10,
                    _ => d - b'a' + 36,
                };
                acc * 62 + u128::from(digit)
            });
            proptest::prop_assert_eq!(decoded, u128::from(v));
        }
    }
}
