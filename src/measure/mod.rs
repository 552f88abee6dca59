//! Sessions and measurements reconstructed from decoded messages (issue 6).

pub mod phonehome;
