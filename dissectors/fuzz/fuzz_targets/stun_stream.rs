//! Fuzz the STUN TCP path (plain and RFC 4571 framing): the stream probe and the flow
//! dissector fed fuzzer-chosen chunks with gaps, unconsumed bytes kept as the analyzer does.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::registry::{Side, Transport};
use dissectors::stun;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let mut flow = (stun::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = common::Outcome::default();
    let stream = common::drive_chunked(flow.as_mut(), Side::Orig, input, &mut out);
    let _ = stun::probe(Transport::Tcp, Side::Orig, &stream);
    let _ = stun::detect_framing(&stream);
});
