//! Robustness of the real Skylark roles over real loopback sockets (issue 4, security
//! tests: "garbage sent to every listening port leaves every node running").
//!
//! A short overlay (login server, home server, two super nodes, two clients) runs in the
//! lab with the real roles while another thread sends garbage to every listening port of
//! every node: random UDP datagrams, Skylark frames with bad header checks or absurd
//! lengths, STUN-looking junk, TCP connections that send random bytes, connections opened
//! and reset, half-open connections left silent, and an HTTP request to every TCP port.
//! The scripted login, lookup and call must then go through as if nothing had happened.

use p2ptrace::peer::driver::DriverConfig;
use p2ptrace::peer::lab::{Lab, roles};
use p2ptrace::peer::scenario::Scenario;
use p2ptrace::peer::truth::Role;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
name = "garbage"
seed = 7
stop_after = "20s"
network = "127.65.0.0"

[timers]
keepalive_s = 5

[login_server]
name = "ls"
hash = "fast"

[home]
name = "home"

[[supernode]]
name = "sn1"

[[supernode]]
name = "sn2"

[[client]]
name = "alice"
password = "alice-secret"
buddies = ["bob"]

[[client]]
name = "bob"
password = "bob-secret"
buddies = ["alice"]

[[step]]
at = "7s"
node = "alice"
command = "lookup bob"

[[step]]
at = "9s"
node = "alice"
command = "call bob"

[[step]]
at = "16s"
node = "alice"
command = "hangup"
"#;

/// A valid `hc-probe` (PROTOCOL.md §13.3.1), the base of the corrupted frames.
fn hc_probe() -> Vec<u8> {
    use dissectors::skylark::{Flags, MsgType, codec::Message, object::Object};
    Message::new(
        MsgType::HcProbe,
        Flags::REQUEST,
        1,
        vec![Object::u64(dissectors::skylark::FieldId::NodeId, 99)],
    )
    .to_bytes()
    .unwrap()
}

/// Frames that look like Skylark (or STUN, or HTTP) but are not valid.
fn corrupted(rng: &mut ChaCha8Rng) -> Vec<Vec<u8>> {
    let good = hc_probe();
    let mut bad_check = good.clone();
    bad_check[10] ^= 0x5a;
    let mut huge = good.clone();
    // Body length 0xffff with a matching header check: the receiver must not wait for it.
    huge[8] = 0xff;
    huge[9] = 0xff;
    let check = dissectors::skylark::header::header_check(&huge[..10]);
    huge[10..12].copy_from_slice(&check.to_be_bytes());
    let mut cut = good.clone();
    cut.truncate(good.len() - 3);
    let mut stun_junk = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    stun_junk.extend((0..20).map(|_| rng.random::<u8>()));
    let mut flipped = good.clone();
    let i = rng.random_range(12..good.len());
    flipped[i] ^= 0xff;
    vec![
        bad_check,
        huge,
        cut,
        stun_junk,
        flipped,
        b"GET / HTTP/1.1\r\nHost: sn\r\n\r\n".to_vec(),
        vec![0x53; 64],
    ]
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n).map(|_| rng.random::<u8>()).collect()
}

/// Sends one round of garbage to every port; returns the silent connections it leaves
/// open (half-open from the node's point of view: accepted, never a byte).
fn garbage_round(udp: &[SocketAddr], tcp: &[SocketAddr], rng: &mut ChaCha8Rng) -> Vec<TcpStream> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for to in udp {
        for _ in 0..40 {
            let _ = sock.send_to(&random_bytes(rng, 1400), to);
        }
        for f in corrupted(rng) {
            let _ = sock.send_to(&f, to);
        }
    }
    let mut silent = Vec::new();
    let timeout = Duration::from_millis(500);
    for to in tcp {
        // Random bytes, then a normal close.
        for _ in 0..3 {
            if let Ok(mut s) = TcpStream::connect_timeout(to, timeout) {
                let _ = s.write_all(&random_bytes(rng, 4000));
            }
        }
        // Every corrupted frame on its own connection, and all of them on one.
        for f in corrupted(rng) {
            if let Ok(mut s) = TcpStream::connect_timeout(to, timeout) {
                let _ = s.write_all(&f);
            }
        }
        if let Ok(mut s) = TcpStream::connect_timeout(to, timeout) {
            for f in corrupted(rng) {
                let _ = s.write_all(&f);
            }
        }
        // Opened and reset (SO_LINGER 0: RST instead of FIN), with and without data.
        for with_data in [false, true] {
            if let Ok(mut s) = TcpStream::connect_timeout(to, timeout) {
                if with_data {
                    let _ = s.write_all(&hc_probe()[..7]);
                }
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
        }
        // A frame cut in the middle and left hanging, and connections that never speak.
        if let Ok(mut s) = TcpStream::connect_timeout(to, timeout) {
            let _ = s.write_all(&hc_probe()[..5]);
            silent.push(s);
        }
        for _ in 0..4 {
            if let Ok(s) = TcpStream::connect_timeout(to, timeout) {
                silent.push(s);
            }
        }
    }
    silent
}

type Rows = Vec<HashMap<String, String>>;

fn read_csv(path: &Path) -> Rows {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            head.iter()
                .zip(l.splitn(head.len(), ','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn garbage_on_every_port_leaves_every_node_running() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::parse(SCENARIO).unwrap();
    let factory = roles::factory();
    let lab = Lab::new(
        &scenario,
        factory.as_ref(),
        dir.path(),
        DriverConfig::default(),
    )
    .unwrap();
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    for n in lab.nodes() {
        tcp.push(n.addr);
        if matches!(n.role, Role::SuperNode | Role::Client) {
            udp.push(n.addr);
        }
    }
    // Garbage while the nodes start and log in, and again during the call.
    let attacker = std::thread::spawn(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut held = Vec::new();
        for at in [Duration::from_millis(200), Duration::from_secs(11)] {
            let wait = at.saturating_sub(started.elapsed());
            std::thread::sleep(wait);
            held.extend(garbage_round(&udp, &tcp, &mut rng));
        }
        held
    });
    let report = lab.run().unwrap();
    let held = attacker.join().unwrap();
    assert!(!held.is_empty(), "half-open connections were made");
    drop(held);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // The garbage arrived: per round and TCP port 16 connections (6 nodes), 47 datagrams
    // per UDP port (4 nodes); the overlay's own traffic comes on top.
    let st = &report.stats;
    assert!(st.tcp_accepted >= 2 * 6 * 14, "{st:?}");
    assert!(st.udp_rx >= 2 * 4 * 40, "{st:?}");

    let events = read_csv(&dir.path().join("events.csv"));
    let labels = read_csv(&dir.path().join("labels.csv"));
    let find = |node: &str, kind: &str| {
        events
            .iter()
            .find(|e| e["node"] == node && e["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} from {node}: {}", report.render()))
    };
    for client in ["alice", "bob"] {
        assert_eq!(find(client, "login")["ok"], "true", "{client} logged in");
    }
    assert_eq!(find("alice", "lookup")["ok"], "true");
    let setup = find("alice", "call-setup");
    assert_eq!(setup["peer"], "bob");
    let t: f64 = setup["ts"].parse().unwrap();
    for node in ["alice", "bob"] {
        let n = labels
            .iter()
            .filter(|l| l["class"] == "media" && l["node"] == node)
            .filter(|l| {
                let ts: f64 = l["ts"].parse().unwrap();
                ts > t + 1.0 && ts < t + 5.0
            })
            .count();
        assert!(n >= 100, "{node} sent {n} media frames in 4 s after set-up");
    }
    find("alice", "call-end");
    // Every node kept working to the end: each sent something in the last seconds
    // (clients and SNs keepalives every 5 s; the servers answered the late garbage round
    // or the clients' telemetry at most, so only the overlay members are checked).
    let last: f64 = labels
        .iter()
        .map(|l| l["ts"].parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    for node in ["alice", "bob"] {
        assert!(
            labels.iter().any(|l| l["node"] == node
                && l["class"] == "keepalive"
                && l["ts"].parse::<f64>().unwrap() > last - 6.0),
            "{node} still sends keepalives at the end"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
