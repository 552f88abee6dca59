//! The socket driver: runs any number of sans-IO [`Node`]s on real UDP and TCP sockets in
//! one thread.
//!
//! What it does: binds every node's [`Node::listen`] sockets, turns socket readiness into
//! [`Input`]s (datagrams; TCP accepted / connected / connect-failed / data / closed),
//! performs the node's [`Output`]s (UDP `send_to` from the node's own socket; TCP connect
//! from the node's own IP — bind before connect, so per-node loopback addresses 127.x.y.z
//! show in the traffic; sends with buffering of partial writes; graceful close), fires
//! [`Input::Timeout`] at the deadlines nodes ask for, feeds user commands from a channel
//! ([`Commander`]) or a schedule ([`Driver::schedule`]), and hands every [`Label`] and
//! [`Event`](crate::peer::truth::Event) to a [`Sink`].
//!
//! Guarantees: labels are restamped with the driver's clock (a monotonic clock mapped to
//! Unix time) at the moment the message's first byte is handed to the kernel, and a label
//! is written only for a message that was handed over (a failed UDP send or a TCP message
//! still buffered when its connection breaks has no label); a UDP label's `src` is the
//! sending socket's real address. Every table and buffer is
//! bounded: [`DriverConfig::max_conns_per_node`] connections per node,
//! [`DriverConfig::max_buffered_bytes`] unsent bytes per connection (beyond it the
//! connection is closed and the node told, since a sans-IO node has no back-pressure), at
//! most [`MAX_OUTPUTS_PER_WAKE`] outputs drained per wake-up. Nothing a peer sends can make
//! the driver panic; odd node requests (unknown connection ids, a send from an address the
//! node does not own) are dropped and counted in [`DriverStats`].
//!
//! Must not: interpret Skylark (framing is the node's job), read the wall clock except to
//! anchor its monotonic clock once, or spawn threads (the stdin reader of `p2ptrace peer
//! client` and the Ctrl-C handler live in the CLI and talk through [`Commander`]).
//!
//! Why mio and not tokio or bare std: the nodes are synchronous state machines that want
//! exactly one thing from the runtime — "wake me when a socket is ready or my deadline
//! passes" — and a deterministic, single-threaded order of inputs (so a lab run reads like a
//! simulator run). mio is that readiness loop (epoll/kqueue) and nothing more; tokio would
//! add an async runtime, tasks and `Send` bounds around code that has no `.await` in it.
//! Bare std has non-blocking sockets but no readiness API, so it would have to busy-poll
//! every socket with sleeps, trading CPU for latency jitter on 30 ms media frames. socket2
//! provides the one thing neither std nor mio offers: bind-before-connect for TCP.

pub mod sink;
mod tcp;

use crate::peer::error::PeerError;
use crate::peer::io::{ConnId, Input, Node, Output, TcpEvent};
use crate::peer::truth::Label;
use crate::time::Ts;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use sink::Sink;
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Outputs drained from one node per wake-up; a node still busy after that is woken again
/// on the next loop turn (a buggy node that never returns `Timeout` cannot starve others).
pub const MAX_OUTPUTS_PER_WAKE: usize = 4096;
/// Largest datagram read (the UDP maximum).
pub const MAX_DATAGRAM: usize = 65_535;
/// Bytes read from one TCP connection per readiness event before serving others.
pub const MAX_READ_PER_EVENT: usize = 256 * 1024;
/// Datagrams read from one socket per readiness event before serving others.
pub const MAX_DATAGRAMS_PER_EVENT: usize = 1024;
/// Commands waiting in the channel at most (the stdin thread blocks beyond).
pub const MAX_PENDING_COMMANDS: usize = 64;
/// Longest command line accepted.
pub const MAX_COMMAND_LEN: usize = 1024;
/// Scheduled commands at most (a lab timeline).
pub const MAX_SCHEDULED: usize = 10_000;
/// Nodes per driver.
pub const MAX_NODES: usize = 1024;
/// The poll loop wakes at least this often to notice a stop request that came without a
/// wake-up (belt and braces: [`Commander::stop`] wakes it too).
const MAX_POLL_WAIT: Duration = Duration::from_millis(200);
const WAKER: Token = Token(usize::MAX);

/// Driver limits and timeouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// A TCP connect not finished after this reports `ConnectFailed` (PROTOCOL.md §8.9: 5 s).
    pub connect_timeout: Duration,
    /// Live TCP connections per node (accepted + connected); beyond it accepts are closed at
    /// once and connects fail.
    pub max_conns_per_node: usize,
    /// Unsent bytes per connection; a send beyond it closes the connection.
    pub max_buffered_bytes: usize,
    /// After a node closes a connection, how long the driver keeps draining it so the FIN
    /// (not a reset) reaches the peer after all data.
    pub close_linger: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            connect_timeout: Duration::from_secs(5),
            max_conns_per_node: 1024,
            max_buffered_bytes: 4 * 1024 * 1024,
            close_linger: Duration::from_secs(2),
        }
    }
}

/// A node the driver can host: a [`Node`] plus the save hook called at shutdown.
pub trait Hosted: Node {
    /// Persists state (host cache, credential, account store). Called once at shutdown.
    fn save(&mut self) -> Result<(), PeerError> {
        Ok(())
    }
}

/// Hosts a plain [`Node`] that has nothing to save.
pub struct Unsaved<N>(pub N);

impl<N: Node> Node for Unsaved<N> {
    fn listen(&self) -> crate::peer::io::Listen {
        self.0.listen()
    }
    fn handle_input(&mut self, input: Input<'_>) {
        self.0.handle_input(input);
    }
    fn poll_output(&mut self) -> Output {
        self.0.poll_output()
    }
}

impl<N: Node> Hosted for Unsaved<N> {}

/// The driver's clock: monotonic, anchored once to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    start_unix: Ts,
}

impl Clock {
    pub fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start: Instant::now(),
            start_unix: Ts::from_secs_nanos(
                i64::try_from(unix.as_secs()).unwrap_or(i64::MAX),
                unix.subsec_nanos(),
            ),
        }
    }

    pub fn now(&self) -> Ts {
        let elapsed = i64::try_from(self.start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.start_unix.add_nanos(elapsed)
    }

    /// How long until `at` (zero when past).
    pub fn until(&self, at: Ts) -> Duration {
        Duration::from_nanos(u64::try_from(at.since(self.now())).unwrap_or(0))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A node's index in its driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// Why a node could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    #[error("{node}: cannot listen on {transport} {addr}: {source}")]
    Bind {
        node: String,
        transport: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("too many nodes (at most {MAX_NODES})")]
    TooManyNodes,
    #[error("poll: {0}")]
    Poll(#[source] io::Error),
}

/// Counters of everything the driver dropped or refused, and traffic totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub udp_rx: u64,
    pub udp_tx: u64,
    /// `send_to` failed (buffer full, unreachable): the datagram and its label are gone.
    pub udp_send_failed: u64,
    /// A datagram named a `local` address the node has no socket for.
    pub udp_bad_local: u64,
    pub tcp_accepted: u64,
    /// Accepts closed at once because the node had `max_conns_per_node` connections.
    pub tcp_accept_refused: u64,
    pub tcp_connected: u64,
    pub tcp_connect_failed: u64,
    pub tcp_rx_bytes: u64,
    pub tcp_tx_bytes: u64,
    /// Connections closed because a node queued more than `max_buffered_bytes`.
    pub tcp_overflow_closed: u64,
    /// `Send`/`Close` for a connection the node does not have, or a `Connect` reusing a
    /// live id.
    pub tcp_unknown_conn: u64,
    /// Messages (with their labels) still unsent when their connection broke.
    pub tcp_unsent_messages: u64,
    pub commands: u64,
    /// Commands for a node name or id the driver does not have.
    pub commands_unknown_node: u64,
    /// Wake-ups cut at `MAX_OUTPUTS_PER_WAKE`.
    pub output_bursts_cut: u64,
    pub events: u64,
    pub labels: u64,
}

/// A command for a node, from any thread.
enum Message {
    Line { node: NodeId, words: Vec<String> },
}

/// Sends commands to a running driver and stops it, from any thread (stdin reader, Ctrl-C
/// handler, tests).
#[derive(Clone)]
pub struct Commander {
    tx: mpsc::SyncSender<Message>,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Commander {
    /// Queues a command line (split into words) for `node`; blocks while
    /// [`MAX_PENDING_COMMANDS`] are waiting. Fails when the line is too long or empty, or
    /// the driver is gone.
    pub fn send(&self, node: NodeId, line: &str) -> Result<(), String> {
        if line.len() > MAX_COMMAND_LEN {
            return Err(format!(
                "command longer than {MAX_COMMAND_LEN} bytes ignored"
            ));
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            return Err("empty command".into());
        }
        self.tx
            .send(Message::Line { node, words })
            .map_err(|_| "the driver has stopped".to_string())?;
        // A failed wake only delays the command to the next loop turn.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Asks the driver to stop; `run` returns soon after.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

struct Slot {
    name: String,
    node: Box<dyn Hosted>,
    /// The node's `Output::Timeout`.
    deadline: Ts,
    /// Own IP (from its first listen address), the default source of its TCP connects.
    ip: Option<IpAddr>,
    /// UDP sockets by local address.
    udp: Vec<(SocketAddr, Token)>,
    conns: usize,
}

/// One unsent TCP message.
struct Chunk {
    data: Vec<u8>,
    sent: usize,
    /// Taken (and written) when the first byte goes out.
    label: Option<Label>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting {
        deadline: Ts,
    },
    Open,
    /// The node closed it: flush, FIN, drain the peer until EOF or the deadline. The node
    /// hears nothing more of it.
    Closing {
        deadline: Ts,
    },
}

struct Conn {
    node: usize,
    id: ConnId,
    stream: TcpStream,
    state: ConnState,
    out: VecDeque<Chunk>,
    out_bytes: usize,
    fin_sent: bool,
}

enum Sock {
    Udp {
        node: usize,
        sock: UdpSocket,
        local: SocketAddr,
    },
    Listener {
        node: usize,
        sock: TcpListener,
        local: SocketAddr,
    },
    Conn(Conn),
}

/// A node input the driver generates itself (never while the node is being drained).
enum Synthetic {
    ConnectFailed(ConnId),
    Closed(ConnId),
}

/// Runs nodes on sockets. See the module documentation.
pub struct Driver<S: Sink> {
    config: DriverConfig,
    clock: Clock,
    poll: Poll,
    events: Events,
    socks: HashMap<Token, Sock>,
    /// (node, conn id) → socket.
    conn_tokens: HashMap<(usize, ConnId), Token>,
    next_token: usize,
    next_accepted: u64,
    nodes: Vec<Slot>,
    sink: S,
    stats: DriverStats,
    rx: mpsc::Receiver<Message>,
    commander: Commander,
    /// (at, node, words), kept sorted by time (stable for equal times).
    schedule: VecDeque<(Ts, NodeId, Vec<String>)>,
    synthetic: VecDeque<(usize, Synthetic)>,
    started: bool,
    buf: Vec<u8>,
    warnings: Vec<String>,
}

impl<S: Sink> Driver<S> {
    pub fn new(config: DriverConfig, sink: S) -> Result<Driver<S>, DriverError> {
        let poll = Poll::new().map_err(DriverError::Poll)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(DriverError::Poll)?;
        let (tx, rx) = mpsc::sync_channel(MAX_PENDING_COMMANDS);
        Ok(Driver {
            config,
            clock: Clock::new(),
            poll,
            events: Events::with_capacity(1024),
            socks: HashMap::new(),
            conn_tokens: HashMap::new(),
            next_token: 0,
            next_accepted: 0,
            nodes: Vec::new(),
            sink,
            stats: DriverStats::default(),
            rx,
            commander: Commander {
                tx,
                waker: Arc::new(waker),
                stop: Arc::new(AtomicBool::new(false)),
            },
            schedule: VecDeque::new(),
            synthetic: VecDeque::new(),
            started: false,
            buf: vec![0; MAX_DATAGRAM],
            warnings: Vec::new(),
        })
    }

    /// Adds a plain node (nothing to save).
    pub fn add_node<N: Node + 'static>(
        &mut self,
        name: &str,
        node: N,
    ) -> Result<NodeId, DriverError> {
        self.add(name, Box::new(Unsaved(node)))
    }

    /// Binds the node's listening sockets and adds it. A privileged port (< 1024) that
    /// cannot be bound without root is skipped with a warning ([`Driver::warnings`]);
    /// any other bind failure is an error and the node is not added.
    pub fn add(&mut self, name: &str, node: Box<dyn Hosted>) -> Result<NodeId, DriverError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(DriverError::TooManyNodes);
        }
        let idx = self.nodes.len();
        let listen = node.listen();
        let ip = listen
            .udp
            .iter()
            .chain(&listen.tcp)
            .map(SocketAddr::ip)
            .find(|ip| !ip.is_unspecified());
        let mut bound: Vec<(Token, Sock)> = Vec::new();
        let mut udp = Vec::new();
        let bind_err = |transport, addr, source| DriverError::Bind {
            node: name.to_string(),
            transport,
            addr,
            source,
        };
        for &addr in &listen.udp {
            match UdpSocket::bind(addr) {
                Ok(sock) => {
                    let local = sock.local_addr().unwrap_or(addr);
                    let token = self.token();
                    udp.push((local, token));
                    bound.push((
                        token,
                        Sock::Udp {
                            node: idx,
                            sock,
                            local,
                        },
                    ));
                }
                Err(e) if privileged(addr, &e) => self.warn_privileged(name, "udp", addr),
                Err(e) => return Err(bind_err("udp", addr, e)),
            }
        }
        for &addr in &listen.tcp {
            match TcpListener::bind(addr) {
                Ok(sock) => {
                    let local = sock.local_addr().unwrap_or(addr);
                    let token = self.token();
                    bound.push((
                        token,
                        Sock::Listener {
                            node: idx,
                            sock,
                            local,
                        },
                    ));
                }
                Err(e) if privileged(addr, &e) => self.warn_privileged(name, "tcp", addr),
                Err(e) => return Err(bind_err("tcp", addr, e)),
            }
        }
        for (token, mut sock) in bound {
            let registry = self.poll.registry();
            let r = match &mut sock {
                Sock::Udp { sock, .. } => registry.register(sock, token, Interest::READABLE),
                Sock::Listener { sock, .. } => registry.register(sock, token, Interest::READABLE),
                Sock::Conn(_) => Ok(()),
            };
            self.socks.insert(token, sock);
            if let Err(e) = r {
                // Leave nothing of a node that was not added.
                let mine: Vec<Token> = self
                    .socks
                    .iter()
                    .filter(|(_, s)| matches!(s, Sock::Udp { node, .. } | Sock::Listener { node, .. } if *node == idx))
                    .map(|(t, _)| *t)
                    .collect();
                for t in mine {
                    self.drop_sock(t);
                }
                return Err(DriverError::Poll(e));
            }
        }
        self.nodes.push(Slot {
            name: name.to_string(),
            node,
            deadline: Ts(i64::MIN),
            ip,
            udp,
            conns: 0,
        });
        Ok(NodeId(idx))
    }

    fn warn_privileged(&mut self, name: &str, transport: &str, addr: SocketAddr) {
        self.warnings.push(format!(
            "{name}: {transport} {addr} needs root (privileged port); not listening there"
        ));
    }

    /// Bind problems that did not stop a node (privileged ports skipped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The addresses a node's sockets are bound to (UDP, then TCP listeners), with the
    /// ports the kernel picked for port-0 requests.
    pub fn bound(&self, node: NodeId) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut socks: Vec<(&Token, &Sock)> = self.socks.iter().collect();
        socks.sort_by_key(|(t, _)| **t);
        for (_, s) in socks {
            match s {
                Sock::Udp { node: n, local, .. } if *n == node.0 => udp.push(*local),
                Sock::Listener { node: n, local, .. } if *n == node.0 => tcp.push(*local),
                _ => {}
            }
        }
        (udp, tcp)
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|s| s.name == name).map(NodeId)
    }

    pub fn node_name(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(node.0).map(|s| s.name.as_str())
    }

    /// A handle to send commands and stop the driver from other threads.
    pub fn commander(&self) -> Commander {
        self.commander.clone()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn now(&self) -> Ts {
        self.clock.now()
    }

    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Delivers `command` (split into words) to `node` at `at`. Beyond [`MAX_SCHEDULED`]
    /// entries the command is refused.
    pub fn schedule(&mut self, at: Ts, node: NodeId, command: &str) -> Result<(), String> {
        if self.schedule.len() >= MAX_SCHEDULED {
            return Err(format!("more than {MAX_SCHEDULED} scheduled commands"));
        }
        let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        let pos = self.schedule.partition_point(|(t, _, _)| *t <= at);
        self.schedule.insert(pos, (at, node, words));
        Ok(())
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        // Tokens are never reused (usize::MAX is the waker; 2^64 sockets never happen).
        self.next_token = self.next_token.saturating_add(1).min(usize::MAX - 1);
        t
    }

    /// Runs until `until` (if given) or a stop request. Can be called again to continue.
    pub fn run(&mut self, until: Option<Ts>) -> Result<(), DriverError> {
        if !self.started {
            self.started = true;
            let now = self.now();
            for i in 0..self.nodes.len() {
                self.input(i, Input::Timeout(now));
            }
        }
        loop {
            self.process_synthetic();
            let now = self.now();
            if self.commander.stopped() || until.is_some_and(|u| now >= u) {
                return Ok(());
            }
            self.fire_schedule(now);
            self.fire_timeouts(now);
            self.fire_conn_deadlines(now);
            self.process_synthetic();
            let next = self.next_deadline(until);
            let wait = self.clock.until(next).min(MAX_POLL_WAIT);
            let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            let polled = self.poll.poll(&mut events, Some(wait));
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.events = events;
                    return Err(DriverError::Poll(e));
                }
            }
            for ev in events.iter() {
                let token = ev.token();
                if token == WAKER {
                    continue;
                }
                // An error or hang-up is reported to whoever reads or writes next, so it
                // counts as both: the read or write then sees the error or EOF.
                let broken = ev.is_error() || ev.is_read_closed();
                self.on_ready(
                    token,
                    ev.is_readable() || broken,
                    ev.is_writable() || broken,
                );
                self.process_synthetic();
            }
            self.events = events;
            self.drain_commands();
        }
    }

    /// Closes every socket (flushing what the kernel takes at once), calls every node's
    /// save hook, and flushes the sink. Returns the save and sink errors.
    pub fn shutdown(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let tokens: Vec<Token> = self.socks.keys().copied().collect();
        for token in tokens {
            if let Some(Sock::Conn(mut c)) = self.socks.remove(&token) {
                self.flush(&mut c);
                let _ = c.stream.shutdown(Shutdown::Write);
                let unsent = c.out.iter().filter(|ch| ch.label.is_some()).count();
                self.stats.tcp_unsent_messages += unsent as u64;
            }
        }
        self.socks.clear();
        self.conn_tokens.clear();
        for slot in &mut self.nodes {
            slot.conns = 0;
            slot.udp.clear();
            if let Err(e) = slot.node.save() {
                errors.push(format!("{}: saving state: {e}", slot.name));
            }
        }
        if let Err(e) = self.sink.finish() {
            errors.push(format!("writing ground truth: {e}"));
        }
        errors
    }

    /// Consumes the driver, returning its sink (call [`Driver::shutdown`] first).
    pub fn into_sink(self) -> S {
        self.sink
    }

    fn next_deadline(&self, until: Option<Ts>) -> Ts {
        let mut next = until.unwrap_or(Ts(i64::MAX));
        for s in &self.nodes {
            next = next.min(s.deadline);
        }
        if let Some((t, _, _)) = self.schedule.front() {
            next = next.min(*t);
        }
        for sock in self.socks.values() {
            if let Sock::Conn(c) = sock {
                match c.state {
                    ConnState::Connecting { deadline } | ConnState::Closing { deadline } => {
                        next = next.min(deadline);
                    }
                    ConnState::Open => {}
                }
            }
        }
        next
    }

    fn fire_schedule(&mut self, now: Ts) {
        while self.schedule.front().is_some_and(|(t, _, _)| *t <= now) {
            if let Some((_, node, words)) = self.schedule.pop_front() {
                self.command(node, words);
            }
        }
    }

    fn fire_timeouts(&mut self, now: Ts) {
        for i in 0..self.nodes.len() {
            if self.nodes.get(i).is_some_and(|s| s.deadline <= now) {
                self.input(i, Input::Timeout(now));
            }
        }
    }

    fn fire_conn_deadlines(&mut self, now: Ts) {
        let expired: Vec<Token> = self
            .socks
            .iter()
            .filter_map(|(t, s)| match s {
                Sock::Conn(Conn {
                    state: ConnState::Connecting { deadline } | ConnState::Closing { deadline },
                    ..
                }) if *deadline <= now => Some(*t),
                _ => None,
            })
            .collect();
        for token in expired {
            let connecting = matches!(
                self.socks.get(&token),
                Some(Sock::Conn(Conn {
                    state: ConnState::Connecting { .. },
                    ..
                }))
            );
            if let Some(c) = self.remove_conn(token) {
                if connecting {
                    self.stats.tcp_connect_failed += 1;
                    self.synthetic
                        .push_back((c.node, Synthetic::ConnectFailed(c.id)));
                }
            }
        }
    }

    fn drain_commands(&mut self) {
        while let Ok(Message::Line { node, words }) = self.rx.try_recv() {
            self.command(node, words);
        }
    }

    fn command(&mut self, node: NodeId, words: Vec<String>) {
        if node.0 >= self.nodes.len() {
            self.stats.commands_unknown_node += 1;
            return;
        }
        self.stats.commands += 1;
        let now = self.now();
        self.input(node.0, Input::Command { now, words });
    }

    fn process_synthetic(&mut self) {
        while let Some((node, s)) = self.synthetic.pop_front() {
            let now = self.now();
            let (conn, event) = match s {
                Synthetic::ConnectFailed(c) => (c, TcpEvent::ConnectFailed),
                Synthetic::Closed(c) => (c, TcpEvent::Closed),
            };
            self.input(node, Input::Tcp { now, conn, event });
        }
    }

    /// Gives one input to a node and performs everything it outputs.
    fn input(&mut self, node: usize, input: Input<'_>) {
        let Some(slot) = self.nodes.get_mut(node) else {
            return;
        };
        slot.node.handle_input(input);
        self.drain(node);
    }

    fn drain(&mut self, node: usize) {
        for _ in 0..MAX_OUTPUTS_PER_WAKE {
            let Some(slot) = self.nodes.get_mut(node) else {
                return;
            };
            match slot.node.poll_output() {
                Output::Timeout(t) => {
                    slot.deadline = t;
                    return;
                }
                Output::Event(e) => {
                    self.stats.events += 1;
                    self.sink.event(&e);
                }
                Output::Udp(d) => self.send_udp(node, d),
                Output::Tcp(t) => self.tcp_out(node, t),
            }
        }
        // Still busy: come back on the next loop turn.
        self.stats.output_bursts_cut += 1;
        if let Some(slot) = self.nodes.get_mut(node) {
            slot.deadline = Ts(i64::MIN);
        }
    }

    fn send_udp(&mut self, node: usize, d: crate::peer::io::Datagram) {
        let Some(slot) = self.nodes.get(node) else {
            return;
        };
        // Exact local address, else the node's socket on the same IP (a node that names
        // its socket by IP with port 0), else a wildcard socket, else refuse.
        let token = slot
            .udp
            .iter()
            .find(|(a, _)| *a == d.local)
            .or_else(|| slot.udp.iter().find(|(a, _)| a.ip() == d.local.ip()))
            .or_else(|| {
                // A socket bound to 0.0.0.0 / :: serves every local IP on its port.
                slot.udp.iter().find(|(a, _)| {
                    a.ip().is_unspecified() && (a.port() == d.local.port() || d.local.port() == 0)
                })
            })
            .map(|(_, t)| *t);
        let Some(Sock::Udp { sock, local, .. }) = token.and_then(|t| self.socks.get(&t)) else {
            self.stats.udp_bad_local += 1;
            return;
        };
        let local = *local;
        // Stamped before the call: on loopback the datagram reaches a capture during
        // send_to, so a stamp taken after it can trail the capture by the scheduler's delay.
        let sent_at = self.clock.now();
        match sock.send_to(&d.data, d.to) {
            Ok(_) => {
                self.stats.udp_tx += 1;
                let mut label = d.label;
                label.ts = sent_at;
                label.src = local;
                self.stats.labels += 1;
                self.sink.label(&label);
            }
            Err(_) => self.stats.udp_send_failed += 1,
        }
    }

    fn drop_sock(&mut self, token: Token) {
        if let Some(mut s) = self.socks.remove(&token) {
            let registry = self.poll.registry();
            match &mut s {
                Sock::Conn(c) => {
                    let _ = registry.deregister(&mut c.stream);
                }
                Sock::Udp { sock, .. } => {
                    let _ = registry.deregister(sock);
                }
                Sock::Listener { sock, .. } => {
                    let _ = registry.deregister(sock);
                }
            }
        }
    }

    fn on_ready(&mut self, token: Token, readable: bool, writable: bool) {
        match self.socks.get(&token) {
            Some(Sock::Udp { .. }) => self.read_udp(token),
            Some(Sock::Listener { .. }) => self.accept(token),
            Some(Sock::Conn(c)) => {
                if let ConnState::Connecting { .. } = c.state {
                    if readable || writable {
                        self.finish_connect(token);
                    }
                    return;
                }
                if writable {
                    self.flush_token(token);
                }
                if readable {
                    self.read_tcp(token);
                }
            }
            None => {}
        }
    }

    fn read_udp(&mut self, token: Token) {
        let mut errors = 0;
        for _ in 0..MAX_DATAGRAMS_PER_EVENT {
            let Some(Sock::Udp { node, sock, local }) = self.socks.get(&token) else {
                return;
            };
            let (node, local) = (*node, *local);
            match sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.stats.udp_rx += 1;
                    let now = self.clock.now();
                    let data = self.buf.get(..n).unwrap_or_default();
                    if let Some(slot) = self.nodes.get_mut(node) {
                        slot.node.handle_input(Input::Udp {
                            now,
                            local,
                            from,
                            data,
                        });
                    }
                    self.drain(node);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Interrupted, or an error report (ICMP) that is not data: try again, but
                // not forever.
                Err(_) => {
                    errors += 1;
                    if errors > 16 {
                        return;
                    }
                }
            }
        }
        // Still more: edge-triggered, so re-arm to come back after serving others.
        if let Some(Sock::Udp { sock, .. }) = self.socks.get_mut(&token) {
            let _ = self
                .poll
                .registry()
                .reregister(sock, token, Interest::READABLE);
        }
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn privileged(addr: SocketAddr, e: &io::Error) -> bool {
    addr.port() != 0 && addr.port() < 1024 && e.kind() == ErrorKind::PermissionDenied
}
