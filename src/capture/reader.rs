//! STUB — to be implemented (helper: capture).
use super::{CaptureError, Frame};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { nanos: bool, big_endian: bool },
    PcapNg,
}

#[derive(Clone, Debug, Default)]
pub struct CaptureStats {
    pub frames: u64,
}

pub struct CaptureReader {}

impl CaptureReader {
    pub fn open(_path: &Path) -> Result<CaptureReader, CaptureError> {
        todo!()
    }
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        todo!()
    }
}
