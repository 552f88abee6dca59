//! Shared driver for the stream targets: turns fuzzer bytes into the calls the analyzer makes
//! on a TCP flow (chunks of in-order bytes per side, unconsumed bytes kept, gaps), and the
//! row invariants every target asserts.
#![allow(dead_code)]

use dissectors::registry::{FlowDissector, Message, Progress, Side};

/// The analyzer's detail cap (`registry::Message::detail`).
pub const MAX_DETAIL: usize = 200;

/// Every row: a bounded, printable detail.
pub fn check_row(m: &Message) {
    if let Some(d) = &m.detail {
        assert!(d.len() <= MAX_DETAIL, "detail too long: {d:?}");
        assert!(
            d.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "detail not printable ASCII: {d:?}"
        );
    }
}

/// What one driven stream produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: Vec<Message>,
    pub errors: usize,
    pub gaps: usize,
}

/// One side's pending bytes, as `dissect::flow_app` keeps them.
#[derive(Default)]
pub struct Feeder {
    pending: Vec<u8>,
}

impl Feeder {
    /// Appends `chunk` to the pending bytes and offers them to `flow`.
    pub fn push(
        &mut self,
        flow: &mut dyn FlowDissector,
        side: Side,
        chunk: &[u8],
        out: &mut Outcome,
    ) {
        self.pending.extend_from_slice(chunk);
        let before = out.rows.len();
        let p = flow.parse(side, 0, &self.pending, &mut out.rows);
        let consumed = match p {
            Progress::Parsed { consumed, .. } => consumed,
            Progress::Error { consumed, .. } => {
                out.errors += 1;
                consumed
            }
        };
        assert!(
            consumed <= self.pending.len(),
            "consumed {consumed} > {}",
            self.pending.len()
        );
        self.pending.drain(..consumed);
        for m in &out.rows[before..] {
            check_row(m);
        }
    }

    /// A hole of `missing` bytes: the analyzer drops what was pending and tells the parser.
    pub fn gap(
        &mut self,
        flow: &mut dyn FlowDissector,
        side: Side,
        missing: u64,
        out: &mut Outcome,
    ) {
        self.pending.clear();
        flow.on_gap(side, missing);
        out.gaps += 1;
    }
}

/// Drives one side with a chunked encoding of the input: `[n][n bytes]...`; `n == 0` is a
/// gap whose size is the next byte. Returns the concatenated stream bytes (gaps excluded).
pub fn drive_chunked(
    flow: &mut dyn FlowDissector,
    side: Side,
    input: &[u8],
    out: &mut Outcome,
) -> Vec<u8> {
    let mut feeder = Feeder::default();
    let mut stream = Vec::new();
    let mut rest = input;
    while let Some((&n, tail)) = rest.split_first() {
        if n == 0 {
            let (missing, tail) = match tail.split_first() {
                Some((&m, t)) => (u64::from(m) + 1, t),
                None => (1, tail),
            };
            feeder.gap(flow, side, missing, out);
            rest = tail;
            continue;
        }
        let take = usize::from(n).min(tail.len());
        let (chunk, tail) = tail.split_at(take);
        stream.extend_from_slice(chunk);
        feeder.push(flow, side, chunk, out);
        rest = tail;
    }
    stream
}

/// Feeds `data` to one side in fixed `seg`-byte chunks (no gaps).
pub fn drive_fixed(
    flow: &mut dyn FlowDissector,
    side: Side,
    data: &[u8],
    seg: usize,
    out: &mut Outcome,
) {
    let mut feeder = Feeder::default();
    for chunk in data.chunks(seg.max(1)) {
        feeder.push(flow, side, chunk, out);
    }
}

/// Splits `[seg][len_hi][len_lo] orig.. resp..` into the segment size and the two sides'
/// streams (the two-byte length says where the originator's bytes end).
pub fn two_sides(input: &[u8]) -> Option<(usize, &[u8], &[u8])> {
    let [seg, hi, lo, rest @ ..] = input else {
        return None;
    };
    let split = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    let (orig, resp) = rest.split_at(split);
    Some((usize::from(*seg % 64) + 1, orig, resp))
}
