//! Looking a few frames ahead of the read position without consuming anything, so a caller
//! can start loading the state those frames will need (see `crate::lookahead`).
//!
//! Guarantees: never panics, never changes what the reader delivers, never reads past the
//! bytes already buffered. Only plain packet records are looked at; anything the reader
//! must judge first (a new section, an interface, damage) makes the look pause until the
//! reader has passed it. What is seen ahead is a hint only: the reader validates every byte.

use super::super::LinkType;
use super::super::pcapng::{self, epb, rd32};
use super::{
    CaptureReader, MAX_BLOCK_LEN, NG_BLOCK_HEADER_LEN, NG_MIN_BLOCK_LEN, PCAP_RECORD_LEN, State,
};

/// Where an EPB's fields sit from the start of its block (after the block header).
const EPB_INTERFACE: usize = NG_BLOCK_HEADER_LEN + epb::INTERFACE;
const EPB_CAPLEN: usize = NG_BLOCK_HEADER_LEN + epb::CAPLEN;
const EPB_DATA: usize = NG_BLOCK_HEADER_LEN + epb::DATA;

/// A place in the capture ahead of the read position, for [`CaptureReader::peek`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PeekCursor {
    /// Stream offset of the next record to look at.
    at: u64,
    restarted: bool,
}

impl PeekCursor {
    /// True (once) when the reader had overtaken the cursor, which then started again at the
    /// read position: whatever the caller remembered of frames ahead no longer lines up.
    pub fn take_restarted(&mut self) -> bool {
        std::mem::take(&mut self.restarted)
    }
}

impl CaptureReader {
    /// The link type and bytes of the frame at `cursor` (at or after the read position),
    /// moving `cursor` past it. A packet record of a kind not looked into comes back with no
    /// bytes (it still counts as a frame). `None`: nothing more to look at for now.
    pub fn peek(&self, cursor: &mut PeekCursor) -> Option<(LinkType, &[u8])> {
        let read_at = self.src.offset();
        if cursor.at < read_at {
            *cursor = PeekCursor {
                at: read_at,
                restarted: true,
            };
        }
        let bytes = self.src.buffered();
        let mut at = self.src.index_of(cursor.at)?;
        match &self.state {
            State::Pcap {
                big_endian,
                linktype,
                caplen_limit,
                ..
            } => {
                let caplen = rd32(bytes, at + 8, *big_endian)?;
                if caplen > *caplen_limit {
                    return None;
                }
                let start = at + PCAP_RECORD_LEN;
                let data = bytes.get(start..start + caplen as usize)?;
                cursor.at = self.src.offset_at(start + data.len());
                Some((*linktype, data))
            }
            State::PcapNg {
                big_endian,
                interfaces,
            } => {
                let be = *big_endian;
                // A few skipped blocks at most: a capture of little else is not worth it.
                for _ in 0..4 {
                    let btype = rd32(bytes, at, be)?;
                    let len = rd32(bytes, at + 4, be)? as usize;
                    if len < NG_MIN_BLOCK_LEN as usize
                        || len % 4 != 0
                        || len > MAX_BLOCK_LEN as usize
                    {
                        return None;
                    }
                    let block = bytes.get(at..at + len)?;
                    match btype {
                        pcapng::BT_EPB => {
                            let iface = rd32(block, EPB_INTERFACE, be)? as usize;
                            let caplen = rd32(block, EPB_CAPLEN, be)? as usize;
                            let data = block
                                .get(EPB_DATA..(EPB_DATA + caplen).min(len.saturating_sub(4)))?;
                            let linktype = interfaces.get(iface)?.linktype;
                            cursor.at = self.src.offset_at(at + len);
                            return Some((linktype, data));
                        }
                        pcapng::BT_PB | pcapng::BT_SPB => {
                            cursor.at = self.src.offset_at(at + len);
                            return Some((LinkType::NULL, &[]));
                        }
                        // Sections and interfaces change how what follows is read.
                        pcapng::BT_SHB | pcapng::BT_IDB => return None,
                        _ => at += len,
                    }
                }
                cursor.at = self.src.offset_at(at);
                None
            }
            State::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::testutil::{NgWriter, PcapWriter};
    use proptest::prelude::*;
    use std::io::Write;

    fn open(bytes: &[u8]) -> (tempfile::NamedTempFile, CaptureReader) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(bytes).expect("write temp file");
        let reader = CaptureReader::open(f.path()).expect("opens");
        (f, reader)
    }

    fn peek_all(reader: &CaptureReader, cursor: &mut PeekCursor) -> Vec<(LinkType, Vec<u8>)> {
        std::iter::from_fn(|| reader.peek(cursor))
            .map(|(lt, d)| (lt, d.to_vec()))
            .collect()
    }

    fn read_all(reader: &mut CaptureReader) -> Vec<(LinkType, Vec<u8>)> {
        std::iter::from_fn(|| {
            reader
                .next_frame()
                .ok()
                .flatten()
                .map(|f| (f.linktype, f.data.to_vec()))
        })
        .collect()
    }

    #[test]
    fn pcap_look_ahead_sees_every_frame_the_reader_reads() {
        let mut w = PcapWriter::new(false, true, 65535, 1);
        for i in 0..5u8 {
            w.record(1, 0, 60, &[i; 60]);
        }
        let (_f, mut reader) = open(&w.buf);
        let mut cursor = PeekCursor::default();
        let seen = peek_all(&reader, &mut cursor);
        assert_eq!(seen.len(), 5);
        assert_eq!(seen, read_all(&mut reader));
    }

    #[test]
    fn pcapng_look_ahead_waits_for_interfaces_and_skips_other_blocks() {
        let mut w = NgWriter::new();
        w.shb(false)
            .idb(1, 0, None, None)
            .epb(0, 1, 60, &[1; 60])
            .nrb();
        w.epb(0, 2, 40, &[2; 40])
            .spb(30, &[3; 30])
            .isb(0)
            .epb(0, 3, 50, &[4; 50]);
        let (_f, mut reader) = open(&w.buf);
        let mut cursor = PeekCursor::default();
        assert!(
            reader.peek(&mut cursor).is_none(),
            "the section is read first"
        );
        let first = reader
            .next_frame()
            .expect("reads")
            .expect("a frame")
            .data
            .to_vec();
        assert_eq!(first, [1; 60]);
        let seen = peek_all(&reader, &mut cursor);
        assert!(
            cursor.take_restarted(),
            "the reader had overtaken the cursor"
        );
        assert!(!cursor.take_restarted(), "said once");
        let read = read_all(&mut reader);
        assert_eq!(seen.len(), read.len());
        assert_eq!(seen[0], read[0]);
        assert!(
            seen[1].1.is_empty(),
            "a simple packet block is counted, not looked into"
        );
        assert_eq!(seen[2], read[2]);
    }

    proptest! {
        /// Any damage after a valid start: looking ahead never panics nor loops.
        #[test]
        fn any_bytes_are_looked_at_safely(tail in proptest::collection::vec(any::<u8>(), 0..512), ng in any::<bool>()) {
            let mut bytes = if ng {
                let mut w = NgWriter::new();
                w.shb(false).idb(1, 0, None, None).epb(0, 1, 20, &[0; 20]);
                w.buf
            } else {
                let mut w = PcapWriter::new(false, false, 65535, 1);
                w.record(1, 0, 20, &[0; 20]);
                w.buf
            };
            bytes.extend_from_slice(&tail);
            let (_f, mut reader) = open(&bytes);
            let _ = reader.next_frame();
            let mut cursor = PeekCursor::default();
            prop_assert!(peek_all(&reader, &mut cursor).len() <= bytes.len() / 16 + 1);
        }
    }
}
