//! The look-ahead (src/lookahead.rs) only hints the caches: every report is byte for byte
//! the same with it forced on from the first frame as with it off, on a mapped pcap, a
//! streamed (gzip) pcapng and a mapped pcapng. (By default it is timed and only starts
//! after the first 64 k frames, so the other end-to-end tests never run with it.)

mod common;

use common::{bin, sim_capture};
use std::path::Path;
use std::process::Command;

/// Every CSV `analyze` writes for `capture` with `P2PTRACE_LOOKAHEAD=mode`, by name.
fn reports(capture: &Path, mode: &str) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .env("P2PTRACE_LOOKAHEAD", mode)
        .args(["analyze", "--quiet", "--csv"])
        .arg(dir.path())
        .arg(capture)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut all: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

fn same_reports_either_way(capture: &Path) {
    let (on, off) = (reports(capture, "on"), reports(capture, "off"));
    assert_eq!(on.len(), 8, "{}", capture.display());
    for ((name, a), (other, b)) in on.iter().zip(&off) {
        assert_eq!(name, other);
        assert!(
            a == b,
            "{name} of {} differs with the look-ahead on",
            capture.display()
        );
    }
    let messages = &on.iter().find(|(n, _)| n == "messages.csv").unwrap().1;
    let rows = messages.iter().filter(|&&b| b == b'\n').count();
    assert!(
        rows > 50,
        "{rows} rows in messages.csv of {}",
        capture.display()
    );
}

#[test]
fn reports_do_not_depend_on_the_look_ahead() {
    same_reports_either_way(&Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap"));
    for scenario in ["churn", "conference"] {
        same_reports_either_way(&sim_capture(scenario));
    }
    let mut plain = tempfile::NamedTempFile::new().unwrap();
    let gz = std::fs::File::open(sim_capture("churn")).unwrap();
    std::io::copy(&mut flate2::read::GzDecoder::new(gz), &mut plain).unwrap();
    same_reports_either_way(plain.path());
}
