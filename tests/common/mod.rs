//! Helpers shared by the integration tests.
#![allow(dead_code)]

use p2ptrace::flow::{FlowRecord, IdleTimeouts};
use p2ptrace::pipeline::{self, FlowConsumer, PipelineConfig, RunStats};
use std::path::{Path, PathBuf};

/// `../shared/captures-external` next to the repository, if present.
pub fn external_captures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures-external");
    if dir.join("INDEX.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} not found", dir.display());
        None
    }
}

/// One row of `INDEX.tsv`.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub file: String,
    pub format: String,
    pub linktype: String,
    pub packets: u64,
    pub tcp_conversations: u64,
    pub udp_conversations: u64,
}

pub fn index(dir: &Path) -> Vec<IndexRow> {
    let text = std::fs::read_to_string(dir.join("INDEX.tsv")).expect("read INDEX.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            IndexRow {
                file: f[0].to_string(),
                format: f[2].to_string(),
                linktype: f[3].to_string(),
                packets: f[4].parse().expect("packets"),
                tcp_conversations: f[5].parse().expect("tcp"),
                udp_conversations: f[6].parse().expect("udp"),
            }
        })
        .collect()
}

#[derive(Default)]
pub struct Collect(pub Vec<FlowRecord>);

impl FlowConsumer for Collect {
    fn flow(&mut self, record: &FlowRecord, _digits: u8) {
        self.0.push(record.clone());
    }
}

/// Runs the pipeline with idle timeouts disabled; records sorted by (start, seq).
#[track_caller]
pub fn flows_of(paths: &[PathBuf]) -> (Vec<FlowRecord>, RunStats) {
    let mut config = PipelineConfig::default();
    config.flow.idle = IdleTimeouts::NONE;
    let mut c = Collect::default();
    let stats = pipeline::run(paths, &config, &mut c, &mut |_, _, _| {});
    let mut v = c.0;
    v.sort_by_key(|r| (r.ts_start, r.seq));
    (v, stats)
}

pub fn have_tool(name: &str) -> bool {
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A committed simulator capture, `captures/sim/SCENARIO/capture.pcapng.gz`.
pub fn sim_capture(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("captures/sim")
        .join(scenario)
        .join("capture.pcapng.gz")
}

/// `analyze --csv` of a committed simulator capture into a temporary directory; returns the
/// directory and the summary (stdout).
pub fn analyze_sim(scenario: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(bin())
        .arg("analyze")
        .arg(sim_capture(scenario))
        .arg("--csv")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, String::from_utf8(o.stdout).unwrap())
}

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_p2ptrace"))
}

/// Builds a classic pcap (µs, Ethernet) from frames `(ts_us, bytes)`.
pub fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // The version is two u16 (2, 4): fix the bytes written as one u32 above.
    out[4..8].copy_from_slice(&[2, 0, 4, 0]);
    for (ts, data) in frames {
        for v in [
            (ts / 1_000_000) as u32,
            (ts % 1_000_000) as u32,
            data.len() as u32,
            data.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(data);
    }
    out
}

/// An Ethernet/IPv4/UDP frame.
pub fn udp_frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut out, payload)
        .expect("build udp frame");
    out
}

/// TCP flags for [`tcp_frame`].
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;

/// An Ethernet/IPv4/TCP frame.
pub fn tcp_frame(
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.0, dst.0, 64)
        .tcp(src.1, dst.1, seq, 65535);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    if flags & PSH != 0 {
        b = b.psh();
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).expect("build tcp frame");
    out
}

/// Rows of a CSV file as maps from column name to value.
pub fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            head.iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// `node`'s distinct UDP source ports to `remote_ip` in a labels.csv, as they change over
/// time: a NAT that maps a socket again shows up as more than one.
pub fn udp_source_ports<'a>(
    labels: &'a [std::collections::HashMap<String, String>],
    node: &str,
    remote_ip: &str,
) -> Vec<&'a str> {
    let mut ports: Vec<&str> = labels
        .iter()
        .filter(|l| l["node"] == node && l["transport"] == "udp" && l["dst_addr"] == remote_ip)
        .map(|l| l["src_port"].as_str())
        .collect();
    ports.dedup();
    ports
}

/// The `hex vector=NAME` test vectors of dissectors/PROTOCOL.md §13, in document order.
pub fn skylark_vectors() -> Vec<(String, Vec<u8>)> {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dissectors/PROTOCOL.md"
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut lines = spec.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```hex vector=") else {
            continue;
        };
        let mut bytes = Vec::new();
        for l in lines.by_ref().take_while(|l| !l.starts_with("```")) {
            bytes.extend(
                l.split_whitespace()
                    .map(|h| u8::from_str_radix(h, 16).unwrap()),
            );
        }
        out.push((name.trim().to_string(), bytes));
    }
    assert!(out.len() >= 40, "found {} vectors", out.len());
    out
}

/// A tmux session removed on drop (also when the test fails).
pub struct Tmux(pub String);

impl Tmux {
    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        self.run(&args);
    }
    pub fn pane(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", &self.0])
    }
    /// Waits (at most 20 s) until the pane shows `text`.
    #[track_caller]
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let p = self.pane();
            if p.contains(text) {
                return p;
            }
            if std::time::Instant::now() > deadline {
                panic!("pane never showed {text:?}:\n{p}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}
