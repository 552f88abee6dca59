//! Link layers: strip the link header of a frame and say what comes next.
//!
//! Handles Ethernet (left whole to etherparse, which also walks 802.1Q/802.1ad tags), Linux
//! cooked captures SLL and SLL2, raw IP (101, 228, 229 and the 12/14 aliases seen in pcap
//! files) and BSD loopback NULL/LOOP. Guarantees: never panics, never allocates, only
//! borrows the frame. Must not: parse anything above the link header.

use super::stats::label;
use crate::capture::LinkType;

/// SLL (LINKTYPE_LINUX_SLL): 16-byte header, protocol (an ether type for most devices)
/// in bytes 14..16. <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html>
const SLL_LEN: usize = 16;
const SLL_PROTOCOL_AT: usize = 14;
/// SLL2 (LINKTYPE_LINUX_SLL2): 20-byte header, protocol in bytes 0..2.
/// <https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html>
const SLL2_LEN: usize = 20;
const SLL2_PROTOCOL_AT: usize = 0;
/// NULL/LOOP: a 4-byte address family.
const LOOPBACK_LEN: usize = 4;
/// BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD),
/// 28 (FreeBSD, DragonFly) or 30 (macOS) — the capture may come from any of them.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 3] = [24, 28, 30];

pub(super) const ETHER_TYPE_IPV4: u16 = 0x0800;
pub(super) const ETHER_TYPE_IPV6: u16 = 0x86dd;

/// What follows the link header.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Link<'a> {
    /// A whole Ethernet II frame (header included).
    Ethernet(&'a [u8]),
    /// Bytes that start with a protocol of this ether type.
    EtherType(u16, &'a [u8]),
    /// Bytes that start with an IP header (version from its first nibble).
    Ip(&'a [u8]),
    /// The link header says "not IP" and gives no ether type (a loopback family).
    NotIp,
    /// The frame is shorter than its link header.
    Short(&'static str),
    /// A link type we do not decode.
    Unknown,
}

/// Strips the link header of `data` captured with `linktype`. Always inlined: the fast
/// path calls it for every frame, and as a call it returned the bytes through memory.
#[inline(always)]
pub(super) fn strip(linktype: LinkType, data: &[u8]) -> Link<'_> {
    match linktype {
        LinkType::ETHERNET => Link::Ethernet(data),
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 | LinkType::IPV4 | LinkType::IPV6 => {
            Link::Ip(data)
        }
        LinkType::LINUX_SLL => with_protocol(data, SLL_LEN, SLL_PROTOCOL_AT, label::SLL),
        LinkType::LINUX_SLL2 => with_protocol(data, SLL2_LEN, SLL2_PROTOCOL_AT, label::SLL2),
        LinkType::NULL => loopback(data, true),
        LinkType::LOOP => loopback(data, false),
        _ => Link::Unknown,
    }
}

fn with_protocol<'a>(data: &'a [u8], len: usize, at: usize, short: &'static str) -> Link<'a> {
    let (Some(&[hi, lo]), Some(rest)) = (data.get(at..at + 2), data.get(len..)) else {
        return Link::Short(short);
    };
    Link::EtherType(u16::from_be_bytes([hi, lo]), rest)
}

/// NULL stores the family in the capturing host's byte order, which the file does not
/// record, so both orders are tried (the values are small, a swapped one is never valid);
/// LOOP is always big-endian.
fn loopback(data: &[u8], any_order: bool) -> Link<'_> {
    let (Some(&[a, b, c, d]), Some(rest)) = (data.get(..LOOPBACK_LEN), data.get(LOOPBACK_LEN..))
    else {
        return Link::Short(label::LOOPBACK);
    };
    let bytes = [a, b, c, d];
    let be = u32::from_be_bytes(bytes);
    let le = u32::from_le_bytes(bytes);
    let is = |want: u32| be == want || (any_order && le == want);
    if is(AF_INET) {
        Link::EtherType(ETHER_TYPE_IPV4, rest)
    } else if AF_INET6.into_iter().any(is) {
        Link::EtherType(ETHER_TYPE_IPV6, rest)
    } else {
        Link::NotIp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_protocol_is_read_at_byte_14() {
        let mut f = vec![0u8; 16];
        f[14] = 0x08;
        f.push(0x45);
        assert_eq!(
            strip(LinkType::LINUX_SLL, &f),
            Link::EtherType(0x0800, &[0x45][..])
        );
        assert_eq!(
            strip(LinkType::LINUX_SLL, &f[..15]),
            Link::Short(label::SLL)
        );
    }

    #[test]
    fn sll2_protocol_is_read_at_byte_0() {
        let mut f = vec![0u8; 20];
        f[0] = 0x86;
        f[1] = 0xdd;
        assert_eq!(
            strip(LinkType::LINUX_SLL2, &f),
            Link::EtherType(0x86dd, &[][..])
        );
        assert_eq!(
            strip(LinkType::LINUX_SLL2, &f[..19]),
            Link::Short(label::SLL2)
        );
    }

    #[test]
    fn null_accepts_both_byte_orders_and_all_inet6_values() {
        for af in [24u32, 28, 30] {
            for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
                assert_eq!(
                    strip(LinkType::NULL, &bytes),
                    Link::EtherType(ETHER_TYPE_IPV6, &[][..])
                );
            }
        }
        assert_eq!(
            strip(LinkType::NULL, &[2, 0, 0, 0]),
            Link::EtherType(ETHER_TYPE_IPV4, &[][..])
        );
        assert_eq!(strip(LinkType::NULL, &[7, 0, 0, 0]), Link::NotIp);
        assert_eq!(strip(LinkType::NULL, &[2, 0]), Link::Short(label::LOOPBACK));
    }

    #[test]
    fn loop_is_big_endian_only() {
        assert_eq!(
            strip(LinkType::LOOP, &[0, 0, 0, 2]),
            Link::EtherType(ETHER_TYPE_IPV4, &[][..])
        );
        assert_eq!(strip(LinkType::LOOP, &[2, 0, 0, 0]), Link::NotIp);
    }

    #[test]
    fn unknown_link_type_is_reported() {
        assert_eq!(strip(LinkType(147), &[1, 2, 3]), Link::Unknown);
    }
}
