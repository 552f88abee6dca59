//! Sessions and measurements on the simulator's committed captures (captures/sim/): the
//! phone-home report recovers the scenario's configured telemetry period, keepalive
//! intervals match the protocol's, and hosts get the roles the simulator gave them; and
//! phone-home and hosts on real, non-Skylark captures count all the traffic.

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

/// The summary's line for `class` in its `sessions` section.
fn session_line(summary: &str, class: &str) -> String {
    let section = summary
        .split("sessions\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no sessions section: {summary}"));
    section
        .lines()
        .find_map(|l| l.strip_prefix(&format!("  {class:<12}")))
        .unwrap_or_else(|| panic!("no {class} line: {summary}"))
        .to_string()
}

#[test]
fn the_summary_names_each_classs_sessions() {
    // The three paper setups: the call's media path, logins, lookups, media.
    for (scenario, path, transport) in [
        ("no-nat", "1 direct-udp", "SN over udp 2, tcp 0"),
        ("one-nat", "1 relay-udp", "SN over udp 2, tcp 0"),
        (
            "both-nat-udp-blocked",
            "1 relay-tcp",
            "SN over udp 0, tcp 2",
        ),
    ] {
        let (dir, summary) = analyze(scenario);
        let login = session_line(&summary, "login");
        assert!(login.starts_with("2 logins: 2 ok, 0 failed"), "{login}");
        assert!(login.contains(transport), "{scenario}: {login}");
        let lookup = session_line(&summary, "lookup");
        assert!(lookup.starts_with("1 lookup: 1 found"), "{lookup}");
        let call = session_line(&summary, "signalling");
        assert!(
            call.starts_with("1 call: ") && call.contains(path),
            "{call}"
        );
        assert!(
            call.contains("to ringing") && call.contains("to accept"),
            "{call}"
        );
        // The media line adds up calls.csv's frames.
        let frames: f64 = rows(&dir.path().join("calls.csv"))
            .iter()
            .map(|r| secs(r, "packets_ab") + secs(r, "packets_ba"))
            .sum();
        let media = session_line(&summary, "media");
        let shown = format!("{} frames by the parties; loss 0.00 %", frames as u64);
        assert!(
            media.replace(',', "").starts_with(&shown),
            "{media} vs {shown}"
        );
    }
    // Keepalives every 60 s (PROTOCOL.md §8.5), over every client-SN pair of keepalives.csv.
    let (dir, summary) = analyze("phone-home");
    let pairs = rows(&dir.path().join("keepalives.csv"));
    let count: f64 = pairs.iter().map(|r| secs(r, "count")).sum();
    let ka = session_line(&summary, "keepalive");
    let head = format!(
        "{} sn-refresh keepalives over {} client-SN pairs",
        count as u64,
        pairs.len()
    );
    assert!(ka.replace(',', "").starts_with(&head), "{ka} vs {head}");
    let median: f64 = ka
        .split("interval median ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ka}"));
    assert!((median - 60.0).abs() <= 0.6, "{ka}");
}

#[test]
fn the_sessions_are_summarised_without_csv_reports_too() {
    let o = Command::new(BIN)
        .args(["analyze", "--quiet"])
        .arg(capture("one-nat"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let summary = String::from_utf8(o.stdout).unwrap();
    let call = session_line(&summary, "signalling");
    assert!(
        call.starts_with("1 call: 0 direct-udp, 1 relay-udp"),
        "{call}"
    );
    // No Skylark, no sessions: the bundled capture's summary has no such section.
    let o = Command::new(BIN)
        .args(["analyze", "--quiet"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/captures/voip-mix.pcap"
        ))
        .output()
        .unwrap();
    assert!(o.status.success());
    let summary = String::from_utf8(o.stdout).unwrap();
    assert!(!summary.contains("sessions"), "{summary}");
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

/// Checks that every address's `bytes_sent`/`bytes_received` in hosts.csv are the payload it
/// sent and received over all its flows in flows.csv, and that every address with payload
/// has a row.
fn assert_hosts_bytes_are_their_flows_payload(dir: &std::path::Path) {
    let mut want: HashMap<String, (u64, u64)> = HashMap::new();
    for f in rows(&dir.join("flows.csv")) {
        let (o, r) = (
            f["orig_payload"].parse::<u64>().unwrap(),
            f["resp_payload"].parse::<u64>().unwrap(),
        );
        if o + r == 0 {
            continue;
        }
        let (a, b) = (f["orig_addr"].clone(), f["resp_addr"].clone());
        want.entry(a.clone()).or_default().0 += o;
        want.entry(b.clone()).or_default().1 += o;
        want.entry(b).or_default().0 += r;
        want.entry(a).or_default().1 += r;
    }
    let hosts = rows(&dir.join("hosts.csv"));
    let got: HashMap<String, (u64, u64)> = hosts
        .iter()
        .map(|h| {
            let n = |c: &str| h[c].parse::<u64>().unwrap();
            (h["addr"].clone(), (n("bytes_sent"), n("bytes_received")))
        })
        .collect();
    assert_eq!(got.len(), hosts.len(), "one row per address");
    assert_eq!(got, want);
}

#[test]
fn hosts_bytes_are_the_payload_of_all_their_flows() {
    // Skylark over TCP relays (framing and all) on the simulator's capture: every packet
    // is a message, yet a message's length is not its packet's payload.
    let (dir, _) = analyze("both-nat-udp-blocked");
    assert_hosts_bytes_are_their_flows_payload(dir.path());
    let Some(ext) = common::external_captures() else {
        return;
    };
    // Zoom: almost nothing decoded (DNS, ClientHellos), every address still counted.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["analyze", "-q", "--csv"])
        .arg(dir.path())
        .arg(ext.join("ndpi/zoom.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_hosts_bytes_are_their_flows_payload(dir.path());
    assert_eq!(rows(&dir.path().join("hosts.csv")).len(), 24);
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

#[test]
fn the_readmes_sessions_example_is_what_analyze_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = readme
        .split("```\nsessions\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("README has a sessions example");
    let (_, summary) = analyze("one-nat");
    assert!(
        summary.contains(&format!("sessions\n{example}")),
        "README:\n{example}\nanalyze:\n{summary}"
    );
}

#[test]
fn phone_home_on_real_captures_counts_every_packet_to_a_named_home() {
    let Some(ext) = common::external_captures() else {
        return;
    };
    // Zoom: every home address was resolved (DNS) before its flows began, so each pair's
    // bytes are exactly the payload of all its flows in flows.csv — the TLS and UDP 8801
    // traffic no dissector decodes included, not only the ClientHellos.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["analyze", "-q", "--home", "*.zoom.us", "--csv"])
        .arg(dir.path())
        .arg(ext.join("ndpi/zoom.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let flows = rows(&dir.path().join("flows.csv"));
    let homes = rows(&dir.path().join("phonehome.csv"));
    assert_eq!(homes.len(), 7, "{homes:?}");
    for h in &homes {
        let (mut to, mut from) = (0.0, 0.0);
        for f in &flows {
            if f["orig_addr"] == h["client"] && f["resp_addr"] == h["home"] {
                to += secs(f, "orig_payload");
                from += secs(f, "resp_payload");
            } else if f["orig_addr"] == h["home"] && f["resp_addr"] == h["client"] {
                to += secs(f, "resp_payload");
                from += secs(f, "orig_payload");
            }
        }
        assert!(from > to && to > 500.0, "{h:?}");
        assert_eq!(
            (secs(h, "bytes_to_home"), secs(h, "bytes_from_home")),
            (to, from),
            "{h:?}"
        );
        // Named by the DNS name that made the address home.
        assert!(h["home_name"].ends_with(".zoom.us"), "{h:?}");
        assert_eq!(h["kinds"], "other");
    }
    // WhatsApp: the only traffic to a resolved *.whatsapp.net address is XMPP on port
    // 5222, which no dissector decodes — still one contact.
    let o = Command::new(BIN)
        .args(["phonehome", "-q", "--csv", "--home", "*.whatsapp.net"])
        .arg(ext.join("peafowl/whatsapp.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with("192.168.1.176,169.53.71.242,e15.whatsapp.net,1,"),
        "{text}"
    );
}
