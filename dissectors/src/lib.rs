//! Protocol dissectors for p2ptrace: Skylark (the project's own Skype-like P2P voice
//! protocol, specified normatively in `PROTOCOL.md`), plus STUN, DNS, HTTP/1.x and the TLS
//! ClientHello.
//!
//! Guarantees: zero-copy views parsed with nom 8 and owned values that `emit` the same bytes;
//! no `unsafe`, no panic on any input, every length, count and nesting depth bounded by a
//! named `MAX_*` constant. Must not: depend on anything else of p2ptrace, do I/O, or read
//! clocks.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod detail;
pub mod dns;
pub mod error;
pub mod fields;
pub mod http;
pub mod registry;
pub mod skylark;
pub mod stun;
pub mod tls;

pub use error::DissectError;
pub use registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Status, TrafficClass, Transport,
};
