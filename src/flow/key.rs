//! Flow keys: protocol plus the two endpoints, in a canonical order so that both
//! directions of a conversation find the same entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address in a fixed 16-byte form (IPv4 mapped into the first 4 bytes, flagged) so
/// keys hash and compare as plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    v6: bool,
    bytes: [u8; 16],
}

impl Addr {
    pub fn from_ip(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&a.octets());
                Addr { v6: false, bytes }
            }
            IpAddr::V6(a) => Addr {
                v6: true,
                bytes: a.octets(),
            },
        }
    }

    pub fn to_ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            let [a, b, c, d, ..] = self.bytes;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
    }

    pub fn is_v6(self) -> bool {
        self.v6
    }
}

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// Canonical bidirectional key: `lo <= hi`. Which end is the originator is flow state, not
/// part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub proto: u8,
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// Builds the key of a packet `src -> dst`; the flag is true when `src` is `lo`.
    pub fn new(proto: u8, src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src <= dst {
            (
                FlowKey {
                    proto,
                    lo: src,
                    hi: dst,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    proto,
                    lo: dst,
                    hi: src,
                },
                false,
            )
        }
    }
}

impl Addr {
    /// The address as two machine words, for hashing.
    #[inline(always)]
    fn words(&self) -> (u64, u64) {
        let (a, b) = self.bytes.split_at(8);
        (
            u64::from_ne_bytes(a.try_into().unwrap_or_default()),
            u64::from_ne_bytes(b.try_into().unwrap_or_default()),
        )
    }
}

/// Hashes a key as five words instead of field by field (the derived impl feeds each of
/// the 16 address bytes separately): the table hashes once per packet.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (l0, l1) = self.lo.addr.words();
        let (h0, h1) = self.hi.addr.words();
        h.write_u64(l0);
        h.write_u64(l1);
        h.write_u64(h0);
        h.write_u64(h1);
        h.write_u64(
            u64::from(self.lo.port)
                | u64::from(self.hi.port) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.lo.addr.v6) << 40
                | u64::from(self.hi.addr.v6) << 41,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: Addr::from_ip(ip.parse().unwrap()),
            port,
        }
    }

    #[test]
    fn both_directions_share_a_key() {
        let (k1, s1) = FlowKey::new(17, ep("10.0.0.2", 5000), ep("10.0.0.1", 53));
        let (k2, s2) = FlowKey::new(17, ep("10.0.0.1", 53), ep("10.0.0.2", 5000));
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
    }

    #[test]
    fn addresses_round_trip() {
        for s in ["192.0.2.7", "2001:db8::1", "::ffff:1.2.3.4", "0.0.0.0"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(Addr::from_ip(ip).to_ip(), ip);
        }
        // An IPv4 address and the IPv6 address with the same leading bytes differ.
        assert_ne!(
            Addr::from_ip("1.2.3.4".parse().unwrap()),
            Addr::from_ip("102:304::".parse().unwrap())
        );
    }
}
