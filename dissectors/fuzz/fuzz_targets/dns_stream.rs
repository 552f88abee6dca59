//! Fuzz DNS over TCP (2-byte length prefix): the stream probe and the flow dissector fed
//! fuzzer-chosen chunks with gaps.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::dns;
use dissectors::registry::{Side, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = common::Outcome::default();
    let stream = common::drive_chunked(flow.as_mut(), Side::Orig, input, &mut out);
    let _ = dns::probe(Transport::Tcp, Side::Orig, &stream);
});
