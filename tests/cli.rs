//! End-to-end tests of the commands a user types, through the built binary.

mod common;

use common::bin;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run p2ptrace")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_clean_error(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace hint: {err}");
}

#[test]
fn analyze_prints_a_summary_and_writes_flows_csv() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "analyze",
        bundled().to_str().unwrap(),
        "--csv",
        out.path().join("reports").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("4,000 frames"), "{text}");
    assert!(text.contains("flows        120"), "{text}");
    assert!(text.contains("anomalies    none"), "{text}");
    let csv = std::fs::read_to_string(out.path().join("reports/flows.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "uid,ts_start,ts_end,duration,proto,orig_addr,orig_port,resp_addr,resp_port,\
         orig_pkts,orig_bytes,orig_payload,resp_pkts,resp_bytes,resp_payload,state,history,\
         ip_proto,end_reason,service,class,msgs_login,msgs_lookup,msgs_signalling,\
         msgs_keepalive,msgs_media,bytes_login,bytes_lookup,bytes_signalling,bytes_keepalive,\
         bytes_media,evidence"
    );
    assert_eq!(lines.count(), 120);
    let messages = std::fs::read_to_string(out.path().join("reports/messages.csv")).unwrap();
    let mut lines = messages.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ts,uid,dir,protocol,msg_type,txn_id,call_id,len,status,class,detail,home"
    );
    // The capture's DNS exchanges: 12 queries and 12 responses.
    assert_eq!(lines.filter(|l| l.contains(",dns,")).count(), 24);
    // Every message's uid is a flow of flows.csv.
    let uids: std::collections::HashSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert!(
        messages
            .lines()
            .skip(1)
            .all(|l| uids.contains(l.split(',').nth(1).unwrap()))
    );
}

#[test]
fn analyze_names_each_report_written_and_states_spans_in_readable_units() {
    let out = tempfile::tempdir().unwrap();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/sim/one-nat/capture.pcapng.gz");
    let o = run(&[
        "analyze",
        "-q",
        cap.to_str().unwrap(),
        "--csv",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for line in [
        "wrote 12 flows to",
        "wrote 1 call to",
        "wrote 1 lookup to",
        "wrote 2 logins to",
    ] {
        assert!(err.contains(line), "{line:?} missing: {err}");
    }
    assert_eq!(err.lines().count(), 8, "{err}");
    // A 47-second capture: the phone-home headline says seconds, not "0.0 h".
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("2 times in 47.1 s: median interval 30.1 s"),
        "{text}"
    );
}

#[test]
fn no_dissect_writes_flows_only() {
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "analyze",
        "--no-dissect",
        bundled().to_str().unwrap(),
        "--csv",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.path().join("flows.csv").is_file());
    assert!(!out.path().join("messages.csv").exists());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("services"));
}

#[test]
fn analyze_reads_stdin_and_gzip() {
    let data = std::fs::read(bundled()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &data).unwrap();
    let gz = gz.finish().unwrap();
    for input in [data, gz] {
        let mut child = Command::new(bin())
            .args(["analyze", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("flows        120"));
    }
}

#[test]
fn flows_prints_an_aligned_table_sorted_by_bytes() {
    let o = run(&["flows", bundled().to_str().unwrap(), "--limit", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("proto"), "{text}");
    assert_eq!(lines.len(), 1 + 5 + 1, "{text}");
    assert!(lines[6].contains("5 of 120 flows"));
    // The byte column (8th) is non-increasing.
    let bytes: Vec<u64> = lines[1..6]
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(7)
                .unwrap()
                .replace(',', "")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    // Sorting by start gives a different first row for this capture, in time order.
    let o = run(&[
        "flows",
        bundled().to_str().unwrap(),
        "--sort",
        "start",
        "--limit",
        "0",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("120 of 120 flows"));
}

#[test]
fn missing_file_directory_empty_and_garbage_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.path().join("notes.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all\n").unwrap();
    for (path, needle) in [
        (dir.path().join("nope.pcap"), "nope.pcap"),
        (dir.path().to_path_buf(), dir.path().to_str().unwrap()),
        (empty.clone(), "empty"),
        (garbage.clone(), "not a pcap or pcapng file"),
    ] {
        let o = run(&["analyze", path.to_str().unwrap()]);
        assert_clean_error(&o, 1, needle);
        let errors = stderr(&o).lines().filter(|l| l.contains("error")).count();
        assert_eq!(errors, 1, "{}", stderr(&o));
    }
}

#[test]
fn a_closed_stderr_keeps_the_exit_code_and_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("csv");
    for (input, code) in [(bundled(), 0), (dir.path().join("nope.pcap"), 1)] {
        let mut child = Command::new(bin())
            .args([
                "analyze",
                input.to_str().unwrap(),
                "--csv",
                csv.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Whoever read stderr went away (`2>&1 | head -1`): every line hits a closed pipe.
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{input:?}");
        assert!(csv.join("flows.csv").exists() && csv.join("hosts.csv").exists());
    }
}

#[test]
fn damaged_file_exits_3_and_still_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read(bundled()).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let o = run(&[
        "analyze",
        cut.to_str().unwrap(),
        "--csv",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_clean_error(&o, 3, "damaged at byte offset");
    let csv = std::fs::read_to_string(dir.path().join("out/flows.csv")).unwrap();
    assert!(csv.lines().count() > 10, "partial results written");
}

/// The two large reports are written by background threads: a failed write there must still
/// reach the user as one line and exit 1, with the other reports complete.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_under_one_report_is_one_error_line_and_the_rest_are_written() {
    for full in ["messages.csv", "flows.csv"] {
        let dir = tempfile::tempdir().unwrap();
        // /dev/full fails every write with ENOSPC, like a disk that filled up.
        std::os::unix::fs::symlink("/dev/full", dir.path().join(full)).unwrap();
        let o = run(&[
            "analyze",
            bundled().to_str().unwrap(),
            "--csv",
            dir.path().to_str().unwrap(),
        ]);
        assert_clean_error(&o, 1, "No space left on device");
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        // The other one complete: header and every row.
        let (other, lines) = if full == "flows.csv" {
            ("messages.csv", 65)
        } else {
            ("flows.csv", 121)
        };
        let rows = std::fs::read_to_string(dir.path().join(other)).unwrap();
        assert_eq!(rows.lines().count(), lines, "{other} still written");
        let hosts = std::fs::read_to_string(dir.path().join("hosts.csv")).unwrap();
        assert_eq!(hosts.lines().count(), 210, "hosts.csv still written");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_clean_error(&run(&["analyze"]), 2, "FILE");
    assert_clean_error(&run(&["frobnicate"]), 2, "frobnicate");
    let o = run(&["analyze", "x.pcap", "--idle-timeout", "udp=soon"]);
    assert_clean_error(&o, 2, "not a number");
    let o = run(&["flows", "x.pcap", "--sort", "color"]);
    assert_clean_error(&o, 2, "color");
    // A cap of no live flows would evict every flow after its first packet.
    let o = run(&["analyze", "x.pcap", "--max-flows", "0"]);
    assert_clean_error(&o, 2, "--max-flows");
}

#[test]
fn every_command_has_help_with_examples_that_name_files_which_exist() {
    let o = run(&["--help"]);
    let top = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(top.contains("Exit codes"));
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cmd in commands {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Examples:"), "{cmd}: {text}");
        // A bundled capture or doc an example names must be there to copy and paste.
        for word in text.split(|c: char| c.is_whitespace() || "(),'`".contains(c)) {
            if word.starts_with("captures/") || word.starts_with("docs/") {
                let path = word.trim_end_matches('.');
                assert!(root.join(path).exists(), "{cmd} --help names {path}");
            }
        }
    }
}

#[test]
fn idle_timeout_none_and_defaults_differ_on_long_gaps() {
    // The bundled capture has no gaps over 300 s, so both settings give 120 flows.
    for spec in ["none", "udp=300,tcp=3600"] {
        let o = run(&[
            "analyze",
            bundled().to_str().unwrap(),
            "--idle-timeout",
            spec,
        ]);
        assert_eq!(o.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&o.stdout).contains("flows        120"));
    }
    // A 1 s UDP timeout splits the media flows of the calls.
    let o = run(&[
        "analyze",
        bundled().to_str().unwrap(),
        "--idle-timeout",
        "udp=0.001",
    ]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("flows        120"));
}

#[test]
fn absurd_record_length_and_bad_pcapng_block_exit_3_with_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    // A valid pcap whose third record claims a 3 GB capture length.
    let mut data = std::fs::read(bundled()).unwrap();
    let third = {
        let mut off = 24;
        for _ in 0..2 {
            let caplen = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap());
            off += 16 + caplen as usize;
        }
        off
    };
    data[third + 8..third + 12].copy_from_slice(&3_000_000_000u32.to_le_bytes());
    let absurd = dir.path().join("absurd.pcap");
    std::fs::write(&absurd, &data).unwrap();
    let o = run(&["analyze", absurd.to_str().unwrap()]);
    assert_clean_error(&o, 3, &format!("damaged at byte offset {third}"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 frames"));

    // A pcapng: section header, then a block whose length is not a multiple of 4.
    let mut ng = Vec::new();
    ng.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
    ng.extend_from_slice(&28u32.to_le_bytes());
    ng.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    ng.extend_from_slice(&1u16.to_le_bytes());
    ng.extend_from_slice(&0u16.to_le_bytes());
    ng.extend_from_slice(&u64::MAX.to_le_bytes());
    ng.extend_from_slice(&28u32.to_le_bytes());
    ng.extend_from_slice(&1u32.to_le_bytes()); // an IDB…
    ng.extend_from_slice(&30u32.to_le_bytes()); // …with a bad length
    ng.extend_from_slice(&[0u8; 22]);
    let bad = dir.path().join("bad-block.pcapng");
    std::fs::write(&bad, &ng).unwrap();
    let o = run(&["analyze", bad.to_str().unwrap()]);
    assert_clean_error(&o, 3, "damaged at byte offset 28");
}

/// The records of a CSV file (header included), parsed.
fn records(path: &Path) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn messages_option_lists_the_selected_classes_and_leaves_every_other_report_alone() {
    let (full, summary) = common::analyze_sim("one-nat");
    let all = records(&full.path().join("messages.csv"));
    let class_col = all[0].iter().position(|c| c == "class").unwrap();
    let classes = |rows: &[csv::StringRecord]| {
        let mut seen: Vec<String> = rows[1..].iter().map(|r| r[class_col].to_string()).collect();
        seen.sort();
        seen.dedup();
        seen
    };
    assert_eq!(
        classes(&all),
        ["keepalive", "login", "lookup", "media", "signalling"],
        "the scenario has every class"
    );
    for (spec, kept) in [
        ("-keepalive,-media", &["login", "lookup", "signalling"][..]),
        ("media", &["media"][..]),
        ("none", &[][..]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let o = run(&[
            "analyze",
            common::sim_capture("one-nat").to_str().unwrap(),
            "--csv",
            out.path().to_str().unwrap(),
            "--messages",
            spec,
        ]);
        assert_eq!(o.status.code(), Some(0), "{spec}: {}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            summary,
            "{spec}: summary"
        );
        assert!(
            stderr(&o).contains(" selected messages to "),
            "{}",
            stderr(&o)
        );
        let got = records(&out.path().join("messages.csv"));
        let want: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, r)| *i == 0 || kept.contains(&&r[class_col]))
            .map(|(_, r)| r.clone())
            .collect();
        assert!(want.len() > 1 || kept.is_empty(), "{spec}");
        assert_eq!(
            got, want,
            "{spec}: the full run's rows of those classes, in order"
        );
        for report in [
            "flows.csv",
            "calls.csv",
            "logins.csv",
            "lookups.csv",
            "keepalives.csv",
            "phonehome.csv",
            "hosts.csv",
        ] {
            let read = |d: &Path| std::fs::read(d.join(report)).unwrap();
            assert!(read(out.path()) == read(full.path()), "{spec}: {report}");
        }
    }
    let cap = common::sim_capture("one-nat");
    let cap = cap.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x");
    let x = x.to_str().unwrap();
    let o = run(&["analyze", cap, "--csv", x, "--messages", "login,-media"]);
    assert_clean_error(&o, 2, "not both");
    let o = run(&["analyze", cap, "--csv", x, "--messages=keepalives"]);
    assert_clean_error(&o, 2, "unknown class 'keepalives'");
    assert_clean_error(&run(&["analyze", cap, "--messages", "login"]), 2, "--csv");
    let o = run(&[
        "analyze",
        cap,
        "--csv",
        x,
        "--no-dissect",
        "--messages",
        "login",
    ]);
    assert_clean_error(&o, 2, "--no-dissect");
    assert!(!Path::new(x).exists(), "usage errors write nothing");
}
