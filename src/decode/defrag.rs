//! IPv4 and IPv6 fragment reassembly, bounded in datagrams, bytes and age.
//!
//! Fragments are keyed like the kernels do (IPv4: source, destination, identification,
//! protocol; IPv6: source, destination, identification) and copied into one buffer per
//! datagram; a datagram is complete when the bytes `0..total` are all present, `total` being
//! set by the fragment without "more fragments".
//!
//! Overlaps: **first wins** — bytes already received are never overwritten, a later fragment
//! only fills what is still missing (Wireshark's choice; Linux instead discards the whole
//! datagram on overlap, RFC 5722, which would lose bytes an analyzer must still account).
//! The same holds for the end: the first last-fragment fixes `total`.
//!
//! Fragments cut by the snap length still cover their whole range (the missing bytes read as
//! zero) so the datagram completes and its bytes are counted; the reassembled payload handed
//! out stops at the first byte that was not captured.
//!
//! Guarantees: at most `max_datagrams` datagrams and `max_bytes` buffered bytes (the oldest
//! datagram is evicted first), no datagram beyond [`MAX_DATAGRAM`] bytes, none older than
//! `timeout_ns` of capture time once [`Defrag::expire`] ran or another fragment arrived.
//! Must not: touch the non-fragment path, allocate per fragment once buffers are warm.

use super::stats::{DecodeStats, label};
use crate::time::Ts;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Largest reassembled payload: the IP length fields are 16 bits.
pub(super) const MAX_DATAGRAM: u32 = 65_535;
/// Most disjoint received ranges (holes + 1) a datagram may have; more means a fragment
/// flood, not a datagram, and the datagram is dropped.
const MAX_RANGES: usize = 64;
/// Most fragments per datagram: 65535 bytes in 8-byte fragments.
const MAX_FRAGMENTS: u32 = 8_192;
/// A freed buffer bigger than this is released rather than kept for reuse, so the pool does
/// not pin `max_datagrams × 64 KiB`.
const MAX_POOLED_BUF: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct DefragLimits {
    /// Datagrams being reassembled at once.
    pub max_datagrams: usize,
    /// Bytes buffered over all datagrams being reassembled.
    pub max_bytes: usize,
    /// A datagram whose first fragment is older than this (capture time) is dropped.
    pub timeout_ns: i64,
}

impl Default for DefragLimits {
    /// Linux's defaults are 30 s and 4 MiB per namespace; a trace analyzer sees many hosts,
    /// so more bytes.
    fn default() -> Self {
        DefragLimits {
            max_datagrams: 4096,
            max_bytes: 64 << 20,
            timeout_ns: 30_000_000_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum FragKey {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        id: u16,
        proto: u8,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        id: u32,
    },
}

/// One fragment as read from its frame.
#[derive(Debug)]
pub(super) struct Fragment<'a> {
    pub key: FragKey,
    pub ts: Ts,
    /// The frame's `orig_len`.
    pub wire_len: u32,
    /// Byte offset of `data` in the datagram.
    pub offset: u32,
    pub more: bool,
    /// Fragment length according to the IP header.
    pub len: u32,
    /// Captured fragment bytes (shorter than `len` when the snap length cut them).
    pub data: &'a [u8],
    /// Protocol of the reassembled payload when this fragment says (IPv4: every fragment;
    /// IPv6: the fragment header's next header, trusted from the offset-0 fragment).
    pub proto: Option<u8>,
}

/// A completed datagram; its payload is [`Defrag::payload`] until the next push.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Done {
    pub ts: Ts,
    pub wire_len: u64,
    pub frames: u32,
    pub proto: u8,
    /// Reassembled payload length.
    pub len: u32,
    /// Some fragment was cut by the snap length.
    pub truncated: bool,
}

#[derive(Default)]
struct Slot {
    key: Option<FragKey>,
    seq: u64,
    first_ts: Ts,
    /// Bytes `0..buf.len()`; not yet received ones are zero.
    buf: Vec<u8>,
    /// Received ranges, sorted, disjoint, not adjacent, half-open.
    ranges: Vec<(u32, u32)>,
    total: Option<u32>,
    /// Bytes from here on may be missing from the capture.
    captured_end: u32,
    proto: Option<u8>,
    wire_len: u64,
    frames: u32,
}

pub(super) struct Defrag {
    limits: DefragLimits,
    slots: Vec<Slot>,
    free: Vec<usize>,
    index: FxHashMap<FragKey, usize>,
    /// Slots in arrival order of their first fragment, as `(seq, slot)`; entries whose slot
    /// was since freed or reused (seq differs) are skipped lazily.
    order: VecDeque<(u64, usize)>,
    next_seq: u64,
    /// Bytes buffered in live slots.
    bytes: usize,
    /// The last completed payload, owned here so the packet can borrow it.
    done: Vec<u8>,
    done_len: usize,
}

impl Defrag {
    pub(super) fn new(limits: DefragLimits) -> Defrag {
        Defrag {
            limits,
            slots: Vec::new(),
            free: Vec::new(),
            index: FxHashMap::default(),
            order: VecDeque::new(),
            next_seq: 0,
            bytes: 0,
            done: Vec::new(),
            done_len: 0,
        }
    }

    /// Datagrams being reassembled.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.index.len()
    }

    /// Bytes buffered over all datagrams being reassembled.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.bytes
    }

    /// The captured part of the last completed datagram's payload.
    pub(super) fn payload(&self) -> &[u8] {
        self.done.get(..self.done_len).unwrap_or(&[])
    }

    /// Drops datagrams whose first fragment is more than the timeout before `now`, oldest
    /// first (arrival order; a capture whose clock steps back expires a little late).
    pub(super) fn expire(&mut self, now: Ts, stats: &mut DecodeStats) {
        while let Some(&(seq, slot)) = self.order.front() {
            let Some(s) = self.slots.get(slot) else {
                self.order.pop_front();
                continue;
            };
            if s.key.is_none() || s.seq != seq {
                self.order.pop_front();
                continue;
            }
            if now.since(s.first_ts) <= self.limits.timeout_ns {
                break;
            }
            self.order.pop_front();
            stats.expired += 1;
            stats.fragment_frames_lost += u64::from(s.frames);
            self.release(slot);
        }
    }

    /// Adds one fragment; returns the datagram when it completed it.
    pub(super) fn push(&mut self, frag: &Fragment<'_>, stats: &mut DecodeStats) -> Option<Done> {
        stats.fragments += 1;
        self.expire(frag.ts, stats);
        let Some(end) = frag
            .offset
            .checked_add(frag.len)
            .filter(|&e| e <= MAX_DATAGRAM)
        else {
            stats.count_malformed(label::FRAG_TOO_BIG);
            stats.fragment_frames_lost += 1;
            return None;
        };
        let slot = match self.index.get(&frag.key) {
            Some(&slot) => slot,
            None => self.open(frag.key, frag.ts, stats)?,
        };
        self.add(slot, frag, end, stats)
    }

    fn open(&mut self, key: FragKey, ts: Ts, stats: &mut DecodeStats) -> Option<usize> {
        if self.limits.max_datagrams == 0 {
            stats.dropped_over_limit += 1;
            stats.fragment_frames_lost += 1;
            return None;
        }
        while self.index.len() >= self.limits.max_datagrams {
            if !self.evict_oldest(None, stats) {
                break;
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let s = self.slots.get_mut(slot)?;
        s.key = Some(key);
        s.seq = seq;
        s.first_ts = ts;
        s.buf.clear();
        s.ranges.clear();
        s.total = None;
        s.captured_end = u32::MAX;
        s.proto = None;
        s.wire_len = 0;
        s.frames = 0;
        self.index.insert(key, slot);
        self.order.push_back((seq, slot));
        self.compact_order();
        Some(slot)
    }

    fn add(
        &mut self,
        slot: usize,
        frag: &Fragment<'_>,
        mut end: u32,
        stats: &mut DecodeStats,
    ) -> Option<Done> {
        let max_bytes = self.limits.max_bytes;
        let s = self.slots.get_mut(slot)?;
        s.frames += 1;
        s.wire_len += u64::from(frag.wire_len);
        // IPv6 puts the payload's protocol in every fragment header, but only the first
        // fragment's is authoritative (RFC 8200 §4.5).
        if let Some(p) = frag.proto {
            if frag.offset == 0 || s.proto.is_none() {
                s.proto = Some(p);
            }
        }
        if !frag.more {
            match s.total {
                None => s.total = Some(end),
                Some(t) if t != end => stats.count_malformed(label::FRAG_END_CONFLICT),
                Some(_) => {}
            }
        }
        if let Some(t) = s.total {
            if frag.offset >= t && frag.len > 0 {
                stats.count_malformed(label::FRAG_AFTER_END);
            }
            end = end.min(t);
        }
        let start = frag.offset.min(end);
        if s.frames > MAX_FRAGMENTS {
            stats.count_malformed(label::FRAG_TOO_MANY);
            return self.drop_slot(slot, stats);
        }

        // Budget: growing the buffer must fit in max_bytes, evicting older datagrams first —
        // unless this datagram alone would not fit, which evicting others cannot cure.
        let growth = (end as usize).saturating_sub(s.buf.len());
        if s.buf.len() + growth > max_bytes {
            return self.drop_slot(slot, stats);
        }
        while self.bytes + growth > max_bytes {
            if !self.evict_oldest(Some(slot), stats) {
                return self.drop_slot(slot, stats);
            }
        }
        let s = self.slots.get_mut(slot)?;
        if growth > 0 {
            s.buf.resize(end as usize, 0);
            self.bytes += growth;
        }
        if frag.data.len() < frag.len as usize {
            let captured = frag.offset.saturating_add(frag.data.len() as u32);
            s.captured_end = s.captured_end.min(captured);
        }
        if start < end {
            if write_missing(s, start, end, frag.offset, frag.data) {
                stats.fragment_overlaps += 1;
            }
            if s.ranges.len() > MAX_RANGES {
                stats.count_malformed(label::FRAG_TOO_MANY);
                return self.drop_slot(slot, stats);
            }
        }
        let complete = match (s.total, s.ranges.first(), s.proto) {
            (Some(t), Some(&(0, e)), Some(_)) => e >= t,
            _ => false,
        };
        if !complete {
            return None;
        }
        let total = s.total.unwrap_or(0);
        let done = Done {
            ts: frag.ts,
            wire_len: s.wire_len,
            frames: s.frames,
            proto: s.proto.unwrap_or(0),
            len: total,
            truncated: s.captured_end < total,
        };
        self.done_len = s.captured_end.min(total) as usize;
        // Hand the buffer over to `done` (no copy); the slot gets the old, emptied one.
        self.bytes = self.bytes.saturating_sub(s.buf.len());
        self.done.clear();
        std::mem::swap(&mut self.done, &mut s.buf);
        stats.reassembled += 1;
        self.release(slot);
        Some(done)
    }

    fn drop_slot(&mut self, slot: usize, stats: &mut DecodeStats) -> Option<Done> {
        stats.dropped_over_limit += 1;
        if let Some(s) = self.slots.get(slot) {
            stats.fragment_frames_lost += u64::from(s.frames);
        }
        self.release(slot);
        None
    }

    /// Evicts the oldest live datagram other than `keep`; false when there is none.
    fn evict_oldest(&mut self, keep: Option<usize>, stats: &mut DecodeStats) -> bool {
        let mut i = 0;
        while let Some(&(seq, slot)) = self.order.get(i) {
            let live = self
                .slots
                .get(slot)
                .is_some_and(|s| s.key.is_some() && s.seq == seq);
            if !live {
                self.order.remove(i);
                continue;
            }
            if Some(slot) == keep {
                i += 1;
                continue;
            }
            self.order.remove(i);
            stats.dropped_over_limit += 1;
            if let Some(s) = self.slots.get(slot) {
                stats.fragment_frames_lost += u64::from(s.frames);
            }
            self.release(slot);
            return true;
        }
        false
    }

    /// Frees a slot (its `order` entry goes stale and is skipped later).
    fn release(&mut self, slot: usize) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(key) = s.key.take() else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(s.buf.len());
        s.buf.clear();
        if s.buf.capacity() > MAX_POOLED_BUF {
            s.buf = Vec::new();
        }
        s.ranges.clear();
        self.index.remove(&key);
        self.free.push(slot);
    }

    /// Stale `order` entries pile up when datagrams complete; drop them once they outnumber
    /// the live ones, so the queue stays O(max_datagrams).
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.index.len() + 64 {
            let slots = &self.slots;
            self.order.retain(|&(seq, slot)| {
                slots
                    .get(slot)
                    .is_some_and(|s| s.key.is_some() && s.seq == seq)
            });
        }
    }
}

/// Copies the bytes of `start..end` not yet received (first wins) from `data` (which starts at
/// datagram offset `data_at`) and records the range; true when some bytes were already there.
fn write_missing(s: &mut Slot, start: u32, end: u32, data_at: u32, data: &[u8]) -> bool {
    let mut overlapped = false;
    let mut pos = start;
    // Walk the gaps of `start..end` between the received ranges.
    for &(a, b) in &s.ranges {
        if b <= pos {
            continue;
        }
        if a >= end {
            break;
        }
        if a > pos {
            copy_captured(&mut s.buf, pos, a, data_at, data);
        }
        overlapped = true;
        pos = pos.max(b);
        if pos >= end {
            break;
        }
    }
    if pos < end {
        copy_captured(&mut s.buf, pos, end, data_at, data);
    }
    insert_range(&mut s.ranges, start, end);
    overlapped
}

/// Copies datagram bytes `from..to` out of `data` (starting at offset `data_at`); bytes past
/// the captured data stay zero.
fn copy_captured(buf: &mut [u8], from: u32, to: u32, data_at: u32, data: &[u8]) {
    let lo = (from - data_at.min(from)) as usize;
    let hi = ((to - data_at.min(to)) as usize).min(data.len());
    if lo >= hi {
        return;
    }
    let n = hi - lo;
    let dst_lo = from as usize;
    if let (Some(dst), Some(src)) = (buf.get_mut(dst_lo..dst_lo + n), data.get(lo..hi)) {
        dst.copy_from_slice(src);
    }
}

/// Inserts `start..end` into sorted disjoint ranges, merging overlapping and adjacent ones.
fn insert_range(ranges: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    let mut lo = start;
    let mut hi = end;
    // First range that ends at or after `start` (could touch or overlap).
    let first = ranges.partition_point(|&(_, b)| b < lo);
    let mut last = first;
    while let Some(&(a, b)) = ranges.get(last) {
        if a > hi {
            break;
        }
        lo = lo.min(a);
        hi = hi.max(b);
        last += 1;
    }
    ranges.splice(first..last, std::iter::once((lo, hi)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            id,
            proto: 17,
        }
    }

    fn frag(id: u16, ts: i64, offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            key: key(id),
            ts: Ts(ts),
            wire_len: data.len() as u32 + 34,
            offset,
            more,
            len: data.len() as u32,
            data,
            proto: Some(17),
        }
    }

    #[test]
    fn ranges_merge_overlapping_and_adjacent() {
        let mut r = Vec::new();
        insert_range(&mut r, 16, 24);
        insert_range(&mut r, 0, 8);
        assert_eq!(r, vec![(0, 8), (16, 24)]);
        insert_range(&mut r, 8, 16);
        assert_eq!(r, vec![(0, 24)]);
        insert_range(&mut r, 40, 48);
        insert_range(&mut r, 30, 50);
        assert_eq!(r, vec![(0, 24), (30, 50)]);
    }

    #[test]
    fn in_order_fragments_complete_with_all_bytes() {
        let mut d = Defrag::new(DefragLimits::default());
        let mut st = DecodeStats::default();
        assert_eq!(d.push(&frag(1, 0, 0, true, &[1; 8]), &mut st), None);
        let done = d.push(&frag(1, 5, 8, false, &[2; 4]), &mut st).unwrap();
        assert_eq!(done.len, 12);
        assert_eq!(done.frames, 2);
        assert_eq!(done.ts, Ts(5));
        assert_eq!(d.payload(), &[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.bytes, 0);
    }

    #[test]
    fn overlap_keeps_first_received_bytes() {
        let mut d = Defrag::new(DefragLimits::default());
        let mut st = DecodeStats::default();
        d.push(&frag(1, 0, 8, false, &[2; 8]), &mut st);
        d.push(&frag(1, 0, 4, true, &[9; 8]), &mut st);
        let done = d.push(&frag(1, 0, 0, true, &[1; 8]), &mut st).unwrap();
        assert_eq!(done.len, 16);
        assert_eq!(
            d.payload(),
            &[1, 1, 1, 1, 9, 9, 9, 9, 2, 2, 2, 2, 2, 2, 2, 2]
        );
        assert_eq!(st.fragment_overlaps, 2);
    }

    #[test]
    fn expire_drops_old_datagrams_only() {
        let mut d = Defrag::new(DefragLimits {
            timeout_ns: 10,
            ..Default::default()
        });
        let mut st = DecodeStats::default();
        d.push(&frag(1, 0, 0, true, &[1; 8]), &mut st);
        d.push(&frag(2, 8, 0, true, &[1; 8]), &mut st);
        d.expire(Ts(15), &mut st);
        assert_eq!(d.pending(), 1);
        assert_eq!(st.expired, 1);
        assert_eq!(st.fragment_frames_lost, 1);
    }

    #[test]
    fn datagram_limit_evicts_oldest() {
        let mut d = Defrag::new(DefragLimits {
            max_datagrams: 2,
            ..Default::default()
        });
        let mut st = DecodeStats::default();
        for id in 1..=3 {
            d.push(&frag(id, 0, 0, true, &[1; 8]), &mut st);
        }
        assert_eq!(d.pending(), 2);
        assert_eq!(st.dropped_over_limit, 1);
        assert!(!d.index.contains_key(&key(1)));
        // The evicted datagram's later fragment starts a new, incomplete one.
        assert_eq!(d.push(&frag(1, 0, 8, false, &[1; 8]), &mut st), None);
    }

    #[test]
    fn byte_limit_evicts_oldest_then_refuses_oversized() {
        let mut d = Defrag::new(DefragLimits {
            max_bytes: 24,
            ..Default::default()
        });
        let mut st = DecodeStats::default();
        d.push(&frag(1, 0, 0, true, &[1; 16]), &mut st);
        d.push(&frag(2, 0, 0, true, &[1; 16]), &mut st);
        assert_eq!(d.pending(), 1);
        assert!(d.index.contains_key(&key(2)));
        assert!(d.bytes <= 24);
        // Too big on its own: refused without evicting the others.
        d.push(&frag(3, 0, 0, true, &[1; 32]), &mut st);
        assert!(!d.index.contains_key(&key(3)));
        assert!(d.index.contains_key(&key(2)));
        assert_eq!(st.dropped_over_limit, 2);
        assert!(d.bytes <= 24);
    }

    #[test]
    fn too_many_holes_drop_the_datagram() {
        let mut d = Defrag::new(DefragLimits::default());
        let mut st = DecodeStats::default();
        for i in 0..=MAX_RANGES as u32 {
            d.push(&frag(1, 0, i * 16, true, &[1; 8]), &mut st);
        }
        assert_eq!(d.pending(), 0);
        assert_eq!(st.malformed.get(label::FRAG_TOO_MANY), Some(&1));
        assert_eq!(st.fragment_frames_lost, MAX_RANGES as u64 + 1);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn fragment_beyond_max_datagram_is_refused() {
        let mut d = Defrag::new(DefragLimits::default());
        let mut st = DecodeStats::default();
        assert_eq!(d.push(&frag(1, 0, 65_528, false, &[1; 16]), &mut st), None);
        assert_eq!(st.malformed.get(label::FRAG_TOO_BIG), Some(&1));
        assert_eq!(d.pending(), 0);
    }
}
