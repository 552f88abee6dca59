//! Errors of the peer outside the wire: state files and configuration. Wire problems are
//! never errors of a node — they are dropped and counted.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadState { path: PathBuf, reason: String },
    #[error("configuration: {0}")]
    Config(String),
}
