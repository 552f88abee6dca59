//! DNS dissector: real query/response pairs (from peafowl/viber.pcap and ndpi/zoom.pcap),
//! compression and its loop protection, truncation sweeps, TCP streaming and never-panic
//! properties.

mod netproto_common;

use dissectors::DissectError;
use dissectors::dns::{self, DnsView, Entry, RData, Section};
use dissectors::registry::{Message, Probe, Progress, Side, Status, Transport};
use netproto_common::samples::{query, response};
use netproto_common::{feed_tcp, hex};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ndpi/zoom.pcap frame 29: `local SOA?` answered NXDOMAIN with an SOA in authority.
fn nxdomain() -> Vec<u8> {
    hex(
        "c18881830001000000010000056c6f63616c000006000100000600010000098f004001610c726f6f74
         2d73657276657273036e657400056e73746c640c766572697369676e2d67727303636f6d007858e878
         000007080000038400093a8000015180",
    )
}

fn udp_row(b: &[u8]) -> Message {
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Udp);
    let mut out = Vec::new();
    let p = flow.parse(Side::Orig, 0, b, &mut out);
    assert_eq!(
        p,
        Progress::Parsed {
            consumed: b.len(),
            needed: None
        }
    );
    out.pop().unwrap()
}

fn tcp_framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut s = Vec::new();
    for m in msgs {
        s.extend_from_slice(&(m.len() as u16).to_be_bytes());
        s.extend_from_slice(m);
    }
    s
}

#[test]
fn query_row_names_the_question() {
    // tshark -r peafowl/viber.pcap -Y dns -T fields -e dns.id -e dns.qry.name -e dns.qry.type
    let m = udp_row(&query());
    assert_eq!(m.protocol, "dns");
    assert_eq!(m.msg_type, "query");
    assert_eq!(m.txn_id, Some(0xe183));
    assert_eq!(m.len, 36);
    assert_eq!(m.status, Status::Complete);
    assert_eq!(m.detail.as_deref(), Some("graph.facebook.com A"));
}

#[test]
fn response_row_follows_the_cname_chain() {
    let m = udp_row(&response());
    assert_eq!(m.msg_type, "response");
    assert_eq!(m.status, Status::Complete);
    assert_eq!(
        m.detail.as_deref(),
        Some("graph.facebook.com A -> api.facebook.com,star.c10r.facebook.com,31.13.86.8")
    );
}

#[test]
fn response_sections_decode_with_compression() {
    let b = response();
    let v = DnsView::parse(&b).unwrap();
    assert!(v.header.is_response());
    assert_eq!(v.validate(), Ok(b.len()));
    let entries: Vec<Entry> = v.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(entries.len(), 1 + 3 + 2 + 2);
    let ns: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if r.section == Section::Authority => match r.data() {
                Ok(RData::Ns(n)) => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(ns, ["b.ns.c10r.facebook.com", "a.ns.c10r.facebook.com"]);
    // tshark's dns.a also lists the additional-section glue: 69.171.239.11, 69.171.255.11.
    let glue: Vec<IpAddr> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Record(r) if r.section == Section::Additional => match r.data() {
                Ok(RData::A(a)) => Some(IpAddr::V4(a)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        glue,
        [
            IpAddr::V4(Ipv4Addr::new(69, 171, 239, 11)),
            IpAddr::V4(Ipv4Addr::new(69, 171, 255, 11))
        ]
    );
}

#[test]
fn name_addresses_pairs_owner_names_with_answers() {
    let b = response();
    let v = DnsView::parse(&b).unwrap();
    let pairs: Vec<(String, IpAddr)> = v
        .name_addresses()
        .map(|(n, a)| (n.to_string(), a))
        .collect();
    assert_eq!(
        pairs,
        [(
            "star.c10r.facebook.com".to_string(),
            IpAddr::V4(Ipv4Addr::new(31, 13, 86, 8))
        )]
    );
    let q = v.questions().next().unwrap();
    assert!(q.name.eq_dotted("graph.facebook.com."));
    assert!(q.name.eq_dotted("GRAPH.facebook.com"));
    assert!(!q.name.eq_dotted("facebook.com"));
}

#[test]
fn nxdomain_is_reported_in_detail() {
    let m = udp_row(&nxdomain());
    assert_eq!(m.detail.as_deref(), Some("local SOA -> NXDOMAIN"));
    assert_eq!(m.status, Status::Complete);
}

#[test]
fn aaaa_answer_decodes() {
    let mut b =
        hex("1234 8180 0001 0001 0000 0000 03777777 076578616d706c65 03636f6d 00 001c 0001");
    b.extend_from_slice(&hex("c00c 001c 0001 00000e10 0010"));
    b.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    let v = DnsView::parse(&b).unwrap();
    let pairs: Vec<_> = v.name_addresses().collect();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0.to_string(), "www.example.com");
    assert_eq!(pairs[0].1, "2001:db8::1".parse::<IpAddr>().unwrap());
    assert_eq!(
        udp_row(&b).detail.as_deref(),
        Some("www.example.com AAAA -> 2001:db8::1")
    );
    assert_eq!(dns::probe(Transport::Udp, Side::Resp, &b), Probe::Yes);
}

#[test]
fn pointer_loop_is_malformed_not_a_hang() {
    // Question name is a pointer to itself.
    let b = hex("0001 0100 0001 0000 0000 0000 c00c 0001 0001");
    let m = udp_row(&b);
    assert_eq!(m.status, Status::Malformed);
    assert_eq!(dns::probe(Transport::Udp, Side::Orig, &b), Probe::No);
    let v = DnsView::parse(&b).unwrap();
    assert!(matches!(
        v.validate(),
        Err(DissectError::TooLarge {
            what: "dns compression pointers",
            ..
        })
    ));
}

#[test]
fn odd_label_bytes_are_escaped() {
    let b = hex("0001 0100 0001 0000 0000 0000 03 61 2e 0a 00 0001 0001");
    let v = DnsView::parse(&b).unwrap();
    assert_eq!(
        v.questions().next().unwrap().name.to_string(),
        "a\\046\\010"
    );
    let d = udp_row(&b).detail.unwrap();
    assert!(d.bytes().all(|c| (0x20..0x7f).contains(&c)));
}

#[test]
fn probes_accept_real_messages_and_reject_others() {
    for b in [query(), response(), nxdomain()] {
        assert_eq!(dns::probe(Transport::Udp, Side::Orig, &b), Probe::Yes);
        assert_eq!(
            dns::probe(
                Transport::Tcp,
                Side::Orig,
                &tcp_framed(std::slice::from_ref(&b))
            ),
            Probe::Yes
        );
    }
    assert_eq!(
        dns::probe(Transport::Udp, Side::Orig, b"GET / HTTP/1.1\r\n\r\n"),
        Probe::No
    );
    // A STUN binding request is not DNS.
    let stun = hex("000100002112a442b7e7a701bc34d686fa87dfae");
    assert_eq!(dns::probe(Transport::Udp, Side::Orig, &stun), Probe::No);
}

#[test]
fn every_prefix_is_truncated_never_a_panic() {
    for b in [query(), response(), nxdomain()] {
        for n in 0..b.len() {
            let p = &b[..n];
            assert_ne!(
                dns::probe(Transport::Udp, Side::Orig, p),
                Probe::Yes,
                "prefix {n}"
            );
            match DnsView::parse(p) {
                Ok(v) => assert_eq!(v.to_message().status, Status::Truncated, "prefix {n}"),
                Err(e) => assert!(matches!(e, DissectError::Truncated { .. })),
            }
            // On TCP every prefix of a framed message just waits for more.
            let framed = tcp_framed(std::slice::from_ref(&b));
            let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
            let mut out = Vec::new();
            match flow.parse(Side::Orig, 0, &framed[..n], &mut out) {
                Progress::Parsed { consumed: 0, .. } => {}
                other => panic!("prefix {n}: {other:?}"),
            }
            assert!(out.is_empty());
        }
    }
}

#[test]
fn tcp_byte_at_a_time_and_several_in_one_chunk() {
    let stream = tcp_framed(&[query(), response(), nxdomain()]);
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    let rows = feed_tcp(flow.as_mut(), &chunks);
    let types: Vec<_> = rows.iter().map(|m| m.msg_type.to_string()).collect();
    assert_eq!(types, ["query", "response", "response"]);
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
    assert_eq!(feed_tcp(flow.as_mut(), &[&stream]).len(), 3);
}

#[test]
fn tcp_needed_counts_missing_bytes() {
    let stream = tcp_framed(&[query()]);
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
    let mut out = Vec::new();
    assert_eq!(
        flow.parse(Side::Orig, 0, &stream[..10], &mut out),
        Progress::Parsed {
            consumed: 0,
            needed: Some(28)
        }
    );
}

#[test]
fn tcp_gap_gives_up_on_that_side_only() {
    let stream = tcp_framed(&[query(), response()]);
    let mut flow = (dns::DESCRIPTOR.new_flow)(Transport::Tcp);
    flow.on_gap(Side::Orig, 5);
    let mut out = Vec::new();
    assert_eq!(
        flow.parse(Side::Orig, 0, &stream, &mut out),
        Progress::Parsed {
            consumed: stream.len(),
            needed: None
        }
    );
    assert!(out.is_empty());
    flow.parse(Side::Resp, 0, &stream, &mut out);
    assert_eq!(out.len(), 2);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        for t in [Transport::Udp, Transport::Tcp] {
            let _ = dns::probe(t, Side::Orig, &data);
            let mut flow = (dns::DESCRIPTOR.new_flow)(t);
            let mut out = Vec::new();
            let p = flow.parse(Side::Orig, 0, &data, &mut out);
            let consumed = match p {
                Progress::Parsed { consumed, .. } | Progress::Error { consumed, .. } => consumed,
            };
            prop_assert!(consumed <= data.len());
            for m in &out {
                let d = m.detail.as_deref().unwrap_or("");
                prop_assert!(d.len() <= dns::MAX_DETAIL_LEN);
                prop_assert!(d.bytes().all(|c| (0x20..0x7f).contains(&c)));
            }
        }
        if let Ok(v) = DnsView::parse(&data) {
            let _ = v.validate();
            let _ = v.name_addresses().count();
            for e in v.entries().flatten() {
                if let Entry::Record(r) = e {
                    let _ = r.data().map(|d| format!("{d:?}"));
                }
            }
        }
    }

    #[test]
    fn plausible_header_with_random_body_never_panics(
        counts in any::<[u8; 4]>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // Small counts and a name-heavy random body reach the decompressor and rdata decoders.
        let mut b = vec![0x12, 0x34, 0x81, 0x80];
        for c in counts {
            b.extend_from_slice(&[0, c % 8]);
        }
        b.extend_from_slice(&body);
        let v = DnsView::parse(&b).unwrap();
        let _ = v.to_message();
        for (n, _) in v.name_addresses() {
            let _ = n.to_string();
        }
        let _ = dns::probe(Transport::Udp, Side::Resp, &b);
    }
}
