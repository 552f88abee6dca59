//! Flows must equal tshark's on every real capture: grouped by protocol and endpoint pair,
//! the packets and wire bytes of frames whose TCP or UDP header sits directly on the
//! outermost IP header. Uses tshark when installed (`.ci/run` installs it; under CI=true a
//! missing tshark fails the test), skips with a message otherwise.

mod common;

use common::{external_captures, flows_of, have_tool, index};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;

type Pair = (String, (IpAddr, u16), (IpAddr, u16));

fn canonical(proto: &str, a: (IpAddr, u16), b: (IpAddr, u16)) -> Pair {
    if a <= b {
        (proto.to_string(), a, b)
    } else {
        (proto.to_string(), b, a)
    }
}

/// (proto, endpoints) → (frames, bytes) as tshark dissects the file.
fn tshark_flows(path: &std::path::Path) -> BTreeMap<Pair, (u64, u64)> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-E",
            "separator=|",
            "-e",
            "frame.len",
            "-e",
            "frame.protocols",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
        ])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed on {}", path.display());
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [
            len,
            protos,
            ip_src,
            ip_dst,
            ip6_src,
            ip6_dst,
            tsp,
            tdp,
            usp,
            udp_,
        ] = f[..]
        else {
            panic!("unexpected tshark line {line:?}");
        };
        // The transport directly on the outermost IP header (skipping IPv6 ext headers).
        let layers: Vec<&str> = protos.split(':').collect();
        let Some(ip_at) = layers.iter().position(|l| *l == "ip" || *l == "ipv6") else {
            continue;
        };
        let transport = layers[ip_at + 1..]
            .iter()
            .find(|l| !l.starts_with("ipv6."))
            .copied();
        let (src, dst) = if layers[ip_at] == "ip" {
            (ip_src, ip_dst)
        } else {
            (ip6_src, ip6_dst)
        };
        let (proto, sp, dp) = match transport {
            Some("tcp") => ("tcp", tsp, tdp),
            Some("udp") => ("udp", usp, udp_),
            _ => continue,
        };
        let a = (src.parse().unwrap(), sp.parse().unwrap());
        let b = (dst.parse().unwrap(), dp.parse().unwrap());
        let e = map.entry(canonical(proto, a, b)).or_insert((0, 0));
        e.0 += 1;
        e.1 += len.parse::<u64>().unwrap();
    }
    map
}

#[test]
fn flows_equal_tsharks_on_every_external_capture() {
    let Some(dir) = external_captures() else {
        return;
    };
    if !have_tool("tshark") {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required under CI (installed by .ci/run)"
        );
        eprintln!("skipped: tshark not installed (apt-get install tshark)");
        return;
    }
    let rows = index(&dir);
    assert!(rows.len() >= 50, "INDEX.tsv lists {} captures", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let path = dir.join(&row.file);
        let expected = tshark_flows(&path);
        let (records, stats) = flows_of(std::slice::from_ref(&path));
        assert!(
            stats.inputs[0].error.is_none(),
            "{}: {:?}",
            row.file,
            stats.inputs[0].error
        );
        assert_eq!(stats.frames, row.packets, "{}: frame count", row.file);
        let mut ours: BTreeMap<Pair, (u64, u64)> = BTreeMap::new();
        for r in records.iter().filter(|r| r.proto == 6 || r.proto == 17) {
            let a = (r.orig.addr.to_ip(), r.orig.port);
            let b = (r.resp.addr.to_ip(), r.resp.port);
            let e = ours.entry(canonical(r.proto_name(), a, b)).or_default();
            e.0 += r.total_pkts();
            e.1 += r.total_bytes();
        }
        if ours != expected {
            let only_ours: Vec<_> = ours
                .iter()
                .filter(|(k, v)| expected.get(*k) != Some(v))
                .collect();
            let only_theirs: Vec<_> = expected
                .iter()
                .filter(|(k, v)| ours.get(*k) != Some(v))
                .collect();
            failures.push(format!(
                "{}: ours differs {only_ours:?}\n  tshark {only_theirs:?}",
                row.file
            ));
        }
        // INDEX.tsv's tshark conversation counts: one per endpoint pair, except that tshark
        // splits a pair into several conversations when SIP/SCCP signalling sets up media on
        // it (FAX-Call-t38…, skinny) or a TCP connection is reused — never fewer.
        for (proto, listed) in [
            ("udp", row.udp_conversations),
            ("tcp", row.tcp_conversations),
        ] {
            let pairs = ours.keys().filter(|k| k.0 == proto).count() as u64;
            assert!(
                pairs <= listed,
                "{}: {pairs} {proto} pairs > {listed}",
                row.file
            );
            assert_eq!(pairs == 0, listed == 0, "{}: {proto} pairs", row.file);
        }
    }
    assert!(
        failures.is_empty(),
        "{} captures differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
