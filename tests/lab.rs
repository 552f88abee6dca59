//! `p2ptrace lab`: the lab machinery with a test factory (fake nodes that emit one label
//! class per action), and the end-to-end runs of the built-in scenarios with the real
//! Skylark roles.
//!

use dissectors::registry::TrafficClass;
use p2ptrace::peer::PeerError;
use p2ptrace::peer::driver::{DriverConfig, Hosted};
use p2ptrace::peer::io::{ConnId, Datagram, Input, Listen, Node, Output, TcpEvent, TcpOut};
use p2ptrace::peer::lab::factory::{
    BuiltLoginServer, ClientSpec, HomeSpec, LoginServerSpec, NodeFactory, SuperNodeSpec,
};
use p2ptrace::peer::lab::{Lab, Plan};
use p2ptrace::peer::scenario::Scenario;
use p2ptrace::peer::truth::{Event, EventKind, Label, MediaPath, Role, Transport};
use p2ptrace::time::Ts;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// A fake overlay: every node listens where its spec says; a client connects to the login
// server at start (login), sends a keepalive to its first super node every keepalive_s,
// and on commands sends one datagram of the matching class (lookup, call → signalling and
// then media every frame_ms until hangup) and reports the matching event.

struct Fake {
    name: String,
    role: Role,
    addr: SocketAddr,
    ls: Option<SocketAddr>,
    sn: Option<SocketAddr>,
    keepalive_ns: i64,
    frame_ns: i64,
    out: VecDeque<Output>,
    next_keepalive: Option<Ts>,
    next_frame: Option<Ts>,
    peer: Option<String>,
}

const FAR: Ts = Ts(i64::MAX);

impl Fake {
    fn new(name: &str, role: Role, addr: SocketAddr) -> Fake {
        Fake {
            name: name.into(),
            role,
            addr,
            ls: None,
            sn: None,
            keepalive_ns: 60_000_000_000,
            frame_ns: 30_000_000,
            out: VecDeque::new(),
            next_keepalive: None,
            next_frame: None,
            peer: None,
        }
    }

    fn label(
        &self,
        now: Ts,
        t: Transport,
        to: SocketAddr,
        msg: &'static str,
        class: TrafficClass,
    ) -> Label {
        Label {
            ts: now,
            transport: t,
            src: self.addr,
            dst: to,
            msg_type: msg,
            class,
            home: Some(to) == self.ls,
            txn_id: None,
            call_id: None,
            node: self.name.as_str().into(),
            role: self.role,
        }
    }

    fn udp(&mut self, now: Ts, msg: &'static str, class: TrafficClass) {
        let Some(to) = self.sn else { return };
        let label = self.label(now, Transport::Udp, to, msg, class);
        self.out.push_back(Output::Udp(Datagram {
            local: self.addr,
            to,
            data: msg.as_bytes().to_vec(),
            label,
        }));
    }

    fn event(&mut self, now: Ts, kind: EventKind) {
        self.out.push_back(Output::Event(Event {
            ts: now,
            node: self.name.as_str().into(),
            role: self.role,
            kind,
        }));
    }
}

impl Node for Fake {
    fn listen(&self) -> Listen {
        match self.role {
            Role::LoginServer | Role::Home => Listen {
                udp: vec![],
                tcp: vec![self.addr],
            },
            _ => Listen {
                udp: vec![self.addr],
                tcp: vec![self.addr],
            },
        }
    }

    fn handle_input(&mut self, input: Input<'_>) {
        let now = input.now();
        match input {
            Input::Timeout(_) => {
                if self.role == Role::Client && self.next_keepalive.is_none() {
                    if let Some(ls) = self.ls {
                        self.out.push_back(Output::Tcp(TcpOut::Connect {
                            conn: ConnId(1),
                            from: None,
                            to: ls,
                        }));
                    }
                    self.next_keepalive = Some(now.add_nanos(self.keepalive_ns));
                }
                if self.next_keepalive.is_some_and(|t| now >= t) {
                    self.udp(now, "keepalive", TrafficClass::Keepalive);
                    self.next_keepalive = Some(now.add_nanos(self.keepalive_ns));
                }
                if self.next_frame.is_some_and(|t| now >= t) {
                    self.udp(now, "voice", TrafficClass::Media);
                    self.next_frame = Some(now.add_nanos(self.frame_ns));
                }
            }
            Input::Tcp {
                conn,
                event: TcpEvent::Connected { local },
                ..
            } => {
                let Some(ls) = self.ls else { return };
                let mut label =
                    self.label(now, Transport::Tcp, ls, "auth-hello", TrafficClass::Login);
                label.src = local;
                self.out.push_back(Output::Tcp(TcpOut::Send {
                    conn,
                    data: b"hello".to_vec(),
                    label,
                }));
                let sn = self.sn;
                self.event(
                    now,
                    EventKind::Login {
                        ok: true,
                        sn,
                        detail: String::new(),
                    },
                );
            }
            Input::Command { words, .. } => match words.first().map(String::as_str) {
                Some("lookup") => {
                    self.udp(now, "search", TrafficClass::Lookup);
                    let target = words.get(1).cloned().unwrap_or_default();
                    let found = self.sn;
                    self.event(
                        now,
                        EventKind::Lookup {
                            target,
                            found,
                            rings: 1,
                            nodes: 1,
                        },
                    );
                }
                Some("call") => {
                    self.udp(now, "invite", TrafficClass::Signalling);
                    let peer = words.get(1).cloned().unwrap_or_default();
                    self.peer = Some(peer.clone());
                    self.event(
                        now,
                        EventKind::CallSetup {
                            call_id: 1,
                            peer,
                            path: MediaPath::DirectUdp,
                            relay: None,
                        },
                    );
                    self.next_frame = Some(now);
                }
                Some("hangup") => {
                    self.udp(now, "bye", TrafficClass::Signalling);
                    self.next_frame = None;
                    self.event(
                        now,
                        EventKind::CallEnd {
                            call_id: 1,
                            reason: "hangup".into(),
                        },
                    );
                }
                _ => self.event(
                    now,
                    EventKind::Note {
                        what: words.join(" "),
                    },
                ),
            },
            _ => {}
        }
    }

    fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = [self.next_keepalive, self.next_frame]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(FAR);
        Output::Timeout(next)
    }
}

impl Hosted for Fake {}

/// Builds fakes and remembers every spec it was given.
#[derive(Default)]
struct FakeFactory {
    sns: RefCell<Vec<SuperNodeSpec>>,
    clients: RefCell<Vec<ClientSpec>>,
    ls: RefCell<Option<LoginServerSpec>>,
}

impl NodeFactory for FakeFactory {
    fn login_server(&self, spec: &LoginServerSpec) -> Result<BuiltLoginServer, PeerError> {
        *self.ls.borrow_mut() = Some(spec.clone());
        Ok(BuiltLoginServer {
            node: Box::new(Fake::new(&spec.name, Role::LoginServer, spec.addr)),
            public_key: [7; 32],
        })
    }
    fn home(&self, spec: &HomeSpec) -> Result<Box<dyn Hosted>, PeerError> {
        Ok(Box::new(Fake::new(&spec.name, Role::Home, spec.addr)))
    }
    fn supernode(&self, spec: &SuperNodeSpec) -> Result<Box<dyn Hosted>, PeerError> {
        self.sns.borrow_mut().push(spec.clone());
        Ok(Box::new(Fake::new(&spec.name, Role::SuperNode, spec.addr)))
    }
    fn client(&self, spec: &ClientSpec) -> Result<Box<dyn Hosted>, PeerError> {
        self.clients.borrow_mut().push(spec.clone());
        let mut f = Fake::new(&spec.name, Role::Client, spec.addr);
        f.ls = Some(spec.login_server);
        f.sn = spec.bootstrap.first().copied();
        if let Some(k) = spec.timers.keepalive_s {
            f.keepalive_ns = k as i64 * 1_000_000_000;
        }
        if let Some(ms) = spec.timers.frame_ms {
            f.frame_ns = ms as i64 * 1_000_000;
        }
        Ok(Box::new(f))
    }
}

const FAKE_SCENARIO: &str = r#"
name = "fake"
seed = 5
stop_after = "2.5s"
network = "127.62.0.0"
[timers]
keepalive_s = 1
frame_ms = 20
[login_server]
hash = "fast"
[[supernode]]
name = "sn1"
[[supernode]]
name = "sn2"
[[client]]
name = "alice"
password = "pa"
buddies = ["bob"]
[[client]]
name = "bob"
password = "pb"
[[step]]
at = "0.5s"
node = "alice"
command = "lookup bob"
[[step]]
at = "0.8s"
node = "alice"
command = "call bob"
[[step]]
at = "1.8s"
node = "alice"
command = "hangup"
[[step]]
at = "2s"
node = "bob"
command = "status"
"#;

/// CSV rows as maps from column name to value.
type Rows = Vec<HashMap<String, String>>;

/// One CSV file as rows.
fn read_csv(path: &Path) -> Rows {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn secs(row: &HashMap<String, String>) -> f64 {
    row["ts"].parse().unwrap()
}

#[test]
fn plan_gives_each_node_its_own_loopback_address() {
    let s = Scenario::parse(FAKE_SCENARIO).unwrap();
    let plan = Plan::new(&s);
    let mut ips: Vec<_> = std::iter::once(plan.login_server.addr)
        .chain([plan.home.addr])
        .chain(plan.supernodes.iter().map(|n| n.addr))
        .chain(plan.clients.iter().map(|n| n.addr))
        .map(|a| a.ip())
        .collect();
    assert_eq!(ips[0].to_string(), "127.62.0.1");
    assert_eq!(ips[5].to_string(), "127.62.0.6");
    ips.dedup();
    assert_eq!(ips.len(), 6);
    assert_eq!(plan.login_server.addr.port(), 33034);
    assert_eq!(plan.supernodes[0].addr.port(), 33033);
    assert_eq!(plan.supernodes[0].peers, vec![plan.supernodes[1].addr]);
    assert_eq!(plan.clients[0].bootstrap.len(), 2);
    assert_eq!(
        plan.login_server.accounts[0].buddies,
        vec!["bob".to_string()]
    );
    let seeds: std::collections::HashSet<u64> = plan
        .clients
        .iter()
        .map(|c| c.seed)
        .chain(plan.supernodes.iter().map(|n| n.seed))
        .collect();
    assert_eq!(seeds.len(), 4, "every node has its own seed");
    assert_eq!(Plan::new(&s), plan, "plans are reproducible");
}

#[test]
fn lab_runs_the_timeline_and_writes_ground_truth() {
    let s = Scenario::parse(FAKE_SCENARIO).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let factory = FakeFactory::default();
    let lab = Lab::new(&s, &factory, dir.path(), DriverConfig::default()).unwrap();
    assert_eq!(lab.nodes().len(), 6);
    let report = lab.run().unwrap();
    assert!(!report.interrupted);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let ran = report.elapsed.as_secs_f64();
    assert!((2.4..4.0).contains(&ran), "ran {ran} s");

    // The factory got the login server's key and the timer overrides.
    assert!(factory.sns.borrow().iter().all(|sn| sn.ls_key == [7; 32]));
    assert!(
        factory
            .clients
            .borrow()
            .iter()
            .all(|c| c.ls_key == Some([7; 32]))
    );
    assert_eq!(factory.clients.borrow()[0].timers.keepalive_s, Some(1));

    // Every class occurred, and the summary says so.
    for class in dissectors::registry::TrafficClass::ALL {
        assert!(report.tally.labels_of(class) > 0, "no {class:?}");
    }
    let summary = report.render();
    assert!(summary.contains("lab fake: 6 nodes"), "{summary}");
    assert!(summary.contains("keepalive "), "{summary}");
    assert!(!summary.contains("warning"), "{summary}");

    let labels = read_csv(&dir.path().join("labels.csv"));
    let events = read_csv(&dir.path().join("events.csv"));
    let t0 = events
        .iter()
        .filter(|e| e["event"] == "login")
        .map(secs)
        .fold(f64::MAX, f64::min);
    // Both clients logged in over TCP from their own address to the login server.
    let logins: Vec<_> = labels.iter().filter(|l| l["class"] == "login").collect();
    assert_eq!(logins.len(), 2);
    assert!(
        logins
            .iter()
            .all(|l| l["transport"] == "tcp" && l["home"] == "true")
    );
    assert!(
        logins
            .iter()
            .any(|l| l["src_addr"] == "127.62.0.5" && l["node"] == "alice")
    );
    assert!(
        logins
            .iter()
            .all(|l| l["dst_addr"] == "127.62.0.1" && l["dst_port"] == "33034")
    );
    // Commands at their times (relative to the start, which the logins mark).
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind)
            .map(|e| secs(e) - t0)
            .unwrap_or_else(|| panic!("no {kind} event"))
    };
    assert!(
        (0.45..0.8).contains(&at("lookup")),
        "lookup at {}",
        at("lookup")
    );
    assert!((0.75..1.1).contains(&at("call-setup")));
    assert!((1.75..2.1).contains(&at("call-end")));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "note" && e["node"] == "bob" && e["detail"] == "status")
    );
    // Media at the configured rate: 1 s at 20 ms per frame.
    let media = labels.iter().filter(|l| l["class"] == "media").count();
    assert!((40..=52).contains(&media), "{media} media labels");
    // Keepalives every second from each client, on UDP to its super node.
    let keepalives = labels.iter().filter(|l| l["class"] == "keepalive").count();
    assert!((2..=6).contains(&keepalives), "{keepalives} keepalives");
}

#[test]
fn a_stop_request_ends_a_lab_early() {
    let text = FAKE_SCENARIO
        .replace("stop_after = \"2.5s\"", "stop_after = \"60s\"")
        .replace("127.62.0.0", "127.63.0.0");
    let s = Scenario::parse(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(
        &s,
        &FakeFactory::default(),
        dir.path(),
        DriverConfig::default(),
    )
    .unwrap();
    let c = lab.commander();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.stop();
    });
    let report = lab.run().unwrap();
    t.join().unwrap();
    assert!(report.interrupted);
    assert!(report.elapsed < Duration::from_secs(5));
    assert!(report.render().contains("(interrupted)"));
    assert!(dir.path().join("labels.csv").exists());
}

#[test]
fn lab_command_refuses_bad_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "stop_after = \"1s\"\n[timers]\nkeepalive = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2ptrace"))
        .args(["lab", bad.to_str().unwrap(), "--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keepalive"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_p2ptrace"))
        .args(["lab", "no-such-scenario", "--out"])
        .arg(dir.path().join("o"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("basic-call"));
}

// ---------------------------------------------------------------------------------------
// REAL ROLES from here on: the built-in scenarios through the real CLI.

/// Runs `p2ptrace lab NAME --out DIR` and reads back its labels and events.
fn run_builtin(name: &str, dir: &Path) -> (Rows, Rows) {
    let out = Command::new(env!("CARGO_BIN_EXE_p2ptrace"))
        .args(["lab", name, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "lab {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("warning: no "),
        "a traffic class is missing:\n{stdout}"
    );
    (
        read_csv(&dir.join("labels.csv")),
        read_csv(&dir.join("events.csv")),
    )
}

#[track_caller]
fn event<'a>(
    events: &'a [HashMap<String, String>],
    node: &str,
    kind: &str,
) -> &'a HashMap<String, String> {
    events
        .iter()
        .find(|e| e["node"] == node && e["event"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event from {node}"))
}

/// Media labels sent by `node` in [from, to) seconds.
fn media_from(labels: &[HashMap<String, String>], node: &str, from: f64, to: f64) -> usize {
    labels
        .iter()
        .filter(|l| l["class"] == "media" && l["node"] == node)
        .filter(|l| (from..to).contains(&secs(l)))
        .count()
}

fn assert_all_classes(labels: &[HashMap<String, String>]) {
    for class in ["login", "lookup", "signalling", "keepalive", "media"] {
        assert!(
            labels.iter().any(|l| l["class"] == class),
            "no {class} label"
        );
    }
    assert!(
        labels.iter().any(|l| l["home"] == "true"),
        "nothing sent to LS or home"
    );
}

#[test]
fn basic_call_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, events) = run_builtin("basic-call", dir.path());
    assert_all_classes(&labels);
    for client in ["alice", "bob"] {
        assert_eq!(
            event(&events, client, "login")["ok"],
            "true",
            "{client} logged in"
        );
    }
    let lookup = event(&events, "alice", "lookup");
    assert_eq!(lookup["peer"], "bob");
    assert_eq!(lookup["ok"], "true", "the lookup found bob");
    let setup = event(&events, "alice", "call-setup");
    assert_eq!(setup["peer"], "bob");
    let end = event(&events, "alice", "call-end");
    assert_eq!(end["call_id"], setup["call_id"]);
    // Media both ways at the configured rate (30 ms frames: 33 per s) in the 4 s after
    // set-up settles (call at 6 s, hold at 13 s).
    let t = secs(setup);
    for node in ["alice", "bob"] {
        let n = media_from(&labels, node, t + 1.0, t + 5.0);
        assert!(
            (110..=150).contains(&n),
            "{node} sent {n} media frames in 4 s"
        );
    }
    // After the hang-up no more voice.
    let t_end = secs(end);
    assert!(media_from(&labels, "alice", t_end + 0.5, f64::MAX) == 0);
}

#[test]
fn conference_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, events) = run_builtin("conference", dir.path());
    assert_all_classes(&labels);
    for client in ["alice", "bob", "carol"] {
        assert_eq!(
            event(&events, client, "login")["ok"],
            "true",
            "{client} logged in"
        );
    }
    assert_eq!(event(&events, "alice", "lookup")["ok"], "true");
    let mixer = events
        .iter()
        .find(|e| e["event"] == "conference-mixer")
        .expect("a mixer was elected");
    assert!(["alice", "bob", "carol"].contains(&mixer["peer"].as_str()));
    let setup = event(&events, "alice", "call-setup");
    let t = secs(setup);
    // Every participant sends voice while the conference runs.
    for node in ["alice", "bob", "carol"] {
        let n = media_from(&labels, node, t + 1.0, t + 5.0);
        assert!(n >= 100, "{node} sent {n} media frames in 4 s");
    }
    event(&events, "alice", "call-end");
}

#[test]
fn promotion_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (labels, events) = run_builtin("promotion", dir.path());
    assert_all_classes(&labels);
    for client in ["alice", "bob", "carol"] {
        let login = event(&events, client, "login");
        assert_eq!(login["ok"], "true", "{client} logged in");
    }
    let promoted: Vec<&HashMap<String, String>> = events
        .iter()
        .filter(|e| e["event"] == "note" && e["detail"] == "promoted to super node")
        .collect();
    assert_eq!(promoted.len(), 1, "only alice has the uplink");
    assert_eq!(promoted[0]["node"], "alice");
    let t_promoted = secs(promoted[0]);
    assert!(
        events
            .iter()
            .any(|e| e["node"] == "sn1" && e["detail"].starts_with("learned super node alice")),
        "sn1 learned alice from her sn-refresh"
    );
    // alice's super-node role answers probes from the other clients (same node name,
    // role supernode, after the promotion).
    let answers: Vec<&HashMap<String, String>> = labels
        .iter()
        .filter(|l| l["node"] == "alice" && l["role"] == "supernode")
        .collect();
    assert!(!answers.is_empty(), "alice never answered as a super node");
    for l in &answers {
        assert!(secs(l) >= t_promoted);
    }
    let others: Vec<&str> = labels
        .iter()
        .filter(|l| l["node"] == "bob" || l["node"] == "carol")
        .map(|l| l["src_addr"].as_str())
        .collect();
    assert!(
        answers
            .iter()
            .any(|l| l["msg_type"] == "stun-binding-success"
                && others.contains(&l["dst_addr"].as_str())),
        "alice answered a STUN probe of bob or carol: {answers:?}"
    );
    assert!(
        labels
            .iter()
            .all(|l| l["role"] != "supernode" || ["sn1", "alice"].contains(&l["node"].as_str())),
        "bob and carol stay clients"
    );
    // Carol's call to bob still works.
    let setup = event(&events, "carol", "call-setup");
    assert_eq!(setup["peer"], "bob");
    let t = secs(setup);
    assert!(media_from(&labels, "bob", t + 0.5, t + 3.5) >= 80);
}
