//! `calls.csv` against the simulator's ground truth (captures/sim/*/events.csv.gz): media path,
//! relay, duration, frames each way, loss, and the conference's legs and mixer.

mod common;

use common::bin;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/sim")
        .join(name)
}

/// Rows of a CSV without quoted commas, as column → value maps.
fn parse(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), header.len(), "{l}");
            header
                .iter()
                .zip(f)
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Runs the binary with `args` then `last`, asserting it succeeds.
fn run_ok(args: &[&str], last: &Path) {
    let o = Command::new(bin()).args(args).arg(last).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn calls(name: &str) -> Vec<BTreeMap<String, String>> {
    let out = tempfile::tempdir().unwrap();
    let capture = scenario(name).join("capture.pcapng.gz");
    run_ok(
        &["analyze", capture.to_str().unwrap(), "--quiet", "--csv"],
        out.path(),
    );
    let text = std::fs::read_to_string(out.path().join("calls.csv")).unwrap();
    assert!(text.starts_with(
        "call_id,caller,callee,caller_addr,callee_addr,start,setup_ringing_s,setup_accept_s,\
         duration_s,end_reason,media_path,relay,packets_ab,packets_ba,bitrate_kbps_ab,\
         bitrate_kbps_ba,loss_ab,loss_ba,jitter_ms_ab,jitter_ms_ba,hold_s,conference,mixer\n"
    ));
    parse(&text)
}

/// Event rows whose free-text detail column has no commas (call events do not).
fn events(name: &str, event: &str) -> Vec<BTreeMap<String, String>> {
    let file = std::fs::File::open(scenario(name).join("events.csv.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let wanted: String = std::iter::once(header)
        .chain(lines.filter(|l| l.split(',').nth(3) == Some(event)))
        .map(|l| {
            format!(
                "{}\n",
                l.splitn(10, ',').take(9).collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    parse(&wanted)
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

/// One two-party call; checks it against the scenario's call-setup events.
fn check_two_party(name: &str, lossless: bool) {
    let rows = calls(name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let call = &rows[0];
    let setups = events(name, "call-setup");
    assert_eq!(setups.len(), 2);
    for e in &setups {
        assert_eq!(call["call_id"], e["call_id"]);
        assert_eq!(call["media_path"], e["path"], "{name}");
        assert_eq!(call["relay"], e["relay"], "{name}");
    }
    assert_eq!(
        (call["caller"].as_str(), call["callee"].as_str()),
        ("alice", "bob")
    );
    assert!((num(call, "duration_s") - 30.0).abs() <= 1.0, "{call:?}");
    assert!(call["end_reason"].starts_with("bye"), "{call:?}");
    for dir in ["ab", "ba"] {
        let packets = num(call, &format!("packets_{dir}"));
        assert!(
            (950.0..=1050.0).contains(&packets),
            "{name} {dir}: {packets}"
        );
        // 87-byte frames every 30 ms: 23.2 kbit/s of Skylark messages.
        let kbps = num(call, &format!("bitrate_kbps_{dir}"));
        assert!((22.0..=24.5).contains(&kbps), "{name} {dir}: {kbps}");
        let jitter = num(call, &format!("jitter_ms_{dir}"));
        assert!(jitter >= 0.0, "{jitter}");
        if lossless {
            assert_eq!(num(call, &format!("loss_{dir}")), 0.0, "{call:?}");
        }
    }
    assert!(num(call, "setup_ringing_s") > 0.0 && num(call, "setup_accept_s") < 1.0);
    assert_eq!(num(call, "hold_s"), 0.0);
    assert_eq!(
        (call["conference"].as_str(), call["mixer"].as_str()),
        ("", "")
    );
}

#[test]
fn no_nat_call_is_direct_udp() {
    check_two_party("no-nat", true);
}

#[test]
fn one_nat_call_is_relayed_over_udp() {
    check_two_party("one-nat", true);
}

#[test]
fn udp_blocked_call_is_relayed_over_tcp() {
    check_two_party("both-nat-udp-blocked", false);
}

#[test]
fn conference_legs_share_the_conference_and_name_the_mixer() {
    let rows = calls("conference");
    let setups = events("conference", "call-setup");
    let mut want: Vec<(String, String)> = setups
        .iter()
        .map(|e| (e["call_id"].clone(), e["path"].clone()))
        .collect();
    want.sort();
    want.dedup();
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["call_id"].clone(), r["media_path"].clone()))
        .collect();
    got.sort();
    assert_eq!(got, want);
    let mixers = events("conference", "conference-mixer");
    assert!(!mixers.is_empty());
    assert!(mixers.iter().all(|e| e["peer"] == "bob"), "{mixers:?}");
    for r in &rows {
        assert_eq!(r["mixer"], "bob");
        // The first leg (alice → bob, the mixer) names the conference.
        assert_eq!(r["conference"], rows[0]["call_id"]);
        assert!(
            num(r, "packets_ab") > 700.0 && num(r, "packets_ba") > 700.0,
            "{r:?}"
        );
    }
    assert_eq!(rows[0]["caller"], "alice");
}

#[test]
fn hold_time_is_measured_between_hold_and_resume() {
    // scenarios/basic-call.toml: alice holds at 13 s and resumes at 15 s.
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/basic-call.toml");
    run_ok(
        &["sim", scenario.to_str().unwrap(), "--quiet", "--out"],
        dir.path(),
    );
    let capture = dir.path().join("capture.pcapng");
    run_ok(
        &["analyze", capture.to_str().unwrap(), "--quiet", "--csv"],
        &dir.path().join("out"),
    );
    let rows = parse(&std::fs::read_to_string(dir.path().join("out/calls.csv")).unwrap());
    let [call] = rows.as_slice() else {
        panic!("{rows:?}")
    };
    assert!((num(call, "hold_s") - 2.0).abs() < 0.1, "{call:?}");
    assert_eq!(call["media_path"], "direct-udp");
    assert_eq!(call["end_reason"], "bye:hangup");
}
