//! STUN, DNS, HTTP and TLS-hello throughput: probes and full parses per second of real
//! messages (the samples shared with the tests). Run: `cargo bench -p dissectors --bench
//! netproto`.

#[path = "../tests/netproto_common/mod.rs"]
mod netproto_common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dissectors::registry::{DissectorDesc, Side, Transport};
use netproto_common::samples;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let http = b"GET /ui/0/1.0.0/en/getlatestversion HTTP/1.1\r\nHost: home.example\r\nUser-Agent: skylark/1.0.0\r\n\r\n".to_vec();
    let cases: [(&str, DissectorDesc, Transport, Vec<u8>); 5] = [
        (
            "stun",
            dissectors::stun::DESCRIPTOR,
            Transport::Udp,
            samples::rfc5769_request(),
        ),
        (
            "dns_query",
            dissectors::dns::DESCRIPTOR,
            Transport::Udp,
            samples::query(),
        ),
        (
            "dns_response",
            dissectors::dns::DESCRIPTOR,
            Transport::Udp,
            samples::response(),
        ),
        (
            "http_request",
            dissectors::http::DESCRIPTOR,
            Transport::Tcp,
            http,
        ),
        (
            "tls_client_hello",
            dissectors::tls::DESCRIPTOR,
            Transport::Tcp,
            samples::client_hello_record(),
        ),
    ];
    let mut g = c.benchmark_group("netproto");
    g.throughput(Throughput::Elements(1));
    for (name, desc, transport, bytes) in &cases {
        g.bench_function(format!("{name}/probe"), |b| {
            b.iter(|| (desc.probe)(*transport, Side::Orig, black_box(bytes)))
        });
        g.bench_function(format!("{name}/parse"), |b| {
            let mut rows = Vec::with_capacity(4);
            b.iter(|| {
                rows.clear();
                // A fresh flow per message: TCP dissectors keep per-stream state.
                let mut flow = (desc.new_flow)(*transport);
                black_box(flow.parse(Side::Orig, 0, black_box(bytes), &mut rows));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
