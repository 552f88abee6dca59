//! IP packets as the simulator moves them: raw IPv4/IPv6 bytes (no link header), built for
//! UDP here and by smoltcp for TCP, read and rewritten in place by NAT boxes, framed in
//! Ethernet only at capture points.
//!
//! Guarantees: every function takes arbitrary bytes without panicking; [`rewrite`] keeps
//! the IPv4 header checksum and the UDP/TCP checksum valid (recomputed incrementally,
//! RFC 1624), so tshark's checksum validation passes after NAT.

use crate::capture::write::{mac_for_v4, mac_for_v6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// Hop limit of every packet a simulated host sends (the Linux default).
pub const TTL: u8 = 64;

/// Transport protocol and endpoints of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// Where the L4 header starts and what it is: `(proto, l4 offset)`. IPv6 extension headers
/// are not used by the simulator, so only a plain header is accepted.
fn l4(pkt: &[u8]) -> Option<(u8, usize)> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            (ihl >= 20 && pkt.len() >= ihl).then_some((*pkt.get(9)?, ihl))
        }
        6 => (pkt.len() >= 40).then_some((*pkt.get(6)?, 40)),
        _ => None,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Source and destination IP addresses.
pub fn addrs(pkt: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match pkt.first()? >> 4 {
        4 => {
            let s: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            Some((Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into()))
        }
        6 => {
            let s: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            Some((Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into()))
        }
        _ => None,
    }
}

/// The packet's protocol and endpoints, when it is UDP or TCP.
pub fn tuple(pkt: &[u8]) -> Option<Tuple> {
    let (proto, off) = l4(pkt)?;
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    let (s, d) = addrs(pkt)?;
    Some(Tuple {
        proto,
        src: SocketAddr::new(s, be16(pkt, off)?),
        dst: SocketAddr::new(d, be16(pkt, off + 2)?),
    })
}

/// TCP flags byte, sequence number and payload length of a TCP packet.
pub fn tcp_info(pkt: &[u8]) -> Option<(u8, u32, usize)> {
    let (proto, off) = l4(pkt)?;
    if proto != PROTO_TCP {
        return None;
    }
    let seq = u32::from_be_bytes(pkt.get(off + 4..off + 8)?.try_into().ok()?);
    let hlen = usize::from(pkt.get(off + 12)? >> 4) * 4;
    let flags = *pkt.get(off + 13)?;
    let payload = pkt.len().checked_sub(off + hlen)?;
    Some((flags, seq, payload))
}

/// Payload of a UDP packet.
pub fn udp_payload(pkt: &[u8]) -> Option<&[u8]> {
    let (proto, off) = l4(pkt)?;
    (proto == PROTO_UDP).then(|| pkt.get(off + 8..))?
}

fn sum16(data: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut it = data.chunks_exact(2);
    for c in &mut it {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = it.remainder() {
        s += u32::from(*b) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Builds an IPv4 or IPv6 UDP packet (checksums set; IPv4: DF, `ip_id`). `None` when the
/// families differ or the payload is too long for one datagram.
pub fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8], ip_id: u16) -> Option<Vec<u8>> {
    let ulen = u16::try_from(8 + payload.len()).ok()?;
    let mut p;
    let pseudo;
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = ulen.checked_add(20)?;
            p = Vec::with_capacity(usize::from(total));
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&ip_id.to_be_bytes());
            p.extend_from_slice(&[0x40, 0, TTL, PROTO_UDP, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = !fold(sum16(&p));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            pseudo = sum16(&s.octets()) + sum16(&d.octets()) + u32::from(PROTO_UDP);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p = Vec::with_capacity(40 + usize::from(ulen));
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&ulen.to_be_bytes());
            p.extend_from_slice(&[PROTO_UDP, TTL]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            pseudo = sum16(&s.octets()) + sum16(&d.octets()) + u32::from(PROTO_UDP);
        }
        _ => return None,
    }
    let off = p.len();
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let s = pseudo + u32::from(ulen) + sum16(&p[off..]);
    let c = match !fold(s) {
        0 => 0xffff, // RFC 768: a computed zero is sent as all ones
        c => c,
    };
    p[off + 6..off + 8].copy_from_slice(&c.to_be_bytes());
    Some(p)
}

/// RFC 1624 eqn. 3: the checksum after 16-bit words summing to `old` became `new`.
fn adjust(check: u16, old: u32, new: u32) -> u16 {
    // One's complement: subtracting `old` is adding its complement.
    !fold(u32::from(!check) + u32::from(!fold(old)) + u32::from(fold(new)))
}

fn put16(pkt: &mut [u8], at: usize, v: u16) {
    if let Some(b) = pkt.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites an IPv4 UDP/TCP packet's source and/or destination endpoint in place, fixing
/// the checksums. `false` (packet untouched) for anything else or a family change.
pub fn rewrite(pkt: &mut [u8], src: Option<SocketAddr>, dst: Option<SocketAddr>) -> bool {
    let Some(t) = tuple(pkt) else {
        return false;
    };
    let Some((_, off)) = l4(pkt) else {
        return false;
    };
    let v4 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => Some((ip, a.port())),
        IpAddr::V6(_) => None,
    };
    let (Some(old_s), Some(old_d)) = (v4(t.src), v4(t.dst)) else {
        return false;
    };
    let new_s = match src.map(v4) {
        Some(None) => return false,
        Some(Some(a)) => a,
        None => old_s,
    };
    let new_d = match dst.map(v4) {
        Some(None) => return false,
        Some(Some(a)) => a,
        None => old_d,
    };
    let words = |(ip, port): (Ipv4Addr, u16)| (sum16(&ip.octets()), u32::from(port));
    let (ips_old, ips_new) = (
        words(old_s).0 + words(old_d).0,
        words(new_s).0 + words(new_d).0,
    );
    let ports_old = u32::from(old_s.1) + u32::from(old_d.1);
    let ports_new = u32::from(new_s.1) + u32::from(new_d.1);
    // IP header checksum covers the addresses.
    if let Some(c) = be16(pkt, 10) {
        put16(pkt, 10, adjust(c, ips_old, ips_new));
    }
    // L4 checksum covers the pseudo-header addresses and the ports.
    let ck_at = off + if t.proto == PROTO_TCP { 16 } else { 6 };
    if let Some(c) = be16(pkt, ck_at) {
        // UDP checksum 0 means "none": leave it so.
        if !(t.proto == PROTO_UDP && c == 0) {
            let mut n = adjust(c, ips_old + ports_old, ips_new + ports_new);
            if t.proto == PROTO_UDP && n == 0 {
                n = 0xffff;
            }
            put16(pkt, ck_at, n);
        }
    }
    let (s, d) = (new_s.0.octets(), new_d.0.octets());
    if let Some(b) = pkt.get_mut(12..16) {
        b.copy_from_slice(&s);
    }
    if let Some(b) = pkt.get_mut(16..20) {
        b.copy_from_slice(&d);
    }
    put16(pkt, off, new_s.1);
    put16(pkt, off + 2, new_d.1);
    true
}

/// The Ethernet II header for `pkt` (MACs by the [`crate::capture::write::FrameBuilder`]
/// rule, so a flow's frames always match).
pub fn ethernet_header(pkt: &[u8]) -> [u8; 14] {
    let (dst_mac, src_mac, ethertype) = match addrs(pkt) {
        Some((IpAddr::V4(s), IpAddr::V4(d))) => (mac_for_v4(d), mac_for_v4(s), 0x0800u16),
        Some((IpAddr::V6(s), IpAddr::V6(d))) => (mac_for_v6(d), mac_for_v6(s), 0x86dd),
        _ => ([0x02, 0, 0, 0, 0, 0], [0x02, 0, 0, 0, 0, 1], 0x0800),
    };
    let mut h = [0u8; 14];
    h[..6].copy_from_slice(&dst_mac);
    h[6..12].copy_from_slice(&src_mac);
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    h
}

/// Replaces `out` with an Ethernet II frame around `pkt`.
pub fn ethernet(pkt: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&ethernet_header(pkt));
    out.extend_from_slice(pkt);
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Checks IPv4 and L4 checksums by recomputing them from scratch with etherparse.
    fn checksums_ok(pkt: &[u8]) -> bool {
        let sp = SlicedPacket::from_ip(pkt).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &sp.net else {
            return true;
        };
        let h = ip.header().to_header();
        if h.calc_header_checksum() != h.header_checksum {
            return false;
        }
        match &sp.transport {
            Some(TransportSlice::Udp(u)) => {
                let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                want == u.checksum()
            }
            Some(TransportSlice::Tcp(t)) => {
                let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                want == t.checksum()
            }
            _ => false,
        }
    }

    #[test]
    fn udp_packets_parse_back() {
        let p = udp(sa("10.0.0.1:1000"), sa("10.0.0.2:2000"), b"hello", 7).unwrap();
        assert_eq!(
            tuple(&p),
            Some(Tuple {
                proto: PROTO_UDP,
                src: sa("10.0.0.1:1000"),
                dst: sa("10.0.0.2:2000")
            })
        );
        assert_eq!(udp_payload(&p), Some(&b"hello"[..]));
        assert!(checksums_ok(&p));
        let p6 = udp(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2"), b"x", 0).unwrap();
        assert_eq!(tuple(&p6).unwrap().dst, sa("[2001:db8::2]:2"));
        let sp = SlicedPacket::from_ip(&p6).unwrap();
        let Some(TransportSlice::Udp(u)) = sp.transport else {
            panic!()
        };
        let Some(NetSlice::Ipv6(ip)) = sp.net else {
            panic!()
        };
        let want = u
            .to_header()
            .calc_checksum_ipv6(&ip.header().to_header(), u.payload())
            .unwrap();
        assert_eq!(want, u.checksum());
        assert!(udp(sa("10.0.0.1:1"), sa("[::1]:2"), b"", 0).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            let mut b = vec![0x45u8; len];
            let _ = tuple(&b);
            let _ = tcp_info(&b);
            let _ = rewrite(&mut b, Some(sa("1.2.3.4:5")), None);
            let mut out = Vec::new();
            ethernet(&b, &mut out);
        }
    }

    proptest! {
        #[test]
        fn rewrite_keeps_checksums_valid(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), pa in any::<u16>(), pb in any::<u16>(),
            c in any::<[u8; 4]>(), pc in any::<u16>(), tcp in any::<bool>(),
        ) {
            let (s, d) = (SocketAddr::from((a, pa)), SocketAddr::from((b, pb)));
            let mut p = if tcp {
                let mut v = Vec::new();
                etherparse::PacketBuilder::ipv4(a, b, 64).tcp(pa, pb, 1, 1000).write(&mut v, &payload).unwrap();
                v
            } else {
                udp(s, d, &payload, 1).unwrap()
            };
            let n = SocketAddr::from((c, pc));
            prop_assert!(rewrite(&mut p, Some(n), None));
            prop_assert!(checksums_ok(&p));
            prop_assert_eq!(tuple(&p).unwrap().src, n);
            prop_assert!(rewrite(&mut p, None, Some(s)));
            prop_assert!(checksums_ok(&p));
            prop_assert_eq!(tuple(&p).unwrap().dst, s);
        }
    }
}
