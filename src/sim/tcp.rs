//! Each simulated host's TCP stack: real TCP segments built by smoltcp, moved by the
//! simulator as raw IP packets (no link header).
//!
//! Shape: one smoltcp [`Interface`] with a one-socket [`SocketSet`] per connection, keyed by
//! (local port, remote address), so handling a packet or a timer costs the same whatever the
//! number of connections (smoltcp's poll walks every socket of an interface). A per-host
//! ordered timer set says which connections are due; [`TcpHost::poll`] touches only those.
//! Packets for no connection and no listener are answered by a socket-less interface, which
//! makes smoltcp reply with a RST as a real stack does.
//!
//! Guarantees: deterministic (ISNs from per-connection seeds drawn from one seeded ChaCha8
//! generator; output order is processing order, timers ordered by (deadline, key); hash maps
//! are only looked up, never iterated); every table is bounded ([`MAX_CONNS`],
//! [`MAX_PENDING_BYTES`], 16 KiB socket buffers, tags only for unacknowledged bytes); any
//! packet bytes are accepted without panicking (malformed, foreign or wrong-family packets
//! are counted in [`TcpStats::ignored`]).
//!
//! Tags: the tag given to [`TcpHost::send`] belongs to the last byte of that data; every
//! segment the stack emits whose payload holds that byte (first transmission and each
//! retransmission) carries a clone of it in [`Segment::tags`].
//!
//! Give-up timers are ours, not smoltcp's: smoltcp's socket timeout also aborts idle
//! connections (it measures from the last received packet whatever is outstanding) and
//! sends a RST when it fires, which Linux does not. A connection that is connecting, or has
//! data or a FIN unacknowledged, fails silently after [`CONNECT_TIMEOUT_NS`] (handshake) or
//! [`STALL_TIMEOUT_NS`] (later) without hearing from the peer.
//!
//! The persist timer is ours too: smoltcp 0.12 never probes a zero window (its issue #199),
//! so a lost window update would stall a sender with queued data for good. When smoltcp
//! holds unsent data but has no timer running (which only happens while the peer's window
//! is zero), we wait [`PERSIST_MIN_NS`], then turn on smoltcp's keep-alive, whose segment
//! (one byte below the unacknowledged edge) is the zero-window probe Linux sends too and
//! makes the peer answer with its current window; the interval doubles per probe up to
//! [`PERSIST_MAX_NS`] and keep-alive goes off again as soon as data moves.
//!
//! Time only moves forward: a `now` earlier than one already seen counts as the latest.
//!
//! Must not: read the wall clock, hold state outside the host, or emit anything but TCP.

use crate::peer::io::ConnId;
use crate::sim::packet;
use crate::time::Ts;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{AnySocket, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Connections (any state, TIME-WAIT included) one host keeps at most; SYNs beyond are
/// dropped (counted in [`TcpStats::syn_dropped`]) and `connect` fails.
pub const MAX_CONNS: usize = 65_536;
/// Bytes one connection queues beyond smoltcp's transmit buffer.
pub const MAX_PENDING_BYTES: usize = 1 << 20;
/// smoltcp receive buffer (the advertised window) per connection.
pub const RX_BUFFER: usize = 16 * 1024;
/// smoltcp transmit buffer per connection.
pub const TX_BUFFER: usize = 16 * 1024;
/// A handshake that has not completed after this long fails (Linux: ~127 s; shortened).
pub const CONNECT_TIMEOUT_NS: i64 = 20 * Ts::NANOS_PER_SEC;
/// An established connection with unacknowledged data or FIN that hears nothing from its
/// peer for this long is dropped (Linux: ~15 min; shortened to bound memory).
pub const STALL_TIMEOUT_NS: i64 = 60 * Ts::NANOS_PER_SEC;
/// Wait before the first zero-window probe (Linux: the RTO, at least 200 ms).
pub const PERSIST_MIN_NS: i64 = Ts::NANOS_PER_SEC / 5;
/// Longest interval between zero-window probes (Linux `TCP_RTO_MAX`).
pub const PERSIST_MAX_NS: i64 = 120 * Ts::NANOS_PER_SEC;
/// Ephemeral port range (Linux `ip_local_port_range` default).
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;
/// smoltcp polls per connection per event before its deadline is pushed to the next
/// microsecond (guards against a socket that keeps asking to be polled now).
const MAX_ROUNDS: usize = 4;
/// IP MTU bounds (RFC 791 / RFC 8200 minimums; the MSS option is 16 bits).
const MIN_MTU_V4: usize = 576;
const MIN_MTU_V6: usize = 1280;
const MAX_MTU: usize = 65_535;

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// One IP packet a host emits, with the tags of the message ends its payload holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment<T> {
    pub packet: Vec<u8>,
    pub tags: Vec<T>,
}

/// What happened on a connection, for the node that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpNote {
    /// A peer connected to a listening port; `conn` has [`ConnId::ACCEPTED_BIT`] set.
    Accepted {
        conn: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Connected {
        conn: ConnId,
        local: SocketAddr,
    },
    /// Refused (RST) or no answer within [`CONNECT_TIMEOUT_NS`].
    ConnectFailed {
        conn: ConnId,
    },
    /// Stream bytes in order, as much as arrived together.
    Data {
        conn: ConnId,
        data: Vec<u8>,
    },
    /// The peer closed (FIN) or reset, or the connection stalled; sent once, after all data.
    Closed {
        conn: ConnId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("unknown TCP connection")]
    UnknownConn,
    #[error("connection id already in use")]
    ConnIdInUse,
    #[error("too many TCP connections on this host")]
    TooManyConns,
    #[error("local port already in use for this remote address")]
    PortInUse,
    #[error("no free ephemeral port")]
    NoFreePort,
    #[error("send queue full")]
    QueueFull,
    #[error("address family differs from the host's")]
    FamilyMismatch,
    #[error("address not usable for TCP")]
    Unaddressable,
    #[error("connection is closing")]
    Closing,
}

/// Counters of one host (since creation; `live` is current).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections currently held (any state, TIME-WAIT included).
    pub live: usize,
    pub accepted: u64,
    pub connected: u64,
    pub connect_failed: u64,
    /// Established connections dropped by [`STALL_TIMEOUT_NS`].
    pub stalled: u64,
    pub resets_sent: u64,
    /// Stream bytes delivered in `Data` notes.
    pub bytes_in: u64,
    /// Stream bytes accepted by `send`.
    pub bytes_out: u64,
    pub segments_out: u64,
    /// Emitted SYNs after the first and data segments starting below the highest byte sent.
    pub retransmits: u64,
    /// Zero-window probes sent (see the module docs).
    pub window_probes: u64,
    /// Packets not for this host, not TCP, or malformed before reaching smoltcp.
    pub ignored: u64,
    /// SYNs dropped because the host holds [`MAX_CONNS`] connections.
    pub syn_dropped: u64,
}

/// (local port, remote endpoint): the local address is always the host's.
type Key = (u16, SocketAddr);

/// Our nanoseconds to smoltcp's microseconds (floor, so a deadline `d` converted back is
/// due at any `now >= d`).
fn to_instant(t: Ts) -> Instant {
    Instant::from_micros(t.0.div_euclid(1000))
}

fn from_instant(i: Instant) -> Ts {
    Ts(i.total_micros().saturating_mul(1000))
}

fn to_duration(ns: i64) -> Duration {
    Duration::from_micros(u64::try_from(ns / 1000).unwrap_or(0))
}

fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// The smoltcp device of one poll: at most one received packet in, emitted packets out.
struct Dev<'p> {
    rx: Option<&'p [u8]>,
    tx: &'p mut Vec<Vec<u8>>,
    mtu: usize,
}

struct Rx<'a>(&'a [u8]);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for Dev<'_> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let p = self.rx.take()?;
        Some((Rx(p), Tx(&mut *self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut *self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

fn new_iface(ip: IpAddr, usable: bool, mtu: usize, seed: u64, now: Instant) -> Interface {
    let mut cfg = Config::new(HardwareAddress::Ip);
    cfg.random_seed = seed;
    let mut tx = Vec::new();
    let mut dev = Dev {
        rx: None,
        tx: &mut tx,
        mtu,
    };
    let mut iface = Interface::new(cfg, &mut dev, now);
    if usable {
        // Prefix 0: every destination is on-link, so smoltcp needs no route.
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::from(ip), 0));
        });
    }
    iface
}

fn sock<'s>(set: &'s mut SocketSet<'static>) -> Option<&'s mut tcp::Socket<'static>> {
    set.iter_mut()
        .find_map(|(_, s)| tcp::Socket::downcast_mut(s))
}

/// Host-wide output and bookkeeping a connection writes into.
struct Shared<T> {
    out: Vec<Segment<T>>,
    notes: Vec<TcpNote>,
    stats: TcpStats,
    ids: FxHashMap<ConnId, Key>,
    next_accept: u64,
}

impl<T> Shared<T> {
    /// Counts and queues packets that carry no stream data of ours (RST replies).
    fn emit_plain(&mut self, tx: &mut Vec<Vec<u8>>) {
        for p in tx.drain(..) {
            self.stats.segments_out += 1;
            if packet::tcp_info(&p).is_some_and(|(f, _, _)| f & TCP_RST != 0) {
                self.stats.resets_sent += 1;
            }
            self.out.push(Segment {
                packet: p,
                tags: Vec::new(),
            });
        }
    }
}

struct Conn<T> {
    iface: Interface,
    sockets: SocketSet<'static>,
    /// The node's name for it: set at connect, or when announced for accepted ones.
    id: Option<ConnId>,
    client: bool,
    /// Connected/Accepted sent.
    announced: bool,
    /// The node is done with it (Closed/ConnectFailed sent): no more notes.
    done: bool,
    /// FIN after the pending data (node's close, or the peer's FIN).
    close_wanted: bool,
    /// Bytes waiting for room in smoltcp's transmit buffer.
    pending: VecDeque<u8>,
    /// Stream bytes handed to smoltcp.
    pushed: u64,
    /// Stream bytes accepted from the node (`pushed` + `pending`).
    queued: u64,
    /// Our initial sequence number, from the SYN we emitted.
    isn: Option<u32>,
    /// End (stream offset) of the highest data sent.
    sent_hi: u64,
    /// (stream offset of a message's last byte, tag), ascending; only unacknowledged.
    tags: VecDeque<(u64, T)>,
    deadline: Option<Ts>,
    /// Since when something is outstanding without word from the peer.
    stall_since: Option<Ts>,
    /// When to start probing the peer's zero window (armed while smoltcp is stuck on it).
    persist_at: Option<Ts>,
    /// Probing: smoltcp's keep-alive is on with this interval (ns), doubled per probe.
    probe_ivl: Option<i64>,
}

fn synced(s: tcp::State) -> bool {
    !matches!(
        s,
        tcp::State::Closed | tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
    )
}

impl<T: Clone> Conn<T> {
    fn new(iface: Interface, socket: tcp::Socket<'static>, client: bool) -> Self {
        let mut sockets = SocketSet::new(Vec::with_capacity(1));
        sockets.add(socket);
        Conn {
            iface,
            sockets,
            id: None,
            client,
            announced: false,
            done: false,
            close_wanted: false,
            pending: VecDeque::new(),
            pushed: 0,
            queued: 0,
            isn: None,
            sent_hi: 0,
            tags: VecDeque::new(),
            deadline: None,
            stall_since: None,
            persist_at: None,
            probe_ivl: None,
        }
    }

    fn state(&mut self) -> tcp::State {
        sock(&mut self.sockets).map_or(tcp::State::Closed, |s| s.state())
    }

    /// When the give-up timer fires, if armed.
    fn give_up_at(&mut self) -> Option<Ts> {
        let limit = if synced(self.state()) {
            STALL_TIMEOUT_NS
        } else {
            CONNECT_TIMEOUT_NS
        };
        self.stall_since.map(|t| t.add_nanos(limit))
    }

    /// Runs smoltcp (with `rx` fed first) until nothing more is due now; `false` when the
    /// connection is over and must be removed.
    fn run(
        &mut self,
        key: Key,
        local_ip: IpAddr,
        mtu: usize,
        mut rx: Option<&[u8]>,
        now: Ts,
        sh: &mut Shared<T>,
    ) -> bool {
        let inst = to_instant(now);
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            // smoltcp's timer is idle (that is what armed `persist_at`), so turning keep-alive
            // on makes it send a probe in this poll; the next comes after the interval.
            if let Some(s) = sock(&mut self.sockets) {
                let ivl = PERSIST_MIN_NS.saturating_mul(2).min(PERSIST_MAX_NS);
                s.set_keep_alive(Some(to_duration(ivl)));
                self.probe_ivl = Some(ivl);
            }
        }
        let mut tx = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let mut dev = Dev {
                rx: rx.take(),
                tx: &mut tx,
                mtu,
            };
            self.iface.poll(inst, &mut dev, &mut self.sockets);
            self.emit(&mut tx, sh);
            if !self.service(key, local_ip, now, sh) {
                return false;
            }
            match self.iface.poll_at(inst, &self.sockets) {
                Some(t) if t <= inst => {}
                _ => break,
            }
        }
        true
    }

    /// Queues emitted packets with their tags; learns the ISN; counts.
    fn emit(&mut self, tx: &mut Vec<Vec<u8>>, sh: &mut Shared<T>) {
        let unacked = sock(&mut self.sockets).map_or(0, |s| s.send_queue());
        let acked = self.pushed.saturating_sub(unacked as u64);
        for p in tx.drain(..) {
            let mut tags = Vec::new();
            sh.stats.segments_out += 1;
            if let Some((flags, seq, len)) = packet::tcp_info(&p) {
                if flags & TCP_RST != 0 {
                    sh.stats.resets_sent += 1;
                }
                if flags & TCP_SYN != 0 {
                    if self.isn.is_some() {
                        sh.stats.retransmits += 1;
                    } else {
                        self.isn = Some(seq);
                    }
                }
                if let (Some(isn), Ok(len32)) = (self.isn, u32::try_from(len))
                    && len > 0
                {
                    // Stream offset of the segment end relative to what we handed smoltcp
                    // (the segment lies within its 16 KiB buffer, so 32 bits resolve it).
                    let end_rel = seq.wrapping_sub(isn.wrapping_add(1)).wrapping_add(len32);
                    let behind = u64::from((self.pushed as u32).wrapping_sub(end_rel));
                    if let Some(end) = self.pushed.checked_sub(behind)
                        && let Some(start) = end.checked_sub(len as u64)
                        && behind < 1 << 31
                    {
                        if end <= acked {
                            // Only a keep-alive carries no unacknowledged byte: our probe.
                            sh.stats.window_probes += 1;
                            self.probed();
                        } else {
                            self.data_moved();
                            if start < self.sent_hi {
                                sh.stats.retransmits += 1;
                            }
                            self.sent_hi = self.sent_hi.max(end);
                            let from = self.tags.partition_point(|(o, _)| *o < start);
                            tags.extend(
                                self.tags
                                    .range(from..)
                                    .take_while(|(o, _)| *o < end)
                                    .map(|(_, t)| t.clone()),
                            );
                        }
                    }
                }
            }
            sh.out.push(Segment { packet: p, tags });
        }
    }

    /// Moves data between the node and smoltcp and turns state changes into notes;
    /// `false` when the connection is over.
    fn service(&mut self, key: Key, local_ip: IpAddr, now: Ts, sh: &mut Shared<T>) -> bool {
        let Some(s) = sock(&mut self.sockets) else {
            return false;
        };
        let state = s.state();
        if !self.announced && synced(state) {
            self.announced = true;
            if self.client {
                sh.stats.connected += 1;
                if let Some(conn) = self.id {
                    sh.notes.push(TcpNote::Connected {
                        conn,
                        local: SocketAddr::new(local_ip, key.0),
                    });
                }
            } else {
                sh.stats.accepted += 1;
                let conn = ConnId(ConnId::ACCEPTED_BIT | sh.next_accept);
                sh.next_accept = sh.next_accept.wrapping_add(1);
                self.id = Some(conn);
                sh.ids.insert(conn, key);
                sh.notes.push(TcpNote::Accepted {
                    conn,
                    local: SocketAddr::new(local_ip, key.0),
                    remote: key.1,
                });
            }
        }
        // Drain what arrived (also after the node is done, to keep the window open).
        let mut data = Vec::new();
        let mut fin = false;
        loop {
            let r = if s.recv_queue() == 0 {
                s.recv(|_| (0, ()))
            } else {
                s.recv(|b| {
                    data.extend_from_slice(b);
                    (b.len(), ())
                })
            };
            match r {
                Err(tcp::RecvError::Finished) => fin = true,
                Ok(()) if s.recv_queue() > 0 => continue,
                _ => {}
            }
            break;
        }
        let live = self.announced && !self.done;
        if live && !data.is_empty() {
            sh.stats.bytes_in += data.len() as u64;
            if let Some(conn) = self.id {
                sh.notes.push(TcpNote::Data { conn, data });
            }
        }
        if fin {
            // The peer's FIN: the node hears Closed once; our FIN follows our data.
            self.close_wanted = true;
            if live {
                finish(&mut self.id, &mut self.done, sh, closed_note);
            }
        }
        while !self.pending.is_empty() && s.can_send() {
            let n = s.send_slice(self.pending.as_slices().0).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.pending.drain(..n);
            self.pushed += n as u64;
        }
        if self.close_wanted
            && self.pending.is_empty()
            && matches!(
                s.state(),
                tcp::State::Established | tcp::State::CloseWait | tcp::State::SynReceived
            )
        {
            s.close();
        }
        let state = s.state();
        if matches!(state, tcp::State::Closed | tcp::State::Listen) {
            // Reset, TIME-WAIT over, last ACK received, or (server) a SYN that never took.
            if !self.done {
                if self.announced {
                    finish(&mut self.id, &mut self.done, sh, closed_note);
                } else if self.client {
                    sh.stats.connect_failed += 1;
                    finish(&mut self.id, &mut self.done, sh, failed_note);
                }
            }
            return false;
        }
        let acked = self.pushed.saturating_sub(s.send_queue() as u64);
        while self.tags.front().is_some_and(|(o, _)| *o < acked) {
            self.tags.pop_front();
        }
        let outstanding = !synced(state)
            || matches!(
                state,
                tcp::State::FinWait1
                    | tcp::State::FinWait2
                    | tcp::State::Closing
                    | tcp::State::LastAck
            )
            || s.send_queue() > 0
            || !self.pending.is_empty();
        if outstanding {
            self.stall_since.get_or_insert(now);
        } else {
            self.stall_since = None;
        }
        true
    }

    /// A zero-window probe went out: back off (the interval set now applies after the next).
    fn probed(&mut self) {
        if let Some(ivl) = self.probe_ivl {
            let ivl = ivl.saturating_mul(2).min(PERSIST_MAX_NS);
            self.probe_ivl = Some(ivl);
            if let Some(s) = sock(&mut self.sockets) {
                s.set_keep_alive(Some(to_duration(ivl)));
            }
        }
    }

    /// Data went out, so the window is open: stop probing. smoltcp's retransmit timer runs
    /// now, so turning keep-alive off leaves no keep-alive armed.
    fn data_moved(&mut self) {
        self.persist_at = None;
        if self.probe_ivl.take().is_some()
            && let Some(s) = sock(&mut self.sockets)
        {
            s.set_keep_alive(None);
        }
    }

    /// After a run, with smoltcp's next deadline: arms the persist timer when smoltcp holds
    /// unsent data yet has no timer (nothing in flight and the peer's window is zero).
    fn check_persist(&mut self, smol: Option<Ts>, now: Ts) {
        let Some(s) = sock(&mut self.sockets) else {
            return;
        };
        let queued = synced(s.state()) && s.send_queue() > 0;
        if self.probe_ivl.is_some() {
            if !queued {
                self.probe_ivl = None;
                s.set_keep_alive(None);
            }
        } else if queued && smol.is_none() {
            self.persist_at.get_or_insert(now.add_nanos(PERSIST_MIN_NS));
        } else {
            self.persist_at = None;
        }
    }

    fn finish(&mut self, sh: &mut Shared<T>, note: fn(ConnId) -> TcpNote) {
        finish(&mut self.id, &mut self.done, sh, note);
    }
}

fn closed_note(conn: ConnId) -> TcpNote {
    TcpNote::Closed { conn }
}

fn failed_note(conn: ConnId) -> TcpNote {
    TcpNote::ConnectFailed { conn }
}

/// Tells the node the connection is over for it (once) and forgets its id.
fn finish<T>(
    id: &mut Option<ConnId>,
    done: &mut bool,
    sh: &mut Shared<T>,
    note: fn(ConnId) -> TcpNote,
) {
    *done = true;
    if let Some(conn) = id.take() {
        sh.ids.remove(&conn);
        sh.notes.push(note(conn));
    }
}

/// One simulated host's TCP stack. See the module docs.
pub struct TcpHost<T: Clone> {
    ip: IpAddr,
    /// The address is unicast (else nothing is sent or accepted).
    usable: bool,
    mtu: usize,
    rng: ChaCha8Rng,
    next_port: u16,
    listeners: BTreeSet<u16>,
    conns: FxHashMap<Key, Conn<T>>,
    /// Connections per local port (for ephemeral port choice).
    ports: FxHashMap<u16, u32>,
    timers: BTreeSet<(Ts, Key)>,
    /// Socket-less interface: smoltcp answers what it gets with a RST.
    rst_iface: Interface,
    sh: Shared<T>,
    /// Latest time seen (smoltcp needs a monotonic clock).
    last_now: Ts,
}

impl<T: Clone> TcpHost<T> {
    /// `mtu` is the IP MTU, clamped to 576 (IPv4) / 1280 (IPv6) ..= 65535; the MSS follows
    /// from it (MTU - 40 for IPv4, - 60 for IPv6).
    pub fn new(ip: IpAddr, mtu: usize, seed: u64) -> Self {
        let min = if ip.is_ipv4() { MIN_MTU_V4 } else { MIN_MTU_V6 };
        let mtu = mtu.clamp(min, MAX_MTU);
        let usable = is_unicast(ip);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let next_port = rng.random_range(EPHEMERAL_PORTS);
        let rst_iface = new_iface(ip, usable, mtu, rng.next_u64(), Instant::ZERO);
        TcpHost {
            ip,
            usable,
            mtu,
            rng,
            next_port,
            listeners: BTreeSet::new(),
            conns: FxHashMap::default(),
            ports: FxHashMap::default(),
            timers: BTreeSet::new(),
            rst_iface,
            sh: Shared {
                out: Vec::new(),
                notes: Vec::new(),
                stats: TcpStats::default(),
                ids: FxHashMap::default(),
                next_accept: 1,
            },
            last_now: Ts(i64::MIN),
        }
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Accepts connections to `port` from now on (port 0 is ignored).
    pub fn listen(&mut self, port: u16) {
        if port != 0 {
            self.listeners.insert(port);
        }
    }

    fn clock(&mut self, now: Ts) -> Ts {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// Next ephemeral port not used by a listener or a connection, cycling the range.
    fn ephemeral(&mut self) -> Option<u16> {
        for _ in EPHEMERAL_PORTS {
            let p = self.next_port;
            self.next_port = if p >= *EPHEMERAL_PORTS.end() {
                *EPHEMERAL_PORTS.start()
            } else {
                p + 1
            };
            if !self.listeners.contains(&p) && !self.ports.contains_key(&p) {
                return Some(p);
            }
        }
        None
    }

    /// A connection's own interface (seeded from the host's RNG), socket and local endpoint.
    fn new_conn_parts(
        &mut self,
        now: Ts,
        port: u16,
    ) -> (Interface, tcp::Socket<'static>, IpListenEndpoint) {
        let iface = new_iface(
            self.ip,
            true,
            self.mtu,
            self.rng.next_u64(),
            to_instant(now),
        );
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
        );
        let local = IpListenEndpoint {
            addr: Some(self.ip.into()),
            port,
        };
        (iface, socket, local)
    }

    /// Opens a connection (SYN at the next poll); returns the local port. `None` picks an
    /// ephemeral port; a fixed port may be shared with other connections and listeners as
    /// long as the 4-tuple is new.
    pub fn connect(
        &mut self,
        now: Ts,
        conn: ConnId,
        local_port: Option<u16>,
        remote: SocketAddr,
    ) -> Result<u16, TcpError> {
        let now = self.clock(now);
        if remote.is_ipv4() != self.ip.is_ipv4() {
            return Err(TcpError::FamilyMismatch);
        }
        if !self.usable || !is_unicast(remote.ip()) || remote.port() == 0 {
            return Err(TcpError::Unaddressable);
        }
        if self.sh.ids.contains_key(&conn) {
            return Err(TcpError::ConnIdInUse);
        }
        if self.conns.len() >= MAX_CONNS {
            return Err(TcpError::TooManyConns);
        }
        let port = match local_port.filter(|&p| p != 0) {
            Some(p) if self.conns.contains_key(&(p, remote)) => return Err(TcpError::PortInUse),
            Some(p) => p,
            None => self.ephemeral().ok_or(TcpError::NoFreePort)?,
        };
        let (mut iface, mut socket, local) = self.new_conn_parts(now, port);
        socket
            .connect(iface.context(), IpEndpoint::from(remote), local)
            .map_err(|_| TcpError::Unaddressable)?;
        let mut c = Conn::new(iface, socket, true);
        c.id = Some(conn);
        let key = (port, remote);
        self.conns.insert(key, c);
        *self.ports.entry(port).or_default() += 1;
        self.sh.ids.insert(conn, key);
        self.schedule(key, Some(now));
        Ok(port)
    }

    /// Queues `data`; `tag` goes to its last byte (an empty `data` carries no tag).
    /// Sent at the next poll, as window, Nagle and the handshake allow.
    pub fn send(
        &mut self,
        now: Ts,
        conn: ConnId,
        data: &[u8],
        tag: Option<T>,
    ) -> Result<(), TcpError> {
        let now = self.clock(now);
        let key = *self.sh.ids.get(&conn).ok_or(TcpError::UnknownConn)?;
        let c = self.conns.get_mut(&key).ok_or(TcpError::UnknownConn)?;
        if c.close_wanted || c.done {
            return Err(TcpError::Closing);
        }
        let room = match sock(&mut c.sockets) {
            Some(s) if s.may_send() && c.pending.is_empty() => {
                s.send_capacity().saturating_sub(s.send_queue())
            }
            _ => 0,
        };
        let direct = room.min(data.len());
        if c.pending.len() + (data.len() - direct) > MAX_PENDING_BYTES {
            return Err(TcpError::QueueFull);
        }
        let (now_part, later) = data.split_at(direct);
        if let Some(s) = sock(&mut c.sockets)
            && !now_part.is_empty()
        {
            let n = s.send_slice(now_part).unwrap_or(0);
            c.pushed += n as u64;
            c.pending.extend(now_part.get(n..).unwrap_or_default());
        }
        c.pending.extend(later);
        c.queued += data.len() as u64;
        self.sh.stats.bytes_out += data.len() as u64;
        if let Some(tag) = tag
            && !data.is_empty()
        {
            c.tags.push_back((c.queued - 1, tag));
        }
        self.schedule(key, Some(now));
        Ok(())
    }

    /// Graceful close: FIN after all queued data; the node still gets Data until the peer's
    /// FIN, then Closed. A connection still connecting is dropped on the spot (no packet,
    /// no note). Unknown ids are ignored.
    pub fn close(&mut self, now: Ts, conn: ConnId) {
        let now = self.clock(now);
        let Some(&key) = self.sh.ids.get(&conn) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.state() == tcp::State::SynSent {
            c.done = true;
            self.remove(key);
            return;
        }
        c.close_wanted = true;
        self.schedule(key, Some(now));
    }

    /// Host crash: forgets every connection and unsent output, sends nothing. Listening
    /// ports, counters and the accepted-id sequence survive.
    pub fn abort_all(&mut self) {
        self.conns.clear();
        self.ports.clear();
        self.timers.clear();
        self.sh.ids.clear();
        self.sh.out.clear();
        self.sh.notes.clear();
    }

    /// An IP packet delivered to this host. Processed now; what it causes is handed out by
    /// the next [`poll`](Self::poll) (see [`next_deadline`](Self::next_deadline)).
    pub fn receive(&mut self, now: Ts, pkt: &[u8]) {
        let now = self.clock(now);
        let t = match packet::tuple(pkt) {
            Some(t)
                if self.usable
                    && t.proto == packet::PROTO_TCP
                    && t.dst.ip() == self.ip
                    && t.dst.port() != 0
                    && t.src.port() != 0
                    && is_unicast(t.src.ip()) =>
            {
                t
            }
            _ => {
                self.sh.stats.ignored += 1;
                return;
            }
        };
        let key = (t.dst.port(), t.src);
        if let Some(c) = self.conns.get_mut(&key) {
            if c.stall_since.is_some() && synced(c.state()) {
                c.stall_since = Some(now);
            }
            let keep = c.run(key, self.ip, self.mtu, Some(pkt), now, &mut self.sh);
            self.after_run(key, keep, now);
            return;
        }
        let flags = packet::tcp_info(pkt).map_or(0, |(f, _, _)| f);
        let syn_only = flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN;
        if syn_only && self.listeners.contains(&key.0) {
            if self.conns.len() >= MAX_CONNS {
                self.sh.stats.syn_dropped += 1;
                return;
            }
            let (iface, mut socket, ep) = self.new_conn_parts(now, key.0);
            if socket.listen(ep).is_err() {
                return;
            }
            let mut c = Conn::new(iface, socket, false);
            let keep = c.run(key, self.ip, self.mtu, Some(pkt), now, &mut self.sh);
            if keep {
                self.conns.insert(key, c);
                *self.ports.entry(key.0).or_default() += 1;
                self.after_run(key, true, now);
            }
            return;
        }
        // No connection, no listener: smoltcp (no sockets) answers with a RST, unless the
        // packet is malformed or itself a RST.
        let mut tx = Vec::new();
        let mut dev = Dev {
            rx: Some(pkt),
            tx: &mut tx,
            mtu: self.mtu,
        };
        let mut none = SocketSet::new(Vec::new());
        self.rst_iface.poll(to_instant(now), &mut dev, &mut none);
        self.sh.emit_plain(&mut tx);
    }

    /// Runs every connection due at `now`, then hands out all packets and notes produced
    /// since the last poll, in the order they were produced.
    pub fn poll(&mut self, now: Ts, out: &mut Vec<Segment<T>>, notes: &mut Vec<TcpNote>) {
        let now = self.clock(now);
        while let Some(&(t, key)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(c) = self.conns.get_mut(&key) else {
                continue;
            };
            c.deadline = None;
            let keep = if c.give_up_at().is_some_and(|g| g <= now) {
                // No word from the peer: give up silently, as Linux does.
                if c.announced {
                    self.sh.stats.stalled += 1;
                    if !c.done {
                        c.finish(&mut self.sh, closed_note);
                    }
                } else if c.client {
                    self.sh.stats.connect_failed += 1;
                    if !c.done {
                        c.finish(&mut self.sh, failed_note);
                    }
                }
                false
            } else {
                c.run(key, self.ip, self.mtu, None, now, &mut self.sh)
            };
            self.after_run(key, keep, now);
        }
        out.append(&mut self.sh.out);
        notes.append(&mut self.sh.notes);
    }

    /// Earliest time [`poll`](Self::poll) must run: a connection's timer (retransmit,
    /// delayed ACK, TIME-WAIT, give-up, queued work) or output already waiting.
    pub fn next_deadline(&self) -> Option<Ts> {
        let timer = self.timers.first().map(|&(t, _)| t);
        if self.sh.out.is_empty() && self.sh.notes.is_empty() {
            timer
        } else {
            Some(timer.map_or(self.last_now, |t| t.min(self.last_now)))
        }
    }

    pub fn stats(&self) -> TcpStats {
        TcpStats {
            live: self.conns.len(),
            ..self.sh.stats
        }
    }

    /// Reschedules a connection after smoltcp ran, or removes it.
    fn after_run(&mut self, key: Key, keep: bool, now: Ts) {
        if !keep {
            self.remove(key);
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let inst = to_instant(now);
        let smol = c.iface.poll_at(inst, &c.sockets).map(from_instant);
        c.check_persist(smol, now);
        let due = [smol, c.give_up_at(), c.persist_at]
            .into_iter()
            .flatten()
            .min();
        // Still due after MAX_ROUNDS: retry at the next microsecond, never in a loop now.
        let due = due.map(|d| d.max(from_instant(inst).add_nanos(1000)));
        self.set_timer(key, due);
    }

    /// Makes a connection due no later than `at`.
    fn schedule(&mut self, key: Key, at: Option<Ts>) {
        let cur = self.conns.get(&key).and_then(|c| c.deadline);
        let at = match (cur, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.set_timer(key, at);
    }

    fn set_timer(&mut self, key: Key, at: Option<Ts>) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.deadline == at {
            return;
        }
        if let Some(old) = c.deadline {
            self.timers.remove(&(old, key));
        }
        c.deadline = at;
        if let Some(t) = at {
            self.timers.insert((t, key));
        }
    }

    fn remove(&mut self, key: Key) {
        let Some(mut c) = self.conns.remove(&key) else {
            return;
        };
        if let Some(old) = c.deadline.take() {
            self.timers.remove(&(old, key));
        }
        if let Some(id) = c.id.take() {
            self.sh.ids.remove(&id);
        }
        if let Some(n) = self.ports.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.ports.remove(&key.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Not microsecond-aligned on purpose (exercises the ns/µs conversion).
    const T0: Ts = Ts(1_700_000_000_000_000_123);
    const MS: i64 = 1_000_000;
    const SEC: i64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// IPv4 header, and TCP checksums recomputed from scratch by etherparse.
    fn checksums_ok(pkt: &[u8]) -> bool {
        let sp = SlicedPacket::from_ip(pkt).unwrap();
        let Some(TransportSlice::Tcp(t)) = &sp.transport else {
            return false;
        };
        match &sp.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                h.calc_header_checksum() == h.header_checksum
                    && t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap() == t.checksum()
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap() == t.checksum()
            }
            _ => false,
        }
    }

    /// Recomputes the TCP checksum of a (mutated) IPv4 packet, so smoltcp looks deeper.
    fn fix_tcp_checksum(p: &mut [u8]) {
        let copy = p.to_vec();
        let Ok(sp) = SlicedPacket::from_ip(&copy) else {
            return;
        };
        let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) = (&sp.net, &sp.transport)
        else {
            return;
        };
        let h = ip.header().to_header();
        let Ok(c) = t.to_header().calc_checksum_ipv4(&h, t.payload()) else {
            return;
        };
        let off = usize::from(p[0] & 0x0f) * 4 + 16;
        p[off..off + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn flags(p: &[u8]) -> u8 {
        packet::tcp_info(p).unwrap().0
    }

    fn payload_len(p: &[u8]) -> usize {
        packet::tcp_info(p).unwrap().2
    }

    /// Advertised window (16 KiB buffers need no window scaling).
    fn window(p: &[u8]) -> u16 {
        let off = usize::from(p[0] & 0x0f) * 4;
        u16::from_be_bytes([p[off + 14], p[off + 15]])
    }

    type DropFn = Box<dyn FnMut(usize, &Segment<u32>) -> bool>;

    struct Sent {
        at: Ts,
        from: usize,
        seg: Segment<u32>,
        dropped: bool,
    }

    /// Hosts wired back to back: fixed one-way delay, optional loss, polled at their
    /// deadlines. Packets to an address no host has vanish.
    struct Net {
        hosts: Vec<TcpHost<u32>>,
        now: Ts,
        delay: i64,
        flight: BTreeMap<(Ts, u64), (usize, Vec<u8>)>,
        seq: u64,
        sent: Vec<Sent>,
        notes: Vec<Vec<(Ts, TcpNote)>>,
        drop: DropFn,
        /// Check every packet's checksums (off only for the throughput measurement).
        verify: bool,
    }

    impl Net {
        fn new(hosts: Vec<TcpHost<u32>>) -> Self {
            let n = hosts.len();
            Net {
                hosts,
                now: T0,
                delay: 10 * MS,
                flight: BTreeMap::new(),
                seq: 0,
                sent: Vec::new(),
                notes: vec![Vec::new(); n],
                drop: Box::new(|_, _| false),
                verify: true,
            }
        }

        /// A (10.0.0.1) and B (10.0.0.2, listening on 443).
        fn pair(seed: u64) -> Self {
            let a = TcpHost::new("10.0.0.1".parse().unwrap(), 1500, seed);
            let mut b = TcpHost::new("10.0.0.2".parse().unwrap(), 1500, seed ^ 0x5555);
            b.listen(443);
            Net::new(vec![a, b])
        }

        fn run_until(&mut self, end: Ts) {
            for _ in 0..10_000_000 {
                let mut t = self.flight.keys().next().map(|k| k.0);
                for h in &self.hosts {
                    if let Some(d) = h.next_deadline() {
                        t = Some(t.map_or(d, |x| x.min(d)));
                    }
                }
                let Some(t) = t.filter(|&t| t <= end) else {
                    self.now = self.now.max(end);
                    return;
                };
                self.now = self.now.max(t);
                while let Some(e) = self.flight.first_entry() {
                    if e.key().0 > self.now {
                        break;
                    }
                    let (dst, p) = e.remove();
                    self.hosts[dst].receive(self.now, &p);
                }
                for i in 0..self.hosts.len() {
                    if self.hosts[i].next_deadline().is_some_and(|d| d <= self.now) {
                        let (mut out, mut notes) = (Vec::new(), Vec::new());
                        self.hosts[i].poll(self.now, &mut out, &mut notes);
                        let now = self.now;
                        self.notes[i].extend(notes.into_iter().map(|n| (now, n)));
                        for s in out {
                            self.transmit(i, s);
                        }
                        assert!(self.hosts[i].next_deadline().is_none_or(|d| d > self.now));
                    }
                }
            }
            panic!("simulation does not settle");
        }

        fn run_for(&mut self, ns: i64) {
            self.run_until(self.now.add_nanos(ns));
        }

        fn transmit(&mut self, from: usize, seg: Segment<u32>) {
            assert!(!self.verify || checksums_ok(&seg.packet), "bad checksum");
            let dropped = (self.drop)(from, &seg);
            let dst = packet::addrs(&seg.packet)
                .and_then(|(_, d)| self.hosts.iter().position(|h| h.ip() == d));
            if let (false, Some(d)) = (dropped, dst) {
                let at = self.now.add_nanos(self.delay);
                self.flight.insert((at, self.seq), (d, seg.packet.clone()));
                self.seq += 1;
            }
            self.sent.push(Sent {
                at: self.now,
                from,
                seg,
                dropped,
            });
        }

        fn notes(&self, host: usize) -> Vec<TcpNote> {
            self.notes[host].iter().map(|(_, n)| n.clone()).collect()
        }

        /// Everything `host` received on `conn`.
        fn stream(&self, host: usize, conn: ConnId) -> Vec<u8> {
            let mut v = Vec::new();
            for (_, n) in &self.notes[host] {
                if let TcpNote::Data { conn: c, data } = n
                    && *c == conn
                {
                    v.extend_from_slice(data);
                }
            }
            v
        }

        /// Data segments `host` emitted: (stream offset of the first byte, len, tags, at).
        fn data_segs(&self, host: usize) -> Vec<(u32, usize, Vec<u32>, Ts)> {
            let isn = self
                .sent
                .iter()
                .find(|s| s.from == host && flags(&s.seg.packet) & TCP_SYN != 0)
                .map(|s| packet::tcp_info(&s.seg.packet).unwrap().1)
                .unwrap();
            self.sent
                .iter()
                .filter(|s| s.from == host && payload_len(&s.seg.packet) > 0)
                .map(|s| {
                    let (_, seq, len) = packet::tcp_info(&s.seg.packet).unwrap();
                    (
                        seq.wrapping_sub(isn.wrapping_add(1)),
                        len,
                        s.seg.tags.clone(),
                        s.at,
                    )
                })
                .collect()
        }

        /// Debug dump of every segment (TCP_TRACE=1).
        fn trace(&self) {
            for s in &self.sent {
                let p = &s.seg.packet;
                let (_, seq, len) = packet::tcp_info(p).unwrap();
                let off = usize::from(p[0] & 0x0f) * 4;
                let ack = u32::from_be_bytes(p[off + 8..off + 12].try_into().unwrap());
                eprintln!(
                    "{:>12} {} fl={:02x} seq={seq} ack={ack} win={} len={len} tags={:?}{}",
                    s.at.since(T0) / 1000,
                    if s.from == 0 { "A>B" } else { "B>A" },
                    flags(p),
                    window(p),
                    s.seg.tags,
                    if s.dropped { " DROP" } else { "" }
                );
            }
        }

        /// Connects A to B:443 and completes the handshake; (A's id, B's id).
        fn establish(&mut self) -> (ConnId, ConnId) {
            let now = self.now;
            self.hosts[0]
                .connect(now, ConnId(7), None, sa("10.0.0.2:443"))
                .unwrap();
            self.run_for(100 * MS);
            (ConnId(7), ConnId(ConnId::ACCEPTED_BIT | 1))
        }
    }

    #[test]
    fn time_converts_both_ways() {
        assert_eq!(to_instant(Ts(1_999)).total_micros(), 1);
        assert_eq!(to_instant(Ts(-1)).total_micros(), -1);
        assert_eq!(from_instant(Instant::from_micros(5)), Ts(5_000));
        let t = T0.add_nanos(877);
        assert!(from_instant(to_instant(t)) <= t);
        assert!(from_instant(to_instant(t)).add_nanos(1000) > t);
    }

    #[test]
    fn handshake_gives_connected_and_accepted() {
        let mut n = Net::pair(1);
        let port = n.hosts[0]
            .connect(n.now, ConnId(7), None, sa("10.0.0.2:443"))
            .unwrap();
        assert!(EPHEMERAL_PORTS.contains(&port));
        assert_eq!(n.hosts[0].next_deadline(), Some(T0));
        n.run_for(100 * MS);
        let a_local = SocketAddr::new("10.0.0.1".parse().unwrap(), port);
        assert_eq!(
            n.notes(0),
            vec![TcpNote::Connected {
                conn: ConnId(7),
                local: a_local
            }]
        );
        assert_eq!(
            n.notes(1),
            vec![TcpNote::Accepted {
                conn: ConnId(ConnId::ACCEPTED_BIT | 1),
                local: sa("10.0.0.2:443"),
                remote: a_local
            }]
        );
        let fl: Vec<u8> = n.sent.iter().map(|s| flags(&s.seg.packet)).collect();
        assert_eq!(fl, vec![TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK]);
        assert_eq!(n.notes[0][0].0, T0.add_nanos(20 * MS));
        assert_eq!(n.notes[1][0].0, T0.add_nanos(30 * MS));
        let (a, b) = (n.hosts[0].stats(), n.hosts[1].stats());
        assert_eq!((a.connected, a.live, b.accepted, b.live), (1, 1, 1, 1));
        // Idle: nothing is due.
        assert_eq!(n.hosts[0].next_deadline(), None);
        assert_eq!(n.hosts[1].next_deadline(), None);
    }

    #[test]
    fn byte_streams_arrive_exactly_both_ways() {
        let mut n = Net::pair(2);
        let (ca, cb) = n.establish();
        let up: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let down: Vec<u8> = (0..50_000u32).map(|i| (i * 13 + 5) as u8).collect();
        for c in up.chunks(7000) {
            n.hosts[0].send(n.now, ca, c, None).unwrap();
        }
        for c in down.chunks(333) {
            n.hosts[1].send(n.now, cb, c, None).unwrap();
        }
        n.run_for(10 * SEC);
        assert_eq!(n.stream(1, cb), up);
        assert_eq!(n.stream(0, ca), down);
        let (a, b) = (n.hosts[0].stats(), n.hosts[1].stats());
        assert_eq!((a.bytes_out, a.bytes_in), (100_000, 50_000));
        assert_eq!((b.bytes_out, b.bytes_in), (50_000, 100_000));
        assert_eq!(a.retransmits + b.retransmits, 0);
    }

    fn mss_split(mtu: usize, v6: bool) -> Vec<usize> {
        let (a, b) = if v6 {
            ("2001:db8::1", "2001:db8::2")
        } else {
            ("10.0.0.1", "10.0.0.2")
        };
        let mut b = TcpHost::new(b.parse().unwrap(), mtu, 2);
        b.listen(443);
        let mut n = Net::new(vec![TcpHost::new(a.parse().unwrap(), mtu, 1), b]);
        let remote = SocketAddr::new(n.hosts[1].ip(), 443);
        n.hosts[0].connect(n.now, ConnId(1), None, remote).unwrap();
        n.run_for(100 * MS);
        n.hosts[0]
            .send(n.now, ConnId(1), &[9u8; 4000], Some(1))
            .unwrap();
        n.run_for(SEC);
        assert_eq!(
            n.stream(1, ConnId(ConnId::ACCEPTED_BIT | 1)),
            vec![9u8; 4000]
        );
        n.data_segs(0).iter().map(|s| s.1).collect()
    }

    #[test]
    fn a_large_message_spans_segments_at_the_mss() {
        assert_eq!(mss_split(1500, false), vec![1460, 1460, 1080]);
        assert_eq!(
            mss_split(100, false),
            vec![536; 7].into_iter().chain([248]).collect::<Vec<_>>()
        );
        assert_eq!(mss_split(1280, true), vec![1220, 1220, 1220, 340]);
        assert_eq!(mss_split(9000, false), vec![4000]);
    }

    #[test]
    fn small_messages_share_segments() {
        let mut n = Net::pair(3);
        let (ca, cb) = n.establish();
        // Sent in the same instant: one segment.
        for i in 0..5u8 {
            n.hosts[0]
                .send(n.now, ca, &[i; 20], Some(u32::from(i)))
                .unwrap();
        }
        n.run_for(SEC);
        let segs = n.data_segs(0);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].1, 100);
        assert_eq!(segs[0].2, vec![0, 1, 2, 3, 4]);
        // Nagle: while one small segment is unacknowledged, later ones wait and coalesce.
        n.hosts[0].send(n.now, ca, b"first", Some(10)).unwrap();
        n.run_for(MS);
        n.hosts[0].send(n.now, ca, b"second", Some(11)).unwrap();
        n.run_for(MS);
        n.hosts[0].send(n.now, ca, b"third", Some(12)).unwrap();
        n.run_for(SEC);
        let segs = n.data_segs(0);
        let lens: Vec<usize> = segs.iter().map(|s| s.1).collect();
        assert_eq!(lens, vec![100, 5, 11]);
        assert_eq!(segs[2].2, vec![11, 12]);
        assert!(n.stream(1, cb).ends_with(b"firstsecondthird"));
    }

    #[test]
    fn tags_ride_on_the_segment_with_the_last_byte() {
        let mut n = Net::pair(4);
        let (ca, cb) = n.establish();
        let sizes = [100usize, 3000, 10, 2000, 1, 1459, 1, 7000];
        let mut ends = Vec::new();
        let mut total = 0u32;
        let mut all = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let msg = vec![i as u8; s];
            all.extend_from_slice(&msg);
            n.hosts[0].send(n.now, ca, &msg, Some(i as u32)).unwrap();
            total += s as u32;
            ends.push(total - 1);
        }
        // An untagged message and an empty tagged one add nothing.
        n.hosts[0].send(n.now, ca, b"xyz", None).unwrap();
        n.hosts[0].send(n.now, ca, b"", Some(99)).unwrap();
        all.extend_from_slice(b"xyz");
        n.run_for(2 * SEC);
        assert_eq!(n.stream(1, cb), all);
        let segs = n.data_segs(0);
        assert!(segs.len() > 5);
        let mut seen = Vec::new();
        for (start, len, tags, _) in segs {
            let want: Vec<u32> = (0..sizes.len() as u32)
                .filter(|&i| (start..start + len as u32).contains(&ends[i as usize]))
                .collect();
            assert_eq!(tags, want);
            seen.extend(tags);
        }
        assert_eq!(seen, (0..sizes.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn the_accepting_side_tags_too() {
        let mut n = Net::pair(15);
        let (_, cb) = n.establish();
        n.hosts[1].send(n.now, cb, &[5u8; 2000], Some(8)).unwrap();
        n.hosts[1].send(n.now, cb, b"tail", Some(9)).unwrap();
        n.run_for(SEC);
        let tags: Vec<(usize, Vec<u32>)> = n.data_segs(1).into_iter().map(|s| (s.1, s.2)).collect();
        assert_eq!(tags, vec![(1460, vec![]), (544, vec![8, 9])]);
    }

    #[test]
    fn a_lost_segment_is_retransmitted_with_its_tag() {
        let mut n = Net::pair(5);
        let (ca, cb) = n.establish();
        let mut dropped = false;
        n.drop = Box::new(move |from, s| {
            let hit = from == 0 && payload_len(&s.packet) > 0 && !dropped;
            dropped |= hit;
            hit
        });
        n.hosts[0].send(n.now, ca, &[3u8; 500], Some(42)).unwrap();
        n.run_for(5 * SEC);
        assert_eq!(n.stream(1, cb), vec![3u8; 500]);
        let segs = n.data_segs(0);
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].0, segs[0].1), (segs[1].0, segs[1].1));
        assert_eq!(segs[0].2, vec![42]);
        assert_eq!(segs[1].2, vec![42]);
        let rto = segs[1].3.since(segs[0].3);
        assert!((200 * MS..3 * SEC).contains(&rto), "rto {rto}");
        assert_eq!(n.hosts[0].stats().retransmits, 1);
    }

    #[test]
    fn fin_closes_both_sides_and_time_wait_ends() {
        let mut n = Net::pair(6);
        let (ca, cb) = n.establish();
        n.hosts[0].send(n.now, ca, b"bye", Some(1)).unwrap();
        n.hosts[0].close(n.now, ca);
        assert_eq!(
            n.hosts[0].send(n.now, ca, b"more", None),
            Err(TcpError::Closing)
        );
        n.run_for(SEC);
        assert_eq!(n.stream(1, cb), b"bye");
        assert_eq!(n.notes(0).last(), Some(&TcpNote::Closed { conn: ca }));
        assert_eq!(n.notes(1).last(), Some(&TcpNote::Closed { conn: cb }));
        let closes = |h: usize| {
            n.notes(h)
                .iter()
                .filter(|x| matches!(x, TcpNote::Closed { .. }))
                .count()
        };
        assert_eq!((closes(0), closes(1)), (1, 1));
        // The passive closer is gone; the active one waits in TIME-WAIT.
        assert_eq!(n.hosts[1].stats().live, 0);
        assert_eq!(n.hosts[0].stats().live, 1);
        assert!(n.hosts[0].next_deadline().is_some());
        n.run_for(15 * SEC);
        assert_eq!(n.hosts[0].stats().live, 0);
        assert_eq!(n.hosts[0].next_deadline(), None);
        assert_eq!(
            n.hosts[0].send(n.now, ca, b"x", None),
            Err(TcpError::UnknownConn)
        );
        let fins = n
            .sent
            .iter()
            .filter(|s| flags(&s.seg.packet) & 0x01 != 0)
            .count();
        assert_eq!(fins, 2);
        assert_eq!(
            n.hosts[0].stats().resets_sent + n.hosts[1].stats().resets_sent,
            0
        );
    }

    #[test]
    fn connect_to_a_closed_port_is_refused() {
        let mut n = Net::pair(7);
        n.hosts[0]
            .connect(n.now, ConnId(3), Some(5000), sa("10.0.0.2:444"))
            .unwrap();
        n.run_for(SEC);
        assert_eq!(n.notes(0), vec![TcpNote::ConnectFailed { conn: ConnId(3) }]);
        assert!(n.notes(1).is_empty());
        assert_eq!(n.sent.len(), 2);
        assert_eq!(flags(&n.sent[1].seg.packet), TCP_RST | TCP_ACK);
        let (a, b) = (n.hosts[0].stats(), n.hosts[1].stats());
        assert_eq!(
            (a.connect_failed, a.live, b.resets_sent, b.live),
            (1, 0, 1, 0)
        );
        // A stray ACK to a listening port gets a RST, not a connection; a RST gets nothing.
        let build = |ack: bool| {
            let mut v = Vec::new();
            let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(5555, 443, 1000, 1000);
            let b = if ack { b.ack(77) } else { b.rst() };
            b.write(&mut v, b"zz").unwrap();
            v
        };
        n.hosts[1].receive(n.now, &build(true));
        n.hosts[1].receive(n.now, &build(false));
        n.run_for(SEC);
        assert_eq!(n.sent.len(), 3);
        let rst = &n.sent[2].seg.packet;
        assert_eq!(flags(rst), TCP_RST);
        assert_eq!(packet::tcp_info(rst).unwrap().1, 77);
        assert_eq!(n.hosts[1].stats().live, 0);
    }

    #[test]
    fn connect_to_a_silent_host_fails_after_the_timeout() {
        let mut n = Net::pair(8);
        n.hosts[0]
            .connect(n.now, ConnId(4), None, sa("10.0.0.3:443"))
            .unwrap();
        n.run_for(60 * SEC);
        assert_eq!(n.notes(0), vec![TcpNote::ConnectFailed { conn: ConnId(4) }]);
        let at = n.notes[0][0].0.since(T0);
        assert!((20 * SEC..=30 * SEC).contains(&at), "{at}");
        let s = n.hosts[0].stats();
        assert!(s.retransmits >= 3, "{s:?}");
        assert!(n.sent.iter().all(|s| flags(&s.seg.packet) == TCP_SYN));
        assert_eq!((s.live, s.connect_failed, s.resets_sent), (0, 1, 0));
        assert_eq!(n.hosts[0].next_deadline(), None);
    }

    #[test]
    fn idle_connections_live_on_and_silent_peers_stall_out() {
        let mut n = Net::pair(9);
        let (ca, cb) = n.establish();
        n.run_for(600 * SEC);
        assert_eq!(n.hosts[0].stats().live, 1);
        assert_eq!(n.hosts[1].stats().live, 1);
        n.hosts[0].send(n.now, ca, b"ping", None).unwrap();
        n.run_for(SEC);
        assert_eq!(n.stream(1, cb), b"ping");
        // B vanishes: A's unacknowledged data makes it give up, silently.
        n.drop = Box::new(|from, _| from == 0);
        let t = n.now;
        n.hosts[0].send(n.now, ca, b"anyone?", None).unwrap();
        n.run_for(120 * SEC);
        assert_eq!(n.notes(0).last(), Some(&TcpNote::Closed { conn: ca }));
        let at = n.notes[0].last().unwrap().0.since(t);
        assert!((60 * SEC..70 * SEC).contains(&at), "{at}");
        let s = n.hosts[0].stats();
        assert_eq!((s.live, s.stalled, s.resets_sent), (0, 1, 0));
        assert!(s.retransmits > 3);
    }

    #[test]
    fn ipv6_connections_work() {
        let mut b = TcpHost::new("2001:db8::2".parse().unwrap(), 1500, 2);
        b.listen(80);
        let mut n = Net::new(vec![
            TcpHost::new("2001:db8::1".parse().unwrap(), 1500, 1),
            b,
        ]);
        n.hosts[0]
            .connect(n.now, ConnId(1), None, sa("[2001:db8::2]:80"))
            .unwrap();
        n.run_for(100 * MS);
        n.hosts[0]
            .send(n.now, ConnId(1), &[1u8; 5000], Some(5))
            .unwrap();
        n.run_for(SEC);
        assert_eq!(
            n.stream(1, ConnId(ConnId::ACCEPTED_BIT | 1)),
            vec![1u8; 5000]
        );
        assert_eq!(n.data_segs(0)[0].1, 1440);
    }

    #[test]
    fn api_errors() {
        let mut n = Net::pair(10);
        let h = &mut n.hosts[0];
        assert_eq!(
            h.connect(T0, ConnId(1), None, sa("[::1]:1")),
            Err(TcpError::FamilyMismatch)
        );
        assert_eq!(
            h.connect(T0, ConnId(1), None, sa("10.0.0.2:0")),
            Err(TcpError::Unaddressable)
        );
        assert_eq!(
            h.connect(T0, ConnId(1), None, sa("224.0.0.1:5")),
            Err(TcpError::Unaddressable)
        );
        assert_eq!(
            h.connect(T0, ConnId(1), Some(4000), sa("10.0.0.2:443")),
            Ok(4000)
        );
        assert_eq!(
            h.connect(T0, ConnId(1), Some(4001), sa("10.0.0.2:443")),
            Err(TcpError::ConnIdInUse)
        );
        assert_eq!(
            h.connect(T0, ConnId(2), Some(4000), sa("10.0.0.2:443")),
            Err(TcpError::PortInUse)
        );
        // Same local port, other remote: a new 4-tuple.
        assert_eq!(
            h.connect(T0, ConnId(2), Some(4000), sa("10.0.0.2:444")),
            Ok(4000)
        );
        assert_eq!(
            h.send(T0, ConnId(9), b"x", None),
            Err(TcpError::UnknownConn)
        );
        // Queued while connecting, up to the limit.
        let big = vec![0u8; MAX_PENDING_BYTES];
        assert_eq!(h.send(T0, ConnId(1), &big, Some(1)), Ok(()));
        assert_eq!(h.send(T0, ConnId(1), b"x", None), Err(TcpError::QueueFull));
        let mut bad = TcpHost::<u32>::new("0.0.0.0".parse().unwrap(), 1500, 1);
        assert_eq!(
            bad.connect(T0, ConnId(1), None, sa("10.0.0.2:1")),
            Err(TcpError::Unaddressable)
        );
        assert_eq!(TcpError::QueueFull.to_string(), "send queue full");
    }

    #[test]
    fn the_pending_queue_drains_through_the_tx_buffer() {
        let mut n = Net::pair(11);
        let data: Vec<u8> = (0..MAX_PENDING_BYTES as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        n.hosts[0]
            .connect(n.now, ConnId(7), None, sa("10.0.0.2:443"))
            .unwrap();
        n.hosts[0].send(n.now, ConnId(7), &data, Some(77)).unwrap();
        n.run_for(60 * SEC);
        assert_eq!(n.stream(1, ConnId(ConnId::ACCEPTED_BIT | 1)), data);
        let tagged: Vec<_> = n
            .data_segs(0)
            .into_iter()
            .filter(|s| !s.2.is_empty())
            .collect();
        assert_eq!(tagged.len(), 1);
        assert_eq!(
            tagged[0].0 as usize + tagged[0].1,
            MAX_PENDING_BYTES,
            "the tag is on the last segment"
        );
    }

    #[test]
    fn closing_while_connecting_drops_silently() {
        let mut n = Net::pair(12);
        n.hosts[0]
            .connect(n.now, ConnId(1), None, sa("10.0.0.3:443"))
            .unwrap();
        n.run_for(MS);
        n.hosts[0].close(n.now, ConnId(1));
        n.hosts[0].close(n.now, ConnId(99));
        n.run_for(60 * SEC);
        assert_eq!(n.sent.len(), 1);
        assert!(n.notes(0).is_empty());
        assert_eq!(n.hosts[0].stats().live, 0);
        assert_eq!(n.hosts[0].next_deadline(), None);
    }

    #[test]
    fn a_crashed_host_forgets_and_its_peer_gets_reset() {
        let mut n = Net::pair(13);
        let (ca, cb) = n.establish();
        n.hosts[0].send(n.now, ca, b"unsent", None).unwrap();
        n.hosts[0].abort_all();
        assert_eq!(n.hosts[0].stats().live, 0);
        assert_eq!(n.hosts[0].next_deadline(), None);
        let before = n.sent.len();
        n.run_for(SEC);
        assert_eq!(n.sent.len(), before);
        n.hosts[1].send(n.now, cb, b"hello?", None).unwrap();
        n.run_for(SEC);
        assert_eq!(n.notes(1).last(), Some(&TcpNote::Closed { conn: cb }));
        assert_eq!(n.hosts[0].stats().resets_sent, 1);
        assert_eq!(n.hosts[1].stats().live, 0);
        // The crashed host still listens (none here) and can connect again.
        assert!(
            n.hosts[0]
                .connect(n.now, ca, None, sa("10.0.0.2:443"))
                .is_ok()
        );
        n.run_for(SEC);
        assert!(matches!(n.notes(0).last(), Some(TcpNote::Connected { .. })));
    }

    #[test]
    fn ephemeral_ports_are_seeded_distinct_and_skip_listeners() {
        let mut h = TcpHost::<u32>::new("10.0.0.1".parse().unwrap(), 1500, 1);
        let first = h.connect(T0, ConnId(0), None, sa("10.0.0.2:1")).unwrap();
        h.listen(first.wrapping_add(1));
        let second = h.connect(T0, ConnId(1), None, sa("10.0.0.2:1")).unwrap();
        assert_ne!(second, first.wrapping_add(1));
        assert!(EPHEMERAL_PORTS.contains(&second) && second != first);
        let mut ports = BTreeSet::new();
        for i in 2..2000 {
            ports.insert(h.connect(T0, ConnId(i), None, sa("10.0.0.2:1")).unwrap());
        }
        assert_eq!(ports.len(), 1998);
        let mut other = TcpHost::<u32>::new("10.0.0.1".parse().unwrap(), 1500, 2);
        let o = other
            .connect(T0, ConnId(0), None, sa("10.0.0.2:1"))
            .unwrap();
        assert_ne!(o, first);
    }

    /// A short exchange; every packet's bytes.
    fn scenario(seed: u64) -> Vec<Vec<u8>> {
        let mut n = Net::pair(seed);
        let (ca, cb) = n.establish();
        n.hosts[0].send(n.now, ca, &[1u8; 3000], Some(1)).unwrap();
        n.hosts[1].send(n.now, cb, b"reply", Some(2)).unwrap();
        n.run_for(SEC);
        n.hosts[1].close(n.now, cb);
        n.run_for(20 * SEC);
        n.sent.into_iter().map(|s| s.seg.packet).collect()
    }

    #[test]
    fn same_seed_same_bytes() {
        let a = scenario(42);
        assert!(a.len() > 8);
        assert_eq!(a, scenario(42));
        assert_ne!(a, scenario(43));
    }

    #[test]
    fn many_connections_to_one_listener() {
        let mut n = Net::pair(14);
        for i in 0..300u64 {
            n.hosts[0]
                .connect(n.now, ConnId(i), None, sa("10.0.0.2:443"))
                .unwrap();
            n.hosts[0]
                .send(n.now, ConnId(i), &i.to_be_bytes(), None)
                .unwrap();
        }
        n.run_for(SEC);
        assert_eq!(n.hosts[1].stats().accepted, 300);
        let mut got = BTreeSet::new();
        for note in n.notes(1) {
            if let TcpNote::Data { data, .. } = note {
                got.insert(u64::from_be_bytes(data.try_into().unwrap()));
            }
        }
        assert_eq!(got, (0..300).collect());
        for i in 0..300u64 {
            n.hosts[0].close(n.now, ConnId(i));
        }
        n.run_for(30 * SEC);
        assert_eq!(n.hosts[0].stats().live, 0);
        assert_eq!(n.hosts[1].stats().live, 0);
    }

    /// Cost measurement (release: `cargo test --release --lib sim::tcp -- --ignored
    /// --nocapture`): packets through both stacks per wall-clock second.
    #[test]
    #[ignore]
    fn throughput_of_small_messages() {
        // One connection, 100-byte tagged messages pushed as fast as the queue takes them.
        let mut n = Net::pair(1);
        n.verify = false;
        let (ca, cb) = n.establish();
        let wall = std::time::Instant::now();
        let (mut sent, total) = (0u64, 20_000_000u64);
        while sent < total {
            while sent < total && n.hosts[0].send(n.now, ca, &[7u8; 100], Some(1)).is_ok() {
                sent += 100;
            }
            n.run_for(MS);
        }
        n.run_for(10 * SEC);
        let secs = wall.elapsed().as_secs_f64();
        assert_eq!(n.stream(1, cb).len() as u64, total);
        eprintln!(
            "bulk: {} packets, {} MB in {secs:.2} s wall: {:.0} packets/s, {:.0} messages/s",
            n.sent.len(),
            total / 1_000_000,
            n.sent.len() as f64 / secs,
            (total / 100) as f64 / secs
        );
        // 1000 connections, each sending one 100-byte message every 100 ms, for 10 s.
        let mut n = Net::pair(2);
        n.verify = false;
        for i in 0..1000u64 {
            let now = n.now;
            n.hosts[0]
                .connect(now, ConnId(i), None, sa("10.0.0.2:443"))
                .unwrap();
        }
        n.run_for(SEC);
        let wall = std::time::Instant::now();
        let before = n.sent.len();
        for round in 0..100 {
            for i in 0..1000u64 {
                let now = n.now;
                n.hosts[0]
                    .send(now, ConnId(i), &[1u8; 100], Some(round))
                    .unwrap();
                if i % 10 == 9 {
                    n.run_for(MS);
                }
            }
        }
        n.run_for(SEC);
        let secs = wall.elapsed().as_secs_f64();
        let pkts = n.sent.len() - before;
        assert_eq!(n.hosts[1].stats().bytes_in, 100 * 1000 * 100);
        eprintln!(
            "1000 conns: {pkts} packets in {secs:.2} s wall: {:.0} packets/s",
            pkts as f64 / secs
        );
    }

    /// A sends tagged messages `sizes` (3 ms apart), B answers `back`, while the non-SYN
    /// segments are dropped as `loss` says; both streams and every tag must arrive. `false`
    /// (nothing checked) when the handshake's last ACK was lost, so B had not accepted yet.
    fn lossy_exchange(sizes: &[usize], back: &[usize], loss: Vec<bool>, seed: u64) -> bool {
        let mut n = Net::pair(seed);
        let mut k = 0usize;
        n.drop = Box::new(move |_, s| {
            // The handshake is kept reliable (its give-up is tested elsewhere).
            if flags(&s.packet) & TCP_SYN != 0 {
                return false;
            }
            k += 1;
            loss.get(k - 1).copied().unwrap_or(false)
        });
        let (ca, cb) = n.establish();
        if n.hosts[1].stats().accepted != 1 {
            return false;
        }
        let mut up = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let msg: Vec<u8> = (0..s).map(|j| (i * 31 + j) as u8).collect();
            up.extend_from_slice(&msg);
            n.hosts[0].send(n.now, ca, &msg, Some(i as u32)).unwrap();
            n.run_for(3 * MS);
        }
        let mut down = Vec::new();
        for (i, &s) in back.iter().enumerate() {
            let msg = vec![i as u8 ^ 0xaa; s];
            down.extend_from_slice(&msg);
            n.hosts[1].send(n.now, cb, &msg, None).unwrap();
        }
        n.run_for(120 * SEC);
        if std::env::var_os("TCP_TRACE").is_some() {
            n.trace();
        }
        let got = n.stream(1, cb);
        assert_eq!(
            got.len(),
            up.len(),
            "stats {:?} {:?}",
            n.hosts[0].stats(),
            n.hosts[1].stats()
        );
        assert_eq!(got, up);
        assert_eq!(n.stream(0, ca), down);
        // Every tag reached the receiver on some delivered segment.
        let mut tags: Vec<u32> = n
            .sent
            .iter()
            .filter(|s| !s.dropped)
            .flat_map(|s| s.seg.tags.clone())
            .collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags, (0..sizes.len() as u32).collect::<Vec<_>>());
        true
    }

    /// B's ACK of a full receive buffer advertises a zero window and the window update
    /// after it is lost: smoltcp alone would never send again; our probes recover.
    #[test]
    fn zero_window_probes_recover_a_lost_window_update() {
        // MSS 1024: sixteen segments fill B's 16 KiB window exactly.
        let a = TcpHost::new("10.0.0.1".parse().unwrap(), 1064, 5);
        let mut b = TcpHost::new("10.0.0.2".parse().unwrap(), 1064, 6);
        b.listen(443);
        let mut n = Net::new(vec![a, b]);
        let (ca, cb) = n.establish();
        // A's first data segment is lost, so the rest wait out of order in B's buffer and
        // the retransmission completes all 16 KiB at once; then B's packets are lost from
        // its zero-window ACK (kept) until A probes.
        let (mut first, mut zero, mut probed) = (true, false, false);
        n.drop = Box::new(move |from, s| {
            let len = payload_len(&s.packet);
            if from == 0 {
                probed |= zero && len == 1;
                let drop = first && len > 0;
                first &= !drop;
                return drop;
            }
            if window(&s.packet) == 0 {
                zero = true;
                return false;
            }
            zero && !probed
        });
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        n.hosts[0].send(n.now, ca, &data, Some(1)).unwrap();
        n.run_for(5 * SEC);
        assert_eq!(
            n.stream(1, cb).len(),
            data.len(),
            "{:?}",
            n.hosts[0].stats()
        );
        assert_eq!(n.stream(1, cb), data);
        let zero_at = n
            .sent
            .iter()
            .find(|s| s.from == 1 && window(&s.seg.packet) == 0)
            .map(|s| s.at.add_nanos(n.delay))
            .unwrap();
        // Probes: one byte just below the acknowledged edge (16 KiB), no tag, backing off.
        let probes: Vec<_> = n
            .data_segs(0)
            .into_iter()
            .filter(|s| s.0 == 16 * 1024 - 1 && s.1 == 1)
            .collect();
        assert!(probes.iter().all(|p| p.2.is_empty()));
        // (ms, rounded: smoltcp's clock has microseconds)
        let times: Vec<i64> = probes
            .iter()
            .map(|p| (p.3.since(zero_at) + MS / 2) / MS)
            .collect();
        assert_eq!(times, vec![200, 600, 1400]);
        let s = n.hosts[0].stats();
        assert_eq!(s.window_probes, 3);
        assert_eq!(s.retransmits, 16, "the go-back-N resend only: {s:?}");
        // Data moved again: probing is off, the idle connection stays silent.
        let before = n.sent.len();
        n.run_for(600 * SEC);
        assert_eq!(n.sent.len(), before);
        assert_eq!(n.hosts[0].next_deadline(), None);
        assert_eq!(n.hosts[0].stats().live, 1);
    }

    /// The case proptest found (proptest-regressions/sim/tcp.txt), as a plain test: B's ACK
    /// of all but the last byte closed its window and the window update was lost.
    #[test]
    fn random_loss_regression_last_byte_behind_a_zero_window() {
        let loss: Vec<bool> = [6, 7, 13, 21, 22, 32, 39, 47, 50, 63, 72, 80, 84]
            .iter()
            .fold(vec![false; 86], |mut v, &i| {
                v[i] = true;
                v
            });
        assert!(lossy_exchange(
            &[
                325, 1460, 2346, 2425, 4221, 2022, 1168, 2418, 1694, 780, 3691
            ],
            &[2555, 2868, 2650, 2148],
            loss,
            3147500027690506442,
        ));
    }

    /// A second case proptest found: with an acknowledgment number past 2^31, smoltcp's
    /// SACK ranges (`AssemblerIter`) add the sequence number, cast from a negative `i32`,
    /// to the range and rely on the sum wrapping; built with overflow checks that panicked
    /// (Cargo.toml turns them off for smoltcp alone, as in release builds).
    #[test]
    fn random_loss_regression_sack_past_2_to_the_31() {
        let mut loss = vec![false; 13];
        loss[4] = true;
        assert!(lossy_exchange(
            &[4103, 1772, 963, 2582, 881, 3551, 2208],
            &[],
            loss,
            12386011884700614334,
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn streams_survive_random_loss(
            sizes in proptest::collection::vec(1usize..5000, 1..20),
            back in proptest::collection::vec(1usize..3000, 0..5),
            loss in proptest::collection::vec(proptest::bool::weighted(0.2), 0..120),
            seed in any::<u64>(),
        ) {
            prop_assume!(lossy_exchange(&sizes, &back, loss, seed));
        }

        #[test]
        fn garbage_never_panics(
            junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..30),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..20),
        ) {
            let mut n = Net::pair(1);
            let (ca, _) = n.establish();
            n.hosts[0].send(n.now, ca, b"data", Some(1)).unwrap();
            n.run_for(MS);
            let pkts: Vec<Vec<u8>> = n.sent.iter().map(|s| s.seg.packet.clone()).collect();
            for j in &junk {
                let mut p = j.clone();
                // Half of them addressed to B, so they get past the address check.
                if p.len() >= 20 && p[0] & 1 == 0 {
                    p[0] = 0x45;
                    p[9] = 6;
                    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
                }
                n.hosts[1].receive(n.now, &p);
            }
            for (i, (at, v)) in flips.iter().enumerate() {
                let mut p = pkts[i % pkts.len()].clone();
                let at = 20 + at % (p.len() - 20);
                p[at] = *v;
                if i % 2 == 0 {
                    fix_tcp_checksum(&mut p);
                }
                n.hosts[1].receive(n.now, &p);
                n.hosts[0].receive(n.now, &p);
            }
            n.run_for(30 * SEC);
        }
    }
}
