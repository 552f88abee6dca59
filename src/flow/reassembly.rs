//! STUB — to be implemented (helper: reassembly).
