//! NAT boxes (helper fills in).
