//! Decoder counters: what was decoded, what was not, and why.
//!
//! Guarantees: every frame handed to the decoder is counted in `frames` and lands in at most
//! one of the "why no packet" buckets; reason labels come from the fixed [`label`] set, so the
//! maps stay small whatever the input. Must not: format strings on the hot path (only
//! [`DecodeStats::anomalies`], called once for the summary, allocates).

use std::collections::BTreeMap;

/// The fixed set of reason labels used in [`DecodeStats::malformed`] and
/// [`DecodeStats::cut_headers`]: short, stable, and safe to print in a summary.
pub mod label {
    pub const ETHERNET: &str = "ethernet header";
    pub const VLAN: &str = "vlan header";
    pub const MACSEC: &str = "macsec header";
    pub const SLL: &str = "sll header";
    pub const SLL2: &str = "sll2 header";
    pub const LOOPBACK: &str = "loopback header";
    pub const IP: &str = "ip header";
    pub const IP_VERSION: &str = "ip version";
    pub const IPV4: &str = "ipv4 header";
    pub const IPV4_TOTAL_LEN: &str = "ipv4 total length";
    pub const IPV6: &str = "ipv6 header";
    pub const IPV6_EXT: &str = "ipv6 ext header";
    pub const IP_AUTH: &str = "ip auth header";
    pub const TCP: &str = "tcp header";
    pub const UDP: &str = "udp header";
    pub const UDP_LEN: &str = "udp length";
    pub const ICMP: &str = "icmp header";
    pub const ARP: &str = "arp";
    pub const FRAG_LEN: &str = "fragment length";
    pub const FRAG_TOO_MANY: &str = "too many fragments or holes";
    pub const FRAG_TOO_BIG: &str = "fragment beyond 65535";
    pub const FRAG_END_CONFLICT: &str = "fragment end conflict";
    pub const FRAG_AFTER_END: &str = "fragment after end";
}

/// IEEE 802.3: type field values start at 0x0600; smaller values are lengths.
const MIN_ETHER_TYPE: u16 = 0x0600;

/// Counters kept by [`Decoder`](super::Decoder). Frame counts unless said otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames handed to the decoder.
    pub frames: u64,
    /// Packets yielded (a reassembled datagram counts once).
    pub packets: u64,
    /// Frames whose outermost IPv4 header parsed (fragments included).
    pub ipv4: u64,
    /// Frames whose outermost IPv6 header parsed (fragments included).
    pub ipv6: u64,
    /// Packets yielded with a TCP header.
    pub tcp: u64,
    /// Packets yielded with a UDP header.
    pub udp: u64,
    /// Packets yielded as ICMP or ICMPv6.
    pub icmp: u64,
    /// Packets yielded with another transport, or with a TCP/UDP/ICMP header cut short.
    pub other_ip: u64,
    /// Frames that are not IP (ARP, LLDP, a loopback family we do not know, …).
    pub non_ip: u64,
    /// `non_ip` split by ether type (SLL protocol values included) when there is one; values
    /// below 0x0600 (802.3 lengths, SLL pseudo-protocols) are counted under 0.
    pub non_ip_by_ether_type: BTreeMap<u16, u64>,
    /// Frames cut by the snap length, or whose headers claim more bytes than were captured.
    pub truncated: u64,
    /// Frames where the snap length cut a header (decoded as far as it went), by label.
    pub cut_headers: BTreeMap<&'static str, u64>,
    /// IP packets with a length field of 0 but data behind the header (TCP segmentation
    /// offload on the capturing host, or an IPv6 jumbogram): sizes come from the frame.
    pub ip_len_zero: u64,
    /// Frames with a header that is wrong in itself (not explained by the snap length),
    /// by [`label`].
    pub malformed: BTreeMap<&'static str, u64>,
    /// Frames of a link type the decoder does not handle, by LINKTYPE_* value.
    pub unknown_linktypes: BTreeMap<u32, u64>,
    /// Frames that were IPv4 or IPv6 fragments.
    pub fragments: u64,
    /// Datagrams reassembled from fragments.
    pub reassembled: u64,
    /// Datagrams dropped because their first fragment is older than the timeout.
    pub expired: u64,
    /// Datagrams dropped to stay within [`DefragLimits`](super::DefragLimits).
    pub dropped_over_limit: u64,
    /// Fragment frames inside expired or dropped datagrams: their bytes reach no packet.
    pub fragment_frames_lost: u64,
    /// Fragments that overlapped bytes already received (duplicates included); the bytes
    /// received first are kept.
    pub fragment_overlaps: u64,
}

impl DecodeStats {
    /// Adds `other` into `self` (e.g. the stats of several decoders, one per input).
    pub fn merge(&mut self, other: &DecodeStats) {
        self.frames += other.frames;
        self.packets += other.packets;
        self.ipv4 += other.ipv4;
        self.ipv6 += other.ipv6;
        self.tcp += other.tcp;
        self.udp += other.udp;
        self.icmp += other.icmp;
        self.other_ip += other.other_ip;
        self.non_ip += other.non_ip;
        merge_map(&mut self.non_ip_by_ether_type, &other.non_ip_by_ether_type);
        self.truncated += other.truncated;
        merge_map(&mut self.cut_headers, &other.cut_headers);
        self.ip_len_zero += other.ip_len_zero;
        merge_map(&mut self.malformed, &other.malformed);
        merge_map(&mut self.unknown_linktypes, &other.unknown_linktypes);
        self.fragments += other.fragments;
        self.reassembled += other.reassembled;
        self.expired += other.expired;
        self.dropped_over_limit += other.dropped_over_limit;
        self.fragment_frames_lost += other.fragment_frames_lost;
        self.fragment_overlaps += other.fragment_overlaps;
    }

    /// Everything worth a line in the summary, as `(label, count)` pairs with non-zero counts,
    /// in a stable order.
    pub fn anomalies(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut push = |label: String, n: u64| {
            if n > 0 {
                out.push((label, n));
            }
        };
        push("truncated frames".to_owned(), self.truncated);
        for (l, n) in &self.cut_headers {
            push(format!("cut by snaplen in {l}"), *n);
        }
        push(
            "ip length 0 (segmentation offload)".to_owned(),
            self.ip_len_zero,
        );
        for (l, n) in &self.malformed {
            push(format!("malformed {l}"), *n);
        }
        for (lt, n) in &self.unknown_linktypes {
            push(format!("unknown link type {lt}"), *n);
        }
        push("fragment datagrams expired".to_owned(), self.expired);
        push(
            "fragment datagrams dropped over limit".to_owned(),
            self.dropped_over_limit,
        );
        push("fragment frames lost".to_owned(), self.fragment_frames_lost);
        push("overlapping fragments".to_owned(), self.fragment_overlaps);
        out
    }

    pub(super) fn count_malformed(&mut self, label: &'static str) {
        *self.malformed.entry(label).or_insert(0) += 1;
    }

    pub(super) fn count_cut(&mut self, label: &'static str) {
        *self.cut_headers.entry(label).or_insert(0) += 1;
    }

    /// A header stopped decoding: a snap-length cut when the frame was cut and the header ran
    /// out of bytes, a malformation otherwise.
    pub(super) fn count_stop(&mut self, label: &'static str, cut_by_snaplen: bool) {
        if cut_by_snaplen {
            self.count_cut(label);
        } else {
            self.count_malformed(label);
        }
    }

    pub(super) fn count_non_ip(&mut self, ether_type: Option<u16>) {
        self.non_ip += 1;
        if let Some(et) = ether_type {
            // Below 0x0600 the field is an 802.3 length or an SLL pseudo-protocol, not a
            // type: one bucket, so lengths do not spread over 1500 keys.
            let key = if et < MIN_ETHER_TYPE { 0 } else { et };
            *self.non_ip_by_ether_type.entry(key).or_insert(0) += 1;
        }
    }

    pub(super) fn count_unknown_linktype(&mut self, linktype: u32) {
        *self.unknown_linktypes.entry(linktype).or_insert(0) += 1;
    }
}

fn merge_map<K: Ord + Copy>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, n) in from {
        *into.entry(*k).or_insert(0) += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counters_and_maps() {
        let mut a = DecodeStats {
            frames: 2,
            ..Default::default()
        };
        a.count_malformed(label::TCP);
        a.count_unknown_linktype(147);
        let mut b = DecodeStats {
            frames: 3,
            ..Default::default()
        };
        b.count_malformed(label::TCP);
        b.count_malformed(label::UDP_LEN);
        b.count_non_ip(Some(0x0806));
        a.merge(&b);
        assert_eq!(a.frames, 5);
        assert_eq!(a.malformed.get(label::TCP), Some(&2));
        assert_eq!(a.malformed.get(label::UDP_LEN), Some(&1));
        assert_eq!(a.non_ip_by_ether_type.get(&0x0806), Some(&1));
        assert_eq!(a.unknown_linktypes.get(&147), Some(&1));
    }

    #[test]
    fn anomalies_list_only_nonzero_counts() {
        let mut s = DecodeStats::default();
        assert!(s.anomalies().is_empty());
        s.truncated = 4;
        s.count_cut(label::TCP);
        s.count_malformed(label::IPV4);
        s.count_unknown_linktype(147);
        let a = s.anomalies();
        assert_eq!(
            a,
            vec![
                ("truncated frames".to_owned(), 4),
                ("cut by snaplen in tcp header".to_owned(), 1),
                ("malformed ipv4 header".to_owned(), 1),
                ("unknown link type 147".to_owned(), 1),
            ]
        );
    }
}
