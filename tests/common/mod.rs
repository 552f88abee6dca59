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

/// Path of the built binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_p2ptrace"))
}
