//! The login server (PROTOCOL.md §8.3, §11): challenge–response login over TCP that hands
//! out Ed25519-signed credentials, buddy lists and bootstrap super nodes.
//!
//! Per connection: `auth-hello` → `auth-challenge` (salt, nonce, hash-alg 2, Argon2id
//! parameters) → `auth-proof` → `credential` + `buddy-list` (or `auth-failed`) → close.
//! Guarantees: an unknown user gets a challenge indistinguishable from a real one (salt
//! derived from the name and a server secret, the default parameters) and then
//! `auth-failed`; a nonce answers one proof within [`LoginServerConfig::nonce_validity_s`];
//! failed proofs are rate-limited per user and per source address; every other message is
//! `bad-request` then close; malformed bytes close the connection and are counted; tables
//! are bounded ([`MAX_CONNS`], [`MAX_TRACKED`]).
//! Must not: read clocks or sockets, log passwords or proofs, reveal whether an account
//! exists.

use super::accounts::{AccountStore, valid_user};
use super::auth::{self, Credential, HashParams, NONCE_LEN, STORED_LEN};
use super::conns::Conns;
pub use super::conns::MAX_CONNS;
use super::error::PeerError;
use super::io::{ConnId, Input, Listen, Node, Output, TcpEvent};
use super::outbox::Outbox;
use super::stream::{FrameReader, drain_frames};
use super::truth::{EventKind, Role};
use crate::time::Ts;
use dissectors::skylark::codec::Message;
use dissectors::skylark::object::{Object, Value};
use dissectors::skylark::{Dir, ErrorCode, FieldId, Flags, MsgType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap as HashMap;
use std::collections::VecDeque;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Users and addresses tracked for rate limiting.
pub const MAX_TRACKED: usize = 65_536;
/// Bootstrap SNs sent in a credential response (PROTOCOL.md §6.1 caps sn-lists at 20).
pub const MAX_BOOTSTRAP: usize = 20;
/// PROTOCOL.md §11.2: hash-alg 2 = Argon2id.
pub const HASH_ALG_ARGON2ID: u32 = 2;
/// Far-future deadline when no timer is armed.
pub const NO_DEADLINE: Ts = Ts(i64::MAX);

const NANOS: i64 = Ts::NANOS_PER_SEC;

/// Login server configuration; defaults are PROTOCOL.md §8.9's.
#[derive(Clone, Debug)]
pub struct LoginServerConfig {
    pub name: String,
    /// TCP listening address (port 33034 by default).
    pub addr: SocketAddr,
    /// Where `login-server.toml` lives; `None` keeps everything in memory.
    pub state_dir: Option<PathBuf>,
    /// Seeds the RNG for nonces, salts and (on first start) the signing key.
    pub seed: u64,
    /// Argon2id parameters for new accounts and for decoy challenges.
    pub hash_params: HashParams,
    pub credential_lifetime_s: u64,
    /// Bootstrap SNs sent as sn-list in `credential`.
    pub bootstrap: Vec<SocketAddr>,
    pub nonce_validity_s: u64,
    pub idle_close_s: u64,
    /// Failed proofs that trigger rate limiting, per user and per source address.
    pub max_failures: usize,
    pub failure_window_s: u64,
    pub rate_limit_s: u64,
}

impl Default for LoginServerConfig {
    fn default() -> Self {
        LoginServerConfig {
            name: "login-server".into(),
            addr: SocketAddr::from(([0, 0, 0, 0], 33034)),
            state_dir: None,
            seed: 0,
            hash_params: HashParams::DEFAULT,
            credential_lifetime_s: 7 * 24 * 3600,
            bootstrap: Vec::new(),
            nonce_validity_s: 30,
            idle_close_s: 30,
            max_failures: 5,
            failure_window_s: 300,
            rate_limit_s: 300,
        }
    }
}

/// What the login server counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LsStats {
    pub accepted: u64,
    pub refused_conns: u64,
    pub challenges: u64,
    pub logins_ok: u64,
    pub auth_failed: u64,
    pub nonce_expired: u64,
    pub rate_limited: u64,
    pub bad_request: u64,
    /// Frames that did not parse (connection closed).
    pub malformed: u64,
    /// Responses, notifications and unknown types received (connection closed).
    pub unexpected: u64,
    pub idle_closed: u64,
    /// Input for connections the server does not know.
    pub unknown_conn: u64,
}

enum Phase {
    WaitHello,
    WaitProof {
        user: String,
        node_id: u64,
        nonce: [u8; NONCE_LEN],
        issued: Ts,
        /// `None` for an unknown user: every proof fails.
        stored: Option<[u8; STORED_LEN]>,
    },
}

struct Conn {
    remote: SocketAddr,
    reader: FrameReader,
    phase: Phase,
}

/// Failure counts with a lockout, per key (user name or address).
#[derive(Debug)]
pub struct FailureTracker<K> {
    map: HashMap<K, Failures>,
    threshold: usize,
    window: i64,
    penalty: i64,
}

#[derive(Debug, Default)]
struct Failures {
    recent: VecDeque<Ts>,
    limited_until: Option<Ts>,
}

impl<K: Hash + Eq + Clone> FailureTracker<K> {
    pub fn new(threshold: usize, window_s: u64, penalty_s: u64) -> Self {
        FailureTracker {
            map: HashMap::default(),
            threshold: threshold.max(1),
            window: secs(window_s),
            penalty: secs(penalty_s),
        }
    }

    pub fn is_limited(&self, k: &K, now: Ts) -> bool {
        self.map
            .get(k)
            .and_then(|f| f.limited_until)
            .is_some_and(|t| now < t)
    }

    /// Records one failure; true when it starts a lockout.
    pub fn record(&mut self, k: &K, now: Ts) -> bool {
        if !self.map.contains_key(k) && self.map.len() >= MAX_TRACKED {
            self.prune(now);
            if self.map.len() >= MAX_TRACKED {
                // Still full: forget an arbitrary entry rather than grow (bounded memory
                // beats perfect accounting under a flood of distinct names).
                if let Some(victim) = self.map.keys().next().cloned() {
                    self.map.remove(&victim);
                }
            }
        }
        let (window, threshold, penalty) = (self.window, self.threshold, self.penalty);
        let f = self.map.entry(k.clone()).or_default();
        while f.recent.front().is_some_and(|t| now.since(*t) >= window) {
            f.recent.pop_front();
        }
        f.recent.push_back(now);
        if f.recent.len() >= threshold {
            f.recent.clear();
            f.limited_until = Some(now.add_nanos(penalty));
            return true;
        }
        false
    }

    pub fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }

    /// Drops entries with nothing left to remember.
    pub fn prune(&mut self, now: Ts) {
        let window = self.window;
        self.map.retain(|_, f| {
            f.limited_until.is_some_and(|t| now < t)
                || f.recent.back().is_some_and(|t| now.since(*t) < window)
        });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The login server state machine.
pub struct LoginServer {
    cfg: LoginServerConfig,
    store: AccountStore,
    rng: ChaCha8Rng,
    out: Outbox,
    conns: Conns<Conn>,
    by_user: FailureTracker<String>,
    by_addr: FailureTracker<IpAddr>,
    stats: LsStats,
}

impl LoginServer {
    /// Loads `state_dir/login-server.toml` if present, else creates a store and signing key
    /// from the seeded RNG (saved by [`LoginServer::save`]).
    pub fn new(cfg: LoginServerConfig) -> Result<LoginServer, PeerError> {
        if !cfg.hash_params.within_bounds() {
            return Err(PeerError::Config("hash parameters out of bounds".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let loaded = match &cfg.state_dir {
            Some(dir) => AccountStore::load(dir)?,
            None => None,
        };
        let store = match loaded {
            Some(s) => s,
            None => {
                let mut key = [0u8; 32];
                let mut secret = [0u8; 32];
                rng.fill_bytes(&mut key);
                rng.fill_bytes(&mut secret);
                AccountStore::new(key, secret)
            }
        };
        let mut cfg = cfg;
        cfg.bootstrap.truncate(MAX_BOOTSTRAP);
        Ok(LoginServer {
            by_user: FailureTracker::new(cfg.max_failures, cfg.failure_window_s, cfg.rate_limit_s),
            by_addr: FailureTracker::new(cfg.max_failures, cfg.failure_window_s, cfg.rate_limit_s),
            out: Outbox::new(cfg.name.clone(), Role::LoginServer),
            cfg,
            store,
            rng,
            conns: Conns::default(),
            stats: LsStats::default(),
        })
    }

    /// Adds (or replaces) an account with a fresh random salt and the configured Argon2id
    /// parameters.
    pub fn add_account(
        &mut self,
        user: &str,
        password: &str,
        buddies: &[String],
    ) -> Result<(), PeerError> {
        let mut salt = [0u8; auth::SALT_LEN];
        self.rng.fill_bytes(&mut salt);
        self.store
            .add(user, password, salt, self.cfg.hash_params, buddies)
    }

    /// The Ed25519 key super nodes verify credentials with.
    pub fn public_key(&self) -> [u8; 32] {
        self.store.signing_key.verifying_key().to_bytes()
    }

    /// Writes the store to `state_dir` (a no-op without one).
    pub fn save(&self) -> Result<(), PeerError> {
        match &self.cfg.state_dir {
            Some(dir) => self.store.save(dir),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> LsStats {
        self.stats
    }

    pub fn config(&self) -> &LoginServerConfig {
        &self.cfg
    }

    fn next_deadline(&self) -> Ts {
        let idle = secs(self.cfg.idle_close_s);
        self.conns.next_idle(idle).unwrap_or(NO_DEADLINE)
    }

    fn on_timeout(&mut self, now: Ts) {
        let idle = secs(self.cfg.idle_close_s);
        for id in self.conns.idle_at(now, idle) {
            self.stats.idle_closed += 1;
            self.close(id);
        }
        self.by_user.prune(now);
        self.by_addr.prune(now);
    }

    fn close(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.out.close(conn);
    }

    fn on_tcp(&mut self, now: Ts, conn: ConnId, event: TcpEvent<'_>) {
        match event {
            TcpEvent::Accepted { local, remote } => {
                let fresh = Conn {
                    remote,
                    reader: FrameReader::default(),
                    phase: Phase::WaitHello,
                };
                if !self
                    .conns
                    .accept(&mut self.out, now, conn, (local, remote), fresh)
                {
                    self.stats.refused_conns += 1;
                    return;
                }
                self.stats.accepted += 1;
            }
            TcpEvent::Data(data) => {
                let Some(c) = self.conns.touch(&conn, now) else {
                    self.stats.unknown_conn += 1;
                    return;
                };
                c.reader.push(data);
                if drain_frames(
                    self,
                    |s: &mut Self| s.conns.get_mut(&conn).map(|c| (&mut c.reader, ())),
                    |s, (), msg| s.on_message(now, conn, msg),
                )
                .is_err()
                {
                    self.stats.malformed += 1;
                    self.close(conn);
                }
            }
            TcpEvent::Closed => {
                self.conns.remove(&conn);
                self.out.conn_down(conn);
            }
            // The LS never connects out.
            TcpEvent::Connected { .. } | TcpEvent::ConnectFailed => self.stats.unknown_conn += 1,
        }
    }

    fn on_message(&mut self, now: Ts, conn: ConnId, msg: Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let remote = c.remote;
        match (&c.phase, msg.msg_type) {
            (Phase::WaitHello, MsgType::AuthHello) => self.on_hello(now, conn, remote, &msg),
            (Phase::WaitProof { .. }, MsgType::AuthProof) => self.on_proof(now, conn, remote, &msg),
            (_, t) => {
                if t.dir() == Some(Dir::Request) {
                    self.stats.bad_request += 1;
                    self.error(now, conn, &msg, ErrorCode::BadRequest);
                } else {
                    // Responses and notifications cannot carry an error (§5.2).
                    self.stats.unexpected += 1;
                }
                self.close(conn);
            }
        }
    }

    fn error(&mut self, now: Ts, conn: ConnId, req: &Message, code: ErrorCode) {
        let m = error_response(req.msg_type, req.txn_id, code, &[]);
        self.out.tcp(now, conn, false, &m);
    }

    fn on_hello(&mut self, now: Ts, conn: ConnId, remote: SocketAddr, msg: &Message) {
        let user = match get_str(msg, FieldId::User) {
            Some(u) if valid_user(u) => u.to_owned(),
            _ => {
                self.stats.bad_request += 1;
                self.error(now, conn, msg, ErrorCode::BadRequest);
                self.close(conn);
                return;
            }
        };
        if self.by_user.is_limited(&user, now) || self.by_addr.is_limited(&remote.ip(), now) {
            self.stats.rate_limited += 1;
            self.error(now, conn, msg, ErrorCode::RateLimited);
            self.close(conn);
            return;
        }
        let (salt, params, stored) = match self.store.get(&user) {
            Some(a) => (a.salt, a.params, Some(a.stored)),
            None => (self.store.decoy_salt(&user), self.cfg.hash_params, None),
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        let challenge = Message::new(
            MsgType::AuthChallenge,
            Flags::RESP,
            msg.txn_id,
            vec![
                Object::blob(FieldId::Salt, &salt),
                Object::blob(FieldId::Nonce, &nonce),
                Object::u32(FieldId::HashAlg, HASH_ALG_ARGON2ID),
                Object::u32(FieldId::ArgonM, params.m_kib),
                Object::u32(FieldId::ArgonT, params.t),
                Object::u32(FieldId::ArgonP, params.p),
            ],
        );
        self.out.tcp(now, conn, false, &challenge);
        self.stats.challenges += 1;
        let node_id = get_u64(msg, FieldId::NodeId).unwrap_or(0);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::WaitProof {
                user,
                node_id,
                nonce,
                issued: now,
                stored,
            };
        }
    }

    fn on_proof(&mut self, now: Ts, conn: ConnId, remote: SocketAddr, msg: &Message) {
        let Some(Conn {
            phase:
                Phase::WaitProof {
                    user,
                    node_id,
                    nonce,
                    issued,
                    stored,
                },
            ..
        }) = self.conns.remove(&conn)
        else {
            return;
        };
        // The connection ends after this message whatever happens: the nonce is spent.
        let proof = get_blob(msg, FieldId::Proof);
        if get_str(msg, FieldId::User) != Some(user.as_str()) || proof.map(<[u8]>::len) != Some(32)
        {
            self.stats.bad_request += 1;
            self.error(now, conn, msg, ErrorCode::BadRequest);
            self.out.close(conn);
            return;
        }
        if self.by_user.is_limited(&user, now) || self.by_addr.is_limited(&remote.ip(), now) {
            self.stats.rate_limited += 1;
            self.error(now, conn, msg, ErrorCode::RateLimited);
            self.out.close(conn);
            return;
        }
        if now.since(issued) > secs(self.cfg.nonce_validity_s) {
            self.stats.nonce_expired += 1;
            self.error(now, conn, msg, ErrorCode::AuthFailed);
            self.out.close(conn);
            return;
        }
        let ok = match (stored, proof) {
            (Some(s), Some(p)) => auth::proof_matches(&s, &nonce, p),
            _ => false,
        };
        if !ok {
            self.stats.auth_failed += 1;
            let locked = self.by_user.record(&user, now) | self.by_addr.record(&remote.ip(), now);
            if locked {
                self.out.event(
                    now,
                    EventKind::Note {
                        what: format!("rate-limiting logins for {user} / {}", remote.ip()),
                    },
                );
            }
            self.error(now, conn, msg, ErrorCode::AuthFailed);
            self.out.close(conn);
            return;
        }
        self.by_user.clear(&user);
        let expiry = unix_secs(now).saturating_add(self.cfg.credential_lifetime_s);
        let cred = Credential {
            expiry,
            node_id,
            user: user.clone(),
        };
        let Ok(blob) = cred.sign(&self.store.signing_key) else {
            self.error(now, conn, msg, ErrorCode::Internal);
            self.out.close(conn);
            return;
        };
        let mut objects = vec![
            Object::blob(FieldId::CredentialBlob, &blob),
            Object::u64(FieldId::Expiry, expiry),
        ];
        if !self.cfg.bootstrap.is_empty() {
            objects.push(sn_list(&self.cfg.bootstrap));
        }
        let credential = Message::new(MsgType::Credential, Flags::RESP, msg.txn_id, objects);
        self.out.tcp(now, conn, false, &credential);
        let buddies = self
            .store
            .get(&user)
            .map(|a| {
                a.buddies
                    .iter()
                    .map(|b| Object::str(FieldId::User, b))
                    .collect()
            })
            .unwrap_or_default();
        let list = Message::new(
            MsgType::BuddyList,
            Flags::RESP,
            msg.txn_id,
            vec![Object::list(FieldId::Buddies, buddies)],
        );
        self.out.tcp(now, conn, false, &list);
        self.out.close(conn);
        self.stats.logins_ok += 1;
        self.out.event(
            now,
            EventKind::Note {
                what: format!("credential issued to {user} (expires {expiry})"),
            },
        );
    }
}

impl Node for LoginServer {
    fn listen(&self) -> Listen {
        Listen {
            udp: Vec::new(),
            tcp: vec![self.cfg.addr],
        }
    }

    fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Timeout(now) => self.on_timeout(now),
            Input::Tcp { now, conn, event } => self.on_tcp(now, conn, event),
            // The LS has no UDP socket and takes no commands.
            Input::Udp { .. } | Input::Command { .. } => self.stats.unexpected += 1,
        }
    }

    fn poll_output(&mut self) -> Output {
        if self.out.is_empty() {
            return Output::Timeout(self.next_deadline());
        }
        self.out.poll(NO_DEADLINE)
    }
}

// ---- small wire helpers shared by the server roles ----

pub(crate) fn secs(s: u64) -> i64 {
    i64::try_from(s)
        .unwrap_or(i64::MAX / NANOS)
        .saturating_mul(NANOS)
}

/// Node time as Unix seconds (the drivers run nodes on a Unix-epoch clock).
pub(crate) fn unix_secs(now: Ts) -> u64 {
    u64::try_from(now.as_nanos() / NANOS).unwrap_or(0)
}

pub(crate) fn error_response(
    req: MsgType,
    txn: u32,
    code: ErrorCode,
    sns: &[SocketAddr],
) -> Message {
    let mut objects = vec![Object::u32(FieldId::ErrorCode, u32::from(code))];
    if !sns.is_empty() {
        objects.push(sn_list(sns));
    }
    Message::new(req, Flags::ERR, txn, objects)
}

pub(crate) fn sn_list(sns: &[SocketAddr]) -> Object {
    Object::list(
        FieldId::SnList,
        sns.iter()
            .take(MAX_BOOTSTRAP)
            .map(|a| Object::addr(FieldId::Addr, *a))
            .collect(),
    )
}

pub(crate) fn get_str(m: &Message, id: FieldId) -> Option<&str> {
    match m.get(id) {
        Some(Value::Str(s)) => Some(s),
        _ => None,
    }
}

pub(crate) fn get_u32(m: &Message, id: FieldId) -> Option<u32> {
    match m.get(id) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    }
}

pub(crate) fn get_u64(m: &Message, id: FieldId) -> Option<u64> {
    match m.get(id) {
        Some(Value::U64(v)) => Some(*v),
        _ => None,
    }
}

pub(crate) fn get_blob(m: &Message, id: FieldId) -> Option<&[u8]> {
    match m.get(id) {
        Some(Value::Blob(b)) => Some(b),
        _ => None,
    }
}

pub(crate) fn get_list(m: &Message, id: FieldId) -> Option<&[Object]> {
    match m.get(id) {
        Some(Value::List(l)) => Some(l),
        _ => None,
    }
}

#[cfg(test)]
#[path = "login_server_tests.rs"]
pub(crate) mod tests;
