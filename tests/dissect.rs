//! Application-layer dissection through the whole pipeline: Skylark recognised by content on
//! random ports over UDP and over reassembled TCP (out-of-order segments, frames split and
//! coalesced); and on the real public captures no flow is claimed by Skylark while STUN,
//! DNS, HTTP and TLS are found.

mod common;

use common::{
    ACK, FIN, PSH, SYN, external_captures, index, pcap, skylark_vectors, tcp_frame, udp_frame,
};
use dissectors::registry::Message;
use p2ptrace::dissect::DissectConfig;
use p2ptrace::flow::{Dir, FlowRecord, IdleTimeouts, Uid};
use p2ptrace::pipeline::{self, FlowConsumer, MsgCtx, PipelineConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Message type of each vector parsed on its own as a datagram by the Skylark dissector:
/// what the pipeline must find in the same bytes, however they were carried.
fn standalone_names(vectors: &[(String, Vec<u8>)]) -> Vec<String> {
    use dissectors::registry::{Side, Transport};
    vectors
        .iter()
        .map(|(name, bytes)| {
            let mut parser = (dissectors::skylark::DESCRIPTOR.new_flow)(Transport::Udp);
            let mut out = Vec::new();
            parser.parse(Side::Orig, 0, bytes, &mut out);
            assert_eq!(out.len(), 1, "vector {name}");
            out[0].msg_type.to_string()
        })
        .collect()
}

#[derive(Default)]
struct Collect {
    flows: Vec<FlowRecord>,
    messages: Vec<(Uid, Dir, Message)>,
    contexts: Vec<MsgCtx>,
}

impl FlowConsumer for Collect {
    fn flow(&mut self, record: &FlowRecord, _digits: u8) {
        self.flows.push(record.clone());
    }
    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        self.messages.push((ctx.uid, ctx.dir, msg.clone()));
        self.contexts.push(*ctx);
    }
}

fn dissect(paths: &[PathBuf]) -> Collect {
    let config = PipelineConfig {
        dissect: Some(DissectConfig::default()),
        flow: p2ptrace::flow::FlowConfig {
            idle: IdleTimeouts::NONE,
            ..Default::default()
        },
        ..PipelineConfig::default()
    };
    let mut c = Collect::default();
    pipeline::run(paths, &config, &mut c, &mut |_, _, _| {});
    // Every message names its flow's endpoints, sender first.
    for ctx in &c.contexts {
        let f = c
            .flows
            .iter()
            .find(|f| f.uid == ctx.uid)
            .expect("message of a known flow");
        let orig = SocketAddr::new(f.orig.addr.to_ip(), f.orig.port);
        let resp = SocketAddr::new(f.resp.addr.to_ip(), f.resp.port);
        let want = match ctx.dir {
            Dir::Orig => (orig, resp),
            Dir::Resp => (resp, orig),
        };
        assert_eq!((ctx.src, ctx.dst), want, "{ctx:?}");
        assert_eq!(ctx.proto, f.proto);
    }
    c
}

#[test]
fn skylark_is_recognised_on_random_ports_over_udp_and_tcp() {
    let vectors = skylark_vectors();
    let a = ([10, 1, 0, 7], 51_734);
    let b = ([10, 1, 0, 9], 40_211);
    let mut frames = Vec::new();
    let mut ts = 1_700_000_000_000_000u64;
    // UDP: every vector as its own datagram, alternating directions.
    for (i, (_, bytes)) in vectors.iter().enumerate() {
        let (s, d) = if i % 2 == 0 { (a, b) } else { (b, a) };
        frames.push((ts, udp_frame(s, d, bytes)));
        ts += 1000;
    }
    // TCP from a to b on other random ports: all vectors as one stream, cut into 7-byte
    // segments (frames split), plus one 3-vector segment (frames coalesced), with two
    // segments swapped (out of order).
    let (c, s) = (([10, 1, 0, 7], 61_002), ([10, 1, 0, 9], 33_999));
    let stream: Vec<u8> = vectors.iter().flat_map(|(_, b)| b.clone()).collect();
    frames.push((ts, tcp_frame(c, s, 1000, 0, SYN, &[])));
    frames.push((ts + 1, tcp_frame(s, c, 5000, 1001, SYN | ACK, &[])));
    frames.push((ts + 2, tcp_frame(c, s, 1001, 5001, ACK, &[])));
    let mut segs: Vec<(u32, &[u8])> = Vec::new();
    let first3: usize = vectors.iter().take(3).map(|(_, b)| b.len()).sum();
    segs.push((1001, &stream[..first3]));
    let mut off = first3;
    while off < stream.len() {
        let end = (off + 7).min(stream.len());
        segs.push((1001 + off as u32, &stream[off..end]));
        off = end;
    }
    segs.swap(5, 6);
    ts += 10;
    for (seq, data) in &segs {
        frames.push((ts, tcp_frame(c, s, *seq, 5001, ACK | PSH, data)));
        ts += 10;
    }
    let fin_seq = 1001 + stream.len() as u32;
    frames.push((ts, tcp_frame(c, s, fin_seq, 5001, FIN | ACK, &[])));
    frames.push((ts + 1, tcp_frame(s, c, 5001, fin_seq + 1, FIN | ACK, &[])));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skylark.pcap");
    std::fs::write(&path, pcap(&frames)).unwrap();
    let got = dissect(&[path]);

    assert_eq!(got.flows.len(), 2);
    for flow in &got.flows {
        assert_eq!(flow.service, Some("skylark"), "flow {:?}", flow.orig);
        let msgs: Vec<&Message> = got
            .messages
            .iter()
            .filter(|(uid, _, _)| *uid == flow.uid)
            .map(|(_, _, m)| m)
            .collect();
        let names: Vec<&str> = msgs.iter().map(|m| m.msg_type.as_ref()).collect();
        assert_eq!(
            names,
            standalone_names(&vectors),
            "{} flow",
            flow.proto_name()
        );
        assert!(msgs.iter().all(|m| m.protocol == "skylark"));
    }
}

#[test]
fn real_captures_no_skylark_and_the_other_dissectors_find_their_protocols() {
    let Some(dir) = external_captures() else {
        return;
    };
    let paths: Vec<PathBuf> = index(&dir).iter().map(|r| dir.join(&r.file)).collect();
    let mut services: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut protocols: BTreeMap<&'static str, u64> = BTreeMap::new();
    for path in &paths {
        let got = dissect(std::slice::from_ref(path));
        for f in &got.flows {
            assert_ne!(
                f.service,
                Some("skylark"),
                "{}: {:?}",
                path.display(),
                f.orig
            );
            if let Some(s) = f.service {
                *services.entry(s).or_default() += 1;
            }
        }
        for (_, _, m) in &got.messages {
            assert_ne!(m.protocol, "skylark", "{}", path.display());
            *protocols.entry(m.protocol).or_default() += 1;
        }
    }
    for p in ["stun", "dns", "http", "tls"] {
        assert!(
            services.get(p).copied().unwrap_or(0) > 0,
            "no {p} flow: {services:?}"
        );
        assert!(protocols.get(p).copied().unwrap_or(0) > 0, "no {p} message");
    }
    eprintln!("services over the external captures: {services:?}");
    let _ = Path::new("");
}

#[test]
fn stun_sharing_a_skylark_udp_port_is_dissected_as_stun() {
    // PROTOCOL.md §2.4: SNs answer STUN on their Skylark port; the first byte tells them
    // apart. The flow is Skylark; its STUN datagrams still become STUN rows.
    let vectors = skylark_vectors();
    let (client, sn) = (([10, 2, 0, 5], 40_916), ([10, 2, 0, 3], 33_033));
    let stun = dissectors::stun::StunMessage::binding_request([7; 12], Some("skylark/1.0.0"));
    let mut stun_bytes = Vec::new();
    stun.emit(&mut stun_bytes).unwrap();
    let frames = vec![
        (1_000_000, udp_frame(client, sn, &vectors[0].1)),
        (1_000_100, udp_frame(sn, client, &vectors[1].1)),
        (1_000_200, udp_frame(client, sn, &stun_bytes)),
        (1_000_300, udp_frame(client, sn, &vectors[0].1)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mux.pcap");
    std::fs::write(&path, pcap(&frames)).unwrap();
    let got = dissect(&[path]);
    assert_eq!(got.flows.len(), 1);
    assert_eq!(got.flows[0].service, Some("skylark"));
    let protocols: Vec<&str> = got.messages.iter().map(|(_, _, m)| m.protocol).collect();
    assert_eq!(protocols, ["skylark", "skylark", "stun", "skylark"]);
    assert_eq!(got.messages[2].2.msg_type, "binding-request");
}

#[test]
fn a_stream_whose_first_data_arrives_out_of_order_loses_nothing() {
    // Handshake, then the server's second segment before its first (a lost and
    // retransmitted first segment, as seen at a real NAT): the handshake, seen before any
    // payload, says where the stream starts, so nothing is skipped.
    let vectors = skylark_vectors();
    let stream: Vec<u8> = vectors.iter().flat_map(|(_, b)| b.clone()).collect();
    let split = vectors[0].1.len();
    let (c, s) = (([10, 1, 0, 7], 61_002), ([10, 1, 0, 9], 33_999));
    let ts = 1_700_000_000_000_000u64;
    let end = 5001 + stream.len() as u32;
    let frames = vec![
        (ts, tcp_frame(c, s, 1000, 0, SYN, &[])),
        (ts + 1, tcp_frame(s, c, 5000, 1001, SYN | ACK, &[])),
        (ts + 2, tcp_frame(c, s, 1001, 5001, ACK, &[])),
        (
            ts + 3,
            tcp_frame(s, c, 5001 + split as u32, 1001, ACK | PSH, &stream[split..]),
        ),
        (
            ts + 4,
            tcp_frame(s, c, 5001, 1001, ACK | PSH, &stream[..split]),
        ),
        (ts + 5, tcp_frame(s, c, end, 1001, FIN | ACK, &[])),
        (ts + 6, tcp_frame(c, s, 1001, end + 1, FIN | ACK, &[])),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reordered.pcap");
    std::fs::write(&path, pcap(&frames)).unwrap();
    let got = dissect(&[path]);
    let names: Vec<&str> = got
        .messages
        .iter()
        .map(|(_, _, m)| m.msg_type.as_ref())
        .collect();
    assert_eq!(names, standalone_names(&vectors));
}

/// The summary's `services` line counts, per dissector, exactly the messages.csv rows of
/// that protocol (and each service it names decoded some).
#[test]
fn the_summary_counts_each_services_messages() {
    let check = |summary: &str, messages: &Path| {
        let line = summary
            .lines()
            .find_map(|l| l.strip_prefix("services"))
            .expect("services line");
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        for m in common::csv_rows(messages) {
            *rows.entry(m["protocol"].clone()).or_default() += 1;
        }
        let mut named = 0;
        for part in line.trim().split(", ") {
            // `NAME F flows / M msgs`
            let words: Vec<&str> = part.split_whitespace().collect();
            let msgs: u64 = words[4].replace(',', "").parse().unwrap();
            assert_eq!(rows.get(words[0]).copied().unwrap_or(0), msgs, "{part}");
            assert!(msgs > 0, "{part}");
            named += 1;
        }
        assert!(named >= 1, "{line}");
    };
    for scenario in ["phone-home", "churn"] {
        let (dir, summary) = common::analyze_sim(scenario);
        check(&summary, &dir.path().join("messages.csv"));
    }
}
