//! Writing captures: [`PcapNgWriter`] emits little-endian pcapng (one section, any number of
//! interfaces, nanosecond Enhanced Packet Blocks) and [`FrameBuilder`] makes Ethernet II +
//! IPv4/IPv6 + UDP/TCP frames with valid checksums, for the simulator and live capture.
//!
//! Guarantees: everything written reads back with [`CaptureReader`](super::CaptureReader)
//! with the same timestamp, interface, link type, bytes and original length; a request that
//! would make an invalid or unreadable file (unknown interface, block over [`MAX_BLOCK_LEN`],
//! negative timestamp, too many interfaces, over-long option) is refused with
//! `io::ErrorKind::InvalidInput` *before* any byte of it is written, so the output stays a
//! valid capture; nothing panics whatever the arguments. No allocation per packet.
//! Must not: buffer (wrap files in a `BufWriter`), read clocks, or decide what goes on the
//! wire beyond the headers asked for.

use super::pcapng::{
    BT_EPB, BT_IDB, BT_SHB, BYTE_ORDER_MAGIC_LE, OPT_ENDOFOPT, OPT_IF_TSRESOL, epb,
};
use super::{LinkType, MAX_BLOCK_LEN, MAX_INTERFACES};
use crate::decode::tcp_flags;
use crate::time::Ts;
use etherparse::{IpHeaders, Ipv4Extensions, Ipv4Header, PacketBuilder, TcpHeader};
use std::io::{self, Write};
use std::net::{SocketAddrV4, SocketAddrV6};

/// §4.1 `shb_userappl`, §4.2 `if_name`.
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
/// `if_tsresol` = 9: timestamps count nanoseconds, the precision of [`Ts`].
const TSRESOL_NANOS: u8 = 9;
/// Block type + total length, then the trailing total length.
const BLOCK_OVERHEAD: usize = 12;
/// EPB fixed body: interface id, ts high, ts low, captured length, original length.
const EPB_FIXED: usize = epb::DATA;
/// Longest string option value (`shb_userappl`, `if_name`) accepted; the option length field
/// is 16 bits, and a name this long is already absurd.
pub const MAX_OPTION_LEN: usize = 4096;
/// Longest packet [`PcapNgWriter::write_packet`] accepts: what fits in a block of
/// [`MAX_BLOCK_LEN`] (the reader's limit) after the EPB header and padding.
pub const MAX_PACKET_LEN: usize = MAX_BLOCK_LEN as usize - BLOCK_OVERHEAD - EPB_FIXED;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Padding that brings `len` to a multiple of 4 (pcapng aligns everything to 32 bits).
fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Bytes a string option takes (header + value + padding).
fn str_option_len(s: &str) -> usize {
    4 + s.len() + pad(s.len())
}

/// Writes one option header + value + zero padding.
fn put_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    // Callers bound value.len() by MAX_OPTION_LEN, well under u16::MAX.
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + pad(value.len()), 0);
}

fn check_option(what: &str, s: &str) -> io::Result<()> {
    if s.len() > MAX_OPTION_LEN {
        return Err(invalid(format!(
            "{what} is {} bytes (limit {MAX_OPTION_LEN})",
            s.len()
        )));
    }
    Ok(())
}

/// What is needed of one interface to check packets against it.
#[derive(Clone, Copy, Debug)]
struct IfaceInfo {
    snaplen: u32,
}

/// Writes a pcapng capture: one little-endian section, nanosecond interfaces, EPBs.
pub struct PcapNgWriter<W: Write> {
    out: W,
    interfaces: Vec<IfaceInfo>,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the Section Header Block (version 1.0, section length unknown) naming `app` in
    /// `shb_userappl`.
    pub fn new(mut out: W, app: &str) -> io::Result<Self> {
        check_option("shb_userappl", app)?;
        let total = BLOCK_OVERHEAD + 16 + str_option_len(app) + 4;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&BT_SHB.to_le_bytes());
        b.extend_from_slice(&(total as u32).to_le_bytes());
        b.extend_from_slice(&BYTE_ORDER_MAGIC_LE);
        b.extend_from_slice(&1u16.to_le_bytes()); // major
        b.extend_from_slice(&0u16.to_le_bytes()); // minor
        b.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not specified
        put_option(&mut b, SHB_USERAPPL, app.as_bytes());
        put_option(&mut b, OPT_ENDOFOPT, &[]);
        b.extend_from_slice(&(total as u32).to_le_bytes());
        debug_assert_eq!(b.len(), total);
        out.write_all(&b)?;
        Ok(PcapNgWriter {
            out,
            interfaces: Vec::new(),
        })
    }

    /// Writes an Interface Description Block (`if_name`, `if_tsresol` = 9) and returns the
    /// interface id to pass to [`write_packet`](Self::write_packet). `snaplen` 0 means no
    /// limit. At most [`MAX_INTERFACES`] interfaces (the reader's limit).
    pub fn add_interface(
        &mut self,
        name: &str,
        linktype: LinkType,
        snaplen: u32,
    ) -> io::Result<u32> {
        check_option("if_name", name)?;
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(invalid(format!(
                "too many interfaces (limit {MAX_INTERFACES})"
            )));
        }
        // LINKTYPE_* values fit in the IDB's 16-bit field.
        let Ok(lt) = u16::try_from(linktype.0) else {
            return Err(invalid(format!(
                "link type {} does not fit pcapng",
                linktype.0
            )));
        };
        let total = BLOCK_OVERHEAD + 8 + str_option_len(name) + 8 + 4;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&BT_IDB.to_le_bytes());
        b.extend_from_slice(&(total as u32).to_le_bytes());
        b.extend_from_slice(&lt.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes()); // reserved
        b.extend_from_slice(&snaplen.to_le_bytes());
        put_option(&mut b, IF_NAME, name.as_bytes());
        put_option(&mut b, OPT_IF_TSRESOL, &[TSRESOL_NANOS]);
        put_option(&mut b, OPT_ENDOFOPT, &[]);
        b.extend_from_slice(&(total as u32).to_le_bytes());
        debug_assert_eq!(b.len(), total);
        self.out.write_all(&b)?;
        let id = self.interfaces.len() as u32;
        self.interfaces.push(IfaceInfo { snaplen });
        Ok(id)
    }

    /// Writes an Enhanced Packet Block: `data` as captured, `orig_len` as on the wire
    /// (≥ `data.len()`), `ts` in nanoseconds (not before the epoch). Refuses an unknown
    /// interface, a packet over [`MAX_PACKET_LEN`] or the interface's snap length.
    pub fn write_packet(
        &mut self,
        iface: u32,
        ts: Ts,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        self.write_packet_parts(iface, ts, &[], data, orig_len)
    }

    /// As [`write_packet`](Self::write_packet) for a packet given in two parts (a link
    /// header and the rest), so callers need not copy them together first.
    pub fn write_packet_parts(
        &mut self,
        iface: u32,
        ts: Ts,
        head_part: &[u8],
        data_part: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        let len = head_part.len() + data_part.len();
        let Some(info) = self.interfaces.get(iface as usize) else {
            return Err(invalid(format!(
                "unknown interface id {iface} ({} defined)",
                self.interfaces.len()
            )));
        };
        if len > MAX_PACKET_LEN {
            return Err(invalid(format!(
                "packet of {len} bytes is over the limit of {MAX_PACKET_LEN}"
            )));
        }
        // MAX_PACKET_LEN < u32::MAX, so this cannot truncate.
        let caplen = len as u32;
        if info.snaplen != 0 && caplen > info.snaplen {
            return Err(invalid(format!(
                "packet of {caplen} bytes is over interface {iface}'s snap length {}",
                info.snaplen
            )));
        }
        if orig_len < caplen {
            return Err(invalid(format!(
                "original length {orig_len} is less than the {caplen} bytes captured"
            )));
        }
        let Ok(units) = u64::try_from(ts.as_nanos()) else {
            return Err(invalid(format!(
                "timestamp {} ns is before the epoch",
                ts.0
            )));
        };
        let padding = pad(len);
        let total = (BLOCK_OVERHEAD + EPB_FIXED + len + padding) as u32;
        let mut head = [0u8; 8 + EPB_FIXED];
        let fields = [
            BT_EPB,
            total,
            iface,
            (units >> 32) as u32,
            units as u32,
            caplen,
            orig_len,
        ];
        for (chunk, v) in head.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&head)?;
        self.out.write_all(head_part)?;
        self.out.write_all(data_part)?;
        self.out.write_all(&[0u8; 3][..padding])?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Number of interfaces described so far.
    pub fn interface_count(&self) -> usize {
        self.interfaces.len()
    }

    /// Flushes and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Builds Ethernet II frames carrying IPv4/IPv6 with UDP or TCP, checksums computed by
/// etherparse.
///
/// MAC rule (deterministic, so a flow's frames always carry the same addresses): a locally
/// administered unicast address `02:00:a:b:c:d` for IPv4 address `a.b.c.d`, and
/// `02:06:w:x:y:z` for an IPv6 address whose last four bytes are `w:x:y:z`.
///
/// IPv4 headers carry TTL 64 (IPv6: hop limit 64), Don't Fragment set (as Linux sends with
/// path MTU discovery) and an identification taken from a counter that starts at 0 and
/// wraps; [`set_next_ip_id`](Self::set_next_ip_id) sets it.
#[derive(Clone, Debug, Default)]
pub struct FrameBuilder {
    next_ip_id: u16,
}

/// Hop limit of every built packet: the Linux default.
pub const DEFAULT_TTL: u8 = 64;

/// The MAC address [`FrameBuilder`] uses for an IPv4 address.
pub fn mac_for_v4(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x00, a, b, c, d]
}

/// The MAC address [`FrameBuilder`] uses for an IPv6 address.
pub fn mac_for_v6(ip: std::net::Ipv6Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x06, o[12], o[13], o[14], o[15]]
}

fn build_err(e: etherparse::err::packet::BuildWriteError) -> io::Error {
    match e {
        etherparse::err::packet::BuildWriteError::Io(e) => e,
        other => invalid(other.to_string()),
    }
}

/// A TCP header from our flag bits (`decode::tcp_flags`; bits 0x40 ECE and 0x80 CWR too).
fn tcp_header(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, window: u16) -> TcpHeader {
    let mut h = TcpHeader::new(sport, dport, seq, window);
    h.acknowledgment_number = ack;
    h.fin = flags & tcp_flags::FIN != 0;
    h.syn = flags & tcp_flags::SYN != 0;
    h.rst = flags & tcp_flags::RST != 0;
    h.psh = flags & tcp_flags::PSH != 0;
    h.ack = flags & tcp_flags::ACK != 0;
    h.urg = flags & tcp_flags::URG != 0;
    h.ece = flags & 0x40 != 0;
    h.cwr = flags & 0x80 != 0;
    h
}

impl FrameBuilder {
    pub fn new() -> FrameBuilder {
        FrameBuilder::default()
    }

    /// Sets the identification of the next IPv4 packet.
    pub fn set_next_ip_id(&mut self, id: u16) {
        self.next_ip_id = id;
    }

    fn ipv4(&mut self, src: SocketAddrV4, dst: SocketAddrV4) -> PacketBuilderIp {
        // Lengths, protocol and checksum are filled in by etherparse when writing.
        let ip = Ipv4Header {
            time_to_live: DEFAULT_TTL,
            identification: self.next_ip_id,
            dont_fragment: true,
            source: src.ip().octets(),
            destination: dst.ip().octets(),
            ..Default::default()
        };
        self.next_ip_id = self.next_ip_id.wrapping_add(1);
        PacketBuilder::ethernet2(mac_for_v4(*src.ip()), mac_for_v4(*dst.ip()))
            .ip(IpHeaders::Ipv4(ip, Ipv4Extensions::default()))
    }

    fn ipv6(src: SocketAddrV6, dst: SocketAddrV6) -> PacketBuilderIp {
        PacketBuilder::ethernet2(mac_for_v6(*src.ip()), mac_for_v6(*dst.ip())).ipv6(
            src.ip().octets(),
            dst.ip().octets(),
            DEFAULT_TTL,
        )
    }

    /// Replaces `out` with an Ethernet/IPv4/UDP frame. Refuses (InvalidInput) a payload
    /// too long for the IP length field.
    pub fn udp_v4(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        out.clear();
        self.ipv4(src, dst)
            .udp(src.port(), dst.port())
            .write(out, payload)
            .map_err(build_err)
    }

    /// Replaces `out` with an Ethernet/IPv6/UDP frame.
    pub fn udp_v6(
        &mut self,
        src: SocketAddrV6,
        dst: SocketAddrV6,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        out.clear();
        Self::ipv6(src, dst)
            .udp(src.port(), dst.port())
            .write(out, payload)
            .map_err(build_err)
    }

    /// Replaces `out` with an Ethernet/IPv4/TCP frame (no TCP options). `flags` are
    /// [`tcp_flags`] bits; `ack` is written as given, whatever the ACK flag.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp_v4(
        &mut self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        out.clear();
        self.ipv4(src, dst)
            .tcp_header(tcp_header(src.port(), dst.port(), seq, ack, flags, window))
            .write(out, payload)
            .map_err(build_err)
    }

    /// Replaces `out` with an Ethernet/IPv6/TCP frame; see [`tcp_v4`](Self::tcp_v4).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp_v6(
        &mut self,
        src: SocketAddrV6,
        dst: SocketAddrV6,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        out.clear();
        Self::ipv6(src, dst)
            .tcp_header(tcp_header(src.port(), dst.port(), seq, ack, flags, window))
            .write(out, payload)
            .map_err(build_err)
    }
}

type PacketBuilderIp = etherparse::PacketBuilderStep<IpHeaders>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, Format};
    use crate::decode::{Decoder, DefragLimits, L4};
    use proptest::prelude::*;
    use std::io::Cursor;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::process::Command;

    const A4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000);
    const B4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 7, 9), 33033);
    const A6: SocketAddrV6 =
        SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 5000, 0, 0);
    const B6: SocketAddrV6 =
        SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xab, 2), 443, 0, 0);
    const ETH_LEN: usize = 14;

    /// A frame as read back, owned.
    #[derive(Debug, PartialEq, Eq, Clone)]
    struct Rec {
        iface: u32,
        ts: Ts,
        linktype: LinkType,
        orig_len: u32,
        data: Vec<u8>,
    }

    fn read_back(bytes: Vec<u8>) -> (Vec<Rec>, u8) {
        let mut r = CaptureReader::from_read("mem", Box::new(Cursor::new(bytes))).unwrap();
        assert_eq!(r.format(), Format::PcapNg);
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(Rec {
                iface: f.interface,
                ts: f.ts,
                linktype: f.linktype,
                orig_len: f.orig_len,
                data: f.data.to_vec(),
            });
        }
        (out, r.ts_precision())
    }

    /// The frames of the two-interface test, in order.
    fn sample() -> Vec<Rec> {
        let mut fb = FrameBuilder::new();
        let mut buf = Vec::new();
        let mut v = Vec::new();
        let mut push = |iface: u32, ts: i64, linktype: LinkType, data: &[u8]| {
            v.push(Rec {
                iface,
                ts: Ts(ts),
                linktype,
                orig_len: data.len() as u32,
                data: data.to_vec(),
            })
        };
        fb.udp_v4(A4, B4, b"hello udp", &mut buf).unwrap();
        push(0, 1_700_000_000_123_456_789, LinkType::ETHERNET, &buf);
        fb.tcp_v4(
            A4,
            B4,
            1000,
            2000,
            tcp_flags::PSH | tcp_flags::ACK,
            512,
            b"tcp data",
            &mut buf,
        )
        .unwrap();
        push(0, 1_700_000_000_123_456_790, LinkType::ETHERNET, &buf);
        fb.udp_v6(A6, B6, b"v6 udp", &mut buf).unwrap();
        push(0, 1_700_000_001_000_000_001, LinkType::ETHERNET, &buf);
        fb.tcp_v6(A6, B6, 7, 0, tcp_flags::SYN, 65535, b"", &mut buf)
            .unwrap();
        push(0, 1_700_000_001_999_999_999, LinkType::ETHERNET, &buf);
        // Raw IPv4 (LINKTYPE_IPV4): the same frames without the Ethernet header.
        fb.udp_v4(B4, A4, b"raw reply", &mut buf).unwrap();
        push(
            1,
            1_700_000_002_000_000_000,
            LinkType::IPV4,
            &buf[ETH_LEN..],
        );
        fb.tcp_v4(B4, A4, 2000, 1008, tcp_flags::ACK, 100, b"x", &mut buf)
            .unwrap();
        push(
            1,
            1_700_000_002_000_000_003,
            LinkType::IPV4,
            &buf[ETH_LEN..],
        );
        v
    }

    fn write_all(recs: &[Rec]) -> Vec<u8> {
        let mut w = PcapNgWriter::new(Vec::new(), "p2ptrace test").unwrap();
        assert_eq!(w.add_interface("sim0", LinkType::ETHERNET, 0).unwrap(), 0);
        assert_eq!(w.add_interface("raw0", LinkType::IPV4, 65535).unwrap(), 1);
        for r in recs {
            w.write_packet(r.iface, r.ts, &r.data, r.orig_len).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn two_interfaces_read_back_exactly() {
        let recs = sample();
        let bytes = write_all(&recs);
        // Little-endian section header first.
        assert_eq!(bytes.get(..4), Some(&[0x0A, 0x0D, 0x0D, 0x0A][..]));
        assert_eq!(bytes.get(8..12), Some(&[0x4D, 0x3C, 0x2B, 0x1A][..]));
        assert_eq!(bytes.len() % 4, 0);
        let (back, precision) = read_back(bytes);
        assert_eq!(precision, 9);
        assert_eq!(back, recs);
    }

    #[test]
    fn truncated_packet_keeps_original_length() {
        let mut w = PcapNgWriter::new(Vec::new(), "t").unwrap();
        w.add_interface("eth", LinkType::ETHERNET, 0).unwrap();
        w.write_packet(0, Ts(5), &[1, 2, 3, 4, 5], 1500).unwrap();
        let (back, _) = read_back(w.finish().unwrap());
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].orig_len, 1500);
        assert_eq!(back[0].data, [1, 2, 3, 4, 5]);
        assert_eq!(back[0].ts, Ts(5));
    }

    #[test]
    fn every_written_frame_decodes_to_its_addresses_ports_and_payload() {
        let recs = sample();
        let (back, _) = read_back(write_all(&recs));
        let mut d = Decoder::new(DefragLimits::default());
        // (src, dst, sport, dport, payload, tcp (seq, ack, flags))
        type Want = (
            IpAddr,
            IpAddr,
            u16,
            u16,
            &'static [u8],
            Option<(u32, u32, u8)>,
        );
        let want: [Want; 6] = [
            (
                A4.ip().to_owned().into(),
                B4.ip().to_owned().into(),
                40000,
                33033,
                b"hello udp",
                None,
            ),
            (
                A4.ip().to_owned().into(),
                B4.ip().to_owned().into(),
                40000,
                33033,
                b"tcp data",
                Some((1000, 2000, tcp_flags::PSH | tcp_flags::ACK)),
            ),
            (
                A6.ip().to_owned().into(),
                B6.ip().to_owned().into(),
                5000,
                443,
                b"v6 udp",
                None,
            ),
            (
                A6.ip().to_owned().into(),
                B6.ip().to_owned().into(),
                5000,
                443,
                b"",
                Some((7, 0, tcp_flags::SYN)),
            ),
            (
                B4.ip().to_owned().into(),
                A4.ip().to_owned().into(),
                33033,
                40000,
                b"raw reply",
                None,
            ),
            (
                B4.ip().to_owned().into(),
                A4.ip().to_owned().into(),
                33033,
                40000,
                b"x",
                Some((2000, 1008, tcp_flags::ACK)),
            ),
        ];
        assert_eq!(back.len(), want.len());
        for (r, w) in back.iter().zip(want) {
            let frame = crate::capture::Frame {
                ts: r.ts,
                linktype: r.linktype,
                orig_len: r.orig_len,
                interface: r.iface,
                data: &r.data,
            };
            let p = d.decode(&frame).expect("decodes");
            assert_eq!((p.src, p.dst), (w.0, w.1));
            assert_eq!(p.ports(), Some((w.2, w.3)));
            assert!(!p.truncated);
            match (&p.l4, w.5) {
                (L4::Udp(u), None) => assert_eq!(u.payload, w.4),
                (L4::Tcp(t), Some((seq, ack, flags))) => {
                    assert_eq!((t.seq, t.ack, t.flags), (seq, ack, flags));
                    assert_eq!(t.payload, w.4);
                }
                (l4, _) => panic!("unexpected transport {l4:?}"),
            }
        }
    }

    #[test]
    fn ipv4_header_has_ttl_64_dont_fragment_and_counting_ids() {
        let mut fb = FrameBuilder::new();
        fb.set_next_ip_id(0xFFFF);
        let mut buf = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            fb.udp_v4(A4, B4, b"p", &mut buf).unwrap();
            let ip = Ipv4Header::from_slice(&buf[ETH_LEN..]).unwrap().0;
            assert_eq!(ip.time_to_live, 64);
            assert!(ip.dont_fragment);
            assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            ids.push(ip.identification);
        }
        assert_eq!(ids, [0xFFFF, 0, 1]);
    }

    #[test]
    fn macs_follow_the_documented_rule() {
        let mut fb = FrameBuilder::new();
        let mut buf = Vec::new();
        fb.udp_v4(A4, B4, b"", &mut buf).unwrap();
        assert_eq!(buf[..6], [0x02, 0x00, 192, 168, 7, 9]); // destination first
        assert_eq!(buf[6..12], [0x02, 0x00, 10, 0, 0, 1]);
        assert_eq!(buf[12..14], [0x08, 0x00]);
        fb.udp_v6(A6, B6, b"", &mut buf).unwrap();
        assert_eq!(buf[..6], [0x02, 0x06, 0, 0xab, 0, 2]);
        assert_eq!(buf[6..12], [0x02, 0x06, 0, 0, 0, 1]);
        assert_eq!(buf[12..14], [0x86, 0xDD]);
    }

    #[test]
    fn refusals_are_invalid_input_and_leave_the_file_valid() {
        let mut w = PcapNgWriter::new(Vec::new(), "t").unwrap();
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(w.write_packet(0, Ts(1), b"x", 1)),
            io::ErrorKind::InvalidInput
        );
        w.add_interface("eth", LinkType::ETHERNET, 100).unwrap();
        assert_eq!(
            kind(w.write_packet(1, Ts(1), b"x", 1)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(w.write_packet(u32::MAX, Ts(1), b"x", 1)),
            io::ErrorKind::InvalidInput
        );
        let big = vec![0u8; MAX_PACKET_LEN + 1];
        assert_eq!(
            kind(w.write_packet(0, Ts(1), &big, u32::MAX)),
            io::ErrorKind::InvalidInput
        );
        // Over the interface's snap length.
        assert_eq!(
            kind(w.write_packet(0, Ts(1), &[0; 101], 101)),
            io::ErrorKind::InvalidInput
        );
        // orig_len below the captured length.
        assert_eq!(
            kind(w.write_packet(0, Ts(1), b"abc", 2)),
            io::ErrorKind::InvalidInput
        );
        // Before the epoch: pcapng timestamps are unsigned.
        assert_eq!(
            kind(w.write_packet(0, Ts(-1), b"x", 1)),
            io::ErrorKind::InvalidInput
        );
        let long = "n".repeat(MAX_OPTION_LEN + 1);
        assert_eq!(
            w.add_interface(&long, LinkType::ETHERNET, 0)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            w.add_interface("x", LinkType(0x1_0000), 0)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(w.interface_count(), 1);
        assert!(PcapNgWriter::new(Vec::new(), &long).is_err());
        w.write_packet(0, Ts(9), b"ok", 2).unwrap();
        let (back, _) = read_back(w.finish().unwrap());
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].data, b"ok");
    }

    #[test]
    fn largest_packet_is_accepted_and_reads_back() {
        let mut w = PcapNgWriter::new(Vec::new(), "t").unwrap();
        w.add_interface("eth", LinkType::ETHERNET, 0).unwrap();
        let big = vec![0xA5u8; MAX_PACKET_LEN];
        w.write_packet(0, Ts(1), &big, MAX_PACKET_LEN as u32)
            .unwrap();
        let (back, _) = read_back(w.finish().unwrap());
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].data.len(), MAX_PACKET_LEN);
    }

    #[test]
    fn oversized_ip_payload_is_refused_not_panicked() {
        let mut fb = FrameBuilder::new();
        let mut buf = Vec::new();
        let payload = vec![0u8; 70_000];
        assert_eq!(
            fb.udp_v4(A4, B4, &payload, &mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(fb.tcp_v6(A6, B6, 0, 0, 0, 0, &payload, &mut buf).is_err());
    }

    fn arb_rec() -> impl Strategy<Value = Rec> {
        (
            0u32..2,
            0i64..i64::MAX,
            proptest::collection::vec(any::<u8>(), 0..300),
            0u32..100,
        )
            .prop_map(|(iface, ts, data, extra)| Rec {
                iface,
                ts: Ts(ts),
                linktype: if iface == 0 {
                    LinkType::ETHERNET
                } else {
                    LinkType::IPV4
                },
                orig_len: data.len() as u32 + extra,
                data,
            })
    }

    proptest! {
        #[test]
        fn random_frames_and_timestamps_round_trip(recs in proptest::collection::vec(arb_rec(), 0..20)) {
            let (back, precision) = read_back(write_all(&recs));
            prop_assert_eq!(precision, 9);
            prop_assert_eq!(back, recs);
        }

        #[test]
        fn random_udp_tcp_frames_decode_to_what_was_built(
            v6 in any::<bool>(),
            tcp in any::<bool>(),
            sport in 1u16..,
            dport in 1u16..,
            seq in any::<u32>(),
            ack in any::<u32>(),
            flags in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let mut fb = FrameBuilder::new();
            let mut buf = Vec::new();
            let (s4, d4) = (SocketAddrV4::new(*A4.ip(), sport), SocketAddrV4::new(*B4.ip(), dport));
            let (s6, d6) = (SocketAddrV6::new(*A6.ip(), sport, 0, 0), SocketAddrV6::new(*B6.ip(), dport, 0, 0));
            match (v6, tcp) {
                (false, false) => fb.udp_v4(s4, d4, &payload, &mut buf),
                (true, false) => fb.udp_v6(s6, d6, &payload, &mut buf),
                (false, true) => fb.tcp_v4(s4, d4, seq, ack, flags, 1000, &payload, &mut buf),
                (true, true) => fb.tcp_v6(s6, d6, seq, ack, flags, 1000, &payload, &mut buf),
            }.unwrap();
            let mut d = Decoder::new(DefragLimits::default());
            let frame = crate::capture::Frame {
                ts: Ts(0),
                linktype: LinkType::ETHERNET,
                orig_len: buf.len() as u32,
                interface: 0,
                data: &buf,
            };
            let p = d.decode(&frame).expect("decodes");
            prop_assert_eq!(p.ports(), Some((sport, dport)));
            prop_assert_eq!(p.src.is_ipv6(), v6);
            match &p.l4 {
                L4::Tcp(t) => {
                    prop_assert!(tcp);
                    prop_assert_eq!((t.seq, t.ack, t.flags), (seq, ack, flags));
                    prop_assert_eq!(t.payload, &payload[..]);
                }
                L4::Udp(u) => {
                    prop_assert!(!tcp);
                    prop_assert_eq!(u.payload, &payload[..]);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    /// A capture a real stack could have made: UDP both ways (v4 and v6) and a TCP
    /// connection with handshake, data both ways and a FIN close, seq/ack consistent.
    fn realistic_capture() -> Vec<u8> {
        use tcp_flags::{ACK, FIN, PSH, SYN};
        let mut fb = FrameBuilder::new();
        let mut buf = Vec::new();
        let mut w = PcapNgWriter::new(Vec::new(), "p2ptrace tshark test").unwrap();
        w.add_interface("sim0", LinkType::ETHERNET, 0).unwrap();
        let mut ts = 1_700_000_000_000_000_000i64;
        let mut emit = |w: &mut PcapNgWriter<Vec<u8>>, buf: &[u8]| {
            ts += 1_234_567;
            w.write_packet(0, Ts(ts), buf, buf.len() as u32).unwrap();
        };
        fb.udp_v4(A4, B4, b"udp probe", &mut buf).unwrap();
        emit(&mut w, &buf);
        fb.udp_v4(B4, A4, b"udp probe reply", &mut buf).unwrap();
        emit(&mut w, &buf);
        fb.udp_v6(A6, B6, b"udp over v6", &mut buf).unwrap();
        emit(&mut w, &buf);
        // Odd payload length: exercises checksum padding.
        fb.udp_v4(A4, B4, b"odd", &mut buf).unwrap();
        emit(&mut w, &buf);

        let (c, s) = (A4, SocketAddrV4::new(*B4.ip(), 443));
        let (mut cseq, mut sseq) = (1_000_000u32, 3_000_000_000u32);
        let win = 64_240;
        fb.tcp_v4(c, s, cseq, 0, SYN, win, b"", &mut buf).unwrap();
        emit(&mut w, &buf);
        cseq += 1;
        fb.tcp_v4(s, c, sseq, cseq, SYN | ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        sseq += 1;
        fb.tcp_v4(c, s, cseq, sseq, ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        let req = b"GET / please\r\n";
        fb.tcp_v4(c, s, cseq, sseq, PSH | ACK, win, req, &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        cseq += req.len() as u32;
        fb.tcp_v4(s, c, sseq, cseq, ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        let resp = [0x5Au8; 1001];
        fb.tcp_v4(s, c, sseq, cseq, PSH | ACK, win, &resp, &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        sseq += resp.len() as u32;
        fb.tcp_v4(c, s, cseq, sseq, ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        // Client closes; server acknowledges and closes; client acknowledges.
        fb.tcp_v4(c, s, cseq, sseq, FIN | ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        cseq += 1;
        fb.tcp_v4(s, c, sseq, cseq, FIN | ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        sseq += 1;
        fb.tcp_v4(c, s, cseq, sseq, ACK, win, b"", &mut buf)
            .unwrap();
        emit(&mut w, &buf);
        w.finish().unwrap()
    }

    const REALISTIC_FRAMES: usize = 14;

    fn tshark_present() -> bool {
        let found = Command::new("tshark").arg("--version").output().is_ok();
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "tshark is required under CI=true"
            );
            eprintln!("tshark not installed: skipping the tshark validation");
        }
        found
    }

    /// Runs tshark with checksum validation on and returns stdout; the options are the
    /// ones listed by `tshark -G defaultprefs | grep check_checksum`.
    fn tshark(file: &std::path::Path, extra: &[&str]) -> String {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(file)
            .args(["-o", "ip.check_checksum:TRUE"])
            .args(["-o", "udp.check_checksum:TRUE"])
            .args(["-o", "tcp.check_checksum:TRUE"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Frames tshark flags: malformed, any expert info of severity Warning (6291456) or
    /// Error, or a checksum it found bad (status 0). The command:
    ///   tshark -r FILE -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE
    ///     -o tcp.check_checksum:TRUE -Y '_ws.malformed || _ws.expert.severity >= 6291456
    ///     || ip.checksum.status == 0 || udp.checksum.status == 0 || tcp.checksum.status == 0'
    ///     -T fields -e frame.number
    fn tshark_flagged(file: &std::path::Path) -> String {
        tshark(
            file,
            &[
                "-Y",
                "_ws.malformed || _ws.expert.severity >= 6291456 || ip.checksum.status == 0 \
                 || udp.checksum.status == 0 || tcp.checksum.status == 0",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
        )
    }

    #[test]
    fn tshark_finds_no_malformed_frames_or_bad_checksums() {
        if !tshark_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.pcapng");
        std::fs::write(&path, realistic_capture()).unwrap();

        let flagged = tshark_flagged(&path);
        assert_eq!(flagged.trim(), "", "tshark flagged frames:\n{flagged}");

        // Checksums were really verified: every IPv4 header and every UDP/TCP checksum is
        // reported Good (status 1); the IPv6 frame has no IP header checksum.
        let good = tshark(
            &path,
            &[
                "-T",
                "fields",
                "-e",
                "ip.checksum.status",
                "-e",
                "udp.checksum.status",
                "-e",
                "tcp.checksum.status",
            ],
        );
        let lines: Vec<&str> = good.lines().collect();
        assert_eq!(lines.len(), REALISTIC_FRAMES, "{good}");
        for (i, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split('\t').filter(|f| !f.is_empty()).collect();
            let want = if i == 2 { 1 } else { 2 }; // frame 3 is IPv6/UDP
            assert_eq!(fields.len(), want, "frame {}: {line:?}", i + 1);
            assert!(
                fields.iter().all(|f| *f == "1"),
                "frame {}: {line:?}",
                i + 1
            );
        }

        // The expert summary has no warnings or errors either.
        let expert = tshark(&path, &["-z", "expert,warn", "-q"]);
        assert!(
            !expert.contains("Errors (") && !expert.contains("Warnings ("),
            "expert infos:\n{expert}"
        );
    }

    #[test]
    fn tshark_check_catches_a_corrupted_checksum() {
        // Guards the check above: the same command must flag a frame we damage.
        if !tshark_present() {
            return;
        }
        let mut bytes = realistic_capture();
        let needle = b"GET / please";
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap();
        bytes[at] ^= 0x20; // payload changed, TCP checksum now wrong
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pcapng");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(tshark_flagged(&path).trim(), "8");
        let expert = tshark(&path, &["-z", "expert,warn", "-q"]);
        assert!(expert.contains("Errors (1)"), "expert infos:\n{expert}");
        assert!(expert.contains("Bad checksum"), "expert infos:\n{expert}");
    }
}
