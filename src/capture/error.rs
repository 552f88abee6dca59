//! Errors of the capture layer: each names the input, and damage names the byte offset.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input could not be opened or read at all (missing, a directory, permissions).
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The input is empty.
    #[error("{path}: file is empty, not a capture")]
    Empty { path: PathBuf },
    /// The first bytes are not a pcap, pcapng or gzip magic number.
    #[error("{path}: not a pcap or pcapng file (first bytes {magic})")]
    NotACapture { path: PathBuf, magic: String },
    /// The input was readable up to `offset`, then damaged (cut, absurd length, bad block).
    /// Frames before `offset` were delivered.
    #[error("{path}: damaged at byte offset {offset}: {reason}")]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// An I/O error part-way through (e.g. a gzip stream that is corrupt).
    #[error("{path}: read error at byte offset {offset}: {source}")]
    Read {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

impl CaptureError {
    /// True when the input could not be read at all (exit 1), false when it was damaged
    /// part-way and earlier frames were delivered (exit 3).
    pub fn is_fatal_at_start(&self) -> bool {
        matches!(
            self,
            CaptureError::Open { .. }
                | CaptureError::Empty { .. }
                | CaptureError::NotACapture { .. }
        )
    }
}
