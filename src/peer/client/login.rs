//! Client login (PROTOCOL.md §8.1), NAT discovery (§8.2), the ONLINE steady state (§8.5)
//! and phone home (§10).
//!
//! Login is one `Phase` at a time:
//!
//! ```text
//! Start ─► VersionCheck ─► ProbeUdp ─(acks)─► [NAT discovery] ─► Auth? ─► Register ─► Online
//!                            │ no ack            ▲                         (+ fallback probes)
//!                            ▼                   │      Register: all SNs refuse / time out
//!                         ProbeTcp ─(ack)────────┘        └─► Pause 6 s ─► next round
//!                            │ nothing answers
//!                            └─► Pause 6 s ─► next round (ProbeUdp, or ProbeTcp once UDP is
//!                                known blocked); after 5 rounds: Failed (LOGIN_FAILED event)
//! ```
//!
//! - VERSION_CHECK (HTTP GET to the home server) waits for the answer, the connection's
//!   failure or `tcp_connect_timeout_ms`, whichever comes first; its failure never stops
//!   login (§8.1 step 1).
//! - PROBE_UDP paces `hc-probe`s at `probe_rate_per_s` and waits `udp_probe_wait_ms` after
//!   the last; the wait ends early once every target answered, or two did (enough for NAT
//!   discovery) — so a typical login takes the 3–7 s of §8.1, not always 5 s more.
//! - NAT discovery runs STUN Binding transactions to the first two answering SNs with
//!   different IPs in parallel (RTO doubling, `stun_transmissions` sends, §8.2). With no
//!   STUN answer but an `hc-probe-ack` over UDP, the hc-probe reflexive address decides
//!   (public when it equals the local address, else cone); with no UDP answer at all: UDP
//!   blocked.
//! - Argon2 parameters come from the challenge's `argon-m`/`argon-t`/`argon-p` (ids
//!   0x28–0x2a); when absent, `ClientConfig::hash_params_fallback` applies. Parameters above
//!   `HashParams::MAX` (or below Argon2's minimums) are refused — LOGIN_FAILED "hash
//!   parameters refused" — before any work.
//! - SN lost (missing `sn-refresh-ack` or closed session): REGISTER is retried with the
//!   fallback table first, then a fresh probe round over the host cache.

use super::{Client, ConnId, ConnKind, FAR, MAX_BUDDIES, NatType, SEC, ms, secs};
use crate::peer::auth::{self, HashParams};
use crate::peer::outbox::Dest;
use crate::peer::truth::{EventKind, Transport};
use crate::time::Ts;
use dissectors::registry::TrafficClass;
use dissectors::skylark::codec::Message;
use dissectors::skylark::header::Flags;
use dissectors::skylark::messages::{ErrorCode, FieldId, MsgType};
use dissectors::skylark::object::{Object, Value};
use dissectors::stun::StunMessage;
use rand::RngExt;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// NAT discovery probes at most this many SNs (§8.2: two).
pub const MAX_STUN_TARGETS: usize = 2;
/// Fallback-table size bound (§8.9: 22 nodes).
pub const MAX_FALLBACK: usize = 64;
/// SN candidates kept for REGISTER.
pub const MAX_CANDIDATES: usize = 256;
/// hc-exchange-request max-count (§6.2).
pub const HC_EXCHANGE_MAX: u32 = 200;
/// hash-alg value of Argon2id (auth.rs, PROTOCOL.md §11 as updated for issue 4).
pub const HASH_ALG_ARGON2ID: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SnSession {
    pub conn: ConnId,
    pub addr: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthStage {
    Connecting,
    Challenge,
    Credential,
    BuddyList,
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Start,
    VersionCheck {
        until: Ts,
    },
    ProbeUdp {
        targets: Vec<SocketAddr>,
        sent: usize,
        next_send: Ts,
        wait_until: Option<Ts>,
    },
    ProbeTcp {
        targets: Vec<SocketAddr>,
        idx: usize,
        port_i: usize,
        conn: Option<ConnId>,
        deadline: Ts,
        udp_unanswered: usize,
    },
    Pause {
        until: Ts,
    },
    Nat,
    Auth {
        conn: Option<ConnId>,
        stage: AuthStage,
        deadline: Ts,
    },
    Register {
        conn: Option<ConnId>,
        addr: SocketAddr,
        txn: u32,
        deadline: Ts,
    },
    Online,
    Failed,
}

#[derive(Debug)]
struct StunTxn {
    to: SocketAddr,
    tid: [u8; 12],
    start: Ts,
    sent: u32,
    next: Ts,
    done: bool,
    result: Option<SocketAddr>,
}

#[derive(Debug)]
struct NatDiscovery {
    txns: Vec<StunTxn>,
    deadline: Ts,
    during_login: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FallbackEntry {
    pub addr: SocketAddr,
    misses: u32,
    outstanding: Option<u32>,
}

/// Login and steady-state data of the client.
#[derive(Debug, Default)]
pub(super) struct Login {
    phase: Phase,
    round: u32,
    pub nat: NatType,
    pub reflexive: Option<SocketAddr>,
    pub udp_blocked: bool,
    /// SNs that answered hc-probe this round, in answer order, with the reflexive address.
    answered: Vec<(SocketAddr, SocketAddr)>,
    udp_answered: bool,
    /// A TCP probe connection that answered, kept for REGISTER.
    probe_conn: Option<(ConnId, SocketAddr)>,
    nat_disc: Option<NatDiscovery>,
    candidates: VecDeque<SocketAddr>,
    reauthed: bool,
    pub sn: Option<SnSession>,
    pub fallback: Vec<FallbackEntry>,
    fb_probe_until: Option<Ts>,
    fb_probed: Vec<SocketAddr>,
    refresh_at: Option<Ts>,
    ack: Option<(u32, Ts)>,
    refresh_seq: u32,
    repoll_at: Option<Ts>,
    repoll_cursor: usize,
    ping_seq: u32,
    hourly_at: Option<Ts>,
    presence_at: Option<Ts>,
    telemetry_at: Option<Ts>,
    pub buddies: Vec<String>,
    pub buddy_status: HashMap<String, u32>,
}

impl Login {
    /// An sn-refresh is waiting for its ack.
    pub fn awaiting_ack(&self) -> bool {
        self.ack.is_some()
    }

    pub fn is_online(&self) -> bool {
        matches!(self.phase, Phase::Online) && self.sn.is_some()
    }

    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Start => "start",
            Phase::VersionCheck { .. } => "version-check",
            Phase::ProbeUdp { .. } => "probe-udp",
            Phase::ProbeTcp { .. } => "probe-tcp",
            Phase::Pause { .. } => "pause",
            Phase::Nat => "nat-discovery",
            Phase::Auth { .. } => "auth",
            Phase::Register { .. } => "register",
            Phase::Online => "online",
            Phase::Failed => "login-failed",
        }
    }
}

fn get_u32(m: &Message, id: FieldId) -> Option<u32> {
    match m.get(id) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    }
}

fn get_u64(m: &Message, id: FieldId) -> Option<u64> {
    match m.get(id) {
        Some(Value::U64(v)) => Some(*v),
        _ => None,
    }
}

fn get_addr(m: &Message, id: FieldId) -> Option<SocketAddr> {
    match m.get(id) {
        Some(Value::Addr(a)) => Some(*a),
        _ => None,
    }
}

fn get_blob(m: &Message, id: FieldId) -> Option<&[u8]> {
    match m.get(id) {
        Some(Value::Blob(b)) => Some(b),
        _ => None,
    }
}

/// Addresses of an `sn-list` (absent: empty).
pub(super) fn sn_list(m: &Message) -> Vec<SocketAddr> {
    match m.get(FieldId::SnList) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|o| match (&o.id, &o.value) {
                (FieldId::Addr, Value::Addr(a)) => Some(*a),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// User names of a list field (buddies, users, members).
pub(super) fn user_list(m: &Message, id: FieldId) -> Vec<String> {
    match m.get(id) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|o| match &o.value {
                Value::Str(s) if o.id == FieldId::User => Some(s.clone()),
                _ => None,
            })
            .take(MAX_BUDDIES)
            .collect(),
        _ => Vec::new(),
    }
}

/// PROTOCOL.md §4.4 (as extended for issue 4): `argon-m` (KiB), `argon-t`, `argon-p`, u32
/// each, in `auth-challenge` with hash-alg 2. Read by number so this works whether or not the
/// codec's field table names them yet.
pub const FIELD_ARGON_M: u8 = 0x28;
pub const FIELD_ARGON_T: u8 = 0x29;
pub const FIELD_ARGON_P: u8 = 0x2a;

/// The Argon2 parameters of a challenge: all three fields, else the configured fallback
/// (a login server that predates the fields). Bounds are checked by `auth::stored_hash`.
fn challenge_params(m: &Message, fallback: HashParams) -> HashParams {
    let f = |id: u8| get_u32(m, FieldId::from(id));
    match (f(FIELD_ARGON_M), f(FIELD_ARGON_T), f(FIELD_ARGON_P)) {
        (Some(m_kib), Some(t), Some(p)) => HashParams { m_kib, t, p },
        _ => fallback,
    }
}

impl Client {
    // ---------------------------------------------------------------- start and rounds

    pub(super) fn login_start(&mut self) {
        self.http_start(ConnKind::HttpVersion);
        if let Some(p) = self.cfg.telemetry_period_s.filter(|p| *p > 0) {
            self.login.telemetry_at = Some(self.now.add_nanos(secs(p)));
        }
        self.login.phase = Phase::VersionCheck {
            until: self.now.add_nanos(ms(self.cfg.tcp_connect_timeout_ms)),
        };
    }

    /// The version check answered, failed or timed out: login goes on either way.
    pub(super) fn version_check_done(&mut self) {
        if matches!(self.login.phase, Phase::VersionCheck { .. }) {
            self.start_round(1);
        }
    }

    fn probe_targets(&self) -> Vec<SocketAddr> {
        if self.state.host_cache.is_empty() {
            self.cfg
                .bootstrap
                .iter()
                .copied()
                .take(super::MAX_HOST_CACHE)
                .collect()
        } else {
            self.state.host_cache.entries().to_vec()
        }
    }

    fn start_round(&mut self, round: u32) {
        self.login.round = round;
        self.stats.login_rounds += 1;
        self.login.answered.clear();
        self.login.udp_answered = false;
        self.login.reauthed = false;
        if let Some((c, _)) = self.login.probe_conn.take() {
            self.close_conn(c);
        }
        let targets = self.probe_targets();
        if self.login.udp_blocked {
            self.login.phase = Phase::ProbeTcp {
                targets,
                idx: 0,
                port_i: 0,
                conn: None,
                deadline: self.now,
                udp_unanswered: 0,
            };
            self.probe_tcp_next(false);
        } else {
            self.login.phase = Phase::ProbeUdp {
                targets,
                sent: 0,
                next_send: self.now,
                wait_until: None,
            };
            self.probe_udp_tick();
        }
    }

    fn round_failed(&mut self) {
        if self.login.round >= self.cfg.login_rounds {
            self.login_fail(format!(
                "LOGIN_FAILED: no super node after {} rounds",
                self.login.round
            ));
        } else {
            self.login.phase = Phase::Pause {
                until: self.now.add_nanos(ms(self.cfg.round_pause_ms)),
            };
        }
    }

    fn login_fail(&mut self, detail: String) {
        self.login.phase = Phase::Failed;
        self.out.event(
            self.now,
            EventKind::Login {
                ok: false,
                sn: None,
                detail,
            },
        );
    }

    // ---------------------------------------------------------------- PROBE_UDP

    fn probe_udp_tick(&mut self) {
        let interval = SEC / i64::from(self.cfg.probe_rate_per_s.max(1));
        let wait = ms(self.cfg.udp_probe_wait_ms);
        let mut to_send = Vec::new();
        let Phase::ProbeUdp {
            targets,
            sent,
            next_send,
            wait_until,
        } = &mut self.login.phase
        else {
            return;
        };
        while *sent < targets.len() && *next_send <= self.now {
            if let Some(t) = targets.get(*sent) {
                to_send.push(*t);
            }
            *sent += 1;
            *next_send = next_send.add_nanos(interval);
        }
        if *sent >= targets.len() && wait_until.is_none() {
            *wait_until = Some(self.now.add_nanos(wait));
        }
        let expired = wait_until.is_some_and(|w| w <= self.now);
        for t in to_send {
            let m = self.hc_probe();
            self.send_udp(t, &m);
        }
        if expired {
            self.finish_udp_round();
        }
    }

    fn software(&self) -> String {
        format!("skylark/{}", self.cfg.version)
    }

    pub(super) fn on_hc_probe_ack(&mut self, from: SocketAddr, m: &Message) {
        if !m.flags.is_response() {
            self.stats.unexpected += 1;
            return;
        }
        for a in sn_list(m) {
            self.learn_sn(a);
        }
        if m.flags.is_error() {
            // An overloaded SN is alive: UDP works, but it is no candidate.
            self.login.udp_answered = true;
            return;
        }
        let Phase::ProbeUdp { targets, sent, .. } = &self.login.phase else {
            self.stats.unexpected += 1;
            return;
        };
        let Some(refl) = get_addr(m, FieldId::Reflexive) else {
            self.stats.unexpected += 1;
            return;
        };
        if !targets.contains(&from) || self.login.answered.iter().any(|(a, _)| *a == from) {
            self.stats.unexpected += 1;
            return;
        }
        let all_sent = *sent >= targets.len();
        let n_targets = targets.len();
        self.login.udp_answered = true;
        self.login.answered.push((from, refl));
        let n = self.login.answered.len();
        if all_sent && (n >= n_targets || n >= MAX_STUN_TARGETS) {
            self.finish_udp_round();
        }
    }

    fn finish_udp_round(&mut self) {
        let Phase::ProbeUdp { targets, .. } = std::mem::take(&mut self.login.phase) else {
            return;
        };
        if self.login.answered.is_empty() {
            let n = targets.len();
            self.login.phase = Phase::ProbeTcp {
                targets,
                idx: 0,
                port_i: 0,
                conn: None,
                deadline: self.now,
                udp_unanswered: n,
            };
            self.probe_tcp_next(false);
            return;
        }
        for (a, _) in self.login.answered.clone().iter().rev() {
            self.state.host_cache.promote(*a);
        }
        let sns: Vec<SocketAddr> = self.login.answered.iter().map(|(a, _)| *a).collect();
        self.start_nat(&sns, true);
    }

    // ---------------------------------------------------------------- PROBE_TCP

    /// Opens the next TCP probe (`advance`: the current one failed).
    fn probe_tcp_next(&mut self, advance: bool) {
        let timeout = ms(self.cfg.tcp_connect_timeout_ms);
        let Phase::ProbeTcp {
            targets,
            idx,
            port_i,
            conn,
            deadline,
            ..
        } = &mut self.login.phase
        else {
            return;
        };
        let old = conn.take();
        let mut target = None;
        let mut first = !advance;
        while let Some(t) = targets.get(*idx) {
            let ports = tcp_ports(t.port());
            if !first {
                *port_i += 1;
            }
            first = false;
            match ports.get(*port_i) {
                Some(Some(p)) => {
                    target = Some(SocketAddr::new(t.ip(), *p));
                    break;
                }
                Some(None) => {}
                None => {
                    *idx += 1;
                    *port_i = 0;
                    first = true;
                }
            }
        }
        *deadline = self.now.add_nanos(timeout);
        if let Some(c) = old {
            self.close_conn(c);
        }
        match target {
            Some(t) => {
                let c = self.new_conn(ConnKind::Probe, t);
                if let Phase::ProbeTcp { conn, .. } = &mut self.login.phase {
                    *conn = c;
                }
                if c.is_none() {
                    self.round_failed();
                }
            }
            None => self.round_failed(),
        }
    }

    pub(super) fn probe_connected(&mut self, c: ConnId) {
        let timeout = ms(self.cfg.tcp_connect_timeout_ms);
        match &mut self.login.phase {
            Phase::ProbeTcp { conn, deadline, .. } if *conn == Some(c) => {
                *deadline = self.now.add_nanos(timeout);
            }
            _ => {
                self.close_conn(c);
                return;
            }
        }
        let m = self.hc_probe();
        self.send_tcp(c, &m);
    }

    /// An `hc-probe` (PROTOCOL.md §8.1), the same over UDP and as the first TCP frame.
    fn hc_probe(&mut self) -> Message {
        self.request(
            MsgType::HcProbe,
            vec![
                Object::u64(FieldId::NodeId, self.node_id),
                Object::str(FieldId::Software, &self.software()),
            ],
        )
    }

    pub(super) fn probe_conn_lost(&mut self, c: ConnId) {
        if matches!(&self.login.phase, Phase::ProbeTcp { conn, .. } if *conn == Some(c)) {
            if let Phase::ProbeTcp { conn, .. } = &mut self.login.phase {
                *conn = None;
            }
            self.probe_tcp_next(true);
        } else if self.login.probe_conn.is_some_and(|(p, _)| p == c) {
            self.login.probe_conn = None;
        }
    }

    pub(super) fn on_probe_msg(&mut self, c: ConnId, m: &Message) {
        let Phase::ProbeTcp {
            conn,
            udp_unanswered,
            ..
        } = &self.login.phase
        else {
            self.stats.unexpected += 1;
            return;
        };
        let udp_unanswered = *udp_unanswered;
        if *conn != Some(c) || m.msg_type != MsgType::HcProbeAck || !m.flags.is_response() {
            self.stats.unexpected += 1;
            return;
        }
        for a in sn_list(m) {
            self.learn_sn(a);
        }
        let refl = get_addr(m, FieldId::Reflexive);
        let remote = self.conns.get(&c).map(|x| x.remote);
        let (Some(refl), Some(remote), false) = (refl, remote, m.flags.is_error()) else {
            // Overloaded (or a bad ack): try the next target.
            self.probe_tcp_next(true);
            return;
        };
        self.login.phase = Phase::Nat;
        self.login.probe_conn = Some((c, remote));
        self.login.answered = vec![(remote, refl)];
        self.state.host_cache.promote(remote);
        if udp_unanswered >= self.cfg.udp_blocked_threshold {
            // §8.1 step 4: UDP is blocked; no PROBE_UDP or NAT discovery from now on.
            self.login.udp_blocked = true;
            self.login.nat = NatType::UdpBlocked;
            self.after_nat();
        } else {
            self.start_nat(&[remote], true);
        }
    }

    // ---------------------------------------------------------------- NAT discovery

    fn start_nat(&mut self, sns: &[SocketAddr], during_login: bool) {
        if during_login {
            self.login.phase = Phase::Nat;
        }
        if self.login.udp_blocked {
            if during_login {
                self.after_nat();
            }
            return;
        }
        let mut picked: Vec<SocketAddr> = Vec::new();
        for a in sns {
            if picked.len() < MAX_STUN_TARGETS && picked.iter().all(|p| p.ip() != a.ip()) {
                picked.push(*a);
            }
        }
        let mut txns = Vec::with_capacity(picked.len());
        for to in picked {
            let mut tid = [0u8; 12];
            self.rng.fill(&mut tid);
            txns.push(StunTxn {
                to,
                tid,
                start: self.now,
                sent: 0,
                next: self.now,
                done: false,
                result: None,
            });
        }
        self.login.nat_disc = Some(NatDiscovery {
            txns,
            deadline: self.now.add_nanos(ms(self.cfg.nat_discovery_ms)),
            during_login,
        });
        self.nat_tick();
    }

    fn nat_tick(&mut self) {
        let Some(mut d) = self.login.nat_disc.take() else {
            return;
        };
        let rto = ms(self.cfg.stun_rto_ms);
        let n = self.cfg.stun_transmissions.clamp(1, 16);
        for t in d.txns.iter_mut().filter(|t| !t.done) {
            if t.next > self.now {
                continue;
            }
            if t.sent >= n {
                t.done = true;
                continue;
            }
            t.sent += 1;
            // RFC 8489 §6.2.1: sends at 0, RTO, 3·RTO, …; give up at (2^n − 1)·RTO.
            t.next = t.start.add_nanos(rto.saturating_mul((1i64 << t.sent) - 1));
            let msg = StunMessage::binding_request(t.tid, Some(&self.software()));
            let mut data = Vec::with_capacity(msg.buffer_len());
            if msg.emit(&mut data).is_err() {
                self.out.encode_errors += 1;
                continue;
            }
            let label = self.out.raw_label(
                self.now,
                Transport::Udp,
                self.cfg.addr,
                Dest {
                    to: t.to,
                    home: false,
                },
                "stun-binding-request",
                TrafficClass::Login,
                Some(tid_low64(&t.tid)),
            );
            self.out.raw_udp(self.cfg.addr, t.to, data, label);
        }
        if d.txns.iter().all(|t| t.done) || d.deadline <= self.now {
            self.finish_nat(d);
        } else {
            self.login.nat_disc = Some(d);
        }
    }

    pub(super) fn on_stun(&mut self, from: SocketAddr, m: &StunMessage) {
        let Some(d) = self.login.nat_disc.as_mut() else {
            self.stats.unexpected += 1;
            return;
        };
        let Some(t) = d
            .txns
            .iter_mut()
            .find(|t| t.tid == m.transaction_id && t.to == from && !t.done)
        else {
            self.stats.unexpected += 1;
            return;
        };
        if m.msg_type != dissectors::stun::MessageType::BINDING_SUCCESS {
            t.done = true;
        } else {
            t.result = m.mapped_address();
            t.done = true;
        }
        if d.txns.iter().all(|t| t.done) {
            if let Some(d) = self.login.nat_disc.take() {
                self.finish_nat(d);
            }
        }
    }

    fn finish_nat(&mut self, d: NatDiscovery) {
        let results: Vec<SocketAddr> = d.txns.iter().filter_map(|t| t.result).collect();
        let local = self.cfg.addr;
        let (nat, refl) = match results.as_slice() {
            [] => match self.login.answered.first() {
                Some((_, r)) if self.login.udp_answered => (
                    if *r == local {
                        NatType::Public
                    } else {
                        NatType::Cone
                    },
                    Some(*r),
                ),
                _ => (NatType::UdpBlocked, None),
            },
            [a, ..] if results.contains(&local) => (NatType::Public, Some(*a)),
            [a] => (NatType::Cone, Some(*a)),
            [a, b, ..] if a == b => (NatType::Cone, Some(*a)),
            [a, ..] => (NatType::Symmetric, Some(*a)),
        };
        if d.during_login || nat != NatType::UdpBlocked {
            self.login.nat = nat;
            if refl.is_some() {
                self.login.reflexive = refl;
            }
            if nat == NatType::UdpBlocked {
                self.login.udp_blocked = true;
            }
        }
        if d.during_login && matches!(self.login.phase, Phase::Nat) {
            self.after_nat();
        }
    }

    // ---------------------------------------------------------------- AUTH

    fn after_nat(&mut self) {
        let valid_until = self.unix_now().saturating_add(self.cfg.reauth_margin_s);
        let need_auth = self
            .state
            .credential
            .as_ref()
            .is_none_or(|c| c.expiry <= valid_until || !self.credential_usable(&c.blob));
        if need_auth {
            self.start_auth();
        } else {
            self.start_register();
        }
    }

    /// A saved credential is used only when it names this user (and, with a known LS key,
    /// its signature verifies): a state directory may have been copied or tampered with.
    fn credential_usable(&self, blob: &[u8]) -> bool {
        let cred = match self.cfg.ls_key {
            Some(k) => ed25519_dalek::VerifyingKey::from_bytes(&k)
                .ok()
                .and_then(|k| auth::Credential::verify(blob, &k).ok()),
            None => auth::Credential::read_unverified(blob).ok(),
        };
        cred.is_some_and(|c| c.user == self.cfg.name)
    }

    fn start_auth(&mut self) {
        let conn = self.new_conn(ConnKind::Ls, self.cfg.login_server);
        self.login.phase = Phase::Auth {
            conn,
            stage: AuthStage::Connecting,
            deadline: self.now.add_nanos(ms(self.cfg.ls_response_wait_ms)),
        };
        if conn.is_none() {
            self.login_fail("no connection slot for the login server".into());
        }
    }

    pub(super) fn auth_connected(&mut self, c: ConnId) {
        let wait = ms(self.cfg.ls_response_wait_ms);
        match &mut self.login.phase {
            Phase::Auth {
                conn,
                stage,
                deadline,
            } if *conn == Some(c) && *stage == AuthStage::Connecting => {
                *stage = AuthStage::Challenge;
                *deadline = self.now.add_nanos(wait);
            }
            _ => {
                self.close_conn(c);
                return;
            }
        }
        let m = self.request(
            MsgType::AuthHello,
            vec![
                Object::str(FieldId::User, &self.cfg.name),
                Object::str(FieldId::Software, &self.software()),
            ],
        );
        self.send_tcp(c, &m);
    }

    pub(super) fn auth_conn_lost(&mut self, c: ConnId) {
        match &self.login.phase {
            Phase::Auth { conn, stage, .. } if *conn == Some(c) => {
                if *stage == AuthStage::BuddyList {
                    // The credential arrived; a missing buddy list is no reason to fail.
                    self.start_register();
                } else {
                    self.login_fail("login server unreachable or closed".into());
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_ls_msg(&mut self, c: ConnId, m: &Message) {
        let stage = match &self.login.phase {
            Phase::Auth { conn, stage, .. } if *conn == Some(c) => *stage,
            _ => {
                self.stats.unexpected += 1;
                return;
            }
        };
        if m.flags.is_error() {
            let code = ErrorCode::from(get_u32(m, FieldId::ErrorCode).unwrap_or(0));
            self.close_conn(c);
            self.login_fail(code.name().to_string());
            return;
        }
        let wait = ms(self.cfg.ls_response_wait_ms);
        match (stage, m.msg_type) {
            (AuthStage::Challenge, MsgType::AuthChallenge) => {
                let salt = get_blob(m, FieldId::Salt).and_then(|s| <[u8; 16]>::try_from(s).ok());
                let nonce = get_blob(m, FieldId::Nonce).map(<[u8]>::to_vec);
                let alg = get_u32(m, FieldId::HashAlg);
                let (Some(salt), Some(nonce), Some(HASH_ALG_ARGON2ID)) = (salt, nonce, alg) else {
                    self.close_conn(c);
                    self.login_fail("bad auth-challenge (salt, nonce or hash-alg)".into());
                    return;
                };
                let params = challenge_params(m, self.cfg.hash_params_fallback);
                let stored = match auth::stored_hash(&self.cfg.password, &salt, params) {
                    Ok(s) => s,
                    Err(_) => {
                        self.close_conn(c);
                        self.login_fail("hash parameters refused".into());
                        return;
                    }
                };
                let proof = auth::proof(&stored, &nonce);
                let reply = self.request(
                    MsgType::AuthProof,
                    vec![
                        Object::str(FieldId::User, &self.cfg.name),
                        Object::blob(FieldId::Proof, &proof),
                    ],
                );
                self.send_tcp(c, &reply);
                self.set_auth_stage(AuthStage::Credential, wait);
            }
            (AuthStage::Credential, MsgType::Credential) => {
                let blob = get_blob(m, FieldId::CredentialBlob);
                let expiry = get_u64(m, FieldId::Expiry);
                let (Some(blob), Some(expiry)) = (blob, expiry) else {
                    self.stats.unexpected += 1;
                    return;
                };
                self.state.credential = Some(super::SavedCredential {
                    expiry,
                    blob: blob.to_vec(),
                });
                for a in sn_list(m) {
                    self.learn_sn(a);
                }
                self.set_auth_stage(AuthStage::BuddyList, wait);
            }
            (AuthStage::BuddyList, MsgType::BuddyList) => {
                self.login.buddies = user_list(m, FieldId::Buddies);
                self.close_conn(c);
                self.start_register();
            }
            _ => self.stats.unexpected += 1,
        }
    }

    fn set_auth_stage(&mut self, s: AuthStage, wait: i64) {
        if let Phase::Auth {
            stage, deadline, ..
        } = &mut self.login.phase
        {
            *stage = s;
            *deadline = self.now.add_nanos(wait);
        }
    }

    // ---------------------------------------------------------------- REGISTER

    fn start_register(&mut self) {
        let mut c: VecDeque<SocketAddr> = VecDeque::new();
        if let Some((_, a)) = self.login.probe_conn {
            c.push_back(a);
        }
        for (a, _) in &self.login.answered {
            if !c.contains(a) {
                c.push_back(*a);
            }
        }
        self.login.candidates = c;
        self.register_next();
    }

    fn register_next(&mut self) {
        if let Phase::Register { conn: Some(c), .. } = self.login.phase {
            self.close_conn(c);
        }
        let Some(addr) = self.login.candidates.pop_front() else {
            self.login.phase = Phase::Pause { until: self.now };
            self.round_failed();
            return;
        };
        let txn = self.txn();
        let deadline = self.now.add_nanos(ms(self.cfg.register_wait_ms));
        match self.login.probe_conn.take() {
            Some((c, a)) if a == addr => {
                if let Some(x) = self.conns.get_mut(&c) {
                    x.kind = ConnKind::Sn;
                }
                self.login.phase = Phase::Register {
                    conn: Some(c),
                    addr,
                    txn,
                    deadline,
                };
                self.send_register(c, txn);
            }
            other => {
                if let Some((c, _)) = other {
                    self.close_conn(c);
                }
                let conn = self.new_conn(ConnKind::Sn, addr);
                self.login.phase = Phase::Register {
                    conn,
                    addr,
                    txn,
                    deadline,
                };
            }
        }
    }

    fn send_register(&mut self, c: ConnId, txn: u32) {
        let Some(cred) = self.state.credential.clone() else {
            self.login_fail("no credential".into());
            return;
        };
        let advertised = match self.login.nat {
            NatType::UdpBlocked | NatType::Unknown => self.cfg.addr,
            _ => self.login.reflexive.unwrap_or(self.cfg.addr),
        };
        let m = Message::new(
            MsgType::SnRegister,
            Flags::REQUEST,
            txn,
            vec![
                Object::str(FieldId::User, &self.cfg.name),
                Object::blob(FieldId::CredentialBlob, &cred.blob),
                Object::u64(FieldId::Expiry, cred.expiry),
                Object::addr(FieldId::Addr, advertised),
                Object::u32(FieldId::NatType, self.login.nat.code()),
            ],
        );
        self.send_tcp(c, &m);
    }

    pub(super) fn register_connected(&mut self, c: ConnId) {
        match self.login.phase {
            Phase::Register { conn, txn, .. } if conn == Some(c) => self.send_register(c, txn),
            _ => self.close_conn(c),
        }
    }

    pub(super) fn sn_conn_lost(&mut self, c: ConnId) {
        match self.login.phase {
            Phase::Register { conn, .. } if conn == Some(c) => {
                if let Phase::Register { conn, .. } = &mut self.login.phase {
                    *conn = None;
                }
                self.register_next();
            }
            _ if self.login.sn.is_some_and(|s| s.conn == c) => {
                self.sn_lost("connection to the super node closed");
            }
            _ => {}
        }
    }

    fn on_register_reply(&mut self, c: ConnId, addr: SocketAddr, m: &Message) {
        if m.flags.is_error() {
            let code = ErrorCode::from(get_u32(m, FieldId::ErrorCode).unwrap_or(0));
            match code {
                ErrorCode::Overloaded => {
                    for a in sn_list(m).into_iter().rev() {
                        self.learn_sn(a);
                        if self.login.candidates.len() < MAX_CANDIDATES
                            && !self.login.candidates.contains(&a)
                        {
                            self.login.candidates.push_front(a);
                        }
                    }
                    self.register_next();
                }
                ErrorCode::CredentialExpired if !self.login.reauthed => {
                    self.login.reauthed = true;
                    self.close_conn(c);
                    self.login.candidates.push_front(addr);
                    self.state.credential = None;
                    self.start_auth();
                }
                other => {
                    self.close_conn(c);
                    self.login_fail(format!("sn-register refused: {}", other.name()));
                }
            }
            return;
        }
        for a in sn_list(m) {
            self.learn_sn(a);
        }
        self.go_online(c, addr);
    }

    fn go_online(&mut self, c: ConnId, addr: SocketAddr) {
        self.login.phase = Phase::Online;
        self.login.sn = Some(SnSession { conn: c, addr });
        self.state.host_cache.promote(addr);
        self.stats.logins += 1;
        let detail = format!(
            "nat={} round={} reflexive={}",
            self.login.nat.as_str(),
            self.login.round,
            self.login
                .reflexive
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into())
        );
        self.out.event(
            self.now,
            EventKind::Login {
                ok: true,
                sn: Some(addr),
                detail,
            },
        );
        self.login.refresh_at = Some(self.now.add_nanos(secs(self.cfg.keepalive_period_s)));
        self.login.ack = None;
        self.login.repoll_at = Some(self.now.add_nanos(secs(self.cfg.repoll_period_s)));
        self.login.hourly_at = Some(self.hourly_next());
        self.login.presence_at = Some(self.now);
        if !self.login.udp_blocked && self.login.fallback.is_empty() {
            self.start_fallback_probes();
        }
        self.presence_tick();
    }

    fn hourly_next(&mut self) -> Ts {
        let base = secs(self.cfg.full_refresh_s);
        let jitter = base / 10;
        let j = if jitter > 0 {
            self.rng.random_range(-jitter..=jitter)
        } else {
            0
        };
        self.now.add_nanos(base.saturating_add(j).max(SEC))
    }

    // ---------------------------------------------------------------- FALLBACK

    fn start_fallback_probes(&mut self) {
        let sn = self.login.sn.map(|s| s.addr);
        let targets: Vec<SocketAddr> = self
            .state
            .host_cache
            .entries()
            .iter()
            .copied()
            .filter(|a| Some(*a) != sn && !self.login.fallback.iter().any(|f| f.addr == *a))
            .take(self.cfg.fallback_nodes.min(MAX_FALLBACK))
            .collect();
        for t in &targets {
            self.send_fallback_probe(*t);
        }
        self.login.fb_probed = targets;
        self.login.fb_probe_until = Some(self.now.add_nanos(ms(self.cfg.fallback_wait_ms)));
    }

    fn send_fallback_probe(&mut self, to: SocketAddr) {
        let m = self.request(
            MsgType::FallbackProbe,
            vec![Object::u64(FieldId::NodeId, self.node_id)],
        );
        self.send_udp(to, &m);
    }

    pub(super) fn on_fallback_ack(&mut self, from: SocketAddr, m: &Message) {
        let fresh = self.login.fb_probed.contains(&from)
            && self.login.fb_probe_until.is_some_and(|u| self.now <= u)
            && !self.login.fallback.iter().any(|f| f.addr == from);
        if !m.flags.is_response()
            || m.flags.is_error()
            || !fresh
            || self.login.fallback.len() >= self.cfg.fallback_nodes.min(MAX_FALLBACK)
        {
            self.stats.unexpected += 1;
            return;
        }
        self.login.fallback.push(FallbackEntry {
            addr: from,
            misses: 0,
            outstanding: None,
        });
    }

    pub(super) fn answer_fallback(&mut self, from: SocketAddr, m: &Message) {
        let m = Message::new(
            MsgType::FallbackProbeAck,
            Flags::RESP,
            m.txn_id,
            vec![
                Object::u64(FieldId::NodeId, self.node_id),
                Object::addr(FieldId::Reflexive, from),
            ],
        );
        self.send_udp(from, &m);
    }

    pub(super) fn answer_nat_ping(&mut self, from: SocketAddr, m: &Message) {
        let Some(seq) = get_u32(m, FieldId::Seq) else {
            self.stats.malformed += 1;
            return;
        };
        let reply = Message::new(
            MsgType::NatPong,
            Flags::RESP,
            m.txn_id,
            vec![
                Object::u64(FieldId::NodeId, self.node_id),
                Object::u32(FieldId::Seq, seq),
                Object::addr(FieldId::Reflexive, from),
            ],
        );
        self.send_udp(from, &reply);
    }

    pub(super) fn on_nat_pong(&mut self, from: SocketAddr, m: &Message) {
        let seq = get_u32(m, FieldId::Seq);
        let Some(f) = self
            .login
            .fallback
            .iter_mut()
            .find(|f| f.addr == from && f.outstanding.is_some() && f.outstanding == seq)
        else {
            self.stats.unexpected += 1;
            return;
        };
        f.outstanding = None;
        f.misses = 0;
    }

    // ---------------------------------------------------------------- ONLINE

    pub(super) fn on_sn_msg(&mut self, c: ConnId, m: Message) {
        if let Phase::Register {
            conn, addr, txn, ..
        } = self.login.phase
        {
            if conn == Some(c) {
                if matches!(m.msg_type, MsgType::SnRegister | MsgType::SnRegisterAck)
                    && m.flags.is_response()
                    && m.txn_id == txn
                {
                    self.on_register_reply(c, addr, &m);
                    return;
                }
                self.stats.unexpected += 1;
                return;
            }
        }
        if self.login.sn.is_none_or(|s| s.conn != c) {
            self.stats.unexpected += 1;
            return;
        }
        match m.msg_type {
            MsgType::SnRefreshAck if m.flags.is_response() => {
                let seq = get_u32(&m, FieldId::Seq);
                if self.login.ack.is_some_and(|(s, _)| Some(s) == seq) {
                    self.login.ack = None;
                } else {
                    self.stats.unexpected += 1;
                }
                for a in sn_list(&m) {
                    self.learn_sn(a);
                }
            }
            MsgType::HcExchange if m.flags.is_response() => {
                for a in sn_list(&m) {
                    self.learn_sn(a);
                }
            }
            MsgType::PresenceReport if m.flags.is_response() => {
                if let Some(Value::List(entries)) = m.get(FieldId::Entries) {
                    for e in entries.iter().take(MAX_BUDDIES) {
                        if let Some(e) = super::call::Entry::from_object(e) {
                            if self.login.buddies.contains(&e.user) {
                                self.login.buddy_status.insert(e.user.clone(), e.status);
                            }
                        }
                    }
                }
            }
            MsgType::Search | MsgType::SearchResult | MsgType::SearchReferral => {
                self.on_lookup_reply(&m)
            }
            MsgType::SnRefresh
            | MsgType::HcExchangeRequest
            | MsgType::PresenceQuery
            | MsgType::SnRegister
            | MsgType::SnRegisterAck => self.stats.unexpected += 1,
            _ => self.on_peer_msg(c, m),
        }
    }

    fn sn_lost(&mut self, why: &str) {
        self.stats.sn_lost += 1;
        let lost = self.login.sn.take();
        if let Some(s) = lost {
            self.close_conn(s.conn);
            self.state.host_cache.remove(s.addr);
            self.state.host_cache.add(s.addr);
        }
        self.login.ack = None;
        self.login.refresh_at = None;
        self.login.repoll_at = None;
        self.login.hourly_at = None;
        self.login.presence_at = None;
        self.note(format!("super node lost: {why}; re-registering"));
        let lost_addr = lost.map(|s| s.addr);
        self.login.candidates = self
            .login
            .fallback
            .iter()
            .map(|f| f.addr)
            .filter(|a| Some(*a) != lost_addr)
            .collect();
        self.login.round = 0;
        if self.login.candidates.is_empty() {
            self.start_round(1);
        } else {
            // A Register phase with no connection yet: register_next opens the first.
            self.login.phase = Phase::Register {
                conn: None,
                addr: self.cfg.addr,
                txn: 0,
                deadline: FAR,
            };
            self.login.round = 1;
            self.register_next();
        }
    }

    fn presence_tick(&mut self) {
        let Some(sn) = self.login.sn else {
            return;
        };
        if !self.login.buddies.is_empty() {
            let users = self
                .login
                .buddies
                .iter()
                .map(|b| Object::str(FieldId::User, b))
                .collect();
            let m = self.request(
                MsgType::PresenceQuery,
                vec![Object::list(FieldId::Users, users)],
            );
            self.send_tcp(sn.conn, &m);
        }
        self.login.presence_at = Some(self.now.add_nanos(secs(self.cfg.presence_period_s)));
    }

    pub(super) fn send_refresh(&mut self, full: bool) {
        let Some(sn) = self.login.sn else {
            return;
        };
        self.login.refresh_seq = self.login.refresh_seq.wrapping_add(1);
        let seq = self.login.refresh_seq;
        let mut objs = vec![
            Object::str(FieldId::User, &self.cfg.name),
            Object::u32(FieldId::Seq, seq),
        ];
        if full {
            objs.push(Object::u32(FieldId::Full, 1));
            objs.push(Object::u32(FieldId::Status, 1));
        }
        if self.is_promoted() {
            // PROTOCOL.md §8.10: a promoted node announces its SN role to its own SN.
            objs.push(Object::addr(FieldId::SnAddr, self.cfg.addr));
        }
        let m = self.request(MsgType::SnRefresh, objs);
        self.send_tcp(sn.conn, &m);
        self.stats.keepalives_sent += 1;
        self.login.ack = Some((seq, self.now.add_nanos(secs(self.cfg.keepalive_ack_wait_s))));
    }

    fn repoll_tick(&mut self) {
        let n = self.login.fallback.len();
        if n > 0 {
            let count = n.div_ceil(3);
            let mut dropped = 0usize;
            for _ in 0..count {
                let len = self.login.fallback.len();
                if len == 0 {
                    break;
                }
                let i = self.login.repoll_cursor % len;
                let max_misses = self.cfg.fallback_max_misses;
                let Some(f) = self.login.fallback.get_mut(i) else {
                    break;
                };
                if f.outstanding.is_some() {
                    f.misses += 1;
                }
                if f.misses >= max_misses {
                    self.login.fallback.remove(i);
                    dropped += 1;
                    continue;
                }
                self.login.ping_seq = self.login.ping_seq.wrapping_add(1);
                let seq = self.login.ping_seq;
                f.outstanding = Some(seq);
                let to = f.addr;
                self.login.repoll_cursor = i + 1;
                let m = self.request(
                    MsgType::NatPing,
                    vec![
                        Object::u64(FieldId::NodeId, self.node_id),
                        Object::u32(FieldId::Seq, seq),
                    ],
                );
                self.send_udp(to, &m);
            }
            if dropped > 0 {
                // Replace dropped nodes with fresh fallback-probe targets (§8.5).
                let sn = self.login.sn.map(|s| s.addr);
                let fresh: Vec<SocketAddr> = self
                    .state
                    .host_cache
                    .entries()
                    .iter()
                    .copied()
                    .filter(|a| {
                        Some(*a) != sn
                            && !self.login.fallback.iter().any(|f| f.addr == *a)
                            && !self.login.fb_probed.contains(a)
                    })
                    .take(dropped)
                    .collect();
                for a in &fresh {
                    self.send_fallback_probe(*a);
                }
                self.login.fb_probed = fresh;
                self.login.fb_probe_until = Some(self.now.add_nanos(ms(self.cfg.fallback_wait_ms)));
            }
        }
        self.login.repoll_at = Some(self.now.add_nanos(secs(self.cfg.repoll_period_s)));
    }

    fn hourly_tick(&mut self) {
        self.send_refresh(true);
        if let Some(sn) = self.login.sn {
            let m = self.request(
                MsgType::HcExchangeRequest,
                vec![Object::u32(FieldId::MaxCount, HC_EXCHANGE_MAX)],
            );
            self.send_tcp(sn.conn, &m);
            let mut sns = vec![sn.addr];
            sns.extend(self.state.host_cache.entries().iter().copied());
            self.start_nat(&sns, false);
        }
        self.login.hourly_at = Some(self.hourly_next());
    }

    // ---------------------------------------------------------------- timers

    pub(super) fn login_timers(&mut self) {
        let now = self.now;
        match &self.login.phase {
            Phase::ProbeUdp { .. } => self.probe_udp_tick(),
            Phase::ProbeTcp { deadline, .. } if *deadline <= now => self.probe_tcp_next(true),
            Phase::VersionCheck { until } if *until <= now => self.version_check_done(),
            Phase::Pause { until } if *until <= now => {
                let r = self.login.round + 1;
                self.start_round(r);
            }
            Phase::Auth { deadline, conn, .. } if *deadline <= now => {
                if let Some(c) = *conn {
                    self.close_conn(c);
                }
                self.login_fail("login server did not answer in time".into());
            }
            Phase::Register { deadline, .. } if *deadline <= now => self.register_next(),
            _ => {}
        }
        if self.login.nat_disc.is_some() {
            self.nat_tick();
        }
        if self.login.fb_probe_until.is_some_and(|u| u <= now) {
            self.login.fb_probe_until = None;
            self.login.fb_probed.clear();
        }
        if let Some(t) = self.login.telemetry_at.filter(|t| *t <= now) {
            let p = self.cfg.telemetry_period_s.unwrap_or(0).max(1);
            self.login.telemetry_at = Some(t.add_nanos(secs(p)).max(now));
            self.http_start(ConnKind::HttpTelemetry);
        }
        if !self.login.is_online() {
            return;
        }
        if self.login.ack.is_some_and(|(_, d)| d <= now) {
            self.sn_lost("no sn-refresh-ack in time");
            return;
        }
        if self.login.refresh_at.is_some_and(|t| t <= now) {
            self.login.refresh_at = Some(now.add_nanos(secs(self.cfg.keepalive_period_s)));
            if self.login.ack.is_none() {
                self.send_refresh(false);
            }
        }
        if self.login.repoll_at.is_some_and(|t| t <= now) {
            self.repoll_tick();
        }
        if self.login.hourly_at.is_some_and(|t| t <= now) {
            self.hourly_tick();
        }
        if self.login.presence_at.is_some_and(|t| t <= now) {
            self.presence_tick();
        }
    }

    pub(super) fn login_deadline(&self) -> Ts {
        let l = &self.login;
        let mut d = match &l.phase {
            Phase::ProbeUdp {
                targets,
                sent,
                next_send,
                wait_until,
            } => {
                if *sent < targets.len() {
                    *next_send
                } else {
                    wait_until.unwrap_or(self.now)
                }
            }
            Phase::ProbeTcp { deadline, .. }
            | Phase::Auth { deadline, .. }
            | Phase::Register { deadline, .. } => *deadline,
            Phase::Pause { until } | Phase::VersionCheck { until } => *until,
            _ => FAR,
        };
        if let Some(n) = &l.nat_disc {
            d = d.min(n.deadline);
            for t in n.txns.iter().filter(|t| !t.done) {
                d = d.min(t.next);
            }
        }
        for t in [
            l.fb_probe_until,
            l.telemetry_at,
            l.ack.map(|(_, t)| t),
            l.refresh_at,
            l.repoll_at,
            l.hourly_at,
            l.presence_at,
        ] {
            d = super::min_opt(d, t);
        }
        d
    }

    // ---------------------------------------------------------------- phone home

    fn http_start(&mut self, kind: ConnKind) {
        let _ = self.new_conn(kind, self.cfg.home);
    }

    pub(super) fn http_send(&mut self, c: ConnId, kind: ConnKind) {
        let v = &self.cfg.version;
        let host = self.cfg.home.ip();
        let (data, name) = if kind == ConnKind::HttpVersion {
            (
                format!(
                    "GET /ui/0/{v}/en/getlatestversion?ver={v} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Skylark/{v}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
                ),
                "http-version-check",
            )
        } else {
            let uptime = self.started.map_or(0, |s| self.now.since(s) / SEC);
            let body = format!(
                "node={:016x}&uptime={uptime}&sn={}&calls={}&nat={}",
                self.node_id,
                u8::from(self.is_promoted()),
                self.stats.calls_set_up,
                self.login.nat.code()
            );
            (
                format!(
                    "POST /ui/0/{v}/en/telemetry HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Skylark/{v}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                "http-telemetry",
            )
        };
        let Some((local, _)) = self.out.conn_addrs(c) else {
            return;
        };
        let label = self.out.raw_label(
            self.now,
            Transport::Tcp,
            local,
            Dest {
                to: self.cfg.home,
                home: true,
            },
            name,
            TrafficClass::Login,
            None,
        );
        self.out.raw_tcp(c, data.into_bytes(), label);
    }

    pub(super) fn on_http_data(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let kind = conn.kind;
        let buf = &conn.http;
        let Ok(head) = dissectors::http::parse_head(buf) else {
            if buf.len() >= super::MAX_HTTP_RESPONSE {
                self.stats.malformed += 1;
                self.close_conn(c);
                self.version_check_done();
            }
            return;
        };
        let dissectors::http::StartLine::Response { code, .. } = head.start else {
            self.stats.malformed += 1;
            self.close_conn(c);
            self.version_check_done();
            return;
        };
        let body_len = head.content_length().ok().flatten().unwrap_or(0);
        let body = buf.get(head.head_len..).unwrap_or_default();
        if (body.len() as u64) < body_len && buf.len() < super::MAX_HTTP_RESPONSE {
            return;
        }
        let latest = String::from_utf8_lossy(body.get(..body_len as usize).unwrap_or(body))
            .trim()
            .to_string();
        self.close_conn(c);
        if kind == ConnKind::HttpVersion {
            if code == 200 && latest != self.cfg.version {
                self.note(format!("home server: latest version {latest}"));
            }
            self.version_check_done();
        }
    }
}

/// Ports PROBE_TCP tries for an entry: its own, then 80, then 443 (duplicates skipped).
fn tcp_ports(own: u16) -> [Option<u16>; 3] {
    [
        Some(own),
        (own != 80).then_some(80),
        (own != 443).then_some(443),
    ]
}

fn tid_low64(t: &[u8; 12]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&t[4..]);
    u64::from_be_bytes(b)
}
