//! Decoding: a [`Frame`](crate::capture::Frame) becomes a [`Packet`] (IP endpoints, L4 header
//! fields, payload), via etherparse's lax slicing, after the link layer and any IPv4/IPv6
//! fragment reassembly.
//!
//! Guarantees: never panics on any bytes; a frame that stops parsing early is decoded as far
//! as it goes and the reason is counted in [`DecodeStats`]; fragment buffers are bounded in
//! count, bytes and age; no allocation or hash lookup for a frame that is not a fragment.
//! Only the outermost IP header and the transport directly on it are decoded (a tunnel is
//! reported at its outer layer), matching how flows are compared with tshark.
//! Must not: know about flows.

mod decoder;
mod defrag;
mod fast;
mod link;
mod stats;

pub use decoder::Decoder;
pub use defrag::DefragLimits;
pub use fast::{decode as decode_common, ip_endpoints};
pub use stats::{DecodeStats, label};

use crate::time::Ts;
use std::net::{IpAddr, SocketAddr};

/// TCP flag bits as on the wire (low byte of the flags field).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// An IP packet with its transport header decoded (or a reassembled IP datagram).
#[derive(Clone, Debug)]
pub struct Packet<'a> {
    pub ts: Ts,
    /// Bytes on the wire of the frame(s) carrying this packet (pcap `orig_len`, summed over
    /// fragments for a reassembled datagram) — what tshark counts as bytes.
    pub wire_len: u64,
    /// Frames that made this packet: 1, or the number of fragments reassembled.
    pub frames: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number of the transport (after IPv6 extension headers).
    pub ip_proto: u8,
    pub l4: L4<'a>,
    /// The capture cut the packet (snaplen) or the headers claim more than was captured.
    pub truncated: bool,
}

#[derive(Clone, Debug)]
pub enum L4<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
    },
    /// Another IP protocol (or a TCP/UDP header cut short): no ports.
    Other {
        payload_len: u32,
    },
}

#[derive(Clone, Debug)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload length according to the IP header (what was sent, even if not captured).
    pub payload_len: u32,
    /// The captured payload bytes (may be shorter than `payload_len` when truncated).
    pub payload: &'a [u8],
}

#[derive(Clone, Debug)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload length according to the UDP/IP headers.
    pub payload_len: u32,
    /// The captured payload bytes (may be shorter than `payload_len` when truncated).
    pub payload: &'a [u8],
}

impl Packet<'_> {
    /// Source and destination ports, when the transport has them.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match &self.l4 {
            L4::Tcp(t) => Some((t.src_port, t.dst_port)),
            L4::Udp(u) => Some((u.src_port, u.dst_port)),
            _ => None,
        }
    }

    /// Sender and receiver (port 0 for a transport without ports).
    #[inline]
    pub fn ends(&self) -> (SocketAddr, SocketAddr) {
        let (sport, dport) = self.ports().unwrap_or((0, 0));
        (
            SocketAddr::new(self.src, sport),
            SocketAddr::new(self.dst, dport),
        )
    }

    /// Transport payload length as sent (0 for ICMP).
    pub fn payload_len(&self) -> u32 {
        match &self.l4 {
            L4::Tcp(t) => t.payload_len,
            L4::Udp(u) => u.payload_len,
            L4::Icmp { .. } => 0,
            L4::Other { payload_len } => *payload_len,
        }
    }
}
