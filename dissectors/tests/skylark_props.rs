//! Property tests from the shared strategies (tests/skylark_common): emit→parse round trips
//! for every family, strict round trips for schema-valid messages, TCP segmentation
//! independence, and no panic (and consistent answers) on arbitrary bytes.

mod skylark_common;

use dissectors::registry::{Probe, Progress, Side, Transport};
use dissectors::skylark::{BodyView, DESCRIPTOR, Message, MessageView, parse_frame};
use proptest::prelude::*;
use skylark_common::{arb_message_of_family, arb_strict_message};

/// A claimed UDP flow's one look at a datagram (`parse_datagram_if_sure`) takes exactly the
/// datagrams the probe is sure of, with what `parse` gives them, and nothing else.
fn one_look_agrees_with_probe_then_parse(bytes: &[u8]) -> Result<(), TestCaseError> {
    let sure = (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, bytes) == Probe::Yes;
    let mut flow = (DESCRIPTOR.new_flow)(Transport::Udp);
    let (mut once, mut twice) = (Vec::new(), Vec::new());
    let got = flow.parse_datagram_if_sure(DESCRIPTOR.probe, Side::Orig, 0, bytes, &mut once);
    prop_assert_eq!(got.is_some(), sure);
    if sure {
        let want = flow.parse(Side::Orig, 0, bytes, &mut twice);
        prop_assert_eq!(got, Some(want));
        prop_assert_eq!(once, twice);
    } else {
        prop_assert!(once.is_empty());
    }
    Ok(())
}

/// Structural round trip: whatever the schema says, the body comes back identical.
fn structural_round_trip(m: &Message) -> Result<(), TestCaseError> {
    let bytes = m
        .to_bytes()
        .map_err(|e| TestCaseError::reject(e.to_string()))?;
    prop_assert_eq!(bytes.len(), m.buffer_len());
    let lax = MessageView::parse_lax(&bytes);
    let header = lax.header.expect("header parses");
    prop_assert_eq!(header.msg_type, m.msg_type);
    prop_assert_eq!(header.flags, m.flags);
    prop_assert_eq!(header.txn_id, m.txn_id);
    let view = MessageView {
        header,
        body: lax.body.expect("body parses"),
    };
    prop_assert_eq!(&view.to_owned_message(), m);
    if let BodyView::Objects(objects) = view.body {
        // The undecoded walk agrees with the decoded one: ids, kinds, lengths, lookups.
        let raw: Vec<_> = objects.raw().collect();
        let wire: usize = raw.iter().map(|o| o.wire_len()).sum();
        prop_assert_eq!(wire, objects.as_bytes().len());
        prop_assert_eq!(raw.len(), objects.len());
        for (r, o) in raw.iter().zip(objects.iter()) {
            prop_assert_eq!((r.id, r.kind), (o.id, o.value.kind()));
            prop_assert_eq!(objects.get(r.id), objects.iter().find(|x| x.id == r.id));
        }
    }
    if let Some(stop) = &lax.stop {
        // Only schema rules may fail for arbitrary bodies, never structure.
        let schema = matches!(
            stop.reason,
            dissectors::DissectError::Invalid {
                what: "missing mandatory field"
                    | "duplicate field"
                    | "response flag"
                    | "error flag on a non-request type"
            }
        );
        prop_assert!(schema, "structural stop {:?}", stop);
    }
    prop_assert_eq!(
        (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &bytes),
        Probe::Yes
    );
    Ok(())
}

proptest! {
    #[test]
    fn login_messages_round_trip(m in arb_message_of_family(1)) { structural_round_trip(&m)?; }
    #[test]
    fn lookup_messages_round_trip(m in arb_message_of_family(2)) { structural_round_trip(&m)?; }
    #[test]
    fn signalling_messages_round_trip(m in arb_message_of_family(3)) { structural_round_trip(&m)?; }
    #[test]
    fn keepalive_messages_round_trip(m in arb_message_of_family(4)) { structural_round_trip(&m)?; }
    #[test]
    fn media_messages_round_trip(m in arb_message_of_family(5)) { structural_round_trip(&m)?; }

    #[test]
    fn strict_messages_of_every_family_round_trip(m in (1u8..=5).prop_flat_map(arb_strict_message)) {
        let bytes = m.to_bytes().unwrap();
        prop_assert_eq!(Message::parse(&bytes).unwrap(), m.clone());
        let (view, used) = parse_frame(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(view.to_owned_message(), m);
    }

    #[test]
    fn tcp_decoding_does_not_depend_on_segmentation(
        msgs in prop::collection::vec((1u8..=5).prop_flat_map(arb_strict_message), 1..6),
        cuts in prop::collection::vec(1usize..64, 1..20),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_bytes().unwrap()).collect();
        let run = |sizes: &[usize]| {
            let mut flow = (DESCRIPTOR.new_flow)(Transport::Tcp);
            let mut pending = Vec::new();
            let mut rows = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < stream.len() {
                let n = sizes[i % sizes.len()].min(stream.len() - at);
                pending.extend_from_slice(&stream[at..at + n]);
                at += n;
                i += 1;
                match flow.parse(Side::Orig, 0, &pending, &mut rows) {
                    Progress::Parsed { consumed, .. } | Progress::Error { consumed, .. } => {
                        pending.drain(..consumed);
                    }
                }
            }
            rows
        };
        let whole = run(&[stream.len()]);
        prop_assert_eq!(whole.len(), msgs.len());
        prop_assert_eq!(run(&cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_strict_implies_lax_complete(
        bytes in prop::collection::vec(any::<u8>(), 0..200)
    ) {
        let lax = MessageView::parse_lax(&bytes);
        let strict = MessageView::parse(&bytes);
        prop_assert_eq!(strict.is_ok(), lax.stop.is_none());
        if let Ok(v) = strict {
            prop_assert_eq!(v.to_owned_message().to_bytes().unwrap(), bytes.clone());
            if let BodyView::Objects(o) = v.body { let _ = o.len(); }
        }
        let _ = parse_frame(&bytes);
        one_look_agrees_with_probe_then_parse(&bytes)?;
        for t in [Transport::Udp, Transport::Tcp] {
            let _ = (DESCRIPTOR.probe)(t, Side::Orig, &bytes);
            let mut flow = (DESCRIPTOR.new_flow)(t);
            let mut rows = Vec::new();
            let _ = flow.parse(Side::Orig, 0, &bytes, &mut rows);
        }
    }

    #[test]
    fn one_look_at_a_datagram_agrees_with_the_probe_and_the_parse(
        m in (1u8..=5).prop_flat_map(arb_strict_message),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        trailing in prop::collection::vec(any::<u8>(), 0..3),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        // Valid messages, then some with flipped bytes (header or body), trailing bytes or
        // cut short: sure and unsure datagrams both.
        let mut bytes = m.to_bytes().unwrap();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        bytes.extend(trailing);
        let keep = cut.map_or(bytes.len(), |c| c.index(bytes.len() + 1));
        one_look_agrees_with_probe_then_parse(&bytes[..keep])?;
    }

    #[test]
    fn bytes_with_a_valid_header_never_panic(
        m in (1u8..=5).prop_flat_map(arb_strict_message),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        // Corrupt the body only, keeping the header valid, so the body walk is exercised.
        let mut bytes = m.to_bytes().unwrap();
        if bytes.len() > 12 {
            for (at, x) in flips {
                let i = 12 + at % (bytes.len() - 12);
                bytes[i] ^= x;
            }
        }
        let lax = MessageView::parse_lax(&bytes);
        prop_assert!(lax.header.is_some());
        if let Ok(v) = MessageView::parse(&bytes) {
            let _ = v.render();
        }
    }
}
