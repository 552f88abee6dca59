//! Capture sources: turn bytes (a file, gzip, stdin, later a live NIC) into [`Frame`]s.
//!
//! Guarantees: the format is detected by magic number, never by extension; frames borrow
//! from the reader's buffer (zero-copy); memory is bounded whatever the input; damage
//! part-way is reported as [`CaptureError::Damaged`] with the byte offset, after every frame
//! before it was delivered. Must not: decode anything above the link layer.

mod error;
mod pcapng;
mod read_ahead;
mod reader;
mod source;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
pub mod write;

pub use error::CaptureError;
pub use reader::{
    CaptureReader, CaptureStats, Format, MAX_BLOCK_LEN, MAX_CAPLEN, MAX_INTERFACES, PeekCursor,
    SkippedBlocks,
};

use crate::time::Ts;

/// A link-layer header type (LINKTYPE_* from tcpdump.org; pcap and pcapng share them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// DLT_RAW on some BSDs/OpenBSD; means raw IP in pcap files written there.
    pub const RAW_12: LinkType = LinkType(12);
    /// DLT_RAW on OpenBSD in older files.
    pub const RAW_14: LinkType = LinkType(14);
    pub const RAW: LinkType = LinkType(101);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
    /// OpenBSD loopback: like NULL, but the family is always big-endian.
    pub const LOOP: LinkType = LinkType(108);
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts: Ts,
    pub linktype: LinkType,
    /// Length of the frame on the wire (pcap `orig_len`); `data.len()` is what was captured.
    pub orig_len: u32,
    /// pcapng interface id (0 for classic pcap).
    pub interface: u32,
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// True when the snap length cut the frame.
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.orig_len)
    }
}
