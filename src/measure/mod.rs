//! Measurements built from decoded messages (issue 6): sessions reconstructed from the
//! messages the pipeline hands to a [`crate::pipeline::FlowConsumer`], turned into report rows.
//!
//! Guarantees: streaming and bounded — every tracker holds at most its `MAX_*` entries, each
//! of fixed size (names truncated), and forgets what it has reported; deterministic (capture
//! time only, no hash-order output). Must not: read the wall clock, do I/O (reports write the
//! rows), or reach into the flow table.

pub mod calls;
