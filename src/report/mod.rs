//! Reports: the human summary and CSV files.

pub mod spool;
