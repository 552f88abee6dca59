//! Skylark throughput: content probes per second (target ≥ 20 M/s/core), strict and lax
//! parses per second, TCP flow decoding, and emits — over the PROTOCOL.md §13 vectors.
//! Run: `cargo bench -p dissectors --bench skylark`.

#[path = "../tests/skylark_common/mod.rs"]
mod skylark_common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dissectors::registry::{Progress, Side, Transport};
use dissectors::skylark::{DESCRIPTOR, Message, MessageView, probe};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let vectors: Vec<Vec<u8>> = skylark_common::spec_vectors()
        .into_iter()
        .map(|v| v.bytes)
        .collect();
    let n = vectors.len() as u64;
    let voice = skylark_common::spec_vector("voice").bytes;
    let stream: Vec<u8> = vectors.concat();
    let owned: Vec<Message> = vectors.iter().map(|b| Message::parse(b).unwrap()).collect();

    let mut g = c.benchmark_group("skylark");
    g.throughput(Throughput::Elements(n));
    g.bench_function("probe_udp", |b| {
        b.iter(|| {
            for v in &vectors {
                black_box(probe(Transport::Udp, Side::Orig, black_box(v)));
            }
        })
    });
    g.bench_function("parse_strict", |b| {
        b.iter(|| {
            for v in &vectors {
                let _ = black_box(MessageView::parse(black_box(v)));
            }
        })
    });
    g.bench_function("parse_lax", |b| {
        b.iter(|| {
            for v in &vectors {
                black_box(MessageView::parse_lax(black_box(v)));
            }
        })
    });
    g.bench_function("tcp_flow_rows", |b| {
        let mut rows = Vec::with_capacity(vectors.len());
        b.iter(|| {
            rows.clear();
            let mut flow = (DESCRIPTOR.new_flow)(Transport::Tcp);
            let p = flow.parse(Side::Orig, 0, black_box(&stream), &mut rows);
            assert!(matches!(p, Progress::Parsed { .. }));
        })
    });
    g.bench_function("emit", |b| {
        let mut buf = Vec::with_capacity(stream.len());
        b.iter(|| {
            buf.clear();
            for m in &owned {
                m.emit(&mut buf).unwrap();
            }
            black_box(&buf);
        })
    });
    g.finish();

    // Full parses per second per traffic class (PROTOCOL.md §5).
    let mut g = c.benchmark_group("skylark_class");
    for class in ["login", "lookup", "signalling", "keepalive", "media"] {
        let of_class: Vec<&Vec<u8>> = vectors
            .iter()
            .filter(|v| {
                MessageView::parse(v)
                    .ok()
                    .and_then(|m| m.msg_type().class())
                    .is_some_and(|c| c.as_str() == class)
            })
            .collect();
        g.throughput(Throughput::Elements(of_class.len() as u64));
        g.bench_function(class, |b| {
            b.iter(|| {
                for v in &of_class {
                    let _ = black_box(MessageView::parse(black_box(v)));
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("skylark_voice");
    g.throughput(Throughput::Elements(1));
    g.bench_function("probe", |b| {
        b.iter(|| probe(Transport::Udp, Side::Orig, black_box(&voice)))
    });
    g.bench_function("parse_strict", |b| {
        b.iter(|| MessageView::parse(black_box(&voice)).is_ok())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
