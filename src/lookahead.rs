//! Loading the flow table's state for frames a few ahead of the one being analysed.
//!
//! On a capture with hundreds of thousands of live flows nearly every frame's index entry
//! and flow slot are cache misses, each a stall of a DRAM round trip (together ~17 % of a
//! run on the simulator's `large` capture). Looking ahead in the mapped capture, the frame
//! [`DEPTH`] ahead has its flow hashed and its index entry requested; by the time it is
//! [`DEPTH`]` / 2` ahead the entry has arrived, and the slot it names is requested; two
//! frames ahead, what the slot points to (the claiming dissector's state) and the
//! consumer's per-flow state are requested; by the time the frame is analysed all are
//! cached. Hints only: nothing read ahead decides
//! anything, and a frame the look cannot decode cheaply just gets no hint.
//!
//! The look costs a second decode of every frame, which only pays when the flows' state is
//! not cached anyway: ~10 % faster on the full `large` capture (633 k live flows, each
//! touched once a minute), ~20 % slower on the benchmark generator's file (bursty flows).
//! So it is timed: windows of frames run with and without it, and the faster way is kept,
//! re-tried now and then in case the capture changes character (see [`Trial`]).

use crate::capture::{CaptureReader, Frame, PeekCursor};
use crate::dissect::FlowApp;
use crate::flow::FlowTable;
use crate::pipeline::FlowConsumer;
use crate::time::Ts;
use std::time::Instant;

/// Frames between requesting a flow's index entry and analysing the frame.
pub const DEPTH: usize = 8;

/// Frames between requesting what a flow's slot points to and analysing the frame.
const LAST_STAGE: usize = 2;

/// Frames per timed window.
const WINDOW: u32 = 1 << 16;

/// The hashes of the frames just ahead of the read position, and whether looking ahead pays.
#[derive(Default)]
pub struct Lookahead {
    trial: Trial,
    on: bool,
    /// Frames and start of the current window.
    window: (u32, Option<Instant>),
    cursor: PeekCursor,
    /// `ring[(head + k) % DEPTH]` is the hash of the frame `k` ahead of the next one read
    /// (`None`: no hint), for `k < len`.
    ring: [Option<u64>; DEPTH],
    head: usize,
    len: usize,
}

impl Lookahead {
    /// Call before reading each frame: looks further ahead (up to [`DEPTH`] frames) and
    /// requests the state of the frames on their way.
    #[inline]
    pub fn advance(
        &mut self,
        reader: &CaptureReader,
        table: &FlowTable<FlowApp>,
        consumer: &dyn FlowConsumer,
    ) {
        self.window.0 += 1;
        if self.window.0 >= WINDOW {
            self.end_window();
        }
        if self.on {
            self.look(reader, table, consumer);
        }
    }

    #[cold]
    fn end_window(&mut self) {
        let now = Instant::now();
        if let Some(start) = self.window.1 {
            let ns = now.duration_since(start).as_nanos() as f64 / f64::from(self.window.0);
            let on = self.trial.next(self.on, ns);
            if on && !self.on {
                // The read position has passed everything seen before: start again there.
                self.cursor = PeekCursor::default();
                self.len = 0;
            }
            self.on = on;
        }
        self.window = (0, Some(now));
    }

    /// Looks ahead; returns the hash foreseen for the frame read next (`None`: no hint).
    #[inline]
    fn look(
        &mut self,
        reader: &CaptureReader,
        table: &FlowTable<FlowApp>,
        consumer: &dyn FlowConsumer,
    ) -> Option<u64> {
        while self.len < DEPTH {
            let peeked = reader.peek(&mut self.cursor);
            if self.cursor.take_restarted() {
                self.len = 0;
            }
            let Some((linktype, data)) = peeked else {
                break;
            };
            let frame = Frame {
                ts: Ts(0),
                linktype,
                orig_len: data.len() as u32,
                interface: 0,
                data,
            };
            let hash = crate::decode::decode_common(&frame).map(|pkt| table.hash_of(&pkt));
            if let Some(h) = hash {
                table.prefetch_entry(h);
            }
            self.ring[(self.head + self.len) % DEPTH] = hash;
            self.len += 1;
        }
        if let Some(Some(h)) =
            (self.len > DEPTH / 2).then(|| self.ring[(self.head + DEPTH / 2) % DEPTH])
        {
            table.prefetch_flow(h);
        }
        if let Some(Some(h)) =
            (self.len > LAST_STAGE).then(|| self.ring[(self.head + LAST_STAGE) % DEPTH])
        {
            if let Some((slot, app)) = table.likely_flow(h) {
                app.prefetch();
                consumer.prefetch(slot);
            }
        }
        // The next frame read is the one at `head`.
        if self.len == 0 {
            return None;
        }
        let next = self.ring[self.head];
        self.head = (self.head + 1) % DEPTH;
        self.len -= 1;
        next
    }
}

/// One window in this many runs the way not preferred, to notice when it becomes the faster.
const RETRY_EVERY: u64 = 16;

/// Chooses between looking ahead and not from the cost per frame of the windows run each way.
#[derive(Debug, Default)]
struct Trial {
    /// Smoothed nanoseconds per frame, without and with the look.
    ns_per_frame: [Option<f64>; 2],
    windows: u64,
}

impl Trial {
    /// Records a window run with the look `on` or off at `ns` per frame; returns whether the
    /// next window looks ahead. The first two windows try each way.
    fn next(&mut self, on: bool, ns: f64) -> bool {
        let cost = &mut self.ns_per_frame[usize::from(on)];
        *cost = Some(cost.map_or(ns, |old| (old + ns) / 2.0));
        self.windows += 1;
        match self.ns_per_frame {
            [None, _] => false,
            [_, None] => true,
            [Some(off), Some(on)] => (on < off) != (self.windows % RETRY_EVERY == 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowConfig;
    use std::path::Path;

    /// What is foreseen for each frame is the flow the frame turns out to belong to.
    fn hints_match_reads(path: &Path) {
        let mut reader = CaptureReader::open(path).expect("opens");
        let table = FlowTable::<FlowApp>::new(FlowConfig::default());
        let mut ahead = Lookahead::default();
        let (mut frames, mut hinted) = (0, 0);
        loop {
            let hint = ahead.look(&reader, &table, &());
            let Ok(Some(frame)) = reader.next_frame() else {
                break;
            };
            frames += 1;
            let actual = crate::decode::decode_common(&frame).map(|p| table.hash_of(&p));
            if hint.is_some() {
                hinted += 1;
                assert_eq!(hint, actual, "frame {frames} of {}", path.display());
            }
        }
        assert!(
            frames > 100 && hinted * 10 > frames * 9,
            "{hinted} of {frames} hinted"
        );
    }

    #[test]
    fn hints_name_the_flow_of_the_frame_read_next() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        hints_match_reads(&root.join("voip-mix.pcap"));
        // A pcapng read as a stream (gzip), and mapped.
        let gz = root.join("sim/no-nat/capture.pcapng.gz");
        hints_match_reads(&gz);
        let mut plain = tempfile::NamedTempFile::new().expect("temp file");
        let mut unzip = flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("opens"));
        std::io::copy(&mut unzip, &mut plain).expect("decompresses");
        hints_match_reads(plain.path());
    }

    #[test]
    fn trial_keeps_the_faster_way_and_retries_the_other() {
        let mut t = Trial::default();
        let mut on = t.next(true, 80.0);
        assert!(!on, "tries without next");
        let mut runs = [0u32; 2];
        for _ in 0..160 {
            runs[usize::from(on)] += 1;
            on = t.next(on, if on { 80.0 } else { 100.0 });
        }
        assert_eq!(runs[0], 1 + 10, "tried once, then only re-tried: {runs:?}");
        // The capture changes: looking ahead gets slower; the trial follows within a few
        // windows.
        let mut last = Vec::new();
        for _ in 0..64 {
            on = t.next(on, if on { 130.0 } else { 100.0 });
            last.push(on);
        }
        assert!(last[32..].iter().filter(|&&o| o).count() <= 2, "{last:?}");
    }
}
