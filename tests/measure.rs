//! Sessions and measurements on the simulator's committed captures (captures/sim/): the
//! phone-home report recovers the scenario's configured telemetry period, keepalive
//! intervals match the protocol's, and hosts get the roles the simulator gave them.

mod common;

use std::collections::HashMap;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_p2ptrace");

use common::csv_rows as rows;
use common::{analyze_sim as analyze, sim_capture as capture};

fn secs(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col}: {row:?}"))
}

#[test]
fn phone_home_recovers_the_configured_telemetry_period() {
    let (dir, summary) = analyze("phone-home");
    let ph = rows(&dir.path().join("phonehome.csv"));
    let home: Vec<_> = ph.iter().filter(|r| r["home"] == "198.51.100.80").collect();
    assert_eq!(home.len(), 20, "every client contacted the home server");
    for r in &home {
        assert_eq!(r["home_name"], "home");
        assert!(r["kinds"].contains("version-check") && r["kinds"].contains("telemetry"));
        // scenarios/sim/phone-home.toml: telemetry_period_s = 1800 (hdrhistogram: 1 %).
        if secs(r, "contacts") >= 6.0 {
            let p50 = secs(r, "interval_p50");
            assert!((p50 - 1800.0).abs() <= 18.0, "{r:?}");
        }
    }
    let ls: Vec<_> = ph.iter().filter(|r| r["home"] == "198.51.100.10").collect();
    assert!(ls.len() >= 20 && ls.iter().all(|r| r["home_name"] == "login-server"));
    assert!(
        summary.contains("phone home\n") && summary.contains("median interval 30.0 min"),
        "{summary}"
    );
    // The same report on its own, as a table and as CSV.
    let o = Command::new(BIN)
        .args(["phonehome", "--quiet"])
        .arg(capture("phone-home"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.starts_with("client "), "{table}");
    assert!(table.contains("40 client–home pairs"), "{table}");
    let o = Command::new(BIN)
        .args(["phonehome", "--csv"])
        .arg(capture("phone-home"))
        .output()
        .unwrap();
    let csv_text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        csv_text,
        std::fs::read_to_string(dir.path().join("phonehome.csv")).unwrap()
    );
}

#[test]
fn keepalives_come_every_sixty_seconds() {
    let (dir, _) = analyze("phone-home");
    let ka = rows(&dir.path().join("keepalives.csv"));
    assert!(ka.len() >= 20, "{ka:?}");
    let long: Vec<_> = ka.iter().filter(|r| secs(r, "count") >= 100.0).collect();
    assert!(!long.is_empty());
    for r in long {
        // PROTOCOL.md §8.5: sn-refresh every 60 s.
        assert!((secs(r, "interval_p50") - 60.0).abs() <= 0.6, "{r:?}");
    }
}

#[test]
fn hosts_get_the_roles_the_simulator_gave_them() {
    let (dir, _) = analyze("one-nat");
    let hosts = rows(&dir.path().join("hosts.csv"));
    let role = |a: &str| {
        hosts
            .iter()
            .find(|h| h["addr"] == a)
            .map(|h| h["role"].clone())
            .unwrap_or_default()
    };
    assert_eq!(role("198.51.100.10"), "login-server");
    assert_eq!(role("198.51.100.80"), "home");
    // sn1 relays the call (one-nat: relay-udp), sn2 only serves.
    assert_eq!(role("203.0.113.1"), "super-node+relay");
    assert_eq!(role("203.0.113.2"), "super-node");
    assert_eq!(role("100.64.0.1"), "client");
    assert_eq!(role("100.64.0.2"), "client");
}

#[test]
fn phonehome_on_a_missing_or_garbage_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    for path in [dir.path().join("missing.pcap"), junk] {
        let o = Command::new(BIN)
            .args(["phonehome", "--quiet"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    }
    let o = Command::new(BIN)
        .args(["phonehome", "--home", "", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
