//! p2ptrace: packet-trace analyzer for peer-to-peer voice overlays.
//!
//! The pipeline, one module per stage (see ARCHITECTURE.md):
//! `capture` (pcap/pcapng/gzip/stdin → [`capture::Frame`]) → `decode` (L2–L4, IP
//! defragmentation → [`decode::Packet`]) → `flow` (bidirectional flow table, TCP
//! reassembly → flow records and ordered streams) → `report` (summary, CSV).
//! Every stage is sans-IO except `capture`, and takes time from the capture clock.

pub mod analysis;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod dissect;
pub mod flow;
pub mod live;
pub mod lookahead;
pub mod measure;
pub mod netlab;
pub mod peer;
pub mod pipeline;
pub mod prefetch;
pub mod report;
pub mod score;
pub mod sim;
pub mod time;
pub mod tui;
