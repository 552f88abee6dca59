//! The decoder: one [`Frame`] in, at most one [`Packet`] out.
//!
//! Link header (see `link`), then etherparse's lax slicing for VLAN tags, the outermost IP
//! header, IPv6 extension headers and the transport header directly on that IP header
//! (tunnels are reported at the outer layer: Teredo as UDP, 6in4 as `L4::Other`). Fragments
//! go to `defrag` and come back as one packet when complete.
//!
//! Lengths: `wire_len` is the frame's `orig_len`; payload lengths come from the IP/UDP length
//! fields (what was sent); payload slices are what was captured, never Ethernet padding.
//!
//! Guarantees: never panics on any bytes; no allocation and no hash lookup for a frame that is
//! not a fragment; every frame is counted in [`DecodeStats`]. Must not: know about flows or
//! look past the first transport header.

use super::defrag::{Defrag, DefragLimits, FragKey, Fragment};
use super::fast;
use super::link::{self, Link};
use super::stats::{DecodeStats, label};
use super::{L4, Packet, TcpSegment, UdpDatagram};
use crate::capture::Frame;
use crate::time::Ts;
use etherparse::err::Layer;
use etherparse::err::packet::SliceError;
use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpAuthHeaderSlice, IpNumber, Ipv6ExtensionSlice,
    Ipv6ExtensionsSlice, LaxIpv4Slice, LaxIpv6Slice, LaxNetSlice, LaxSlicedPacket, TcpSlice,
    TransportSlice, UdpSlice,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: u32 = 8;
/// Type, code and checksum: enough to report an ICMP message even when etherparse wants more.
const ICMP_MIN_LEN: usize = 4;

pub struct Decoder {
    stats: DecodeStats,
    defrag: Defrag,
}

/// The outermost IP header as far as it parsed.
struct Net<'a> {
    src: IpAddr,
    dst: IpAddr,
    v6: bool,
    /// Protocol after IPv4 AH / IPv6 extension headers.
    proto: u8,
    /// Captured bytes from the transport header on.
    l4: &'a [u8],
    /// Transport length according to the IP header.
    l4_sent: u32,
}

impl Decoder {
    pub fn new(limits: DefragLimits) -> Decoder {
        Decoder {
            stats: DecodeStats::default(),
            defrag: Defrag::new(limits),
        }
    }

    /// Decodes one frame. `None` when the frame yields no IP packet (not IP, an unknown link
    /// type, a fragment held for reassembly, or unparseable) — counted in the stats.
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Option<Packet<'a>> {
        if let Some(packet) = fast::decode(frame) {
            let stats = &mut self.stats;
            stats.frames += 1;
            if packet.src.is_ipv4() {
                stats.ipv4 += 1;
            } else {
                stats.ipv6 += 1;
            }
            return Some(finish(stats, packet));
        }
        self.decode_general(frame)
    }

    /// The general path: etherparse's lax slicing, every link type, fragments, extension
    /// headers, truncation and damage (counted). [`Decoder::decode`] takes it unless the
    /// fast path applies; public so tests and fuzzing can check the two agree.
    pub fn decode_general<'a>(&'a mut self, frame: &Frame<'a>) -> Option<Packet<'a>> {
        let stats = &mut self.stats;
        stats.frames += 1;
        let cut = frame.is_truncated();
        if cut {
            stats.truncated += 1;
        }
        let sliced = match link::strip(frame.linktype, frame.data) {
            Link::Ethernet(bytes) => match LaxSlicedPacket::from_ethernet(bytes) {
                Ok(s) => s,
                Err(_) => {
                    stats.count_stop(label::ETHERNET, cut);
                    return None;
                }
            },
            Link::EtherType(et, bytes) => {
                if !may_carry_ip(et) {
                    stats.count_non_ip(Some(et));
                    return None;
                }
                LaxSlicedPacket::from_ether_type(EtherType(et), bytes)
            }
            Link::Ip(bytes) => match LaxSlicedPacket::from_ip(bytes) {
                Ok(s) => s,
                Err(e) => {
                    use etherparse::err::ip::LaxHeaderSliceError as E;
                    match e {
                        E::Len(l) => stats.count_stop(len_label(l.layer), cut),
                        E::Content(c) => stats.count_malformed(ip_content_label(&c)),
                    }
                    return None;
                }
            },
            Link::NotIp => {
                stats.count_non_ip(None);
                return None;
            }
            Link::Short(l) => {
                stats.count_stop(l, cut);
                return None;
            }
            Link::Unknown => {
                stats.count_unknown_linktype(frame.linktype.0);
                return None;
            }
        };

        let net = match &sliced.net {
            Some(LaxNetSlice::Ipv4(v4)) => {
                stats.ipv4 += 1;
                if v4.is_payload_fragmented() {
                    let frag = ipv4_fragment(v4, frame, stats)?;
                    return self.reassemble(&frag, false, cut);
                }
                ipv4(v4, frame, stats)
            }
            Some(LaxNetSlice::Ipv6(v6)) => {
                stats.ipv6 += 1;
                if v6.is_payload_fragmented() {
                    let frag = ipv6_fragment(v6, frame, stats)?;
                    return self.reassemble(&frag, true, cut);
                }
                ipv6(v6, frame, stats)
            }
            Some(LaxNetSlice::Arp(_)) => {
                stats.count_non_ip(Some(EtherType::ARP.0));
                return None;
            }
            None => {
                match &sliced.stop_err {
                    Some((err, layer)) => {
                        if *layer == Layer::Arp {
                            stats.count_non_ip(Some(EtherType::ARP.0));
                        }
                        count_slice_error(stats, err, *layer, cut);
                    }
                    None => stats.count_non_ip(sliced.ether_payload().map(|p| p.ether_type.0)),
                }
                return None;
            }
        };

        // Transport: what etherparse sliced, or where it stopped. A stop in the IP extension
        // headers means no transport was tried.
        let transport = match (&sliced.transport, &sliced.stop_err) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some((_, layer))) if is_transport_layer(*layer) => Err(*layer),
            (None, Some((err, layer))) => {
                count_slice_error(stats, err, *layer, cut);
                Ok(None)
            }
            (None, None) => Ok(None),
        };
        let (l4, truncated) = l4_of(transport, &net, cut, stats);
        if truncated && !cut {
            stats.truncated += 1;
        }
        Some(finish(
            stats,
            Packet {
                ts: frame.ts,
                wire_len: u64::from(frame.orig_len),
                frames: 1,
                src: net.src,
                dst: net.dst,
                ip_proto: net.proto,
                l4,
                truncated,
            },
        ))
    }

    /// Drops fragment buffers older than the timeout at capture time `now`.
    pub fn expire(&mut self, now: Ts) {
        self.defrag.expire(now, &mut self.stats);
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Hands a fragment to the reassembler; on completion decodes the reassembled payload.
    fn reassemble<'a>(
        &'a mut self,
        frag: &Fragment<'_>,
        v6: bool,
        cut: bool,
    ) -> Option<Packet<'a>> {
        if !cut && frag.data.len() < frag.len as usize {
            self.stats.truncated += 1;
        }
        let (src, dst) = key_addrs(&frag.key);
        let done = self.defrag.push(frag, &mut self.stats)?;
        let payload = self.defrag.payload();
        let stats = &mut self.stats;
        let truncated_by_capture = done.truncated;
        let mut net = Net {
            src,
            dst,
            v6,
            proto: done.proto,
            l4: payload,
            l4_sent: done.len,
        };
        // The reassembled payload may start with headers that follow the fragment header
        // (IPv6 destination options, AH): skip them like etherparse does for whole packets.
        let mut transport_tried = true;
        if v6 {
            let (_, next, rest, err) =
                Ipv6ExtensionsSlice::from_slice_lax(IpNumber(done.proto), payload);
            skip_to(&mut net, next.0, rest);
            if let Some((_, layer)) = err {
                stats.count_stop(layer_label(layer), truncated_by_capture);
                transport_tried = false;
            }
        } else if done.proto == IpNumber::AUTHENTICATION_HEADER.0 {
            match IpAuthHeaderSlice::from_slice(payload) {
                Ok(ah) => {
                    let rest = payload.get(ah.slice().len()..).unwrap_or(&[]);
                    skip_to(&mut net, ah.next_header().0, rest);
                }
                Err(_) => {
                    stats.count_stop(label::IP_AUTH, truncated_by_capture);
                    transport_tried = false;
                }
            }
        }
        let transport = if transport_tried {
            slice_transport(net.proto, net.l4)
        } else {
            Ok(None)
        };
        let (l4, truncated) = l4_of(transport, &net, truncated_by_capture, stats);
        Some(finish(
            stats,
            Packet {
                ts: done.ts,
                wire_len: done.wire_len,
                frames: done.frames,
                src: net.src,
                dst: net.dst,
                ip_proto: net.proto,
                l4,
                truncated: truncated || truncated_by_capture,
            },
        ))
    }
}

/// Counts the packet by transport and hands it back.
fn finish<'a>(stats: &mut DecodeStats, packet: Packet<'a>) -> Packet<'a> {
    stats.packets += 1;
    match packet.l4 {
        L4::Tcp(_) => stats.tcp += 1,
        L4::Udp(_) => stats.udp += 1,
        L4::Icmp { .. } => stats.icmp += 1,
        L4::Other { .. } => stats.other_ip += 1,
    }
    packet
}

/// Moves `net` past headers that ended where `rest` starts.
fn skip_to<'a>(net: &mut Net<'a>, proto: u8, rest: &'a [u8]) {
    let skipped = net.l4.len().saturating_sub(rest.len());
    net.proto = proto;
    net.l4_sent = net.l4_sent.saturating_sub(skipped as u32);
    net.l4 = rest;
}

/// Ether types etherparse can take to an IP header (directly or through tags).
fn may_carry_ip(et: u16) -> bool {
    matches!(
        EtherType(et),
        EtherType::IPV4
            | EtherType::IPV6
            | EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME
            | EtherType::MACSEC
    )
}

/// Byte offset of `inner` in `outer` (both borrowed from the same frame).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize)
        .saturating_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// Bytes the capture left out of the frame (0 when it kept it whole).
fn cut_len(frame: &Frame<'_>) -> usize {
    (frame.orig_len as usize).saturating_sub(frame.data.len())
}

fn ipv4<'a>(v4: &LaxIpv4Slice<'a>, frame: &Frame<'a>, stats: &mut DecodeStats) -> Net<'a> {
    let h = v4.header();
    let payload = v4.payload();
    let ip_start = offset_in(frame.data, h.slice());
    let l4_start = offset_in(frame.data, payload.payload);
    let total = usize::from(h.total_len());
    let ip_end = if total >= h.slice().len() {
        ip_start + total
    } else {
        // A total length shorter than the header: the frame length is all there is to go
        // by. 0 is what TCP segmentation offload leaves in captures on the sending host.
        if total == 0 {
            stats.ip_len_zero += 1;
        } else {
            stats.count_malformed(label::IPV4_TOTAL_LEN);
        }
        frame.data.len() + cut_len(frame)
    };
    Net {
        src: IpAddr::V4(Ipv4Addr::from(h.source())),
        dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
        v6: false,
        proto: payload.ip_number.0,
        l4: payload.payload,
        l4_sent: to_u32(ip_end.saturating_sub(l4_start)),
    }
}

fn ipv6<'a>(v6: &LaxIpv6Slice<'a>, frame: &Frame<'a>, stats: &mut DecodeStats) -> Net<'a> {
    let h = v6.header();
    let payload = v6.payload();
    let ip_start = offset_in(frame.data, h.slice());
    let l4_start = offset_in(frame.data, payload.payload);
    let ip_end = if h.payload_length() == 0 && frame.data.len() > ip_start + IPV6_HEADER_LEN {
        // No length (jumbogram, or segmentation offload): the frame length is all there is.
        stats.ip_len_zero += 1;
        frame.data.len() + cut_len(frame)
    } else {
        ip_start + IPV6_HEADER_LEN + usize::from(h.payload_length())
    };
    Net {
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
        v6: true,
        proto: payload.ip_number.0,
        l4: payload.payload,
        l4_sent: to_u32(ip_end.saturating_sub(l4_start)),
    }
}

fn ipv4_fragment<'a>(
    v4: &LaxIpv4Slice<'a>,
    frame: &Frame<'a>,
    stats: &mut DecodeStats,
) -> Option<Fragment<'a>> {
    let h = v4.header();
    let ip_start = offset_in(frame.data, h.slice());
    let header_len = h.slice().len();
    let total = usize::from(h.total_len());
    if total < header_len {
        stats.count_malformed(label::FRAG_LEN);
        return None;
    }
    // The raw bytes after the IPv4 header: for a fragment, AH belongs to the reassembled
    // payload, not to this fragment.
    let start = ip_start + header_len;
    let end = (ip_start + total).min(frame.data.len());
    let data = frame.data.get(start..end.max(start)).unwrap_or(&[]);
    let proto = h.protocol().0;
    Some(Fragment {
        key: FragKey::V4 {
            src: h.source(),
            dst: h.destination(),
            id: h.identification(),
            proto,
        },
        ts: frame.ts,
        wire_len: frame.orig_len,
        offset: u32::from(h.fragments_offset().byte_offset()),
        more: h.more_fragments(),
        len: to_u32(total - header_len),
        data,
        proto: Some(proto),
    })
}

fn ipv6_fragment<'a>(
    v6: &LaxIpv6Slice<'a>,
    frame: &Frame<'a>,
    stats: &mut DecodeStats,
) -> Option<Fragment<'a>> {
    let h = v6.header();
    let ip_start = offset_in(frame.data, h.slice());
    // etherparse keeps parsing extension headers after the fragment header, which for a
    // non-first fragment reads payload as headers; only the fragment header itself counts.
    let fh = v6.extensions().clone().into_iter().find_map(|e| match e {
        Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => Some(f),
        _ => None,
    })?;
    if h.payload_length() == 0 {
        stats.count_malformed(label::FRAG_LEN);
        return None;
    }
    let start = offset_in(frame.data, fh.slice()) + fh.slice().len();
    let ip_end = ip_start + IPV6_HEADER_LEN + usize::from(h.payload_length());
    let end = ip_end.min(frame.data.len());
    let data = frame.data.get(start..end.max(start)).unwrap_or(&[]);
    Some(Fragment {
        key: FragKey::V6 {
            src: h.source(),
            dst: h.destination(),
            id: fh.identification(),
        },
        ts: frame.ts,
        wire_len: frame.orig_len,
        offset: u32::from(fh.fragment_offset().byte_offset()),
        more: fh.more_fragments(),
        len: to_u32(ip_end.saturating_sub(start)),
        data,
        proto: Some(fh.next_header().0),
    })
}

fn key_addrs(key: &FragKey) -> (IpAddr, IpAddr) {
    match *key {
        FragKey::V4 { src, dst, .. } => (
            IpAddr::V4(Ipv4Addr::from(src)),
            IpAddr::V4(Ipv4Addr::from(dst)),
        ),
        FragKey::V6 { src, dst, .. } => (
            IpAddr::V6(Ipv6Addr::from(src)),
            IpAddr::V6(Ipv6Addr::from(dst)),
        ),
    }
}

/// Slices the transport header of a reassembled payload, as etherparse does for a whole
/// packet: `Err(layer)` when the header is cut or invalid.
fn slice_transport(proto: u8, bytes: &[u8]) -> Result<Option<TransportSlice<'_>>, Layer> {
    match IpNumber(proto) {
        IpNumber::TCP => TcpSlice::from_slice(bytes)
            .map(|t| Some(TransportSlice::Tcp(t)))
            .map_err(|_| Layer::TcpHeader),
        IpNumber::UDP => UdpSlice::from_slice_lax(bytes)
            .map(|u| Some(TransportSlice::Udp(u)))
            .map_err(|_| Layer::UdpHeader),
        IpNumber::ICMP => Icmpv4Slice::from_slice(bytes)
            .map(|i| Some(TransportSlice::Icmpv4(i)))
            .map_err(|e| e.layer),
        IpNumber::IPV6_ICMP => Icmpv6Slice::from_slice(bytes)
            .map(|i| Some(TransportSlice::Icmpv6(i)))
            .map_err(|_| Layer::Icmpv6),
        _ => Ok(None),
    }
}

fn is_transport_layer(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::TcpHeader
            | Layer::UdpHeader
            | Layer::UdpPayload
            | Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6
            | Layer::Igmp
    )
}

/// Builds the transport part of a packet; the flag says the packet was not fully captured.
/// `cut` says a header that runs out of bytes was cut by the capture (not malformed).
fn l4_of<'a>(
    transport: Result<Option<TransportSlice<'a>>, Layer>,
    net: &Net<'a>,
    cut: bool,
    stats: &mut DecodeStats,
) -> (L4<'a>, bool) {
    let sent = net.l4_sent;
    let short = (net.l4.len() as u64) < u64::from(sent);
    let other = L4::Other { payload_len: sent };
    match transport {
        Ok(Some(TransportSlice::Tcp(t))) => {
            let payload_len = sent.saturating_sub(to_u32(t.header_len()));
            let payload = t.payload();
            let payload = payload.get(..payload_len as usize).unwrap_or(payload);
            let l4 = L4::Tcp(TcpSegment {
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                // Byte 13 holds CWR..FIN; the NS bit in byte 12 is not wanted.
                flags: t.header_slice().get(13).copied().unwrap_or(0),
                window: t.window_size(),
                payload_len,
                payload,
            });
            (l4, (payload.len() as u64) < u64::from(payload_len))
        }
        Ok(Some(TransportSlice::Udp(u))) => {
            let len = u32::from(u.length());
            let payload_len = if (UDP_HEADER_LEN..=sent).contains(&len) {
                len - UDP_HEADER_LEN
            } else {
                // 0 is legal only in an IPv6 jumbogram, where the IP length rules.
                if !(len == 0 && net.v6) {
                    stats.count_malformed(label::UDP_LEN);
                }
                sent.saturating_sub(UDP_HEADER_LEN)
            };
            let payload = u.payload();
            let payload = payload.get(..payload_len as usize).unwrap_or(payload);
            let l4 = L4::Udp(UdpDatagram {
                src_port: u.source_port(),
                dst_port: u.destination_port(),
                payload_len,
                payload,
            });
            (l4, (payload.len() as u64) < u64::from(payload_len))
        }
        Ok(Some(TransportSlice::Icmpv4(i))) => (icmp(false, i.type_u8(), i.code_u8()), short),
        Ok(Some(TransportSlice::Icmpv6(i))) => (icmp(true, i.type_u8(), i.code_u8()), short),
        Ok(Some(TransportSlice::Igmp(_))) | Ok(None) => (other, short),
        Err(layer) => match layer {
            Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6 => {
                // etherparse wants 8 bytes (20 for timestamps); type and code need 2.
                match net.l4.get(..ICMP_MIN_LEN) {
                    Some(&[t, c, ..]) => (icmp(layer == Layer::Icmpv6, t, c), short),
                    _ => {
                        stats.count_stop(label::ICMP, cut);
                        (other, short)
                    }
                }
            }
            Layer::Igmp => (other, short),
            _ => {
                stats.count_stop(layer_label(layer), cut && short);
                (other, short)
            }
        },
    }
}

fn icmp<'a>(v6: bool, icmp_type: u8, code: u8) -> L4<'a> {
    L4::Icmp {
        v6,
        icmp_type,
        code,
    }
}

fn count_slice_error(stats: &mut DecodeStats, err: &SliceError, layer: Layer, cut: bool) {
    match err {
        SliceError::Len(l) => {
            let label = if layer == Layer::IpHeader {
                len_label(l.layer)
            } else {
                layer_label(layer)
            };
            stats.count_stop(label, cut);
        }
        SliceError::Ip(c) => stats.count_malformed(ip_content_label(c)),
        _ => stats.count_malformed(layer_label(layer)),
    }
}

fn ip_content_label(err: &etherparse::err::ip::HeaderError) -> &'static str {
    use etherparse::err::ip::HeaderError as E;
    match err {
        E::UnsupportedIpVersion { .. } => label::IP_VERSION,
        E::Ipv4HeaderLengthSmallerThanHeader { .. } => label::IPV4,
    }
}

/// The label for a length error, from the layer etherparse puts in it.
fn len_label(layer: Layer) -> &'static str {
    match layer {
        Layer::IpHeader => label::IP,
        other => layer_label(other),
    }
}

fn layer_label(layer: Layer) -> &'static str {
    match layer {
        Layer::LinuxSllHeader => label::SLL,
        Layer::Ethernet2Header | Layer::EtherPayload => label::ETHERNET,
        Layer::VlanHeader => label::VLAN,
        Layer::MacsecHeader | Layer::MacsecPacket => label::MACSEC,
        Layer::IpHeader => label::IP,
        Layer::Ipv4Header | Layer::Ipv4Packet => label::IPV4,
        Layer::IpAuthHeader => label::IP_AUTH,
        Layer::Ipv6Header | Layer::Ipv6Packet => label::IPV6,
        Layer::Ipv6ExtHeader
        | Layer::Ipv6HopByHopHeader
        | Layer::Ipv6DestOptionsHeader
        | Layer::Ipv6RouteHeader
        | Layer::Ipv6FragHeader => label::IPV6_EXT,
        Layer::UdpHeader | Layer::UdpPayload => label::UDP,
        Layer::TcpHeader => label::TCP,
        Layer::Icmpv4
        | Layer::Icmpv4Timestamp
        | Layer::Icmpv4TimestampReply
        | Layer::Icmpv6
        | Layer::Igmp => label::ICMP,
        Layer::Arp => label::ARP,
    }
}

/// Lengths here are bounded by the 16-bit IP length fields or a frame length; saturate
/// rather than wrap if a bogus frame were ever bigger than 4 GiB.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
