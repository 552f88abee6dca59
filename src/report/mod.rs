//! Reports: the human summary and CSV files.
