//! Decoder tests from hand-made frames: every link type, IPv6 extension headers, ICMP,
//! truncation, padding, non-IP, fragments, and property tests for panics and round trips.

use super::*;
use crate::capture::LinkType;
use crate::decode::tcp_flags;
use etherparse::{PacketBuilder, VlanId};
use proptest::prelude::*;

const SRC4: [u8; 4] = [192, 168, 1, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn decoder() -> Decoder {
    Decoder::new(DefragLimits::default())
}

fn frame(linktype: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Ts(1_000),
        linktype,
        orig_len: data.len() as u32,
        interface: 0,
        data,
    }
}

/// A frame whose capture kept only `caplen` of `data`.
fn cut_frame(linktype: LinkType, data: &[u8], caplen: usize) -> Frame<'_> {
    Frame {
        orig_len: data.len() as u32,
        data: &data[..caplen],
        ..frame(linktype, data)
    }
}

fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .udp(5000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .udp(5000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn eth_ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC4, DST4, 64)
        .udp(5000, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn eth_ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(SRC4, DST4, 64)
        .tcp(40000, 443, 1_000_000, 512)
        .syn()
        .ack(77)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// A raw IPv4 header (checksum left 0: the decoder does not check it) followed by `payload`.
fn ipv4_raw(proto: u8, id: u16, offset: u32, more: bool, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&SRC4);
    v.extend_from_slice(&DST4);
    v.extend_from_slice(payload);
    v
}

/// A raw IPv6 header with `next` as next header, followed by `payload`.
fn ipv6_raw(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&SRC6);
    v.extend_from_slice(&DST6);
    v.extend_from_slice(payload);
    v
}

/// An 8-byte IPv6 options header (hop-by-hop or destination options) with PadN.
fn ipv6_opts(next: u8) -> [u8; 8] {
    [next, 0, 1, 4, 0, 0, 0, 0]
}

fn ipv6_frag_header(next: u8, id: u32, offset: u32, more: bool) -> Vec<u8> {
    let off = ((offset / 8) as u16) << 3 | u16::from(more);
    let mut v = vec![next, 0];
    v.extend_from_slice(&off.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v
}

fn udp_header(sport: u16, dport: u16, payload_len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = MAC_B.to_vec();
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&ether_type.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

#[track_caller]
fn udp<'p>(p: &'p Packet<'_>) -> &'p UdpDatagram<'p> {
    match &p.l4 {
        L4::Udp(u) => u,
        other => panic!("expected UDP, got {other:?}"),
    }
}

#[track_caller]
fn tcp<'p>(p: &'p Packet<'_>) -> &'p TcpSegment<'p> {
    match &p.l4 {
        L4::Tcp(t) => t,
        other => panic!("expected TCP, got {other:?}"),
    }
}

#[track_caller]
fn assert_udp_v4(p: &Packet<'_>, payload: &[u8]) {
    assert_eq!(p.src, IpAddr::from(SRC4));
    assert_eq!(p.dst, IpAddr::from(DST4));
    assert_eq!(p.ip_proto, 17);
    let u = udp(p);
    assert_eq!((u.src_port, u.dst_port), (5000, 53));
    assert_eq!(u.payload, payload);
    assert_eq!(u.payload_len as usize, payload.len());
    assert!(!p.truncated);
}

// ---- link types ----

#[test]
fn ethernet_udp_gives_addresses_ports_and_payload() {
    let mut d = decoder();
    let bytes = eth_ipv4_udp(b"hello");
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    assert_udp_v4(&p, b"hello");
    assert_eq!(p.wire_len, bytes.len() as u64);
    assert_eq!(p.frames, 1);
    let s = d.stats();
    assert_eq!((s.frames, s.packets, s.ipv4, s.udp), (1, 1, 1, 1));
    assert!(s.anomalies().is_empty());
}

#[test]
fn single_vlan_tag_is_skipped() {
    let mut bytes = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(42).unwrap())
        .ipv4(SRC4, DST4, 64)
        .udp(5000, 53)
        .write(&mut bytes, b"vlan")
        .unwrap();
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    assert_udp_v4(&p, b"vlan");
}

#[test]
fn qinq_tags_are_skipped() {
    let mut bytes = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(VlanId::try_new(1).unwrap(), VlanId::try_new(2).unwrap())
        .ipv4(SRC4, DST4, 64)
        .udp(5000, 53)
        .write(&mut bytes, b"qinq")
        .unwrap();
    // 802.1ad outside, 802.1Q inside.
    assert_eq!(&bytes[12..14], &[0x88, 0xa8]);
    assert_eq!(&bytes[16..18], &[0x81, 0x00]);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    assert_udp_v4(&p, b"qinq");
}

#[test]
fn three_vlan_tags_are_skipped() {
    let mut tagged = Vec::new();
    for (tpid, inner) in [(0x9100u16, 0x88a8u16), (0x88a8, 0x8100), (0x8100, 0x0800)] {
        if tagged.is_empty() {
            tagged.extend_from_slice(&MAC_B);
            tagged.extend_from_slice(&MAC_A);
            tagged.extend_from_slice(&tpid.to_be_bytes());
        }
        tagged.extend_from_slice(&[0, 7]);
        tagged.extend_from_slice(&inner.to_be_bytes());
    }
    tagged.extend_from_slice(&ipv4_udp(b"3tags"));
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &tagged)).unwrap();
    assert_udp_v4(&p, b"3tags");
}

#[test]
fn linux_sll_and_sll2_carry_ip() {
    let ip = ipv4_udp(b"sll");
    let mut sll = vec![0u8; 16];
    sll[14..16].copy_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![0u8; 20];
    sll2[0..2].copy_from_slice(&[0x08, 0x00]);
    sll2.extend_from_slice(&ip);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::LINUX_SLL, &sll)).unwrap();
    assert_udp_v4(&p, b"sll");
    let p = d.decode(&frame(LinkType::LINUX_SLL2, &sll2)).unwrap();
    assert_udp_v4(&p, b"sll");
}

#[test]
fn raw_ip_link_types_use_the_version_nibble() {
    let v4 = ipv4_udp(b"raw");
    let v6 = ipv6_udp(b"raw");
    let mut d = decoder();
    for lt in [
        LinkType::RAW,
        LinkType::IPV4,
        LinkType::RAW_12,
        LinkType::RAW_14,
    ] {
        let p = d.decode(&frame(lt, &v4)).unwrap();
        assert_udp_v4(&p, b"raw");
    }
    for lt in [LinkType::RAW, LinkType::IPV6, LinkType::RAW_12] {
        let p = d.decode(&frame(lt, &v6)).unwrap();
        assert_eq!(p.src, IpAddr::from(SRC6));
        assert_eq!(udp(&p).payload, b"raw");
    }
    assert_eq!(d.stats().ipv6, 3);
    // Version 5 is not IP.
    assert!(d.decode(&frame(LinkType::RAW, &[0x50; 40])).is_none());
    assert_eq!(d.stats().malformed.get(label::IP_VERSION), Some(&1));
}

#[test]
fn null_loopback_accepts_both_byte_orders() {
    let v4 = ipv4_udp(b"lo");
    let v6 = ipv6_udp(b"lo");
    let mut d = decoder();
    for af in [[2u8, 0, 0, 0], [0, 0, 0, 2]] {
        let bytes = [&af[..], &v4].concat();
        let p = d.decode(&frame(LinkType::NULL, &bytes)).unwrap();
        assert_udp_v4(&p, b"lo");
    }
    for af in [24u32, 28, 30] {
        for order in [af.to_le_bytes(), af.to_be_bytes()] {
            let bytes = [&order[..], &v6].concat();
            let p = d.decode(&frame(LinkType::NULL, &bytes)).unwrap();
            assert_eq!(p.dst, IpAddr::from(DST6));
        }
    }
    let bytes = [&[0u8, 0, 0, 2][..], &v4].concat();
    let p = d.decode(&frame(LinkType::LOOP, &bytes)).unwrap();
    assert_udp_v4(&p, b"lo");
    let bytes = [&[0u8, 0, 0, 30][..], &v6].concat();
    assert!(d.decode(&frame(LinkType::LOOP, &bytes)).is_some());
    // An unknown family is not IP.
    let bytes = [&[0u8, 0, 0, 99][..], &v4].concat();
    assert!(d.decode(&frame(LinkType::LOOP, &bytes)).is_none());
    assert_eq!(d.stats().non_ip, 1);
}

#[test]
fn unknown_link_type_is_counted_not_fatal() {
    let mut d = decoder();
    let bytes = eth_ipv4_udp(b"x");
    assert!(d.decode(&frame(LinkType(147), &bytes)).is_none());
    assert!(d.decode(&frame(LinkType(147), &bytes)).is_none());
    assert!(d.decode(&frame(LinkType(9999), &bytes)).is_none());
    assert!(d.decode(&frame(LinkType::ETHERNET, &bytes)).is_some());
    let s = d.stats();
    assert_eq!(s.unknown_linktypes.get(&147), Some(&2));
    assert_eq!(s.unknown_linktypes.get(&9999), Some(&1));
    assert_eq!(s.frames, 4);
}

#[test]
fn arp_is_counted_as_non_ip_by_ether_type() {
    // A 28-byte Ethernet/IPv4 ARP request.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&SRC4);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&DST4);
    let bytes = eth(0x0806, &arp);
    let lldp = eth(0x88cc, &[0; 30]);
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::ETHERNET, &bytes)).is_none());
    assert!(d.decode(&frame(LinkType::ETHERNET, &lldp)).is_none());
    let s = d.stats();
    assert_eq!(s.non_ip, 2);
    assert_eq!(s.non_ip_by_ether_type.get(&0x0806), Some(&1));
    assert_eq!(s.non_ip_by_ether_type.get(&0x88cc), Some(&1));
    assert!(s.malformed.is_empty());
}

// ---- IP and transport ----

#[test]
fn ipv6_extension_headers_before_udp_are_skipped() {
    let payload = b"behind options";
    let mut l4 = ipv6_opts(60).to_vec(); // hop-by-hop → destination options
    l4.extend_from_slice(&ipv6_opts(17)); // destination options → UDP
    l4.extend_from_slice(&udp_header(3478, 3479, payload.len()));
    l4.extend_from_slice(payload);
    let bytes = ipv6_raw(0, &l4);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::RAW, &bytes)).unwrap();
    assert_eq!(p.ip_proto, 17);
    let u = udp(&p);
    assert_eq!((u.src_port, u.dst_port), (3478, 3479));
    assert_eq!(u.payload, payload);
    assert_eq!(u.payload_len as usize, payload.len());
}

#[test]
fn tcp_fields_and_flags_are_decoded() {
    let bytes = eth_ipv4_tcp(b"data!");
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    let t = tcp(&p);
    assert_eq!((t.src_port, t.dst_port), (40000, 443));
    assert_eq!((t.seq, t.ack, t.window), (1_000_000, 77, 512));
    assert_eq!(t.flags, tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(t.payload, b"data!");
    assert_eq!(t.payload_len, 5);
    assert_eq!(p.ports(), Some((40000, 443)));
    assert_eq!(d.stats().tcp, 1);
}

#[test]
fn icmp_and_icmpv6_report_type_and_code() {
    let mut v4 = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .icmpv4_echo_request(1, 2)
        .write(&mut v4, b"ping")
        .unwrap();
    let mut v6 = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .icmpv6_echo_request(1, 2)
        .write(&mut v6, b"ping")
        .unwrap();
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::RAW, &v4)).unwrap();
    assert!(matches!(
        p.l4,
        L4::Icmp {
            v6: false,
            icmp_type: 8,
            code: 0
        }
    ));
    assert_eq!(p.ip_proto, 1);
    let p = d.decode(&frame(LinkType::RAW, &v6)).unwrap();
    assert!(matches!(
        p.l4,
        L4::Icmp {
            v6: true,
            icmp_type: 128,
            code: 0
        }
    ));
    assert_eq!(p.ip_proto, 58);
    assert_eq!(d.stats().icmp, 2);
}

#[test]
fn tunnels_are_reported_at_the_outer_layer() {
    // 6in4: IPv6 inside IPv4 protocol 41.
    let inner = ipv6_udp(b"inner");
    let bytes = ipv4_raw(41, 1, 0, false, &inner);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::RAW, &bytes)).unwrap();
    assert_eq!(p.ip_proto, 41);
    assert_eq!(p.src, IpAddr::from(SRC4));
    assert!(matches!(p.l4, L4::Other { payload_len } if payload_len as usize == inner.len()));
    // Teredo: IPv6 inside UDP is just UDP.
    let teredo = ipv4_udp(&inner);
    let p = d.decode(&frame(LinkType::RAW, &teredo)).unwrap();
    assert_eq!(udp(&p).payload, &inner[..]);
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut bytes = eth_ipv4_udp(b"ab");
    assert!(bytes.len() < 60);
    bytes.resize(60, 0xee);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    assert_udp_v4(&p, b"ab");
    assert_eq!(p.wire_len, 60);
}

#[test]
fn snaplen_cut_in_ip_header_yields_nothing_and_is_counted() {
    let bytes = eth_ipv4_udp(b"payload");
    let mut d = decoder();
    assert!(
        d.decode(&cut_frame(LinkType::ETHERNET, &bytes, 14 + 10))
            .is_none()
    );
    let s = d.stats();
    assert_eq!(s.truncated, 1);
    assert_eq!(s.cut_headers.get(label::IPV4), Some(&1));
    assert!(s.malformed.is_empty());
}

#[test]
fn snaplen_cut_in_tcp_header_keeps_the_ip_pair() {
    let bytes = eth_ipv4_tcp(b"0123456789");
    let mut d = decoder();
    let p = d
        .decode(&cut_frame(LinkType::ETHERNET, &bytes, 14 + 20 + 10))
        .unwrap();
    assert!(p.truncated);
    assert_eq!(p.ip_proto, 6);
    assert_eq!(p.wire_len, bytes.len() as u64);
    assert!(matches!(p.l4, L4::Other { payload_len: 30 }));
    let s = d.stats();
    assert_eq!((s.truncated, s.other_ip, s.tcp), (1, 1, 0));
    assert_eq!(s.cut_headers.get(label::TCP), Some(&1));
}

#[test]
fn snaplen_cut_in_payload_keeps_sent_length() {
    let bytes = eth_ipv4_tcp(b"0123456789");
    let mut d = decoder();
    let p = d
        .decode(&cut_frame(LinkType::ETHERNET, &bytes, 14 + 20 + 20 + 4))
        .unwrap();
    assert!(p.truncated);
    let t = tcp(&p);
    assert_eq!(t.payload, b"0123");
    assert_eq!(t.payload_len, 10);
    let s = d.stats();
    assert_eq!(s.truncated, 1);
    assert!(s.cut_headers.is_empty() && s.malformed.is_empty());
}

#[test]
fn ip_length_beyond_frame_marks_truncated_and_malformed_transport() {
    // Not cut by the capture, but the IP header claims more than the frame has.
    let mut bytes = ipv4_udp(b"0123456789");
    bytes.truncate(20 + 4);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::RAW, &bytes)).unwrap();
    assert!(p.truncated);
    assert!(matches!(p.l4, L4::Other { payload_len: 18 }));
    let s = d.stats();
    assert_eq!(s.truncated, 1);
    assert_eq!(s.malformed.get(label::UDP), Some(&1));
}

#[test]
fn ipv4_total_length_zero_takes_the_frame_length() {
    // TCP segmentation offload: the sending host's capture shows total length 0.
    let mut bytes = eth_ipv4_tcp(&[7; 100]);
    bytes[16..18].copy_from_slice(&[0, 0]);
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
    let t = tcp(&p);
    assert_eq!(t.payload_len, 100);
    assert_eq!(t.payload, &[7; 100][..]);
    let s = d.stats();
    assert_eq!(s.ip_len_zero, 1);
    assert!(s.malformed.is_empty());
}

#[test]
fn bad_udp_length_falls_back_to_ip_length() {
    let mut bytes = ipv4_udp(b"0123456789");
    bytes[24..26].copy_from_slice(&200u16.to_be_bytes());
    let mut d = decoder();
    let p = d.decode(&frame(LinkType::RAW, &bytes)).unwrap();
    let u = udp(&p);
    assert_eq!(u.payload_len, 10);
    assert_eq!(u.payload, b"0123456789");
    assert_eq!(d.stats().malformed.get(label::UDP_LEN), Some(&1));
}

// ---- fragments ----

/// The UDP datagram `sport→dport` with `payload`, split into IPv4 fragments of `chunk`
/// bytes (a multiple of 8).
fn v4_fragments(id: u16, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut dgram = udp_header(7000, 7001, payload.len());
    dgram.extend_from_slice(payload);
    let n = dgram.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let lo = i * chunk;
            let hi = (lo + chunk).min(dgram.len());
            ipv4_raw(17, id, lo as u32, hi < dgram.len(), &dgram[lo..hi])
        })
        .collect()
}

fn payload_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[track_caller]
fn assert_reassembled(p: &Packet<'_>, payload: &[u8], frames: u32, wire_len: usize) {
    assert_eq!(p.frames, frames);
    assert_eq!(p.wire_len, wire_len as u64);
    assert_eq!(p.ip_proto, 17);
    let u = udp(p);
    assert_eq!((u.src_port, u.dst_port), (7000, 7001));
    assert_eq!(u.payload_len as usize, payload.len());
    assert_eq!(u.payload, payload);
    assert!(!p.truncated);
}

/// Feeds frames in `order`; all but the last must be held; returns what the last gave.
#[track_caller]
fn feed_all(d: &mut Decoder, frames: &[Vec<u8>], order: &[usize], check: impl Fn(&Packet<'_>)) {
    for (k, &i) in order.iter().enumerate() {
        let f = Frame {
            ts: Ts(k as i64),
            ..frame(LinkType::RAW, &frames[i])
        };
        let out = d.decode(&f);
        if k + 1 < order.len() {
            assert!(out.is_none(), "fragment {k} completed early");
        } else {
            let p = out.expect("last fragment completes the datagram");
            assert_eq!(p.ts, Ts(k as i64));
            check(&p);
        }
    }
}

#[test]
fn ipv4_fragments_in_order_reassemble() {
    let payload = payload_of(100);
    let frags = v4_fragments(9, &payload, 40);
    assert_eq!(frags.len(), 3);
    let wire: usize = frags.iter().map(Vec::len).sum();
    let mut d = decoder();
    feed_all(&mut d, &frags, &[0, 1, 2], |p| {
        assert_reassembled(p, &payload, 3, wire)
    });
    let s = d.stats();
    assert_eq!((s.fragments, s.reassembled, s.udp, s.packets), (3, 1, 1, 1));
    assert_eq!(s.ipv4, 3);
}

#[test]
fn ipv4_fragments_out_of_order_reassemble() {
    let payload = payload_of(200);
    let frags = v4_fragments(10, &payload, 48);
    let wire: usize = frags.iter().map(Vec::len).sum();
    let mut d = decoder();
    feed_all(&mut d, &frags, &[4, 2, 0, 3, 1], |p| {
        assert_reassembled(p, &payload, 5, wire)
    });
}

#[test]
fn duplicated_fragment_counts_its_frame_and_is_ignored() {
    let payload = payload_of(100);
    let frags = v4_fragments(11, &payload, 40);
    let wire: usize = frags.iter().map(Vec::len).sum::<usize>() + frags[1].len();
    let mut d = decoder();
    feed_all(&mut d, &frags, &[0, 1, 1, 2], |p| {
        assert_reassembled(p, &payload, 4, wire)
    });
    assert_eq!(d.stats().fragment_overlaps, 1);
}

#[test]
fn overlapping_fragment_keeps_first_received_bytes() {
    let payload = payload_of(100);
    let mut dgram = udp_header(7000, 7001, payload.len());
    dgram.extend_from_slice(&payload);
    // An overlapping fragment carrying different bytes for 32..72, received before 40..80.
    let evil = ipv4_raw(17, 12, 32, true, &[0xaa; 40]);
    let a = ipv4_raw(17, 12, 0, true, &dgram[..40]);
    let b = ipv4_raw(17, 12, 40, true, &dgram[40..80]);
    let c = ipv4_raw(17, 12, 80, false, &dgram[80..]);
    let frames = vec![a, evil, b, c];
    let mut d = decoder();
    feed_all(&mut d, &frames, &[0, 1, 2, 3], |p| {
        let u = udp(p);
        let mut want = payload.clone();
        want[40 - 8..72 - 8].fill(0xaa);
        assert_eq!(u.payload, &want[..]);
        assert_eq!(p.frames, 4);
    });
    assert_eq!(d.stats().fragment_overlaps, 2);
}

#[test]
fn ipv6_fragments_reassemble_with_options_after_fragment_header() {
    let payload = payload_of(120);
    // Fragmentable part: destination options, then UDP.
    let mut part = ipv6_opts(17).to_vec();
    part.extend_from_slice(&udp_header(7000, 7001, payload.len()));
    part.extend_from_slice(&payload);
    let cut = 64;
    let mut f0 = ipv6_opts(44).to_vec(); // hop-by-hop before the fragment header
    f0.extend_from_slice(&ipv6_frag_header(60, 0xdead_beef, 0, true));
    f0.extend_from_slice(&part[..cut]);
    let mut f1 = ipv6_frag_header(60, 0xdead_beef, cut as u32, false);
    f1.extend_from_slice(&part[cut..]);
    let frames = vec![ipv6_raw(0, &f0), ipv6_raw(44, &f1)];
    let wire = frames[0].len() + frames[1].len();
    let mut d = decoder();
    feed_all(&mut d, &frames, &[1, 0], |p| {
        assert_eq!(p.src, IpAddr::from(SRC6));
        assert_reassembled(p, &payload, 2, wire)
    });
    let s = d.stats();
    assert_eq!((s.ipv6, s.fragments, s.reassembled), (2, 2, 1));
    assert!(s.malformed.is_empty(), "{:?}", s.malformed);
}

#[test]
fn snaplen_cut_fragments_still_complete_with_captured_prefix() {
    let payload = payload_of(100);
    let frags = v4_fragments(13, &payload, 40);
    let mut d = decoder();
    // Second fragment captured only 10 of its 40 data bytes.
    let held = d.decode(&frame(LinkType::RAW, &frags[0]));
    assert!(held.is_none());
    let held = d.decode(&cut_frame(LinkType::RAW, &frags[1], 30));
    assert!(held.is_none());
    let p = d.decode(&frame(LinkType::RAW, &frags[2])).unwrap();
    assert!(p.truncated);
    let u = udp(&p);
    assert_eq!(u.payload_len, 100);
    assert_eq!(u.payload, &payload[..40 + 10 - 8]);
    assert_eq!(
        p.wire_len as usize,
        frags.iter().map(Vec::len).sum::<usize>()
    );
}

#[test]
fn expire_drops_incomplete_datagrams_after_timeout() {
    let payload = payload_of(100);
    let frags = v4_fragments(14, &payload, 40);
    let mut d = Decoder::new(DefragLimits {
        timeout_ns: 1_000,
        ..Default::default()
    });
    assert!(d.decode(&frame(LinkType::RAW, &frags[0])).is_none());
    d.expire(Ts(1_500));
    assert_eq!(d.stats().expired, 0);
    d.expire(Ts(2_001));
    assert_eq!(d.stats().expired, 1);
    assert_eq!(d.stats().fragment_frames_lost, 1);
    // The rest can no longer complete it.
    for f in &frags[1..] {
        let f = Frame {
            ts: Ts(2_100),
            ..frame(LinkType::RAW, f)
        };
        assert!(d.decode(&f).is_none());
    }
    assert_eq!(d.stats().reassembled, 0);
}

#[test]
fn datagram_limit_evicts_the_oldest() {
    let payload = payload_of(100);
    let mut d = Decoder::new(DefragLimits {
        max_datagrams: 2,
        ..Default::default()
    });
    let all: Vec<_> = (20..23).map(|id| v4_fragments(id, &payload, 40)).collect();
    for frags in &all {
        assert!(d.decode(&frame(LinkType::RAW, &frags[0])).is_none());
    }
    assert_eq!(d.stats().dropped_over_limit, 1);
    // The newest two still complete; the oldest does not.
    for frags in &all[1..] {
        assert!(d.decode(&frame(LinkType::RAW, &frags[1])).is_none());
        assert!(d.decode(&frame(LinkType::RAW, &frags[2])).is_some());
    }
    assert!(d.decode(&frame(LinkType::RAW, &all[0][1])).is_none());
    assert!(d.decode(&frame(LinkType::RAW, &all[0][2])).is_none());
    assert_eq!(d.stats().reassembled, 2);
}

// ---- properties ----

const ALL_LINKTYPES: [LinkType; 12] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_12,
    LinkType::RAW_14,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
    LinkType(147),
    LinkType(u32::MAX),
];

proptest! {
    #[test]
    fn random_bytes_never_panic(
        lt in 0..ALL_LINKTYPES.len(),
        data in proptest::collection::vec(any::<u8>(), 0..200),
        extra in 0u32..100,
    ) {
        let mut d = decoder();
        let f = Frame {
            orig_len: data.len() as u32 + extra,
            ..frame(ALL_LINKTYPES[lt], &data)
        };
        let _ = d.decode(&f);
        prop_assert_eq!(d.stats().frames, 1);
    }

    /// IP headers that parse, with random fragment fields and payloads: the reassembler sees
    /// every kind of overlap, gap and bogus end, and must neither panic nor exceed its limits.
    #[test]
    fn random_fragments_never_panic_and_stay_bounded(
        frags in proptest::collection::vec(
            (0u16..3, 0u32..200, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64),
             0usize..70, any::<bool>()),
            1..40,
        ),
    ) {
        let mut d = Decoder::new(DefragLimits {
            max_datagrams: 2,
            max_bytes: 512,
            timeout_ns: 50,
        });
        for (k, (id, off8, more, data, caplen, v6)) in frags.into_iter().enumerate() {
            let off = off8 * 8;
            let bytes = if v6 {
                let mut f = ipv6_frag_header(17, u32::from(id), off, more);
                f.extend_from_slice(&data);
                ipv6_raw(44, &f)
            } else {
                ipv4_raw(17, id, off, more, &data)
            };
            let caplen = (caplen + 40).min(bytes.len());
            let f = Frame {
                ts: Ts(k as i64 * 10),
                orig_len: bytes.len() as u32,
                ..frame(LinkType::RAW, &bytes[..caplen])
            };
            if let Some(p) = d.decode(&f) {
                prop_assert!(p.frames >= 1);
            }
            prop_assert!(d.defrag.pending() <= 2);
            prop_assert!(d.defrag.buffered() <= 512);
        }
    }

    /// Any UDP datagram cut into fragments of any size, in any order, over IPv4 or IPv6,
    /// reassembles to itself, once, from the last fragment fed.
    #[test]
    fn fragments_in_any_order_reassemble_to_the_datagram(
        payload in proptest::collection::vec(any::<u8>(), 0..3000),
        chunk8 in 1usize..185,
        keys in proptest::collection::vec(any::<u32>(), 1..64),
        v6 in any::<bool>(),
        id in any::<u16>(),
    ) {
        let mut dgram = udp_header(7000, 7001, payload.len());
        dgram.extend_from_slice(&payload);
        // At most 128 fragments, so any order leaves at most 64 holes (the reassembler's
        // MAX_RANGES; more is treated as a flood).
        let chunk = (chunk8 * 8).max(dgram.len().div_ceil(128).next_multiple_of(8));
        let n = dgram.len().div_ceil(chunk);
        let frames: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let lo = i * chunk;
                let hi = (lo + chunk).min(dgram.len());
                let more = hi < dgram.len();
                if v6 {
                    let mut f = ipv6_frag_header(17, u32::from(id), lo as u32, more);
                    f.extend_from_slice(&dgram[lo..hi]);
                    ipv6_raw(44, &f)
                } else {
                    ipv4_raw(17, id, lo as u32, more, &dgram[lo..hi])
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (keys[i % keys.len()], i));
        let mut d = decoder();
        let wire: usize = frames.iter().map(Vec::len).sum();
        if n == 1 {
            // Not fragmented at all: decoded directly.
            let p = d.decode(&frame(LinkType::RAW, &frames[0])).unwrap();
            prop_assert_eq!(udp(&p).payload, &payload[..]);
            return Ok(());
        }
        for (k, &i) in order.iter().enumerate() {
            let out = d.decode(&frame(LinkType::RAW, &frames[i]));
            if k + 1 < n {
                prop_assert!(out.is_none());
            } else {
                let p = out.unwrap();
                prop_assert_eq!(p.frames as usize, n);
                prop_assert_eq!(p.wire_len as usize, wire);
                prop_assert_eq!(udp(&p).payload, &payload[..]);
                prop_assert_eq!(udp(&p).payload_len as usize, payload.len());
            }
        }
        prop_assert_eq!(d.stats().reassembled, 1);
        prop_assert_eq!(d.defrag.buffered(), 0);
    }

    #[test]
    fn built_udp_and_tcp_packets_decode_to_what_was_built(
        v6 in any::<bool>(),
        is_tcp in any::<bool>(),
        vlan in any::<bool>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        seq in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let mut bytes = Vec::new();
        let (src_ip, dst_ip) = if v6 {
            (IpAddr::from(src), IpAddr::from(dst))
        } else {
            let s: [u8; 4] = src[..4].try_into().unwrap();
            let t: [u8; 4] = dst[..4].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(t))
        };
        macro_rules! finish {
            ($ip:expr) => {
                if is_tcp {
                    $ip.tcp(sport, dport, seq, 1000).write(&mut bytes, &payload).unwrap()
                } else {
                    $ip.udp(sport, dport).write(&mut bytes, &payload).unwrap()
                }
            };
        }
        match (vlan, src_ip, dst_ip) {
            (false, IpAddr::V6(s), IpAddr::V6(t)) => finish!(eth.ipv6(s.octets(), t.octets(), 64)),
            (true, IpAddr::V6(s), IpAddr::V6(t)) => finish!(eth
                .single_vlan(VlanId::try_new(5).unwrap())
                .ipv6(s.octets(), t.octets(), 64)),
            (false, IpAddr::V4(s), IpAddr::V4(t)) => finish!(eth.ipv4(s.octets(), t.octets(), 64)),
            (true, IpAddr::V4(s), IpAddr::V4(t)) => finish!(eth
                .single_vlan(VlanId::try_new(5).unwrap())
                .ipv4(s.octets(), t.octets(), 64)),
            _ => unreachable!(),
        }
        let mut d = decoder();
        let p = d.decode(&frame(LinkType::ETHERNET, &bytes)).unwrap();
        prop_assert_eq!(p.src, src_ip);
        prop_assert_eq!(p.dst, dst_ip);
        prop_assert_eq!(p.ports(), Some((sport, dport)));
        prop_assert_eq!(p.payload_len() as usize, payload.len());
        prop_assert!(!p.truncated);
        match &p.l4 {
            L4::Tcp(t) => {
                prop_assert!(is_tcp);
                prop_assert_eq!(t.seq, seq);
                prop_assert_eq!(t.payload, &payload[..]);
            }
            L4::Udp(u) => {
                prop_assert!(!is_tcp);
                prop_assert_eq!(u.payload, &payload[..]);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert_eq!(d.stats().anomalies(), vec![]);
    }
}

// ---- real captures ----

/// `(orig_len, captured bytes)` of one pcap record.
type RawFrame<'a> = (u32, &'a [u8]);

/// Frames of a classic pcap file (either byte order, µs or ns); `None` for anything else
/// (pcapng is the capture reader's business, not this test's).
fn classic_pcap(bytes: &[u8]) -> Option<(LinkType, Vec<RawFrame<'_>>)> {
    let magic = bytes.get(..4)?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let linktype = LinkType(u32_at(20)? & 0x0fff_ffff);
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(at + 8)? as usize;
        let orig = u32_at(at + 12)?;
        frames.push((orig, bytes.get(at + 16..at + 16 + incl)?));
        at += 16 + incl;
    }
    Some((linktype, frames))
}

/// Every classic pcap in the shared external captures (pcapng is left to the capture reader's
/// tests) decodes without anomalies and yields the TCP and UDP conversations tshark reports.
#[test]
fn real_captures_agree_with_tshark_conversation_counts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures-external");
    let Ok(index) = std::fs::read_to_string(format!("{dir}/INDEX.tsv")) else {
        println!("skipping: {dir} is absent");
        return;
    };
    let mut checked = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [file, _, _, _, packets, tcp_convs, udp_convs, ..] = cols[..] else {
            continue;
        };
        let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
        let Some((linktype, frames)) = classic_pcap(&bytes) else {
            continue;
        };
        assert_eq!(frames.len(), packets.parse::<usize>().unwrap(), "{file}");
        let mut d = decoder();
        let mut convs = std::collections::HashSet::new();
        for (orig_len, data) in frames {
            let f = Frame {
                orig_len,
                ..frame(linktype, data)
            };
            if let Some(p) = d.decode(&f) {
                if let Some((sp, dp)) = p.ports() {
                    let a = (p.src, sp);
                    let b = (p.dst, dp);
                    convs.insert((matches!(p.l4, L4::Tcp(_)), a.min(b), a.max(b)));
                }
            }
        }
        let tcp = convs.iter().filter(|c| c.0).count();
        let udp = convs.len() - tcp;
        // tshark splits one 5-tuple into several conversations when signalling (SDP, SCCP)
        // announced the media stream; these files count distinct 5-tuples instead.
        let udp_want = match file {
            "ndpi/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap" | "ndpi/skinny.pcap" => "5",
            _ => udp_convs,
        };
        assert_eq!(tcp.to_string(), tcp_convs, "{file} tcp: {:?}", d.stats());
        assert_eq!(udp.to_string(), udp_want, "{file} udp: {:?}", d.stats());
        let s = d.stats();
        assert!(
            s.malformed.is_empty() && s.cut_headers.is_empty(),
            "{file}: {s:?}"
        );
        assert!(d.stats().unknown_linktypes.is_empty(), "{file}");
        checked += 1;
    }
    println!("checked {checked} classic pcap files");
}
