//! Logins and lookups (logins.csv, lookups.csv) on the simulator's committed captures,
//! checked against the simulator's own `login` and `lookup` events (events.csv.gz).

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_p2ptrace");

fn scenario_file(scenario: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/sim")
        .join(scenario)
        .join(file)
}

/// `analyze --csv` into a temporary directory.
fn analyze(scenario: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .arg("analyze")
        .arg(scenario_file(scenario, "capture.pcapng.gz"))
        .arg("--csv")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir
}

fn read_csv<R: Read>(r: R) -> Vec<HashMap<String, String>> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(r);
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            head.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

use common::csv_rows as rows;

/// The simulator's events of type `event` (ground truth).
fn events(scenario: &str, event: &str) -> Vec<HashMap<String, String>> {
    let f = std::fs::File::open(scenario_file(scenario, "events.csv.gz")).unwrap();
    read_csv(flate2::read::GzDecoder::new(f))
        .into_iter()
        .filter(|e| e.get("event").map(String::as_str) == Some(event))
        .collect()
}

fn ok_logins(scenario: &str) -> (Vec<HashMap<String, String>>, usize) {
    let dir = analyze(scenario);
    let logins = rows(&dir.path().join("logins.csv"));
    let expected = events(scenario, "login")
        .iter()
        .filter(|e| e.get("ok").map(String::as_str) == Some("true"))
        .count();
    let ok: Vec<_> = logins
        .into_iter()
        .filter(|l| l["outcome"] == "ok")
        .collect();
    (ok, expected)
}

#[test]
fn successful_logins_match_the_simulators_login_events() {
    for (scenario, n) in [
        ("no-nat", 2),
        ("one-nat", 2),
        ("both-nat-udp-blocked", 2),
        ("phone-home", 28),
        ("churn", 36), // 8 of them re-registrations after losing the SN
    ] {
        let (ok, expected) = ok_logins(scenario);
        assert_eq!(expected, n, "{scenario}: events");
        assert_eq!(ok.len(), expected, "{scenario}: {ok:?}");
        for l in &ok {
            let d: f64 = l["duration_s"].parse().unwrap();
            assert!((0.0..30.0).contains(&d), "{scenario}: {l:?}");
            assert!(l["steps"].contains("sn-session"), "{scenario}: {l:?}");
        }
    }
}

#[test]
fn udp_blocked_logins_fall_back_to_tcp_after_probing() {
    let (ok, _) = ok_logins("both-nat-udp-blocked");
    for l in &ok {
        assert_eq!(l["transport"], "tcp", "{l:?}");
        assert!(l["steps"].contains("probes"), "{l:?}");
        assert!(!l["fallback_port"].is_empty(), "{l:?}");
    }
    let (ok, _) = ok_logins("no-nat");
    assert!(
        ok.iter()
            .all(|l| l["transport"] == "udp" && l["fallback_port"].is_empty())
    );
}

#[test]
fn no_nat_lookup_of_bob_is_found_within_a_second() {
    let dir = analyze("no-nat");
    let lookups = rows(&dir.path().join("lookups.csv"));
    let truth = events("no-nat", "lookup");
    assert_eq!(truth.len(), 1);
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    let l = &lookups[0];
    assert_eq!(l["outcome"], "found");
    assert_eq!(l["target"], truth[0]["peer"]);
    assert_eq!(l["target"], "bob");
    let latency: f64 = l["latency_s"].parse().unwrap();
    assert!(latency > 0.0 && latency < 1.0, "{l:?}");
    // bob is registered with another SN: alice's SN searched ring 1 (§8.6).
    assert_eq!(
        (l["sn_searches"].as_str(), l["from_cache"].as_str()),
        ("1", "false")
    );
}

/// In the conference, alice's SN searches for carol; bob asks the same SN for carol 2 s later
/// and is answered from its 300 s result cache (§8.6) without a ring search, faster.
#[test]
fn conference_second_lookup_of_carol_is_answered_from_the_sn_cache() {
    let dir = analyze("conference");
    let lookups = rows(&dir.path().join("lookups.csv"));
    let carol: Vec<_> = lookups.iter().filter(|l| l["target"] == "carol").collect();
    assert_eq!(carol.len(), 2, "{lookups:?}");
    assert_eq!(carol[0]["from_cache"], "false");
    assert_ne!(carol[0]["sn_searches"], "0");
    assert_eq!(carol[1]["from_cache"], "true");
    assert_eq!(carol[1]["sn_searches"], "0");
    let latency =
        |l: &std::collections::HashMap<String, String>| -> f64 { l["latency_s"].parse().unwrap() };
    assert!(latency(carol[1]) < latency(carol[0]));
}
