//! TCP framing and resynchronisation (PROTOCOL.md §2.3) and the registry glue: frames split
//! over many segments (byte by byte) and many frames in one segment decode the same; garbage
//! before a frame is skipped and reported; more than MAX_RESYNC_SCAN bytes of garbage ends
//! the stream; rows carry class, ids and status; the descriptor probes by content.

mod skylark_common;

use dissectors::registry::{
    FlowDissector, Message, Probe, Progress, Side, Status, TrafficClass, Transport,
};
use dissectors::skylark::{DESCRIPTOR, MAX_RESYNC_SCAN, MsgType};
use skylark_common::{spec_vector, spec_vectors};

/// Plays the analyzer's side of the contract: keeps unconsumed bytes and offers them again
/// with each new segment. Returns the rows and every error.
fn feed(segments: &[&[u8]]) -> (Vec<Message>, Vec<Progress>) {
    let mut flow = (DESCRIPTOR.new_flow)(Transport::Tcp);
    feed_flow(flow.as_mut(), segments)
}

fn feed_flow(flow: &mut dyn FlowDissector, segments: &[&[u8]]) -> (Vec<Message>, Vec<Progress>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for seg in segments {
        pending.extend_from_slice(seg);
        let consumed = match flow.parse(Side::Orig, 0, &pending, &mut rows) {
            Progress::Parsed { consumed, .. } => consumed,
            p @ Progress::Error { consumed, .. } => {
                errors.push(p);
                consumed
            }
        };
        pending.drain(..consumed);
    }
    (rows, errors)
}

fn all_vectors_stream() -> Vec<u8> {
    spec_vectors().into_iter().flat_map(|v| v.bytes).collect()
}

fn names(rows: &[Message]) -> Vec<String> {
    rows.iter().map(|r| r.msg_type.to_string()).collect()
}

fn expected_names() -> Vec<String> {
    spec_vectors()
        .iter()
        .map(|v| {
            let first = v.text.split_whitespace().next().unwrap();
            if first.starts_with("unknown-") {
                "unknown".to_owned()
            } else {
                first.to_owned()
            }
        })
        .collect()
}

#[test]
fn many_frames_in_one_segment_all_decode() {
    let stream = all_vectors_stream();
    let (rows, errors) = feed(&[&stream]);
    assert!(errors.is_empty());
    assert_eq!(names(&rows), expected_names());
    assert!(rows.iter().all(|r| r.status == Status::Complete));
}

#[test]
fn frames_split_byte_by_byte_decode_the_same() {
    let stream = all_vectors_stream();
    let segments: Vec<&[u8]> = stream.chunks(1).collect();
    let (rows, errors) = feed(&segments);
    assert!(errors.is_empty());
    let (whole, _) = feed(&[&stream]);
    assert_eq!(rows, whole);
}

#[test]
fn garbage_then_a_valid_frame_resyncs_and_reports_the_skip() {
    let invite = spec_vector("invite").bytes;
    let mut stream = b"GET / HTTP/1.1\r\nS\x10garbage".to_vec();
    let garbage = stream.len();
    stream.extend_from_slice(&invite);
    let (rows, errors) = feed(&[&stream]);
    assert!(errors.is_empty());
    assert_eq!(names(&rows), ["resync", "invite"]);
    assert_eq!(rows[0].status, Status::Malformed);
    assert_eq!(rows[0].len as usize, garbage);
    assert_eq!(rows[1].status, Status::Complete);
}

#[test]
fn garbage_split_across_segments_still_resyncs() {
    let ringing = spec_vector("ringing").bytes;
    let mut stream = vec![0xeeu8; 100];
    stream.push(0x53); // a lone magic byte that is not a header
    stream.extend_from_slice(&ringing);
    let segments: Vec<&[u8]> = stream.chunks(7).collect();
    let (rows, errors) = feed(&segments);
    assert!(errors.is_empty());
    assert_eq!(names(&rows), ["resync", "ringing"]);
    assert_eq!(rows[0].len, 101);
}

#[test]
fn more_garbage_than_max_resync_scan_is_an_error() {
    let garbage = vec![0u8; MAX_RESYNC_SCAN + 100];
    let (rows, errors) = feed(&[&garbage]);
    assert!(rows.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(matches!(errors[0], Progress::Error { .. }));
}

#[test]
fn malformed_body_is_reported_and_the_next_frame_still_decodes() {
    // A ringing whose call-id object claims 3 bytes: valid header, malformed body.
    let mut bad = spec_vector("ringing").bytes;
    bad[15] = 3;
    let mut stream = bad.clone();
    stream.extend_from_slice(&spec_vector("bye").bytes);
    let (rows, errors) = feed(&[&stream]);
    assert!(errors.is_empty());
    assert_eq!(names(&rows), ["ringing", "bye"]);
    assert_eq!(rows[0].status, Status::Malformed);
    assert!(rows[0].detail.as_deref().unwrap().contains("stop@12"));
    assert_eq!(rows[1].status, Status::Complete);
}

#[test]
fn gap_then_mid_frame_bytes_resync_on_the_next_header() {
    let mut flow = (DESCRIPTOR.new_flow)(Transport::Tcp);
    let invite = spec_vector("invite").bytes;
    flow.on_gap(Side::Orig, 10);
    let mut stream = invite[10..].to_vec();
    stream.extend_from_slice(&spec_vector("ringing").bytes);
    let (rows, errors) = feed_flow(flow.as_mut(), &[&stream]);
    assert!(errors.is_empty());
    assert_eq!(names(&rows), ["resync", "ringing"]);
}

#[test]
fn rows_carry_class_ids_and_details() {
    let (rows, _) = feed(&[&all_vectors_stream()]);
    let by = |name: &str| rows.iter().find(|r| r.msg_type == name).unwrap().clone();
    let invite = by("invite");
    assert_eq!(invite.protocol, "skylark");
    assert_eq!(invite.class, Some(TrafficClass::Signalling));
    assert_eq!(invite.txn_id, Some(10));
    assert_eq!(invite.call_id, Some(0xc0de));
    assert_eq!(invite.detail.as_deref(), Some("bob"));
    let voice = by("voice");
    assert_eq!(voice.class, Some(TrafficClass::Media));
    assert_eq!(voice.txn_id, None);
    assert_eq!(voice.call_id, Some(0xc0de));
    assert_eq!(voice.len, 87);
    assert_eq!(by("sn-refresh").class, Some(TrafficClass::Keepalive));
    assert_eq!(by("search").class, Some(TrafficClass::Lookup));
    assert_eq!(by("auth-proof").class, Some(TrafficClass::Login));
    let err = rows
        .iter()
        .find(|r| r.msg_type == "search" && r.txn_id == Some(23))
        .unwrap();
    assert_eq!(err.detail.as_deref(), Some("error=unauthenticated"));
}

#[test]
fn udp_flow_gives_one_row_per_datagram_and_errors_on_non_skylark() {
    let mut flow = (DESCRIPTOR.new_flow)(Transport::Udp);
    let mut rows = Vec::new();
    for v in spec_vectors() {
        let p = flow.parse(Side::Resp, 0, &v.bytes, &mut rows);
        assert_eq!(
            p,
            Progress::Parsed {
                consumed: v.bytes.len(),
                needed: None
            }
        );
    }
    assert_eq!(names(&rows), expected_names());
    let p = flow.parse(Side::Orig, 0, b"\x00\x01\x00\x00 not skylark", &mut rows);
    assert!(matches!(p, Progress::Error { consumed: 16, .. }));
}

#[test]
fn descriptor_names_transports_and_hints() {
    assert_eq!(DESCRIPTOR.name, "skylark");
    assert_eq!(DESCRIPTOR.transports, &[Transport::Udp, Transport::Tcp]);
    assert_eq!(DESCRIPTOR.port_hints, &[33033, 33034]);
}

#[test]
fn probe_says_yes_to_every_vector_on_both_transports() {
    for v in spec_vectors() {
        assert_eq!(
            (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &v.bytes),
            Probe::Yes,
            "{}",
            v.name
        );
        assert_eq!(
            (DESCRIPTOR.probe)(Transport::Tcp, Side::Orig, &v.bytes),
            Probe::Yes,
            "{}",
            v.name
        );
    }
}

#[test]
fn probe_says_maybe_to_prefixes_and_cut_datagrams() {
    let v = spec_vector("invite").bytes;
    for k in 1..12 {
        assert_eq!(
            (DESCRIPTOR.probe)(Transport::Tcp, Side::Orig, &v[..k]),
            Probe::Maybe,
            "{k}"
        );
    }
    assert_eq!(
        (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &v[..30]),
        Probe::Maybe
    );
    let mut longer = v.clone();
    longer.push(0);
    assert_eq!(
        (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &longer),
        Probe::No
    );
    assert_eq!(
        (DESCRIPTOR.probe)(Transport::Tcp, Side::Orig, &longer),
        Probe::Yes
    );
}

#[test]
fn probe_says_no_to_other_protocols_and_a_bad_check() {
    let stun = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let http = b"GET /ui/0/1.0.0/en/getlatestversion?ver=1.0.0 HTTP/1.1\r\n";
    let tls = [
        0x16, 0x03, 0x01, 0x00, 0xcd, 0x01, 0x00, 0x00, 0xc9, 0x03, 0x03, 0x00,
    ];
    for bytes in [&stun[..], &http[..], &tls[..]] {
        assert_eq!(
            (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, bytes),
            Probe::No
        );
        assert_eq!(
            (DESCRIPTOR.probe)(Transport::Tcp, Side::Orig, bytes),
            Probe::No
        );
    }
    let mut bad = spec_vector("ringing").bytes;
    bad[11] ^= 1;
    assert_eq!(
        (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &bad),
        Probe::No
    );
}

#[test]
fn probe_says_maybe_to_a_reserved_family() {
    let m = dissectors::skylark::Message::new(
        MsgType::Unknown(0x0701),
        dissectors::skylark::Flags::REQUEST,
        1,
        vec![],
    );
    let b = m.to_bytes().unwrap();
    assert_eq!(
        (DESCRIPTOR.probe)(Transport::Udp, Side::Orig, &b),
        Probe::Maybe
    );
}
