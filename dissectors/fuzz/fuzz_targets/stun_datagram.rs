//! Fuzz STUN datagrams: the UDP probe, the zero-copy view (attributes, FINGERPRINT check,
//! row), ChannelData, the UDP flow dissector, and the owned message's round trip: a strictly
//! valid message emits bytes that parse back to an equal message (FINGERPRINT values aside,
//! since emit always writes the correct CRC).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::registry::{Side, Transport};
use dissectors::stun::{self, Attribute, ChannelDataView, StunMessage, StunView};
use libfuzzer_sys::fuzz_target;

fn without_fingerprint(mut m: StunMessage) -> StunMessage {
    for a in &mut m.attributes {
        if let Attribute::Fingerprint(v) = a {
            *v = 0;
        }
    }
    m
}

fuzz_target!(|data: &[u8]| {
    let _ = stun::probe(Transport::Udp, Side::Orig, data);
    if let Ok(view) = StunView::parse(data) {
        assert!(view.bytes.len() <= data.len());
        let _ = view.attributes().count();
        let _ = view.fingerprint_ok();
        common::check_row(&view.to_message());
    }
    if let Ok(cd) = ChannelDataView::parse(data) {
        common::check_row(&cd.to_message());
    }
    if let Ok(msg) = StunMessage::parse(data) {
        let mut out = Vec::new();
        msg.emit(&mut out).expect("a parsed message emits");
        assert_eq!(out.len(), msg.buffer_len());
        let back = StunMessage::parse(&out).expect("emitted bytes parse");
        assert_eq!(without_fingerprint(back), without_fingerprint(msg));
    }
    let mut flow = (stun::DESCRIPTOR.new_flow)(Transport::Udp);
    let mut out = common::Outcome::default();
    common::Feeder::default().push(flow.as_mut(), Side::Orig, data, &mut out);
});
