//! Fuzz datagram parsing: strict and lax parse, rendering, the UDP flow dissector (and its
//! one look at a claimed flow's datagram, which must agree with the probe), and the
//! invariant that a strictly valid message re-emits to the same bytes.
#![no_main]

use dissectors::registry::{Probe, Side, Transport};
use dissectors::skylark::{DESCRIPTOR, MessageView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lax = MessageView::parse_lax(data);
    match MessageView::parse(data) {
        Ok(view) => {
            assert!(lax.stop.is_none());
            let _ = view.render();
            let owned = view.to_owned_message();
            assert_eq!(owned.to_bytes().expect("valid message emits"), data);
        }
        Err(_) => assert!(lax.stop.is_some()),
    }
    let mut flow = (DESCRIPTOR.new_flow)(Transport::Udp);
    let mut rows = Vec::new();
    let parsed = flow.parse(Side::Orig, 0, data, &mut rows);
    assert!(rows.len() <= 1);
    // The claimed flow's one look: exactly the datagrams the probe is sure of, parsed alike.
    let mut once = Vec::new();
    let sure = (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, data) == Probe::Yes;
    match flow.parse_datagram_if_sure(DESCRIPTOR.probe, Side::Orig, 0, data, &mut once) {
        Some(p) => assert!(sure && p == parsed && once == rows),
        None => assert!(!sure && once.is_empty()),
    }
});
