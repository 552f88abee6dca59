//! Scripted login-server sessions (PROTOCOL.md §8.3): every answer checked with its label.

use super::*;
use crate::peer::io::TcpOut;
use crate::peer::truth::{Label, Transport};
use dissectors::registry::TrafficClass;

/// Shared by the server-role tests: feed inputs, collect outputs.
pub(crate) mod kit {
    use crate::peer::io::{ConnId, Input, Node, Output, TcpEvent, TcpOut};
    use crate::peer::truth::Label;
    use crate::time::Ts;
    use dissectors::skylark::codec::Message;
    use std::net::SocketAddr;

    pub fn t(secs: f64) -> Ts {
        // A Unix-epoch clock in 2026, as the drivers use.
        Ts(1_780_000_000 * Ts::NANOS_PER_SEC + (secs * 1e9) as i64)
    }

    pub fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Everything the node wants to do now, and the deadline it ends with.
    pub fn drain(n: &mut impl Node) -> (Vec<Output>, Ts) {
        let mut v = Vec::new();
        loop {
            match n.poll_output() {
                Output::Timeout(t) => return (v, t),
                o => v.push(o),
            }
            assert!(v.len() < 100_000, "output never ends");
        }
    }

    pub fn accept(n: &mut impl Node, now: Ts, conn: u64, local: &str, remote: &str) -> ConnId {
        let conn = ConnId(conn | ConnId::ACCEPTED_BIT);
        n.handle_input(Input::Tcp {
            now,
            conn,
            event: TcpEvent::Accepted {
                local: a(local),
                remote: a(remote),
            },
        });
        conn
    }

    pub fn send_tcp(n: &mut impl Node, now: Ts, conn: ConnId, m: &Message) {
        let bytes = m.to_bytes().unwrap();
        n.handle_input(Input::Tcp {
            now,
            conn,
            event: TcpEvent::Data(&bytes),
        });
    }

    pub fn send_raw(n: &mut impl Node, now: Ts, conn: ConnId, bytes: &[u8]) {
        n.handle_input(Input::Tcp {
            now,
            conn,
            event: TcpEvent::Data(bytes),
        });
    }

    pub fn send_udp(n: &mut impl Node, now: Ts, local: &str, from: &str, bytes: &[u8]) {
        n.handle_input(Input::Udp {
            now,
            local: a(local),
            from: a(from),
            data: bytes,
        });
    }

    /// Skylark messages sent on TCP (with their connection and label).
    pub fn tcp_msgs(outs: &[Output]) -> Vec<(ConnId, Message, Label)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Tcp(TcpOut::Send { conn, data, label }) => {
                    Some((*conn, Message::parse(data).ok()?, label.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Skylark datagrams sent (destination, message, label).
    pub fn udp_msgs(outs: &[Output]) -> Vec<(SocketAddr, Message, Label)> {
        outs.iter()
            .filter_map(|o| match o {
                Output::Udp(d) => Some((d.to, Message::parse(&d.data).ok()?, d.label.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn closed(outs: &[Output], conn: ConnId) -> bool {
        outs.iter()
            .any(|o| matches!(o, Output::Tcp(TcpOut::Close { conn: c }) if *c == conn))
    }

    /// Accepts `max` connections on `local`, then one more: the first `max` stay open, the
    /// last is closed at once (the node's connection cap).
    pub fn refuses_past_cap(n: &mut impl Node, max: usize, local: &str) {
        let remote = |i: usize| format!("10.9.{}.{}:40000", i / 250, i % 250 + 1);
        let open: Vec<ConnId> = (0..max)
            .map(|i| accept(n, t(0.0), i as u64, local, &remote(i)))
            .collect();
        let (outs, _) = drain(n);
        assert!(
            open.iter().all(|c| !closed(&outs, *c)),
            "closed below the cap"
        );
        let extra = accept(n, t(0.0), max as u64, local, &remote(max));
        let (outs, _) = drain(n);
        assert!(closed(&outs, extra), "not closed past the cap");
    }

    /// The error code of an error response.
    pub fn error_code(m: &Message) -> Option<u32> {
        use dissectors::skylark::{FieldId, Value};
        match m.get(FieldId::ErrorCode) {
            Some(Value::U32(c)) if m.flags.bits() & 0x2 != 0 => Some(*c),
            _ => None,
        }
    }
}

use kit::*;

const LS: &str = "10.0.0.1:33034";
const ALICE: &str = "10.0.1.1:40000";

#[test]
fn connections_past_the_cap_are_refused() {
    let mut ls = server();
    refuses_past_cap(&mut ls, MAX_CONNS, LS);
    assert_eq!(
        (ls.stats().accepted, ls.stats().refused_conns),
        (MAX_CONNS as u64, 1)
    );
}

fn server() -> LoginServer {
    let mut ls = LoginServer::new(LoginServerConfig {
        name: "ls".into(),
        addr: a(LS),
        hash_params: HashParams::FAST,
        bootstrap: vec![a("10.0.2.1:33033")],
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    ls.add_account("alice", "correct horse", &["bob".into(), "carol".into()])
        .unwrap();
    ls
}

fn hello(txn: u32, user: &str) -> Message {
    Message::new(
        MsgType::AuthHello,
        Flags::REQUEST,
        txn,
        vec![
            Object::str(FieldId::User, user),
            Object::str(FieldId::Software, "skylark/1.0.0"),
            Object::u64(FieldId::NodeId, 0x0123_4567_89ab_cdef),
        ],
    )
}

/// What the client computes from a challenge.
fn answer(challenge: &Message, user: &str, password: &str, txn: u32) -> Message {
    let salt: [u8; 16] = get_blob(challenge, FieldId::Salt)
        .unwrap()
        .try_into()
        .unwrap();
    let nonce = get_blob(challenge, FieldId::Nonce).unwrap();
    let params = HashParams {
        m_kib: get_u32(challenge, FieldId::ArgonM).unwrap(),
        t: get_u32(challenge, FieldId::ArgonT).unwrap(),
        p: get_u32(challenge, FieldId::ArgonP).unwrap(),
    };
    let stored = auth::stored_hash(password, &salt, params).unwrap();
    proof_msg(txn, user, &auth::proof(&stored, nonce))
}

fn proof_msg(txn: u32, user: &str, proof: &[u8]) -> Message {
    Message::new(
        MsgType::AuthProof,
        Flags::REQUEST,
        txn,
        vec![
            Object::str(FieldId::User, user),
            Object::blob(FieldId::Proof, proof),
        ],
    )
}

fn assert_label(l: &Label, msg_type: &str, to: &str) {
    assert_eq!(l.msg_type, msg_type);
    assert_eq!(l.class, TrafficClass::Login);
    assert!(!l.home, "the LS answers clients: not home-bound");
    assert_eq!(l.transport, Transport::Tcp);
    assert_eq!(l.src, a(LS));
    assert_eq!(l.dst, a(to));
    assert_eq!(&*l.node, "ls");
    assert_eq!(l.role, Role::LoginServer);
}

/// hello → challenge; returns the challenge.
fn challenge(ls: &mut LoginServer, now: Ts, conn: ConnId, user: &str) -> Message {
    send_tcp(ls, now, conn, &hello(2, user));
    let (outs, _) = drain(ls);
    let msgs = tcp_msgs(&outs);
    assert_eq!(msgs.len(), 1, "{outs:?}");
    let (c, m, l) = &msgs[0];
    assert_eq!(*c, conn);
    assert_eq!(m.msg_type, MsgType::AuthChallenge);
    assert_eq!(m.txn_id, 2);
    assert_eq!(get_u32(m, FieldId::HashAlg), Some(HASH_ALG_ARGON2ID));
    assert_label(l, "auth-challenge", ALICE);
    m.clone()
}

fn fail_once(ls: &mut LoginServer, now: Ts, n: u64, remote: &str) -> Message {
    let conn = accept(ls, now, n, LS, remote);
    let ch = challenge_from(ls, now, conn);
    send_tcp(ls, now, conn, &answer(&ch, "alice", "wrong", 3));
    let (outs, _) = drain(ls);
    assert!(closed(&outs, conn));
    tcp_msgs(&outs).remove(0).1
}

fn challenge_from(ls: &mut LoginServer, now: Ts, conn: ConnId) -> Message {
    send_tcp(ls, now, conn, &hello(2, "alice"));
    let (outs, _) = drain(ls);
    tcp_msgs(&outs).remove(0).1
}

#[test]
fn right_password_gets_a_signed_credential_buddies_and_bootstrap_sns_then_close() {
    let mut ls = server();
    let now = t(0.0);
    let conn = accept(&mut ls, now, 1, LS, ALICE);
    let ch = challenge(&mut ls, now, conn, "alice");
    send_tcp(
        &mut ls,
        t(1.0),
        conn,
        &answer(&ch, "alice", "correct horse", 3),
    );
    let (outs, _) = drain(&mut ls);
    let msgs = tcp_msgs(&outs);
    assert_eq!(msgs.len(), 2);
    let (_, cred, l) = &msgs[0];
    assert_eq!(cred.msg_type, MsgType::Credential);
    assert_eq!(cred.txn_id, 3);
    assert_label(l, "credential", ALICE);
    let blob = get_blob(cred, FieldId::CredentialBlob).unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&ls.public_key()).unwrap();
    let c = Credential::verify(blob, &key).unwrap();
    assert_eq!(c.user, "alice");
    assert_eq!(c.node_id, 0x0123_4567_89ab_cdef);
    assert_eq!(c.expiry, unix_secs(t(1.0)) + 604_800);
    assert_eq!(get_u64(cred, FieldId::Expiry), Some(c.expiry));
    let sns = get_list(cred, FieldId::SnList).unwrap();
    assert_eq!(sns, &[Object::addr(FieldId::Addr, a("10.0.2.1:33033"))]);
    let (_, buddies, l) = &msgs[1];
    assert_eq!(buddies.msg_type, MsgType::BuddyList);
    assert_label(l, "buddy-list", ALICE);
    assert_eq!(get_list(buddies, FieldId::Buddies).unwrap().len(), 2);
    assert!(closed(&outs, conn));
    assert_eq!(ls.stats().logins_ok, 1);
}

#[test]
fn wrong_password_is_auth_failed_then_close() {
    let mut ls = server();
    let m = fail_once(&mut ls, t(0.0), 1, ALICE);
    assert_eq!(m.msg_type, MsgType::AuthProof);
    assert_eq!(m.txn_id, 3);
    assert_eq!(error_code(&m), Some(u32::from(ErrorCode::AuthFailed)));
    assert_eq!(ls.stats().auth_failed, 1);
}

#[test]
fn unknown_user_gets_a_stable_decoy_challenge_then_auth_failed() {
    let mut ls = server();
    let c1 = accept(&mut ls, t(0.0), 1, LS, ALICE);
    let ch1 = challenge(&mut ls, t(0.0), c1, "mallory");
    let c2 = accept(&mut ls, t(0.0), 2, LS, ALICE);
    let ch2 = challenge(&mut ls, t(0.0), c2, "mallory");
    // Same salt every time (as for a real account), same field set as a real challenge.
    assert_eq!(get_blob(&ch1, FieldId::Salt), get_blob(&ch2, FieldId::Salt));
    assert_ne!(
        get_blob(&ch1, FieldId::Nonce),
        get_blob(&ch2, FieldId::Nonce)
    );
    let c3 = accept(&mut ls, t(0.0), 3, LS, ALICE);
    let real = challenge(&mut ls, t(0.0), c3, "alice");
    let ids = |m: &Message| m.objects().iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(ids(&ch1), ids(&real));
    send_tcp(&mut ls, t(1.0), c1, &answer(&ch1, "mallory", "anything", 3));
    let (outs, _) = drain(&mut ls);
    let m = &tcp_msgs(&outs)[0].1;
    assert_eq!(error_code(m), Some(u32::from(ErrorCode::AuthFailed)));
    assert!(closed(&outs, c1));
}

#[test]
fn five_failures_rate_limit_the_user_for_five_minutes() {
    let mut ls = server();
    for i in 0..5u8 {
        // Different source addresses: the per-user limit alone must trigger.
        let m = fail_once(
            &mut ls,
            t(f64::from(i)),
            u64::from(i) + 1,
            &format!("10.0.3.{i}:1"),
        );
        assert_eq!(error_code(&m), Some(u32::from(ErrorCode::AuthFailed)));
    }
    // Even the right password is refused now, at the hello.
    let conn = accept(&mut ls, t(10.0), 9, LS, "10.0.4.1:1");
    send_tcp(&mut ls, t(10.0), conn, &hello(2, "alice"));
    let (outs, _) = drain(&mut ls);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(m.msg_type, MsgType::AuthHello);
    assert_eq!(error_code(m), Some(u32::from(ErrorCode::RateLimited)));
    assert_eq!(l.msg_type, "auth-hello");
    assert!(closed(&outs, conn));
    // After the 5 minutes the right password works again.
    let later = t(4.0 + 300.0 + 1.0);
    let conn = accept(&mut ls, later, 10, LS, ALICE);
    let ch = challenge(&mut ls, later, conn, "alice");
    send_tcp(
        &mut ls,
        later,
        conn,
        &answer(&ch, "alice", "correct horse", 3),
    );
    let (outs, _) = drain(&mut ls);
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::Credential);
}

#[test]
fn five_failures_from_one_address_rate_limit_that_address() {
    let mut ls = server();
    ls.add_account("bob", "pw", &[]).unwrap();
    for i in 0..5u8 {
        fail_once(&mut ls, t(f64::from(i)), u64::from(i) + 1, ALICE);
    }
    let conn = accept(&mut ls, t(10.0), 9, LS, ALICE);
    send_tcp(&mut ls, t(10.0), conn, &hello(2, "bob"));
    let (outs, _) = drain(&mut ls);
    assert_eq!(
        error_code(&tcp_msgs(&outs)[0].1),
        Some(u32::from(ErrorCode::RateLimited))
    );
    assert_eq!(ls.stats().rate_limited, 1);
}

#[test]
fn a_replayed_proof_fails_against_a_fresh_nonce() {
    let mut ls = server();
    let c1 = accept(&mut ls, t(0.0), 1, LS, ALICE);
    let ch = challenge(&mut ls, t(0.0), c1, "alice");
    let good = answer(&ch, "alice", "correct horse", 3);
    send_tcp(&mut ls, t(0.5), c1, &good);
    let (outs, _) = drain(&mut ls);
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::Credential);
    // An eavesdropper replays the same proof on a new connection.
    let c2 = accept(&mut ls, t(1.0), 2, LS, "10.0.9.9:1");
    challenge_from(&mut ls, t(1.0), c2);
    send_tcp(&mut ls, t(1.0), c2, &good);
    let (outs, _) = drain(&mut ls);
    assert_eq!(
        error_code(&tcp_msgs(&outs)[0].1),
        Some(u32::from(ErrorCode::AuthFailed))
    );
    // And the first connection's nonce is spent: more data there is ignored.
    send_tcp(&mut ls, t(1.0), c1, &good);
    let (outs, _) = drain(&mut ls);
    assert!(tcp_msgs(&outs).is_empty());
    assert_eq!(ls.stats().unknown_conn, 1);
}

#[test]
fn a_proof_after_the_nonce_expired_fails() {
    let mut ls = server();
    let conn = accept(&mut ls, t(0.0), 1, LS, ALICE);
    let ch = challenge(&mut ls, t(0.0), conn, "alice");
    send_tcp(
        &mut ls,
        t(31.0),
        conn,
        &answer(&ch, "alice", "correct horse", 3),
    );
    let (outs, _) = drain(&mut ls);
    assert_eq!(
        error_code(&tcp_msgs(&outs)[0].1),
        Some(u32::from(ErrorCode::AuthFailed))
    );
    assert_eq!(ls.stats().nonce_expired, 1);
}

#[test]
fn other_requests_get_bad_request_and_other_messages_just_close() {
    let mut ls = server();
    let conn = accept(&mut ls, t(0.0), 1, LS, ALICE);
    let probe = Message::new(
        MsgType::HcProbe,
        Flags::REQUEST,
        9,
        vec![Object::u64(FieldId::NodeId, 1)],
    );
    send_tcp(&mut ls, t(0.0), conn, &probe);
    let (outs, _) = drain(&mut ls);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((m.msg_type, m.txn_id), (MsgType::HcProbe, 9));
    assert_eq!(error_code(m), Some(u32::from(ErrorCode::BadRequest)));
    assert_label(l, "hc-probe", ALICE);
    assert!(closed(&outs, conn));
    // A proof before any hello is also out of order.
    let conn = accept(&mut ls, t(0.0), 2, LS, ALICE);
    send_tcp(&mut ls, t(0.0), conn, &proof_msg(3, "alice", &[0; 32]));
    let (outs, _) = drain(&mut ls);
    assert_eq!(
        error_code(&tcp_msgs(&outs)[0].1),
        Some(u32::from(ErrorCode::BadRequest))
    );
    // A response type cannot be answered with an error: close only.
    let conn = accept(&mut ls, t(0.0), 3, LS, ALICE);
    let ack = Message::new(
        MsgType::SnRefreshAck,
        Flags::RESP,
        1,
        vec![Object::u32(FieldId::Seq, 1)],
    );
    send_tcp(&mut ls, t(0.0), conn, &ack);
    let (outs, _) = drain(&mut ls);
    assert!(tcp_msgs(&outs).is_empty());
    assert!(closed(&outs, conn));
    assert_eq!(ls.stats().bad_request, 2);
    assert_eq!(ls.stats().unexpected, 1);
}

#[test]
fn garbage_closes_the_connection_and_the_server_keeps_serving() {
    let mut ls = server();
    let conn = accept(&mut ls, t(0.0), 1, LS, ALICE);
    send_raw(&mut ls, t(0.0), conn, b"GET / HTTP/1.1\r\n\r\n");
    let (outs, _) = drain(&mut ls);
    assert!(closed(&outs, conn));
    assert_eq!(ls.stats().malformed, 1);
    ls.handle_input(Input::Udp {
        now: t(0.0),
        local: a(LS),
        from: a(ALICE),
        data: &[0xff; 40],
    });
    let conn = accept(&mut ls, t(1.0), 2, LS, ALICE);
    let ch = challenge(&mut ls, t(1.0), conn, "alice");
    send_tcp(
        &mut ls,
        t(1.0),
        conn,
        &answer(&ch, "alice", "correct horse", 3),
    );
    let (outs, _) = drain(&mut ls);
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::Credential);
}

#[test]
fn idle_connections_close_after_thirty_seconds() {
    let mut ls = server();
    let conn = accept(&mut ls, t(0.0), 1, LS, ALICE);
    let (_, deadline) = drain(&mut ls);
    assert_eq!(deadline, t(30.0));
    ls.handle_input(Input::Timeout(t(29.0)));
    assert!(!closed(&drain(&mut ls).0, conn));
    ls.handle_input(Input::Timeout(t(30.0)));
    let (outs, deadline) = drain(&mut ls);
    assert!(closed(&outs, conn));
    assert_eq!(deadline, NO_DEADLINE);
    assert_eq!(ls.stats().idle_closed, 1);
}

#[test]
fn state_dir_keeps_accounts_and_the_signing_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LoginServerConfig {
        state_dir: Some(dir.path().to_path_buf()),
        hash_params: HashParams::FAST,
        seed: 1,
        ..Default::default()
    };
    let mut ls = LoginServer::new(cfg.clone()).unwrap();
    ls.add_account("alice", "correct horse", &[]).unwrap();
    ls.save().unwrap();
    let key = ls.public_key();
    // A different seed must not matter: the key comes from disk.
    let again = LoginServer::new(LoginServerConfig { seed: 99, ..cfg }).unwrap();
    assert_eq!(again.public_key(), key);
    assert!(again.store.get("alice").is_some());
}

#[test]
fn failure_tracker_forgets_failures_outside_the_window() {
    let mut f = FailureTracker::new(3, 60, 120);
    let k = "u".to_string();
    assert!(!f.record(&k, t(0.0)));
    assert!(!f.record(&k, t(1.0)));
    // The first two are older than the window by now.
    assert!(!f.record(&k, t(70.0)));
    assert!(!f.record(&k, t(71.0)));
    assert!(f.record(&k, t(72.0)));
    assert!(f.is_limited(&k, t(100.0)));
    assert!(!f.is_limited(&k, t(72.0 + 120.0)));
    f.prune(t(1000.0));
    assert!(f.is_empty());
}

#[test]
fn outputs_are_tcp_sends_and_closes_only() {
    let mut ls = server();
    let conn = accept(&mut ls, t(0.0), 1, LS, ALICE);
    challenge(&mut ls, t(0.0), conn, "alice");
    send_raw(&mut ls, t(0.0), conn, &[0x53; 3]);
    let (outs, _) = drain(&mut ls);
    for o in outs {
        assert!(matches!(
            o,
            Output::Tcp(TcpOut::Send { .. } | TcpOut::Close { .. }) | Output::Event(_)
        ));
    }
}

mod garbage {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mutated_and_random_input_never_panics_and_logins_still_work(
            cuts in vec((0usize..2, any::<usize>(), any::<u8>(), 0usize..100), 1..20),
        ) {
            let mut ls = server();
            let seeds = [
                // Another user and address: failures here must not lock alice out.
                hello(2, "mallory").to_bytes().unwrap(),
                proof_msg(3, "mallory", &[7; 32]).to_bytes().unwrap(),
            ];
            for (n, (which, at, xor, keep)) in cuts.into_iter().enumerate() {
                let conn = accept(&mut ls, t(0.0), n as u64 + 1, LS, "10.0.8.8:1");
                let mut m = seeds[which].clone();
                let i = at % m.len();
                m[i] ^= xor;
                m.truncate(keep.max(1));
                send_raw(&mut ls, t(0.0), conn, &seeds[0]);
                send_raw(&mut ls, t(0.0), conn, &m);
                drain(&mut ls);
            }
            let conn = accept(&mut ls, t(1.0), 999, LS, ALICE);
            let ch = challenge(&mut ls, t(1.0), conn, "alice");
            send_tcp(&mut ls, t(1.0), conn, &answer(&ch, "alice", "correct horse", 3));
            let (outs, _) = drain(&mut ls);
            prop_assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::Credential);
        }
    }
}
