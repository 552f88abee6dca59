//! Sessions and measurements reconstructed from decoded messages (issue 6).

pub mod hosts;
pub mod intervals;
pub mod keepalives;
pub mod phonehome;
