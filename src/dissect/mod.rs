//! Application-layer dissection of flows (analyzer side of the `dissectors` crate).
//!
//! Per flow: content probes pick a dissector (port hints only order the probes — Skylark
//! listens on random ports); UDP datagrams go to it one by one; TCP goes through per-direction
//! stream reassembly first, and the dissector sees the in-order bytes (what it leaves
//! unconsumed waits, bounded, for more). Decoded messages are handed to the caller with their
//! direction and capture time; the flow's `service` is the claiming dissector's name.
//!
//! Guarantees: sans-IO; per-flow memory is one small enum until a flow carries payload, and is
//! dropped back to a few bytes once a flow is given up on; probe buffers, pending stream bytes
//! and reassembly are bounded. Must not: classify traffic (that is the classifier's job, from
//! these messages) or touch flow counters.

mod flow_app;

pub use flow_app::{DissectConfig, DissectStats, Dissection, FlowApp};
