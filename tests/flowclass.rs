//! Per-flow class columns of `flows.csv` on the simulator's one-NAT capture: the relay's media
//! flows are `media`, the login server's flows `login`, and per-class message totals over
//! flows.csv equal the per-class counts in messages.csv.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_p2ptrace");

use common::analyze_sim;
use common::csv_rows as rows;

#[test]
fn one_nat_flows_get_their_class_and_totals_match_messages() {
    let (dir, stdout) = analyze_sim("one-nat");
    assert!(stdout.contains("  media "), "{stdout}");
    let flows = rows(&dir.path().join("flows.csv"));
    let messages = rows(&dir.path().join("messages.csv"));

    let resp = |f: &HashMap<String, String>| format!("{}:{}", f["resp_addr"], f["resp_port"]);
    let relay: Vec<_> = flows
        .iter()
        .filter(|f| resp(f) == "203.0.113.1:33033" && f["msgs_media"] != "0")
        .collect();
    assert_eq!(relay.len(), 2, "both parties' media legs via the relay");
    for f in &relay {
        assert_eq!(f["class"], "media");
        assert_eq!(f["service"], "skylark");
    }
    let login: Vec<_> = flows
        .iter()
        .filter(|f| resp(f) == "198.51.100.10:33034")
        .collect();
    assert_eq!(login.len(), 2);
    for f in &login {
        assert_eq!(f["class"], "login");
        assert!(
            f["evidence"].starts_with("auth-hello;"),
            "{}",
            f["evidence"]
        );
        assert!(f["evidence"].split(';').count() <= 4);
    }

    let media = assert_class_counts_match_messages(&flows, &messages);
    assert!(media > 1000);
}

/// Asserts that each flow's per-class message and byte counts in flows.csv equal those of
/// its messages in messages.csv — per flow, so the counters of one flow never leak into a
/// later flow that reuses its place in the flow table. Returns the media messages.
fn assert_class_counts_match_messages(
    flows: &[HashMap<String, String>],
    messages: &[HashMap<String, String>],
) -> u64 {
    let classes = ["login", "lookup", "signalling", "keepalive", "media"];
    let mut from_flows: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for f in flows {
        for c in classes {
            let n = f[&format!("msgs_{c}")].parse::<u64>().unwrap();
            let b = f[&format!("bytes_{c}")].parse::<u64>().unwrap();
            if n > 0 || b > 0 {
                from_flows.insert((f["uid"].clone(), c.to_string()), (n, b));
            }
        }
    }
    let mut from_messages: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for m in messages {
        if classes.contains(&m["class"].as_str()) {
            let e = from_messages
                .entry((m["uid"].clone(), m["class"].clone()))
                .or_default();
            e.0 += 1;
            e.1 += m["len"].parse::<u64>().unwrap();
        }
    }
    assert_eq!(from_flows, from_messages);
    from_flows
        .iter()
        .filter(|((_, c), _)| c == "media")
        .map(|(_, (n, _))| n)
        .sum()
}

/// Flows ending part-way (idle timeouts) while new ones start: their places in the flow table
/// are reused, their counters must not be.
#[test]
fn class_counters_stay_with_their_flow_as_flows_come_and_go() {
    for scenario in ["phone-home", "churn"] {
        let (dir, stdout) = analyze_sim(scenario);
        assert!(!stdout.contains(" 0 idle-expired"), "{scenario}: {stdout}");
        let flows = rows(&dir.path().join("flows.csv"));
        assert_class_counts_match_messages(&flows, &rows(&dir.path().join("messages.csv")));
    }
}

/// PROTOCOL.md §13 vector `name`.
fn vector(name: &str) -> Vec<u8> {
    common::skylark_vectors()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b)
        .unwrap()
}

/// A flow is called Skylark only with evidence: a lone datagram that parses is `skylark?`;
/// a request answered with its transaction id, or three messages, make it `skylark`.
#[test]
fn skylark_service_needs_several_consistent_messages() {
    use common::{pcap, udp_frame};
    let (probe, ack) = (vector("hc-probe"), vector("hc-probe-ack"));
    let (c1, c2, c3, sn) = (
        ([10, 0, 0, 1], 40001),
        ([10, 0, 0, 2], 40002),
        ([10, 0, 0, 3], 40003),
        ([10, 0, 0, 9], 5555),
    );
    let frames = vec![
        (1_000_000, udp_frame(c1, sn, &probe)),
        (2_000_000, udp_frame(c2, sn, &probe)),
        (2_100_000, udp_frame(sn, c2, &ack)),
        (3_000_000, udp_frame(c3, sn, &probe)),
        (4_000_000, udp_frame(c3, sn, &probe)),
        (5_000_000, udp_frame(c3, sn, &probe)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("evidence.pcap");
    std::fs::write(&cap, pcap(&frames)).unwrap();
    let o = Command::new(BIN)
        .args(["analyze", "-q", "--csv"])
        .arg(dir.path())
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let service: BTreeMap<String, String> = rows(&dir.path().join("flows.csv"))
        .into_iter()
        .map(|f| (f["orig_addr"].clone(), f["service"].clone()))
        .collect();
    assert_eq!(service["10.0.0.1"], "skylark?", "one unanswered probe");
    assert_eq!(service["10.0.0.2"], "skylark", "probe answered by txn id");
    assert_eq!(service["10.0.0.3"], "skylark", "three messages");
}

/// A message completed by the very first frame of a nanosecond pcapng prints with the
/// capture's 9 digits, like every later one (the interface block precedes the frame).
#[test]
fn first_frame_messages_use_the_captures_precision() {
    use p2ptrace::capture::LinkType;
    use p2ptrace::capture::write::PcapNgWriter;
    use p2ptrace::time::Ts;
    let probe = vector("hc-probe");
    let frame = common::udp_frame(([10, 0, 0, 1], 40001), ([10, 0, 0, 9], 5555), &probe);
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("ns.pcapng");
    let mut w = PcapNgWriter::new(std::fs::File::create(&cap).unwrap(), "test").unwrap();
    let i = w.add_interface("eth0", LinkType::ETHERNET, 0).unwrap();
    for n in 0..2 {
        let ts = Ts(1_700_000_000_123_456_789 + n * 1_000_000_001);
        w.write_packet(i, ts, &frame, frame.len() as u32).unwrap();
    }
    w.finish().unwrap();
    let o = Command::new(BIN)
        .args(["analyze", "-q", "--csv"])
        .arg(dir.path())
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ts: Vec<String> = rows(&dir.path().join("messages.csv"))
        .into_iter()
        .map(|m| m["ts"].clone())
        .collect();
    assert_eq!(ts, ["1700000000.123456789", "1700000001.123456790"]);
}
