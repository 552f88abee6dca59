//! Fuzz datagram parsing: strict and lax parse, rendering, the UDP flow dissector, and the
//! invariant that a strictly valid message re-emits to the same bytes.
#![no_main]

use dissectors::registry::{Side, Transport};
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
    let _ = flow.parse(Side::Orig, 0, data, &mut rows);
    assert!(rows.len() <= 1);
});
