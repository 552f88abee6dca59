//! Reports: the human summary, `flows.csv`, and the top-flows table. They consume flow
//! records and run statistics; they never reach into the flow table.

pub mod calls_csv;
pub mod csv_row;
pub mod file_sink;
pub mod flows_csv;
pub mod messages_csv;
pub mod sessions;
pub mod spool;
pub mod summary;
pub mod top;
