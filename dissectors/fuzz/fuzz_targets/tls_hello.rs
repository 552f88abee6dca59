//! Fuzz the hello parsers on a handshake body (after the 4-byte handshake header): the
//! ClientHello as TLS and as DTLS with its accessors, the ServerHello, and the row builder
//! for both types, whole and marked truncated.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use dissectors::tls::{self, ClientHello, ServerHello, handshake_type};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for dtls in [false, true] {
        if let Ok(ch) = ClientHello::parse(data, dtls) {
            let _ = ch.sni();
            let _ = ch.alpn().count();
            let _ = ch.supported_versions().count();
            let _ = ch.cipher_suites().count();
            let _ = ch.extensions().count();
            let _ = ch.preferred_version();
        }
    }
    if let Ok(sh) = ServerHello::parse(data) {
        let _ = sh.extensions().count();
        let _ = sh.alpn().count();
        let _ = sh.selected_version();
    }
    for typ in [handshake_type::CLIENT_HELLO, handshake_type::SERVER_HELLO] {
        for dtls in [false, true] {
            for truncated in [false, true] {
                let wire = data.len() + tls::HANDSHAKE_HEADER_LEN;
                if let Some(m) = tls::hello_message(typ, data, dtls, wire, truncated) {
                    common::check_row(&m);
                }
            }
        }
    }
});
