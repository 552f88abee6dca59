//! STUB — to be implemented (helper: decode).
use super::{DecodeStats, DefragLimits, Packet};
use crate::capture::Frame;
use crate::time::Ts;

pub struct Decoder {
    stats: DecodeStats,
}

impl Decoder {
    pub fn new(_limits: DefragLimits) -> Decoder {
        todo!()
    }
    /// Decodes one frame. `None` when the frame yields no IP packet (not IP, an unknown link
    /// type, a fragment held for reassembly, or unparseable) — counted in the stats.
    pub fn decode<'a>(&'a mut self, _frame: &Frame<'a>) -> Option<Packet<'a>> {
        todo!()
    }
    /// Drops fragment buffers older than the timeout at capture time `now`.
    pub fn expire(&mut self, _now: Ts) {
        todo!()
    }
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}
