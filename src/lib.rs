//! p2ptrace: packet-trace analyzer for peer-to-peer voice overlays.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! `capture` (pcap/pcapng/gzip/stdin → [`capture::Frame`]) → `decode` (L2–L4, IP
//! defragmentation → [`decode::Packet`]) → `flow` (bidirectional flow table, TCP
//! reassembly → flow records and ordered streams) → `report` (summary, CSV).
//! Every stage is sans-IO except `capture`, and takes time from the capture clock.

/// Diagnostics go to stderr, which a user may close early (`p2ptrace … 2>&1 | head -1`):
/// std's `eprintln!` then panics (exit 101) on a later line. This one, in scope for every
/// module below, drops what cannot be written instead, so the run ends as it would have.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod analysis;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod direct_io;
pub mod dissect;
pub mod flow;
pub mod handoff;
pub mod live;
pub mod lookahead;
pub mod measure;
pub mod netlab;
pub mod peer;
pub mod pipeline;
pub mod prefetch;
pub mod recycle;
pub mod report;
pub mod score;
pub mod sim;
pub mod time;
pub mod tui;
