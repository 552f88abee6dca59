//! Scripted state-machine tests of the client: a tiny deterministic world plays the home
//! server, the login server and super nodes (answers, forwarding, relays) around one or
//! more real `Client`s with zero-latency delivery and virtual time.

use super::*;
use crate::peer::auth::{self, Credential};
use crate::peer::io::{Datagram, TcpOut};
use crate::peer::truth::{EventKind, MediaPath};
use dissectors::skylark::codec::Body;
use dissectors::skylark::header::Flags;
use dissectors::skylark::messages::{ErrorCode, FieldId};
use dissectors::skylark::object::{Object, Value};
use dissectors::stun::StunMessage;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use std::collections::HashMap;

const T0: i64 = 1_767_225_600 * SEC;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sn1() -> SocketAddr {
    sa("10.0.0.1:33033")
}
fn sn2() -> SocketAddr {
    sa("10.0.0.2:33033")
}
fn ls() -> SocketAddr {
    sa("10.0.0.10:33034")
}
fn home() -> SocketAddr {
    sa("10.0.0.11:80")
}
fn relay_addr() -> SocketAddr {
    sa("10.0.0.1:40001")
}

fn cfg(name: &str, i: u8) -> ClientConfig {
    ClientConfig {
        name: name.into(),
        password: format!("pw-{name}"),
        addr: SocketAddr::from(([10, 0, 1, i], 40000 + u16::from(i))),
        login_server: ls(),
        home: home(),
        bootstrap: vec![sn1(), sn2()],
        hash_params_fallback: HashParams::FAST,
        auto_answer: true,
        seed: u64::from(i),
        ..ClientConfig::default()
    }
}

/// Knobs of the scripted servers.
struct Knobs {
    /// SNs answer UDP (hc-probe, STUN, fallback, nat-ping).
    sn_udp: bool,
    /// SNs answer STUN.
    stun: bool,
    /// TCP connects to SNs succeed.
    sn_tcp: bool,
    /// SNs answer sn-refresh.
    refresh_ack: bool,
    /// Client UDP between peers works (direct media).
    peer_udp: bool,
    /// The LS accepts this password for every user (None: the client's own).
    wrong_password: bool,
    relay_ok: bool,
    /// Argon2 parameters the LS announces (None: the fields are left out).
    ls_params: Option<HashParams>,
    /// sn-register answers: errors for the first registrations at sn1.
    register_errors: Vec<ErrorCode>,
    /// The reflexive address SNs report over UDP (None: the true source, a public node).
    reflexive: Option<SocketAddr>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            sn_udp: true,
            stun: true,
            sn_tcp: true,
            refresh_ack: true,
            peer_udp: true,
            wrong_password: false,
            relay_ok: true,
            ls_params: Some(HashParams::FAST),
            register_errors: Vec::new(),
            reflexive: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Far {
    Sn(SocketAddr),
    Ls,
    Home,
    Peer(usize, ConnId),
    Relay,
}

struct World {
    now: Ts,
    clients: Vec<Client>,
    deadlines: Vec<Ts>,
    k: Knobs,
    /// (client, conn) → what is at the other end.
    conns: HashMap<(usize, ConnId), Far>,
    readers: HashMap<(usize, ConnId), FrameReader>,
    next_accept: u64,
    key: SigningKey,
    /// user → (client, SN conn, advertised addr, nat)
    registered: HashMap<String, (usize, ConnId, SocketAddr, u32)>,
    /// call id → legs (client, conn) for SN forwarding.
    calls: HashMap<u32, Vec<(usize, ConnId)>>,
    /// relay: call id → sources seen.
    relay: HashMap<u32, Vec<(usize, Option<ConnId>)>>,
    nonces: HashMap<(usize, ConnId), [u8; 16]>,
    log: Vec<(usize, Output)>,
}

impl World {
    fn new(cfgs: Vec<ClientConfig>, k: Knobs) -> World {
        let clients: Vec<Client> = cfgs.into_iter().map(|c| Client::new(c).unwrap()).collect();
        let n = clients.len();
        World {
            now: Ts(T0),
            clients,
            deadlines: vec![Ts(0); n],
            k,
            conns: HashMap::new(),
            readers: HashMap::new(),
            next_accept: 1,
            key: SigningKey::from_bytes(&[7u8; 32]),
            registered: HashMap::new(),
            calls: HashMap::new(),
            relay: HashMap::new(),
            nonces: HashMap::new(),
            log: Vec::new(),
        }
    }

    fn client_by_addr(&self, a: SocketAddr) -> Option<usize> {
        self.clients.iter().position(|c| c.cfg.addr == a)
    }

    fn input(&mut self, i: usize, inp: Input<'_>) {
        if let Some(c) = self.clients.get_mut(i) {
            c.handle_input(inp);
        }
    }

    fn udp_to(&mut self, i: usize, from: SocketAddr, data: &[u8]) {
        let now = self.now;
        let local = self.clients[i].cfg.addr;
        self.input(
            i,
            Input::Udp {
                now,
                local,
                from,
                data,
            },
        );
    }

    fn tcp_to(&mut self, i: usize, conn: ConnId, event: TcpEvent<'_>) {
        let now = self.now;
        self.input(i, Input::Tcp { now, conn, event });
    }

    fn msg_to(&mut self, i: usize, conn: ConnId, m: &Message) {
        let b = m.to_bytes().unwrap();
        self.tcp_to(i, conn, TcpEvent::Data(&b));
    }

    fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut any = false;
            for i in 0..self.clients.len() {
                loop {
                    match self.clients[i].poll_output() {
                        Output::Timeout(t) => {
                            self.deadlines[i] = t;
                            break;
                        }
                        o => {
                            any = true;
                            self.log.push((i, o.clone()));
                            self.deliver(i, o);
                        }
                    }
                }
            }
            if !any {
                return;
            }
        }
        panic!("world did not settle");
    }

    fn run_until(&mut self, end: Ts) {
        loop {
            self.pump();
            let next = self.deadlines.iter().copied().min().unwrap_or(FAR);
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            for i in 0..self.clients.len() {
                if self.deadlines[i] <= self.now {
                    let now = self.now;
                    self.input(i, Input::Timeout(now));
                }
            }
        }
    }

    fn run_for(&mut self, secs_f: f64) {
        let end = self.now.add_nanos((secs_f * 1e9) as i64);
        self.run_until(end);
    }

    fn cmd(&mut self, i: usize, words: &str) {
        let now = self.now;
        let words = words.split_whitespace().map(String::from).collect();
        self.input(i, Input::Command { now, words });
    }

    fn events(&self, i: usize) -> Vec<EventKind> {
        self.log
            .iter()
            .filter(|(j, _)| *j == i)
            .filter_map(|(_, o)| match o {
                Output::Event(e) => Some(e.kind.clone()),
                _ => None,
            })
            .collect()
    }

    fn sent(&self, i: usize, name: &str) -> usize {
        self.log
            .iter()
            .filter(|(j, o)| {
                *j == i
                    && match o {
                        Output::Udp(d) => d.label.msg_type == name,
                        Output::Tcp(TcpOut::Send { label, .. }) => label.msg_type == name,
                        _ => false,
                    }
            })
            .count()
    }

    fn logins(&self, i: usize) -> Vec<(bool, Option<SocketAddr>, String)> {
        self.events(i)
            .into_iter()
            .filter_map(|e| match e {
                EventKind::Login { ok, sn, detail } => Some((ok, sn, detail)),
                _ => None,
            })
            .collect()
    }

    // ------------------------------------------------------------ delivery

    fn deliver(&mut self, i: usize, o: Output) {
        match o {
            Output::Udp(d) => self.deliver_udp(i, d),
            Output::Tcp(TcpOut::Connect { conn, to, .. }) => self.connect(i, conn, to),
            Output::Tcp(TcpOut::Send { conn, data, .. }) => self.tcp_data(i, conn, &data),
            Output::Tcp(TcpOut::Close { conn }) => {
                if let Some(Far::Peer(j, c)) = self.conns.remove(&(i, conn)) {
                    self.conns.remove(&(j, c));
                    self.tcp_to(j, c, TcpEvent::Closed);
                }
            }
            Output::Event(_) | Output::Timeout(_) => {}
        }
    }

    fn is_sn(a: SocketAddr) -> bool {
        a.ip() == sn1().ip() || a.ip() == sn2().ip()
    }

    fn deliver_udp(&mut self, i: usize, d: Datagram) {
        let from = self.clients[i].cfg.addr;
        if d.to == relay_addr() {
            if !self.k.relay_ok {
                return;
            }
            if let Ok(m) = Message::parse(&d.data) {
                let id = m.call_id().unwrap_or(0);
                self.relay_forward(id, (i, None), &d.data);
            }
            return;
        }
        if Self::is_sn(d.to) {
            if !self.k.sn_udp {
                return;
            }
            if d.data.first() != Some(&0x53) {
                if !self.k.stun {
                    return;
                }
                let req = StunMessage::parse(&d.data).unwrap();
                let refl = self.k.reflexive.unwrap_or(from);
                let resp =
                    StunMessage::binding_success(req.transaction_id, refl, Some("skylark-sn/1"));
                let mut b = Vec::new();
                resp.emit(&mut b).unwrap();
                self.udp_to(i, d.to, &b);
                return;
            }
            let m = Message::parse(&d.data).unwrap();
            let reply = match m.msg_type {
                MsgType::HcProbe => Message::new(
                    MsgType::HcProbeAck,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        Object::u64(FieldId::NodeId, 1),
                        Object::addr(FieldId::Reflexive, self.k.reflexive.unwrap_or(from)),
                    ],
                ),
                MsgType::FallbackProbe => Message::new(
                    MsgType::FallbackProbeAck,
                    Flags::RESP,
                    m.txn_id,
                    vec![Object::u64(FieldId::NodeId, 1)],
                ),
                MsgType::NatPing => Message::new(
                    MsgType::NatPong,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        Object::u64(FieldId::NodeId, 1),
                        m.objects()[1].clone(),
                        Object::addr(FieldId::Reflexive, from),
                    ],
                ),
                _ => return,
            };
            self.udp_to(i, d.to, &reply.to_bytes().unwrap());
            return;
        }
        if let Some(j) = self.client_by_addr(d.to) {
            if self.k.peer_udp {
                self.udp_to(j, from, &d.data);
            }
        }
    }

    fn relay_forward(&mut self, id: u32, src: (usize, Option<ConnId>), data: &[u8]) {
        let legs = self.relay.entry(id).or_default();
        if !legs.contains(&src) && legs.len() < 2 {
            legs.push(src);
        }
        let other = legs.iter().copied().find(|l| l.0 != src.0);
        match other {
            Some((j, Some(c))) => self.tcp_to(j, c, TcpEvent::Data(data)),
            Some((j, None)) => self.udp_to(j, relay_addr(), data),
            None => {}
        }
    }

    fn connect(&mut self, i: usize, conn: ConnId, to: SocketAddr) {
        let local = SocketAddr::new(self.clients[i].cfg.addr.ip(), 50000 + conn.0 as u16);
        let far = if to == ls() {
            Some(Far::Ls)
        } else if to == home() {
            Some(Far::Home)
        } else if to == relay_addr() {
            Some(Far::Relay)
        } else if Self::is_sn(to) {
            self.k
                .sn_tcp
                .then_some(Far::Sn(SocketAddr::new(to.ip(), 33033)))
        } else if let Some(j) = self.client_by_addr(to) {
            let c = ConnId(ConnId::ACCEPTED_BIT | self.next_accept);
            self.next_accept += 1;
            self.conns.insert((j, c), Far::Peer(i, conn));
            self.tcp_to(
                j,
                c,
                TcpEvent::Accepted {
                    local: to,
                    remote: local,
                },
            );
            Some(Far::Peer(j, c))
        } else {
            None
        };
        match far {
            Some(f) => {
                self.conns.insert((i, conn), f);
                self.tcp_to(i, conn, TcpEvent::Connected { local });
            }
            None => self.tcp_to(i, conn, TcpEvent::ConnectFailed),
        }
    }

    fn tcp_data(&mut self, i: usize, conn: ConnId, data: &[u8]) {
        let Some(far) = self.conns.get(&(i, conn)).copied() else {
            return;
        };
        match far {
            Far::Home => {
                let r = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n1.0.1";
                self.tcp_to(i, conn, TcpEvent::Data(r));
                self.conns.remove(&(i, conn));
                self.tcp_to(i, conn, TcpEvent::Closed);
            }
            Far::Peer(j, c) => self.tcp_to(j, c, TcpEvent::Data(data)),
            Far::Ls | Far::Sn(_) | Far::Relay => {
                let r = self.readers.entry((i, conn)).or_default();
                r.push(data);
                let mut msgs = Vec::new();
                while let Ok(Some(m)) = r.next_message() {
                    msgs.push(m);
                }
                for m in msgs {
                    match far {
                        Far::Ls => self.ls_msg(i, conn, &m),
                        Far::Relay => self.relay_msg(i, conn, &m, data),
                        _ => self.sn_msg(i, conn, &m),
                    }
                }
            }
        }
    }

    fn relay_msg(&mut self, i: usize, conn: ConnId, m: &Message, raw: &[u8]) {
        if m.msg_type == MsgType::RelayRequest {
            let id = m.call_id().unwrap();
            let g = Message::new(
                MsgType::RelayGrant,
                Flags::RESP,
                m.txn_id,
                vec![
                    Object::u32(FieldId::CallId, id),
                    Object::addr(FieldId::RelayAddr, relay_addr()),
                    Object::blob(FieldId::RelayToken, &[9; 16]),
                ],
            );
            self.relay.entry(id).or_default().push((i, Some(conn)));
            self.msg_to(i, conn, &g);
        } else if let Some(id) = m.call_id() {
            self.relay_forward(id, (i, Some(conn)), raw);
        }
    }

    fn ls_msg(&mut self, i: usize, conn: ConnId, m: &Message) {
        let salt = [0x10u8; 16];
        match m.msg_type {
            MsgType::AuthHello => {
                let nonce = [0xa0u8 ^ i as u8; 16];
                self.nonces.insert((i, conn), nonce);
                let mut objs = vec![
                    Object::blob(FieldId::Salt, &salt),
                    Object::blob(FieldId::Nonce, &nonce),
                    Object::u32(FieldId::HashAlg, 2),
                ];
                if let Some(p) = self.k.ls_params {
                    objs.push(Object::u32(FieldId::from(0x28), p.m_kib));
                    objs.push(Object::u32(FieldId::from(0x29), p.t));
                    objs.push(Object::u32(FieldId::from(0x2a), p.p));
                }
                let r = Message::new(MsgType::AuthChallenge, Flags::RESP, m.txn_id, objs);
                self.msg_to(i, conn, &r);
            }
            MsgType::AuthProof => {
                let user = self.clients[i].cfg.name.clone();
                let pw = if self.k.wrong_password {
                    "something else".to_string()
                } else {
                    self.clients[i].cfg.password.clone()
                };
                let stored = auth::stored_hash(&pw, &salt, HashParams::FAST).unwrap();
                let nonce = self.nonces[&(i, conn)];
                let Some(Value::Blob(p)) = m.get(FieldId::Proof) else {
                    panic!("no proof")
                };
                if !auth::proof_matches(&stored, &nonce, p) {
                    let e = Message::new(
                        MsgType::AuthProof,
                        Flags::ERR,
                        m.txn_id,
                        vec![Object::u32(
                            FieldId::ErrorCode,
                            ErrorCode::AuthFailed.into(),
                        )],
                    );
                    self.msg_to(i, conn, &e);
                    return;
                }
                let expiry = (self.now.as_nanos() / SEC) as u64 + 7 * 86400;
                let blob = Credential {
                    expiry,
                    node_id: self.clients[i].node_id,
                    user,
                }
                .sign(&self.key)
                .unwrap();
                let c = Message::new(
                    MsgType::Credential,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        Object::blob(FieldId::CredentialBlob, &blob),
                        Object::u64(FieldId::Expiry, expiry),
                    ],
                );
                self.msg_to(i, conn, &c);
                let b = Message::new(
                    MsgType::BuddyList,
                    Flags::RESP,
                    m.txn_id,
                    vec![Object::list(
                        FieldId::Buddies,
                        vec![Object::str(FieldId::User, "bob")],
                    )],
                );
                self.msg_to(i, conn, &b);
                self.conns.remove(&(i, conn));
                self.tcp_to(i, conn, TcpEvent::Closed);
            }
            _ => {}
        }
    }

    fn entry_of(&self, user: &str) -> Option<Object> {
        let (_, _, addr, nat) = self.registered.get(user)?;
        Some(Object::list(
            FieldId::Entry,
            vec![
                Object::str(FieldId::User, user),
                Object::u32(FieldId::Status, 1),
                Object::addr(FieldId::Addr, *addr),
                Object::addr(FieldId::SnAddr, sn1()),
                Object::u32(FieldId::NatType, *nat),
            ],
        ))
    }

    fn sn_msg(&mut self, i: usize, conn: ConnId, m: &Message) {
        let err = |m: &Message, code: ErrorCode| {
            Message::new(
                m.msg_type,
                Flags::ERR,
                m.txn_id,
                vec![Object::u32(FieldId::ErrorCode, code.into())],
            )
        };
        let s = |m: &Message, id| match m.get(id) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        };
        match m.msg_type {
            MsgType::HcProbe => {
                let r = Message::new(
                    MsgType::HcProbeAck,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        Object::u64(FieldId::NodeId, 1),
                        Object::addr(FieldId::Reflexive, sa("192.0.2.99:1234")),
                    ],
                );
                self.msg_to(i, conn, &r);
            }
            MsgType::SnRegister => {
                let user = s(m, FieldId::User);
                let Some(Value::Addr(a)) = m.get(FieldId::Addr) else {
                    panic!()
                };
                let Some(Value::U32(nat)) = m.get(FieldId::NatType) else {
                    panic!()
                };
                let Some(Value::Blob(b)) = m.get(FieldId::CredentialBlob) else {
                    panic!()
                };
                let cred = Credential::verify(b, &self.key.verifying_key()).unwrap();
                if !self.k.register_errors.is_empty() && conn_is(self.conns.get(&(i, conn)), sn1())
                {
                    let code = self.k.register_errors.remove(0);
                    let mut e = err(m, code);
                    if let Body::Objects(o) = &mut e.body {
                        o.push(Object::list(
                            FieldId::SnList,
                            vec![Object::addr(FieldId::Addr, sn2())],
                        ));
                    }
                    self.msg_to(i, conn, &e);
                    return;
                }
                if cred.expiry <= (self.now.as_nanos() / SEC) as u64 {
                    self.msg_to(i, conn, &err(m, ErrorCode::CredentialExpired));
                    return;
                }
                self.registered.insert(user, (i, conn, *a, *nat));
                let r = Message::new(
                    MsgType::SnRegisterAck,
                    Flags::RESP,
                    m.txn_id,
                    vec![Object::u32(FieldId::Ttl, 259_200)],
                );
                self.msg_to(i, conn, &r);
            }
            MsgType::SnRefresh if self.k.refresh_ack => {
                let r = Message::new(
                    MsgType::SnRefreshAck,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        m.get(FieldId::Seq)
                            .map(|v| Object::new(FieldId::Seq, v.clone()))
                            .unwrap(),
                    ],
                );
                self.msg_to(i, conn, &r);
            }
            MsgType::Search => {
                let target = s(m, FieldId::Target);
                let r = match self.entry_of(&target) {
                    Some(e) => Message::new(
                        MsgType::SearchResult,
                        Flags::RESP,
                        m.txn_id,
                        vec![
                            Object::str(FieldId::Target, &target),
                            e,
                            Object::u32(FieldId::Ring, 1),
                        ],
                    ),
                    None => err(m, ErrorCode::NotFound),
                };
                self.msg_to(i, conn, &r);
            }
            MsgType::RelayRequest => {
                if !self.k.relay_ok {
                    self.msg_to(i, conn, &err(m, ErrorCode::RelayUnavailable));
                    return;
                }
                let r = Message::new(
                    MsgType::RelayGrant,
                    Flags::RESP,
                    m.txn_id,
                    vec![
                        Object::u32(FieldId::CallId, m.call_id().unwrap()),
                        Object::addr(FieldId::RelayAddr, relay_addr()),
                        Object::blob(FieldId::RelayToken, &[9; 16]),
                    ],
                );
                self.msg_to(i, conn, &r);
            }
            MsgType::Invite if !m.flags.is_response() => {
                let callee = s(m, FieldId::Callee);
                let id = m.call_id().unwrap();
                match self.registered.get(&callee).copied() {
                    Some((j, c, _, _)) => {
                        self.calls.insert(id, vec![(i, conn), (j, c)]);
                        self.msg_to(j, c, m);
                    }
                    None => self.msg_to(i, conn, &err(m, ErrorCode::NotFound)),
                }
            }
            _ => {
                // Forward any other signalling by call id to the other leg.
                let Some(id) = m.call_id() else { return };
                let Some(legs) = self.calls.get(&id).cloned() else {
                    return;
                };
                if let Some((j, c)) = legs.into_iter().find(|l| *l != (i, conn)) {
                    self.msg_to(j, c, m);
                }
            }
        }
    }
}

fn conn_is(f: Option<&Far>, sn: SocketAddr) -> bool {
    f == Some(&Far::Sn(sn))
}

fn setups(w: &World, i: usize) -> Vec<(u64, String, MediaPath, Option<SocketAddr>)> {
    w.events(i)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::CallSetup {
                call_id,
                peer,
                path,
                relay,
            } => Some((call_id, peer, path, relay)),
            _ => None,
        })
        .collect()
}

fn failures(w: &World, i: usize) -> Vec<String> {
    w.events(i)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::CallFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- login

#[test]
fn login_happy_path_runs_every_step_in_order_with_labels() {
    let mut w = World::new(vec![cfg("alice", 1)], Knobs::default());
    w.run_for(10.0);
    let logins = w.logins(0);
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert!(logins[0].0);
    assert_eq!(logins[0].1, Some(sn1()));
    assert!(logins[0].2.contains("nat=public"), "{}", logins[0].2);
    let order: Vec<&str> = w
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Udp(d) => Some(d.label.msg_type),
            Output::Tcp(TcpOut::Send { label, .. }) => Some(label.msg_type),
            _ => None,
        })
        .collect();
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap_or(usize::MAX);
    assert!(pos("http-version-check") < pos("hc-probe"));
    assert!(pos("hc-probe") < pos("stun-binding-request"));
    assert!(pos("stun-binding-request") < pos("auth-hello"));
    assert!(pos("auth-hello") < pos("auth-proof"));
    assert!(pos("auth-proof") < pos("sn-register"));
    assert!(pos("sn-register") < pos("fallback-probe"));
    assert_eq!(
        w.sent(0, "stun-binding-request"),
        2,
        "one per SN, both answered"
    );
    // Labels: the version check and auth go home, the rest do not.
    for (_, o) in &w.log {
        let l = match o {
            Output::Udp(d) => &d.label,
            Output::Tcp(TcpOut::Send { label, .. }) => label,
            _ => continue,
        };
        let home_dst = l.dst == ls() || l.dst == home();
        assert_eq!(l.home, home_dst, "{l:?}");
        assert_eq!(&*l.node, "alice");
    }
    let c = &w.clients[0];
    assert!(c.is_online());
    assert_eq!(c.nat_type(), NatType::Public);
    assert!(c.credential().is_some());
    assert_eq!(c.login.buddies, vec!["bob".to_string()]);
    assert_eq!(c.login.fallback.len(), 1, "sn2 answered the fallback probe");
    assert!(
        w.events(0)
            .iter()
            .any(|e| matches!(e, EventKind::Note { what } if what.contains("1.0.1")))
    );
    // Steady state over 5 minutes: keepalives every 60 s, acked; re-polls; presence.
    w.run_for(300.0);
    assert_eq!(w.sent(0, "sn-refresh"), 5);
    assert!(w.clients[0].is_online());
    assert!(w.sent(0, "nat-ping") >= 10);
    assert_eq!(w.sent(0, "presence-query"), 2);
}

#[test]
fn hourly_refresh_sends_full_refresh_hc_exchange_and_rediscovers_nat() {
    let mut w = World::new(vec![cfg("alice", 1)], Knobs::default());
    w.run_for(10.0);
    let stun_before = w.sent(0, "stun-binding-request");
    w.run_for(4000.0);
    assert_eq!(w.sent(0, "hc-exchange-request"), 1);
    assert!(w.sent(0, "stun-binding-request") > stun_before);
    assert!(w.clients[0].is_online());
}

#[test]
fn dead_host_cache_falls_back_to_tcp_ports_then_fails_after_five_rounds() {
    let k = Knobs {
        sn_udp: false,
        sn_tcp: false,
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(200.0);
    let logins = w.logins(0);
    assert_eq!(logins.len(), 1);
    assert!(!logins[0].0);
    assert!(logins[0].2.contains("LOGIN_FAILED"), "{}", logins[0].2);
    assert_eq!(
        w.sent(0, "hc-probe"),
        5 * 2,
        "two bootstrap SNs, five rounds"
    );
    // Each round: own port, 80, 443 for each of the two SNs.
    let ports: Vec<u16> = w
        .log
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Tcp(TcpOut::Connect { to, .. }) if World::is_sn(*to) => Some(to.port()),
            _ => None,
        })
        .collect();
    assert_eq!(ports.len(), 5 * 6);
    assert_eq!(&ports[..6], &[33033, 80, 443, 33033, 80, 443]);
    assert_eq!(w.clients[0].stats().login_rounds, 5);
}

#[test]
fn udp_blocked_is_detected_and_login_proceeds_over_tcp_only() {
    let k = Knobs {
        sn_udp: false,
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(20.0);
    let logins = w.logins(0);
    assert!(logins.len() == 1 && logins[0].0, "{logins:?}");
    assert_eq!(w.clients[0].nat_type(), NatType::UdpBlocked);
    assert!(logins[0].2.contains("udp-blocked"));
    assert_eq!(
        w.sent(0, "fallback-probe"),
        0,
        "FALLBACK skipped when UDP is blocked"
    );
}

#[test]
fn thirty_unanswered_udp_probes_skip_stun_and_later_udp_rounds() {
    let mut c = cfg("alice", 1);
    c.bootstrap = (0..30u16)
        .map(|p| SocketAddr::new(sn1().ip(), 33033 + p))
        .collect();
    let k = Knobs {
        sn_udp: false,
        ..Knobs::default()
    };
    let mut w = World::new(vec![c], k);
    w.run_for(20.0);
    assert!(w.clients[0].is_online());
    assert_eq!(w.clients[0].nat_type(), NatType::UdpBlocked);
    assert_eq!(w.sent(0, "stun-binding-request"), 0);
    assert_eq!(
        w.sent(0, "hc-probe"),
        30 + 1,
        "30 UDP probes, then one over TCP"
    );
}

#[test]
fn wrong_password_ends_login_with_auth_failed() {
    let k = Knobs {
        wrong_password: true,
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(30.0);
    let logins = w.logins(0);
    assert_eq!(logins.len(), 1);
    assert!(!logins[0].0);
    assert_eq!(logins[0].2, "auth-failed");
    assert_eq!(w.sent(0, "auth-proof"), 1, "not retried");
    assert_eq!(w.sent(0, "sn-register"), 0);
}

#[test]
fn challenge_params_above_the_maximum_are_refused_before_hashing() {
    let k = Knobs {
        ls_params: Some(HashParams {
            m_kib: HashParams::MAX.m_kib + 1,
            t: 1,
            p: 1,
        }),
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(30.0);
    let logins = w.logins(0);
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].2, "hash parameters refused");
    assert_eq!(w.sent(0, "auth-proof"), 0);
}

#[test]
fn challenge_without_argon_fields_uses_the_configured_fallback() {
    let k = Knobs {
        ls_params: None,
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(10.0);
    assert!(w.clients[0].is_online());
}

#[test]
fn overloaded_sn_sends_the_client_to_the_next_sn() {
    let k = Knobs {
        register_errors: vec![ErrorCode::Overloaded],
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(10.0);
    assert_eq!(w.clients[0].super_node(), Some(sn2()));
    assert_eq!(w.sent(0, "sn-register"), 2);
}

#[test]
fn credential_expired_at_register_runs_auth_once_more() {
    let k = Knobs {
        register_errors: vec![ErrorCode::CredentialExpired],
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(10.0);
    assert!(w.clients[0].is_online());
    assert_eq!(w.sent(0, "auth-hello"), 2);
    // Twice in a row: the second refusal ends login.
    let k = Knobs {
        register_errors: vec![ErrorCode::CredentialExpired, ErrorCode::CredentialExpired],
        ..Knobs::default()
    };
    let mut w = World::new(vec![cfg("alice", 1)], k);
    w.run_for(10.0);
    let logins = w.logins(0);
    assert!(!logins[0].0);
    assert!(
        logins[0].2.contains("credential-expired"),
        "{}",
        logins[0].2
    );
}

#[test]
fn unreachable_home_server_does_not_stop_login_and_telemetry_posts_periodically() {
    let mut c = cfg("alice", 1);
    c.home = sa("10.9.9.9:80");
    let mut w = World::new(vec![c], Knobs::default());
    w.run_for(10.0);
    assert!(w.clients[0].is_online());
    let mut c = cfg("alice", 1);
    c.telemetry_period_s = Some(60);
    let mut w = World::new(vec![c], Knobs::default());
    w.run_for(190.0);
    assert_eq!(w.sent(0, "http-telemetry"), 3);
    let post = w.log.iter().find_map(|(_, o)| match o {
        Output::Tcp(TcpOut::Send { data, label, .. }) if label.msg_type == "http-telemetry" => {
            Some(String::from_utf8_lossy(data).to_string())
        }
        _ => None,
    });
    let post = post.unwrap();
    assert!(post.starts_with("POST /ui/0/1.0.0/en/telemetry HTTP/1.1\r\n"));
    assert!(post.contains("&nat=1"), "{post}");
}

#[test]
fn saved_credential_skips_auth_and_state_round_trips_on_disk() {
    let dir = std::env::temp_dir().join(format!("p2ptrace-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = cfg("alice", 1);
    c.state_dir = Some(dir.clone());
    let mut w = World::new(vec![c.clone()], Knobs::default());
    w.run_for(10.0);
    assert_eq!(w.sent(0, "auth-hello"), 1);
    w.clients[0].save().unwrap();
    let node_id = w.clients[0].node_id();
    // Restart from the saved state: same node id, host cache, and no AUTH.
    let mut c2 = c.clone();
    c2.ls_key = Some(w.key.verifying_key().to_bytes());
    let mut w2 = World::new(vec![c2.clone()], Knobs::default());
    assert_eq!(w2.clients[0].node_id(), node_id);
    assert!(w2.clients[0].host_cache().entries().contains(&sn1()));
    w2.run_for(10.0);
    assert_eq!(w2.sent(0, "auth-hello"), 0);
    assert!(w2.logins(0)[0].0);
    // With the LS key configured, a credential signed by another key is not used.
    c2.ls_key = Some(
        SigningKey::from_bytes(&[8u8; 32])
            .verifying_key()
            .to_bytes(),
    );
    let mut w3 = World::new(vec![c2], Knobs::default());
    w3.run_for(10.0);
    assert_eq!(w3.sent(0, "auth-hello"), 1);
    assert!(w3.logins(0)[0].0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_keepalive_ack_loses_the_sn_and_re_registers_via_fallback() {
    let mut w = World::new(vec![cfg("alice", 1)], Knobs::default());
    w.run_for(10.0);
    assert_eq!(w.clients[0].super_node(), Some(sn1()));
    w.k.refresh_ack = false;
    w.run_for(60.0 + 16.0);
    assert_eq!(w.clients[0].stats().sn_lost, 1);
    let logins = w.logins(0);
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert_eq!(
        logins[1].1,
        Some(sn2()),
        "the fallback-table node took over"
    );
    assert_eq!(w.sent(0, "sn-register"), 2);
}

#[test]
fn closed_sn_session_re_registers() {
    let mut w = World::new(vec![cfg("alice", 1)], Knobs::default());
    w.run_for(10.0);
    let conn = w.clients[0].login.sn.unwrap().conn;
    w.conns.remove(&(0, conn));
    w.tcp_to(0, conn, TcpEvent::Closed);
    w.run_for(5.0);
    assert_eq!(w.clients[0].stats().sn_lost, 1);
    assert!(w.clients[0].is_online());
    assert_eq!(w.logins(0).len(), 2);
}

// ---------------------------------------------------------------- lookups and calls

fn two(k: Knobs) -> World {
    let mut w = World::new(vec![cfg("alice", 1), cfg("bob", 2)], k);
    w.run_for(10.0);
    assert!(w.clients[0].is_online() && w.clients[1].is_online());
    w
}

#[test]
fn lookup_reports_found_address_and_not_found() {
    let mut w = two(Knobs::default());
    w.cmd(0, "lookup bob");
    w.cmd(0, "lookup nobody");
    w.run_for(1.0);
    let l: Vec<EventKind> = w
        .events(0)
        .into_iter()
        .filter(|e| matches!(e, EventKind::Lookup { .. }))
        .collect();
    assert_eq!(
        l,
        vec![
            EventKind::Lookup {
                target: "bob".into(),
                found: Some(w.clients[1].cfg.addr),
                rings: 1,
                nodes: 1
            },
            EventKind::Lookup {
                target: "nobody".into(),
                found: None,
                rings: 0,
                nodes: 1
            },
        ]
    );
}

#[test]
fn direct_call_sends_a_frame_every_30_ms_both_ways_for_a_minute() {
    let mut w = two(Knobs::default());
    w.cmd(0, "call bob");
    w.run_for(60.0);
    let s = setups(&w, 0);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].2, MediaPath::DirectUdp);
    assert_eq!(setups(&w, 1).len(), 1);
    // Direct signalling: alice opened TCP to bob (public).
    assert!(w.log.iter().any(|(i, o)| *i == 0
        && matches!(o, Output::Tcp(TcpOut::Connect { to, .. }) if *to == w.clients[1].cfg.addr)));
    for i in 0..2 {
        let sent = w.sent(i, "voice");
        assert!((1990..=2001).contains(&sent), "client {i} sent {sent}");
        let rx = w.clients[i].stats().voice_received;
        assert!((1990..=2001).contains(&rx), "client {i} received {rx}");
    }
    // 67-byte payloads: 87-byte messages.
    let len = w.log.iter().find_map(|(_, o)| match o {
        Output::Udp(d) if d.label.msg_type == "voice" => Some(d.data.len()),
        _ => None,
    });
    assert_eq!(len, Some(87));
    w.cmd(0, "hangup");
    w.run_for(1.0);
    assert!(
        w.events(0)
            .iter()
            .any(|e| matches!(e, EventKind::CallEnd { .. }))
    );
    assert!(
        w.events(1)
            .iter()
            .any(|e| matches!(e, EventKind::CallEnd { reason, .. } if reason.contains("hangup")))
    );
    let before = w.sent(0, "voice");
    w.run_for(2.0);
    assert_eq!(w.sent(0, "voice"), before, "media stops after bye");
}

#[test]
fn redundancy_repeats_previous_frames_in_each_voice_message() {
    let mut a = cfg("alice", 1);
    a.redundancy = 2;
    let mut b = cfg("bob", 2);
    b.redundancy = 1;
    let mut w = World::new(vec![a, b], Knobs::default());
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(1.0);
    let lens: Vec<usize> = w
        .log
        .iter()
        .filter_map(|(i, o)| match o {
            Output::Udp(d) if *i == 0 && d.label.msg_type == "voice" => Some(d.data.len()),
            _ => None,
        })
        .collect();
    // Agreed redundancy is min(offer 2, callee 1) on the callee side; the caller sends 2.
    assert_eq!(&lens[..3], &[87, 87 + 68, 87 + 2 * 68]);
    let m = Message::parse(
        &w.log
            .iter()
            .filter_map(|(i, o)| match o {
                Output::Udp(d) if *i == 0 && d.label.msg_type == "voice" => Some(d.data.clone()),
                _ => None,
            })
            .nth(2)
            .unwrap(),
    )
    .unwrap();
    let Body::Media(media) = m.body else { panic!() };
    assert_eq!(media.seq, 2);
    assert_eq!(media.timestamp, 480);
    let mut prev = Vec::new();
    synth_frame(1, m.txn_id, 1, 67, &mut prev);
    assert_eq!(
        media.redundancy[0], prev,
        "newest redundant frame is seq - 1"
    );
}

#[test]
fn silent_accepted_connections_are_closed_after_30_s() {
    let mut c = Client::new(cfg("alice", 1)).unwrap();
    let conn = ConnId(ConnId::ACCEPTED_BIT | 5);
    c.handle_input(Input::Tcp {
        now: Ts(T0),
        conn,
        event: TcpEvent::Accepted {
            local: c.cfg.addr,
            remote: sa("192.0.2.7:999"),
        },
    });
    c.handle_input(Input::Timeout(Ts(T0 + 31 * SEC)));
    let mut closed = false;
    loop {
        match c.poll_output() {
            Output::Timeout(_) => break,
            Output::Tcp(TcpOut::Close { conn: x }) => closed |= x == conn,
            _ => {}
        }
    }
    assert!(closed);
}

#[test]
fn hold_sends_about_three_keepalives_per_second_then_resume_restarts_voice() {
    let mut w = two(Knobs::default());
    w.cmd(0, "call bob");
    w.run_for(2.0);
    w.cmd(0, "hold");
    let v0 = w.sent(0, "voice");
    w.run_for(10.0);
    assert_eq!(w.sent(0, "voice"), v0);
    let ka = w.sent(0, "hold-keepalive");
    assert!((29..=31).contains(&ka), "{ka}");
    assert!(
        w.sent(1, "hold-keepalive") >= 29,
        "the held side keeps the path warm too"
    );
    w.cmd(0, "resume");
    w.run_for(3.0);
    assert!(w.sent(0, "voice") >= v0 + 99);
}

#[test]
fn call_to_unknown_user_fails_offline() {
    let mut w = two(Knobs::default());
    w.cmd(0, "call nobody");
    w.run_for(1.0);
    assert_eq!(failures(&w, 0), vec!["offline (not-found)".to_string()]);
}

#[test]
fn call_to_busy_callee_is_rejected_busy() {
    let mut w = World::new(
        vec![cfg("alice", 1), cfg("bob", 2), cfg("carol", 3)],
        Knobs::default(),
    );
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(1.0);
    w.cmd(2, "call bob");
    w.run_for(1.0);
    assert_eq!(failures(&w, 2), vec!["busy".to_string()]);
}

#[test]
fn direct_media_silence_for_3_s_falls_back_to_a_udp_relay() {
    let mut w = two(Knobs {
        peer_udp: false,
        ..Knobs::default()
    });
    w.cmd(0, "call bob");
    w.run_for(10.0);
    let s = setups(&w, 0);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].2, MediaPath::DirectUdp);
    assert_eq!(s[1].2, MediaPath::RelayUdp);
    assert_eq!(s[1].3, Some(relay_addr()));
    assert!(
        w.events(0).iter().any(
            |e| matches!(e, EventKind::CallEnd { reason, .. } if reason.starts_with("no-media"))
        )
    );
    assert!(
        w.clients[1].stats().voice_received > 150,
        "media flows through the relay"
    );
}

#[test]
fn udp_blocked_caller_uses_a_tcp_relay_leg() {
    let mut w = World::new(vec![cfg("alice", 1), cfg("bob", 2)], Knobs::default());
    // alice cannot use UDP at all: mark her before login by blocking SN UDP for her only.
    w.clients[0].login.udp_blocked = true;
    w.clients[0].login.nat = NatType::UdpBlocked;
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(5.0);
    let s = setups(&w, 0);
    assert_eq!(s.len(), 1, "{:?}", w.events(0));
    assert_eq!(s[0].2, MediaPath::RelayTcp);
    assert!(w.clients[1].stats().voice_received > 100);
    assert!(w.clients[0].stats().voice_received > 100);
}

#[test]
fn relay_refusal_fails_the_call() {
    let mut w = World::new(vec![cfg("alice", 1), cfg("bob", 2)], Knobs::default());
    w.clients[0].login.udp_blocked = true;
    w.clients[0].login.nat = NatType::UdpBlocked;
    w.k.relay_ok = false;
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(2.0);
    assert_eq!(failures(&w, 0), vec!["relay-unavailable".to_string()]);
}

#[test]
fn unanswered_call_is_rejected_after_60_s_and_caller_sees_declined() {
    let mut b = cfg("bob", 2);
    b.auto_answer = false;
    let mut w = World::new(vec![cfg("alice", 1), b], Knobs::default());
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(61.0);
    assert_eq!(w.sent(1, "ringing"), 1);
    assert_eq!(failures(&w, 0), vec!["declined timeout".to_string()]);
}

#[test]
fn caller_hangup_while_ringing_cancels_and_the_callee_ends_the_call() {
    let mut b = cfg("bob", 2);
    b.auto_answer = false;
    let mut w = World::new(vec![cfg("alice", 1), b], Knobs::default());
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(2.0);
    w.cmd(0, "hangup");
    w.run_for(1.0);
    assert_eq!(w.sent(0, "cancel"), 1);
    assert!(w.events(1).iter().any(
        |e| matches!(e, EventKind::CallEnd { reason, .. } if reason.contains("cancelled by caller"))
    ));
    // Then bob answers nothing: no stale call is left to answer.
    w.cmd(1, "answer");
    assert!(w.clients[1].calls.summary().starts_with("0 "));
}

#[test]
fn manual_answer_sets_the_call_up() {
    let mut b = cfg("bob", 2);
    b.auto_answer = false;
    let mut w = World::new(vec![cfg("alice", 1), b], Knobs::default());
    w.run_for(10.0);
    w.cmd(0, "call bob");
    w.run_for(2.0);
    assert!(setups(&w, 0).is_empty());
    w.cmd(1, "answer");
    w.run_for(1.0);
    assert_eq!(setups(&w, 0).len(), 1);
    assert_eq!(setups(&w, 1).len(), 1);
}

// ---------------------------------------------------------------- conference

#[test]
fn mixer_election_prefers_public_then_uplink_then_creator_then_name() {
    let c = |name: &str, nat, up, cr| MixerCandidate {
        name: name.into(),
        nat,
        uplink_kbps: up,
        is_creator: cr,
    };
    assert_eq!(elect_mixer(&[]), None);
    assert_eq!(
        elect_mixer(&[c("a", 2, 900, true), c("b", 1, 0, false)]),
        Some(1)
    );
    assert_eq!(
        elect_mixer(&[c("a", 1, 100, true), c("b", 1, 200, false)]),
        Some(1)
    );
    assert_eq!(
        elect_mixer(&[c("b", 1, 0, false), c("a", 1, 0, true)]),
        Some(1)
    );
    assert_eq!(
        elect_mixer(&[c("c", 1, 0, false), c("b", 1, 0, false)]),
        Some(1)
    );
}

#[test]
fn conference_elects_the_creator_as_mixer_and_mixes_for_every_member() {
    let mut w = World::new(
        vec![cfg("alice", 1), cfg("bob", 2), cfg("carol", 3)],
        Knobs::default(),
    );
    w.run_for(10.0);
    w.cmd(0, "conference bob carol");
    w.run_for(3.0);
    for i in 0..3 {
        let mixers: Vec<String> = w
            .events(i)
            .into_iter()
            .filter_map(|e| match e {
                EventKind::ConferenceMixer { mixer, .. } => Some(mixer),
                _ => None,
            })
            .collect();
        assert_eq!(
            mixers.first().map(String::as_str),
            Some("alice"),
            "client {i}"
        );
    }
    assert!(
        w.sent(0, "mix") > 150,
        "the mixer sends a mix to each member"
    );
    assert_eq!(w.sent(0, "voice"), 0);
    assert!(w.sent(1, "voice") > 75 && w.sent(2, "voice") > 75);
    assert!(w.sent(0, "conf-mixer") >= 2);
    assert_eq!(w.sent(1, "conf-join"), 1);
}

#[test]
fn conference_with_a_more_powerful_member_makes_it_the_mixer() {
    let mut w = World::new(
        vec![cfg("alice", 1), cfg("bob", 2), cfg("carol", 3)],
        Knobs::default(),
    );
    // alice is behind a cone NAT, bob and carol are public: bob (name order) mixes.
    w.run_for(10.0);
    w.clients[0].login.nat = NatType::Cone;
    w.cmd(0, "conference carol bob");
    w.run_for(3.0);
    let ev = w.events(0);
    assert!(
        ev.iter()
            .any(|e| matches!(e, EventKind::ConferenceMixer { mixer, .. } if mixer == "bob"))
    );
    assert!(w.sent(1, "mix") > 150, "bob mixes for alice and carol");
    assert_eq!(w.sent(0, "conf-join"), 1);
    assert_eq!(w.sent(2, "conf-join"), 1);
}

// ---------------------------------------------------------------- robustness

#[test]
fn commands_and_status_produce_notes_never_panics_offline() {
    let mut c = Client::new(cfg("alice", 1)).unwrap();
    for w in [
        "status",
        "call bob",
        "lookup bob",
        "hold",
        "hangup",
        "frobnicate",
        "",
    ] {
        c.handle_input(Input::Command {
            now: Ts(T0),
            words: w.split_whitespace().map(String::from).collect(),
        });
    }
    let mut notes = 0;
    loop {
        match c.poll_output() {
            Output::Timeout(_) => break,
            Output::Event(_) => notes += 1,
            _ => {}
        }
    }
    assert!(notes >= 5);
}

#[test]
fn bad_config_is_refused() {
    let mut c = cfg("alice", 1);
    c.frame_ms = 25;
    assert!(Client::new(c).is_err());
    let mut c = cfg("", 1);
    c.name.clear();
    assert!(Client::new(c).is_err());
}

fn arb_input() -> impl Strategy<Value = (u8, u64, Vec<u8>, u32)> {
    (
        0u8..6,
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..120),
        0u32..5000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn garbage_inputs_never_panic(ops in proptest::collection::vec(arb_input(), 1..60)) {
        let mut w = two(Knobs::default());
        w.cmd(0, "call bob");
        w.run_for(0.5);
        let conns: Vec<ConnId> = w.conns.keys().filter(|(i, _)| *i == 0).map(|(_, c)| *c).collect();
        for (kind, pick, data, dt) in ops {
            w.now = w.now.add_nanos(i64::from(dt) * MS);
            let now = w.now;
            let conn = conns.get(pick as usize % conns.len().max(1)).copied().unwrap_or(ConnId(pick));
            let c = &mut w.clients[0];
            match kind {
                0 => c.handle_input(Input::Udp { now, local: c.cfg.addr, from: sn1(), data: &data }),
                1 => {
                    // Well-framed header with garbage body, or raw garbage.
                    let mut b = data.clone();
                    if let Some(x) = b.first_mut() { *x = 0x53; }
                    c.handle_input(Input::Udp { now, local: c.cfg.addr, from: sa("10.0.1.2:40002"), data: &b });
                }
                2 => c.handle_input(Input::Tcp { now, conn, event: TcpEvent::Data(&data) }),
                3 => c.handle_input(Input::Tcp { now, conn: ConnId(pick), event: TcpEvent::Closed }),
                4 => c.handle_input(Input::Command {
                    now,
                    words: String::from_utf8_lossy(&data).split_whitespace().map(String::from).collect(),
                }),
                _ => c.handle_input(Input::Timeout(now)),
            }
            for _ in 0..10_000 {
                if let Output::Timeout(t) = w.clients[0].poll_output() {
                    prop_assert!(t >= Ts(0));
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Super-node promotion (PROTOCOL.md §8.10).

fn promotable(w: &World, name: &str, i: u8) -> ClientConfig {
    ClientConfig {
        ls_key: Some(w.key.verifying_key().to_bytes()),
        promotion_uptime_s: 60,
        ..cfg(name, i)
    }
}

fn promotion_world(k: Knobs, tweak: impl Fn(&mut ClientConfig)) -> World {
    let mut w = World::new(vec![], k);
    let mut c = promotable(&w, "alice", 1);
    tweak(&mut c);
    w.clients.push(Client::new(c).unwrap());
    w.deadlines.push(Ts(0));
    w
}

fn promoted_notes(w: &World, i: usize) -> usize {
    w.events(i)
        .iter()
        .filter(|e| matches!(e, EventKind::Note { what } if what == "promoted to super node"))
        .count()
}

/// Outputs of client `i` from log position `from` on, sent with `role`.
fn sent_as(w: &World, i: usize, from: usize, role: Role) -> Vec<(&'static str, SocketAddr)> {
    w.log
        .iter()
        .skip(from)
        .filter(|(j, _)| *j == i)
        .filter_map(|(_, o)| match o {
            Output::Udp(d) => Some(&d.label),
            Output::Tcp(TcpOut::Send { label, .. }) => Some(label),
            _ => None,
        })
        .filter(|l| l.role == role)
        .map(|l| (l.msg_type, l.dst))
        .collect()
}

#[test]
fn public_client_with_uptime_and_uplink_is_promoted_once() {
    let mut w = promotion_world(Knobs::default(), |_| {});
    w.run_for(59.0);
    assert!(w.clients[0].is_online());
    assert!(!w.clients[0].is_promoted(), "not before the uptime");
    w.run_for(2.0);
    assert!(w.clients[0].is_promoted());
    assert_eq!(promoted_notes(&w, 0), 1);
    let sn = w.clients[0].super_node_role().unwrap();
    assert_eq!(sn.node_id(), w.clients[0].node_id(), "one node, one id");
    assert!(
        sn.host_cache().contains(&sn2()),
        "the client's host cache seeds the SN's"
    );
    w.run_for(600.0);
    assert_eq!(
        promoted_notes(&w, 0),
        1,
        "promotion is one-way and happens once"
    );
    assert!(w.clients[0].is_online());
}

#[test]
fn promotion_needs_public_address_bandwidth_key_and_enabled() {
    type Tweak = fn(&mut ClientConfig);
    let cases: Vec<(&str, Knobs, Tweak)> = vec![
        (
            "behind a NAT",
            Knobs {
                reflexive: Some(sa("198.51.100.7:4444")),
                ..Knobs::default()
            },
            |_| {},
        ),
        ("low uplink", Knobs::default(), |c| c.uplink_kbps = 128),
        ("no LS key", Knobs::default(), |c| c.ls_key = None),
        ("disabled", Knobs::default(), |c| c.promotion = false),
    ];
    for (why, k, tweak) in cases {
        let mut w = promotion_world(k, tweak);
        w.run_for(300.0);
        assert!(w.clients[0].is_online(), "{why}: online");
        assert!(!w.clients[0].is_promoted(), "{why}: not promoted");
        assert_eq!(promoted_notes(&w, 0), 0, "{why}");
    }
}

#[test]
fn promoted_node_announces_sn_addr_in_every_sn_refresh() {
    let mut w = promotion_world(Knobs::default(), |_| {});
    w.run_for(30.0);
    let sn_addr_refreshes = |w: &World| {
        w.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Tcp(TcpOut::Send { data, label, .. }) if label.msg_type == "sn-refresh" => {
                    Message::parse(data).ok()
                }
                _ => None,
            })
            .filter(|m| m.get(FieldId::SnAddr) == Some(&Value::Addr(sa("10.0.1.1:40001"))))
            .count()
    };
    assert_eq!(sn_addr_refreshes(&w), 0, "no sn-addr before promotion");
    w.run_for(30.5);
    assert!(w.clients[0].is_promoted());
    assert!(sn_addr_refreshes(&w) >= 1, "announced at promotion");
    w.run_for(120.0);
    assert!(sn_addr_refreshes(&w) >= 3, "and in every refresh after");
}

#[test]
fn promoted_node_serves_probes_and_registrations_while_its_client_side_keeps_alive() {
    let mut w = promotion_world(Knobs::default(), |_| {});
    // Before promotion an hc-probe from a stranger is not the client's business.
    let stranger = sa("192.0.2.50:5000");
    let probe = Message::new(
        MsgType::HcProbe,
        Flags::REQUEST,
        77,
        vec![Object::u64(FieldId::NodeId, 9)],
    )
    .to_bytes()
    .unwrap();
    w.run_for(10.0);
    let mark = w.log.len();
    w.udp_to(0, stranger, &probe);
    w.pump();
    assert!(sent_as(&w, 0, mark, Role::SuperNode).is_empty());
    assert!(
        !sent_as(&w, 0, mark, Role::Client)
            .iter()
            .any(|(t, _)| *t == "hc-probe-ack")
    );

    w.run_for(55.0);
    assert!(w.clients[0].is_promoted());
    // UDP hc-probe from another address: hc-probe-ack from the SN role.
    let mark = w.log.len();
    w.udp_to(0, stranger, &probe);
    w.pump();
    assert_eq!(
        sent_as(&w, 0, mark, Role::SuperNode),
        vec![("hc-probe-ack", stranger)]
    );
    // STUN Binding request: answered by the SN role too.
    let stun = StunMessage::binding_request([3; 12], Some("skylark/1.0.0"));
    let mut b = Vec::new();
    stun.emit(&mut b).unwrap();
    let mark = w.log.len();
    w.udp_to(0, stranger, &b);
    w.pump();
    assert_eq!(
        sent_as(&w, 0, mark, Role::SuperNode),
        vec![("stun-binding-success", stranger)]
    );

    // A client registers over TCP with a credential from the same login server.
    let dave = sa("192.0.2.51:6000");
    let conn = ConnId(ConnId::ACCEPTED_BIT | 900);
    let local = w.clients[0].cfg.addr;
    w.tcp_to(
        0,
        conn,
        TcpEvent::Accepted {
            local,
            remote: dave,
        },
    );
    let expiry = (w.now.as_nanos() / SEC) as u64 + 86400;
    let blob = Credential {
        expiry,
        node_id: 42,
        user: "dave".into(),
    }
    .sign(&w.key)
    .unwrap();
    let reg = Message::new(
        MsgType::SnRegister,
        Flags::REQUEST,
        5,
        vec![
            Object::str(FieldId::User, "dave"),
            Object::blob(FieldId::CredentialBlob, &blob),
            Object::u64(FieldId::Expiry, expiry),
            Object::addr(FieldId::Addr, dave),
            Object::u32(FieldId::NatType, 1),
        ],
    )
    .to_bytes()
    .unwrap();
    let mark = w.log.len();
    // In two pieces: the routing decision waits for a whole header.
    w.tcp_to(0, conn, TcpEvent::Data(&reg[..5]));
    w.tcp_to(0, conn, TcpEvent::Data(&reg[5..]));
    w.pump();
    assert_eq!(
        sent_as(&w, 0, mark, Role::SuperNode)
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>(),
        vec!["sn-register-ack"]
    );
    let sn = w.clients[0].super_node_role().unwrap();
    assert_eq!(sn.online(), 1);
    assert!(sn.entry("dave", w.now).is_some());

    // The client side stays a client of sn1: keepalives go on, acked.
    let refreshes = w.sent(0, "sn-refresh");
    w.run_for(180.0);
    assert!(w.sent(0, "sn-refresh") >= refreshes + 3);
    assert!(w.clients[0].is_online());
    assert_eq!(w.clients[0].super_node(), Some(sn1()));
}

#[test]
fn promoted_node_still_takes_direct_calls_on_accepted_connections() {
    let mut w = World::new(vec![], Knobs::default());
    let a = promotable(&w, "alice", 1);
    let b = cfg("bob", 2);
    w.clients.push(Client::new(a).unwrap());
    w.clients.push(Client::new(b).unwrap());
    w.deadlines = vec![Ts(0); 2];
    w.run_for(65.0);
    assert!(w.clients[0].is_promoted());
    // bob calls alice directly (alice is public): the invite reaches her client role.
    w.cmd(1, "call alice");
    w.run_for(5.0);
    let s = setups(&w, 1);
    assert_eq!(s.len(), 1, "{:?}", failures(&w, 1));
    assert!(w.clients[0].stats().voice_received > 50);
}

#[test]
fn garbage_on_a_promoted_node_is_dropped_without_panic() {
    let mut w = promotion_world(Knobs::default(), |_| {});
    w.run_for(65.0);
    assert!(w.clients[0].is_promoted());
    let junk: [&[u8]; 5] = [
        b"",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        &[0x53; 40],
        &[0x00, 0x01, 0x00, 0x00],
        &[0xff; 3],
    ];
    for (n, j) in junk.iter().enumerate() {
        w.udp_to(0, sa("192.0.2.60:1"), j);
        let conn = ConnId(ConnId::ACCEPTED_BIT | (1000 + n as u64));
        let local = w.clients[0].cfg.addr;
        w.tcp_to(
            0,
            conn,
            TcpEvent::Accepted {
                local,
                remote: sa("192.0.2.61:2"),
            },
        );
        w.tcp_to(0, conn, TcpEvent::Data(j));
        w.pump();
    }
    w.run_for(120.0);
    assert!(w.clients[0].is_online());
    assert!(
        w.clients[0].promo.undecided.is_empty(),
        "silent connections swept"
    );
}

#[test]
fn a_node_never_adds_itself_to_its_host_cache() {
    let mut c = Client::new(cfg("alice", 1)).unwrap();
    let own = c.cfg.addr;
    c.learn_sn(own);
    c.learn_sn(sn2());
    assert!(!c.host_cache().entries().contains(&own));
    assert!(c.host_cache().entries().contains(&sn2()));
}
