//! PROTOCOL.md §13 test vectors, read from PROTOCOL.md itself: every vector parses strictly
//! to its hand-built message and renders to its documented text; every hand-built message
//! emits the documented bytes (smoltcp's four tests per message: deconstruct, construct,
//! parse, emit).

mod skylark_common;

use dissectors::skylark::{Header, Message, MessageView, MsgType, Packet, VERSION};
use skylark_common::{hex_dump, spec_invalid, spec_vector, spec_vectors, vectors};

#[track_caller]
fn builder(name: &str) -> Message {
    vectors()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no builder for {name}"))
        .1
}

#[test]
fn spec_vectors_and_builders_are_the_same_set() {
    let spec: Vec<String> = spec_vectors().into_iter().map(|v| v.name).collect();
    let built: Vec<String> = vectors().into_iter().map(|(n, _)| n.to_owned()).collect();
    assert_eq!(
        spec, built,
        "PROTOCOL.md §13.3 and tests/skylark_common disagree"
    );
}

#[test]
fn every_known_message_type_has_a_vector() {
    let covered: Vec<MsgType> = vectors().iter().map(|(_, m)| m.msg_type).collect();
    for t in MsgType::ALL {
        assert!(covered.contains(&t), "no test vector for {}", t.name());
    }
}

#[test]
fn header_check_example_of_section_3_1_holds() {
    let v = spec_vector("hc-probe");
    assert_eq!(
        &v.bytes[..12],
        &[0x53, 0x10, 0x01, 0x01, 0, 0, 0, 1, 0, 0x1d, 0xab, 0xd0]
    );
}

#[test]
fn invalid_examples_stop_where_and_why_the_spec_says() {
    let cases = spec_invalid();
    assert!(cases.len() >= 10);
    for v in cases {
        let lax = MessageView::parse_lax(&v.bytes);
        let stop = lax.stop.unwrap_or_else(|| panic!("{} parsed", v.name));
        assert_eq!(
            format!("stop@{}: {}\n", stop.offset, stop.reason),
            v.text,
            "{}",
            v.name
        );
        assert_eq!(
            MessageView::parse(&v.bytes).err(),
            Some(stop.reason),
            "{}",
            v.name
        );
    }
}

#[test]
fn fuzz_seeds_are_the_spec_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/skylark");
    for v in spec_vectors() {
        let path = format!("{dir}/{}.bin", v.name);
        let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(seed, v.bytes, "{path} differs from PROTOCOL.md");
    }
}

fn deconstruct(name: &str) {
    let v = spec_vector(name);
    let m = builder(name);
    let p = Packet::new_checked(&v.bytes[..]).unwrap();
    assert_eq!(p.magic(), 0x53);
    assert_eq!(p.version(), VERSION);
    assert_eq!(p.flags(), m.flags);
    assert_eq!(p.msg_type(), m.msg_type);
    assert_eq!(p.txn_id(), m.txn_id);
    assert_eq!(p.total_len(), v.bytes.len());
    assert_eq!(p.check(), p.computed_check());
    assert_eq!(p.payload().len(), usize::from(p.body_len()));
}

fn construct(name: &str) {
    let v = spec_vector(name);
    let m = builder(name);
    let mut bytes = [0u8; 12];
    let mut p = Packet::new_unchecked(&mut bytes[..]);
    p.set_magic(0x53);
    p.set_version_flags(VERSION, m.flags);
    p.set_msg_type(m.msg_type);
    p.set_txn_id(m.txn_id);
    p.set_body_len((v.bytes.len() - 12) as u16);
    p.fill_check();
    assert_eq!(&bytes[..], &v.bytes[..12]);
    let h = Header {
        version: VERSION,
        flags: m.flags,
        msg_type: m.msg_type,
        txn_id: m.txn_id,
        body_len: (v.bytes.len() - 12) as u16,
    };
    let mut buf = Vec::new();
    h.emit(&mut buf);
    assert_eq!(&buf[..], &v.bytes[..12]);
}

fn parse(name: &str) {
    let v = spec_vector(name);
    let view = MessageView::parse(&v.bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        view.render(),
        v.text,
        "{name}: decoded text differs from PROTOCOL.md"
    );
    assert_eq!(Message::parse(&v.bytes).unwrap(), builder(name));
}

fn emit(name: &str) {
    let v = spec_vector(name);
    let m = builder(name);
    let bytes = m.to_bytes().unwrap();
    assert_eq!(m.buffer_len(), bytes.len());
    assert_eq!(
        bytes,
        v.bytes,
        "{name}: emitted bytes differ from PROTOCOL.md; emitted:\n{}",
        hex_dump(&bytes)
    );
}

macro_rules! vector_tests {
    ($($module:ident => $name:literal),+ $(,)?) => {
        $(
            mod $module {
                #[test]
                fn deconstruct() {
                    super::deconstruct($name);
                }
                #[test]
                fn construct() {
                    super::construct($name);
                }
                #[test]
                fn parse() {
                    super::parse($name);
                }
                #[test]
                fn emit() {
                    super::emit($name);
                }
            }
        )+
    };
}

vector_tests! {
    hc_probe => "hc-probe",
    hc_probe_ack => "hc-probe-ack",
    auth_hello => "auth-hello",
    auth_challenge => "auth-challenge",
    auth_proof => "auth-proof",
    credential => "credential",
    buddy_list => "buddy-list",
    sn_register => "sn-register",
    sn_register_ack => "sn-register-ack",
    fallback_probe => "fallback-probe",
    fallback_probe_ack => "fallback-probe-ack",
    search => "search",
    search_result => "search-result",
    search_referral => "search-referral",
    presence_query => "presence-query",
    presence_report => "presence-report",
    presence_update => "presence-update",
    hc_exchange_request => "hc-exchange-request",
    hc_exchange => "hc-exchange",
    invite => "invite",
    ringing => "ringing",
    accept => "accept",
    reject => "reject",
    cancel => "cancel",
    hold => "hold",
    resume => "resume",
    bye => "bye",
    relay_request => "relay-request",
    relay_grant => "relay-grant",
    conf_join => "conf-join",
    conf_leave => "conf-leave",
    conf_mixer => "conf-mixer",
    sn_refresh => "sn-refresh",
    sn_refresh_full => "sn-refresh-full",
    sn_refresh_ack => "sn-refresh-ack",
    nat_ping => "nat-ping",
    nat_pong => "nat-pong",
    hold_keepalive => "hold-keepalive",
    voice => "voice",
    voice_redundant => "voice-redundant",
    mix => "mix",
    error_unauthenticated => "error-unauthenticated",
    error_overloaded => "error-overloaded",
    unknown_type => "unknown-type",
}

#[test]
fn owned_and_view_call_ids_agree_on_every_vector() {
    let mut with_call = 0;
    for v in spec_vectors() {
        let view = dissectors::skylark::MessageView::parse(&v.bytes).unwrap();
        let owned = dissectors::skylark::Message::parse(&v.bytes).unwrap();
        assert_eq!(owned.call_id(), view.call_id(), "{}", v.name);
        with_call += usize::from(owned.call_id().is_some());
    }
    assert!(with_call >= 10, "{with_call} vectors carry a call id");
}
