use super::*;
use crate::flow::Dir;
use crate::time::Ts;
use dissectors::registry::Status;
use dissectors::skylark::MsgType;
use proptest::prelude::*;
use std::num::NonZeroU16;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ctx(uid: u64, src: &str, dst: &str) -> MsgCtx {
    MsgCtx {
        uid: Uid(uid),
        live_index: 0,
        dir: Dir::Orig,
        ts: Ts(1),
        src: sa(src),
        dst: sa(dst),
        proto: 6,
        digits: 6,
    }
}

/// The number a dissector gives the message type named `t`.
fn type_code(protocol: &str, t: &str) -> Option<NonZeroU16> {
    match (protocol, t) {
        ("skylark", _) => MsgType::from_name(t).and_then(MsgType::type_code),
        ("stun", "binding-request") => NonZeroU16::new(0x0001),
        ("stun", "binding-success") => NonZeroU16::new(0x0101),
        ("stun", "binding-error") => NonZeroU16::new(0x0111),
        _ => None,
    }
}

fn msg(
    protocol: &'static str,
    t: &str,
    class: Option<TrafficClass>,
    detail: Option<&str>,
) -> Message {
    Message {
        protocol,
        msg_type: Cow::Owned(t.to_string()),
        type_code: type_code(protocol, t),
        txn_id: None,
        call_id: None,
        len: 10,
        status: Status::Complete,
        class,
        detail: detail.map(str::to_string),
        call: None,
    }
}

const CLIENT: &str = "10.0.0.5:4000";
const LS: &str = "198.51.100.10:33034";
const HOME: &str = "198.51.100.80:80";
const SN: &str = "203.0.113.7:33033";

#[test]
fn skylark_keeps_its_class_and_auth_marks_the_login_server_home() {
    let mut c = Classifier::new(vec![]);
    let hello = msg("skylark", "auth-hello", Some(TrafficClass::Login), None);
    let v = c.classify(&ctx(1, CLIENT, LS), &hello);
    assert_eq!(v.kind, "auth-hello");
    assert_eq!(v.class, Some(TrafficClass::Login));
    assert!(v.home);
    // The answer goes to the client: not home.
    let ch = msg("skylark", "auth-challenge", Some(TrafficClass::Login), None);
    assert!(!c.classify(&ctx(1, LS, CLIENT), &ch).home);
    let voice = msg("skylark", "voice", Some(TrafficClass::Media), None);
    let v = c.classify(&ctx(2, CLIENT, SN), &voice);
    assert_eq!((v.class, v.home), (Some(TrafficClass::Media), false));
    assert_eq!(c.learned_home(), vec![sa(LS)]);
}

#[test]
fn stun_with_overlay_endpoint_is_login_and_foreign_stun_is_unclassified() {
    let mut c = Classifier::new(vec![]);
    let b = msg("stun", "binding-request", None, None);
    // Unknown endpoints, no Skylark SOFTWARE: not overlay traffic.
    let v = c.classify(&ctx(1, CLIENT, SN), &b);
    assert_eq!(v.kind, "stun-binding-request");
    assert_eq!(v.class, None);
    c.classify(
        &ctx(1, CLIENT, SN),
        &msg("skylark", "hc-probe", Some(TrafficClass::Login), None),
    );
    assert_eq!(
        c.classify(&ctx(1, CLIENT, SN), &b).class,
        Some(TrafficClass::Login)
    );
    let s = msg("stun", "binding-success", None, None);
    assert_eq!(
        c.classify(&ctx(1, SN, CLIENT), &s).class,
        Some(TrafficClass::Login)
    );
    // SOFTWARE names Skylark: login even with a new endpoint.
    let mut c = Classifier::new(vec![]);
    let b = msg(
        "stun",
        "binding-request",
        None,
        Some("fingerprint=ok software=skylark/1.0.0"),
    );
    assert_eq!(
        c.classify(&ctx(3, CLIENT, SN), &b).class,
        Some(TrafficClass::Login)
    );
    // Not a binding: no class.
    let a = msg(
        "stun",
        "allocate-request",
        None,
        Some("software=skylark/1.0.0"),
    );
    assert_eq!(c.classify(&ctx(3, CLIENT, SN), &a).class, None);
}

#[test]
fn phone_home_http_requests_and_responses_are_named_by_path() {
    let mut c = Classifier::new(vec![]);
    let get = msg(
        "http",
        "GET",
        None,
        Some("host=home.example path=/ui/0/1.0.0/en/getlatestversion?ver=1.0.0 ua=Skylark/1.0.0"),
    );
    let v = c.classify(&ctx(7, CLIENT, HOME), &get);
    assert_eq!(v.kind, "http-version-check");
    assert_eq!((v.class, v.home), (Some(TrafficClass::Login), true));
    let resp = msg("http", "response", None, Some("status=200 reason=OK"));
    let v = c.classify(&ctx(7, HOME, CLIENT), &resp);
    assert_eq!(v.kind, "http-version-response");
    assert_eq!((v.class, v.home), (Some(TrafficClass::Login), false));
    // Pipelined telemetry then contacts on one flow: responses in order.
    let post = |p: &str| msg("http", "POST", None, Some(p));
    c.classify(
        &ctx(8, CLIENT, HOME),
        &post("path=/ui/0/1.0.0/en/telemetry"),
    );
    c.classify(&ctx(8, CLIENT, HOME), &post("path=/ui/0/1.0.0/en/contacts"));
    c.classify(&ctx(8, CLIENT, HOME), &post("path=/ui/0/1.0.0/en/nothing"));
    let r204 = msg(
        "http",
        "response",
        None,
        Some("status=204 reason=No Content"),
    );
    let r404 = msg(
        "http",
        "response",
        None,
        Some("status=404 reason=Not Found"),
    );
    assert_eq!(
        c.classify(&ctx(8, HOME, CLIENT), &r204).kind,
        "http-telemetry-response"
    );
    assert_eq!(
        c.classify(&ctx(8, HOME, CLIENT), &r204).kind,
        "http-contacts-response"
    );
    let v = c.classify(&ctx(8, HOME, CLIENT), &r404);
    assert_eq!(
        (v.kind.as_ref(), v.class),
        ("http-not-found", Some(TrafficClass::Login))
    );
    // A response with no request seen and not from home: plain web traffic.
    let v = c.classify(&ctx(9, "192.0.2.1:80", CLIENT), &resp);
    assert_eq!((v.kind.as_ref(), v.class), ("http-response", None));
    // Ordinary web request: no class.
    let web = msg(
        "http",
        "GET",
        None,
        Some("host=example.org path=/index.html"),
    );
    let v = c.classify(&ctx(10, CLIENT, "192.0.2.1:80"), &web);
    assert_eq!(
        (v.kind.as_ref(), v.class, v.home),
        ("http-get", None, false)
    );
}

#[test]
fn user_home_specs_addr_cidr_and_names() {
    assert_eq!(
        HomeSpec::parse("198.51.100.80"),
        Ok(HomeSpec::Addr("198.51.100.80".parse().unwrap(), None))
    );
    assert_eq!(
        HomeSpec::parse("198.51.100.80:80"),
        Ok(HomeSpec::Addr("198.51.100.80".parse().unwrap(), Some(80)))
    );
    assert_eq!(
        HomeSpec::parse("2001:db8::/32"),
        Ok(HomeSpec::Cidr("2001:db8::".parse().unwrap(), 32))
    );
    assert_eq!(
        HomeSpec::parse("*.Skylark.example"),
        Ok(HomeSpec::Name("*.skylark.example".into()))
    );
    for bad in ["", "10.0.0.0/33", "x/8", "bad name!", "::/129"] {
        assert!(HomeSpec::parse(bad).is_err(), "{bad}");
    }
    let specs = ["10.1.0.0/16", "192.0.2.9:443", "*.phone.example"]
        .iter()
        .map(|s| HomeSpec::parse(s).unwrap())
        .collect();
    let mut c = Classifier::new(specs);
    assert!(c.is_home(sa("10.1.200.3:9")));
    assert!(!c.is_home(sa("10.2.0.1:9")));
    assert!(c.is_home(sa("192.0.2.9:443")));
    assert!(!c.is_home(sa("192.0.2.9:80")));
    // TLS to a CIDR home: login, home.
    let hello = msg("tls", "client-hello", None, Some("sni=x.org"));
    let v = c.classify(&ctx(1, CLIENT, "10.1.0.1:443"), &hello);
    assert_eq!(v.kind, "tls-client-hello");
    assert_eq!((v.class, v.home), (Some(TrafficClass::Login), true));
    // DNS answer for a matching name makes its addresses home.
    let dns = msg(
        "dns",
        "response",
        None,
        Some("api.phone.example A -> 203.0.113.50,203.0.113.51"),
    );
    let v = c.classify(&ctx(2, "10.0.0.53:53", CLIENT), &dns);
    assert_eq!(
        (v.kind.as_ref(), v.class),
        ("dns-response", Some(TrafficClass::Login))
    );
    assert!(c.is_home(sa("203.0.113.51:443")));
    let other = msg("dns", "query", None, Some("example.org A"));
    assert_eq!(
        c.classify(&ctx(2, CLIENT, "10.0.0.53:53"), &other).class,
        None
    );
    // SNI and HTTP Host matches teach the destination.
    let sni = msg(
        "tls",
        "client-hello",
        None,
        Some("sni=cdn.phone.example alpn=h2"),
    );
    assert!(c.classify(&ctx(3, CLIENT, "198.18.0.1:443"), &sni).home);
    let host = msg(
        "http",
        "GET",
        None,
        Some("host=www.phone.example:8080 path=/x"),
    );
    let v = c.classify(&ctx(4, CLIENT, "198.18.0.2:8080"), &host);
    assert_eq!((v.class, v.home), (Some(TrafficClass::Login), true));
    // Each learned home is named by the host name that made it home (the phone-home
    // report's home_name); homes named by address have no name.
    let name = |ip: &str| c.home_name(ip.parse().unwrap());
    assert_eq!(name("203.0.113.51"), Some("api.phone.example"));
    assert_eq!(name("198.18.0.1"), Some("cdn.phone.example"));
    assert_eq!(name("198.18.0.2"), Some("www.phone.example"));
    assert_eq!(name("10.1.0.1"), None);
}

#[test]
fn glob_and_cidr_edges() {
    assert!(glob(b"*", b""));
    assert!(glob(b"a*c", b"ABBBC"));
    assert!(!glob(b"a*c", b"abcd"));
    assert!(glob(b"*.x.com", b"a.b.x.com"));
    assert!(!glob(b"x.com", b"ax.com"));
    assert!(in_cidr(
        "1.2.3.4".parse().unwrap(),
        "0.0.0.0".parse().unwrap(),
        0
    ));
    assert!(!in_cidr(
        "1.2.3.4".parse().unwrap(),
        "::".parse().unwrap(),
        0
    ));
}

#[test]
fn tables_stay_bounded() {
    let mut c = Classifier::new(vec![]);
    let get = msg("http", "GET", None, Some("path=/ui/0/1/en/telemetry"));
    for i in 0..(MAX_HTTP_FLOWS as u64 + 10) {
        c.classify(&ctx(i, CLIENT, HOME), &get);
    }
    assert!(c.http.len() <= MAX_HTTP_FLOWS);
    for _ in 0..(MAX_HTTP_PENDING + 5) {
        c.classify(&ctx(u64::MAX, CLIENT, HOME), &get);
    }
    assert!(c.http.get(&Uid(u64::MAX)).unwrap().len() <= MAX_HTTP_PENDING);
    for i in 0..(MAX_HOME_ENDPOINTS as u32 + 10) {
        let a = SocketAddr::new(IpAddr::V4(i.into()), 80);
        c.classify(&ctx(1, CLIENT, &a.to_string()), &get);
    }
    assert!(c.home_endpoints.len() <= MAX_HOME_ENDPOINTS);
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_messages(
        items in proptest::collection::vec(
            (0usize..5, "[a-z-]{0,12}", proptest::option::of("[ -~]{0,60}"), 0u64..4, any::<bool>()),
            0..60,
        ),
        pattern in "[a-z*.]{0,10}",
    ) {
        let protos = ["skylark", "stun", "http", "dns", "tls"];
        let specs = HomeSpec::parse(&pattern).into_iter().collect();
        let mut c = Classifier::new(specs);
        for (p, t, detail, uid, flip) in items {
            let m = msg(protos[p], &t, None, detail.as_deref());
            let (a, b) = if flip { (CLIENT, HOME) } else { (HOME, CLIENT) };
            let v = c.classify(&ctx(uid, a, b), &m);
            // Skylark keeps the dissector's name; the others always get a prefixed one.
            prop_assert!(p == 0 || !v.kind.is_empty());
        }
    }
}

#[test]
fn a_flows_cached_homes_follow_homes_learned_mid_flow_both_ways() {
    let mut c = Classifier::new(vec![]);
    let mut flow = FlowHomes::default();
    let ping = msg("skylark", "nat-ping", Some(TrafficClass::Keepalive), None);
    let hello = msg("skylark", "auth-hello", Some(TrafficClass::Login), None);
    let answer = |dir| MsgCtx {
        dir,
        ..ctx(1, LS, CLIENT)
    };
    // Before the login server is known: nobody is home, and that is cached.
    let v = c.classify_in_flow(&ctx(1, CLIENT, LS), &ping, false, &mut flow);
    assert!(!v.home);
    assert_eq!(c.homes(&answer(Dir::Resp), &mut flow), (false, false));
    // Learned mid-flow: the cache notices, in both directions.
    let v = c.classify_in_flow(&ctx(1, CLIENT, LS), &hello, true, &mut flow);
    assert!(v.home);
    assert_eq!(c.homes(&ctx(1, CLIENT, LS), &mut flow), (false, true));
    assert_eq!(c.homes(&answer(Dir::Resp), &mut flow), (true, false));
    // Another flow's cache is its own.
    let mut other = FlowHomes::default();
    assert_eq!(c.homes(&ctx(2, CLIENT, SN), &mut other), (false, false));
    assert_eq!(c.homes(&answer(Dir::Resp), &mut flow), (true, false));
}
