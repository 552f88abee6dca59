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
    pub fn from_ip(ip: &IpAddr) -> Addr {
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
    /// The key of a packet `src -> dst` (address and port of each end); the flag is true
    /// when `src` is `lo`.
    ///
    /// The ends are ordered as [`Endpoint`]s order (IPv4 before IPv6, then the address
    /// bytes, then the port), but from the addresses as integers: comparing the endpoints
    /// once built read back bytes just written one by one, a read the store buffer cannot
    /// serve, which waits until every earlier store of the frame has reached the cache.
    /// Ordering from the integers took 14 % off the user time of a steady 10 M-frame slice
    /// of the simulator's hour (medians of eight alternating runs).
    ///
    /// The addresses are read where they lie (see `number`).
    #[inline]
    pub fn of(proto: u8, src: (&IpAddr, u16), dst: (&IpAddr, u16)) -> (FlowKey, bool) {
        let src_is_lo = order(src) <= order(dst);
        let end = |(ip, port): (&IpAddr, u16)| Endpoint {
            addr: Addr::from_ip(ip),
            port,
        };
        let (lo, hi) = if src_is_lo { (src, dst) } else { (dst, src) };
        let key = FlowKey {
            proto,
            lo: end(lo),
            hi: end(hi),
        };
        (key, src_is_lo)
    }

    /// The hash of [`FlowKey::of`]`(proto, src, dst)`'s key, from the addresses as
    /// integers without building it: hashing a key just built read back its address bytes,
    /// written one by one, as words, which the store buffer cannot serve (the read waits for
    /// every earlier store of the frame to reach the cache).
    #[inline]
    pub fn hash_of<S: std::hash::BuildHasher>(
        hasher: &S,
        proto: u8,
        src: (&IpAddr, u16),
        dst: (&IpAddr, u16),
    ) -> u64 {
        // The ends in key order, as `FlowKey::of` puts them, then hashed as the key's
        // fields are.
        let (lo, hi) = if order(src) <= order(dst) {
            (src, dst)
        } else {
            (dst, src)
        };
        let part = |(ip, port): (&IpAddr, u16)| (ip.is_ipv6(), bits_of(ip), port);
        let (lo, hi) = (part(lo), part(hi));
        let mut h = hasher.build_hasher();
        hash_words(&mut h, proto, lo, hi);
        std::hash::Hasher::finish(&h)
    }
}

impl Addr {
    /// The address's 16 bytes as one integer in memory order, for hashing.
    #[inline(always)]
    fn bits(&self) -> u128 {
        u128::from_ne_bytes(self.bytes)
    }
}

/// The address as a number (an IPv4 address's 32 bits, an IPv6 address's 128).
///
/// By reference, matched where it lies, an IPv4 address is one 4-byte read: an `IpAddr`
/// copied out whole is read as a tag and two 8-byte words, and a word wider than the
/// decoder's stores of the same frame cannot be forwarded from them (the read waits for
/// every earlier store of the frame, slot misses included, to reach the cache).
#[inline(always)]
pub fn number(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

/// Where an end sorts among keys' ends: as [`Endpoint`]s sort (IPv4 before IPv6, then the
/// address bytes, then the port), computed from the address itself.
#[inline(always)]
fn order((ip, port): (&IpAddr, u16)) -> (bool, u128, u16) {
    (ip.is_ipv6(), number(ip), port)
}

/// [`Addr::bits`] of `ip`, computed from the address itself.
#[inline(always)]
fn bits_of(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from_ne_bytes(a.octets())),
        IpAddr::V6(a) => u128::from_ne_bytes(a.octets()),
    }
}

/// The words a key hashes as, from its parts (`v6`, [`Addr::bits`], port): five instead of
/// field by field (the derived impl feeds each of the 16 address bytes separately); the
/// table hashes once per packet.
#[inline(always)]
fn hash_words<H: std::hash::Hasher>(
    h: &mut H,
    proto: u8,
    (lo_v6, lo, lo_port): (bool, u128, u16),
    (hi_v6, hi, hi_port): (bool, u128, u16),
) {
    h.write_u64(lo as u64);
    h.write_u64((lo >> 64) as u64);
    h.write_u64(hi as u64);
    h.write_u64((hi >> 64) as u64);
    h.write_u64(
        u64::from(lo_port)
            | u64::from(hi_port) << 16
            | u64::from(proto) << 32
            | u64::from(lo_v6) << 40
            | u64::from(hi_v6) << 41,
    );
}

impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let part = |e: &Endpoint| (e.addr.v6, e.addr.bits(), e.port);
        hash_words(h, self.proto, part(&self.lo), part(&self.hi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn ep(ip: &str, port: u16) -> (IpAddr, u16) {
        (ip.parse().unwrap(), port)
    }

    #[test]
    fn both_directions_share_a_key() {
        let (a, b) = (ep("10.0.0.2", 5000), ep("10.0.0.1", 53));
        let (k1, s1) = FlowKey::of(17, (&a.0, a.1), (&b.0, b.1));
        let (k2, s2) = FlowKey::of(17, (&b.0, b.1), (&a.0, a.1));
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        assert_eq!(k1.lo.addr.to_ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    /// Few distinct values, so that equal addresses and ports come up often.
    fn end() -> impl Strategy<Value = (IpAddr, u16)> {
        let v4 = (0u32..4).prop_map(|a| IpAddr::V4(Ipv4Addr::from(a << 30 | a)));
        let v6 = (0u128..4).prop_map(|a| IpAddr::V6(Ipv6Addr::from(a << 126 | a)));
        (prop_oneof![v4, v6], 0u16..3)
    }

    proptest! {
        /// The ends are ordered exactly as `Endpoint`'s derived order would order them.
        #[test]
        fn ends_are_ordered_as_endpoints_order(src in end(), dst in end()) {
            let endpoint = |(ip, port): (IpAddr, u16)| Endpoint { addr: Addr::from_ip(&ip), port };
            let (key, src_is_lo) = FlowKey::of(6, (&src.0, src.1), (&dst.0, dst.1));
            prop_assert_eq!(src_is_lo, endpoint(src) <= endpoint(dst));
            prop_assert_eq!(key.lo, endpoint(src).min(endpoint(dst)));
            prop_assert_eq!(key.hi, endpoint(src).max(endpoint(dst)));
        }
    }

    proptest! {
        /// Hashing from the parts agrees with hashing the key they make.
        #[test]
        fn a_key_hashes_as_its_parts_do(src in end(), dst in end(), proto in any::<u8>()) {
            use std::hash::BuildHasher;
            let hasher = rustc_hash::FxBuildHasher;
            let (src, dst) = ((&src.0, src.1), (&dst.0, dst.1));
            let (key, _) = FlowKey::of(proto, src, dst);
            prop_assert_eq!(FlowKey::hash_of(&hasher, proto, src, dst), hasher.hash_one(key));
        }
    }

    #[test]
    fn addresses_round_trip() {
        for s in ["192.0.2.7", "2001:db8::1", "::ffff:1.2.3.4", "0.0.0.0"] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(Addr::from_ip(&ip).to_ip(), ip);
        }
        // An IPv4 address and the IPv6 address with the same leading bytes differ.
        assert_ne!(
            Addr::from_ip(&"1.2.3.4".parse().unwrap()),
            Addr::from_ip(&"102:304::".parse().unwrap())
        );
    }
}
