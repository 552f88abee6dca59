//! Fuzz DTLS datagrams: the UDP probe, the record walk of one datagram, and the UDP flow
//! dissector.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::registry::{Side, Transport};
use dissectors::tls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tls::probe(Transport::Udp, Side::Orig, data);
    let mut rows = Vec::new();
    let _ = tls::dtls_datagram(data, &mut rows);
    assert!(rows.len() <= tls::MAX_DTLS_RECORDS);
    rows.iter().for_each(common::check_row);
    let mut flow = (tls::DESCRIPTOR.new_flow)(Transport::Udp);
    let mut out = common::Outcome::default();
    common::Feeder::default().push(flow.as_mut(), Side::Orig, data, &mut out);
});
