//! Tests for TCP reassembly: one unit test per behaviour, then property tests over random
//! segmentations, orders, duplicates, overlaps, drops and adversarial input.

use super::*;
use crate::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use proptest::prelude::*;

/// Records each direction's stream: bytes (unless counting only), gaps with their offsets,
/// ends, and any call made after the end.
#[derive(Default)]
struct Collect {
    count_only: bool,
    dirs: [Side; 2],
}

#[derive(Default, Debug)]
struct Side {
    bytes: Vec<u8>,
    /// (stream offset, length) of each gap.
    gaps: Vec<(u64, u64)>,
    ends: Vec<StreamEnd>,
    /// Delivered plus gap bytes so far.
    offset: u64,
    calls_after_end: u32,
    last_data_ptr: usize,
}

impl Collect {
    fn side(&mut self, dir: Dir) -> &mut Side {
        &mut self.dirs[dir.index()]
    }
}

impl StreamConsumer for Collect {
    fn on_data(&mut self, dir: Dir, _ts: Ts, data: &[u8]) {
        let keep = !self.count_only;
        let side = self.side(dir);
        assert!(!data.is_empty(), "empty on_data");
        if !side.ends.is_empty() {
            side.calls_after_end += 1;
        }
        if keep {
            side.bytes.extend_from_slice(data);
        }
        side.offset += data.len() as u64;
        side.last_data_ptr = data.as_ptr() as usize;
    }

    fn on_gap(&mut self, dir: Dir, _ts: Ts, missing: u64) {
        let side = self.side(dir);
        assert!(missing > 0, "empty on_gap");
        if !side.ends.is_empty() {
            side.calls_after_end += 1;
        }
        side.gaps.push((side.offset, missing));
        side.offset += missing;
    }

    fn on_end(&mut self, dir: Dir, _ts: Ts, how: StreamEnd) {
        let side = self.side(dir);
        if !side.ends.is_empty() {
            side.calls_after_end += 1;
        }
        side.ends.push(how);
    }
}

/// A reassembler with its budget and a collecting consumer.
struct Rig {
    r: TcpReassembler,
    budget: ReassemblyBudget,
    c: Collect,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_budget(ReassemblyBudget::default())
    }

    fn with_budget(budget: ReassemblyBudget) -> Rig {
        Rig {
            r: TcpReassembler::new(),
            budget,
            c: Collect::default(),
        }
    }

    fn feed(&mut self, dir: Dir, seq: u32, flags: u8, payload: &[u8]) {
        self.feed_claimed(dir, seq, flags, payload, payload.len() as u32);
    }

    /// Feeds a segment whose IP header claims `claimed` payload bytes.
    fn feed_claimed(&mut self, dir: Dir, seq: u32, flags: u8, payload: &[u8], claimed: u32) {
        let seg = seg(seq, flags, payload, claimed);
        self.r
            .segment(dir, Ts(0), &seg, &mut self.budget, &mut self.c);
        self.check_invariants();
    }

    fn finish(&mut self, how: StreamEnd) {
        self.r.finish(Ts(1), how, &mut self.budget, &mut self.c);
        self.check_invariants();
    }

    #[track_caller]
    fn check_invariants(&self) {
        assert!(self.budget.used_bytes() <= self.budget.max_bytes());
        let held = self.r.buffered_bytes(Dir::Orig) + self.r.buffered_bytes(Dir::Resp);
        assert_eq!(held, self.budget.used_bytes());
        for dir in [Dir::Orig, Dir::Resp] {
            assert!(self.r.buffered_bytes(dir) <= MAX_OOO_BYTES_PER_DIR);
            let side = &self.c.dirs[dir.index()];
            assert_eq!(side.offset, self.r.next_offset(dir));
            assert_eq!(side.calls_after_end, 0);
            let stats = self.r.stats(dir);
            assert_eq!(stats.bytes_delivered + stats.gap_bytes, side.offset);
            assert_eq!(stats.gaps, side.gaps.len() as u64);
        }
    }

    fn side(&self, dir: Dir) -> &Side {
        &self.c.dirs[dir.index()]
    }

    fn bytes(&self, dir: Dir) -> &[u8] {
        &self.side(dir).bytes
    }
}

fn seg(seq: u32, flags: u8, payload: &[u8], claimed: u32) -> TcpSegment<'_> {
    TcpSegment {
        src_port: 40000,
        dst_port: 443,
        seq,
        ack: 0,
        flags,
        window: 65535,
        payload_len: claimed,
        payload,
    }
}

const O: Dir = Dir::Orig;
const R: Dir = Dir::Resp;

#[test]
fn in_order_fast_path_delivers_the_borrowed_payload() {
    let mut rig = Rig::new();
    rig.feed(O, 100, SYN, b"");
    let payload = b"hello".to_vec();
    rig.feed(O, 101, ACK | PSH, &payload);
    assert_eq!(rig.bytes(O), b"hello");
    assert_eq!(rig.side(O).last_data_ptr, payload.as_ptr() as usize);
    assert_eq!(rig.budget.used_bytes(), 0);
}

#[test]
fn syn_consumes_one_sequence_number() {
    let mut rig = Rig::new();
    rig.feed(O, 100, SYN, b"");
    rig.feed(O, 101, ACK, b"abc");
    rig.feed(O, 104, ACK, b"def");
    assert_eq!(rig.bytes(O), b"abcdef");
    assert!(rig.side(O).gaps.is_empty());
    assert_eq!(rig.r.next_offset(O), 6);
}

#[test]
fn data_on_syn_is_delivered_after_the_isn() {
    let mut rig = Rig::new();
    rig.feed(O, 100, SYN, b"hi");
    rig.feed(O, 103, ACK, b"yo");
    assert_eq!(rig.bytes(O), b"hiyo");
}

#[test]
fn first_segment_anchors_the_stream_when_syn_was_not_captured() {
    let mut rig = Rig::new();
    rig.feed(R, 5000, ACK, b"abc");
    rig.feed(R, 5003, ACK, b"def");
    assert_eq!(rig.bytes(R), b"abcdef");
    assert!(rig.side(R).gaps.is_empty());
}

#[test]
fn known_stream_starts_keep_an_early_out_of_order_segment_from_anchoring() {
    // The handshake was seen before any payload (`starting_at`), so a later segment
    // arriving first waits for the bytes before it instead of becoming offset 0.
    let mut rig = Rig::new();
    rig.r = TcpReassembler::starting_at([Some(1001), Some(5001)]);
    rig.feed(R, 5004, ACK | PSH, b"def");
    assert_eq!(rig.bytes(R), b"");
    rig.feed(R, 5001, ACK | PSH, b"abc");
    rig.feed(O, 1001, ACK | PSH, b"x");
    assert_eq!(rig.bytes(R), b"abcdef");
    assert_eq!(rig.bytes(O), b"x");
    assert!(rig.side(R).gaps.is_empty());
    // Without the starts the first segment anchors: the earlier bytes are lost.
    let mut rig = Rig::new();
    rig.feed(R, 5004, ACK | PSH, b"def");
    rig.feed(R, 5001, ACK | PSH, b"abc");
    assert_eq!(rig.bytes(R), b"def");
}

#[test]
fn bare_ack_does_not_anchor_the_stream() {
    let mut rig = Rig::new();
    // A keep-alive-like bare ACK one below the real next byte must not become offset 0.
    rig.feed(R, 4999, ACK, b"");
    rig.feed(R, 5000, ACK, b"abc");
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.bytes(R), b"abc");
    assert!(rig.side(R).gaps.is_empty());
}

#[test]
fn out_of_order_segment_is_held_until_the_hole_fills() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 4, ACK, b"def");
    assert_eq!(rig.bytes(O), b"");
    assert!(rig.r.buffered_bytes(O) > 0);
    assert_eq!(rig.r.stats(O).out_of_order_segments, 1);
    rig.feed(O, 1, ACK, b"abc");
    assert_eq!(rig.bytes(O), b"abcdef");
    assert_eq!(rig.r.buffered_bytes(O), 0);
    assert_eq!(rig.budget.used_bytes(), 0);
}

#[test]
fn exact_retransmission_is_ignored_and_counted() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abc");
    rig.feed(O, 1, ACK, b"abc");
    // A duplicate of a held segment is not held twice.
    rig.feed(O, 7, ACK, b"ghi");
    rig.feed(O, 7, ACK, b"ghi");
    rig.feed(O, 4, ACK, b"def");
    assert_eq!(rig.bytes(O), b"abcdefghi");
    let stats = rig.r.stats(O);
    assert_eq!(stats.retransmitted_bytes, 6);
    assert_eq!(stats.overlaps, 0);
}

#[test]
fn partial_overlap_delivers_only_new_bytes_first_wins() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abcd");
    // Re-sends "cd" with different content: the first copy (already delivered) stands.
    rig.feed(O, 3, ACK, b"XXef");
    assert_eq!(rig.bytes(O), b"abcdef");
    let stats = rig.r.stats(O);
    assert_eq!(stats.retransmitted_bytes, 2);
    assert_eq!(stats.overlaps, 1);
}

#[test]
fn overlap_with_held_bytes_keeps_the_first_copy() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 5, ACK, b"efg"); // offsets 4..7, held
    rig.feed(O, 3, ACK, b"cdZZZh"); // offsets 2..8: only 2..4 and 7..8 are new
    assert_eq!(rig.bytes(O), b"");
    rig.feed(O, 1, ACK, b"ab");
    assert_eq!(rig.bytes(O), b"abcdefgh");
    let stats = rig.r.stats(O);
    assert_eq!(stats.retransmitted_bytes, 3);
    assert_eq!(stats.overlaps, 1);
}

#[test]
fn in_order_segment_yields_to_held_bytes_it_overlaps() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 3, ACK, b"CD"); // offsets 2..4, held
    rig.feed(O, 1, ACK, b"abxxe"); // offsets 0..5
    assert_eq!(rig.bytes(O), b"abCDe");
    assert_eq!(rig.r.stats(O).retransmitted_bytes, 2);
    assert_eq!(rig.budget.used_bytes(), 0);
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut rig = Rig::new();
    rig.feed(O, u32::MAX - 2, SYN, b"");
    rig.feed(O, 4, ACK, b"ghi"); // after the wrap, out of order
    rig.feed(O, u32::MAX - 1, ACK, b"abc"); // covers MAX-1, MAX, 0
    rig.feed(O, 1, ACK, b"def");
    rig.feed(O, 7, FIN | ACK, b"");
    assert_eq!(rig.bytes(O), b"abcdefghi");
    assert!(rig.side(O).gaps.is_empty());
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
}

#[test]
fn stream_longer_than_4_gib_keeps_unwrapping() {
    let mut rig = Rig::new();
    rig.c.count_only = true;
    let chunk = vec![7u8; 60_000];
    let total: u64 = (1 << 32) + 600_000;
    let mut seq: u32 = 1000;
    rig.feed(O, seq, SYN, b"");
    seq = seq.wrapping_add(1);
    let mut sent = 0u64;
    while sent < total {
        rig.feed(O, seq, ACK, &chunk);
        seq = seq.wrapping_add(chunk.len() as u32);
        sent += chunk.len() as u64;
    }
    // A segment sent after the wrap but captured out of order, then its predecessor.
    rig.feed(O, seq.wrapping_add(10), ACK, b"bcd");
    rig.feed(O, seq, ACK, b"0123456789");
    assert_eq!(rig.r.next_offset(O), sent + 13);
    assert!(rig.side(O).gaps.is_empty());
    assert_eq!(rig.r.stats(O).anomalies, 0);
}

#[test]
fn zero_length_segments_change_nothing() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abc");
    rig.feed(O, 4, ACK, b"");
    rig.feed(O, 50, ACK, b"");
    rig.feed(O, 0x8000_0000, ACK, b"");
    assert_eq!(rig.bytes(O), b"abc");
    assert_eq!(
        rig.r.stats(O),
        &StreamStats {
            bytes_delivered: 3,
            ..StreamStats::default()
        }
    );
    assert!(rig.side(O).ends.is_empty());
}

#[test]
fn fin_ends_the_direction_once_all_data_is_delivered() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abc");
    rig.feed(O, 4, FIN | ACK, b"de");
    assert_eq!(rig.bytes(O), b"abcde");
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
    assert!(rig.r.is_ended(O));
    assert!(!rig.r.is_ended(R));
    rig.feed(O, 4, FIN | ACK, b"de"); // retransmitted FIN
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
    assert_eq!(rig.side(R).ends, [StreamEnd::Timeout]);
}

#[test]
fn fin_ahead_of_a_hole_waits_for_the_hole() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 4, FIN | ACK, b"");
    assert!(rig.side(O).ends.is_empty());
    rig.feed(O, 1, ACK, b"abc");
    assert_eq!(rig.bytes(O), b"abc");
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
}

#[test]
fn data_beyond_the_fin_is_dropped_as_anomaly() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 6, ACK, b"xyz"); // offsets 5..8, held
    rig.feed(O, 4, FIN | ACK, b""); // the stream is 3 bytes long
    assert_eq!(rig.budget.used_bytes(), 0);
    rig.feed(O, 1, ACK, b"abcde"); // the 2 bytes past the FIN are dropped
    assert_eq!(rig.bytes(O), b"abc");
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
    assert_eq!(rig.r.stats(O).anomalies, 2);
    rig.feed(O, 4, ACK, b"late"); // after the end
    assert_eq!(rig.r.stats(O).anomalies, 3);
}

#[test]
fn second_fin_at_another_position_is_an_anomaly() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 8, FIN, b"");
    rig.feed(O, 6, FIN, b"");
    rig.feed(O, 1, ACK, b"abcdefg");
    assert_eq!(rig.bytes(O), b"abcdefg");
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
    assert_eq!(rig.r.stats(O).anomalies, 1);
}

#[test]
fn rst_ends_the_direction_and_flushes_held_data_after_a_gap() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 4, ACK, b"def");
    rig.feed(O, 7, RST | ACK, b"reset reason");
    assert_eq!(rig.bytes(O), b"def");
    assert_eq!(rig.side(O).gaps, [(0, 3)]);
    assert_eq!(rig.side(O).ends, [StreamEnd::Rst]);
    assert!(!rig.r.is_ended(R));
    assert_eq!(rig.budget.used_bytes(), 0);
    rig.feed(O, 1, ACK, b"abc"); // too late
    rig.feed(O, 7, RST, b"");
    assert_eq!(rig.side(O).ends, [StreamEnd::Rst]);
    assert_eq!(rig.bytes(O), b"def");
}

#[test]
fn rst_as_first_segment_ends_the_direction() {
    let mut rig = Rig::new();
    rig.feed(O, 10, SYN, b"");
    rig.feed(R, 0, RST | ACK, b"");
    assert_eq!(rig.side(R).ends, [StreamEnd::Rst]);
    assert!(!rig.r.is_ended(O));
}

#[test]
fn truncated_segment_delivers_captured_bytes_and_gaps_the_rest() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed_claimed(O, 1, ACK, b"abcd", 10);
    assert_eq!(rig.bytes(O), b"abcd");
    assert_eq!(rig.side(O).gaps, [(4, 6)]);
    rig.feed(O, 11, ACK, b"xyz");
    assert_eq!(rig.bytes(O), b"abcdxyz");
    assert_eq!(rig.r.next_offset(O), 13);
}

#[test]
fn truncated_out_of_order_segment_reports_its_gap_in_order() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed_claimed(O, 4, ACK, b"de", 5); // offsets 3..5 captured, 5..8 not
    rig.feed(O, 9, ACK, b"ijk"); // offsets 8..11
    assert!(rig.side(O).gaps.is_empty());
    rig.feed(O, 1, ACK, b"abc");
    assert_eq!(rig.bytes(O), b"abcdeijk");
    assert_eq!(rig.side(O).gaps, [(5, 3)]);
    assert_eq!(rig.budget.used_bytes(), 0);
}

#[test]
fn held_snaplen_gap_is_not_refilled_by_a_later_copy() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed_claimed(O, 4, ACK, b"d", 3); // offsets 3..4 captured, 4..6 not
    rig.feed(O, 4, ACK, b"DEF"); // first-wins: the held "missing" range stands
    rig.feed(O, 1, ACK, b"abc");
    assert_eq!(rig.bytes(O), b"abcd");
    assert_eq!(rig.side(O).gaps, [(4, 2)]);
}

#[test]
fn works_through_a_dyn_consumer() {
    let mut r = TcpReassembler::new();
    let mut budget = ReassemblyBudget::default();
    let mut c = Collect::default();
    let out: &mut dyn StreamConsumer = &mut c;
    r.segment(R, Ts(5), &seg(7, ACK, b"abc", 3), &mut budget, out);
    r.finish(Ts(6), StreamEnd::Timeout, &mut budget, out);
    assert_eq!(c.dirs[1].bytes, b"abc");
    assert_eq!(c.dirs[1].ends, [StreamEnd::Timeout]);
}

#[test]
fn payload_longer_than_claimed_is_cut_to_the_claim() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed_claimed(O, 1, ACK, b"abc\0\0\0", 3); // Ethernet padding
    rig.feed(O, 4, ACK, b"def");
    assert_eq!(rig.bytes(O), b"abcdef");
}

#[test]
fn keepalive_probe_is_ignored() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abc");
    rig.feed(O, 3, ACK, b"\0"); // one byte below the next, garbage content
    rig.feed(O, 3, ACK, b""); // zero-length variant
    rig.feed(O, 4, ACK, b"d");
    assert_eq!(rig.bytes(O), b"abcd");
    let stats = rig.r.stats(O);
    assert_eq!(stats.keepalives, 2);
    assert_eq!(stats.retransmitted_bytes, 0);
}

#[test]
fn segment_far_outside_the_window_is_dropped_as_anomaly() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 1, ACK, b"abc");
    rig.feed(O, 4 + (1 << 30) + 1, ACK, b"far ahead");
    rig.feed(O, 4u32.wrapping_sub((1 << 30) + 100), ACK, b"far behind");
    rig.feed_claimed(O, 4, ACK, b"huge", MAX_SEGMENT_LEN + 1);
    assert_eq!(rig.r.stats(O).anomalies, 3);
    assert_eq!(rig.budget.used_bytes(), 0);
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.bytes(O), b"abc");
    assert!(rig.side(O).gaps.is_empty());
}

#[test]
fn data_before_the_first_byte_is_an_anomaly() {
    let mut rig = Rig::new();
    rig.feed(O, 100, SYN, b"");
    rig.feed(O, 98, ACK, b"xyzab"); // offsets -3..2
    assert_eq!(rig.bytes(O), b"ab");
    assert_eq!(rig.r.stats(O).anomalies, 1);
}

#[test]
fn per_direction_byte_cap_skips_ahead() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    let chunk = vec![1u8; 60_000];
    let mut seq = 11u32; // leaves a 10-byte hole at offsets 0..10
    let n = MAX_OOO_BYTES_PER_DIR / chunk.len() + 2;
    for _ in 0..n {
        rig.feed(O, seq, ACK, &chunk);
        seq += chunk.len() as u32;
    }
    let stats = rig.r.stats(O);
    assert_eq!(stats.forced_skips, 1);
    assert_eq!(rig.side(O).gaps, [(0, 10)]);
    assert_eq!(stats.bytes_delivered, (n * chunk.len()) as u64);
    assert_eq!(rig.budget.used_bytes(), 0);
}

#[test]
fn per_direction_segment_cap_skips_ahead() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    // One-byte segments at odd offsets: each leaves a one-byte hole before it.
    for k in 0..=MAX_OOO_SEGMENTS_PER_DIR as u32 {
        rig.feed(O, 2 + 2 * k, ACK, b"x");
    }
    let stats = rig.r.stats(O);
    assert_eq!(stats.forced_skips, 1);
    assert_eq!(rig.side(O).gaps, [(0, 1)]);
    assert_eq!(rig.bytes(O), b"x");
    assert_eq!(
        rig.r.buffered_bytes(O),
        MAX_OOO_SEGMENTS_PER_DIR * (1 + ENTRY_OVERHEAD_BYTES)
    );
}

#[test]
fn exhausted_global_budget_skips_ahead_without_holding() {
    let mut rig = Rig::with_budget(ReassemblyBudget::new(100));
    rig.feed(O, 0, SYN, b"");
    let payload = [b'y'; 50];
    rig.feed(O, 11, ACK, &payload); // charge 114 > 100
    assert_eq!(rig.side(O).gaps, [(0, 10)]);
    assert_eq!(rig.bytes(O), payload);
    assert_eq!(rig.side(O).last_data_ptr, payload.as_ptr() as usize);
    assert_eq!(rig.budget.used_bytes(), 0);
    assert_eq!(rig.r.stats(O).forced_skips, 1);
}

#[test]
fn global_budget_is_shared_between_flows() {
    let mut budget = ReassemblyBudget::new(300);
    let (mut a, mut b) = (TcpReassembler::new(), TcpReassembler::new());
    let (mut ca, mut cb) = (Collect::default(), Collect::default());
    let payload = [b'z'; 100];
    for (r, c) in [(&mut a, &mut ca), (&mut b, &mut cb)] {
        r.segment(O, Ts(0), &seg(0, SYN, b"", 0), &mut budget, c);
        r.segment(O, Ts(0), &seg(6, ACK, &payload, 100), &mut budget, c);
    }
    assert_eq!(budget.used_bytes(), 100 + ENTRY_OVERHEAD_BYTES);
    assert_eq!(a.buffered_bytes(O), 100 + ENTRY_OVERHEAD_BYTES);
    assert_eq!(b.stats(O).forced_skips, 1);
    assert_eq!(cb.dirs[0].gaps, [(0, 5)]);
    a.finish(Ts(1), StreamEnd::Evicted, &mut budget, &mut ca);
    assert_eq!(budget.used_bytes(), 0);
    assert_eq!(ca.dirs[0].gaps, [(0, 5)]);
    assert_eq!(ca.dirs[0].ends, [StreamEnd::Evicted]);
}

#[test]
fn finish_flushes_held_data_after_gaps_and_ends_both_directions() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 4, ACK, b"def"); // offsets 3..6
    rig.feed(O, 10, ACK, b"jk"); // offsets 9..11
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.bytes(O), b"defjk");
    assert_eq!(rig.side(O).gaps, [(0, 3), (6, 3)]);
    assert_eq!(rig.side(O).ends, [StreamEnd::Timeout]);
    assert_eq!(rig.side(R).ends, [StreamEnd::Timeout]);
    assert_eq!(rig.budget.used_bytes(), 0);
    rig.finish(StreamEnd::Evicted);
    assert_eq!(rig.side(O).ends, [StreamEnd::Timeout]);
    assert_eq!(rig.side(R).ends, [StreamEnd::Timeout]);
}

#[test]
fn finish_reports_the_gap_up_to_a_seen_fin_and_ends_with_fin() {
    let mut rig = Rig::new();
    rig.feed(O, 0, SYN, b"");
    rig.feed(O, 4, FIN | ACK, b"");
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.side(O).gaps, [(0, 3)]);
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
}

#[test]
fn directions_are_independent() {
    let mut rig = Rig::new();
    rig.feed(O, 1000, SYN, b"");
    rig.feed(R, 9000, SYN | ACK, b"");
    rig.feed(O, 1001, ACK, b"GET /");
    rig.feed(R, 9005, ACK, b"/1.1"); // held behind "HTTP"
    rig.feed(O, 1006, FIN | ACK, b" HTTP/1.1\r\n");
    rig.feed(R, 9001, ACK, b"HTTP");
    assert_eq!(rig.bytes(O), b"GET / HTTP/1.1\r\n");
    assert_eq!(rig.bytes(R), b"HTTP/1.1");
    assert_eq!(rig.side(O).ends, [StreamEnd::Fin]);
    assert!(rig.side(R).ends.is_empty());
}

// ---- property tests ----

/// xorshift64*: a deterministic shuffle from a proptest-chosen seed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..items.len()).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let j = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Stream offsets `start..end` of the data segments a stream is cut into.
fn cut(len: usize, sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < len {
        let size = sizes[k % sizes.len()].max(1);
        let end = (at + size).min(len);
        out.push((at, end));
        at = end;
        k += 1;
    }
    out
}

#[derive(Debug, Clone)]
struct Scenario {
    stream: Vec<u8>,
    isn: u32,
    sizes: Vec<usize>,
    /// (start index, length) of overlapping re-sends with the original content.
    resends: Vec<(prop::sample::Index, usize)>,
    /// Segments sent twice.
    dups: Vec<prop::sample::Index>,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(any::<u8>(), 1..3000),
        prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX],
        prop::collection::vec(8usize..200, 1..40),
        prop::collection::vec((any::<prop::sample::Index>(), 1usize..300), 0..20),
        prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        any::<u64>(),
    )
        .prop_map(|(stream, isn, sizes, resends, dups, seed)| Scenario {
            stream,
            isn,
            sizes,
            resends,
            dups,
            seed,
        })
}

/// A segment to feed: stream range (or FIN-only at `len`) and flags.
#[derive(Clone, Copy)]
struct Send {
    start: usize,
    end: usize,
    flags: u8,
}

/// Builds the shuffled sends of `sc`, leaving out stream range `dropped` entirely.
fn sends(sc: &Scenario, with_fin: bool, dropped: Option<(usize, usize)>) -> Vec<Send> {
    let len = sc.stream.len();
    let segs = cut(len, &sc.sizes);
    let hits_drop = |s: usize, e: usize| dropped.is_some_and(|(a, b)| s < b && a < e);
    let mut out: Vec<Send> = segs
        .iter()
        .filter(|&&(s, e)| !hits_drop(s, e))
        .map(|&(start, end)| Send {
            start,
            end,
            flags: ACK,
        })
        .collect();
    for idx in &sc.dups {
        let (start, end) = segs[idx.index(segs.len())];
        if !hits_drop(start, end) {
            out.push(Send {
                start,
                end,
                flags: ACK | PSH,
            });
        }
    }
    for (idx, rlen) in &sc.resends {
        let start = idx.index(len);
        let end = (start + rlen).min(len);
        if !hits_drop(start, end) {
            out.push(Send {
                start,
                end,
                flags: ACK,
            });
        }
    }
    if with_fin {
        out.push(Send {
            start: len,
            end: len,
            flags: FIN | ACK,
        });
    }
    shuffle(&mut out, sc.seed);
    out
}

/// Feeds `sends` after a SYN at `isn` (when `syn`), or after the first segment (which then
/// anchors the stream), then finishes.
fn run(sc: &Scenario, syn: bool, sends: &[Send]) -> Rig {
    let mut rig = Rig::new();
    let data_seq = |at: usize| sc.isn.wrapping_add(1).wrapping_add(at as u32);
    if syn {
        rig.feed(O, sc.isn, SYN, b"");
    } else {
        let (s, e) = cut(sc.stream.len(), &sc.sizes)[0];
        rig.feed(O, data_seq(s), ACK, &sc.stream[s..e]);
    }
    for send in sends {
        rig.feed(
            O,
            data_seq(send.start),
            send.flags,
            &sc.stream[send.start..send.end],
        );
    }
    rig.finish(StreamEnd::Timeout);
    assert_eq!(rig.budget.used_bytes(), 0);
    rig
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_with_duplicates_and_overlaps_yields_the_original_stream(
        sc in scenario(),
        syn in any::<bool>(),
        with_fin in any::<bool>(),
    ) {
        let rig = run(&sc, syn, &sends(&sc, with_fin, None));
        prop_assert_eq!(rig.bytes(O), &sc.stream[..]);
        prop_assert!(rig.side(O).gaps.is_empty());
        let want = if with_fin { StreamEnd::Fin } else { StreamEnd::Timeout };
        prop_assert_eq!(&rig.side(O).ends, &[want]);
        prop_assert_eq!(rig.r.stats(O).bytes_delivered, sc.stream.len() as u64);
        prop_assert_eq!(rig.r.stats(O).anomalies, 0);
    }

    #[test]
    fn wraparound_isns_yield_the_original_stream(
        mut sc in scenario(),
        back in 0u32..3000,
        syn in any::<bool>(),
    ) {
        sc.isn = u32::MAX - back;
        let rig = run(&sc, syn, &sends(&sc, true, None));
        prop_assert_eq!(rig.bytes(O), &sc.stream[..]);
        prop_assert!(rig.side(O).gaps.is_empty());
        prop_assert_eq!(&rig.side(O).ends, &[StreamEnd::Fin]);
    }

    #[test]
    fn a_dropped_segment_is_reported_as_exactly_its_gap(
        sc in scenario(),
        pick in any::<prop::sample::Index>(),
    ) {
        let segs = cut(sc.stream.len(), &sc.sizes);
        let (a, b) = segs[pick.index(segs.len())];
        let rig = run(&sc, true, &sends(&sc, true, Some((a, b))));
        let mut want = sc.stream[..a].to_vec();
        want.extend_from_slice(&sc.stream[b..]);
        prop_assert_eq!(rig.bytes(O), &want[..]);
        prop_assert_eq!(&rig.side(O).gaps, &[(a as u64, (b - a) as u64)]);
        prop_assert_eq!(&rig.side(O).ends, &[StreamEnd::Fin]);
    }

    #[test]
    fn budget_is_never_exceeded_under_adversarial_input(
        max_bytes in 0usize..20_000,
        ops in prop::collection::vec(
            (
                0usize..4,
                any::<bool>(),
                // Mostly close together, so segments overlap and holes fill; some anywhere.
                prop_oneof![4 => 0u32..20_000, 1 => any::<u32>()],
                0u32..3000,
                0usize..3000,
                // RST ends a direction, so keep it rare.
                (any::<u8>(), 0u8..20).prop_map(|(f, r)| if r == 0 { f } else { f & !RST }),
            ),
            1..300,
        ),
    ) {
        let mut budget = ReassemblyBudget::new(max_bytes);
        let mut flows: Vec<(TcpReassembler, Collect)> =
            (0..4).map(|_| (TcpReassembler::new(), Collect::default())).collect();
        let payload = vec![0xA5u8; 3000];
        for (flow, resp, seq, claimed, captured, flags) in ops {
            let dir = if resp { R } else { O };
            let (r, c) = &mut flows[flow];
            let captured = captured.min(claimed as usize);
            let s = seg(seq, flags, &payload[..captured], claimed);
            r.segment(dir, Ts(0), &s, &mut budget, c);
            prop_assert!(budget.used_bytes() <= budget.max_bytes());
            let held: usize = flows
                .iter()
                .map(|(r, _)| r.buffered_bytes(O) + r.buffered_bytes(R))
                .sum();
            prop_assert_eq!(held, budget.used_bytes());
        }
        for (r, c) in &mut flows {
            r.finish(Ts(1), StreamEnd::Timeout, &mut budget, c);
            for dir in [O, R] {
                let side = &c.dirs[dir.index()];
                prop_assert_eq!(side.ends.len(), 1);
                prop_assert_eq!(side.calls_after_end, 0);
                prop_assert_eq!(side.offset, r.next_offset(dir));
            }
        }
        prop_assert_eq!(budget.used_bytes(), 0);
    }
}

#[test]
fn many_far_apart_segments_never_exceed_the_budget() {
    let max_bytes = 1 << 20;
    let mut budget = ReassemblyBudget::new(max_bytes);
    let mut flows: Vec<(TcpReassembler, Collect)> = (0..4)
        .map(|_| (TcpReassembler::new(), Collect::default()))
        .collect();
    let payload = vec![0x5Au8; 1000];
    for (r, c) in &mut flows {
        c.count_only = true;
        r.segment(O, Ts(0), &seg(0, SYN, b"", 0), &mut budget, c);
    }
    for i in 0..20_000u32 {
        let (r, c) = &mut flows[(i % 4) as usize];
        // Every segment leaves a hole before it, spread across most of the window.
        let seq = 2 + (i / 4).wrapping_mul(100_003);
        r.segment(O, Ts(0), &seg(seq, ACK, &payload, 1000), &mut budget, c);
        assert!(budget.used_bytes() <= max_bytes);
        assert!(r.buffered_bytes(O) <= MAX_OOO_BYTES_PER_DIR);
    }
    for (r, c) in &mut flows {
        r.finish(Ts(1), StreamEnd::Evicted, &mut budget, c);
        assert!(r.stats(O).forced_skips > 0);
    }
    assert_eq!(budget.used_bytes(), 0);
}
