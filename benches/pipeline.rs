//! Criterion benches of the per-packet stages, in packets per second
//! (`Throughput::Elements`): capture read, decode, decode + flow table, and the whole
//! pipeline with flows.csv. Input: the bundled `captures/voip-mix.pcap`, or set
//! `P2PTRACE_BENCH_PCAP` to a bigger capture (e.g. one from `../shared/bench/gen_pcap.py`;
//! per-packet cost rises with the number of live flows). `benches/compare.sh` runs the
//! side-by-side comparison with tshark and ndpiReader.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2ptrace::capture::CaptureReader;
use p2ptrace::decode::{Decoder, DefragLimits};
use p2ptrace::flow::{FlowConfig, FlowRecord, FlowTable};
use p2ptrace::pipeline::{self, FlowConsumer, PipelineConfig};
use p2ptrace::report::flows_csv::FlowsCsv;
use std::hint::black_box;
use std::path::PathBuf;

fn input() -> PathBuf {
    std::env::var_os("P2PTRACE_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/captures/voip-mix.pcap"
            ))
        })
}

fn count_frames(path: &std::path::Path) -> u64 {
    let mut r = CaptureReader::open(path).expect("bench capture");
    let mut n = 0;
    while let Ok(Some(_)) = r.next_frame() {
        n += 1;
    }
    n
}

struct CsvConsumer(FlowsCsv);

impl FlowConsumer for CsvConsumer {
    fn flow(&mut self, record: &FlowRecord, digits: u8) {
        let _ = self.0.push(record, digits);
    }
    fn watermark(&mut self, w: (i64, u64)) {
        let _ = self.0.release_below(w);
    }
}

fn stages(c: &mut Criterion) {
    let path = input();
    let frames = count_frames(&path);
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(frames));

    g.bench_function("capture_read", |b| {
        b.iter(|| {
            let mut r = CaptureReader::open(&path).unwrap();
            let mut bytes = 0usize;
            while let Ok(Some(f)) = r.next_frame() {
                bytes += f.data.len();
            }
            black_box(bytes)
        })
    });

    g.bench_function("capture_decode", |b| {
        b.iter(|| {
            let mut r = CaptureReader::open(&path).unwrap();
            let mut d = Decoder::new(DefragLimits::default());
            let mut n = 0u64;
            while let Ok(Some(f)) = r.next_frame() {
                if let Some(p) = d.decode(&f) {
                    n += u64::from(p.payload_len());
                }
            }
            black_box(n)
        })
    });

    g.bench_function("capture_decode_flow", |b| {
        b.iter(|| {
            let mut r = CaptureReader::open(&path).unwrap();
            let mut d = Decoder::new(DefragLimits::default());
            let mut t = FlowTable::<()>::new(FlowConfig::default());
            let mut ended = 0u64;
            let mut sink = |_r: FlowRecord, ()| ended += 1;
            while let Ok(Some(f)) = r.next_frame() {
                if let Some(p) = d.decode(&f) {
                    t.ingest(&p, &mut sink);
                }
            }
            t.finish(&mut sink);
            black_box(ended)
        })
    });

    let dir = tempfile::tempdir().unwrap();
    g.bench_function("analyze_with_flows_csv", |b| {
        b.iter(|| {
            let mut c = CsvConsumer(FlowsCsv::create(&dir.path().join("flows.csv")).unwrap());
            let stats = pipeline::run(
                std::slice::from_ref(&path),
                &PipelineConfig::default(),
                &mut c,
                &mut |_, _, _| {},
            );
            c.0.finish().unwrap();
            black_box(stats.frames)
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
