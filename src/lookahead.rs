//! Loading the flow table's state for frames a few ahead of the one being analysed.
//!
//! On a capture with hundreds of thousands of live flows nearly every frame's index entry
//! and flow slot are cache misses, each a stall of a DRAM round trip (together ~17 % of a
//! run on the simulator's `large` capture). Looking ahead in the read buffer, the frame
//! [`DEPTH`] ahead has its flow hashed and its index entry requested; by the time it is
//! [`DEPTH`]` / 2` ahead the entry has arrived, and the slot it names is requested (with
//! the slot's activity link); `LAST_STAGE` frames ahead, what the slot points to (the
//! claiming dissector's state), the consumer's per-flow state and the links of the flow's
//! neighbours in its activity list (which moving it to the list's tail rewrites) are
//! requested; by the time the frame is analysed all are cached, and the slot is handed to
//! the flow table, which takes it for the frame's flow without hashing or probing the
//! index when the slot holds the frame's key ([`FlowTable::ingest_hinted`]). Hints only:
//! nothing read ahead decides anything (a slot is checked against the key), and a frame
//! the look cannot decode cheaply just gets no hint.
//!
//! Why those distances: a frame takes ~0.3 µs and a miss to memory ~0.2 µs on an idle
//! host, more with a dozen misses in flight. The neighbours' links matter beyond their
//! own load: the frame's later copies of freshly built values (a message's socket
//! addresses) cannot be forwarded from the store buffer and wait until every earlier
//! store has reached the cache, including those to the links, which waited on their
//! misses (on a steady 10 M-frame slice of the hour: 16 → 6 % of the frame loop's samples
//! on one such copy). On that slice, in eight alternating rounds, the neighbours' links
//! took 2 % off the user time; looking 16 frames ahead with the last stage 4 ahead
//! (instead of 8 and 2), 6 % in all; 24 and 6 did no better.
//!
//! The look costs a second decode of every frame, which only pays when the flows' state is
//! not cached anyway: ~15 % faster on the full `large` capture (633 k live flows, each
//! touched once a minute), ~20 % slower on the benchmark generator's file (bursty flows)
//! when always on.
//! So it is timed: short windows of frames run alternately with and without it, and the
//! faster way runs until the next such duel (see `Trial`). `P2PTRACE_LOOKAHEAD=on` or
//! `off` in the environment fixes the choice from the first frame (benchmarks, and tests
//! showing the results do not depend on it).

use crate::capture::{CaptureReader, Frame, PeekCursor};
use crate::dissect::FlowApp;
use crate::flow::FlowTable;
use crate::pipeline::FlowConsumer;
use crate::time::Ts;
use std::time::Instant;

/// Frames between requesting a flow's index entry and analysing the frame.
pub const DEPTH: usize = 16;

/// Frames between requesting what a flow's slot points to (and its neighbours' links) and
/// analysing the frame.
const LAST_STAGE: usize = 4;

/// Frames per timed window.
const WINDOW: u32 = 1 << 16;

/// The hashes of the frames just ahead of the read position, and whether looking ahead pays.
#[derive(Default)]
pub struct Lookahead {
    trial: Trial,
    on: bool,
    /// Fixed by `P2PTRACE_LOOKAHEAD` instead of timed.
    forced: Option<bool>,
    /// Frames and start of the current window.
    window: (u32, Option<Instant>),
    cursor: PeekCursor,
    /// `ring[(head + k) % DEPTH]` is what is known of the frame `k` ahead of the next one
    /// read, for `k < len`.
    ring: [Hint; DEPTH],
    head: usize,
    len: usize,
}

/// A frame ahead: its flow's hash (`None`: no hint) and, from [`DEPTH`]` / 2` ahead on, the
/// slot its index entry named.
#[derive(Clone, Copy, Default)]
struct Hint {
    hash: Option<u64>,
    slot: Option<u32>,
}

impl Lookahead {
    /// Timed, unless `P2PTRACE_LOOKAHEAD` is `on` or `off`.
    pub fn new() -> Lookahead {
        let forced = match std::env::var("P2PTRACE_LOOKAHEAD").as_deref() {
            Ok("on") => Some(true),
            Ok("off") => Some(false),
            _ => None,
        };
        Lookahead::with(forced)
    }

    /// Timed (`None`), or always on or off from the first frame.
    fn with(forced: Option<bool>) -> Lookahead {
        Lookahead {
            forced,
            on: forced == Some(true),
            ..Lookahead::default()
        }
    }

    /// Call before reading each frame: looks further ahead (up to [`DEPTH`] frames) and
    /// requests the state of the frames on their way.
    /// Returns the slot foreseen for the frame read next ([`FlowTable::ingest_hinted`]).
    #[inline]
    pub fn advance<C: FlowConsumer + ?Sized>(
        &mut self,
        reader: &CaptureReader,
        table: &FlowTable<FlowApp>,
        consumer: &C,
    ) -> Option<u32> {
        self.window.0 += 1;
        if self.window.0 >= WINDOW {
            self.end_window();
        }
        if self.on {
            self.look(reader, table, consumer).slot
        } else {
            None
        }
    }

    #[cold]
    fn end_window(&mut self) {
        let now = Instant::now();
        let on = match (self.forced, self.window.1) {
            (Some(on), _) => on,
            (None, Some(start)) => {
                let ns = now.duration_since(start).as_nanos();
                self.trial
                    .next(self.on, u64::try_from(ns).unwrap_or(u64::MAX))
            }
            // The first window, untimed (start-up), runs without; then the first duel.
            (None, None) => true,
        };
        if on && !self.on {
            // The read position has passed everything seen before: start again there.
            self.cursor = PeekCursor::default();
            self.len = 0;
        }
        self.on = on;
        self.window = (0, Some(now));
    }

    /// Looks ahead; returns what is foreseen for the frame read next.
    #[inline]
    fn look<C: FlowConsumer + ?Sized>(
        &mut self,
        reader: &CaptureReader,
        table: &FlowTable<FlowApp>,
        consumer: &C,
    ) -> Hint {
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
                orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                interface: 0,
                data,
            };
            let hash = crate::decode::decode_common(&frame).map(|pkt| table.hash_of(&pkt));
            if let Some(h) = hash {
                table.prefetch_entry(h);
            }
            self.ring[(self.head + self.len) % DEPTH] = Hint { hash, slot: None };
            self.len += 1;
        }
        if self.len > DEPTH / 2 {
            let hint = &mut self.ring[(self.head + DEPTH / 2) % DEPTH];
            hint.slot = hint.hash.and_then(|h| table.prefetch_flow(h));
        }
        if let Some(Some(slot)) =
            (self.len > LAST_STAGE).then(|| self.ring[(self.head + LAST_STAGE) % DEPTH].slot)
        {
            table.prefetch_neighbours(slot);
            if let Some(app) = table.app_in(slot) {
                app.prefetch();
                consumer.prefetch(slot);
            }
        }
        // The next frame read is the one at `head`.
        if self.len == 0 {
            return Hint::default();
        }
        let next = self.ring[self.head];
        self.head = (self.head + 1) % DEPTH;
        self.len -= 1;
        next
    }
}

/// Windows per cycle of a duel and the use of its winner, at first and after a change of
/// winner.
const CYCLE: u32 = 32;
/// Windows per cycle at most: each duel won by the same way as the last doubles the cycle
/// up to this (16.7 M frames).
const MAX_CYCLE: u32 = 256;
/// Windows of the duel at the start of each cycle, alternately with and without the look.
const DUEL: u32 = 4;

/// Chooses between looking ahead and not. Each cycle starts with a duel: short windows run
/// alternately each way, so a drift in the capture's cost per frame (the login wave ending,
/// say) weighs on both sides alike; the faster way then runs for the rest of the cycle.
/// The duel's losing windows cost: on the simulator's hour, duels every 32 windows ran 7 %
/// of the frames without the look, each paying its flow's misses in full (a twentieth of
/// the run's samples on two loads of the flow lookup). So while the same way keeps
/// winning, duels come ever less often ([`MAX_CYCLE`]); a different winner brings them
/// back to every [`CYCLE`] windows.
#[derive(Debug)]
struct Trial {
    /// Where the window just ended stands in the cycle.
    window: u32,
    /// Windows in the current cycle.
    cycle: u32,
    /// Nanoseconds spent in the current duel, without and with the look.
    duel: [u64; 2],
    /// The last duel's winner (`None` before the first).
    winner: Option<bool>,
}

impl Default for Trial {
    fn default() -> Self {
        Trial {
            window: 0,
            cycle: CYCLE,
            duel: [0, 0],
            winner: None,
        }
    }
}

impl Trial {
    /// Records that the window just ended ran with the look `on` (or not) and took `ns`;
    /// returns whether the next window looks ahead.
    fn next(&mut self, on: bool, ns: u64) -> bool {
        if self.window < DUEL {
            let side = &mut self.duel[usize::from(on)];
            *side = side.saturating_add(ns);
        }
        if self.window + 1 == DUEL {
            let winner = self.duel[1] < self.duel[0];
            self.cycle = if self.winner == Some(winner) {
                (self.cycle * 2).min(MAX_CYCLE)
            } else {
                CYCLE
            };
            self.winner = Some(winner);
            self.duel = [0, 0];
        }
        self.window = (self.window + 1) % self.cycle;
        if self.window < DUEL {
            self.window % 2 == 0
        } else {
            self.winner.unwrap_or_default()
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
            let hint = ahead.look(&reader, &table, &()).hash;
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
    fn a_forced_look_runs_from_the_first_frame_and_a_timed_one_after_the_first_window() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap");
        let reader = CaptureReader::open(&path).expect("opens");
        let table = FlowTable::<FlowApp>::new(FlowConfig::default());
        for (forced, looks) in [(Some(true), true), (Some(false), false), (None, false)] {
            let mut ahead = Lookahead::with(forced);
            ahead.advance(&reader, &table, &());
            assert_eq!(ahead.len > 0, looks, "{forced:?}");
        }
        // Past the first window only the timed one turns on (for its first duel).
        for (forced, on) in [(Some(false), false), (None, true)] {
            let mut ahead = Lookahead::with(forced);
            for _ in 0..WINDOW {
                ahead.advance(&reader, &table, &());
            }
            assert_eq!(ahead.on, on, "{forced:?}");
        }
    }

    #[test]
    fn hints_name_the_flow_of_the_frame_read_next() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        hints_match_reads(&root.join("voip-mix.pcap"));
        // A pcapng through gzip, and the same file plain.
        let gz = root.join("sim/no-nat/capture.pcapng.gz");
        hints_match_reads(&gz);
        let mut plain = tempfile::NamedTempFile::new().expect("temp file");
        let mut unzip = flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("opens"));
        std::io::copy(&mut unzip, &mut plain).expect("decompresses");
        hints_match_reads(plain.path());
    }

    /// Runs `cycles` cycles where a window costs `cost(window number, on)`; returns the
    /// share of windows run with the look.
    fn share_on(cycles: u32, cost: impl Fn(u32, bool) -> u64) -> f64 {
        let mut t = Trial::default();
        let mut on = true;
        let mut windows_on = 0;
        for w in 0..cycles * CYCLE {
            windows_on += u32::from(on);
            on = t.next(on, cost(w, on));
        }
        f64::from(windows_on) / f64::from(cycles * CYCLE)
    }

    #[test]
    fn duels_grow_rarer_while_one_way_keeps_winning_and_follow_a_change() {
        let mut t = Trial::default();
        let mut on = true;
        // The look is cheaper for 2,000 windows, then dearer.
        let (mut duels_after, mut looked_outside_duels) = (0, 0);
        for w in 0..4_000u32 {
            let cheaper_on = w < 2_000;
            let cost = if on == cheaper_on { 900_000 } else { 1_000_000 };
            on = t.next(on, cost);
            if w == 1_999 {
                assert_eq!(t.cycle, MAX_CYCLE, "the longest cycle reached");
                assert_eq!(t.winner, Some(true));
            }
            // After the change, from one longest cycle on: the look only in duels.
            if w >= 2_000 + MAX_CYCLE + DUEL {
                duels_after += u32::from(t.window == 0);
                looked_outside_duels += u32::from(on && t.window >= DUEL);
            }
        }
        assert_eq!(t.winner, Some(false), "the change followed");
        assert_eq!(looked_outside_duels, 0);
        // Cycles of 32, 64 and 128 windows after the change, then 256: a duel every 32
        // windows would be 55.
        assert!(duels_after <= 10, "{duels_after} duels");
    }

    #[test]
    fn trial_runs_the_faster_way_even_while_costs_drift() {
        let cheaper_on =
            |w: u32, on: bool| 1_000_000 + u64::from(w) * 5_000 - u64::from(on) * 50_000;
        assert!(share_on(10, cheaper_on) > 0.9);
        // Costs falling fast, the look slower: a comparison with earlier windows would
        // prefer whichever ran last.
        let dearer_on =
            |w: u32, on: bool| 10_000_000 - u64::from(w) * 5_000 + u64::from(on) * 50_000;
        assert!(share_on(10, dearer_on) < 0.1);
    }
}
