//! Golden tests over `captures/`: flows against the generator's ground truth, and
//! `flows.csv` byte for byte against the reviewed expected file (set UPDATE_GOLDEN=1 to
//! rewrite it after an intended change, then review the diff).

mod common;

use common::{bin, flows_of};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn captures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/captures"))
}

/// The generator's truth names each flow's endpoints, kind, first packet time and packet
/// count. For media (`rtp`/`rtcp`) the "first" time is the call's start and the endpoints are
/// caller → callee, while the first packet on the wire may come from either side a little
/// later — so media flows are compared as unordered pairs with packet counts only; every
/// other flow must match exactly (originator, responder, first packet time, packets).
#[test]
fn voip_mix_flows_match_the_generators_truth() {
    let (records, stats) = flows_of(&[captures().join("voip-mix.pcap")]);
    assert_eq!(stats.frames, 4000);
    type Ep = (std::net::IpAddr, u16);
    let pair = |a: Ep, b: Ep| if a <= b { (a, b) } else { (b, a) };
    let truth = std::fs::read_to_string(captures().join("voip-mix.truth.csv")).unwrap();
    let mut exact = BTreeMap::new();
    let mut media = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let proto = f[4].parse::<u8>().unwrap();
        let a: Ep = (f[5].parse().unwrap(), f[6].parse().unwrap());
        let b: Ep = (f[7].parse().unwrap(), f[8].parse().unwrap());
        let first_us: i64 = f[9].parse().unwrap();
        let pkts: u64 = f[10].parse().unwrap();
        if f[1] == "rtp" || f[1] == "rtcp" {
            media.insert((proto, pair(a, b)), (first_us, pkts));
        } else {
            exact.insert((proto, a, b), (first_us, pkts));
        }
    }
    assert_eq!(exact.len() + media.len(), 120);
    assert_eq!(records.len(), 120);
    for r in &records {
        let a: Ep = (r.orig.addr.to_ip(), r.orig.port);
        let b: Ep = (r.resp.addr.to_ip(), r.resp.port);
        let start_us = r.ts_start.0 / 1000;
        if let Some(&(first_us, pkts)) = media.get(&(r.proto, pair(a, b))) {
            assert_eq!(r.total_pkts(), pkts, "media {a:?} {b:?}");
            assert!(
                start_us >= first_us,
                "media {a:?} {b:?} starts before its call"
            );
        } else {
            let want = exact.get(&(r.proto, a, b));
            assert_eq!(
                want,
                Some(&(start_us, r.total_pkts())),
                "flow {a:?} -> {b:?}"
            );
        }
    }
}

#[test]
fn voip_mix_flows_csv_matches_the_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["analyze", "--quiet", "--csv"])
        .arg(dir.path())
        .arg(captures().join("voip-mix.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read_to_string(dir.path().join("flows.csv")).unwrap();
    let golden = captures().join("voip-mix.flows.csv");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert!(got == want, "flows.csv differs from {}", golden.display());
}
