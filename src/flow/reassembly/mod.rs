//! TCP stream reassembly: turns one TCP flow's segments, in capture order, into two ordered
//! byte streams (one per [`Dir`]) handed to a [`StreamConsumer`].
//!
//! Sans-IO: driven by [`TcpReassembler::segment`] and [`TcpReassembler::finish`] with capture
//! time; it never reads a clock.
//!
//! Guarantees:
//! - A consumer sees each direction's sequence space exactly once and in order: every byte
//!   position is either delivered by `on_data` or counted in an `on_gap`, never both, never
//!   twice. Each direction gets exactly one `on_end`, after which it gets nothing more.
//! - Overlaps are **first-wins**: bytes already delivered or already buffered are never
//!   replaced by a later segment carrying different content; only the new bytes of a partially
//!   overlapping segment are used. (Delivered bytes cannot be taken back, so first-wins is the
//!   only policy that is the same whether or not the earlier copy has left the buffer yet.)
//!   The same holds for the uncaptured tail of a snaplen-truncated segment: it is reported as
//!   a gap and a later full copy does not refill it.
//! - Memory is bounded: per direction by [`MAX_OOO_BYTES_PER_DIR`] and
//!   [`MAX_OOO_SEGMENTS_PER_DIR`], across all flows by a shared [`ReassemblyBudget`]. When a
//!   limit would be exceeded the stream skips ahead (reports a gap and delivers what it holds)
//!   instead of growing.
//! - The in-order fast path (a segment at the next expected byte with nothing buffered)
//!   delivers the borrowed payload slice directly: no copy, no allocation. Only out-of-order
//!   bytes are copied.
//! - Never panics on any segment: sequence numbers are unwrapped with wrapping `u32`
//!   arithmetic around the next expected byte, payload slicing is checked.
//!
//! Must not: look at application bytes, validate checksums, or track the other side's ACKs
//! (it reassembles what was captured, not what the receiver accepted). The flow table owns
//! timeouts and must call [`TcpReassembler::finish`] before dropping a reassembler, or the
//! bytes it buffers stay charged to the budget.

mod dir;

#[cfg(test)]
mod tests;

use crate::decode::TcpSegment;
use crate::flow::Dir;
use crate::time::Ts;

use dir::DirStream;

/// Per direction: most bytes held out of order (payload plus [`ENTRY_OVERHEAD_BYTES`] per
/// held piece) before the stream skips ahead.
pub const MAX_OOO_BYTES_PER_DIR: usize = 1 << 20;

/// Per direction: most out-of-order pieces held before the stream skips ahead. Bounds the
/// buffer's bookkeeping even for one-byte segments.
pub const MAX_OOO_SEGMENTS_PER_DIR: usize = 1024;

/// A segment starting more than this many bytes ahead of (or ending this far behind) the
/// next expected byte is an anomaly and is dropped: real receive windows are at most
/// 1 GiB (RFC 7323 §2.3: window scale ≤ 14, so 2^30 bytes).
pub const MAX_WINDOW_BYTES: u64 = 1 << 30;

/// A segment claiming a payload longer than this is an anomaly and is dropped. IPv4 and
/// non-jumbo IPv6 carry at most 64 KiB; offloaded (TSO/GRO) captures reach a few hundred KiB.
pub const MAX_SEGMENT_LEN: u32 = 16 << 20;

/// Bookkeeping cost charged per held out-of-order piece (map node and box header), so that
/// many tiny segments cannot hide memory from the budget.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// How a direction's stream ended.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamEnd {
    /// The direction's FIN was seen and every byte before it was delivered or reported as a
    /// gap.
    Fin,
    /// The direction sent a RST.
    Rst,
    /// The flow table timed the flow out.
    Timeout,
    /// The flow table evicted the flow to stay within its caps.
    Evicted,
}

impl StreamEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Fin => "fin",
            StreamEnd::Rst => "rst",
            StreamEnd::Timeout => "timeout",
            StreamEnd::Evicted => "evicted",
        }
    }
}

/// Receives a flow's reassembled byte streams.
///
/// Per direction the calls form `(on_data | on_gap)* on_end`: the bytes of `on_data` and the
/// counts of `on_gap` together cover the sequence space from the first byte onwards, in
/// order, without overlap. `ts` is the capture time of the segment (or `finish` call) that
/// made the bytes deliverable — for buffered bytes that is when the hole before them filled,
/// as a receiving stack would see it.
pub trait StreamConsumer {
    /// The next `data.len()` bytes of `dir`'s stream.
    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]);
    /// The next `missing` bytes of `dir`'s stream were not captured (lost, cut by the
    /// snaplen, or skipped to stay within the buffer limits). `missing > 0`.
    fn on_gap(&mut self, dir: Dir, ts: Ts, missing: u64);
    /// `dir`'s stream is over; nothing more will be delivered for it.
    fn on_end(&mut self, dir: Dir, ts: Ts, how: StreamEnd);
}

/// Memory shared by all reassemblers: bytes held out of order, across every stream.
///
/// One per flow table; every [`TcpReassembler`] call takes it by `&mut`. Only reassemblers
/// change `used_bytes`, and they never push it past `max_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyBudget {
    used_bytes: usize,
    max_bytes: usize,
}

impl ReassemblyBudget {
    /// Default cap across all streams.
    pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

    pub fn new(max_bytes: usize) -> ReassemblyBudget {
        ReassemblyBudget {
            used_bytes: 0,
            max_bytes,
        }
    }

    /// Bytes currently held (payload plus per-piece overhead) by all reassemblers.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn can_take(&self, bytes: usize) -> bool {
        self.used_bytes
            .checked_add(bytes)
            .is_some_and(|total| total <= self.max_bytes)
    }

    fn take(&mut self, bytes: usize) {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
    }

    fn release(&mut self, bytes: usize) {
        self.used_bytes = self.used_bytes.saturating_sub(bytes);
    }
}

impl Default for ReassemblyBudget {
    fn default() -> Self {
        ReassemblyBudget::new(Self::DEFAULT_MAX_BYTES)
    }
}

/// Per-direction counters, for flow records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes handed to `on_data`.
    pub bytes_delivered: u64,
    /// `on_gap` calls.
    pub gaps: u64,
    /// Bytes reported missing by `on_gap`.
    pub gap_bytes: u64,
    /// Captured payload bytes that had already been delivered or buffered (retransmissions
    /// and the overlapping part of partial overlaps).
    pub retransmitted_bytes: u64,
    /// Segments carrying both already-seen and new bytes.
    pub overlaps: u64,
    /// Segments that arrived ahead of a hole and had to be buffered.
    pub out_of_order_segments: u64,
    /// Keep-alive probes (one sequence number below the next expected byte) ignored.
    pub keepalives: u64,
    /// Times a buffer limit (per direction or the global budget) forced a skip ahead.
    pub forced_skips: u64,
    /// Segments (or parts) dropped as implausible: far outside the window, longer than
    /// [`MAX_SEGMENT_LEN`], before the stream's first byte, beyond the FIN, a second FIN at a
    /// different position, or new data after the direction ended.
    pub anomalies: u64,
}

/// Reassembles both directions of one TCP flow.
///
/// Create one per flow that has a consumer; feed every TCP segment of the flow with its
/// direction; call [`finish`](Self::finish) when the flow ends (timeout, eviction, end of
/// capture) before dropping it.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    dirs: [DirStream; 2],
}

impl TcpReassembler {
    pub fn new() -> TcpReassembler {
        TcpReassembler::default()
    }

    /// A reassembler whose streams start at the given sequence numbers (ISN + 1 per
    /// direction, from a handshake seen before any payload); `None` anchors that direction on
    /// its first segment, as [`TcpReassembler::new`] does.
    pub fn starting_at(starts: [Option<u32>; 2]) -> TcpReassembler {
        let mut r = TcpReassembler::default();
        for (d, start) in r.dirs.iter_mut().zip(starts) {
            d.start_at(start);
        }
        r
    }

    /// Feeds one segment sent in direction `dir`, captured at `ts`. Delivers whatever became
    /// in order to `out`; may end the direction (FIN reached, RST).
    pub fn segment<C: StreamConsumer + ?Sized>(
        &mut self,
        dir: Dir,
        ts: Ts,
        seg: &TcpSegment<'_>,
        budget: &mut ReassemblyBudget,
        out: &mut C,
    ) {
        self.dir_mut(dir).segment(dir, ts, seg, budget, out);
    }

    /// Ends both directions that have not ended yet: delivers the data still buffered (after
    /// an `on_gap` for each hole before it), reports a gap up to a FIN seen beyond a hole, then
    /// calls `on_end` — with [`StreamEnd::Fin`] when the direction's FIN was seen, else `how`.
    /// Releases all buffered bytes from `budget`. Calling it again does nothing.
    pub fn finish<C: StreamConsumer + ?Sized>(
        &mut self,
        ts: Ts,
        how: StreamEnd,
        budget: &mut ReassemblyBudget,
        out: &mut C,
    ) {
        for dir in [Dir::Orig, Dir::Resp] {
            self.dir_mut(dir).finish(dir, ts, how, budget, out);
        }
    }

    pub fn stats(&self, dir: Dir) -> &StreamStats {
        self.dir(dir).stats()
    }

    /// Whether `dir`'s stream has had its `on_end`.
    pub fn is_ended(&self, dir: Dir) -> bool {
        self.dir(dir).is_ended()
    }

    /// Bytes `dir` holds out of order (as charged to the budget).
    pub fn buffered_bytes(&self, dir: Dir) -> usize {
        self.dir(dir).buffered_bytes()
    }

    /// Stream offset of the next byte `dir` will deliver: delivered plus gap bytes.
    pub fn next_offset(&self, dir: Dir) -> u64 {
        self.dir(dir).next_offset()
    }

    fn dir(&self, dir: Dir) -> &DirStream {
        let [orig, resp] = &self.dirs;
        match dir {
            Dir::Orig => orig,
            Dir::Resp => resp,
        }
    }

    fn dir_mut(&mut self, dir: Dir) -> &mut DirStream {
        let [orig, resp] = &mut self.dirs;
        match dir {
            Dir::Orig => orig,
            Dir::Resp => resp,
        }
    }
}
