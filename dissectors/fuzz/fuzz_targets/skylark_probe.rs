//! Fuzz the allocation-free entry points on raw bytes: the content probe, the header
//! accessor and header validation, and TCP resynchronisation (PROTOCOL.md §2.3–§3.4).
#![no_main]

use dissectors::registry::{Probe, Side, Transport};
use dissectors::skylark::{Packet, framing, probe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let udp = probe(Transport::Udp, Side::Orig, data);
    let tcp = probe(Transport::Tcp, Side::Resp, data);
    let packet = Packet::new_unchecked(data);
    let header = packet.header();
    // A UDP "yes" needs a valid header whose length is the datagram's.
    if udp == Probe::Yes {
        let h = header.clone().expect("probe yes implies a valid header");
        assert_eq!(h.total_len(), data.len());
        assert_eq!(tcp, Probe::Yes);
    }
    let _ = (
        packet.msg_type(),
        packet.txn_id(),
        packet.body_len(),
        packet.computed_check(),
    );
    let _ = framing::resync(data);
    let _ = framing::frame_len(data);
});
