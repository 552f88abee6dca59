//! Scripted super-node sessions (PROTOCOL.md §8.4, §8.6, §8.7, §7.3), failure paths
//! included; every answer checked with its label.

use super::*;
use crate::peer::io::TcpOut;
use crate::peer::login_server::tests::kit::*;
use crate::peer::truth::Label;
use dissectors::skylark::codec::{Body, Media};
use ed25519_dalek::SigningKey;

const SN: &str = "10.0.2.1:33033";
const ALICE: &str = "10.0.1.1:40000";
const BOB: &str = "10.0.1.2:40000";
const EVE: &str = "10.0.6.6:5000";

fn ls_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// `n` other SNs: 10.0.3.x / 10.0.4.x.
fn peers(n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([10, 0, 3 + (i / 250) as u8, (i % 250) as u8 + 1], 33033)))
        .collect()
}

fn sn_with(n_peers: usize, f: impl FnOnce(&mut SuperNodeConfig)) -> SuperNode {
    let mut cfg = SuperNodeConfig {
        name: "sn1".into(),
        addr: a(SN),
        ls_key: ls_key().verifying_key().to_bytes(),
        peers: peers(n_peers),
        seed: 3,
        node_id: Some(0x5151),
        ..Default::default()
    };
    f(&mut cfg);
    SuperNode::new(cfg).unwrap()
}

fn sn() -> SuperNode {
    sn_with(30, |_| {})
}

#[test]
fn connections_past_the_cap_are_refused() {
    let mut s = sn();
    refuses_past_cap(&mut s, MAX_CONNS, SN);
    assert_eq!(s.stats().refused_conns, 1);
}

fn credential(user: &str, expiry: u64, key: &SigningKey) -> Vec<u8> {
    Credential {
        expiry,
        node_id: 1,
        user: user.into(),
    }
    .sign(key)
    .unwrap()
}

fn register_msg(user: &str, blob: &[u8], expiry: u64, addr: &str) -> Message {
    Message::new(
        MsgType::SnRegister,
        Flags::REQUEST,
        10,
        vec![
            Object::str(FieldId::User, user),
            Object::blob(FieldId::CredentialBlob, blob),
            Object::u64(FieldId::Expiry, expiry),
            Object::addr(FieldId::Addr, a(addr)),
            Object::u32(FieldId::NatType, 2),
        ],
    )
}

fn expiry() -> u64 {
    unix_secs(t(0.0)) + 86_400
}

/// Accepts a connection from `remote` and registers `user`; returns the connection.
fn registered(sn: &mut SuperNode, n: u64, user: &str, remote: &str) -> ConnId {
    let conn = accept(sn, t(0.0), n, SN, remote);
    let blob = credential(user, expiry(), &ls_key());
    send_tcp(
        sn,
        t(0.0),
        conn,
        &register_msg(user, &blob, expiry(), remote),
    );
    let (outs, _) = drain(sn);
    let msgs = tcp_msgs(&outs);
    assert_eq!(msgs[0].1.msg_type, MsgType::SnRegisterAck, "{outs:?}");
    conn
}

fn req(t: MsgType, txn: u32, objects: Vec<Object>) -> Message {
    Message::new(t, Flags::REQUEST, txn, objects)
}

fn search(target: &str, ring: u32, txn: u32) -> Message {
    req(
        MsgType::Search,
        txn,
        vec![
            Object::str(FieldId::Target, target),
            Object::u32(FieldId::Ring, ring),
        ],
    )
}

fn check_label(l: &Label, msg_type: &str, transport: Transport, to: SocketAddr) {
    assert_eq!(l.msg_type, msg_type);
    assert_eq!(l.transport, transport);
    assert_eq!(l.src, a(SN));
    assert_eq!(l.dst, to);
    assert!(!l.home, "SN traffic never goes to LS/home");
    assert_eq!(&*l.node, "sn1");
    assert_eq!(l.role, Role::SuperNode);
    let t = MsgType::from_name(msg_type);
    if let Some(t) = t {
        assert_eq!(Some(l.class), t.class());
    }
}

fn err_of(m: &Message) -> Option<ErrorCode> {
    error_code(m).map(ErrorCode::from)
}

// ---------------------------------------------------------------- UDP entry points

#[test]
fn udp_hc_probe_gets_ack_with_reflexive_address_and_sn_list() {
    let mut sn = sn();
    let probe = req(MsgType::HcProbe, 5, vec![Object::u64(FieldId::NodeId, 77)]);
    send_udp(&mut sn, t(0.0), SN, ALICE, &probe.to_bytes().unwrap());
    let (outs, _) = drain(&mut sn);
    let (to, m, l) = &udp_msgs(&outs)[0];
    assert_eq!(*to, a(ALICE));
    assert_eq!((m.msg_type, m.txn_id), (MsgType::HcProbeAck, 5));
    assert_eq!(get_u64(m, FieldId::NodeId), Some(0x5151));
    assert_eq!(m.get(FieldId::Reflexive), Some(&Value::Addr(a(ALICE))));
    assert_eq!(get_list(m, FieldId::SnList).unwrap().len(), MAX_SN_LIST);
    check_label(l, "hc-probe-ack", Transport::Udp, a(ALICE));
    assert_eq!(l.class, TrafficClass::Login);
}

#[test]
fn nat_ping_and_fallback_probe_are_answered_with_the_reflexive_address() {
    let mut sn = sn();
    let ping = req(
        MsgType::NatPing,
        6,
        vec![
            Object::u64(FieldId::NodeId, 77),
            Object::u32(FieldId::Seq, 4),
        ],
    );
    let fb = req(
        MsgType::FallbackProbe,
        7,
        vec![Object::u64(FieldId::NodeId, 77)],
    );
    send_udp(&mut sn, t(0.0), SN, ALICE, &ping.to_bytes().unwrap());
    send_udp(&mut sn, t(0.0), SN, ALICE, &fb.to_bytes().unwrap());
    let (outs, _) = drain(&mut sn);
    let msgs = udp_msgs(&outs);
    let (_, pong, l) = &msgs[0];
    assert_eq!(pong.msg_type, MsgType::NatPong);
    assert_eq!(get_u32(pong, FieldId::Seq), Some(4));
    assert_eq!(pong.get(FieldId::Reflexive), Some(&Value::Addr(a(ALICE))));
    check_label(l, "nat-pong", Transport::Udp, a(ALICE));
    assert_eq!(l.class, TrafficClass::Keepalive);
    let (_, ack, l) = &msgs[1];
    assert_eq!(ack.msg_type, MsgType::FallbackProbeAck);
    check_label(l, "fallback-probe-ack", Transport::Udp, a(ALICE));
}

#[test]
fn stun_binding_gets_xor_mapped_address_and_bad_fingerprints_are_dropped() {
    let mut sn = sn();
    let txn = [7u8; 12];
    let mut bytes = Vec::new();
    StunMessage::binding_request(txn, Some("skylark/1.0.0"))
        .emit(&mut bytes)
        .unwrap();
    send_udp(&mut sn, t(0.0), SN, ALICE, &bytes);
    let (outs, _) = drain(&mut sn);
    let Output::Udp(d) = &outs[0] else {
        panic!("{outs:?}")
    };
    let reply = StunMessage::parse(&d.data).unwrap();
    assert_eq!(reply.msg_type, StunType::BINDING_SUCCESS);
    assert_eq!(reply.transaction_id, txn);
    assert_eq!(reply.mapped_address(), Some(a(ALICE)));
    assert_eq!(d.label.msg_type, "stun-binding-success");
    assert_eq!((d.label.src, d.label.dst), (a(SN), a(ALICE)));
    assert!(!d.label.home);
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    send_udp(&mut sn, t(0.0), SN, ALICE, &bad);
    assert!(drain(&mut sn).0.is_empty());
    assert_eq!(sn.stats().stun_dropped, 1);
}

#[test]
fn udp_requests_beyond_ten_per_second_get_one_rate_limited_then_silence() {
    let mut sn = sn();
    let probe = req(MsgType::HcProbe, 5, vec![Object::u64(FieldId::NodeId, 77)])
        .to_bytes()
        .unwrap();
    for i in 0..13 {
        send_udp(&mut sn, t(0.01 * f64::from(i)), SN, ALICE, &probe);
    }
    let msgs = udp_msgs(&drain(&mut sn).0);
    assert_eq!(msgs.len(), 11);
    assert!(
        msgs[..10]
            .iter()
            .all(|m| m.1.msg_type == MsgType::HcProbeAck)
    );
    assert_eq!(err_of(&msgs[10].1), Some(ErrorCode::RateLimited));
    assert_eq!(sn.stats().rate_limited, 3);
    // Another source is not affected; the next second this one is served again.
    send_udp(&mut sn, t(0.5), SN, BOB, &probe);
    send_udp(&mut sn, t(1.2), SN, ALICE, &probe);
    assert_eq!(udp_msgs(&drain(&mut sn).0).len(), 2);
}

#[test]
fn garbage_on_udp_and_tcp_is_counted_and_the_node_keeps_serving() {
    let mut sn = sn();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for len in [0usize, 1, 11, 12, 40, 300, 2000] {
        for first in [0x00u8, 0x01, 0x53, 0x99] {
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            if let Some(b) = junk.first_mut() {
                *b = first;
            }
            send_udp(&mut sn, t(0.0), SN, EVE, &junk);
        }
    }
    let s = sn.stats();
    assert_eq!(
        s.malformed_udp + s.stun_dropped + s.rate_limited,
        28,
        "{s:?}"
    );
    for (i, junk) in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0x53; 64], &[0u8; 5000]]
        .iter()
        .enumerate()
    {
        let conn = accept(&mut sn, t(0.0), 100 + i as u64, SN, EVE);
        send_raw(&mut sn, t(0.0), conn, junk);
        let (outs, _) = drain(&mut sn);
        assert!(closed(&outs, conn), "{junk:?}");
    }
    assert_eq!(sn.stats().malformed_tcp, 3);
    // Still alive on both transports.
    let probe = req(MsgType::HcProbe, 5, vec![Object::u64(FieldId::NodeId, 7)]);
    send_udp(&mut sn, t(2.0), SN, ALICE, &probe.to_bytes().unwrap());
    assert_eq!(udp_msgs(&drain(&mut sn).0).len(), 1);
    registered(&mut sn, 1, "alice", ALICE);
}

// ---------------------------------------------------------------- registration

#[test]
fn register_with_a_valid_credential_gets_ack_and_an_online_entry() {
    let mut sn = sn();
    let conn = accept(&mut sn, t(0.0), 1, SN, ALICE);
    let blob = credential("alice", expiry(), &ls_key());
    send_tcp(
        &mut sn,
        t(0.0),
        conn,
        &register_msg("alice", &blob, expiry(), ALICE),
    );
    let (outs, _) = drain(&mut sn);
    let (c, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(*c, conn);
    assert_eq!((m.msg_type, m.txn_id), (MsgType::SnRegisterAck, 10));
    assert_eq!(get_u32(m, FieldId::Ttl), Some(259_200));
    check_label(l, "sn-register-ack", Transport::Tcp, a(ALICE));
    let e = sn.entry("alice", t(1.0)).unwrap();
    assert_eq!(
        (e.status, e.addr, e.sn_addr),
        (STATUS_ONLINE, Some(a(ALICE)), Some(a(SN)))
    );
}

#[test]
fn forged_expired_mismatched_and_foreign_credentials_are_refused() {
    let mut sn = sn();
    let other_ls = SigningKey::from_bytes(&[8; 32]);
    let now = unix_secs(t(0.0));
    let cases = [
        // Signed by another key.
        (
            register_msg(
                "alice",
                &credential("alice", expiry(), &other_ls),
                expiry(),
                ALICE,
            ),
            ErrorCode::AuthFailed,
        ),
        // Expired.
        (
            register_msg("alice", &credential("alice", now, &ls_key()), now, ALICE),
            ErrorCode::CredentialExpired,
        ),
        // Blob and field disagree on the expiry.
        (
            register_msg(
                "alice",
                &credential("alice", expiry(), &ls_key()),
                expiry() + 1,
                ALICE,
            ),
            ErrorCode::CredentialExpired,
        ),
        // Bob's credential presented for alice.
        (
            register_msg(
                "alice",
                &credential("bob", expiry(), &ls_key()),
                expiry(),
                ALICE,
            ),
            ErrorCode::AuthFailed,
        ),
        // Not a credential at all.
        (
            register_msg("alice", b"trust me", expiry(), ALICE),
            ErrorCode::AuthFailed,
        ),
    ];
    let mut blob = credential("alice", expiry(), &ls_key());
    blob[20] ^= 1;
    let tampered = register_msg("alice", &blob, expiry(), ALICE);
    for (i, (msg, code)) in cases
        .into_iter()
        .chain([(tampered, ErrorCode::AuthFailed)])
        .enumerate()
    {
        let conn = accept(&mut sn, t(0.0), i as u64 + 1, SN, ALICE);
        send_tcp(&mut sn, t(0.0), conn, &msg);
        let (outs, _) = drain(&mut sn);
        let (_, m, l) = &tcp_msgs(&outs)[0];
        assert_eq!(m.msg_type, MsgType::SnRegister);
        assert_eq!(err_of(m), Some(code), "case {i}");
        assert_eq!(l.msg_type, "sn-register");
        // Still unregistered: a search is refused.
        send_tcp(&mut sn, t(0.0), conn, &search("bob", 0, 11));
        let (outs, _) = drain(&mut sn);
        assert_eq!(
            err_of(&tcp_msgs(&outs)[0].1),
            Some(ErrorCode::Unauthenticated)
        );
    }
    assert!(sn.entry("alice", t(0.0)).is_none());
}

#[test]
fn a_full_sn_answers_overloaded_with_other_sns() {
    let mut sn = sn_with(5, |c| c.capacity = 1);
    registered(&mut sn, 1, "alice", ALICE);
    let conn = accept(&mut sn, t(0.0), 2, SN, BOB);
    let blob = credential("bob", expiry(), &ls_key());
    send_tcp(
        &mut sn,
        t(0.0),
        conn,
        &register_msg("bob", &blob, expiry(), BOB),
    );
    let (outs, _) = drain(&mut sn);
    let m = &tcp_msgs(&outs)[0].1;
    assert_eq!(err_of(m), Some(ErrorCode::Overloaded));
    assert_eq!(get_list(m, FieldId::SnList).unwrap().len(), 5);
    // Probes say so too.
    let probe = req(MsgType::HcProbe, 5, vec![Object::u64(FieldId::NodeId, 7)]);
    send_udp(&mut sn, t(0.0), SN, BOB, &probe.to_bytes().unwrap());
    let m = &udp_msgs(&drain(&mut sn).0)[0].1;
    assert_eq!(err_of(m), Some(ErrorCode::Overloaded));
}

#[test]
fn unregistered_connections_may_only_probe_and_register() {
    let mut sn = sn();
    let conn = accept(&mut sn, t(0.0), 1, SN, EVE);
    let probe = req(MsgType::HcProbe, 1, vec![Object::u64(FieldId::NodeId, 7)]);
    send_tcp(&mut sn, t(0.0), conn, &probe);
    let (outs, _) = drain(&mut sn);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(m.msg_type, MsgType::HcProbeAck);
    assert_eq!(m.get(FieldId::Reflexive), Some(&Value::Addr(a(EVE))));
    check_label(l, "hc-probe-ack", Transport::Tcp, a(EVE));
    for m in [
        search("alice", 0, 2),
        req(
            MsgType::PresenceQuery,
            3,
            vec![Object::list(FieldId::Users, vec![])],
        ),
        req(
            MsgType::HcExchangeRequest,
            4,
            vec![Object::u32(FieldId::MaxCount, 10)],
        ),
        invite(99, "eve", "alice", 5),
    ] {
        send_tcp(&mut sn, t(0.0), conn, &m);
        let (outs, _) = drain(&mut sn);
        let (_, r, _) = &tcp_msgs(&outs)[0];
        assert_eq!((r.msg_type, r.txn_id), (m.msg_type, m.txn_id));
        assert_eq!(err_of(r), Some(ErrorCode::Unauthenticated));
    }
    // Notifications are ignored, not answered.
    let bye = Message::new(
        MsgType::Bye,
        Flags::REQUEST,
        6,
        vec![Object::u32(FieldId::CallId, 99)],
    );
    send_tcp(&mut sn, t(0.0), conn, &bye);
    assert!(tcp_msgs(&drain(&mut sn).0).is_empty());
    assert_eq!(sn.stats().unauthenticated, 4);
}

#[test]
fn keepalive_presence_and_host_cache_exchange_for_registered_clients() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    registered(&mut sn, 2, "bob", BOB);
    let refresh = req(
        MsgType::SnRefresh,
        20,
        vec![
            Object::str(FieldId::User, "alice"),
            Object::u32(FieldId::Seq, 3),
            Object::u32(FieldId::Full, 1),
            Object::u32(FieldId::Status, 2),
        ],
    );
    send_tcp(&mut sn, t(100.0), alice, &refresh);
    let update = Message::new(
        MsgType::PresenceUpdate,
        Flags::REQUEST,
        21,
        vec![
            Object::str(FieldId::User, "alice"),
            Object::u32(FieldId::Status, 3),
        ],
    );
    send_tcp(&mut sn, t(100.0), alice, &update);
    let query = req(
        MsgType::PresenceQuery,
        22,
        vec![Object::list(
            FieldId::Users,
            vec![
                Object::str(FieldId::User, "bob"),
                Object::str(FieldId::User, "zed"),
            ],
        )],
    );
    send_tcp(&mut sn, t(100.0), alice, &query);
    let hc = req(
        MsgType::HcExchangeRequest,
        23,
        vec![Object::u32(FieldId::MaxCount, 200)],
    );
    send_tcp(&mut sn, t(100.0), alice, &hc);
    let msgs = tcp_msgs(&drain(&mut sn).0);
    assert_eq!(msgs.len(), 3);
    let (_, ack, l) = &msgs[0];
    assert_eq!(
        (ack.msg_type, get_u32(ack, FieldId::Seq)),
        (MsgType::SnRefreshAck, Some(3))
    );
    check_label(l, "sn-refresh-ack", Transport::Tcp, a(ALICE));
    assert_eq!(l.class, TrafficClass::Keepalive);
    let e = sn.entry("alice", t(100.0)).unwrap();
    assert_eq!(e.status, 3);
    assert_eq!(
        e.expires,
        t(100.0 + 259_200.0),
        "full refresh renews the ttl"
    );
    let (_, report, l) = &msgs[1];
    assert_eq!(report.msg_type, MsgType::PresenceReport);
    assert_eq!(get_list(report, FieldId::Entries).unwrap().len(), 1);
    assert_eq!(l.class, TrafficClass::Lookup);
    let (_, hcx, _) = &msgs[2];
    assert_eq!(get_list(hcx, FieldId::SnList).unwrap().len(), 30);
}

#[test]
fn closed_or_idle_connections_leave_an_offline_entry_until_the_ttl() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    let bob = registered(&mut sn, 2, "bob", BOB);
    sn.handle_input(Input::Tcp {
        now: t(5.0),
        conn: alice,
        event: TcpEvent::Closed,
    });
    assert_eq!(sn.entry("alice", t(5.0)).unwrap().status, STATUS_OFFLINE);
    // Bob says nothing for 180 s: closed, offline, still in the directory.
    sn.handle_input(Input::Timeout(t(180.0)));
    let (outs, _) = drain(&mut sn);
    assert!(closed(&outs, bob));
    assert_eq!(sn.entry("bob", t(181.0)).unwrap().status, STATUS_OFFLINE);
    assert_eq!(sn.stats().idle_closed, 1);
    sn.handle_input(Input::Timeout(t(259_200.0)));
    assert!(sn.entry("bob", t(259_200.0)).is_none());
    assert_eq!(sn.online(), 0);
}

// ---------------------------------------------------------------- lookups

fn result_entry(m: &Message) -> Entry {
    Entry::from_items(get_list(m, FieldId::Entry).unwrap(), Ts(i64::MAX))
        .unwrap()
        .1
}

#[test]
fn lookup_of_a_local_user_is_answered_at_once() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    registered(&mut sn, 2, "bob", BOB);
    send_tcp(&mut sn, t(1.0), alice, &search("bob", 0, 30));
    let (outs, _) = drain(&mut sn);
    assert!(udp_msgs(&outs).is_empty(), "no ring needed");
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((m.msg_type, m.txn_id), (MsgType::SearchResult, 30));
    assert_eq!(result_entry(m).addr, Some(a(BOB)));
    check_label(l, "search-result", Transport::Tcp, a(ALICE));
}

fn search_result_msg(txn: u32, user: &str, addr: &str, sn_addr: SocketAddr) -> Message {
    let e = Entry {
        status: STATUS_ONLINE,
        addr: Some(a(addr)),
        sn_addr: Some(sn_addr),
        nat_type: Some(1),
        conn: None,
        expires: Ts(0),
    };
    Message::new(
        MsgType::SearchResult,
        Flags::RESP,
        txn,
        vec![Object::str(FieldId::Target, user), e.to_object(user)],
    )
}

#[test]
fn recursive_lookup_found_in_ring_one_is_relayed_and_cached() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(1.0), alice, &search("carol", 0, 31));
    let (outs, deadline) = drain(&mut sn);
    let ring = udp_msgs(&outs);
    assert_eq!(ring.len(), 8);
    assert_eq!(deadline, t(2.0), "1 s ring wait");
    let mut to: Vec<SocketAddr> = ring.iter().map(|r| r.0).collect();
    to.dedup();
    assert_eq!(to.len(), 8);
    for (to, m, l) in &ring {
        assert_eq!(get_u32(m, FieldId::Ring), Some(1));
        assert!(sn.host_cache().contains(to));
        check_label(l, "search", Transport::Udp, *to);
        assert_eq!(l.class, TrafficClass::Lookup);
    }
    let other_sn = ring[3].0;
    let reply = search_result_msg(ring[3].1.txn_id, "carol", "10.0.7.7:4000", other_sn);
    send_udp(
        &mut sn,
        t(1.3),
        SN,
        &other_sn.to_string(),
        &reply.to_bytes().unwrap(),
    );
    let (outs, _) = drain(&mut sn);
    let (c, m, _) = &tcp_msgs(&outs)[0];
    assert_eq!((*c, m.txn_id), (alice, 31));
    assert_eq!(result_entry(m).sn_addr, Some(other_sn));
    assert_eq!(sn.stats().searches_found, 1);
    // A late second answer is not for anyone.
    send_udp(
        &mut sn,
        t(1.4),
        SN,
        &ring[4].0.to_string(),
        &reply.to_bytes().unwrap(),
    );
    assert!(drain(&mut sn).0.is_empty());
    // Cached: the next lookup needs no ring, and non-clients can find it too.
    send_tcp(&mut sn, t(150.0), alice, &search("carol", 0, 32));
    let (outs, _) = drain(&mut sn);
    assert!(udp_msgs(&outs).is_empty());
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::SearchResult);
    // After 300 s the cache entry is gone.
    sn.handle_input(Input::Timeout(t(1.3 + 300.0)));
    send_tcp(&mut sn, t(302.0), alice, &search("carol", 0, 33));
    assert_eq!(udp_msgs(&drain(&mut sn).0).len(), 8);
}

#[test]
fn recursive_lookup_not_found_after_four_rings() {
    let mut sn = sn_with(150, |_| {});
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(0.0), alice, &search("nobody", 0, 40));
    let mut sizes = Vec::new();
    let mut asked: Vec<SocketAddr> = Vec::new();
    let mut now = 0.0;
    loop {
        let (outs, deadline) = drain(&mut sn);
        let ring = udp_msgs(&outs);
        if ring.is_empty() {
            let (_, m, l) = &tcp_msgs(&outs)[0];
            assert_eq!((m.msg_type, m.txn_id), (MsgType::Search, 40));
            assert_eq!(err_of(m), Some(ErrorCode::NotFound));
            check_label(l, "search", Transport::Tcp, a(ALICE));
            break;
        }
        sizes.push(ring.len());
        asked.extend(ring.iter().map(|r| r.0));
        now += 1.0;
        assert_eq!(deadline, t(now));
        sn.handle_input(Input::Timeout(deadline));
    }
    assert_eq!(sizes, vec![8, 16, 32, 64]);
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), 120, "no SN asked twice");
    assert_eq!(now, 4.0);
    assert_eq!(sn.stats().searches_not_found, 1);
}

#[test]
fn a_ring_where_everyone_says_not_found_moves_on_without_waiting() {
    let mut sn = sn_with(30, |_| {});
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(0.0), alice, &search("nobody", 0, 40));
    let ring = udp_msgs(&drain(&mut sn).0);
    for (to, m, _) in &ring {
        let miss = error_response(MsgType::Search, m.txn_id, ErrorCode::NotFound, &[]);
        send_udp(
            &mut sn,
            t(0.1),
            SN,
            &to.to_string(),
            &miss.to_bytes().unwrap(),
        );
    }
    // Ring 2 goes out at 0.1 s, the remaining 22 SNs (the cache has 30).
    let ring2 = udp_msgs(&drain(&mut sn).0);
    assert_eq!(ring2.len(), 16);
    sn.handle_input(Input::Timeout(t(1.1)));
    assert_eq!(udp_msgs(&drain(&mut sn).0).len(), 6);
    sn.handle_input(Input::Timeout(t(2.1)));
    let (outs, _) = drain(&mut sn);
    assert_eq!(err_of(&tcp_msgs(&outs)[0].1), Some(ErrorCode::NotFound));
}

#[test]
fn local_lookups_from_strangers_are_answered_but_never_forwarded() {
    let mut sn = sn();
    registered(&mut sn, 1, "bob", BOB);
    send_udp(
        &mut sn,
        t(0.0),
        SN,
        EVE,
        &search("bob", 1, 50).to_bytes().unwrap(),
    );
    send_udp(
        &mut sn,
        t(0.0),
        SN,
        EVE,
        &search("carol", 1, 51).to_bytes().unwrap(),
    );
    let msgs = udp_msgs(&drain(&mut sn).0);
    assert_eq!(msgs.len(), 2, "no search goes out to other SNs");
    assert_eq!(msgs[0].0, a(EVE));
    assert_eq!(msgs[0].1.msg_type, MsgType::SearchResult);
    check_label(&msgs[0].2, "search-result", Transport::Udp, a(EVE));
    assert_eq!(err_of(&msgs[1].1), Some(ErrorCode::NotFound));
    assert_eq!(sn.stats().local_lookups, 2);
}

#[test]
fn iterative_search_gets_a_referral_to_the_ring_sns() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(0.0), alice, &search("carol", 2, 60));
    let (outs, _) = drain(&mut sn);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(m.msg_type, MsgType::SearchReferral);
    assert_eq!(get_u32(m, FieldId::Ring), Some(2));
    assert_eq!(get_list(m, FieldId::SnList).unwrap().len(), 16);
    check_label(l, "search-referral", Transport::Tcp, a(ALICE));
    send_tcp(&mut sn, t(0.0), alice, &search("carol", 4, 61));
    let (outs, _) = drain(&mut sn);
    assert_eq!(
        err_of(&tcp_msgs(&outs)[0].1),
        Some(ErrorCode::NotFound),
        "cache exhausted"
    );
}

// ---------------------------------------------------------------- calls

fn invite(call: u32, caller: &str, callee: &str, txn: u32) -> Message {
    req(
        MsgType::Invite,
        txn,
        vec![
            Object::u32(FieldId::CallId, call),
            Object::str(FieldId::Caller, caller),
            Object::str(FieldId::Callee, callee),
            Object::addr(FieldId::MediaAddr, a(ALICE)),
            Object::list(FieldId::Codecs, vec![Object::u32(FieldId::Codec, 1)]),
            Object::u32(FieldId::FrameMs, 30),
        ],
    )
}

fn call_msg(t: MsgType, flags: Flags, call: u32, txn: u32) -> Message {
    Message::new(t, flags, txn, vec![Object::u32(FieldId::CallId, call)])
}

#[test]
fn signalling_between_two_local_clients_is_forwarded_unchanged_both_ways() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    let bob = registered(&mut sn, 2, "bob", BOB);
    let inv = invite(77, "alice", "bob", 70);
    send_tcp(&mut sn, t(1.0), alice, &inv);
    let (outs, _) = drain(&mut sn);
    let (c, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((*c, m), (bob, &inv));
    check_label(l, "invite", Transport::Tcp, a(BOB));
    assert_eq!(l.call_id, Some(77));
    assert_eq!(l.class, TrafficClass::Signalling);
    let ringing = call_msg(MsgType::Ringing, Flags::RESP, 77, 70);
    send_tcp(&mut sn, t(1.1), bob, &ringing);
    let (outs, _) = drain(&mut sn);
    assert_eq!(tcp_msgs(&outs)[0].0, alice);
    assert_eq!(tcp_msgs(&outs)[0].1, ringing);
    let bye = call_msg(MsgType::Bye, Flags::REQUEST, 77, 71);
    send_tcp(&mut sn, t(5.0), alice, &bye);
    assert_eq!(tcp_msgs(&drain(&mut sn).0)[0].0, bob);
    // The route lingers 30 s after the bye, then an unknown call gets unknown-call.
    sn.handle_input(Input::Timeout(t(35.0)));
    let hold_req = invite(77, "alice", "bob", 72);
    drain(&mut sn);
    send_tcp(
        &mut sn,
        t(36.0),
        alice,
        &call_msg(MsgType::Hold, Flags::REQUEST, 77, 73),
    );
    assert!(
        tcp_msgs(&drain(&mut sn).0).is_empty(),
        "notification: ignored"
    );
    assert_eq!(sn.stats().unknown_call, 1);
    let _ = hold_req;
}

#[test]
fn invite_for_an_unregistered_callee_gets_not_found() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(1.0), alice, &invite(78, "alice", "nobody", 80));
    let (outs, _) = drain(&mut sn);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((m.msg_type, m.txn_id), (MsgType::Invite, 80));
    assert_eq!(err_of(m), Some(ErrorCode::NotFound));
    check_label(l, "invite", Transport::Tcp, a(ALICE));
    // A callee whose connection closed is offline: not reachable either.
    let bob = registered(&mut sn, 2, "bob", BOB);
    sn.handle_input(Input::Tcp {
        now: t(2.0),
        conn: bob,
        event: TcpEvent::Closed,
    });
    send_tcp(&mut sn, t(3.0), alice, &invite(79, "alice", "bob", 81));
    let (outs, _) = drain(&mut sn);
    assert_eq!(err_of(&tcp_msgs(&outs)[0].1), Some(ErrorCode::NotFound));
    assert_eq!(sn.stats().callee_not_registered, 2);
}

#[test]
fn invite_for_a_user_at_another_sn_travels_over_an_sn_link() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    // Alice looked carol up first: the answer names carol's SN.
    send_tcp(&mut sn, t(0.5), alice, &search("carol", 0, 31));
    let ring = udp_msgs(&drain(&mut sn).0);
    let sn2 = ring[0].0;
    let reply = search_result_msg(ring[0].1.txn_id, "carol", "10.0.7.7:4000", sn2);
    send_udp(
        &mut sn,
        t(0.6),
        SN,
        &sn2.to_string(),
        &reply.to_bytes().unwrap(),
    );
    drain(&mut sn);
    let inv = invite(90, "alice", "carol", 91);
    send_tcp(&mut sn, t(1.0), alice, &inv);
    let (outs, _) = drain(&mut sn);
    let link = outs
        .iter()
        .find_map(|o| match o {
            Output::Tcp(TcpOut::Connect { conn, from, to }) => {
                assert_eq!(*to, sn2);
                assert_eq!(from.map(|f| f.ip()), Some(a(SN).ip()));
                Some(*conn)
            }
            _ => None,
        })
        .expect("connect to the callee's SN");
    assert!(!link.is_accepted());
    assert!(tcp_msgs(&outs).is_empty(), "queued until connected");
    sn.handle_input(Input::Tcp {
        now: t(1.1),
        conn: link,
        event: TcpEvent::Connected {
            local: a("10.0.2.1:50000"),
        },
    });
    let (outs, _) = drain(&mut sn);
    let (c, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((*c, m), (link, &inv));
    assert_eq!((l.src, l.dst), (a("10.0.2.1:50000"), sn2));
    // The answers come back over the link to alice.
    let accept_msg = Message::new(
        MsgType::Accept,
        Flags::RESP,
        91,
        vec![
            Object::u32(FieldId::CallId, 90),
            Object::addr(FieldId::MediaAddr, a("10.0.7.7:4000")),
            Object::u32(FieldId::Codec, 1),
        ],
    );
    send_tcp(&mut sn, t(1.5), link, &accept_msg);
    let (outs, _) = drain(&mut sn);
    assert_eq!(tcp_msgs(&outs)[0].0, alice);
    assert_eq!(tcp_msgs(&outs)[0].1, accept_msg);
    // An error response to an invite (no call id) finds its way back too.
    send_tcp(&mut sn, t(2.0), alice, &invite(92, "alice", "carol", 93));
    drain(&mut sn);
    let err = error_response(MsgType::Invite, 93, ErrorCode::NotFound, &[]);
    send_tcp(&mut sn, t(2.1), link, &err);
    let (outs, _) = drain(&mut sn);
    assert_eq!((tcp_msgs(&outs)[0].0, &tcp_msgs(&outs)[0].1), (alice, &err));
}

#[test]
fn an_unreachable_callee_sn_gives_not_found_to_the_caller() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    send_tcp(&mut sn, t(0.5), alice, &search("carol", 0, 31));
    let ring = udp_msgs(&drain(&mut sn).0);
    let reply = search_result_msg(ring[0].1.txn_id, "carol", "10.0.7.7:4000", ring[0].0);
    send_udp(
        &mut sn,
        t(0.6),
        SN,
        &ring[0].0.to_string(),
        &reply.to_bytes().unwrap(),
    );
    drain(&mut sn);
    send_tcp(&mut sn, t(1.0), alice, &invite(90, "alice", "carol", 91));
    let link = drain(&mut sn)
        .0
        .iter()
        .find_map(|o| match o {
            Output::Tcp(TcpOut::Connect { conn, .. }) => Some(*conn),
            _ => None,
        })
        .unwrap();
    sn.handle_input(Input::Tcp {
        now: t(6.0),
        conn: link,
        event: TcpEvent::ConnectFailed,
    });
    let (outs, _) = drain(&mut sn);
    let (c, m, _) = &tcp_msgs(&outs)[0];
    assert_eq!((*c, m.txn_id), (alice, 91));
    assert_eq!(err_of(m), Some(ErrorCode::NotFound));
}

#[test]
fn invites_from_another_sn_reach_local_clients() {
    let mut sn = sn();
    let bob = registered(&mut sn, 1, "bob", BOB);
    let other = peers(1)[0];
    let link = accept(
        &mut sn,
        t(1.0),
        9,
        SN,
        &SocketAddr::new(other.ip(), 51000).to_string(),
    );
    let inv = invite(95, "carol", "bob", 96);
    send_tcp(&mut sn, t(1.0), link, &inv);
    let (outs, _) = drain(&mut sn);
    assert_eq!((tcp_msgs(&outs)[0].0, &tcp_msgs(&outs)[0].1), (bob, &inv));
    // ...but an SN never forwards a peer's invite further (no loops).
    send_tcp(&mut sn, t(1.0), link, &invite(97, "carol", "dave", 98));
    let (outs, _) = drain(&mut sn);
    assert_eq!(err_of(&tcp_msgs(&outs)[0].1), Some(ErrorCode::NotFound));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Tcp(TcpOut::Connect { .. })))
    );
}

// ---------------------------------------------------------------- relay

fn relay_request(call: u32, token: Option<&[u8]>, txn: u32) -> Message {
    let mut o = vec![
        Object::u32(FieldId::CallId, call),
        Object::str(FieldId::Callee, "bob"),
    ];
    if let Some(t) = token {
        o.push(Object::blob(FieldId::RelayToken, t));
    }
    req(MsgType::RelayRequest, txn, o)
}

fn voice(call: u32, seq: u16) -> Vec<u8> {
    Message::media(
        MsgType::Voice,
        call,
        Media {
            seq,
            timestamp: u32::from(seq) * 240,
            codec: 1,
            redundancy: vec![],
            payload: vec![0x55; 67],
        },
    )
    .to_bytes()
    .unwrap()
}

fn grant(sn: &mut SuperNode, conn: ConnId, call: u32) -> Vec<u8> {
    send_tcp(sn, t(1.0), conn, &relay_request(call, None, 100));
    let (outs, _) = drain(sn);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!((m.msg_type, m.txn_id), (MsgType::RelayGrant, 100));
    assert_eq!(m.get(FieldId::RelayAddr), Some(&Value::Addr(a(SN))));
    assert_eq!(l.msg_type, "relay-grant");
    assert_eq!(l.call_id, Some(u64::from(call)));
    get_blob(m, FieldId::RelayToken).unwrap().to_vec()
}

#[test]
fn relay_forwards_udp_media_between_the_two_legs_only() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    grant(&mut sn, alice, 500);
    send_udp(&mut sn, t(2.0), SN, ALICE, &voice(500, 1));
    assert!(drain(&mut sn).0.is_empty(), "no second leg yet");
    send_udp(&mut sn, t(2.01), SN, BOB, &voice(500, 1));
    send_udp(&mut sn, t(2.03), SN, ALICE, &voice(500, 2));
    let (outs, _) = drain(&mut sn);
    let sent: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Udp(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].to, a(ALICE));
    assert_eq!(sent[0].data, voice(500, 1), "forwarded unchanged");
    assert_eq!(sent[1].to, a(BOB));
    let l = &sent[1].label;
    assert_eq!(
        (l.msg_type, l.class, l.call_id, l.txn_id),
        ("voice", TrafficClass::Media, Some(500), Some(2)),
        "a frame's label carries its sequence number"
    );
    check_label(l, "voice", Transport::Udp, a(BOB));
    // A third source and an unknown call are dropped.
    send_udp(&mut sn, t(2.05), SN, EVE, &voice(500, 9));
    send_udp(&mut sn, t(2.05), SN, EVE, &voice(501, 9));
    assert!(drain(&mut sn).0.is_empty());
    assert_eq!(sn.stats().relay_dropped, 3);
    // Released after 30 s without frames.
    sn.handle_input(Input::Timeout(t(2.03 + 30.0)));
    send_udp(&mut sn, t(33.0), SN, ALICE, &voice(500, 3));
    assert!(drain(&mut sn).0.is_empty());
}

#[test]
fn relay_refuses_unauthenticated_peers_and_admits_tcp_legs_by_token() {
    let mut sn = sn();
    let eve = accept(&mut sn, t(0.0), 9, SN, EVE);
    send_tcp(&mut sn, t(0.0), eve, &relay_request(600, None, 1));
    let (outs, _) = drain(&mut sn);
    let (_, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(
        (m.msg_type, err_of(m)),
        (MsgType::RelayRequest, Some(ErrorCode::Unauthenticated))
    );
    check_label(l, "relay-request", Transport::Tcp, a(EVE));
    // Guessing a token does not help either.
    let alice = registered(&mut sn, 1, "alice", ALICE);
    let token = grant(&mut sn, alice, 600);
    send_tcp(&mut sn, t(1.0), eve, &relay_request(600, Some(&[0; 16]), 2));
    let (outs, _) = drain(&mut sn);
    assert_eq!(
        err_of(&tcp_msgs(&outs)[0].1),
        Some(ErrorCode::Unauthenticated)
    );
    assert_eq!(sn.stats().relay_refused, 2);
    // Bob (UDP blocked) opens a TCP leg with the token; media is bridged UDP <-> TCP.
    let bob = accept(&mut sn, t(1.5), 2, SN, BOB);
    send_tcp(&mut sn, t(1.5), bob, &relay_request(600, Some(&token), 3));
    let (outs, _) = drain(&mut sn);
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::RelayGrant);
    send_udp(&mut sn, t(2.0), SN, ALICE, &voice(600, 1));
    let (outs, _) = drain(&mut sn);
    let (c, m, l) = &tcp_msgs(&outs)[0];
    assert_eq!(*c, bob);
    assert_eq!(m.to_bytes().unwrap(), voice(600, 1));
    check_label(l, "voice", Transport::Tcp, a(BOB));
    assert_eq!(l.txn_id, Some(1));
    send_raw(&mut sn, t(2.03), bob, &voice(600, 4));
    let (outs, _) = drain(&mut sn);
    let Output::Udp(d) = &outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!((d.to, d.label.transport), (a(ALICE), Transport::Udp));
    assert_eq!(d.label.txn_id, Some(4));
    match Message::parse(&d.data).unwrap().body {
        Body::Media(m) => assert_eq!(m.seq, 4),
        Body::Objects(_) => panic!("not media"),
    }
}

#[test]
fn relay_enforces_the_per_call_bandwidth_cap() {
    let mut sn = sn_with(3, |c| c.relay_cap_bps = 1000);
    let alice = registered(&mut sn, 1, "alice", ALICE);
    grant(&mut sn, alice, 700);
    send_udp(&mut sn, t(2.0), SN, BOB, &voice(700, 0));
    let frame = voice(700, 1).len(); // 87 bytes
    let mut relayed = 0;
    for i in 0..20u16 {
        send_udp(
            &mut sn,
            t(2.0 + 0.03 * f64::from(i)),
            SN,
            ALICE,
            &voice(700, i),
        );
        relayed += drain(&mut sn).0.len();
    }
    assert_eq!(relayed, 1000 / frame);
    assert!(sn.stats().relay_dropped >= (20 - 1000 / frame) as u64);
}

#[test]
fn a_bye_on_the_path_releases_the_relay() {
    let mut sn = sn();
    let alice = registered(&mut sn, 1, "alice", ALICE);
    let bob = registered(&mut sn, 2, "bob", BOB);
    send_tcp(&mut sn, t(0.5), alice, &invite(800, "alice", "bob", 1));
    drain(&mut sn);
    grant(&mut sn, alice, 800);
    send_tcp(
        &mut sn,
        t(3.0),
        bob,
        &call_msg(MsgType::Bye, Flags::REQUEST, 800, 2),
    );
    drain(&mut sn);
    send_udp(&mut sn, t(3.1), SN, ALICE, &voice(800, 1));
    send_udp(&mut sn, t(3.1), SN, BOB, &voice(800, 1));
    assert!(drain(&mut sn).0.is_empty());
}

#[test]
fn timers_come_back_as_the_next_deadline() {
    let mut sn = sn();
    let (outs, deadline) = drain(&mut sn);
    assert!(outs.is_empty());
    assert_eq!(deadline, NO_DEADLINE);
    registered(&mut sn, 1, "alice", ALICE);
    assert_eq!(
        drain(&mut sn).1,
        t(180.0),
        "idle close of the client connection"
    );
}

mod garbage {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Valid messages of every entry point, to mutate.
    fn seeds() -> Vec<Vec<u8>> {
        let blob = credential("alice", expiry(), &ls_key());
        [
            register_msg("alice", &blob, expiry(), ALICE),
            search("bob", 0, 1),
            invite(5, "alice", "bob", 2),
            relay_request(5, None, 3),
            req(MsgType::HcProbe, 4, vec![Object::u64(FieldId::NodeId, 1)]),
        ]
        .iter()
        .map(|m| m.to_bytes().unwrap())
        .chain([voice(5, 1)])
        .collect()
    }

    proptest! {
        #[test]
        fn mutated_and_random_input_never_panics_and_the_node_keeps_serving(
            cuts in vec((0usize..6, any::<usize>(), any::<u8>(), 0usize..200), 1..30),
            noise in vec(vec(any::<u8>(), 0..64), 0..5),
        ) {
            let mut sn = sn();
            let seeds = seeds();
            let conn = accept(&mut sn, t(0.0), 1, SN, EVE);
            let mut now = 0.0;
            for (which, at, xor, keep) in cuts {
                let mut m = seeds[which].clone();
                let i = at % m.len();
                m[i] ^= xor;
                m.truncate(keep.max(1));
                now += 0.2;
                send_udp(&mut sn, t(now), SN, EVE, &m);
                send_raw(&mut sn, t(now), conn, &m);
                drain(&mut sn);
            }
            for n in &noise {
                send_udp(&mut sn, t(now), SN, ALICE, n);
            }
            drain(&mut sn);
            let probe = req(MsgType::HcProbe, 9, vec![Object::u64(FieldId::NodeId, 1)]);
            send_udp(&mut sn, t(now + 2.0), SN, BOB, &probe.to_bytes().unwrap());
            prop_assert_eq!(udp_msgs(&drain(&mut sn).0).len(), 1);
        }
    }
}

#[test]
fn sn_refresh_with_own_sn_addr_adds_a_promoted_client_to_the_host_cache() {
    let mut sn = sn_with(0, |_| {});
    let alice = registered(&mut sn, 1, "alice", ALICE);
    let refresh = |txn: u32, sn_addr: &str| {
        req(
            MsgType::SnRefresh,
            txn,
            vec![
                Object::str(FieldId::User, "alice"),
                Object::u32(FieldId::Seq, txn),
                Object::addr(FieldId::SnAddr, a(sn_addr)),
            ],
        )
    };
    // Another node's address: a client cannot inject SNs.
    send_tcp(&mut sn, t(10.0), alice, &refresh(1, EVE));
    let (outs, _) = drain(&mut sn);
    assert_eq!(tcp_msgs(&outs)[0].1.msg_type, MsgType::SnRefreshAck);
    assert!(sn.host_cache().is_empty());
    // Its own registered address: learned once, then in the sn-lists it hands out.
    send_tcp(&mut sn, t(11.0), alice, &refresh(2, ALICE));
    send_tcp(&mut sn, t(12.0), alice, &refresh(3, ALICE));
    let (outs, _) = drain(&mut sn);
    assert_eq!(tcp_msgs(&outs).len(), 2, "both refreshes acked");
    assert_eq!(sn.host_cache(), &[a(ALICE)]);
    assert_eq!(sn.stats().sns_learned, 1);
    let hcx = req(
        MsgType::HcExchangeRequest,
        4,
        vec![Object::u32(FieldId::MaxCount, 200)],
    );
    send_tcp(&mut sn, t(13.0), alice, &hcx);
    let (outs, _) = drain(&mut sn);
    let list = get_list(&tcp_msgs(&outs)[0].1, FieldId::SnList)
        .unwrap()
        .to_vec();
    assert_eq!(list, vec![Object::addr(FieldId::Addr, a(ALICE))]);
}
