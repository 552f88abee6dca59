//! Fuzz HTTP/1.x: the probe, the head parser and its accessors, and the flow dissector over
//! both sides. Input: `[seg][orig_len: u16] orig.. resp..`. The sides are fed whole, then
//! in `seg`-byte pieces (rows must not depend on segmentation when neither run hit an
//! error), then interleaved piecewise for coverage of request/response pairing.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::http;
use dissectors::registry::{Side, Transport};
use libfuzzer_sys::fuzz_target;

fn run(orig: &[u8], resp: &[u8], seg: usize) -> common::Outcome {
    let mut flow = (http::DESCRIPTOR.new_flow)(Transport::Tcp);
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
        let _ = http::probe(Transport::Tcp, side, data);
        if let Ok(head) = http::parse_head(data) {
            assert!(head.head_len <= data.len());
            let _ = head.content_length();
            let _ = head.chunked();
            let _ = head.headers().count();
            let _ = head.body_framing(false);
            let _ = head.body_framing(true);
        }
    }
    let whole = run(orig, resp, usize::MAX);
    let split = run(orig, resp, seg);
    if whole.errors == 0 && split.errors == 0 {
        assert_eq!(whole.rows, split.rows, "rows depend on segmentation");
    }
    // Interleaved: a response piece may arrive before its request is complete.
    let mut flow = (http::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = common::Outcome::default();
    let (mut fo, mut fr) = (common::Feeder::default(), common::Feeder::default());
    let (mut o, mut r) = (orig.chunks(seg), resp.chunks(seg));
    loop {
        let (a, b) = (o.next(), r.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if let Some(c) = a {
            fo.push(flow.as_mut(), Side::Orig, c, &mut out);
        }
        if let Some(c) = b {
            fr.push(flow.as_mut(), Side::Resp, c, &mut out);
        }
    }
    // And with fuzzer-chosen chunks and gaps on the originator side.
    let mut flow = (http::DESCRIPTOR.new_flow)(Transport::Tcp);
    let _ = common::drive_chunked(flow.as_mut(), Side::Orig, orig, &mut out);
});
