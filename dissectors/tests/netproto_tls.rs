//! TLS hello dissector: real ClientHello/ServerHello from ndpi/discord.pcap and a DTLS 1.3
//! ClientHello from ndpi/dtls.pcap, handshake reassembly across records, record skipping,
//! truncation sweeps and never-panic / segmentation-invariance properties.

mod netproto_common;

use dissectors::registry::{FlowDissector, Probe, Progress, Side, Status, Transport};
use dissectors::tls::{self, ClientHello, ServerHello};
use netproto_common::samples::client_hello_record;
use netproto_common::{feed, hex};
use proptest::prelude::*;

/// Frame 4: the ServerHello record (cipher 0xc02b, ALPN h2), then the start of the
/// Certificate record.
fn server_flight() -> Vec<u8> {
    hex(
        "16030300500200004c030360c20400da96a07e781d54e5107a7309e3aeeec74641a494444f574e475244
         0100c02b0000240000000000170000ff01000100000b000201000023000000100005000302683200050000
         16030308970b0008930008900004b9",
    )
}

/// ndpi/dtls.pcap frame 7: DTLS 1.2 record with a ClientHello offering DTLS 1.3.
fn dtls_client_hello() -> Vec<u8> {
    hex(
        "16fefd000000000000000001fd010001f100000000000001f1fefdce7a2a37f1286a36c4d13bb36446c8
         9ad6b11cfff09961cb97089e9b32a2d27d00000036130113021303c02cc02bc030c02f009f009ecca9cc
         a8ccaac027c023c028c024c00ac009c014c013006b006700390033cc14cc13cc1501000191002d000302
         0001002b000302fefc000d001c001a0603050304030806080b0805080a080408090601050104010301
         000a000c000a00190018001700150100001600000033014b01490017004104168466c2c69ed246120ddf
         54f191f8b03d71497503903a1ed4d9a89ecd7826f656b8df63c2e7a1811fd23c4ddba75fc0af9ca78ca6
         bd1edbaeca5d707ccb8a7e01000100b8750a92d038ccc0e772773fe0b72dd5090b64ea673f299ded1a53
         37313175abde3258a017310757cddab10e51415ec761124175e5b7daf988bfa3d8183257959cfe343d2d
         08796fc85ee8d9ace79e141a160685c171d26226c3acfcd7ad45bbc1c36b821d384ac8dbdd6536e143b3
         00f1f315a7d4005eebe259984b19094716f74086a30db35d7b2e026904f64150567c609b08959699f117
         755d587c9bd9ce7425188aef1273c7fd826bb5a62cce3d65c95c4248d5a4e6bbdaa84f959dafd1dbc7d1
         19639801b38747ed24c144df7ebe5b6f2ed2dfe80bd57d927b8ca2b6a2bb4d3e6ba58ecbc48c3afea6b7
         ab355d448181b4b4779220f6deee50be9b1b58",
    )
}

fn new_flow(t: Transport) -> Box<dyn FlowDissector> {
    (tls::DESCRIPTOR.new_flow)(t)
}

/// Re-cuts the handshake bytes of `record` into records of at most `max` bytes.
fn split_records(record: &[u8], max: usize) -> Vec<u8> {
    let hs = &record[5..];
    let mut out = Vec::new();
    for piece in hs.chunks(max) {
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out
}

fn app_data(n: usize) -> Vec<u8> {
    let mut r = vec![23, 3, 3];
    r.extend_from_slice(&(n as u16).to_be_bytes());
    r.extend(std::iter::repeat_n(0xAB, n));
    r
}

#[test]
fn client_hello_fields_decode() {
    let rec = client_hello_record();
    let h = tls::parse_record_header(&rec).unwrap();
    assert_eq!((h.content_type, h.version, h.length), (22, 0x0301, 171));
    let body = &rec[9..];
    let ch = ClientHello::parse(body, false).unwrap();
    assert_eq!(ch.legacy_version, 0x0303);
    assert!(ch.session_id.is_empty());
    let suites: Vec<u16> = ch.cipher_suites().collect();
    // tshark -e tls.handshake.ciphersuite
    assert_eq!(
        suites,
        [
            0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f,
            0x0035
        ]
    );
    assert_eq!(ch.compression_methods, &[0]);
    assert_eq!(ch.sni(), Some(&b"discord.com"[..]));
    let alpn: Vec<&[u8]> = ch.alpn().collect();
    assert_eq!(alpn, [&b"h2"[..], &b"http/1.1"[..]]);
    assert_eq!(ch.supported_versions().count(), 0);
    assert_eq!(ch.preferred_version(), 0x0303);
    assert_eq!(ch.extensions().count(), 9);
}

#[test]
fn server_hello_fields_decode() {
    let f = server_flight();
    let sh = ServerHello::parse(&f[9..85]).unwrap();
    assert_eq!(sh.cipher_suite, 0xc02b);
    assert_eq!(sh.selected_version(), 0x0303);
    assert_eq!(sh.alpn().collect::<Vec<_>>(), [&b"h2"[..]]);
}

#[test]
fn flow_rows_for_both_hellos_and_nothing_for_later_records() {
    let mut client = client_hello_record();
    client.extend_from_slice(&app_data(300));
    let mut flow = new_flow(Transport::Tcp);
    let rows = feed(
        flow.as_mut(),
        &[(Side::Orig, &client), (Side::Resp, &server_flight())],
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].msg_type, "client-hello");
    assert_eq!(rows[0].protocol, "tls");
    assert_eq!(rows[0].len, 171);
    assert_eq!(rows[0].status, Status::Complete);
    assert_eq!(
        rows[0].detail.as_deref(),
        Some("sni=discord.com alpn=h2,http/1.1 ver=1.2")
    );
    assert_eq!(rows[1].msg_type, "server-hello");
    assert_eq!(
        rows[1].detail.as_deref(),
        Some("alpn=h2 ver=1.2 cipher=0xc02b")
    );
}

#[test]
fn server_flight_skips_the_partial_certificate_record() {
    let f = server_flight();
    let mut flow = new_flow(Transport::Tcp);
    let mut out = Vec::new();
    // All bytes consumed: the certificate record is skipped as it arrives.
    assert_eq!(
        flow.parse(Side::Resp, 0, &f, &mut out),
        Progress::Parsed {
            consumed: f.len(),
            needed: None
        }
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn client_hello_split_over_records_is_reassembled() {
    for max in [1, 7, 50, 170] {
        let mut s = split_records(&client_hello_record(), max);
        s.extend_from_slice(&app_data(20));
        let rows = feed(new_flow(Transport::Tcp).as_mut(), &[(Side::Orig, &s)]);
        assert_eq!(rows.len(), 1, "max {max}");
        assert_eq!(
            rows[0].detail.as_deref(),
            Some("sni=discord.com alpn=h2,http/1.1 ver=1.2")
        );
    }
}

#[test]
fn byte_at_a_time_stream_gives_one_row() {
    let mut s = split_records(&client_hello_record(), 64);
    s.extend_from_slice(&app_data(100));
    s.extend_from_slice(&app_data(5));
    let chunks: Vec<(Side, &[u8])> = s.chunks(1).map(|c| (Side::Orig, c)).collect();
    let rows = feed(new_flow(Transport::Tcp).as_mut(), &chunks);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Status::Complete);
}

#[test]
fn oversized_handshake_is_reported_truncated_and_skipped() {
    // Handshake header claims 16 MiB.
    let mut s = vec![22, 3, 1, 0, 8, 1, 0xFF, 0xFF, 0xFF, 3, 3, 0, 0];
    s.extend_from_slice(&app_data(10));
    let rows = feed(new_flow(Transport::Tcp).as_mut(), &[(Side::Orig, &s)]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Status::Truncated);
}

#[test]
fn dtls_client_hello_over_udp() {
    let d = dtls_client_hello();
    assert_eq!(tls::probe(Transport::Udp, Side::Orig, &d), Probe::Yes);
    let mut flow = new_flow(Transport::Udp);
    let mut out = Vec::new();
    let p = flow.parse(Side::Orig, 0, &d, &mut out);
    assert_eq!(
        p,
        Progress::Parsed {
            consumed: d.len(),
            needed: None
        }
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].msg_type, "client-hello");
    assert_eq!(out[0].status, Status::Complete);
    assert_eq!(out[0].detail.as_deref(), Some("ver=dtls1.3"));
    // A STUN datagram on the same port is passed over quietly (RFC 7983 demultiplexing).
    let stun = hex("000100002112a442b7e7a701bc34d686fa87dfae");
    assert_eq!(
        flow.parse(Side::Orig, 0, &stun, &mut out),
        Progress::Parsed {
            consumed: 20,
            needed: None
        }
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn probes() {
    let p = |t, d: &[u8]| tls::probe(t, Side::Orig, d);
    assert_eq!(p(Transport::Tcp, &client_hello_record()), Probe::Yes);
    assert_eq!(p(Transport::Tcp, &server_flight()), Probe::Yes);
    assert_eq!(p(Transport::Tcp, &[22, 3]), Probe::Maybe);
    assert_eq!(p(Transport::Tcp, &[22, 3, 1, 0, 10]), Probe::Maybe);
    assert_eq!(p(Transport::Tcp, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(p(Transport::Tcp, &app_data(5)), Probe::No);
    assert_eq!(p(Transport::Udp, &client_hello_record()), Probe::No);
}

#[test]
fn every_prefix_waits_and_never_panics() {
    let rec = client_hello_record();
    for n in 0..rec.len() {
        let mut flow = new_flow(Transport::Tcp);
        let mut out = Vec::new();
        match flow.parse(Side::Orig, 0, &rec[..n], &mut out) {
            Progress::Parsed {
                consumed: 0,
                needed,
            } => assert!(n == 0 || needed.is_some()),
            other => panic!("prefix {n}: {other:?}"),
        }
        assert!(out.is_empty());
        assert_ne!(tls::probe(Transport::Tcp, Side::Orig, &rec[..n]), Probe::No);
        // The hello body cut short fails to parse, or (cut exactly before the optional
        // extensions block) parses without extensions.
        if n > 9 {
            if let Ok(ch) = ClientHello::parse(&rec[9..n], false) {
                assert!(ch.extensions.is_empty(), "prefix {n}");
            }
        }
    }
    let d = dtls_client_hello();
    for n in 0..d.len() {
        let mut out = Vec::new();
        let _ = new_flow(Transport::Udp).parse(Side::Orig, 0, &d[..n], &mut out);
        assert!(out.iter().all(|m| m.status != Status::Complete));
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        for t in [Transport::Tcp, Transport::Udp] {
            let _ = tls::probe(t, Side::Orig, &data);
            let mut flow = new_flow(t);
            let mut out = Vec::new();
            let p = flow.parse(Side::Orig, 0, &data, &mut out);
            let consumed = match p {
                Progress::Parsed { consumed, .. } | Progress::Error { consumed, .. } => consumed,
            };
            prop_assert!(consumed <= data.len());
        }
        let _ = ClientHello::parse(&data, false).map(|c| (c.sni(), c.alpn().count(), c.preferred_version()));
        let _ = ClientHello::parse(&data, true).map(|c| c.extensions().count());
        let _ = ServerHello::parse(&data).map(|s| s.selected_version());
    }

    #[test]
    fn handshake_record_with_random_body_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        // A valid record and handshake header around random hello bytes.
        let mut s = vec![22, 3, 1];
        s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        s.push(1);
        s.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        s.extend_from_slice(&body);
        let mut out = Vec::new();
        let _ = new_flow(Transport::Tcp).parse(Side::Orig, 0, &s, &mut out);
        prop_assert_eq!(out.len(), 1);
        for m in &out {
            let d = m.detail.as_deref().unwrap_or("");
            prop_assert!(d.len() <= tls::MAX_DETAIL_LEN);
            prop_assert!(d.bytes().all(|c| (0x20..0x7f).contains(&c)));
        }
    }

    #[test]
    fn rows_do_not_depend_on_segmentation(max in 1usize..200, cuts in proptest::collection::vec(1usize..64, 1..40)) {
        let mut stream = split_records(&client_hello_record(), max);
        stream.extend_from_slice(&app_data(77));
        let whole = feed(new_flow(Transport::Tcp).as_mut(), &[(Side::Orig, &stream)]);
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            if at >= stream.len() { break; }
            let end = (at + c).min(stream.len());
            chunks.push((Side::Orig, &stream[at..end]));
            at = end;
        }
        chunks.push((Side::Orig, &stream[at..]));
        prop_assert_eq!(feed(new_flow(Transport::Tcp).as_mut(), &chunks), whole);
    }
}
