//! Bounds (PROTOCOL.md §4.3, §7.1): each bound is accepted at its maximum and rejected with
//! `TooLarge` one above it — by the parser (before anything is copied) and by the emitter.

use dissectors::DissectError;
use dissectors::skylark::{
    FieldId, Flags, Header, MAX_BLOB_LEN, MAX_BODY_LEN, MAX_DEPTH, MAX_FRAME_LEN, MAX_LIST_ITEMS,
    MAX_OBJECTS, MAX_REDUNDANCY, MAX_STRING_LEN, Media, Message, MessageView, MsgType, Object,
    VERSION, Value,
};

const UNKNOWN: MsgType = MsgType::Unknown(0x02ff);

/// A datagram of `msg_type` with a hand-made body (bypasses the emitter's checks).
fn datagram(msg_type: MsgType, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    Header {
        version: VERSION,
        flags: Flags::REQUEST,
        msg_type,
        txn_id: 1,
        body_len: body.len() as u16,
    }
    .emit(&mut buf);
    buf.extend_from_slice(body);
    buf
}

fn object(kind: u8, id: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, id];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn too_large(what: &'static str, value: usize, max: usize) -> DissectError {
    DissectError::TooLarge {
        what,
        value: value as u64,
        max: max as u64,
    }
}

#[track_caller]
fn assert_ok(bytes: &[u8]) {
    if let Err(e) = MessageView::parse(bytes) {
        panic!("expected a valid message, got {e}");
    }
}

#[test]
fn object_count_above_max_objects_is_too_large() {
    let one = object(0x01, 0x60, &[0, 0, 0, 1]);
    assert_ok(&datagram(UNKNOWN, &one.repeat(MAX_OBJECTS)));
    let bytes = datagram(UNKNOWN, &one.repeat(MAX_OBJECTS + 1));
    assert_eq!(
        MessageView::parse(&bytes).err(),
        Some(too_large("object count", 513, 512))
    );
    let lax = MessageView::parse_lax(&bytes);
    assert_eq!(lax.stop.unwrap().offset, 12 + 8 * MAX_OBJECTS);
}

#[test]
fn list_items_above_max_list_items_is_too_large() {
    let item = object(0x04, 0x01, b"");
    let ok = object(0x06, 0x26, &item.repeat(MAX_LIST_ITEMS));
    assert_ok(&datagram(UNKNOWN, &ok));
    let bad = object(0x06, 0x26, &item.repeat(MAX_LIST_ITEMS + 1));
    assert_eq!(
        MessageView::parse(&datagram(UNKNOWN, &bad)).err(),
        Some(too_large("list items", 257, 256))
    );
}

fn nested(levels: usize, leaf: &[u8]) -> Vec<u8> {
    let mut v = leaf.to_vec();
    for _ in 0..levels {
        v = object(0x06, 0x27, &v);
    }
    v
}

#[test]
fn nesting_deeper_than_max_depth_is_too_large() {
    let leaf = object(0x01, 0x22, &[0, 0, 0, 1]);
    // MAX_DEPTH - 1 lists put the leaf at depth MAX_DEPTH.
    assert_ok(&datagram(UNKNOWN, &nested(MAX_DEPTH - 1, &leaf)));
    let bad = datagram(UNKNOWN, &nested(MAX_DEPTH, &leaf));
    assert_eq!(
        MessageView::parse(&bad).err(),
        Some(too_large("nesting depth", 5, 4))
    );
}

#[test]
fn string_above_max_string_len_is_too_large() {
    let ok = object(0x04, 0x11, &vec![b'a'; MAX_STRING_LEN]);
    assert_ok(&datagram(UNKNOWN, &ok));
    let bad = object(0x04, 0x11, &vec![b'a'; MAX_STRING_LEN + 1]);
    assert_eq!(
        MessageView::parse(&datagram(UNKNOWN, &bad)).err(),
        Some(too_large("string length", 1025, 1024))
    );
}

#[test]
fn blob_above_max_blob_len_is_too_large() {
    let ok = object(0x05, 0x0b, &vec![0; MAX_BLOB_LEN]);
    assert_ok(&datagram(UNKNOWN, &ok));
    let bad = object(0x05, 0x0b, &vec![0; MAX_BLOB_LEN + 1]);
    assert_eq!(
        MessageView::parse(&datagram(UNKNOWN, &bad)).err(),
        Some(too_large("blob length", 4097, 4096))
    );
}

#[test]
fn body_above_max_body_len_is_too_large_from_the_header_alone() {
    let ok = object(0x7f, 0x60, &vec![0; MAX_BODY_LEN - 4]);
    assert_ok(&datagram(UNKNOWN, &ok));
    let bad = object(0x7f, 0x60, &vec![0; MAX_BODY_LEN - 3]);
    let bytes = datagram(UNKNOWN, &bad);
    let want = Some(too_large("body length", 16385, 16384));
    assert_eq!(MessageView::parse(&bytes).err(), want);
    // The header alone is enough to refuse: nothing of the body is looked at.
    assert_eq!(MessageView::parse(&bytes[..12]).err(), want);
}

fn media_body(count: u8, frames: &[&[u8]], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 1, 0, 0, 0, 240, 1, count];
    for f in frames {
        b.push(f.len() as u8);
        b.extend_from_slice(f);
    }
    b.extend_from_slice(payload);
    b
}

#[test]
fn redundancy_above_max_redundancy_is_too_large() {
    let f: &[u8] = &[1, 2];
    assert_ok(&datagram(MsgType::Voice, &media_body(4, &[f; 4], &[9])));
    let bad = datagram(MsgType::Voice, &media_body(5, &[f; 5], &[9]));
    assert_eq!(
        MessageView::parse(&bad).err(),
        Some(too_large("redundancy count", 5, 4))
    );
}

#[test]
fn frame_above_max_frame_len_is_too_large() {
    assert_ok(&datagram(
        MsgType::Voice,
        &media_body(0, &[], &[7; MAX_FRAME_LEN]),
    ));
    let bad = datagram(MsgType::Voice, &media_body(0, &[], &[7; MAX_FRAME_LEN + 1]));
    assert_eq!(
        MessageView::parse(&bad).err(),
        Some(too_large("frame length", 256, 255))
    );
}

#[test]
fn emitter_refuses_what_the_parser_would_refuse() {
    let many = (0..=MAX_OBJECTS)
        .map(|_| Object::u32(FieldId::Seq, 1))
        .collect();
    let m = Message::new(UNKNOWN, Flags::REQUEST, 1, many);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("object count", 513, 512))
    );

    let long = Object::new(FieldId::Reason, Value::Str("a".repeat(MAX_STRING_LEN + 1)));
    let m = Message::new(UNKNOWN, Flags::REQUEST, 1, vec![long]);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("string length", 1025, 1024))
    );

    let blob = Object::blob(FieldId::CredentialBlob, &vec![0; MAX_BLOB_LEN + 1]);
    let m = Message::new(UNKNOWN, Flags::REQUEST, 1, vec![blob]);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("blob length", 4097, 4096))
    );

    let items = (0..=MAX_LIST_ITEMS)
        .map(|_| Object::str(FieldId::User, ""))
        .collect();
    let m = Message::new(
        UNKNOWN,
        Flags::REQUEST,
        1,
        vec![Object::list(FieldId::Users, items)],
    );
    assert_eq!(m.to_bytes().err(), Some(too_large("list items", 257, 256)));

    let blobs = (0..5)
        .map(|_| Object::blob(FieldId::Proof, &[0; MAX_BLOB_LEN]))
        .collect();
    let m = Message::new(UNKNOWN, Flags::REQUEST, 1, blobs);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("body length", 5 * 4100, 16384))
    );

    let media = Media {
        redundancy: vec![vec![1]; MAX_REDUNDANCY + 1],
        ..Media::default()
    };
    let m = Message::media(MsgType::Voice, 1, media);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("redundancy count", 5, 4))
    );

    let media = Media {
        payload: vec![0; MAX_FRAME_LEN + 1],
        ..Media::default()
    };
    let m = Message::media(MsgType::Voice, 1, media);
    assert_eq!(
        m.to_bytes().err(),
        Some(too_large("frame length", 256, 255))
    );

    let m = Message::new(
        MsgType::Voice,
        Flags::from_bits(Flags::OBFUSCATED),
        1,
        vec![],
    );
    assert_eq!(
        m.to_bytes().err(),
        Some(DissectError::Invalid { what: "flags" })
    );
}

#[test]
fn a_known_field_of_another_kind_is_invalid_at_its_offset_at_any_depth() {
    let node_id = object(0x02, 0x03, &[0; 8]);
    let seq = object(0x01, 0x22, &[0, 0, 0, 1]);
    let seq_as_str = object(0x04, 0x22, b"1");
    let field_kind = DissectError::Invalid { what: "field kind" };
    let stop = |body: &[u8]| {
        let bytes = datagram(MsgType::NatPing, body);
        let lax = MessageView::parse_lax(&bytes);
        lax.stop.map(|s| (s.offset, s.reason))
    };
    assert_eq!(stop(&[node_id.clone(), seq.clone()].concat()), None);
    // Top level: the second object (12 + 12).
    assert_eq!(
        stop(&[node_id.clone(), seq_as_str.clone()].concat()),
        Some((24, field_kind.clone()))
    );
    // Inside a list (an extra `entries` field): the item, after the list's own header.
    let list = object(0x06, 0x27, &[seq.clone(), seq_as_str.clone()].concat());
    assert_eq!(
        stop(&[node_id.clone(), seq.clone(), list].concat()),
        Some((12 + 12 + 8 + 4 + 8, field_kind.clone()))
    );
    // The first one counts.
    assert_eq!(
        stop(&[seq_as_str.clone(), node_id.clone(), seq_as_str.clone()].concat()),
        Some((12, field_kind))
    );
    // A structural error anywhere comes first, even after a field of the wrong kind.
    let bad_u32 = object(0x01, 0x60, &[0, 0, 1]);
    assert_eq!(
        stop(&[node_id, seq_as_str, bad_u32].concat()),
        Some((12 + 12 + 5, DissectError::Invalid { what: "u32 length" }))
    );
}
