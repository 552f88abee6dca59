//! Flows: the bidirectional flow table ([`FlowTable`]) and per-direction TCP stream
//! reassembly ([`reassembly`]).
//!
//! Sans-IO: the table is driven by `ingest(packet)` and `poll_expired(now)` with capture
//! time, and hands finished [`FlowRecord`]s to a sink. Memory is bounded by the live-flow cap
//! and the reassembly budgets. Must not: parse application payloads (that is `dissectors`).

mod conn_state;
mod index;
mod key;
mod live_starts;
pub mod reassembly;
mod record;
mod table;

pub use conn_state::ConnState;
pub use key::{Addr, Endpoint, FlowKey};
pub use record::{DirStats, EndReason, FlowRecord, Uid, UidCache, UidText, proto_name};
pub use table::{FlowConfig, FlowSink, FlowTable, FlowTableStats, IdleTimeouts, Ingested};

/// Direction of a packet relative to its flow's originator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// From the originator (first packet's sender; the SYN sender for TCP).
    Orig,
    /// From the responder.
    Resp,
}

impl Dir {
    pub fn flip(self) -> Dir {
        match self {
            Dir::Orig => Dir::Resp,
            Dir::Resp => Dir::Orig,
        }
    }

    /// 0 for `Orig`, 1 for `Resp`: index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Orig => "orig",
            Dir::Resp => "resp",
        }
    }
}
