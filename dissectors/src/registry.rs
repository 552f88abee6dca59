//! Dissector registry: how the analyzer finds and drives the dissector for a flow by content
//! (Suricata's app-layer descriptor shape). Port numbers are hints that order the probes,
//! never gates: Skylark listens on random ports.
//!
//! Contract with the analyzer: it probes the first payload of each direction with every
//! descriptor whose transport matches (port-hinted ones first) and, once a dissector answers
//! [`Probe::Yes`] (or `Maybe` consistently over several messages, as the dissector's own
//! rules say), creates its per-flow state with `new_flow` and feeds it: one call per UDP
//! datagram, or the in-order TCP byte stream (unconsumed bytes are kept by the caller and
//! offered again with more data, bounded).

use crate::DissectError;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::num::NonZeroU16;

/// Transport a dissector runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Outcome of a cheap content probe on the first bytes of a flow direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// Certainly not this protocol.
    No,
    /// Could be; more bytes or more messages needed.
    Maybe,
    /// Structurally valid message of this protocol.
    Yes,
}

/// Which end of the flow sent the bytes (the originator is the flow's first sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Orig,
    Resp,
}

/// The five traffic classes of DESIGN.md §4 (Skylark messages carry theirs by spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TrafficClass {
    Login,
    Lookup,
    Signalling,
    Keepalive,
    Media,
}

impl TrafficClass {
    /// The five classes in report column order (flows.csv, the summary, the TUI).
    pub const ALL: [TrafficClass; 5] = [
        TrafficClass::Login,
        TrafficClass::Lookup,
        TrafficClass::Signalling,
        TrafficClass::Keepalive,
        TrafficClass::Media,
    ];

    /// This class's place in [`Self::ALL`] (per-class counters are arrays indexed by it).
    pub fn index(self) -> usize {
        match self {
            TrafficClass::Login => 0,
            TrafficClass::Lookup => 1,
            TrafficClass::Signalling => 2,
            TrafficClass::Keepalive => 3,
            TrafficClass::Media => 4,
        }
    }

    /// The class named `name` (as [`Self::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<TrafficClass> {
        TrafficClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficClass::Login => "login",
            TrafficClass::Lookup => "lookup",
            TrafficClass::Signalling => "signalling",
            TrafficClass::Keepalive => "keepalive",
            TrafficClass::Media => "media",
        }
    }
}

/// How completely a message decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Every field parsed.
    Complete,
    /// The message was cut (snaplen, gap) but its header parsed.
    Truncated,
    /// The message broke a rule of its format; what parsed is reported.
    Malformed,
}

impl Status {
    /// Every status, in [`Self::index`] order.
    pub const ALL: [Status; 3] = [Status::Complete, Status::Truncated, Status::Malformed];

    /// This status's place in [`Self::ALL`].
    pub fn index(self) -> usize {
        match self {
            Status::Complete => 0,
            Status::Truncated => 1,
            Status::Malformed => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Truncated => "truncated",
            Status::Malformed => "malformed",
        }
    }
}

/// One decoded message, as the analyzer records it (a row of `messages.csv`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Registry name of the protocol: `skylark`, `stun`, `dns`, `http`, `tls`.
    pub protocol: &'static str,
    /// Message type name, e.g. `invite`, `binding-request`, `query`, `GET`, `client-hello`.
    pub msg_type: Cow<'static, str>,
    /// The protocol's own number for `msg_type`, where it numbers its messages: the Skylark
    /// type (PROTOCOL.md §3.3), the STUN message type (RFC 8489 §5); neither assigns 0. A
    /// consumer switches on it rather than comparing names (millions of messages a minute).
    /// Non-zero, so the field costs two bytes and the message stays the size it was.
    pub type_code: Option<NonZeroU16>,
    pub txn_id: Option<u64>,
    pub call_id: Option<u64>,
    /// Bytes of the message on the wire (header included).
    pub len: u32,
    pub status: Status,
    /// Class by specification (Skylark); `None` when the protocol does not say.
    pub class: Option<TrafficClass>,
    /// Short protocol-specific detail: DNS name and answers, HTTP Host and path, TLS SNI,
    /// STUN mapped address. Bounded by the dissector; never contains raw control bytes.
    pub detail: Option<String>,
    /// Typed call and media fields for measurements (calls.csv); `None` unless the protocol
    /// carries calls (today only Skylark fills it).
    pub call: Option<CallInfo>,
}

/// Typed fields of a call-related message, as values rather than `detail` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallInfo {
    /// A media frame (Skylark §7.1): sequence number and 8 kHz sampling timestamp.
    Media { seq: u16, timestamp: u32 },
    /// Signalling fields present in the message (boxed: rare, and larger than a frame).
    Signal(Box<CallSignal>),
}

/// Signalling fields of a call message (Skylark §5.1, family 3); absent fields are `None`.
/// Strings are bounded by the protocol's own limits (Skylark: 1024 bytes, 256 list items).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSignal {
    pub caller: Option<String>,
    pub callee: Option<String>,
    /// `conf-join` / `conf-leave` member.
    pub user: Option<String>,
    /// Conference mixer (`invite` of a conference leg, `conf-mixer`).
    pub mixer: Option<String>,
    /// Conference members (`invite` of a conference leg, `conf-mixer`).
    pub members: Vec<String>,
    pub media_addr: Option<SocketAddr>,
    pub relay_addr: Option<SocketAddr>,
    pub frame_ms: Option<u32>,
    pub error_code: Option<u32>,
    pub reason: Option<String>,
}

/// What a [`FlowDissector::parse`] call did with its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// `consumed` bytes were used; on TCP the caller keeps the rest and calls again with
    /// more (at least `needed` more bytes, when known).
    Parsed {
        consumed: usize,
        needed: Option<usize>,
    },
    /// The input is not (or no longer) this protocol; `consumed` bytes were skipped while
    /// trying to resynchronise. The caller counts an anomaly and may give up on the flow.
    Error {
        consumed: usize,
        error: DissectError,
    },
}

/// Per-flow parsing state of one dissector.
pub trait FlowDissector: Send {
    /// Parses one UDP datagram or the pending in-order TCP bytes of `side`, appending
    /// decoded messages to `out`. `ts_ns` is the capture time of the newest bytes.
    fn parse(&mut self, side: Side, ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress;

    /// A datagram on a UDP flow this dissector claimed: parsed as [`Self::parse`] would if
    /// `probe` (this dissector's) calls it [`Probe::Yes`]; otherwise left alone, `None`, so
    /// the caller can offer it to a protocol sharing the port (PROTOCOL.md §2.4). A
    /// dissector that can tell from one parse, keeping no state when unsure, overrides this
    /// to look at the bytes once.
    fn parse_datagram_if_sure(
        &mut self,
        probe: fn(Transport, Side, &[u8]) -> Probe,
        side: Side,
        ts_ns: i64,
        data: &[u8],
        out: &mut Vec<Message>,
    ) -> Option<Progress> {
        (probe(Transport::Udp, side, data) == Probe::Yes)
            .then(|| self.parse(side, ts_ns, data, out))
    }

    /// `missing` bytes of `side` were lost (TCP gap): resynchronise or give up.
    fn on_gap(&mut self, side: Side, missing: u64) {
        let _ = (side, missing);
    }
}

/// Every dissector, in probing order (port-hinted ones are tried first, then this order).
pub const ALL: &[DissectorDesc] = &[
    crate::skylark::DESCRIPTOR,
    crate::stun::DESCRIPTOR,
    crate::dns::DESCRIPTOR,
    crate::tls::DESCRIPTOR,
    crate::http::DESCRIPTOR,
];

/// A registered dissector.
#[derive(Clone, Copy)]
pub struct DissectorDesc {
    pub name: &'static str,
    pub transports: &'static [Transport],
    /// Ports that make this dissector worth probing first. Hints, never gates.
    pub port_hints: &'static [u16],
    /// Cheap look at the first bytes of a datagram or stream direction: no allocation.
    pub probe: fn(Transport, Side, &[u8]) -> Probe,
    pub new_flow: fn(Transport) -> Box<dyn FlowDissector>,
}

impl std::fmt::Debug for DissectorDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DissectorDesc")
            .field("name", &self.name)
            .field("transports", &self.transports)
            .field("port_hints", &self.port_hints)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_and_status_sits_at_its_index() {
        for (i, c) in TrafficClass::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i, "{c:?}");
        }
        for (i, s) in Status::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i, "{s:?}");
        }
    }

    #[test]
    fn every_class_is_found_by_its_name_and_nothing_else_is() {
        for c in TrafficClass::ALL {
            assert_eq!(TrafficClass::from_name(c.as_str()), Some(c));
        }
        for name in ["", "Login", "other", "keepalives"] {
            assert_eq!(TrafficClass::from_name(name), None, "{name}");
        }
    }
}
