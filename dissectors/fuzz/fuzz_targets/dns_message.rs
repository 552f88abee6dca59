//! Fuzz DNS messages: the UDP probe, the view's walk (`validate`, every entry and record
//! data, name/address pairs rendered), the row, and the UDP flow dissector.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::dns::{self, DnsView, Entry};
use dissectors::registry::{Side, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dns::probe(Transport::Udp, Side::Orig, data);
    if let Ok(view) = DnsView::parse(data) {
        if let Ok(end) = view.validate() {
            assert!(end <= data.len());
        }
        for e in view.entries() {
            match e {
                Ok(Entry::Question(q)) => {
                    let _ = q.name.to_string();
                }
                Ok(Entry::Record(r)) => {
                    let _ = r.name.to_string();
                    if let Ok(d) = r.data() {
                        let _ = format!("{d:?}");
                    }
                }
                Err(_) => break,
            }
        }
        for (name, addr) in view.name_addresses() {
            let s = name.to_string();
            assert!(
                s.len() <= 4 * dns::MAX_NAME_LEN,
                "name rendering unbounded: {}",
                s.len()
            );
            let _ = addr;
        }
        common::check_row(&view.to_message());
    }
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Udp);
    let mut out = common::Outcome::default();
    common::Feeder::default().push(flow.as_mut(), Side::Resp, data, &mut out);
});
