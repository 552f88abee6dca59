//! One direction's reassembly state: where its sequence space starts, the next byte to
//! deliver, the FIN position, and the out-of-order pieces held until the hole before them
//! fills.
//!
//! Positions are `u64` stream offsets (offset 0 is the first data byte, ISN+1), unwrapped from
//! 32-bit sequence numbers relative to the next expected byte, so streams longer than 4 GiB
//! and ISNs near `u32::MAX` need no special cases.
//!
//! Invariants kept between calls: held pieces do not overlap, are never empty, all start
//! strictly after `next`, and end at or before the FIN; `charged` is exactly what they are
//! charged to the budget. Must not: copy bytes that can be delivered at once.

use std::collections::BTreeMap;

use super::{
    ENTRY_OVERHEAD_BYTES, MAX_OOO_BYTES_PER_DIR, MAX_OOO_SEGMENTS_PER_DIR, MAX_SEGMENT_LEN,
    MAX_WINDOW_BYTES, ReassemblyBudget, StreamConsumer, StreamEnd, StreamStats,
};
use crate::decode::{TcpSegment, tcp_flags};
use crate::flow::Dir;
use crate::time::Ts;

/// A held out-of-order piece of the sequence space.
#[derive(Debug)]
enum Chunk {
    Data(Box<[u8]>),
    /// Sequence space a snaplen-truncated segment covered without its bytes: it will be
    /// reported as a gap when reached (first-wins, like data).
    Missing(u64),
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Data(bytes) => bytes.len() as u64,
            Chunk::Missing(n) => *n,
        }
    }

    fn charge(&self) -> usize {
        match self {
            Chunk::Data(bytes) => bytes.len().saturating_add(ENTRY_OVERHEAD_BYTES),
            Chunk::Missing(_) => ENTRY_OVERHEAD_BYTES,
        }
    }
}

/// A range of new sequence space from the segment being fed (borrowed, not yet copied).
#[derive(Clone, Copy)]
enum Piece<'a> {
    Data(&'a [u8]),
    Missing(u64),
}

impl<'a> Piece<'a> {
    fn len(self) -> u64 {
        match self {
            Piece::Data(bytes) => bytes.len() as u64,
            Piece::Missing(n) => n,
        }
    }

    /// The part `from..to` (relative to the piece's start), clamped to the piece.
    fn sub(self, from: u64, to: u64) -> Piece<'a> {
        let to = to.min(self.len());
        let from = from.min(to);
        match self {
            Piece::Data(bytes) => {
                let range = usize::try_from(from).unwrap_or(usize::MAX)
                    ..usize::try_from(to).unwrap_or(usize::MAX);
                Piece::Data(bytes.get(range).unwrap_or(&[]))
            }
            Piece::Missing(_) => Piece::Missing(to - from),
        }
    }

    /// Bytes charged to the budget for holding `len` of this piece.
    fn charge(self, len: u64) -> usize {
        match self {
            Piece::Data(_) => usize::try_from(len)
                .unwrap_or(usize::MAX)
                .saturating_add(ENTRY_OVERHEAD_BYTES),
            Piece::Missing(_) => ENTRY_OVERHEAD_BYTES,
        }
    }
}

/// Where delivered bytes go, with the direction and time of the current call.
struct Emit<'o, C: ?Sized> {
    dir: Dir,
    ts: Ts,
    out: &'o mut C,
}

/// Sequence bytes of one segment that were new versus already seen.
#[derive(Default)]
struct Tally {
    old: u64,
    new: u64,
}

#[derive(Debug, Default)]
pub(super) struct DirStream {
    /// Sequence number of stream offset 0 (ISN+1, or the first segment's seq without SYN).
    base: Option<u32>,
    /// Offset of the next byte to deliver (or report as gap).
    next: u64,
    /// Offset the FIN occupies: the stream's length.
    fin: Option<u64>,
    ended: bool,
    /// Held pieces by start offset.
    held: BTreeMap<u64, Chunk>,
    /// Bytes the held pieces are charged to the budget.
    charged: usize,
    stats: StreamStats,
}

impl DirStream {
    /// Sets where the stream starts before any segment is fed (`None`: unknown).
    pub(super) fn start_at(&mut self, start: Option<u32>) {
        if self.base.is_none() {
            self.base = start;
        }
    }

    pub(super) fn stats(&self) -> &StreamStats {
        &self.stats
    }

    pub(super) fn is_ended(&self) -> bool {
        self.ended
    }

    pub(super) fn buffered_bytes(&self) -> usize {
        self.charged
    }

    pub(super) fn next_offset(&self) -> u64 {
        self.next
    }

    pub(super) fn segment<C: StreamConsumer + ?Sized>(
        &mut self,
        dir: Dir,
        ts: Ts,
        seg: &TcpSegment<'_>,
        budget: &mut ReassemblyBudget,
        out: &mut C,
    ) {
        let em = &mut Emit { dir, ts, out };
        let syn = seg.flags & tcp_flags::SYN != 0;
        let fin = seg.flags & tcp_flags::FIN != 0;
        let rst = seg.flags & tcp_flags::RST != 0;
        // The SYN occupies the ISN; data starts one after it.
        let data_seq = seg.seq.wrapping_add(u32::from(syn));
        let base = match self.base {
            Some(base) => base,
            None => {
                // A bare ACK (or keep-alive) may sit one below the next byte, so only a
                // segment that occupies sequence space anchors a stream picked up mid-way.
                if self.ended || (!syn && !fin && !rst && seg.payload_len == 0) {
                    return;
                }
                self.base = Some(data_seq);
                data_seq
            }
        };
        if rst {
            // RST payload (diagnostic text, if any) is not stream data.
            if !self.ended {
                self.close(StreamEnd::Rst, budget, em);
            }
            return;
        }
        if seg.payload_len > MAX_SEGMENT_LEN {
            self.stats.anomalies += 1;
            return;
        }
        let len = u64::from(seg.payload_len);
        // Signed distance from the next expected byte, in the 2^32 window around it: this is
        // where sequence wrap-around is absorbed.
        let delta = i64::from(data_seq.wrapping_sub(base).wrapping_sub(self.next as u32) as i32);
        if delta == -1 && len <= 1 && !syn && !fin {
            self.stats.keepalives += 1;
            return;
        }
        if len == 0 && !fin {
            return;
        }
        let window = MAX_WINDOW_BYTES as i64;
        if delta > window || delta.saturating_add(len as i64) < -window {
            self.stats.anomalies += 1;
            return;
        }
        // `skip`: leading bytes that fall before offset 0 (only when the stream was anchored
        // on a later segment or the segment is bogus).
        let (start, skip) = if delta >= 0 {
            (self.next.saturating_add(delta.unsigned_abs()), 0)
        } else {
            let back = delta.unsigned_abs();
            match self.next.checked_sub(back) {
                Some(start) => (start, 0),
                None => (0, back - self.next),
            }
        };
        if skip > 0 {
            self.stats.anomalies += 1;
            if skip >= len {
                return;
            }
        }
        let end = start.saturating_add(len - skip);
        if self.ended {
            if end > self.next {
                self.stats.anomalies += 1;
            } else {
                self.stats.retransmitted_bytes += len;
            }
            return;
        }
        if fin {
            self.record_fin(end, budget);
        }
        let limit = self.fin.map_or(end, |f| end.min(f));
        if limit < end {
            self.stats.anomalies += 1;
        }

        let captured = seg
            .payload
            .get(
                ..seg
                    .payload
                    .len()
                    .min(usize::try_from(len).unwrap_or(usize::MAX)),
            )
            .unwrap_or(&[]);
        let captured = captured
            .get(usize::try_from(skip).unwrap_or(usize::MAX)..)
            .unwrap_or(&[]);
        let data = Piece::Data(captured).sub(0, limit.saturating_sub(start));
        let data_end = start + data.len();
        let missing = limit.saturating_sub(data_end);
        if start > self.next && limit > start {
            self.stats.out_of_order_segments += 1;
        }
        let mut tally = Tally::default();
        if data.len() > 0 {
            self.accept(start, data, &mut tally, budget, em);
        }
        if missing > 0 {
            // Snaplen cut: the uncaptured tail is a gap, not something to wait for.
            self.accept(
                data_end,
                Piece::Missing(missing),
                &mut Tally::default(),
                budget,
                em,
            );
        }
        self.stats.retransmitted_bytes += tally.old;
        if tally.old > 0 && tally.new > 0 {
            self.stats.overlaps += 1;
        }
        if self.fin.is_some_and(|f| self.next >= f) {
            self.end(StreamEnd::Fin, budget, em);
        }
    }

    pub(super) fn finish<C: StreamConsumer + ?Sized>(
        &mut self,
        dir: Dir,
        ts: Ts,
        how: StreamEnd,
        budget: &mut ReassemblyBudget,
        out: &mut C,
    ) {
        if !self.ended {
            self.close(how, budget, &mut Emit { dir, ts, out });
        }
    }

    /// Places `piece` (covering `start..start + len`) in the stream: delivered now if it
    /// reaches the next byte, otherwise held — or, if holding it would break a limit, the
    /// stream skips ahead until it can be delivered or held.
    fn accept<C: StreamConsumer + ?Sized>(
        &mut self,
        start: u64,
        piece: Piece<'_>,
        tally: &mut Tally,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        let end = start.saturating_add(piece.len());
        // Each pass returns, or shrinks the held set, or moves `next` up to `start`.
        loop {
            if end <= self.next {
                tally.old += piece.len();
                return;
            }
            if start <= self.next {
                self.deliver_through(start, piece, tally, budget, em);
                return;
            }
            let (charge, pieces, new) = self.measure(start, end, piece);
            if pieces == 0 {
                tally.old += piece.len();
                return;
            }
            let fits = self.charged.saturating_add(charge) <= MAX_OOO_BYTES_PER_DIR
                && self.held.len().saturating_add(pieces) <= MAX_OOO_SEGMENTS_PER_DIR
                && budget.can_take(charge);
            if fits {
                self.hold(start, end, piece, budget);
                tally.old += piece.len() - new;
                tally.new += new;
                return;
            }
            self.stats.forced_skips += 1;
            match self.held.first_key_value() {
                Some((&front, _)) if front < start => self.skip_to_front(budget, em),
                _ => self.gap_to(start, em),
            }
        }
    }

    /// Delivers `piece` (starting at or before `next`) from `next` to its end, interleaved with
    /// held pieces inside that range (which win: first-wins), then whatever held data became
    /// contiguous. The piece's own bytes go out borrowed.
    fn deliver_through<C: StreamConsumer + ?Sized>(
        &mut self,
        start: u64,
        piece: Piece<'_>,
        tally: &mut Tally,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        let end = start.saturating_add(piece.len());
        tally.old += self.next.saturating_sub(start);
        while self.next < end {
            let cur = self.next;
            match self.held.first_key_value().map(|(&s, _)| s) {
                Some(front) if front <= cur => {
                    let Some((front, chunk)) = self.pop_first(budget) else {
                        break;
                    };
                    tally.old += end
                        .min(front.saturating_add(chunk.len()))
                        .saturating_sub(cur);
                    self.emit_held(front, chunk, em);
                }
                front => {
                    let stop = front.map_or(end, |s| s.min(end));
                    tally.new += stop - cur;
                    self.emit_piece(piece.sub(cur - start, stop - start), em);
                }
            }
        }
        self.drain(budget, em);
    }

    /// Budget charge, number of held pieces and new bytes that holding `start..end` would add
    /// (only the parts not already held).
    fn measure(&self, start: u64, end: u64, piece: Piece<'_>) -> (usize, usize, u64) {
        let (mut charge, mut pieces, mut new) = (0usize, 0usize, 0u64);
        let mut cur = start;
        while let Some((a, b)) = self.next_unheld(cur, end) {
            charge = charge.saturating_add(piece.charge(b - a));
            pieces += 1;
            new += b - a;
            cur = b;
        }
        (charge, pieces, new)
    }

    /// Holds the parts of `piece` (at `start..end`) not already held — copying them.
    fn hold(&mut self, start: u64, end: u64, piece: Piece<'_>, budget: &mut ReassemblyBudget) {
        let mut cur = start;
        while let Some((a, b)) = self.next_unheld(cur, end) {
            cur = b;
            let chunk = match piece.sub(a - start, b - start) {
                Piece::Data(bytes) if !bytes.is_empty() => Chunk::Data(Box::from(bytes)),
                Piece::Missing(n) if n > 0 => Chunk::Missing(n),
                _ => continue,
            };
            self.put(a, chunk, budget);
        }
    }

    /// The first range at or after `cur` and before `end` that no held piece covers.
    fn next_unheld(&self, mut cur: u64, end: u64) -> Option<(u64, u64)> {
        loop {
            if cur >= end {
                return None;
            }
            if let Some((&s, chunk)) = self.held.range(..=cur).next_back() {
                let chunk_end = s.saturating_add(chunk.len());
                if chunk_end > cur {
                    cur = chunk_end;
                    continue;
                }
            }
            let stop = self
                .held
                .range(cur..)
                .next()
                .map_or(end, |(&s, _)| s.min(end));
            return Some((cur, stop));
        }
    }

    /// Records the FIN at `at`; first FIN wins. Held pieces beyond it are dropped.
    fn record_fin(&mut self, at: u64, budget: &mut ReassemblyBudget) {
        if let Some(fin) = self.fin {
            if fin != at {
                self.stats.anomalies += 1;
            }
            return;
        }
        if at < self.next {
            // Bytes past this FIN were already delivered: the FIN is the bogus one.
            self.stats.anomalies += 1;
            return;
        }
        self.fin = Some(at);
        while let Some((&s, chunk)) = self.held.last_key_value() {
            if s.saturating_add(chunk.len()) <= at {
                break;
            }
            self.stats.anomalies += 1;
            let Some((s, chunk)) = self.pop_last(budget) else {
                break;
            };
            if s < at {
                let keep = at - s;
                let trimmed = match chunk {
                    Chunk::Data(bytes) => {
                        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
                        Chunk::Data(Box::from(bytes.get(..keep).unwrap_or(&[])))
                    }
                    Chunk::Missing(_) => Chunk::Missing(keep),
                };
                // Smaller than what was just released, so the budget holds.
                self.put(s, trimmed, budget);
            }
        }
    }

    /// Ends the direction: flushes held pieces (gaps before them), fills up to a seen FIN
    /// with a gap, then `on_end` — `Fin` if the FIN was seen, else `how`.
    fn close<C: StreamConsumer + ?Sized>(
        &mut self,
        how: StreamEnd,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        while !self.held.is_empty() {
            self.skip_to_front(budget, em);
        }
        let how = match self.fin {
            Some(fin) => {
                self.gap_to(fin, em);
                StreamEnd::Fin
            }
            None => how,
        };
        self.end(how, budget, em);
    }

    fn end<C: StreamConsumer + ?Sized>(
        &mut self,
        how: StreamEnd,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        while self.pop_first(budget).is_some() {}
        self.ended = true;
        em.out.on_end(em.dir, em.ts, how);
    }

    /// Reports the hole before the first held piece as a gap and delivers from there.
    fn skip_to_front<C: StreamConsumer + ?Sized>(
        &mut self,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        if let Some((&front, _)) = self.held.first_key_value() {
            self.gap_to(front, em);
        }
        self.drain(budget, em);
    }

    /// Delivers held pieces while they start at or before `next`.
    fn drain<C: StreamConsumer + ?Sized>(
        &mut self,
        budget: &mut ReassemblyBudget,
        em: &mut Emit<'_, C>,
    ) {
        while self
            .held
            .first_key_value()
            .is_some_and(|(&s, _)| s <= self.next)
        {
            let Some((start, chunk)) = self.pop_first(budget) else {
                break;
            };
            self.emit_held(start, chunk, em);
        }
    }

    fn gap_to<C: StreamConsumer + ?Sized>(&mut self, target: u64, em: &mut Emit<'_, C>) {
        if target > self.next {
            self.emit_piece(Piece::Missing(target - self.next), em);
        }
    }

    /// Emits a held piece, minus any front part already passed (defensive: the invariants say
    /// there is none).
    fn emit_held<C: StreamConsumer + ?Sized>(
        &mut self,
        start: u64,
        chunk: Chunk,
        em: &mut Emit<'_, C>,
    ) {
        let piece = match &chunk {
            Chunk::Data(bytes) => Piece::Data(bytes),
            Chunk::Missing(n) => Piece::Missing(*n),
        };
        let passed = self.next.saturating_sub(start);
        self.emit_piece(piece.sub(passed, piece.len()), em);
    }

    /// Hands `piece` to the consumer at `next` and advances past it.
    fn emit_piece<C: StreamConsumer + ?Sized>(&mut self, piece: Piece<'_>, em: &mut Emit<'_, C>) {
        let n = piece.len();
        if n == 0 {
            return;
        }
        match piece {
            Piece::Data(bytes) => {
                self.stats.bytes_delivered += n;
                em.out.on_data(em.dir, em.ts, bytes);
            }
            Piece::Missing(_) => {
                self.stats.gaps += 1;
                self.stats.gap_bytes += n;
                em.out.on_gap(em.dir, em.ts, n);
            }
        }
        self.next = self.next.saturating_add(n);
    }

    fn put(&mut self, start: u64, chunk: Chunk, budget: &mut ReassemblyBudget) {
        let charge = chunk.charge();
        self.charged = self.charged.saturating_add(charge);
        budget.take(charge);
        self.held.insert(start, chunk);
    }

    fn pop_first(&mut self, budget: &mut ReassemblyBudget) -> Option<(u64, Chunk)> {
        let (start, chunk) = self.held.pop_first()?;
        self.release(&chunk, budget);
        Some((start, chunk))
    }

    fn pop_last(&mut self, budget: &mut ReassemblyBudget) -> Option<(u64, Chunk)> {
        let (start, chunk) = self.held.pop_last()?;
        self.release(&chunk, budget);
        Some((start, chunk))
    }

    fn release(&mut self, chunk: &Chunk, budget: &mut ReassemblyBudget) {
        let charge = chunk.charge();
        self.charged = self.charged.saturating_sub(charge);
        budget.release(charge);
    }
}
