//! The socket driver over real loopback sockets, with small test nodes (no Skylark roles):
//! UDP echo, TCP connect/accept/data/close, connect failure and timeout, timers, commands,
//! label restamping and CSV output, limits, save at shutdown. Every test binds its own
//! 127.x.y.z addresses (port 0 unless a fixed port is the point) and finishes in seconds.

use dissectors::registry::TrafficClass;
use p2ptrace::peer::PeerError;
use p2ptrace::peer::driver::sink::{CsvSink, NullSink, Sink};
use p2ptrace::peer::driver::{Driver, DriverConfig, DriverError, Hosted, NodeId};
use p2ptrace::peer::io::{ConnId, Datagram, Input, Listen, Node, Output, TcpEvent, TcpOut};
use p2ptrace::peer::truth::{Event, EventKind, Label, Role, Transport};
use p2ptrace::time::Ts;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// What a probe node saw, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Start,
    Timeout,
    Udp {
        local: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
    Accepted {
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Connected {
        conn: ConnId,
        local: SocketAddr,
    },
    ConnectFailed(ConnId),
    Data(ConnId, Vec<u8>),
    Closed(ConnId),
    Command(Vec<String>),
    Saved,
}

type Log = Rc<RefCell<Vec<(Ts, Seen)>>>;
type React = Box<dyn FnMut(Ts, &Seen) -> Vec<Output>>;

/// A scriptable node: logs every input and answers with whatever `react` returns
/// (`Output::Timeout(t)` in the answer arms its timer instead of being queued).
struct Probe {
    listen: Listen,
    log: Log,
    out: VecDeque<Output>,
    deadline: Ts,
    started: bool,
    react: React,
}

const FAR: Ts = Ts(i64::MAX);

impl Probe {
    fn new(listen: Listen, react: impl FnMut(Ts, &Seen) -> Vec<Output> + 'static) -> (Self, Log) {
        let log: Log = Rc::default();
        (
            Probe {
                listen,
                log: log.clone(),
                out: VecDeque::new(),
                deadline: FAR,
                started: false,
                react: Box::new(react),
            },
            log,
        )
    }

    fn see(&mut self, now: Ts, seen: Seen) {
        self.log.borrow_mut().push((now, seen.clone()));
        for o in (self.react)(now, &seen) {
            match o {
                Output::Timeout(t) => self.deadline = t,
                o => self.out.push_back(o),
            }
        }
    }
}

impl Node for Probe {
    fn listen(&self) -> Listen {
        self.listen.clone()
    }

    fn handle_input(&mut self, input: Input<'_>) {
        let now = input.now();
        let seen = match input {
            Input::Timeout(_) if !self.started => {
                self.started = true;
                Seen::Start
            }
            Input::Timeout(t) if t >= self.deadline => {
                self.deadline = FAR;
                Seen::Timeout
            }
            Input::Timeout(_) => return,
            Input::Udp {
                local, from, data, ..
            } => Seen::Udp {
                local,
                from,
                data: data.to_vec(),
            },
            Input::Tcp { conn, event, .. } => match event {
                TcpEvent::Accepted { local, remote } => Seen::Accepted {
                    conn,
                    local,
                    remote,
                },
                TcpEvent::Connected { local } => Seen::Connected { conn, local },
                TcpEvent::ConnectFailed => Seen::ConnectFailed(conn),
                TcpEvent::Data(d) => Seen::Data(conn, d.to_vec()),
                TcpEvent::Closed => Seen::Closed(conn),
            },
            Input::Command { words, .. } => Seen::Command(words),
        };
        self.see(now, seen);
    }

    fn poll_output(&mut self) -> Output {
        self.out
            .pop_front()
            .unwrap_or(Output::Timeout(self.deadline))
    }
}

impl Hosted for Probe {
    fn save(&mut self) -> Result<(), PeerError> {
        self.log.borrow_mut().push((Ts(0), Seen::Saved));
        Ok(())
    }
}

/// Collects labels and events.
#[derive(Clone, Default)]
struct Record(Rc<RefCell<(Vec<Label>, Vec<Event>)>>);

impl Sink for Record {
    fn label(&mut self, l: &Label) {
        self.0.borrow_mut().0.push(l.clone());
    }
    fn event(&mut self, e: &Event) {
        self.0.borrow_mut().1.push(e.clone());
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn label(transport: Transport, src: SocketAddr, dst: SocketAddr, msg: &'static str) -> Label {
    Label {
        ts: Ts(0),
        transport,
        src,
        dst,
        msg_type: msg,
        class: TrafficClass::Media,
        home: false,
        txn_id: None,
        call_id: None,
        node: "probe".into(),
        role: Role::Client,
    }
}

fn udp(local: SocketAddr, to: SocketAddr, data: &[u8]) -> Output {
    Output::Udp(Datagram {
        local,
        to,
        data: data.to_vec(),
        label: label(Transport::Udp, local, to, "test-udp"),
    })
}

fn send(conn: ConnId, data: &[u8]) -> Output {
    Output::Tcp(TcpOut::Send {
        conn,
        data: data.to_vec(),
        label: label(
            Transport::Tcp,
            addr("0.0.0.0:0"),
            addr("0.0.0.0:0"),
            "test-tcp",
        ),
    })
}

fn listen_udp(a: SocketAddr) -> Listen {
    Listen {
        udp: vec![a],
        tcp: vec![],
    }
}

fn listen_tcp(a: SocketAddr) -> Listen {
    Listen {
        udp: vec![],
        tcp: vec![a],
    }
}

/// Runs `driver` until `done()` or `limit`, in short slices.
#[track_caller]
fn run_until<S: Sink>(driver: &mut Driver<S>, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = driver.now().add_nanos(limit.as_nanos() as i64);
    while !done() {
        let now = driver.now();
        assert!(now < end, "condition not met within {limit:?}");
        driver
            .run(Some(now.add_nanos(20_000_000).min(end)))
            .unwrap();
    }
}

fn count(log: &Log, f: impl Fn(&Seen) -> bool) -> usize {
    log.borrow().iter().filter(|(_, s)| f(s)).count()
}

/// A UDP echo node: answers every datagram with the same bytes.
fn echo_udp(a: SocketAddr) -> (Probe, Log) {
    Probe::new(listen_udp(a), move |_, s| match s {
        Seen::Udp { local, from, data } => vec![udp(*local, *from, data)],
        _ => vec![],
    })
}

/// A TCP echo server: echoes data, closes when asked by a `bye` payload.
fn echo_tcp(a: SocketAddr) -> (Probe, Log) {
    Probe::new(listen_tcp(a), |_, s| match s {
        Seen::Data(c, d) if d == b"bye" => vec![Output::Tcp(TcpOut::Close { conn: *c })],
        Seen::Data(c, d) => vec![send(*c, d)],
        _ => vec![],
    })
}

/// A TCP client that connects to `to` at start.
fn tcp_client(
    ip: &str,
    to: SocketAddr,
    react: impl FnMut(Ts, &Seen) -> Vec<Output> + 'static,
) -> (Probe, Log) {
    let mut react = react;
    let own: SocketAddr = format!("{ip}:0").parse().unwrap();
    Probe::new(listen_udp(own), move |now, s| match s {
        Seen::Start => vec![Output::Tcp(TcpOut::Connect {
            conn: ConnId(1),
            from: None,
            to,
        })],
        s => react(now, s),
    })
}

#[test]
fn udp_echo_round_trip_between_two_nodes() {
    let rec = Record::default();
    let mut d = Driver::new(DriverConfig::default(), rec.clone()).unwrap();
    let (echo, echo_log) = echo_udp(addr("127.71.0.1:0"));
    let e = d.add_node("echo", echo).unwrap();
    let echo_addr = d.bound(e).0[0];
    let me = addr("127.71.0.2:0");
    let (pinger, log) = Probe::new(listen_udp(me), move |_, s| match s {
        Seen::Start => vec![udp(addr("127.71.0.2:0"), echo_addr, b"ping")],
        _ => vec![],
    });
    let p = d.add_node("pinger", pinger).unwrap();
    let my_addr = d.bound(p).0[0];
    run_until(&mut d, Duration::from_secs(5), || {
        count(&log, |s| matches!(s, Seen::Udp { .. })) == 1
    });
    let seen = log.borrow();
    let (_, reply) = seen
        .iter()
        .find(|(_, s)| matches!(s, Seen::Udp { .. }))
        .unwrap();
    assert_eq!(
        *reply,
        Seen::Udp {
            local: my_addr,
            from: echo_addr,
            data: b"ping".to_vec()
        }
    );
    assert_eq!(
        count(
            &echo_log,
            |s| matches!(s, Seen::Udp { from, .. } if *from == my_addr)
        ),
        1
    );
    // Both sends were labelled, with the real source address and the driver's clock.
    let labels = &rec.0.borrow().0;
    assert_eq!(labels.len(), 2);
    assert_eq!(labels[0].src, my_addr);
    assert_eq!(labels[1].src, echo_addr);
    assert!(
        labels
            .iter()
            .all(|l| l.ts > Ts(1_600_000_000 * Ts::NANOS_PER_SEC))
    );
    assert!(labels[0].ts <= labels[1].ts);
    assert_eq!(d.stats().udp_tx, 2);
    assert_eq!(d.stats().udp_rx, 2);
}

#[test]
fn tcp_connect_accept_data_and_close() {
    let rec = Record::default();
    let mut d = Driver::new(DriverConfig::default(), rec.clone()).unwrap();
    let (server, server_log) = echo_tcp(addr("127.71.1.1:0"));
    let s = d.add_node("server", server).unwrap();
    let server_addr = d.bound(s).1[0];
    let (client, log) = tcp_client("127.71.1.2", server_addr, |_, s| match s {
        Seen::Connected { conn, .. } => vec![send(*conn, b"hello")],
        Seen::Data(c, d) if d == b"hello" => vec![send(*c, b"bye")],
        _ => vec![],
    });
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(5), || {
        count(&log, |s| matches!(s, Seen::Closed(_))) == 1
    });
    let log = log.borrow();
    let kinds: Vec<&Seen> = log.iter().map(|(_, s)| s).collect();
    // Bind-before-connect: the client's connection comes from its own loopback address.
    let Seen::Connected { conn, local } = kinds[1] else {
        panic!("{kinds:?}")
    };
    assert_eq!(*conn, ConnId(1));
    assert_eq!(local.ip(), addr("127.71.1.2:0").ip());
    assert_eq!(*kinds[2], Seen::Data(ConnId(1), b"hello".to_vec()));
    assert_eq!(*kinds[3], Seen::Closed(ConnId(1)));
    let server_log = server_log.borrow();
    let Some((_, Seen::Accepted { conn, remote, .. })) = server_log.get(1) else {
        panic!("{server_log:?}")
    };
    assert!(conn.is_accepted());
    assert_eq!(remote, local);
    // hello, its echo, bye: three labels, in send order.
    let labels = &rec.0.borrow().0;
    assert_eq!(labels.len(), 3);
    assert!(labels.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert_eq!(d.stats().tcp_accepted, 1);
    assert_eq!(d.stats().tcp_connected, 1);
}

#[test]
fn connect_to_a_closed_port_reports_connect_failed() {
    // A port nobody listens on: bind a listener, note its port, close it.
    let port = std::net::TcpListener::bind("127.71.2.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (client, log) = tcp_client("127.71.2.2", port, |_, _| vec![]);
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| matches!(s, Seen::ConnectFailed(_))) == 1
    });
    assert_eq!(d.stats().tcp_connect_failed, 1);
    // A refused connect fails at once, long before the connect timeout.
    let log = log.borrow();
    assert!(log[1].0.since(log[0].0) < 1_000_000_000);
}

#[test]
fn connect_that_hangs_times_out() {
    // A listener with a full accept queue drops further SYNs, so a connect hangs.
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener.bind(&addr("127.71.3.1:0").into()).unwrap();
    listener.listen(0).unwrap();
    let target = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&target.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    let config = DriverConfig {
        connect_timeout: Duration::from_millis(300),
        ..DriverConfig::default()
    };
    let mut d = Driver::new(config, NullSink).unwrap();
    let (client, log) = tcp_client("127.71.3.2", target, |_, _| vec![]);
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| {
            matches!(s, Seen::ConnectFailed(_) | Seen::Connected { .. })
        }) == 1
    });
    let log = log.borrow();
    assert_eq!(log[1].1, Seen::ConnectFailed(ConnId(1)), "{log:?}");
    let waited = log[1].0.since(log[0].0);
    assert!(waited >= 300_000_000, "failed after {waited} ns");
}

#[test]
fn timeouts_fire_at_the_deadline() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (ticker, log) = Probe::new(listen_udp(addr("127.71.4.1:0")), |now, s| match s {
        Seen::Start | Seen::Timeout => vec![Output::Timeout(now.add_nanos(50_000_000))],
        _ => vec![],
    });
    d.add_node("ticker", ticker).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| *s == Seen::Timeout) >= 5
    });
    let log = log.borrow();
    for w in log.windows(2) {
        let gap = w[1].0.since(w[0].0);
        // Never early; late by at most a scheduling hiccup.
        assert!(
            (50_000_000..250_000_000).contains(&gap),
            "tick gap {gap} ns"
        );
    }
}

#[test]
fn commands_arrive_from_another_thread_and_stop_ends_the_run() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (node, log) = Probe::new(listen_udp(addr("127.71.5.1:0")), |_, _| vec![]);
    let id = d.add_node("client", node).unwrap();
    let c = d.commander();
    let t = std::thread::spawn(move || {
        c.send(id, "call  bob").unwrap();
        assert!(c.send(id, "   ").is_err());
        assert!(c.send(id, &"x".repeat(5000)).is_err());
        std::thread::sleep(Duration::from_millis(100));
        c.stop();
    });
    // No deadline: only the stop request ends this run.
    d.run(None).unwrap();
    t.join().unwrap();
    assert_eq!(
        count(&log, |s| *s
            == Seen::Command(vec!["call".into(), "bob".into()])),
        1
    );
    assert_eq!(d.stats().commands, 1);
}

#[test]
fn scheduled_commands_run_in_time_order() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (node, log) = Probe::new(listen_udp(addr("127.71.6.1:0")), |_, _| vec![]);
    let id = d.add_node("client", node).unwrap();
    let t0 = d.now();
    d.schedule(t0.add_nanos(200_000_000), id, "second").unwrap();
    d.schedule(t0.add_nanos(100_000_000), id, "first").unwrap();
    d.schedule(t0, NodeId(99), "nobody").unwrap();
    d.run(Some(t0.add_nanos(400_000_000))).unwrap();
    let log = log.borrow();
    let cmds: Vec<(i64, String)> = log
        .iter()
        .filter_map(|(t, s)| match s {
            Seen::Command(w) => Some((t.since(t0), w.join(" "))),
            _ => None,
        })
        .collect();
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0].1, "first");
    assert!(cmds[0].0 >= 100_000_000);
    assert_eq!(cmds[1].1, "second");
    assert!(cmds[1].0 >= 200_000_000);
    assert_eq!(d.stats().commands_unknown_node, 1);
}

#[test]
fn labels_are_restamped_and_written_to_csv() {
    let dir = tempfile::tempdir().unwrap();
    let sink = CsvSink::create(dir.path()).unwrap();
    let mut d = Driver::new(DriverConfig::default(), sink).unwrap();
    let (echo, _) = echo_udp(addr("127.71.7.1:0"));
    let e = d.add_node("echo", echo).unwrap();
    let echo_addr = d.bound(e).0[0];
    let (node, _) = Probe::new(listen_udp(addr("127.71.7.2:0")), move |now, s| match s {
        Seen::Start => {
            let mut out = vec![udp(addr("127.71.7.2:0"), echo_addr, b"x")];
            out.push(Output::Event(Event {
                ts: now,
                node: "probe".into(),
                role: Role::Client,
                kind: EventKind::Note {
                    what: "started".into(),
                },
            }));
            out
        }
        _ => vec![],
    });
    d.add_node("probe", node).unwrap();
    let before = d.now();
    d.run(Some(d.now().add_nanos(300_000_000))).unwrap();
    assert!(d.shutdown().is_empty());
    assert_eq!(d.sink().tally.labels_of(TrafficClass::Media), 2);
    assert_eq!(d.sink().tally.events_of("note"), 1);
    let labels = std::fs::read_to_string(dir.path().join("labels.csv")).unwrap();
    let rows: Vec<&str> = labels.lines().collect();
    assert_eq!(rows.len(), 3, "{labels}");
    assert!(rows[0].starts_with("ts,transport,src_addr"));
    // The node stamped Ts(0); the file has the driver's clock at the send.
    let ts: f64 = rows[1].split(',').next().unwrap().parse().unwrap();
    let before_secs = before.as_nanos() as f64 / 1e9;
    assert!(
        ts >= before_secs - 0.001 && ts < before_secs + 5.0,
        "{ts} vs {before_secs}"
    );
    assert!(rows[1].contains(",udp,127.71.7.2,"), "{}", rows[1]);
    let events = std::fs::read_to_string(dir.path().join("events.csv")).unwrap();
    assert!(events.lines().nth(1).unwrap().contains("probe,client,note"));
}

#[test]
fn large_tcp_sends_are_buffered_until_written() {
    let rec = Record::default();
    let mut d = Driver::new(DriverConfig::default(), rec.clone()).unwrap();
    // A sink server that counts bytes and never answers.
    let received = Rc::new(RefCell::new(0usize));
    let r = received.clone();
    let (server, _) = Probe::new(listen_tcp(addr("127.71.8.1:0")), move |_, s| {
        if let Seen::Data(_, d) = s {
            *r.borrow_mut() += d.len();
        }
        vec![]
    });
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    let chunk = vec![0x53u8; 64 * 1024];
    let (client, _) = tcp_client("127.71.8.2", to, move |_, s| match s {
        // 3 MiB at once: far more than a socket buffer, so writes are partial.
        Seen::Connected { conn, .. } => (0..48).map(|_| send(*conn, &chunk)).collect(),
        _ => vec![],
    });
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(10), || {
        *received.borrow() == 48 * 64 * 1024
    });
    assert_eq!(rec.0.borrow().0.len(), 48);
    assert_eq!(d.stats().tcp_overflow_closed, 0);
}

#[test]
fn a_send_beyond_the_buffer_limit_closes_the_connection() {
    let config = DriverConfig {
        max_buffered_bytes: 1000,
        ..DriverConfig::default()
    };
    let mut d = Driver::new(config, NullSink).unwrap();
    let (server, _) = echo_tcp(addr("127.71.9.1:0"));
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    let own = addr("127.71.9.2:0");
    // Sends before the connection is up are queued; too many is an overflow.
    let (client, log) = Probe::new(listen_udp(own), move |_, s| match s {
        Seen::Start => vec![
            Output::Tcp(TcpOut::Connect {
                conn: ConnId(7),
                from: Some(own),
                to,
            }),
            send(ConnId(7), &[1; 600]),
            send(ConnId(7), &[2; 600]),
        ],
        _ => vec![],
    });
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| matches!(s, Seen::Closed(_))) == 1
    });
    assert_eq!(d.stats().tcp_overflow_closed, 1);
    assert_eq!(count(&log, |s| matches!(s, Seen::Connected { .. })), 0);
}

#[test]
fn accepts_beyond_the_connection_limit_are_refused() {
    let config = DriverConfig {
        max_conns_per_node: 1,
        ..DriverConfig::default()
    };
    let mut d = Driver::new(config, NullSink).unwrap();
    let (server, server_log) = echo_tcp(addr("127.71.10.1:0"));
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    let (c1, log1) = tcp_client("127.71.10.2", to, |_, _| vec![]);
    let (c2, log2) = tcp_client("127.71.10.3", to, |_, s| match s {
        Seen::Connected { conn, .. } => vec![send(*conn, b"anyone?")],
        _ => vec![],
    });
    d.add_node("c1", c1).unwrap();
    d.run(Some(d.now().add_nanos(200_000_000))).unwrap();
    d.add_node("c2", c2).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log2, |s| matches!(s, Seen::Closed(_))) == 1
    });
    assert_eq!(count(&log1, |s| matches!(s, Seen::Connected { .. })), 1);
    assert_eq!(
        count(&server_log, |s| matches!(s, Seen::Accepted { .. })),
        1
    );
    assert_eq!(d.stats().tcp_accept_refused, 1);
}

#[test]
fn shutdown_saves_every_node_and_bind_conflicts_are_errors() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (a, log_a) = echo_udp(addr("127.71.11.1:0"));
    // `add` (not `add_node`) keeps the node's own save hook.
    let id = d.add("a", Box::new(a)).unwrap();
    let taken = d.bound(id).0[0];
    let (b, _) = echo_udp(taken);
    match d.add_node("b", b) {
        Err(DriverError::Bind { node, addr, .. }) => {
            assert_eq!(node, "b");
            assert_eq!(addr, taken);
        }
        other => panic!("expected a bind error, got {:?}", other.map(|_| ())),
    }
    d.run(Some(d.now().add_nanos(50_000_000))).unwrap();
    assert!(d.shutdown().is_empty());
    assert_eq!(count(&log_a, |s| *s == Seen::Saved), 1);
}

#[test]
fn sends_from_an_address_the_node_does_not_own_are_dropped() {
    let rec = Record::default();
    let mut d = Driver::new(DriverConfig::default(), rec.clone()).unwrap();
    let (node, _) = Probe::new(listen_udp(addr("127.71.12.1:0")), |_, s| match s {
        Seen::Start => vec![
            udp(addr("127.71.12.9:5"), addr("127.71.12.1:9"), b"spoof"),
            send(ConnId(42), b"nowhere"),
            Output::Tcp(TcpOut::Close { conn: ConnId(43) }),
        ],
        _ => vec![],
    });
    d.add_node("n", node).unwrap();
    d.run(Some(d.now().add_nanos(50_000_000))).unwrap();
    assert_eq!(d.stats().udp_bad_local, 1);
    assert_eq!(d.stats().tcp_unknown_conn, 2);
    assert!(
        rec.0.borrow().0.is_empty(),
        "no label for what was not sent"
    );
}

#[test]
fn garbage_from_outside_reaches_the_node_as_data_only() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (server, log) = Probe::new(
        Listen {
            udp: vec![addr("127.71.13.1:0")],
            tcp: vec![addr("127.71.13.1:0")],
        },
        |_, _| vec![],
    );
    let s = d.add_node("server", server).unwrap();
    let (udp_addr, tcp_addr) = {
        let (u, t) = d.bound(s);
        (u[0], t[0])
    };
    let sock = std::net::UdpSocket::bind("127.71.13.2:0").unwrap();
    sock.send_to(&[0xff; 1500], udp_addr).unwrap();
    sock.send_to(&[], udp_addr).unwrap();
    let mut tcp = std::net::TcpStream::connect(tcp_addr).unwrap();
    std::io::Write::write_all(&mut tcp, &[0u8; 10_000]).unwrap();
    drop(tcp);
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| matches!(s, Seen::Closed(_))) == 1
    });
    assert_eq!(count(&log, |s| matches!(s, Seen::Udp { .. })), 2);
    let bytes: usize = log
        .borrow()
        .iter()
        .map(|(_, s)| match s {
            Seen::Data(_, d) => d.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(bytes, 10_000);
}

#[test]
fn a_close_sends_pending_data_then_fin() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let big = vec![0x42u8; 1 << 20];
    let (server, _) = Probe::new(listen_tcp(addr("127.71.14.1:0")), move |_, s| match s {
        Seen::Accepted { conn, .. } => vec![
            send(*conn, &big),
            Output::Tcp(TcpOut::Close { conn: *conn }),
        ],
        _ => vec![],
    });
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    let reader = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(to).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut got).map(|_| got.len())
    });
    let end = d.now().add_nanos(3_000_000_000);
    while !reader.is_finished() && d.now() < end {
        d.run(Some(d.now().add_nanos(20_000_000))).unwrap();
    }
    assert_eq!(
        reader.join().unwrap().unwrap(),
        1 << 20,
        "all data, then EOF"
    );
}

#[test]
fn a_reset_from_the_peer_reports_closed() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (server, log) = Probe::new(listen_tcp(addr("127.71.15.1:0")), |_, _| vec![]);
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    let c = std::net::TcpStream::connect(to).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| matches!(s, Seen::Accepted { .. })) == 1
    });
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c);
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| matches!(s, Seen::Closed(_))) == 1
    });
}

#[test]
fn a_connect_from_the_nodes_own_listening_port_keeps_its_ip() {
    let mut d = Driver::new(DriverConfig::default(), NullSink).unwrap();
    let (server, _) = echo_tcp(addr("127.71.16.1:0"));
    let s = d.add_node("server", server).unwrap();
    let to = d.bound(s).1[0];
    // The client listens on TCP and asks to connect from that very address.
    let own = std::net::TcpListener::bind("127.71.16.2:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (client, log) = Probe::new(listen_tcp(own), move |_, s| match s {
        Seen::Start => vec![Output::Tcp(TcpOut::Connect {
            conn: ConnId(1),
            from: Some(own),
            to,
        })],
        _ => vec![],
    });
    d.add_node("client", client).unwrap();
    run_until(&mut d, Duration::from_secs(3), || {
        count(&log, |s| {
            matches!(s, Seen::Connected { .. } | Seen::ConnectFailed(_))
        }) == 1
    });
    let log = log.borrow();
    let Some((_, Seen::Connected { local, .. })) = log.get(1) else {
        panic!("{log:?}")
    };
    assert_eq!(local.ip(), own.ip());
}
