//! The capture backend trait: what the live session needs of a packet source.
//!
//! Guarantees: a source yields frames in the order the kernel delivered them, each with a
//! capture timestamp and its original length, and reports the kernel's counters. Must not:
//! decode anything, or block longer than its read timeout (the session polls its stop flag
//! between reads).

use crate::capture::LinkType;
use crate::time::Ts;

/// One frame as the kernel delivered it, borrowed from the backend's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    pub ts: Ts,
    /// Length on the wire (≥ `data.len()` when the snap length cut the frame).
    pub orig_len: u32,
    pub data: &'a [u8],
}

/// Kernel counters since the capture opened (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames the kernel's capture hook saw (including those it dropped).
    pub received: u64,
    /// Frames the kernel dropped because the capture buffer was full.
    pub dropped: u64,
}

/// Why a read failed for good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("interface {iface} went down")]
    Down { iface: String },
    #[error("interface {iface} disappeared")]
    Gone { iface: String },
    #[error("reading from {iface}: {detail}")]
    Read { iface: String, detail: String },
}

/// A live packet source (AF_PACKET through pnet, or libpcap).
pub trait CaptureSource: Send {
    /// Short backend name for summaries ("afpacket", "libpcap").
    fn backend(&self) -> &'static str;
    /// The link type of every frame.
    fn linktype(&self) -> LinkType;
    /// The snap length frames are cut to.
    fn snaplen(&self) -> u32;
    /// The next frame, or `Ok(None)` when the read timeout passed without one.
    fn next_frame(&mut self) -> Result<Option<RawFrame<'_>>, SourceError>;
    /// Cumulative kernel counters (best effort: zeros when the backend cannot tell).
    fn stats(&mut self) -> KernelStats;
}
