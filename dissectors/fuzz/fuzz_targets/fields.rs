//! Fuzz the details-pane field trees: `fields::fields` for every protocol on the same bytes
//! (first byte picks the protocol), asserting the bounds the TUI relies on: at least one
//! field, at most `MAX_FIELDS`, every range inside the input, values bounded and printable.
#![no_main]

use dissectors::fields::{MAX_FIELDS, MAX_VALUE_LEN, fields};
use libfuzzer_sys::fuzz_target;

const PROTOCOLS: [&str; 6] = ["skylark", "stun", "dns", "http", "tls", "other"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let proto = PROTOCOLS[usize::from(pick) % PROTOCOLS.len()];
    let fs = fields(proto, bytes);
    assert!(!fs.is_empty() && fs.len() <= MAX_FIELDS);
    for f in &fs {
        assert!(f.range.start <= f.range.end && f.range.end <= bytes.len(), "{f:?}");
        assert!(f.value.chars().count() <= MAX_VALUE_LEN, "{f:?}");
        assert!(!f.value.chars().any(char::is_control), "{f:?}");
    }
});
