//! The Skylark client (ordinary client, PROTOCOL.md §8.1, §8.2, §8.5–§8.7, §7, §10) as a
//! sans-IO state machine: login (version check, UDP then TCP host-cache probes in rounds,
//! STUN NAT discovery, challenge–response AUTH, REGISTER, fallback probes), the ONLINE
//! steady state (keepalive, UDP re-poll, hourly full refresh, presence), lookups, calls with
//! media over direct UDP / relayed UDP / relayed TCP, hold, and conferences with an elected
//! mixer.
//!
//! Submodules: [`host_cache`] (persistent state), `login` (login and steady state), `call`
//! (lookups, calls, media, conferences). Design notes per state machine are in those files.
//!
//! Guarantees: time only from [`Input`], randomness only from a ChaCha8 RNG seeded with
//! `ClientConfig::seed`, so a run is reproducible; every table is bounded (`MAX_*`);
//! malformed or unexpected input is dropped and counted in [`ClientStats`], never a panic;
//! every send carries its ground-truth label. Must not: open sockets, read clocks or touch
//! the filesystem outside [`Client::new`] / [`Client::save`].

mod call;
pub mod host_cache;
mod login;
mod promote;
#[cfg(test)]
mod tests;

use super::PeerError;
use super::auth::HashParams;
use super::io::{ConnId, Input, Listen, Node, Output, TcpEvent};
use super::outbox::Outbox;
use super::stream::{FrameReader, drain_frames};
use super::truth::Role;
use crate::time::Ts;
use dissectors::skylark::codec::Message;
use dissectors::skylark::header::Flags;
use dissectors::skylark::messages::MsgType;
use dissectors::skylark::object::Object;
use host_cache::ClientState;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use call::{MixerCandidate, elect_mixer, synth_frame};
pub use host_cache::{HostCache, MAX_HOST_CACHE, SavedCredential};
pub use promote::{MAX_UNDECIDED, SN_CONN_BIT};

/// TCP connections the client keeps at once (SN session, LS, probes, HTTP, calls, relays,
/// accepted peers); beyond it new accepted connections are closed at once.
pub const MAX_CONNS: usize = 64;
/// Bytes of an HTTP response the client reads (the version check answer is tiny).
pub const MAX_HTTP_RESPONSE: usize = 4096;
/// Users in the buddy list kept (PROTOCOL.md §6.2: presence-query asks at most 256).
pub const MAX_BUDDIES: usize = 256;
/// An accepted connection that carries no call is closed after this long (a peer that
/// connects and stays silent must not hold one of the [`MAX_CONNS`] slots).
pub const MAX_IDLE_ACCEPTED_S: u64 = 30;
/// Words of one command.
pub const MAX_COMMAND_WORDS: usize = 16;

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000_000_000;
/// "No timer armed": far in the future, yet safe to add to.
const FAR: Ts = Ts(i64::MAX / 2);

/// Client configuration; every timer has its PROTOCOL.md §8.9 default.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The user name (also the node name in labels and events).
    pub name: String,
    pub password: String,
    /// UDP and TCP listen address (the install-time random port).
    pub addr: SocketAddr,
    pub state_dir: Option<PathBuf>,
    pub login_server: SocketAddr,
    pub home: SocketAddr,
    /// Used when the host cache is empty.
    pub bootstrap: Vec<SocketAddr>,
    pub version: String,
    /// The login server's Ed25519 public key, when known: a saved credential that does not
    /// verify with it is not used (AUTH runs instead).
    pub ls_key: Option<[u8; 32]>,
    /// Telemetry POST period (§10.2); `None` disables it.
    pub telemetry_period_s: Option<u64>,
    /// Accept incoming calls at once (lab, simulation).
    pub auto_answer: bool,
    pub seed: u64,
    /// Argon2 parameters assumed when an auth-challenge does not carry them.
    pub hash_params_fallback: HashParams,
    pub probe_rate_per_s: u32,
    pub udp_probe_wait_ms: u64,
    pub tcp_connect_timeout_ms: u64,
    pub round_pause_ms: u64,
    pub login_rounds: u32,
    pub udp_blocked_threshold: usize,
    pub stun_rto_ms: u64,
    pub stun_transmissions: u32,
    pub nat_discovery_ms: u64,
    pub ls_response_wait_ms: u64,
    pub reauth_margin_s: u64,
    pub register_wait_ms: u64,
    pub fallback_nodes: usize,
    pub fallback_wait_ms: u64,
    pub keepalive_period_s: u64,
    pub keepalive_ack_wait_s: u64,
    pub repoll_period_s: u64,
    pub fallback_max_misses: u32,
    pub full_refresh_s: u64,
    pub presence_period_s: u64,
    pub lookup_deadline_ms: u64,
    pub lookup_cache_s: u64,
    pub ringing_wait_s: u64,
    pub caller_ring_timeout_s: u64,
    pub answer_timeout_s: u64,
    /// 20, 30 or 60.
    pub frame_ms: u32,
    /// Redundant frames per voice message, 0–4.
    pub redundancy: u32,
    pub hold_keepalive_ms: u64,
    pub no_media_fallback_ms: u64,
    /// Declared uplink, for the conference mixer election and promotion.
    pub uplink_kbps: u32,
    /// Super-node promotion (PROTOCOL.md §8.10) allowed at all.
    pub promotion: bool,
    /// Uptime before a client may be promoted (§8.10).
    pub promotion_uptime_s: u64,
    /// Declared uplink a client needs to be promoted (§8.10).
    pub promotion_min_uplink_kbps: u32,
    /// Registered clients the promoted node's SN role accepts (§8.10).
    pub promoted_capacity: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
        ClientConfig {
            name: "alice".into(),
            password: String::new(),
            addr: lo(40000),
            state_dir: None,
            login_server: lo(dissectors::skylark::LOGIN_SERVER_PORT),
            home: lo(80),
            bootstrap: vec![lo(dissectors::skylark::BOOTSTRAP_PORT)],
            version: "1.0.0".into(),
            ls_key: None,
            telemetry_period_s: None,
            auto_answer: false,
            seed: 0,
            hash_params_fallback: HashParams::DEFAULT,
            probe_rate_per_s: 50,
            udp_probe_wait_ms: 5000,
            tcp_connect_timeout_ms: 5000,
            round_pause_ms: 6000,
            login_rounds: 5,
            udp_blocked_threshold: 30,
            stun_rto_ms: 500,
            stun_transmissions: 3,
            nat_discovery_ms: 5000,
            ls_response_wait_ms: 10_000,
            reauth_margin_s: 3600,
            register_wait_ms: 10_000,
            fallback_nodes: 22,
            fallback_wait_ms: 5000,
            keepalive_period_s: 60,
            keepalive_ack_wait_s: 15,
            repoll_period_s: 20,
            fallback_max_misses: 3,
            full_refresh_s: 3600,
            presence_period_s: 300,
            lookup_deadline_ms: 10_000,
            lookup_cache_s: 300,
            ringing_wait_s: 10,
            caller_ring_timeout_s: 65,
            answer_timeout_s: 60,
            frame_ms: 30,
            redundancy: 0,
            hold_keepalive_ms: 333,
            no_media_fallback_ms: 3000,
            uplink_kbps: 512,
            promotion: true,
            promotion_uptime_s: 3600,
            promotion_min_uplink_kbps: 256,
            promoted_capacity: 100,
        }
    }
}

/// Counters of what the client dropped or did; never reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams or frames that failed to parse (TCP: the connection was closed).
    pub malformed: u64,
    /// Well-formed messages that did not fit the current state.
    pub unexpected: u64,
    /// Inputs on unknown connections, or commands that could not be run.
    pub ignored: u64,
    pub login_rounds: u64,
    pub logins: u64,
    pub sn_lost: u64,
    pub voice_sent: u64,
    pub voice_received: u64,
    pub keepalives_sent: u64,
    pub hold_keepalives_sent: u64,
    pub calls_set_up: u64,
}

/// NAT type (PROTOCOL.md §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NatType {
    #[default]
    Unknown,
    Public,
    Cone,
    Symmetric,
    UdpBlocked,
}

impl NatType {
    pub fn code(self) -> u32 {
        match self {
            NatType::Unknown => 0,
            NatType::Public => 1,
            NatType::Cone => 2,
            NatType::Symmetric => 3,
            NatType::UdpBlocked => 4,
        }
    }

    pub fn from_code(c: u32) -> NatType {
        match c {
            1 => NatType::Public,
            2 => NatType::Cone,
            3 => NatType::Symmetric,
            4 => NatType::UdpBlocked,
            _ => NatType::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NatType::Unknown => "unknown",
            NatType::Public => "public",
            NatType::Cone => "cone",
            NatType::Symmetric => "symmetric",
            NatType::UdpBlocked => "udp-blocked",
        }
    }
}

/// What a TCP connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnKind {
    HttpVersion,
    HttpTelemetry,
    Ls,
    /// PROBE_TCP (becomes the SN session if the probe answers and registration follows).
    Probe,
    /// The SN session (REGISTER, then ONLINE).
    Sn,
    /// Outgoing direct signalling to a callee.
    PeerOut,
    /// Accepted from a peer (direct invite, conference join).
    PeerIn,
    /// A relayed-TCP media leg.
    Relay,
}

#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    remote: SocketAddr,
    up: bool,
    /// When the connection was opened or accepted.
    opened: Ts,
    reader: FrameReader,
    http: Vec<u8>,
}

/// The Skylark client role.
pub struct Client {
    cfg: ClientConfig,
    out: Outbox,
    rng: ChaCha8Rng,
    stats: ClientStats,
    state: ClientState,
    node_id: u64,
    next_txn: u32,
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    now: Ts,
    started: Option<Ts>,
    login: login::Login,
    calls: call::Calls,
    promo: promote::Promotion,
}

impl Client {
    /// Builds a client, loading its state from `state_dir` when given (a missing file is a
    /// first start: a fresh node id is drawn).
    pub fn new(cfg: ClientConfig) -> Result<Client, PeerError> {
        if cfg.name.is_empty() || cfg.name.len() > super::auth::MAX_USER_LEN {
            return Err(PeerError::Config("user name must be 1-64 bytes".into()));
        }
        if ![20, 30, 60].contains(&cfg.frame_ms) {
            return Err(PeerError::Config("frame_ms must be 20, 30 or 60".into()));
        }
        if cfg.redundancy as usize > dissectors::skylark::MAX_REDUNDANCY {
            return Err(PeerError::Config("redundancy must be 0-4".into()));
        }
        let mut state = match &cfg.state_dir {
            Some(d) => ClientState::load(d)?,
            None => ClientState::default(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let node_id = *state.node_id.get_or_insert_with(|| rng.random::<u64>());
        let next_txn = rng.random::<u32>();
        Ok(Client {
            out: Outbox::new(cfg.name.clone(), Role::Client),
            login: login::Login::default(),
            calls: call::Calls::default(),
            promo: promote::Promotion::default(),
            cfg,
            rng,
            stats: ClientStats::default(),
            state,
            node_id,
            next_txn,
            next_conn: 1,
            conns: HashMap::new(),
            now: Ts(0),
            started: None,
        })
    }

    /// Writes the host cache, node id and credential to `state_dir` (no-op without one).
    pub fn save(&self) -> Result<(), PeerError> {
        match &self.cfg.state_dir {
            Some(d) => self.state.save(d),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn host_cache(&self) -> &HostCache {
        &self.state.host_cache
    }

    pub fn credential(&self) -> Option<&SavedCredential> {
        self.state.credential.as_ref()
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn nat_type(&self) -> NatType {
        self.login.nat
    }

    /// The SN this client is registered with, when ONLINE.
    pub fn super_node(&self) -> Option<SocketAddr> {
        self.login.sn.map(|s| s.addr)
    }

    /// Whether the client is logged in.
    pub fn is_online(&self) -> bool {
        self.login.is_online()
    }

    fn txn(&mut self) -> u32 {
        self.next_txn = self.next_txn.wrapping_add(1);
        self.next_txn
    }

    /// A request of type `t` with the next transaction id (PROTOCOL.md §5.2: incremented
    /// per request).
    fn request(&mut self, t: MsgType, objects: Vec<Object>) -> Message {
        let txn = self.txn();
        Message::new(t, Flags::REQUEST, txn, objects)
    }

    fn new_conn(&mut self, kind: ConnKind, remote: SocketAddr) -> Option<ConnId> {
        if self.conns.len() >= MAX_CONNS {
            self.stats.ignored += 1;
            return None;
        }
        let id = ConnId(self.next_conn & !ConnId::ACCEPTED_BIT);
        self.next_conn = self.next_conn.wrapping_add(1);
        self.conns.insert(
            id,
            Conn {
                kind,
                remote,
                up: false,
                opened: self.now,
                reader: FrameReader::default(),
                http: Vec::new(),
            },
        );
        let from = Some(SocketAddr::new(self.cfg.addr.ip(), 0));
        self.out.connect(id, from, remote);
        Some(id)
    }

    fn close_conn(&mut self, id: ConnId) {
        if self.conns.remove(&id).is_some() {
            self.out.close(id);
        }
    }

    fn conn_kind(&self, id: ConnId) -> Option<ConnKind> {
        self.conns.get(&id).map(|c| c.kind)
    }

    fn unix_now(&self) -> u64 {
        u64::try_from(self.now.as_nanos() / SEC).unwrap_or(0)
    }

    /// Sends a Skylark message on a TCP connection that is up (counted otherwise).
    fn send_tcp(&mut self, conn: ConnId, msg: &Message) {
        let home = self.conn_kind(conn) == Some(ConnKind::Ls);
        if self.conns.get(&conn).is_some_and(|c| c.up) {
            self.out.tcp(self.now, conn, home, msg);
        } else {
            self.stats.ignored += 1;
        }
    }

    fn send_udp(&mut self, to: SocketAddr, msg: &Message) {
        let dst = super::outbox::Dest { to, home: false };
        self.out.udp(self.now, self.cfg.addr, dst, msg);
    }

    /// Fires every timer due at `now`.
    fn on_time(&mut self, now: Ts) {
        if now > self.now {
            self.now = now;
        }
        if self.started.is_none() {
            self.started = Some(self.now);
            self.login_start();
        }
        self.login_timers();
        self.call_timers();
        self.sweep_idle_accepted();
        self.promotion_timers();
    }

    fn idle_accepted_deadline(&self, c: &Conn) -> Ts {
        c.opened.add_nanos(secs(MAX_IDLE_ACCEPTED_S))
    }

    fn sweep_idle_accepted(&mut self) {
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                c.kind == ConnKind::PeerIn
                    && self.idle_accepted_deadline(c) <= self.now
                    && !self.conn_in_use(**id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.stats.ignored += 1;
            self.close_conn(id);
        }
    }

    fn next_deadline(&self) -> Ts {
        if self.started.is_none() {
            return Ts(0);
        }
        let idle = self
            .conns
            .iter()
            .filter(|(id, c)| c.kind == ConnKind::PeerIn && !self.conn_in_use(**id))
            .map(|(_, c)| self.idle_accepted_deadline(c))
            .min()
            .unwrap_or(FAR);
        self.login_deadline()
            .min(self.calls_deadline())
            .min(idle)
            .min(self.promotion_deadline())
    }

    fn on_udp(&mut self, from: SocketAddr, data: &[u8]) {
        match data.first() {
            Some(0x53) => match Message::parse(data) {
                Ok(m) => self.on_udp_msg(from, m),
                Err(_) => self.stats.malformed += 1,
            },
            Some(0x00..=0x03) => match dissectors::stun::StunMessage::parse(data) {
                Ok(m) => self.on_stun(from, &m),
                Err(_) => self.stats.malformed += 1,
            },
            _ => self.stats.malformed += 1,
        }
    }

    fn on_udp_msg(&mut self, from: SocketAddr, m: Message) {
        match m.msg_type {
            MsgType::HcProbeAck => self.on_hc_probe_ack(from, &m),
            MsgType::FallbackProbeAck => self.on_fallback_ack(from, &m),
            MsgType::NatPong => self.on_nat_pong(from, &m),
            MsgType::NatPing if !m.flags.is_response() => self.answer_nat_ping(from, &m),
            MsgType::FallbackProbe if !m.flags.is_response() => self.answer_fallback(from, &m),
            MsgType::Voice | MsgType::Mix | MsgType::HoldKeepalive => {
                self.on_media(Some(from), None, &m)
            }
            _ => self.stats.unexpected += 1,
        }
    }

    fn on_tcp(&mut self, conn: ConnId, event: TcpEvent<'_>) {
        match event {
            TcpEvent::Accepted { local, remote } => {
                if self.conns.len() >= MAX_CONNS || self.conns.contains_key(&conn) {
                    self.stats.ignored += 1;
                    self.out.close(conn);
                    return;
                }
                self.conns.insert(
                    conn,
                    Conn {
                        kind: ConnKind::PeerIn,
                        remote,
                        up: true,
                        opened: self.now,
                        reader: FrameReader::default(),
                        http: Vec::new(),
                    },
                );
                self.out.conn_up(conn, local, remote);
            }
            TcpEvent::Connected { local } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    self.stats.ignored += 1;
                    return;
                };
                c.up = true;
                let (kind, remote) = (c.kind, c.remote);
                self.out.conn_up(conn, local, remote);
                self.on_connected(conn, kind);
            }
            TcpEvent::ConnectFailed | TcpEvent::Closed => {
                let Some(c) = self.conns.remove(&conn) else {
                    self.stats.ignored += 1;
                    return;
                };
                self.out.conn_down(conn);
                self.on_conn_lost(conn, c);
            }
            TcpEvent::Data(bytes) => self.on_tcp_data(conn, bytes),
        }
    }

    fn on_tcp_data(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            self.stats.ignored += 1;
            return;
        };
        if matches!(c.kind, ConnKind::HttpVersion | ConnKind::HttpTelemetry) {
            let room = MAX_HTTP_RESPONSE.saturating_sub(c.http.len());
            c.http
                .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
            self.on_http_data(conn);
            return;
        }
        c.reader.push(bytes);
        if drain_frames(
            self,
            |s: &mut Self| s.conns.get_mut(&conn).map(|c| (&mut c.reader, c.kind)),
            |s, kind, m| s.on_tcp_msg(conn, kind, m),
        )
        .is_err()
        {
            // PROTOCOL.md §2.3: a peer closes a connection that is out of sync.
            self.stats.malformed += 1;
            if let Some(c) = self.conns.remove(&conn) {
                self.out.close(conn);
                self.on_conn_lost(conn, c);
            }
        }
    }

    fn on_connected(&mut self, conn: ConnId, kind: ConnKind) {
        match kind {
            ConnKind::HttpVersion | ConnKind::HttpTelemetry => self.http_send(conn, kind),
            ConnKind::Ls => self.auth_connected(conn),
            ConnKind::Probe => self.probe_connected(conn),
            ConnKind::Sn => self.register_connected(conn),
            ConnKind::PeerOut | ConnKind::PeerIn => self.peer_connected(conn),
            ConnKind::Relay => self.relay_connected(conn),
        }
    }

    fn on_conn_lost(&mut self, conn: ConnId, c: Conn) {
        match c.kind {
            ConnKind::HttpVersion => self.version_check_done(),
            ConnKind::HttpTelemetry => {}
            ConnKind::Ls => self.auth_conn_lost(conn),
            ConnKind::Probe => self.probe_conn_lost(conn),
            ConnKind::Sn => self.sn_conn_lost(conn),
            ConnKind::PeerOut | ConnKind::PeerIn | ConnKind::Relay => self.call_conn_lost(conn),
        }
    }

    fn on_tcp_msg(&mut self, conn: ConnId, kind: ConnKind, m: Message) {
        match kind {
            ConnKind::Ls => self.on_ls_msg(conn, &m),
            ConnKind::Probe => self.on_probe_msg(conn, &m),
            ConnKind::Sn => self.on_sn_msg(conn, m),
            ConnKind::PeerOut | ConnKind::PeerIn | ConnKind::Relay => self.on_peer_msg(conn, m),
            ConnKind::HttpVersion | ConnKind::HttpTelemetry => self.stats.unexpected += 1,
        }
    }

    fn on_command(&mut self, words: &[String]) {
        let words: Vec<&str> = words
            .iter()
            .take(MAX_COMMAND_WORDS)
            .map(String::as_str)
            .collect();
        match words.as_slice() {
            ["lookup", user] => self.cmd_lookup(user),
            ["call", user] => self.cmd_call(user),
            ["hold"] => self.cmd_hold(true),
            ["resume"] => self.cmd_hold(false),
            ["hangup"] => self.cmd_hangup(),
            ["answer"] => self.cmd_answer(true),
            ["reject"] => self.cmd_answer(false),
            ["conference", users @ ..] if !users.is_empty() => self.cmd_conference(users),
            ["status"] => self.cmd_status(),
            _ => {
                self.stats.ignored += 1;
                let what = format!("unknown command: {}", words.join(" "));
                self.note(what);
            }
        }
    }

    fn note(&mut self, what: String) {
        self.out
            .event(self.now, super::truth::EventKind::Note { what });
    }

    fn cmd_status(&mut self) {
        let what = format!(
            "status: phase={} sn={} nat={} reflexive={} fallback={} host-cache={} calls={} voice sent={} received={}",
            self.login.phase_name(),
            self.login
                .sn
                .map(|s| s.addr.to_string())
                .unwrap_or_else(|| "-".into()),
            self.login.nat.as_str(),
            self.login
                .reflexive
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            self.login.fallback.len(),
            self.state.host_cache.len(),
            self.calls.summary(),
            self.stats.voice_sent,
            self.stats.voice_received,
        );
        self.note(what);
    }
}

impl Node for Client {
    fn listen(&self) -> Listen {
        Listen {
            udp: vec![self.cfg.addr],
            tcp: vec![self.cfg.addr],
        }
    }

    fn handle_input(&mut self, input: Input<'_>) {
        let now = input.now();
        self.on_time(now);
        match input {
            Input::Timeout(_) => {}
            Input::Udp {
                now,
                local,
                from,
                data,
            } => {
                if !self.route_udp(now, local, from, data) {
                    self.on_udp(from, data)
                }
            }
            Input::Tcp { now, conn, event } => {
                if !self.route_tcp(now, conn, &event) {
                    self.on_tcp(conn, event)
                }
            }
            Input::Command { words, .. } => self.on_command(&words),
        }
    }

    fn poll_output(&mut self) -> Output {
        // The SN role first: its deadline must be known before the client's is computed.
        if let Some(o) = self.poll_sn() {
            return o;
        }
        let next = self.next_deadline();
        self.out.poll(next)
    }
}

/// Milliseconds to nanoseconds, saturating.
fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX / MS).saturating_mul(MS)
}

/// Seconds to nanoseconds, saturating.
fn secs(v: u64) -> i64 {
    i64::try_from(v)
        .unwrap_or(i64::MAX / SEC)
        .saturating_mul(SEC)
}

fn min_opt(a: Ts, b: Option<Ts>) -> Ts {
    b.map_or(a, |b| a.min(b))
}
