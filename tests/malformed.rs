//! Malformed-input sweep: truncations and bit flips of real captures through the whole
//! pipeline (capture → decode → flows → dissectors → reports). Collects every panic and fails if there is
//! any; also checks that damage is reported inside the file and that frames before it count.

mod common;

use common::external_captures;
use p2ptrace::capture::CaptureError;
use p2ptrace::pipeline::{self, FlowConsumer, PipelineConfig};
use p2ptrace::report::flows_csv::FlowsCsv;
use std::path::{Path, PathBuf};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct CsvSink(FlowsCsv);

impl FlowConsumer for CsvSink {
    fn flow(&mut self, record: &p2ptrace::flow::FlowRecord, digits: u8) {
        self.0.push(record, digits).unwrap();
    }
    fn watermark(&mut self, w: (i64, u64)) {
        self.0.release_below(w).unwrap();
    }
}

fn inputs() -> Vec<PathBuf> {
    let mut v = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap")];
    if let Some(dir) = external_captures() {
        for row in common::index(&dir) {
            v.push(dir.join(row.file));
        }
    }
    v
}

/// Runs the pipeline on `bytes`; returns a description of the failure, if any.
fn check(bytes: &[u8], work: &Path, what: &str) -> Option<String> {
    let path = work.join("case.pcap");
    std::fs::write(&path, bytes).unwrap();
    let csv_path = work.join("flows.csv");
    let result = std::panic::catch_unwind(|| {
        let mut sink = CsvSink(FlowsCsv::create(&csv_path).unwrap());
        let config = PipelineConfig {
            dissect: Some(p2ptrace::dissect::DissectConfig::default()),
            ..PipelineConfig::default()
        };
        let stats = pipeline::run(
            std::slice::from_ref(&path),
            &config,
            &mut sink,
            &mut |_, _, _| {},
        );
        sink.0.finish().unwrap();
        stats
    });
    match result {
        Err(_) => Some(format!("{what}: panic")),
        Ok(stats) => match &stats.inputs[0].error {
            Some(CaptureError::Damaged { offset, .. }) if *offset > bytes.len() as u64 => {
                Some(format!(
                    "{what}: damage offset {offset} beyond {} bytes",
                    bytes.len()
                ))
            }
            _ => None,
        },
    }
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    let mut cases = 0;
    // Panics inside catch_unwind would still print; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
    for input in inputs() {
        let data = std::fs::read(&input).unwrap();
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        // Every cut in the first 200 bytes (headers), then spread over the file.
        let mut cuts: Vec<usize> = (0..data.len().min(200)).collect();
        cuts.extend((0..40).map(|_| rng.below(data.len())));
        for cut in cuts {
            cases += 1;
            failures.extend(check(
                &data[..cut],
                work.path(),
                &format!("{name} cut at {cut}"),
            ));
        }
        for i in 0..40 {
            let mut bytes = data.clone();
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            cases += 1;
            failures.extend(check(&bytes, work.path(), &format!("{name} flip set {i}")));
        }
    }
    let _ = std::panic::take_hook();
    assert!(cases > 100);
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
