//! Walks every capture in `shared/captures-external` (real traffic from public test suites)
//! through the STUN, DNS, HTTP and TLS dissectors: no panic on anything, plus counts and
//! fields spot-checked against tshark (each expected value names the command that gave it).
//!
//! UDP: every payload is probed by each UDP dissector and parsed when the probe says Yes
//! (ChannelData is taken on flows already seen carrying STUN). TCP: per flow, the dissector
//! whose probe says Yes on the first payload is fed the in-order payloads of each side
//! (retransmissions dropped, holes reported with `on_gap`), as the analyzer does.

use dissectors::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Transport,
};
use dissectors::{dns, http, stun, tls};
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapCapture, PcapNGCapture, parse_pcap_frame_be, parse_pcap_header};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/captures-external"
);

const UDP_DESCS: [DissectorDesc; 3] = [stun::DESCRIPTOR, dns::DESCRIPTOR, tls::DESCRIPTOR];
const TCP_DESCS: [DissectorDesc; 4] = [
    http::DESCRIPTOR,
    tls::DESCRIPTOR,
    stun::DESCRIPTOR,
    dns::DESCRIPTOR,
];

/// A decoded row with the 1-based frame number it came from.
#[derive(Debug, Clone)]
struct Row {
    frame: usize,
    transport: Transport,
    msg: Message,
}

#[derive(Default, Debug)]
struct Report {
    frames: usize,
    udp_payloads: usize,
    tcp_segments: usize,
    /// UDP payloads that two dissectors both claimed with `Yes`.
    ambiguous: usize,
    errors: usize,
    rows: Vec<Row>,
}

impl Report {
    fn rows_of<'a>(&'a self, proto: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.msg.protocol == proto)
    }

    fn count(&self, proto: &str, msg_type: &str) -> usize {
        self.rows_of(proto)
            .filter(|r| r.msg.msg_type == msg_type)
            .count()
    }

    fn at<'a>(&'a self, proto: &'a str, frame: usize) -> Vec<&'a Message> {
        self.rows_of(proto)
            .filter(|r| r.frame == frame)
            .map(|r| &r.msg)
            .collect()
    }
}

type Key = (IpAddr, u16, IpAddr, u16);

struct TcpSide {
    next_seq: Option<u32>,
    pending: Vec<u8>,
}

struct TcpFlow {
    orig: (IpAddr, u16),
    dissector: Option<Box<dyn FlowDissector>>,
    decided: bool,
    sides: [TcpSide; 2],
}

/// Calls `f(linktype, frame bytes)` for every packet of a pcap or pcapng file.
fn for_each_frame(bytes: &[u8], mut f: impl FnMut(i32, &[u8])) -> Result<(), String> {
    if bytes.starts_with(&[0x0A, 0x0D, 0x0D, 0x0A]) {
        let cap = PcapNGCapture::from_file(bytes).map_err(|e| format!("pcapng: {e:?}"))?;
        for section in &cap.sections {
            let mut links: Vec<i32> = Vec::new();
            for block in &section.blocks {
                match block {
                    Block::InterfaceDescription(idb) => links.push(idb.linktype.0),
                    Block::EnhancedPacket(epb) => {
                        let lt = links.get(epb.if_id as usize).copied().unwrap_or(1);
                        f(lt, epb.packet_data());
                    }
                    Block::SimplePacket(spb) => {
                        f(links.first().copied().unwrap_or(1), spb.packet_data());
                    }
                    _ => {}
                }
            }
        }
    } else if bytes.starts_with(&[0xA1, 0xB2, 0xC3, 0xD4]) {
        // Big-endian pcap (peafowl/whatsapp.pcap): PcapCapture::from_file reads only
        // little-endian records, so walk the frames with the big-endian parser.
        let (mut rest, header) =
            parse_pcap_header(bytes).map_err(|e| format!("pcap header: {e:?}"))?;
        while !rest.is_empty() {
            let (r, b) = parse_pcap_frame_be(rest).map_err(|e| format!("pcap be: {e:?}"))?;
            let n = (b.caplen as usize).min(b.data.len());
            f(header.network.0, &b.data[..n]);
            rest = r;
        }
    } else {
        let cap = PcapCapture::from_file(bytes).map_err(|e| format!("pcap: {e:?}"))?;
        for b in &cap.blocks {
            let n = (b.caplen as usize).min(b.data.len());
            f(cap.header.network.0, &b.data[..n]);
        }
    }
    Ok(())
}

fn slice(linktype: i32, data: &[u8]) -> Option<LaxSlicedPacket<'_>> {
    match linktype {
        1 => LaxSlicedPacket::from_ethernet(data).ok(),
        // RAW, IPV4, IPV6
        101 | 228 | 229 => LaxSlicedPacket::from_ip(data).ok(),
        // LINUX_SLL: 16-byte header ending in the EtherType.
        113 if data.len() >= 16 => Some(LaxSlicedPacket::from_ether_type(
            EtherType(u16::from_be_bytes([data[14], data[15]])),
            &data[16..],
        )),
        // NULL/loopback: 4-byte family.
        0 if data.len() >= 4 => LaxSlicedPacket::from_ip(&data[4..]).ok(),
        _ => None,
    }
}

fn addrs(p: &LaxSlicedPacket<'_>) -> Option<(IpAddr, IpAddr)> {
    match p.net.as_ref()? {
        LaxNetSlice::Ipv4(s) => Some((
            IpAddr::V4(s.header().source_addr()),
            IpAddr::V4(s.header().destination_addr()),
        )),
        LaxNetSlice::Ipv6(s) => Some((
            IpAddr::V6(s.header().source_addr()),
            IpAddr::V6(s.header().destination_addr()),
        )),
        _ => None,
    }
}

fn canonical(a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b {
        (a.0, a.1, b.0, b.1)
    } else {
        (b.0, b.1, a.0, a.1)
    }
}

fn check_rows(out: &[Message]) {
    for m in out {
        if let Some(d) = &m.detail {
            assert!(d.len() <= 200, "detail too long: {d}");
            assert!(
                d.bytes().all(|c| (0x20..0x7f).contains(&c)),
                "unprintable detail {d:?}"
            );
        }
    }
}

fn analyze(path: &Path) -> Report {
    let bytes = std::fs::read(path).unwrap();
    let mut r = Report::default();
    let mut stun_udp_flows: HashSet<Key> = HashSet::new();
    let mut tcp: HashMap<Key, TcpFlow> = HashMap::new();
    let walk = for_each_frame(&bytes, |lt, data| {
        r.frames += 1;
        let frame = r.frames;
        let Some(p) = slice(lt, data) else { return };
        let Some((src, dst)) = addrs(&p) else { return };
        match &p.transport {
            Some(TransportSlice::Udp(u)) => {
                let payload = u.payload();
                if payload.is_empty() {
                    return;
                }
                r.udp_payloads += 1;
                let key = canonical((src, u.source_port()), (dst, u.destination_port()));
                let mut yes = 0;
                for d in UDP_DESCS {
                    let probe = (d.probe)(Transport::Udp, Side::Orig, payload);
                    let channel_data = d.name == "stun"
                        && stun_udp_flows.contains(&key)
                        && payload[0] & 0xC0 == 0x40;
                    // Parse everything (no panic on any bytes); keep rows of Yes only.
                    let mut out = Vec::new();
                    let mut flow = (d.new_flow)(Transport::Udp);
                    let _ = flow.parse(Side::Orig, 0, payload, &mut out);
                    check_rows(&out);
                    if probe == Probe::Yes || channel_data {
                        if probe == Probe::Yes {
                            yes += 1;
                            if d.name == "stun" {
                                stun_udp_flows.insert(key);
                            }
                        }
                        r.rows.extend(out.into_iter().map(|msg| Row {
                            frame,
                            transport: Transport::Udp,
                            msg,
                        }));
                    }
                }
                if yes > 1 {
                    r.ambiguous += 1;
                }
            }
            Some(TransportSlice::Tcp(t)) => {
                let payload = t.payload();
                r.tcp_segments += 1;
                let a = (src, t.source_port());
                let b = (dst, t.destination_port());
                let flow = tcp.entry(canonical(a, b)).or_insert_with(|| TcpFlow {
                    orig: a,
                    dissector: None,
                    decided: false,
                    sides: [
                        TcpSide {
                            next_seq: None,
                            pending: Vec::new(),
                        },
                        TcpSide {
                            next_seq: None,
                            pending: Vec::new(),
                        },
                    ],
                });
                let side = if a == flow.orig {
                    Side::Orig
                } else {
                    Side::Resp
                };
                let si = side as usize;
                let seq = t.sequence_number();
                let s = &mut flow.sides[si];
                let data_seq = if t.syn() { seq.wrapping_add(1) } else { seq };
                let expected = *s.next_seq.get_or_insert(data_seq);
                if payload.is_empty() {
                    return;
                }
                let ahead = data_seq.wrapping_sub(expected) as i32;
                let skip_front = if ahead < 0 {
                    // Retransmission (maybe partly new).
                    let dup = (-ahead) as usize;
                    if dup >= payload.len() {
                        return;
                    }
                    dup
                } else {
                    0
                };
                let payload = &payload[skip_front..];
                if !flow.decided {
                    flow.decided = true;
                    flow.dissector = TCP_DESCS
                        .iter()
                        .find(|d| (d.probe)(Transport::Tcp, side, payload) == Probe::Yes)
                        .map(|d| (d.new_flow)(Transport::Tcp));
                }
                let s = &mut flow.sides[si];
                if ahead > 0 {
                    if let Some(d) = flow.dissector.as_mut() {
                        d.on_gap(side, ahead as u64);
                    }
                    s.pending.clear();
                }
                s.next_seq = Some(
                    data_seq
                        .wrapping_add(skip_front as u32)
                        .wrapping_add(payload.len() as u32),
                );
                let Some(d) = flow.dissector.as_mut() else {
                    return;
                };
                s.pending.extend_from_slice(payload);
                let mut out = Vec::new();
                match d.parse(side, 0, &s.pending, &mut out) {
                    Progress::Parsed { consumed, .. } => {
                        assert!(consumed <= s.pending.len());
                        s.pending.drain(..consumed);
                    }
                    Progress::Error { consumed, .. } => {
                        assert!(consumed <= s.pending.len());
                        r.errors += 1;
                        s.pending.drain(..consumed);
                    }
                }
                // The caller bounds what it keeps; so do we.
                if s.pending.len() > 256 * 1024 {
                    s.pending.clear();
                }
                check_rows(&out);
                r.rows.extend(out.into_iter().map(|msg| Row {
                    frame,
                    transport: Transport::Tcp,
                    msg,
                }));
            }
            _ => {}
        }
    });
    walk.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r
}

fn captures_dir() -> Option<PathBuf> {
    let d = PathBuf::from(DIR);
    if d.is_dir() {
        Some(d)
    } else {
        println!("skipping: {} is absent", d.display());
        None
    }
}

fn load(name: &str) -> Option<Report> {
    let d = captures_dir()?;
    Some(analyze(&d.join(name)))
}

#[test]
fn every_capture_walks_without_panic() {
    let Some(dir) = captures_dir() else { return };
    let mut files = Vec::new();
    for sub in ["ndpi", "zeek", "peafowl"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "only {} captures found", files.len());
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let r = analyze(f);
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for row in &r.rows {
            *per.entry(row.msg.protocol).or_default() += 1;
            *total.entry(row.msg.protocol.to_string()).or_default() += 1;
        }
        println!(
            "{:<50} frames={:<4} udp={:<4} tcp={:<4} ambiguous={} errors={} rows={per:?}",
            f.strip_prefix(&dir).unwrap().display(),
            r.frames,
            r.udp_payloads,
            r.tcp_segments,
            r.ambiguous,
            r.errors
        );
        // No payload is claimed by two dissectors at once.
        assert_eq!(r.ambiguous, 0, "{}", f.display());
    }
    println!("total rows: {total:?}");
    for p in ["stun", "dns", "http", "tls"] {
        assert!(total.get(p).copied().unwrap_or(0) > 0, "no {p} rows at all");
    }
}

#[test]
fn ndpi_stun_udp_message_types_match_tshark() {
    let Some(r) = load("ndpi/stun.pcap") else {
        return;
    };
    // tshark -r ndpi/stun.pcap -Y 'stun && udp' -T fields -e stun.type | sort | uniq -c
    // (the 19 rows with an empty type are ChannelData on channel 0x4003).
    let udp = |t: &str| {
        r.rows_of("stun")
            .filter(|x| x.transport == Transport::Udp && x.msg.msg_type == t)
            .count()
    };
    assert_eq!(udp("binding-request"), 28);
    assert_eq!(udp("binding-success"), 29);
    assert_eq!(udp("allocate-request"), 4);
    assert_eq!(udp("allocate-success"), 2);
    assert_eq!(udp("allocate-error"), 2);
    assert_eq!(udp("refresh-request"), 2);
    // tshark counts 3: its third (frame 24) is quoted inside an ICMP error, not a datagram.
    assert_eq!(udp("refresh-success"), 2);
    assert_eq!(udp("create-permission-request"), 6);
    assert_eq!(udp("create-permission-success"), 4);
    assert_eq!(udp("channel-bind-request"), 1);
    assert_eq!(udp("channel-bind-success"), 2);
    assert_eq!(udp("send-indication"), 22);
    assert_eq!(udp("data-indication"), 15);
    assert_eq!(udp("create-permission-error"), 2);
    assert_eq!(udp("channel-data"), 19);
    // tshark -r ndpi/stun.pcap -Y 'frame.number==18' -T fields -e stun.id -e stun.att.ipv4
    //   -e stun.att.port  →  53486b6846386f6477677956  93.47.225.225  23616
    let f18 = r.at("stun", 18);
    assert_eq!(f18.len(), 1);
    assert_eq!(f18[0].msg_type, "binding-success");
    assert_eq!(f18[0].txn_id, Some(0x46386f6477677956));
    assert!(
        f18[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("xor-mapped=93.47.225.225:23616")
    );
}

#[test]
fn ndpi_stun_tcp_messages_and_software_match_tshark() {
    let Some(r) = load("ndpi/stun.pcap") else {
        return;
    };
    // tshark -r ndpi/stun.pcap -Y 'stun && tcp' -T fields -e stun.type | tr , '\n' | wc -l → 33
    let tcp: Vec<&Row> = r
        .rows_of("stun")
        .filter(|x| x.transport == Transport::Tcp)
        .collect();
    assert_eq!(tcp.len(), 33);
    // tshark -r ndpi/stun.pcap -Y stun.att.software -T fields -e frame.number -e stun.att.software
    //   → 145  Coturn-4.5.0.5 'dan Eider'
    let f145 = r.at("stun", 145);
    assert!(f145.iter().any(|m| {
        m.detail
            .as_deref()
            .is_some_and(|d| d.ends_with("software=Coturn-4.5.0.5 'dan Eider'"))
    }));
}

#[test]
fn stun_several_messages_in_one_tcp_segment() {
    let Some(r) = load("ndpi/stun_tcp_multiple_msgs_same_pkt.pcap") else {
        return;
    };
    // tshark -r ndpi/stun_tcp_multiple_msgs_same_pkt.pcap -Y stun -T fields -e frame.number
    //   -e stun.type  →  frames 2, 3, 4 one Allocate each; frame 5 three.
    assert_eq!(r.count("stun", "allocate-request"), 6);
    assert_eq!(r.at("stun", 5).len(), 3);
}

#[test]
fn whatsapp_and_signal_stun_counts_match_tshark() {
    let Some(r) = load("ndpi/whatsapp_voice_and_message.pcap") else {
        return;
    };
    // tshark -r ndpi/whatsapp_voice_and_message.pcap -Y 'stun && udp' -T fields -e stun.type
    //   | sort | uniq -c  →  18 0x0003, 18 0x0103; the Allocate requests have a length
    //   (0x006a) that is not a multiple of 4: kept, reported malformed. We also take 8
    //   WhatsApp type-0x0800 messages (magic cookie, method 0x200; tshark: "data").
    assert_eq!(r.count("stun", "allocate-request"), 18);
    assert_eq!(r.count("stun", "allocate-success"), 18);
    assert_eq!(r.count("stun", "method-0x200-request"), 8);
    assert_eq!(
        r.rows_of("stun")
            .filter(|x| x.msg.status == dissectors::Status::Malformed)
            .count(),
        26
    );
    // tshark -r ndpi/stun_signal.pcapng -Y 'stun && !icmp' | wc -l  →  300 (the other 53
    //   are STUN quoted inside ICMP errors).
    let s = load("ndpi/stun_signal.pcapng").unwrap();
    assert_eq!(s.rows_of("stun").count(), 300);
}

#[test]
fn classic_stun_capture_yields_exactly_the_two_classic_messages() {
    let Some(r) = load("ndpi/stun_classic.pcap") else {
        return;
    };
    // tshark -r ndpi/stun_classic.pcap  →  frame 1 CLASSIC-STUN Binding Request, frame 2
    // Binding Response (MAPPED-ADDRESS 172.16.63.224:55050); the other 20 frames are RTP.
    let rows: Vec<&Row> = r.rows_of("stun").collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].frame, &*rows[0].msg.msg_type),
        (1, "binding-request")
    );
    assert_eq!(
        (rows[1].frame, &*rows[1].msg.msg_type),
        (2, "binding-success")
    );
    assert_eq!(
        rows[1].msg.detail.as_deref(),
        Some("mapped=172.16.63.224:55050 classic=1")
    );
}

#[test]
fn zeek_webrtc_stun_matches_tshark() {
    let Some(r) = load("zeek/tls_webrtc-stun.pcap") else {
        return;
    };
    // tshark -r zeek/tls_webrtc-stun.pcap -Y stun -T fields -e frame.number -e stun.type
    //   -e stun.att.ipv4 -e stun.att.port  →  5 requests, 5 responses; frame 2
    //   192.150.187.238 31288, frame 5 74.201.205.9 43044.
    assert_eq!(r.count("stun", "binding-request"), 5);
    assert_eq!(r.count("stun", "binding-success"), 5);
    let d2 = r.at("stun", 2)[0].detail.clone().unwrap();
    assert!(d2.contains("192.150.187.238:31288"), "{d2}");
    let d5 = r.at("stun", 5)[0].detail.clone().unwrap();
    assert!(d5.contains("74.201.205.9:43044"), "{d5}");
}

#[test]
fn dns_queries_and_responses_match_tshark() {
    let Some(viber) = load("peafowl/viber.pcap") else {
        return;
    };
    // tshark -r peafowl/viber.pcap -Y dns -T fields -e frame.number -e dns.flags.response
    //   -e dns.qry.name -e dns.a -e dns.cname  →  8 queries, 8 responses; frame 3
    //   graph.facebook.com → api.facebook.com, star.c10r.facebook.com, 31.13.86.8.
    //   We also decode the 4 mDNS queries (`tshark -Y mdns | wc -l` → 4; same wire format).
    assert_eq!(viber.count("dns", "query"), 12);
    assert_eq!(viber.count("dns", "response"), 8);
    assert_eq!(
        viber.at("dns", 3)[0].detail.as_deref(),
        Some("graph.facebook.com A -> api.facebook.com,star.c10r.facebook.com,31.13.86.8")
    );
    assert_eq!(viber.at("dns", 3)[0].txn_id, Some(0xe183));
    // tshark -r ndpi/zoom.pcap -Y dns ...  →  6 queries, 6 responses; frame 29 is the
    //   NXDOMAIN answer to `local SOA`; frame 24 log.zoom.us A 52.202.62.238. Plus one mDNS
    //   query (frame 2, _spotify-connect._tcp.local PTR).
    let zoom = load("ndpi/zoom.pcap").unwrap();
    assert_eq!(zoom.count("dns", "query"), 7);
    assert_eq!(zoom.count("dns", "response"), 6);
    assert_eq!(
        zoom.at("dns", 29)[0].detail.as_deref(),
        Some("local SOA -> NXDOMAIN")
    );
    assert_eq!(
        zoom.at("dns", 24)[0].detail.as_deref(),
        Some("log.zoom.us A -> 52.202.62.238")
    );
}

#[test]
fn http_request_on_sip_port_is_found() {
    let Some(r) = load("ndpi/http_on_sip_port.pcap") else {
        return;
    };
    // tshark -r ndpi/http_on_sip_port.pcap -d tcp.port==5060,http -Y http  →  frame 3
    //   GET /star-123456/index.m3u8?... Host 45.58.148.2; frame 4 HTTP/1.1 403 Forbidden.
    let get = r.at("http", 3);
    assert_eq!(get.len(), 1);
    assert_eq!(get[0].msg_type, "GET");
    assert!(
        get[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("host=45.58.148.2 path=/star-123456/index.m3u8?token=")
    );
    let resp = r.at("http", 4);
    assert_eq!(resp[0].msg_type, "response");
    assert!(
        resp[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("status=403 reason=Forbidden")
    );
}

#[test]
fn big_endian_pcap_dns_and_http_are_found() {
    let Some(r) = load("peafowl/whatsapp.pcap") else {
        return;
    };
    // tshark -r peafowl/whatsapp.pcap -Y dns -T fields -e frame.number -e dns.flags.response
    //   -e dns.qry.name  →  5 queries, 5 responses; frame 2 clients3.google.com. Plus 4 mDNS
    //   queries (`tshark -Y mdns`: frames 29, 30, 231, 232).
    assert_eq!(r.count("dns", "query"), 9);
    assert_eq!(r.count("dns", "response"), 5);
    assert_eq!(
        r.at("dns", 5)[0].detail.as_deref(),
        Some("clients3.google.com A -> clients.l.google.com,216.58.197.78")
    );
    // tshark -r peafowl/whatsapp.pcap -Y http.request -T fields -e frame.number
    //   -e http.request.method -e http.host  →  frame 12 GET clients3.google.com over TCP;
    //   the other 6 are SSDP M-SEARCH over UDP (HTTPU), which this TCP dissector leaves out.
    let rows: Vec<&Row> = r.rows_of("http").collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].frame, &*rows[0].msg.msg_type), (12, "GET"));
    assert!(
        rows[0]
            .msg
            .detail
            .as_deref()
            .unwrap()
            .starts_with("host=clients3.google.com path=/generate_204 ua=Dalvik/2.1.0")
    );
    assert_eq!(
        rows[1].msg.detail.as_deref(),
        Some("status=204 reason=No Content")
    );
}

#[test]
fn tls_client_hellos_match_tshark() {
    let Some(r) = load("ndpi/discord.pcap") else {
        return;
    };
    // tshark -r ndpi/discord.pcap -Y 'tls.handshake.type==1 || tls.handshake.type==2'
    //   -T fields -e frame.number -e tls.handshake.extensions_server_name
    //   -e tls.handshake.extensions_alpn_str  →  3 discord.com h2,http/1.1; 4 (server) h2
    assert_eq!(
        r.at("tls", 3)[0].detail.as_deref(),
        Some("sni=discord.com alpn=h2,http/1.1 ver=1.2")
    );
    assert!(
        r.at("tls", 4)[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("alpn=h2")
    );
    // tshark ... -e tls.handshake.extensions_server_name on other captures.
    for (file, frame, sni, ver) in [
        ("ndpi/zoom2.pcap", 4, "zoomsjccv154mmr.sjc.zoom.us", "1.3"),
        ("ndpi/line.pcap", 62, "uts-front.line-apps.com", "1.3"),
        ("ndpi/mumble.pcapng", 8, "publist.mumble.info", "1.3"),
        ("ndpi/google_meet.pcapng", 4, "meet.google.com", "1.3"),
        ("peafowl/viber.pcap", 20, "mapi.apptimize.com", "1.2"),
    ] {
        let r = load(file).unwrap();
        let rows = r.at("tls", frame);
        assert_eq!(rows.len(), 1, "{file} frame {frame}");
        let d = rows[0].detail.as_deref().unwrap();
        assert!(d.starts_with(&format!("sni={sni}")), "{file}: {d}");
        assert!(d.contains(&format!("ver={ver}")), "{file}: {d}");
    }
}

#[test]
fn dtls_client_hellos_are_found() {
    let Some(r) = load("ndpi/dtls.pcap") else {
        return;
    };
    // tshark -r ndpi/dtls.pcap -Y 'dtls.handshake.type==1' -T fields -e frame.number
    //   → 1 2 3 4 5 7 9; frames 3-5 are inside a GTP-U tunnel (UDP 2152), which this walk
    //   does not decapsulate, so 4 remain. Frame 7 offers DTLS 1.3 (supported_versions fefc).
    let ch: Vec<&Row> = r
        .rows_of("tls")
        .filter(|x| x.msg.msg_type == "client-hello")
        .collect();
    let frames: Vec<usize> = ch.iter().map(|x| x.frame).collect();
    assert_eq!(frames, [1, 2, 7, 9]);
    assert_eq!(r.at("tls", 7)[0].detail.as_deref(), Some("ver=dtls1.3"));
}
