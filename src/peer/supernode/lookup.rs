//! Recursive lookups of a super node (PROTOCOL.md §8.6): expanding rings of other SNs from
//! the host cache (8, 16, 32, 64 by default), one `search` datagram per SN, a ring wait
//! ([`super::SuperNodeConfig::ring_wait_ms`]) and a whole-search deadline.
//!
//! Guarantees: an SN is asked at most once per search (ring *k* takes the next slice of the
//! host cache, rotated per search so load spreads); at most [`MAX_SEARCHES`] run at once.
//! Must not: forward a search that did not come from a registered client (local lookups
//! never leave the SN).

use crate::peer::io::ConnId;
use crate::time::Ts;
use std::net::SocketAddr;

/// Recursive searches in progress at once.
pub const MAX_SEARCHES: usize = 256;
/// PROTOCOL.md §8.6 MAX_RINGS.
pub const MAX_RINGS: usize = 4;

/// One recursive search for a registered client.
#[derive(Debug)]
pub struct Search {
    pub client: ConnId,
    pub client_txn: u32,
    pub target: String,
    /// Ring being waited on (1-based); 0 before the first.
    pub ring: u32,
    /// Rotation of the host cache for this search.
    pub rotation: usize,
    /// Next host-cache slot not asked yet.
    pub next_slot: usize,
    /// Answers still expected in the current ring.
    pub pending: usize,
    pub asked: u32,
    pub ring_deadline: Ts,
    pub deadline: Ts,
}

impl Search {
    /// The SNs of the next ring (`size` of them, fewer when the cache runs out), advancing
    /// the search; an empty result means the cache is exhausted.
    pub fn next_ring(&mut self, cache: &[SocketAddr], size: usize) -> Vec<SocketAddr> {
        self.ring += 1;
        let n = cache.len();
        let take = size.min(n.saturating_sub(self.next_slot));
        let ring: Vec<SocketAddr> = (self.next_slot..self.next_slot + take)
            .filter_map(|i| cache.get((i + self.rotation) % n.max(1)).copied())
            .collect();
        self.next_slot += take;
        self.pending = ring.len();
        self.asked = self.asked.saturating_add(ring.len() as u32);
        ring
    }
}

/// Ring `k`'s members for an iterative referral: the `k`-th slice of the unrotated host
/// cache, so consecutive referrals never repeat an SN.
pub fn referral_ring(cache: &[SocketAddr], ring: u32, sizes: &[usize]) -> Vec<SocketAddr> {
    let k = usize::try_from(ring).unwrap_or(usize::MAX);
    if k == 0 || k > sizes.len() {
        return Vec::new();
    }
    let start: usize = sizes.iter().take(k - 1).sum();
    let size = sizes.get(k - 1).copied().unwrap_or(0);
    cache.iter().skip(start).take(size).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(n: u8) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 1, 0, i], 33033)))
            .collect()
    }

    fn search(rotation: usize) -> Search {
        Search {
            client: ConnId(1),
            client_txn: 1,
            target: "bob".into(),
            ring: 0,
            rotation,
            next_slot: 0,
            pending: 0,
            asked: 0,
            ring_deadline: Ts(0),
            deadline: Ts(0),
        }
    }

    #[test]
    fn rings_never_repeat_an_sn_and_stop_when_the_cache_runs_out() {
        let c = cache(30);
        let mut s = search(7);
        let r1 = s.next_ring(&c, 8);
        let r2 = s.next_ring(&c, 16);
        let r3 = s.next_ring(&c, 32);
        assert_eq!((r1.len(), r2.len(), r3.len()), (8, 16, 6));
        let mut all: Vec<_> = r1.iter().chain(&r2).chain(&r3).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 30);
        assert!(s.next_ring(&c, 64).is_empty());
        assert_eq!((s.ring, s.asked), (4, 30));
    }

    #[test]
    fn referral_rings_are_consecutive_slices() {
        let c = cache(40);
        let sizes = [8, 16, 32, 64];
        assert_eq!(referral_ring(&c, 1, &sizes), c[..8].to_vec());
        assert_eq!(referral_ring(&c, 2, &sizes), c[8..24].to_vec());
        assert_eq!(referral_ring(&c, 3, &sizes), c[24..].to_vec());
        assert!(referral_ring(&c, 0, &sizes).is_empty());
        assert!(referral_ring(&c, 5, &sizes).is_empty());
    }
}
