//! The flow table's index: slot numbers by key hash, open addressing with linear probing.
//!
//! Not hashbrown: its control bytes and its buckets are separate arrays, so finding a flow
//! among a million live ones costs two cache misses before the slot's own. Here each entry
//! holds a 32-bit hash tag beside the slot number, eight to a cache line: one miss, and the
//! slot's key is compared only when the tags agree. The table is kept at most half full so
//! probe runs stay short; removal shifts the run back (no tombstones), so lookups never
//! slow down with churn.

/// `(tag << 32) | slot`; a slot of `u32::MAX` (never a real slot) marks an empty entry.
type Entry = u64;

const EMPTY: Entry = u64::MAX;
const MIN_ENTRIES: usize = 16;

pub struct FlowIndex {
    entries: Vec<Entry>,
    len: usize,
    /// `entries.len() == 1 << bits`.
    bits: u32,
}

fn tag(hash: u64) -> u32 {
    // The high half: the best-mixed bits of a multiplicative hash such as Fx.
    (hash >> 32) as u32
}

/// `n` empty entries, in huge pages if large (every lookup is a random access).
fn empty_entries(n: usize) -> Vec<Entry> {
    let mut v = Vec::with_capacity(n);
    crate::prefetch::huge_pages(&v);
    v.resize(n, EMPTY);
    v
}

fn is_empty(e: Entry) -> bool {
    e as u32 == u32::MAX
}

impl FlowIndex {
    /// An index that holds `n` slots before it first grows.
    pub fn with_capacity(n: usize) -> FlowIndex {
        let entries = n.saturating_mul(2).max(MIN_ENTRIES).next_power_of_two();
        FlowIndex {
            entries: empty_entries(entries),
            len: 0,
            bits: entries.trailing_zeros(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Where a tag's probe run starts: its top bits.
    fn home(&self, tag: u32) -> usize {
        (u64::from(tag) >> (32 - self.bits.min(32))) as usize & self.mask()
    }

    fn at(&self, i: usize) -> Entry {
        self.entries.get(i).copied().unwrap_or(EMPTY)
    }

    /// The slot stored under `hash` for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, eq).map(|(_, slot)| slot)
    }

    fn position(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        let tag = tag(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        // At most half full: the run ends at an empty entry well before wrapping round.
        for _ in 0..self.entries.len() {
            let e = self.at(i);
            if is_empty(e) {
                return None;
            }
            if (e >> 32) as u32 == tag && eq(e as u32) {
                return Some((i, e as u32));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Hints that `hash` will be looked up soon: loads the entry its probe run starts at.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.entries, self.home(tag(hash)));
    }

    /// The first slot stored under `hash`'s tag, without asking which flow it holds: a
    /// likely answer to [`Self::find`], for prefetching the slot before it is needed.
    #[inline]
    pub fn likely(&self, hash: u64) -> Option<u32> {
        let tag = tag(hash);
        let mask = self.mask();
        let mut i = self.home(tag);
        // A short look: a tag shared by several flows or a long run just gets no hint.
        for _ in 0..4 {
            let e = self.at(i);
            if is_empty(e) {
                return None;
            }
            if (e >> 32) as u32 == tag {
                return Some(e as u32);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Stores `slot` under `hash`; the caller knows it is not stored yet.
    pub fn insert(&mut self, hash: u64, slot: u32) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place((u64::from(tag(hash)) << 32) | u64::from(slot));
        self.len += 1;
    }

    fn place(&mut self, entry: Entry) {
        let mask = self.mask();
        let mut i = self.home((entry >> 32) as u32);
        while !is_empty(self.at(i)) {
            i = (i + 1) & mask;
        }
        if let Some(e) = self.entries.get_mut(i) {
            *e = entry;
        }
    }

    fn grow(&mut self) {
        let doubled = empty_entries(self.entries.len() * 2);
        let old = std::mem::replace(&mut self.entries, doubled);
        self.bits += 1;
        for e in old.into_iter().filter(|&e| !is_empty(e)) {
            self.place(e);
        }
    }

    /// Removes `slot` stored under `hash`; false if it was not there.
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let Some((mut hole, _)) = self.position(hash, |s| s == slot) else {
            return false;
        };
        // Backward shift: an entry later in the run moves into the hole if the hole lies
        // between its home and where it sits, so no run is ever broken by a gap.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let e = self.at(j);
            if is_empty(e) {
                break;
            }
            let home = self.home((e >> 32) as u32);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = EMPTY;
        }
        self.len -= 1;
        true
    }

    pub fn clear(&mut self) {
        self.entries.fill(EMPTY);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_was_inserted_and_not_what_was_removed() {
        let mut ix = FlowIndex::with_capacity(0);
        for slot in 0..1000u32 {
            ix.insert(u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15), slot);
        }
        assert_eq!(ix.len(), 1000);
        assert!(ix.entries.len() >= 2000, "kept at most half full");
        for slot in (0..1000u32).step_by(2) {
            assert!(ix.remove(u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15), slot));
        }
        for slot in 0..1000u32 {
            let hash = u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let found = ix.find(hash, |s| s == slot);
            assert_eq!(found.is_some(), slot % 2 == 1, "slot {slot}");
        }
        assert!(!ix.remove(0, 0), "already removed");
        ix.clear();
        assert!(ix.len() == 0 && ix.find(0x9E37_79B9_7F4A_7C15, |_| true).is_none());
    }

    #[test]
    fn equal_hashes_are_told_apart_by_the_caller() {
        let mut ix = FlowIndex::with_capacity(4);
        for slot in 0..20 {
            ix.insert(42, slot);
        }
        for slot in 0..20 {
            assert_eq!(ix.find(42, |s| s == slot), Some(slot));
        }
        assert!(ix.remove(42, 7));
        assert_eq!(ix.find(42, |s| s == 7), None);
        assert_eq!(ix.find(42, |s| s == 19), Some(19));
    }

    proptest! {
        /// Any sequence of inserts and removes (few distinct hashes, so runs collide and
        /// wrap round the end of the table) agrees with a map.
        #[test]
        fn agrees_with_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..64, 0u64..8), 0..400)) {
            let mut ix = FlowIndex::with_capacity(0);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (insert, slot, h) in ops {
                // Hashes whose tags land at the table's last entries exercise wrapping.
                let hash = (u64::MAX - h) << 32 | h;
                match (insert, model.get(&slot).copied()) {
                    (true, None) => {
                        ix.insert(hash, slot);
                        model.insert(slot, hash);
                    }
                    (_, Some(stored)) => {
                        prop_assert!(ix.remove(stored, slot));
                        model.remove(&slot);
                    }
                    (false, None) => prop_assert!(!ix.remove(hash, slot)),
                }
                prop_assert_eq!(ix.len(), model.len());
                for (&s, &hash) in &model {
                    prop_assert_eq!(ix.find(hash, |x| x == s), Some(s));
                }
            }
        }
    }
}
