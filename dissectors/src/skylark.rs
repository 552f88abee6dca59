//! STUB — to be implemented by the protocol issue.
