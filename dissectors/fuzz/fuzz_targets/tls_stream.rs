//! Fuzz the TLS record layer on TCP: the probe, the record header parser, and the flow
//! dissector over both sides. Input: `[seg][orig_len: u16] orig.. resp..`; fed whole, then
//! in `seg`-byte pieces (same rows when neither run hit an error), then with fuzzer-chosen
//! chunks and gaps.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::registry::{Side, Transport};
use dissectors::tls;
use libfuzzer_sys::fuzz_target;

fn run(orig: &[u8], resp: &[u8], seg: usize) -> common::Outcome {
    let mut flow = (tls::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = common::Outcome::default();
    common::drive_fixed(flow.as_mut(), Side::Orig, orig, seg, &mut out);
    common::drive_fixed(flow.as_mut(), Side::Resp, resp, seg, &mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((seg, orig, resp)) = common::two_sides(input) else {
        return;
    };
    for (side, data) in [(Side::Orig, orig), (Side::Resp, resp)] {
        let _ = tls::probe(Transport::Tcp, side, data);
        if let Ok(h) = tls::parse_record_header(data) {
            assert!(usize::from(h.length) <= tls::MAX_RECORD_LEN);
        }
    }
    let whole = run(orig, resp, usize::MAX);
    let split = run(orig, resp, seg);
    if whole.errors == 0 && split.errors == 0 {
        assert_eq!(whole.rows, split.rows, "rows depend on segmentation");
    }
    let mut flow = (tls::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = common::Outcome::default();
    let _ = common::drive_chunked(flow.as_mut(), Side::Orig, orig, &mut out);
    let _ = common::drive_chunked(flow.as_mut(), Side::Resp, resp, &mut out);
});
