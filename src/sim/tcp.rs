//! TCP over smoltcp (helper fills in).
