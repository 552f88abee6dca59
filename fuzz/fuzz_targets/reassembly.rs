//! Fuzz TCP reassembly with segments decoded from the input: each is
//! `[ctl][seq offset: u32 BE][len][len payload bytes]`, `ctl` bit 7 the direction, bit 6 "the
//! IP header claimed 100 more bytes than captured", bits 0–5 the TCP flags; the sequence
//! number is the direction's initial one plus the offset (wrapping, so wraparound is near).
//! The consumer checks the `StreamConsumer` contract: per direction, data and gaps arrive at
//! increasing offsets that match `next_offset`, gaps are non-empty, nothing follows
//! `on_end`, and `finish` ends each direction exactly once; the budget never overflows and is
//! empty after `finish`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2ptrace::decode::TcpSegment;
use p2ptrace::flow::Dir;
use p2ptrace::flow::reassembly::{ReassemblyBudget, StreamConsumer, StreamEnd, TcpReassembler};
use p2ptrace::time::Ts;

/// Initial sequence numbers: one near the 2^32 wrap, one ordinary.
const ISN: [u32; 2] = [0xFFFF_FF00, 1000];
/// Small enough that fuzz inputs hit the forced-skip path.
const BUDGET_BYTES: usize = 4096;

#[derive(Default)]
struct Checker {
    offset: [u64; 2],
    ended: [u32; 2],
    last_ts: [i64; 2],
}

impl Checker {
    fn live(&mut self, dir: Dir, ts: Ts) -> usize {
        let i = dir.index();
        assert_eq!(self.ended[i], 0, "{dir:?}: callback after on_end");
        assert!(ts.0 >= self.last_ts[i], "{dir:?}: time went backwards");
        self.last_ts[i] = ts.0;
        i
    }
}

impl StreamConsumer for Checker {
    fn on_data(&mut self, dir: Dir, ts: Ts, data: &[u8]) {
        let i = self.live(dir, ts);
        assert!(!data.is_empty(), "{dir:?}: empty on_data");
        self.offset[i] += data.len() as u64;
    }

    fn on_gap(&mut self, dir: Dir, ts: Ts, missing: u64) {
        let i = self.live(dir, ts);
        assert!(missing > 0, "{dir:?}: empty gap");
        self.offset[i] += missing;
    }

    fn on_end(&mut self, dir: Dir, ts: Ts, _how: StreamEnd) {
        let i = self.live(dir, ts);
        self.ended[i] += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = TcpReassembler::new();
    let mut budget = ReassemblyBudget::new(BUDGET_BYTES);
    let mut c = Checker::default();
    let mut rest = data;
    let mut t = 0i64;
    while let [ctl, s0, s1, s2, s3, len, tail @ ..] = rest {
        let dir = if ctl & 0x80 == 0 {
            Dir::Orig
        } else {
            Dir::Resp
        };
        let take = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(take);
        rest = tail;
        let offset = u32::from_be_bytes([*s0, *s1, *s2, *s3]);
        let seg = TcpSegment {
            src_port: 1,
            dst_port: 2,
            seq: ISN[dir.index()].wrapping_add(offset),
            ack: 0,
            flags: ctl & 0x3F,
            window: 65535,
            payload_len: take as u32 + if ctl & 0x40 != 0 { 100 } else { 0 },
            payload,
        };
        t += 1;
        let was_ended = r.is_ended(dir);
        r.segment(dir, Ts(t), &seg, &mut budget, &mut c);
        assert!(budget.used_bytes() <= budget.max_bytes());
        for d in [Dir::Orig, Dir::Resp] {
            assert_eq!(
                c.offset[d.index()],
                r.next_offset(d),
                "{d:?}: offsets disagree"
            );
            assert_eq!(c.ended[d.index()], u32::from(r.is_ended(d)));
        }
        if was_ended {
            assert!(r.is_ended(dir));
        }
    }
    t += 1;
    r.finish(Ts(t), StreamEnd::Timeout, &mut budget, &mut c);
    r.finish(Ts(t), StreamEnd::Timeout, &mut budget, &mut c);
    assert_eq!(c.ended, [1, 1], "on_end not exactly once per direction");
    assert_eq!(budget.used_bytes(), 0, "budget not released by finish");
    for d in [Dir::Orig, Dir::Resp] {
        assert_eq!(r.buffered_bytes(d), 0);
        let s = r.stats(d);
        assert_eq!(s.bytes_delivered + s.gap_bytes, c.offset[d.index()]);
    }
});
