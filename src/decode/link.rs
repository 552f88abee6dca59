//! STUB — to be implemented (helper: decode).
