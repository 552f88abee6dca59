//! Dissector registry: how the analyzer finds the dissector for a flow by content.
//! (Descriptor and per-flow state: to be completed by the protocol issue.)

/// Transport a dissector runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Outcome of a cheap content probe on the first bytes of a flow direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// Certainly not this protocol.
    No,
    /// Could be; more bytes or more messages needed.
    Maybe,
    /// Structurally valid message of this protocol.
    Yes,
}
