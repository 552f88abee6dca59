//! The content probe (PROTOCOL.md §2.5): decides from the first bytes of a UDP datagram or
//! a TCP direction whether they are Skylark, using only the header invariants (magic,
//! version, flags, header check, family, length bound) and, on UDP, length consistency.
//!
//! Guarantees: no allocation, no panic, constant time (reads 12 bytes). Must not: walk the
//! body (the flow dissector does that on every message).

use super::framing::{known_family, plausible_prefix};
use super::header::{HEADER_LEN, Packet};
use crate::registry::{Probe, Side, Transport};

/// `Yes` for a valid header of a known family whose length matches the datagram (UDP) or is
/// within bounds (TCP); `Maybe` for a plausible prefix, a datagram cut short, or a reserved
/// family; `No` otherwise.
pub fn probe(transport: Transport, _side: Side, data: &[u8]) -> Probe {
    if data.len() < HEADER_LEN {
        return if plausible_prefix(data) {
            Probe::Maybe
        } else {
            Probe::No
        };
    }
    let packet = Packet::new_unchecked(data);
    let Ok(header) = packet.header() else {
        return Probe::No;
    };
    let total = header.total_len();
    let sure = if known_family(data) {
        Probe::Yes
    } else {
        Probe::Maybe
    };
    match transport {
        Transport::Udp if data.len() == total => sure,
        // A capture cut short (snap length) can still be Skylark.
        Transport::Udp if data.len() < total => Probe::Maybe,
        Transport::Udp => Probe::No,
        Transport::Tcp => sure,
    }
}
