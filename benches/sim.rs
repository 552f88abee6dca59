//! Criterion bench of the simulator, in simulated packets per wall-clock second
//! (`Throughput::Elements` = packets the hosts sent): the `large` scenario's mix (logins,
//! keepalives, re-polls, relayed and direct calls, half the clients behind NATs) at a size
//! a bench iteration can afford — 1,000 clients and 10 super nodes for 3 simulated minutes,
//! captured at the core. `p2ptrace sim large --out DIR` gives the full-size figure.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use p2ptrace::sim::run::run;
use p2ptrace::sim::scenario::{Overrides, SimScenario};
use std::time::Duration;

const SCENARIO: &str = r#"
name = "bench"
seed = 5
stop_after = "3m"
[login_server]
hash = "fast"
[[crowd]]
role = "supernode"
prefix = "sn"
count = 10
[[crowd]]
prefix = "u"
count = 1000
start_spread = "1m"
nat = "port-restricted"
nat_share = 0.5
udp_blocked_share = 0.02
buddies = 2
calls = 30
call_length = "60s"
"#;

fn sim(c: &mut Criterion) {
    let s = SimScenario::parse_with(SCENARIO, &Overrides::default()).expect("bench scenario");
    let dir = tempfile::tempdir().expect("temp dir");
    let packets = run(&s, dir.path(), |_| {})
        .expect("bench run")
        .stats
        .packets_sent;
    let mut g = c.benchmark_group("sim");
    g.throughput(Throughput::Elements(packets));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("crowd_1000_clients_3min", |b| {
        b.iter(|| run(&s, dir.path(), |_| {}).expect("bench run"))
    });
    g.finish();
}

criterion_group!(benches, sim);
criterion_main!(benches);
