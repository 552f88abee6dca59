//! The fast path: a fully captured Ethernet (0–2 VLAN tags), SLL/SLL2 or raw-IP frame
//! carrying an unfragmented IPv4 or IPv6 (no extension headers) packet with a complete,
//! consistent TCP or UDP header — nearly every packet of a VoIP trace — decoded with a few
//! bounds-checked reads instead of etherparse's general slicing.
//!
//! Guarantees: returns `Some` only when the general path would produce the same packet
//! (checked by a property test against it); anything unusual — truncation, fragments,
//! extension headers, options it does not walk, inconsistent lengths, other protocols —
//! returns `None` and the general path decides, counts and reports. Never panics.

use super::link::{self, ETHER_TYPE_IPV4, ETHER_TYPE_IPV6, Link};
use super::{L4, Packet, TcpSegment, UdpDatagram};
use crate::capture::Frame;
use crate::capture::LinkType;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETHER_HEADER_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const ETHER_TYPE_VLAN: u16 = 0x8100;
const ETHER_TYPE_QINQ: u16 = 0x88a8;
const MAX_FAST_TAGS: usize = 2;
const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const TCP_MIN_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The IP bytes of an Ethernet frame with at most two VLAN tags.
#[inline(always)]
fn ethernet_ip(frame: &[u8]) -> Option<&[u8]> {
    let mut at = ETHER_HEADER_LEN - 2;
    for _ in 0..=MAX_FAST_TAGS {
        match be16(frame, at)? {
            ETHER_TYPE_IPV4 | ETHER_TYPE_IPV6 => return frame.get(at + 2..),
            ETHER_TYPE_VLAN | ETHER_TYPE_QINQ => at += VLAN_TAG_LEN,
            _ => return None,
        }
    }
    None
}

/// The IP source and destination of a frame of any IP protocol (fragments too), through the
/// same link stripping as decoding; `None` when it is not IP or too short. For cheap address
/// filters ahead of the pipeline (`lab --capture` keeps only the lab's hosts).
pub fn ip_endpoints(linktype: LinkType, data: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = match link::strip(linktype, data) {
        Link::Ethernet(bytes) => ethernet_ip(bytes)?,
        Link::EtherType(ETHER_TYPE_IPV4 | ETHER_TYPE_IPV6, bytes) | Link::Ip(bytes) => bytes,
        _ => return None,
    };
    match ip.first()? >> 4 {
        4 => {
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        6 => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        _ => None,
    }
}

/// Decodes `frame` when it is the common case; `None` sends it to the general path. Keeps
/// no state and counts nothing, so it can also look at frames ahead of the decoder.
/// Always inlined into the decoder: the packet is then built in place, not returned
/// through memory (with `link::strip` inlined too, -0.27 % instructions a frame).
#[inline(always)]
pub fn decode<'a>(frame: &Frame<'a>) -> Option<Packet<'a>> {
    if frame.is_truncated() {
        return None;
    }
    let ip = match link::strip(frame.linktype, frame.data) {
        Link::Ethernet(bytes) => ethernet_ip(bytes)?,
        Link::EtherType(ETHER_TYPE_IPV4 | ETHER_TYPE_IPV6, bytes) | Link::Ip(bytes) => bytes,
        _ => return None,
    };
    let (src, dst, proto, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let frag = be16(ip, 6)?;
            // MF set or a fragment offset: a fragment, for the general path.
            if ihl < IPV4_MIN_HEADER || total < ihl || total > ip.len() || frag & 0x3fff != 0 {
                return None;
            }
            let a = ip.get(12..20)?;
            let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let dst = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                *ip.get(9)?,
                ip.get(ihl..total)?,
            )
        }
        6 => {
            let plen = usize::from(be16(ip, 4)?);
            if plen == 0 {
                return None; // a jumbogram or a zero length: the general path decides
            }
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                *ip.get(6)?,
                ip.get(IPV6_HEADER..IPV6_HEADER + plen)?,
            )
        }
        _ => return None,
    };
    let l4 = match proto {
        PROTO_TCP => {
            let doff = usize::from(l4.get(12)? >> 4) * 4;
            if doff < TCP_MIN_HEADER || doff > l4.len() {
                return None;
            }
            let payload = l4.get(doff..)?;
            L4::Tcp(TcpSegment {
                src_port: be16(l4, 0)?,
                dst_port: be16(l4, 2)?,
                seq: be32(l4, 4)?,
                ack: be32(l4, 8)?,
                flags: *l4.get(13)?,
                window: be16(l4, 14)?,
                payload_len: u32::try_from(payload.len()).ok()?,
                payload,
            })
        }
        PROTO_UDP => {
            let len = usize::from(be16(l4, 4)?);
            if len < UDP_HEADER || len > l4.len() {
                return None;
            }
            let payload = l4.get(UDP_HEADER..len)?;
            L4::Udp(UdpDatagram {
                src_port: be16(l4, 0)?,
                dst_port: be16(l4, 2)?,
                payload_len: u32::try_from(payload.len()).ok()?,
                payload,
            })
        }
        _ => return None,
    };
    Some(Packet {
        ts: frame.ts,
        wire_len: u64::from(frame.orig_len),
        frames: 1,
        src,
        dst,
        ip_proto: proto,
        l4,
        truncated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Decoder, DefragLimits};
    use crate::capture::{CaptureReader, Frame, LinkType};
    use crate::time::Ts;
    use etherparse::{PacketBuilder, VlanId};
    use proptest::prelude::*;

    /// Decodes `frame` with the full decoder (fast path first) and with the general path
    /// alone; both packets and both statistics must agree.
    #[track_caller]
    fn assert_paths_agree(frame: &Frame<'_>) -> bool {
        let mut both = Decoder::new(DefragLimits::default());
        let mut general = Decoder::new(DefragLimits::default());
        let took_fast = super::decode(frame).is_some();
        let a = format!("{:?}", both.decode(frame));
        let b = format!("{:?}", general.decode_general(frame));
        assert_eq!(a, b, "packets differ for {:02x?}", frame.data);
        assert_eq!(both.stats(), general.stats(), "stats differ");
        took_fast
    }

    fn frame(linktype: LinkType, data: &[u8]) -> Frame<'_> {
        Frame {
            ts: Ts(1),
            linktype,
            orig_len: data.len() as u32,
            interface: 0,
            data,
        }
    }

    fn build(v6: bool, tcp: bool, tags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let vid = |v| VlanId::try_new(v).unwrap();
        macro_rules! l4 {
            ($ip:expr) => {
                if tcp {
                    $ip.tcp(4000, 80, 7, 1000).write(&mut out, payload).unwrap()
                } else {
                    $ip.udp(5000, 53).write(&mut out, payload).unwrap()
                }
            };
        }
        macro_rules! ip {
            ($link:expr) => {
                if v6 {
                    l4!($link.ipv6([0x20; 16], [0x30; 16], 64))
                } else {
                    l4!($link.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64))
                }
            };
        }
        match tags {
            0 => ip!(eth),
            1 => ip!(eth.single_vlan(vid(7))),
            _ => ip!(eth.double_vlan(vid(7), vid(8))),
        }
        out
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_the_general_path(
            v6 in any::<bool>(),
            tcp in any::<bool>(),
            tags in 0u8..3,
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            flips in proptest::collection::vec((0usize..90, any::<u8>()), 0..4),
            cut in 0usize..8,
        ) {
            let mut bytes = build(v6, tcp, tags, &payload);
            for (at, v) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b = v;
                }
            }
            let keep = bytes.len().saturating_sub(cut);
            assert_paths_agree(&frame(LinkType::ETHERNET, &bytes[..keep]));
        }
    }

    #[test]
    fn common_packets_take_the_fast_path() {
        for (v6, tcp, tags) in [(false, false, 0), (true, true, 1), (false, true, 2)] {
            let bytes = build(v6, tcp, tags, b"hello");
            assert!(assert_paths_agree(&frame(LinkType::ETHERNET, &bytes)));
        }
    }

    #[test]
    fn fast_path_agrees_on_every_frame_of_the_real_captures() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures-external");
        let mut paths = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/voip-mix.pcap"
        ))];
        match std::fs::read_to_string(format!("{root}/INDEX.tsv")) {
            Ok(index) => paths.extend(
                index
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split('\t').next())
                    .map(|f| std::path::Path::new(root).join(f)),
            ),
            Err(_) => eprintln!("skipped external captures: {root} not found"),
        }
        let mut fast = 0;
        for path in paths {
            let mut reader = CaptureReader::open(&path).unwrap();
            while let Ok(Some(f)) = reader.next_frame() {
                fast += usize::from(assert_paths_agree(&f));
            }
        }
        assert!(fast > 3000, "only {fast} frames took the fast path");
    }
}
