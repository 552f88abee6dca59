//! `p2ptrace score` end to end: the committed simulator captures against their labels.

mod common;

use common::bin;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCENARIOS: [&str; 6] = [
    "no-nat",
    "one-nat",
    "both-nat-udp-blocked",
    "conference",
    "phone-home",
    "churn",
];

fn sim_dir(s: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/sim")
        .join(s)
}

fn score(capture: &Path, labels: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .arg("score")
        .arg("-q")
        .arg(capture)
        .arg("--labels")
        .arg(labels)
        .args(extra)
        .output()
        .expect("run p2ptrace")
}

fn num_after(json: &str, from: usize, key: &str) -> f64 {
    let pat = format!("\"{key}\": ");
    let at = json[from..].find(&pat).expect(key) + from + pat.len();
    let end = json[at..].find([',', '}']).map_or(json.len(), |e| at + e);
    json[at..end].trim().parse().expect("number")
}

/// (precision, recall, support) of a class in the JSON output.
fn class_stats(json: &str, class: &str) -> Option<(f64, f64, u64)> {
    let classes = json.find("\"classes\": {")?;
    let at = classes + json[classes..].find(&format!("\"{class}\": {{"))?;
    Some((
        num_after(json, at, "precision"),
        num_after(json, at, "recall"),
        num_after(json, at, "support") as u64,
    ))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_label_of_every_scenario_is_matched_and_classified_right() {
    for s in SCENARIOS {
        let dir = sim_dir(s);
        let o = score(
            &dir.join("capture.pcapng.gz"),
            &dir.join("labels.csv.gz"),
            &["--json"],
        );
        assert_eq!(o.status.code(), Some(0), "{s}: {}", stderr(&o));
        let json = String::from_utf8(o.stdout).unwrap();
        let labels = num_after(&json, 0, "labels") as u64;
        let matched = num_after(&json, 0, "matched") as u64;
        assert!(labels > 1000, "{s}: {json}");
        assert_eq!(matched, labels, "{s}: {json}");
        // The simulator stamps labels with the capture's clock: pairs are exact, but for
        // the few TCP messages a lost segment delayed (both-nat-udp-blocked).
        let offsets = json.find("\"offsets_ms\"").expect("offsets");
        assert_eq!(num_after(&json, offsets, "p99"), 0.0, "{s}: {json}");
        for class in ["login", "lookup", "signalling", "keepalive", "media"] {
            let Some((p, r, support)) = class_stats(&json, class) else {
                continue;
            };
            if support == 0 {
                continue;
            }
            assert_eq!(p, 1.0, "{s} {class} precision: {json}");
            assert_eq!(r, 1.0, "{s} {class} recall: {json}");
        }
        let home = json.find("\"home\": {").unwrap();
        let (hp, hr) = (
            num_after(&json, home, "precision"),
            num_after(&json, home, "recall"),
        );
        assert_eq!((hp, hr), (1.0, 1.0), "{s} home: {json}");
        assert!(json.contains("\"mismatches\": []"), "{s}: {json}");
    }
}

/// `scenario`'s labels with every line passed through `edit`, in a temporary file.
fn edited_labels(scenario: &str, edit: impl Fn(&str) -> String) -> (tempfile::TempDir, PathBuf) {
    let mut text = String::new();
    let file = std::fs::File::open(sim_dir(scenario).join("labels.csv.gz")).unwrap();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap();
    let edited: String = text.lines().map(|l| edit(l) + "\n").collect();
    assert!(edited != text, "the edit changed nothing");
    let tmp = tempfile::tempdir().unwrap();
    let labels = tmp.path().join("labels.csv");
    std::fs::File::create(&labels)
        .unwrap()
        .write_all(edited.as_bytes())
        .unwrap();
    (tmp, labels)
}

#[test]
fn flipped_classes_lower_recall_and_are_listed() {
    let dir = sim_dir("no-nat");
    let (_tmp, labels) = edited_labels("no-nat", |l| {
        l.replace(",nat-ping,keepalive,", ",nat-ping,lookup,")
    });
    let capture = dir.join("capture.pcapng.gz");
    let o = score(&capture, &labels, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    let (_, lookup_recall, _) = class_stats(&json, "lookup").unwrap();
    assert!(lookup_recall < 1.0, "{json}");
    let (keep_p, _, _) = class_stats(&json, "keepalive").unwrap();
    assert!(keep_p < 1.0, "{json}");
    assert_eq!(
        num_after(&json, 0, "matched"),
        num_after(&json, 0, "labels")
    );
    // The table names the mismatch.
    let o = score(&capture, &labels, &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    let row = out
        .lines()
        .find(|l| l.contains("nat-ping"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("lookup") && row.contains("keepalive"), "{row}");
    assert!(out.contains("confusion"), "{out}");
}

#[test]
fn media_frames_pair_by_sequence_number() {
    // txn_id (column 10) of a voice label is the frame's sequence number: made wrong, the
    // frames no longer pair, however close in time.
    let (_tmp, labels) = edited_labels("no-nat", |l| {
        let mut cols: Vec<String> = l.split(',').map(str::to_string).collect();
        if cols.get(6).is_some_and(|t| t == "voice") {
            cols[9] = format!("{}", cols[9].parse::<u64>().expect("a voice seq") + 70_000);
        }
        cols.join(",")
    });
    let voice = std::fs::read_to_string(&labels)
        .unwrap()
        .lines()
        .filter(|l| l.contains(",voice,"))
        .count() as f64;
    assert!(voice > 1000.0);
    let o = score(
        &sim_dir("no-nat").join("capture.pcapng.gz"),
        &labels,
        &["--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = String::from_utf8(o.stdout).unwrap();
    let missed = num_after(&json, 0, "labels") - num_after(&json, 0, "matched");
    assert_eq!(missed, voice, "{json}");
}

#[test]
fn capture_point_selection() {
    let dir = sim_dir("no-nat");
    let o = score(
        &dir.join("capture.pcapng.gz"),
        &dir.join("labels.csv.gz"),
        &["--json", "--capture", "nat:nobody"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = String::from_utf8_lossy(&o.stdout);
    assert_eq!(num_after(&json, 0, "labels"), 0.0, "{json}");
    assert!(stderr(&o).contains("no labels for capture point 'nat:nobody'"));
}

#[track_caller]
fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = sim_dir("no-nat");
    let capture = dir.join("capture.pcapng.gz");
    let labels = dir.join("labels.csv.gz");
    let tmp = tempfile::tempdir().unwrap();
    let o = score(&tmp.path().join("missing.pcap"), &labels, &[]);
    assert_one_line_error(&o, 1, "missing.pcap");
    let o = score(&capture, &tmp.path().join("missing.csv"), &[]);
    assert_one_line_error(&o, 1, "missing.csv");
    let garbage = tmp.path().join("garbage.csv");
    std::fs::write(&garbage, b"\x00\x01binary\xff junk\n").unwrap();
    let o = score(&capture, &garbage, &[]);
    assert_one_line_error(&o, 1, "not a labels.csv file");
    let bad_row = tmp.path().join("bad-row.csv");
    std::fs::write(
        &bad_row,
        "ts,transport,src_addr,src_port,dst_addr,dst_port,msg_type,class,home,txn_id,call_id,\
         node,role,capture\n1767225600.1,udp,1.2.3.4,1,5.6.7.8,2,voice,weird,false,,,a,b,core\n",
    )
    .unwrap();
    let o = score(&capture, &bad_row, &[]);
    assert_one_line_error(&o, 1, "line 2: unknown class 'weird'");
    // Usage errors: exit 2.
    let o = Command::new(bin())
        .args(["score", capture.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = score(&capture, &labels, &["--tolerance-ms", "-1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = score(&capture, &labels, &["--home", "10.0.0.0/99"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn analyze_writes_class_and_home_for_every_classified_message() {
    let dir = sim_dir("no-nat");
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("analyze")
        .arg("-q")
        .arg(dir.join("capture.pcapng.gz"))
        .arg("--csv")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let csv = std::fs::read_to_string(tmp.path().join("messages.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ts,uid,dir,protocol,msg_type,txn_id,call_id,len,status,class,detail,home"
    );
    let rows: Vec<&str> = lines.collect();
    // Every message of this capture is overlay traffic: all classified.
    assert!(rows.iter().all(|l| !l.contains(",complete,,")), "{csv}");
    let home = rows.iter().filter(|l| l.ends_with(",true")).count();
    assert_eq!(home, 8, "{csv}");
    assert!(
        rows.iter()
            .filter(|l| l.contains(",http,GET,"))
            .all(|l| l.ends_with(",true") && l.contains(",login,"))
    );
}
