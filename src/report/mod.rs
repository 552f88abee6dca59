//! Reports: the human summary, the CSV files and the top-flows table. They consume flow
//! records, messages and run statistics; they never reach into the flow table. The two
//! that grow with the capture (`flows.csv`, `messages.csv`) are written through a
//! [`file_sink::FileSink`], by a thread of their own.

pub mod calls_csv;
pub mod csv_row;
pub mod direct_file;
pub mod file_sink;
pub mod flows_csv;
pub mod messages_csv;
pub mod sessions;
pub mod spool;
pub mod summary;
pub mod top;
