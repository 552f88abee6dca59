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

#[test]
fn voip_mix_flows_match_the_generators_truth() {
    let (records, stats) = flows_of(&[captures().join("voip-mix.pcap")]);
    assert_eq!(stats.frames, 4000);
    let truth = std::fs::read_to_string(captures().join("voip-mix.truth.csv")).unwrap();
    // (proto, src, sport, dst, dport) → (first µs, packets)
    let mut expected = BTreeMap::new();
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let key = (
            f[4].parse::<u8>().unwrap(),
            f[5].parse::<std::net::IpAddr>().unwrap(),
            f[6].parse::<u16>().unwrap(),
            f[7].parse::<std::net::IpAddr>().unwrap(),
            f[8].parse::<u16>().unwrap(),
        );
        expected.insert(key, (f[9].parse::<i64>().unwrap(), f[10].parse::<u64>().unwrap()));
    }
    let mut ours = BTreeMap::new();
    for r in &records {
        let key = (
            r.proto,
            r.orig.addr.to_ip(),
            r.orig.port,
            r.resp.addr.to_ip(),
            r.resp.port,
        );
        ours.insert(key, (r.ts_start.0 / 1000, r.total_pkts()));
    }
    assert_eq!(ours.len(), 120);
    assert_eq!(ours, expected, "flows (originator, start, packets) differ from truth");
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
