//! HTTP/1.x dissector: heads from ndpi/http_on_sip_port.pcap, body framing (Content-Length,
//! chunked, HEAD, 1xx, until-close) walked incrementally, bounds, truncation sweeps, and
//! chunking-invariance / never-panic properties.

mod netproto_common;

use dissectors::DissectError;
use dissectors::http::{self, BodyFraming, StartLine, parse_head};
use dissectors::registry::{FlowDissector, Probe, Progress, Side, Status, Transport};
use netproto_common::feed;
use proptest::prelude::*;

/// ndpi/http_on_sip_port.pcap frame 3 (an HTTP request on TCP port 5060).
const REQUEST: &[u8] = b"GET /star-123456/index.m3u8?token=89b198b8844824ca15b8b379c26fc1b7dfcba368-5KUJTJ5Y73AGIAOV-1618753174-1618742374 HTTP/1.1\r\nUser-Agent: exoplayer-codelab\r\nHost: 45.58.148.2\r\nConnection: Keep-Alive\r\nAccept-Encoding: gzip\r\n\r\n";

fn response_403(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 403 Forbidden\r\nConnection: keep-alive\r\nContent-Length: {}\r\nServer: Flussonic\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn new_flow() -> Box<dyn FlowDissector> {
    (http::DESCRIPTOR.new_flow)(Transport::Tcp)
}

#[test]
fn real_request_head_decodes() {
    let h = parse_head(REQUEST).unwrap();
    assert_eq!(h.head_len, REQUEST.len());
    assert_eq!(h.header_count, 4);
    let StartLine::Request {
        method,
        target,
        version,
    } = h.start
    else {
        panic!("not a request")
    };
    assert_eq!(method, b"GET");
    assert!(target.starts_with(b"/star-123456/index.m3u8?token="));
    assert_eq!(version, b"HTTP/1.1");
    assert_eq!(h.host(), Some(&b"45.58.148.2"[..]));
    assert_eq!(h.user_agent(), Some(&b"exoplayer-codelab"[..]));
    assert_eq!(h.body_framing(false), Ok(BodyFraming::None));
}

#[test]
fn request_row_has_method_host_and_bounded_path() {
    let rows = feed(new_flow().as_mut(), &[(Side::Orig, REQUEST)]);
    assert_eq!(rows.len(), 1);
    let m = &rows[0];
    assert_eq!((m.protocol, &*m.msg_type), ("http", "GET"));
    assert_eq!(m.len as usize, REQUEST.len());
    assert_eq!(m.status, Status::Complete);
    let d = m.detail.as_deref().unwrap();
    assert!(d.starts_with("host=45.58.148.2 path=/star-123456/index.m3u8?token="));
    assert!(d.len() <= http::MAX_DETAIL_LEN);
}

#[test]
fn response_body_is_consumed_across_calls_without_buffering() {
    let body = vec![b'x'; 1167];
    let resp = response_403(&body);
    let head_len = resp.len() - body.len();
    let mut flow = new_flow();
    let mut out = Vec::new();
    // Head plus the first 100 body bytes: all consumed, body state remembered.
    let p = flow.parse(Side::Resp, 0, &resp[..head_len + 100], &mut out);
    assert_eq!(
        p,
        Progress::Parsed {
            consumed: head_len + 100,
            needed: None
        }
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].msg_type, "response");
    assert_eq!(
        out[0].detail.as_deref(),
        Some("status=403 reason=Forbidden")
    );
    assert_eq!(out[0].len as usize, resp.len());
    // The rest of the body and a second response in one call.
    let mut rest = resp[head_len + 100..].to_vec();
    rest.extend_from_slice(&response_403(b"ok"));
    let p = flow.parse(Side::Resp, 0, &rest, &mut out);
    assert_eq!(
        p,
        Progress::Parsed {
            consumed: rest.len(),
            needed: None
        }
    );
    assert_eq!(out.len(), 2);
}

#[test]
fn chunked_body_fed_byte_at_a_time() {
    let mut stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    stream.extend_from_slice(
        b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: y\r\n\r\n",
    );
    stream.extend_from_slice(&response_403(b""));
    let chunks: Vec<(Side, &[u8])> = stream.chunks(1).map(|c| (Side::Resp, c)).collect();
    let rows = feed(new_flow().as_mut(), &chunks);
    let details: Vec<_> = rows.iter().map(|m| m.detail.clone().unwrap()).collect();
    assert_eq!(
        details,
        ["status=200 reason=OK", "status=403 reason=Forbidden"]
    );
}

#[test]
fn response_to_head_has_no_body() {
    let rows = feed(
        new_flow().as_mut(),
        &[
            (Side::Orig, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n"),
            // Content-Length 50 on the HEAD response is not followed by a body.
            (
                Side::Resp,
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            ),
        ],
    );
    let types: Vec<_> = rows.iter().map(|m| m.msg_type.to_string()).collect();
    assert_eq!(types, ["HEAD", "GET", "response", "response"]);
}

#[test]
fn interim_100_continue_does_not_answer_the_request() {
    let rows = feed(
        new_flow().as_mut(),
        &[
            (Side::Orig, b"HEAD /x HTTP/1.1\r\n\r\n"),
            (
                Side::Resp,
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            ),
        ],
    );
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].detail.as_deref(), Some("status=200 reason=OK"));
}

#[test]
fn response_without_length_runs_until_close() {
    let mut flow = new_flow();
    let rows = feed(
        flow.as_mut(),
        &[
            (Side::Resp, b"HTTP/1.0 200 OK\r\n\r\nbody bytes"),
            (Side::Resp, b"HTTP/1.1 200 OK\r\n\r\n"),
        ],
    );
    // The second "response" is body of the first.
    assert_eq!(rows.len(), 1);
}

#[test]
fn pipelined_requests_in_one_chunk() {
    let mut s = REQUEST.to_vec();
    s.extend_from_slice(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    s.extend_from_slice(REQUEST);
    let rows = feed(new_flow().as_mut(), &[(Side::Orig, &s)]);
    let types: Vec<_> = rows.iter().map(|m| m.msg_type.to_string()).collect();
    assert_eq!(types, ["GET", "POST", "GET"]);
    assert_eq!(rows[1].detail.as_deref(), Some("host=h path=/up"));
}

#[test]
fn conflicting_content_lengths_are_malformed() {
    let mut flow = new_flow();
    let mut out = Vec::new();
    let p = flow.parse(
        Side::Orig,
        0,
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        &mut out,
    );
    assert!(matches!(p, Progress::Error { .. }));
    assert_eq!(out[0].status, Status::Malformed);
}

#[test]
fn header_count_and_line_length_are_bounded() {
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=http::MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(
        parse_head(&many),
        Err(DissectError::TooLarge {
            what: "http header count",
            ..
        })
    ));
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', http::MAX_LINE + 10));
    assert!(matches!(
        parse_head(&long),
        Err(DissectError::TooLarge { .. })
    ));
}

#[test]
fn probe_accepts_methods_and_status_lines_only() {
    let p = |d: &[u8]| http::probe(Transport::Tcp, Side::Orig, d);
    assert_eq!(p(REQUEST), Probe::Yes);
    assert_eq!(p(b"HTTP/1.1 403 Forbidden\r\n"), Probe::Yes);
    assert_eq!(p(b"OPTIONS * HTTP/1.0\r\n"), Probe::Yes);
    assert_eq!(p(b"HTTP/1."), Probe::Maybe);
    assert_eq!(p(b"INVITE sip:a@b SIP/2.0\r\n"), Probe::No);
    assert_eq!(p(b"GET / SIP/2.0\r\n"), Probe::No);
    assert_eq!(p(b"get / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(http::probe(Transport::Udp, Side::Orig, REQUEST), Probe::No);
}

#[test]
fn garbage_stream_is_an_error_and_then_skipped() {
    let mut flow = new_flow();
    let mut out = Vec::new();
    assert!(matches!(
        flow.parse(Side::Orig, 0, b"\x16\x03\x01\x00\x05hello", &mut out),
        Progress::Error { consumed: 10, .. }
    ));
    // After losing sync everything is consumed quietly.
    assert_eq!(
        flow.parse(Side::Orig, 0, REQUEST, &mut out),
        Progress::Parsed {
            consumed: REQUEST.len(),
            needed: None
        }
    );
    assert!(out.is_empty());
}

#[test]
fn gap_inside_a_known_body_keeps_sync() {
    let body = vec![b'z'; 100];
    let resp = response_403(&body);
    let head_len = resp.len() - body.len();
    let mut flow = new_flow();
    let mut out = Vec::new();
    flow.parse(Side::Resp, 0, &resp[..head_len + 10], &mut out);
    flow.on_gap(Side::Resp, 50);
    let mut rest = resp[head_len + 60..].to_vec();
    rest.extend_from_slice(&response_403(b""));
    flow.parse(Side::Resp, 0, &rest, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn every_prefix_of_a_head_waits_for_more() {
    for n in 0..REQUEST.len() {
        let mut flow = new_flow();
        let mut out = Vec::new();
        match flow.parse(Side::Orig, 0, &REQUEST[..n], &mut out) {
            Progress::Parsed { consumed: 0, .. } => {}
            other => panic!("prefix {n}: {other:?}"),
        }
        assert!(out.is_empty());
        assert_ne!(
            http::probe(Transport::Tcp, Side::Orig, &REQUEST[..n]),
            Probe::No
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = http::probe(Transport::Tcp, Side::Orig, &data);
        let _ = parse_head(&data).map(|h| (h.content_length(), h.chunked(), h.headers().count()));
        let mut flow = new_flow();
        let mut out = Vec::new();
        for side in [Side::Orig, Side::Resp] {
            let p = flow.parse(side, 0, &data, &mut out);
            let consumed = match p {
                Progress::Parsed { consumed, .. } | Progress::Error { consumed, .. } => consumed,
            };
            prop_assert!(consumed <= data.len());
        }
    }

    #[test]
    fn rows_do_not_depend_on_segmentation(cuts in proptest::collection::vec(1usize..40, 1..60)) {
        let mut stream = REQUEST.to_vec();
        stream.extend_from_slice(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        stream.extend_from_slice(b"PUT /p HTTP/1.1\r\nContent-Length: 4\r\n\r\nwxyz");
        let whole = feed(new_flow().as_mut(), &[(Side::Orig, &stream)]);
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            if at >= stream.len() { break; }
            let end = (at + c).min(stream.len());
            chunks.push((Side::Orig, &stream[at..end]));
            at = end;
        }
        chunks.push((Side::Orig, &stream[at..]));
        let pieces = feed(new_flow().as_mut(), &chunks);
        prop_assert_eq!(whole.len(), 3);
        prop_assert_eq!(pieces, whole);
    }
}
