//! Zeek-style connection state and `history` string, computed from the packets of a flow.
//!
//! History letters (upper case: from the originator, lower case: from the responder), each
//! recorded once per direction, as Zeek's `conn.log` does:
//! `S` SYN, `H` SYN+ACK, `A` pure ACK, `D` payload, `F` FIN, `R` RST, `T` retransmitted
//! payload, `W` zero window, `Q` SYN with FIN or RST (multi-flag), `^` the originator was
//! flipped (the first packet seen was a SYN+ACK, so the SYN's sender is the originator).

use super::Dir;
use crate::decode::tcp_flags::{ACK, FIN, RST, SYN};

/// Per-direction TCP facts that determine the connection state: 8 bytes (it is in every
/// live flow's slot, which fits four cache lines).
#[derive(Clone, Copy, Debug, Default)]
struct TcpEnd {
    /// [`SYN_SEEN`], [`SYN_ACK_SEEN`], [`FIN_SEEN`], [`RST_SEEN`], [`SEQ_SEEN`].
    flags: u8,
    /// Highest sequence number + length seen (for retransmission detection), once
    /// [`SEQ_SEEN`].
    next_seq: u32,
}

const SYN_SEEN: u8 = 1;
const SYN_ACK_SEEN: u8 = 2;
const FIN_SEEN: u8 = 4;
const RST_SEEN: u8 = 8;
const SEQ_SEEN: u8 = 16;

impl TcpEnd {
    fn syn(self) -> bool {
        self.flags & SYN_SEEN != 0
    }
    fn syn_ack(self) -> bool {
        self.flags & SYN_ACK_SEEN != 0
    }
    fn fin(self) -> bool {
        self.flags & FIN_SEEN != 0
    }
    fn rst(self) -> bool {
        self.flags & RST_SEEN != 0
    }

    fn next_seq(self) -> Option<u32> {
        (self.flags & SEQ_SEEN != 0).then_some(self.next_seq)
    }

    fn set_next_seq(&mut self, next: u32) {
        self.flags |= SEQ_SEEN;
        self.next_seq = next;
    }

    /// Advances the highest sequence seen; true when the payload lies entirely at or below
    /// it (a retransmission). Comparisons wrap like TCP's sequence space.
    fn track_seq(&mut self, syn: bool, seq: u32, payload_len: u32) -> bool {
        if payload_len == 0 {
            if syn && self.next_seq().is_none() {
                self.set_next_seq(seq.wrapping_add(1));
            }
            return false;
        }
        let seg_end = seq.wrapping_add(payload_len);
        match self.next_seq() {
            Some(next) if (seg_end.wrapping_sub(next) as i32) <= 0 => true,
            _ => {
                self.set_next_seq(seg_end);
                false
            }
        }
    }
}

/// History and TCP state of one flow. 40 bytes; updated per packet without allocation.
#[derive(Clone, Debug, Default)]
pub struct ConnState {
    /// Bit set of history letters already recorded, per direction.
    seen: [u16; 2],
    /// History letters in order of first appearance.
    history: HistoryBuf,
    ends: [TcpEnd; 2],
}

const _: () = assert!(size_of::<ConnState>() <= 40, "ConnState grew");

/// Room for every letter: each of [`LETTERS`] once per direction, and `^`.
const MAX_HISTORY: usize = 2 * LETTERS.len() + 1;

#[derive(Clone, Debug, Default)]
struct HistoryBuf {
    len: u8,
    bytes: [u8; MAX_HISTORY],
}

impl HistoryBuf {
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    fn as_str(&self) -> &str {
        let used = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        std::str::from_utf8(used).unwrap_or("")
    }
}

const LETTERS: &[u8; 9] = b"SHADFRTWQ";

fn letter_bit(letter: u8) -> u16 {
    LETTERS
        .iter()
        .position(|&l| l == letter)
        .map_or(0, |p| 1u16 << p)
}

impl ConnState {
    /// Records a history letter (given upper case) for `dir`, once per direction.
    pub fn note(&mut self, dir: Dir, letter: u8) {
        let bit = letter_bit(letter);
        let seen = &mut self.seen[dir.index()];
        if *seen & bit == 0 {
            *seen |= bit;
            self.history.push(match dir {
                Dir::Orig => letter,
                Dir::Resp => letter.to_ascii_lowercase(),
            });
        }
    }

    /// Marks the flow as flipped (`^`): must be called before any other letter.
    pub fn note_flipped(&mut self) {
        self.history.push(b'^');
    }

    pub fn history(&self) -> &str {
        self.history.as_str()
    }

    /// Updates history and TCP state with one segment.
    pub fn on_tcp(&mut self, dir: Dir, flags: u8, seq: u32, payload_len: u32, window: u16) {
        let syn = flags & SYN != 0;
        let ack = flags & ACK != 0;
        let fin = flags & FIN != 0;
        let rst = flags & RST != 0;
        if syn && (fin || rst) {
            self.note(dir, b'Q');
        }
        let end = &mut self.ends[dir.index()];
        if syn && ack {
            end.flags |= SYN_ACK_SEEN;
        } else if syn {
            end.flags |= SYN_SEEN;
        }
        if fin {
            end.flags |= FIN_SEEN;
        }
        if rst {
            end.flags |= RST_SEEN;
        }
        let retransmit = end.track_seq(syn, seq, payload_len);
        if syn && ack {
            self.note(dir, b'H');
        } else if syn {
            self.note(dir, b'S');
        }
        if fin {
            self.note(dir, b'F');
        }
        if rst {
            self.note(dir, b'R');
        }
        if payload_len > 0 {
            self.note(dir, b'D');
            if retransmit {
                self.note(dir, b'T');
            }
        } else if ack && !syn && !fin && !rst {
            self.note(dir, b'A');
        }
        if window == 0 && !rst && !syn {
            self.note(dir, b'W');
        }
    }

    /// True once both directions ended the connection (FINs from both, or any RST): a new
    /// SYN on the same key then starts a new flow.
    pub fn tcp_closed(&self) -> bool {
        let [o, r] = self.ends;
        (o.fin() && r.fin()) || o.rst() || r.rst()
    }

    /// Zeek's `conn_state` for a TCP flow.
    pub fn tcp_state(&self) -> &'static str {
        let [o, r] = self.ends;
        let established = o.syn() && r.syn_ack();
        if established {
            return if o.rst() {
                "RSTO"
            } else if r.rst() {
                "RSTR"
            } else if o.fin() && r.fin() {
                "SF"
            } else if o.fin() {
                "S2"
            } else if r.fin() {
                "S3"
            } else {
                "S1"
            };
        }
        if o.syn() {
            return if o.rst() {
                "RSTOS0"
            } else if r.rst() {
                "REJ"
            } else if o.fin() {
                "SH"
            } else {
                "S0"
            };
        }
        if r.syn_ack() {
            return if r.rst() {
                "RSTRH"
            } else if r.fin() {
                "SHR"
            } else {
                "OTH"
            };
        }
        "OTH"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tcp_flags::PSH;

    fn run(steps: &[(Dir, u8, u32, u32)]) -> ConnState {
        let mut c = ConnState::default();
        for &(dir, flags, seq, len) in steps {
            c.on_tcp(dir, flags, seq, len, 1000);
        }
        c
    }

    use Dir::{Orig as O, Resp as R};

    #[test]
    fn full_connection_is_sf_with_zeek_history() {
        let c = run(&[
            (O, SYN, 100, 0),
            (R, SYN | ACK, 500, 0),
            (O, ACK, 101, 0),
            (O, ACK | PSH, 101, 10),
            (R, ACK | PSH, 501, 20),
            (O, FIN | ACK, 111, 0),
            (R, FIN | ACK, 521, 0),
            (O, ACK, 112, 0),
        ]);
        assert_eq!(c.tcp_state(), "SF");
        assert_eq!(c.history(), "ShADdFf");
    }

    #[test]
    fn unanswered_syn_is_s0_and_refused_is_rej() {
        assert_eq!(run(&[(O, SYN, 1, 0), (O, SYN, 1, 0)]).tcp_state(), "S0");
        let c = run(&[(O, SYN, 1, 0), (R, RST | ACK, 0, 0)]);
        assert_eq!(c.tcp_state(), "REJ");
        assert_eq!(c.history(), "Sr");
    }

    #[test]
    fn aborts_and_half_closes() {
        let est = [(O, SYN, 1, 0), (R, SYN | ACK, 9, 0), (O, ACK, 2, 0)];
        let with = |extra: (Dir, u8, u32, u32)| {
            let mut v = est.to_vec();
            v.push(extra);
            run(&v).tcp_state()
        };
        assert_eq!(with((O, RST, 2, 0)), "RSTO");
        assert_eq!(with((R, RST, 10, 0)), "RSTR");
        assert_eq!(with((O, FIN | ACK, 2, 0)), "S2");
        assert_eq!(with((R, FIN | ACK, 10, 0)), "S3");
        assert_eq!(with((O, ACK, 2, 0)), "S1");
        assert_eq!(run(&[(O, SYN, 1, 0), (O, RST, 2, 0)]).tcp_state(), "RSTOS0");
        assert_eq!(
            run(&[(R, SYN | ACK, 1, 0), (R, RST, 2, 0)]).tcp_state(),
            "RSTRH"
        );
        assert_eq!(run(&[(O, ACK | PSH, 1, 5)]).tcp_state(), "OTH");
    }

    #[test]
    fn retransmitted_payload_is_t() {
        let c = run(&[
            (O, ACK | PSH, 1, 10),
            (O, ACK | PSH, 1, 10),
            (O, ACK, 11, 0),
        ]);
        assert_eq!(c.history(), "DTA");
    }

    #[test]
    fn retransmission_detection_survives_sequence_wrap() {
        let c = run(&[
            (O, ACK | PSH, u32::MAX - 4, 10),
            (O, ACK | PSH, 5, 10),
            (O, ACK | PSH, 5, 10),
        ]);
        assert_eq!(c.history(), "DT");
    }

    #[test]
    fn every_letter_of_both_directions_fits_after_the_flip() {
        let mut c = ConnState::default();
        c.note_flipped();
        for &letter in LETTERS {
            c.note(O, letter);
            c.note(R, letter);
        }
        assert_eq!(c.history(), "^SsHhAaDdFfRrTtWwQq");
    }

    #[test]
    fn letters_are_recorded_once_per_direction() {
        let mut c = ConnState::default();
        for _ in 0..100 {
            c.note(O, b'D');
            c.note(R, b'D');
        }
        assert_eq!(c.history(), "Dd");
    }
}
