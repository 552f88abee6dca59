//! Truncation sweep (PROTOCOL.md §2.3, §3.4): every prefix of every §13 vector gives the
//! exact `Truncated { needed }` from the streaming frame parser and the strict parser, a lax
//! `Stop` with the header once 12 bytes are in, and the right flow behaviour on UDP and TCP.

mod skylark_common;

use dissectors::DissectError;
use dissectors::registry::{Progress, Side, Status, Transport};
use dissectors::skylark::{DESCRIPTOR, MessageView, parse_frame};
use skylark_common::spec_vectors;

fn needed(k: usize, total: usize) -> usize {
    if k < 12 { 12 - k } else { total - k }
}

#[test]
fn every_prefix_of_every_vector_needs_exactly_the_missing_bytes() {
    for v in spec_vectors() {
        let total = v.bytes.len();
        for k in 0..total {
            let p = &v.bytes[..k];
            let want = DissectError::Truncated {
                needed: needed(k, total),
            };
            assert_eq!(
                parse_frame(p).err(),
                Some(want.clone()),
                "{} cut at {k}",
                v.name
            );
            assert_eq!(
                MessageView::parse(p).err(),
                Some(want.clone()),
                "{} cut at {k}",
                v.name
            );
            let lax = MessageView::parse_lax(p);
            let stop = lax.stop.expect("a cut message stops");
            assert_eq!(stop.reason, want, "{} cut at {k}", v.name);
            assert!(
                stop.offset <= k.max(12),
                "{} cut at {k}: stop at {}",
                v.name,
                stop.offset
            );
            assert_eq!(lax.header.is_some(), k >= 12, "{} cut at {k}", v.name);
        }
    }
}

#[test]
fn lax_parse_of_a_cut_message_keeps_the_whole_objects_before_the_cut() {
    let v = skylark_common::spec_vector("invite");
    // Header (12) + call-id object (8) + 3 bytes of the next object.
    let lax = MessageView::parse_lax(&v.bytes[..23]);
    let body = match lax.body {
        Some(dissectors::skylark::BodyView::Objects(o)) => o,
        other => panic!("unexpected body {other:?}"),
    };
    assert_eq!(body.len(), 1);
    assert_eq!(
        body.get_u32(dissectors::skylark::FieldId::CallId),
        Some(0xc0de)
    );
    assert_eq!(lax.stop.unwrap().offset, 20);
}

#[test]
fn tcp_flow_waits_for_exactly_the_missing_bytes_of_every_prefix() {
    for v in spec_vectors() {
        let total = v.bytes.len();
        for k in 1..total {
            let mut flow = (DESCRIPTOR.new_flow)(Transport::Tcp);
            let mut out = Vec::new();
            let progress = flow.parse(Side::Orig, 0, &v.bytes[..k], &mut out);
            assert_eq!(
                progress,
                Progress::Parsed {
                    consumed: 0,
                    needed: Some(needed(k, total))
                },
                "{} cut at {k}",
                v.name
            );
            assert!(out.is_empty());
        }
    }
}

#[test]
fn udp_flow_reports_a_cut_datagram_as_truncated() {
    for v in spec_vectors() {
        let total = v.bytes.len();
        for k in 12..total {
            let mut flow = (DESCRIPTOR.new_flow)(Transport::Udp);
            let mut out = Vec::new();
            let progress = flow.parse(Side::Orig, 0, &v.bytes[..k], &mut out);
            assert_eq!(
                progress,
                Progress::Parsed {
                    consumed: k,
                    needed: None
                }
            );
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].status, Status::Truncated, "{} cut at {k}", v.name);
            assert_eq!(out[0].len as usize, total);
        }
    }
}
