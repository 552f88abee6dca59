use super::*;
use crate::classify::Known;
use proptest::prelude::*;
use std::borrow::Cow;
use std::io::Write;

const A: &str = "10.0.0.1:1000";
const B: &str = "10.0.0.2:2000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn label(ts: i64, kind: &str, class: TrafficClass, txn: Option<u64>) -> Label {
    Label {
        ts: Ts(ts),
        proto: 17,
        src: sa(A),
        dst: sa(B),
        kind: kind.into(),
        class,
        home: false,
        txn_id: txn,
        call_id: None,
    }
}

fn obs(ts: i64, kind: &str, class: Option<TrafficClass>, txn: Option<u64>) -> Observed {
    Observed {
        ts: Ts(ts),
        proto: 17,
        src: sa(A),
        dst: sa(B),
        txn_id: txn,
        call_id: None,
        verdict: Classified {
            kind: Cow::Owned(kind.into()),
            known: Known::from_name(kind),
            class,
            home: false,
        },
    }
}

const MS: i64 = 1_000_000;
use TrafficClass::*;

#[test]
fn exact_pairs_match_in_either_order() {
    let mut j = Join::new(2 * MS);
    j.label(label(100 * MS, "hc-probe", Login, Some(1)));
    j.message(obs(100 * MS, "hc-probe", Some(Login), Some(1)));
    j.message(obs(200 * MS, "search", Some(Lookup), Some(2)));
    j.label(label(201 * MS, "search", Lookup, Some(2)));
    let t = j.finish();
    assert_eq!((t.labels, t.matched, t.unlabelled), (2, 2, 0));
    assert_eq!(t.classes["login"].precision(), 1.0);
    assert_eq!(t.classes["lookup"].recall(), 1.0);
    assert!(t.worst().is_empty());
}

#[test]
fn ids_kind_endpoints_and_tolerance_must_agree() {
    let mut j = Join::new(2 * MS);
    j.label(label(0, "hc-probe", Login, Some(1)));
    j.message(obs(0, "hc-probe", Some(Login), Some(2))); // txn differs
    j.label(label(10 * MS, "hc-probe", Login, None));
    j.message(obs(13 * MS, "hc-probe", Some(Login), None)); // 3 ms off
    j.label(label(20 * MS, "search", Lookup, None));
    j.message(obs(20 * MS, "hc-probe", Some(Login), None)); // kind differs
    let mut other = obs(30 * MS, "voice", Some(Media), None);
    other.src = sa("10.0.0.9:1");
    j.label(label(30 * MS, "voice", Media, None));
    j.message(other); // sender differs
    j.message(obs(40 * MS, "dns-query", None, None)); // not overlay: ignored
    let t = j.finish();
    assert_eq!((t.labels, t.matched), (4, 0));
    assert_eq!(t.unlabelled, 4);
    assert_eq!(t.classes["login"].precision(), 0.0);
    assert_eq!(t.classes["lookup"].recall(), 0.0);
    assert_eq!(
        t.confusion[&("login".to_string(), "unmatched".to_string())],
        2
    );
    assert_eq!(
        t.confusion[&("unlabelled".to_string(), "login".to_string())],
        3
    );
}

#[test]
fn pairs_follow_sending_order_within_the_window() {
    // Captured out of order: still both paired.
    let mut j = Join::new(2 * MS);
    j.label(label(10 * MS, "voice", Media, None));
    j.label(label(11 * MS, "voice", Media, None));
    j.message(obs(11 * MS, "voice", Some(Media), None));
    j.message(obs(10 * MS, "voice", Some(Media), None));
    assert_eq!(j.finish().matched, 2);
    // Each frame captured 1.5 ms after its label, the labels 1 ms apart: the first frame is
    // nearer the second label, but pairs with its own, so the second frame still finds one.
    let mut j = Join::new(2 * MS);
    j.label(label(0, "voice", Media, None));
    j.label(label(MS, "voice", Media, None));
    j.message(obs(3 * MS / 2, "voice", Some(Media), None));
    j.label(label(2 * MS, "voice", Media, None));
    j.message(obs(5 * MS / 2, "voice", Some(Media), None));
    j.message(obs(7 * MS / 2, "voice", Some(Media), None));
    let t = j.finish();
    assert_eq!((t.labels, t.matched, t.unlabelled), (3, 3, 0));
}

#[test]
fn media_frames_join_on_their_sequence_number() {
    let frame = |seq| Message {
        protocol: "skylark",
        msg_type: Cow::Borrowed("voice"),
        type_code: dissectors::skylark::MsgType::Voice.type_code(),
        txn_id: None,
        call_id: Some(9),
        len: 87,
        status: dissectors::registry::Status::Complete,
        class: Some(Media),
        detail: None,
        call: Some(CallInfo::Media { seq, timestamp: 0 }),
    };
    assert_eq!(Observed::txn_id_of(&frame(2)), Some(2));
    let mut search = frame(0);
    search.call = None;
    search.txn_id = Some(77);
    assert_eq!(Observed::txn_id_of(&search), Some(77));
    // Frame 1 was lost: frame 2 pairs with its own label, not the earlier one.
    let mut j = Join::new(2 * MS);
    j.label(label(0, "voice", Media, Some(1)));
    j.label(label(MS, "voice", Media, Some(2)));
    j.message(obs(MS + MS / 5, "voice", Some(Media), Some(2)));
    let t = j.finish();
    assert_eq!((t.labels, t.matched), (2, 1));
    assert_eq!(
        t.worst()[0].4,
        Ts(0),
        "frame 1's label is the unmatched one"
    );
}

#[test]
fn pair_offsets_are_summarised() {
    let mut j = Join::new(5 * MS);
    for (i, late) in [MS, 3 * MS, -MS / 2].into_iter().enumerate() {
        let at = i as i64 * 100 * MS;
        j.label(label(at, "hc-probe", Login, Some(i as u64)));
        j.message(obs(at + late, "hc-probe", Some(Login), Some(i as u64)));
    }
    let t = j.finish();
    let o = &t.offsets;
    assert_eq!(o.message_first, 1);
    assert_eq!((o.quantile_ms(0.5), o.max_ms()), (Some(1.0), Some(3.0)));
    let text = render_text(&t, "core");
    assert!(
        text.contains("median 1.000 ms, p99 3.000 ms, max 3.000 ms; 1 messages before"),
        "{text}"
    );
    assert!(render_json(&t, "core").contains(
        "\"offsets_ms\": {\"p50\": 1.000, \"p99\": 3.000, \"max\": 3.000, \"message_first\": 1}"
    ));
    let none = Join::new(MS).finish();
    assert!(render_json(&none, "").contains("\"offsets_ms\": null"));
    assert!(!render_text(&none, "").contains("offsets"));
}

#[test]
fn late_tcp_messages_pair_with_their_first_transmission() {
    let mut j = Join::new(2 * MS);
    let mut l = label(0, "voice", Media, None);
    l.proto = 6;
    j.label(l.clone());
    let mut m = obs(500 * MS, "voice", Some(Media), None);
    m.proto = 6;
    j.message(m.clone());
    // The same on UDP: too late.
    l.proto = 17;
    m.proto = 17;
    j.label(l);
    j.message(m);
    let t = j.finish();
    assert_eq!((t.labels, t.matched), (2, 1));
}

#[test]
fn class_errors_are_counted_and_listed() {
    let mut j = Join::new(2 * MS);
    for i in 0..4 {
        j.label(label(i * 100 * MS, "nat-ping", Keepalive, Some(i as u64)));
        let class = if i == 0 { Some(Login) } else { Some(Keepalive) };
        j.message(obs(i * 100 * MS, "nat-ping", class, Some(i as u64)));
    }
    let mut l = label(900 * MS, "auth-hello", Login, None);
    l.home = true;
    j.label(l);
    j.message(obs(900 * MS, "auth-hello", Some(Login), None));
    let t = j.finish();
    assert_eq!(t.matched, 5);
    assert_eq!(t.classes["keepalive"].recall(), 0.75);
    assert_eq!(t.classes["keepalive"].precision(), 1.0);
    assert_eq!(t.classes["login"].precision(), 0.5);
    assert_eq!(t.home.recall(), 0.0);
    let w = t.worst();
    assert!(
        w.iter()
            .any(|r| r.0 == "nat-ping" && r.1 == "keepalive" && r.2 == "login")
    );
    assert!(w.iter().any(|r| r.0 == "auth-hello" && r.1 == "home=true"));
    let text = render_text(&t, "core");
    assert!(text.contains("nat-ping"), "{text}");
    let json = render_json(&t, "core");
    assert!(json.starts_with("{\"matched\": 5, \"labels\": 5, \"classes\": {\"login\": "));
    assert!(json.contains(
        "\"keepalive\": {\"precision\": 1.000000, \"recall\": 0.750000, \"support\": 4}"
    ));
}

#[test]
fn old_entries_expire_as_unmatched() {
    let mut j = Join::new(2 * MS);
    j.label(label(0, "search", Lookup, None));
    j.message(obs(0, "hc-probe", Some(Login), None));
    let later = HORIZON_NS + 1000 * MS;
    j.label(label(later, "x", Lookup, None));
    j.message(obs(later, "x", Some(Lookup), None));
    // Both early entries left the pending tables before the end.
    assert_eq!(j.labels.by_key.len(), 0);
    assert_eq!(j.msgs.by_key.len(), 0);
    let t = j.finish();
    assert_eq!((t.labels, t.matched, t.unlabelled), (2, 1, 1));
}

#[test]
fn timestamps_parse() {
    assert_eq!(parse_ts("1.5"), Some(Ts(1_500_000_000)));
    assert_eq!(
        parse_ts("1767225600.103850603"),
        Some(Ts(1_767_225_600_103_850_603))
    );
    assert_eq!(parse_ts("7"), Some(Ts(7_000_000_000)));
    for bad in [
        "",
        ".5",
        "1.x",
        "-1",
        "1.0000000001",
        "99999999999999999999",
    ] {
        assert_eq!(parse_ts(bad), None, "{bad}");
    }
}

const HEADER: &str = "ts,transport,src_addr,src_port,dst_addr,dst_port,msg_type,class,home,txn_id,call_id,node,role,capture\n";

fn write_labels(body: &str, gz: bool) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let text = format!("{HEADER}{body}");
    if gz {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        f.write_all(&e.finish().unwrap()).unwrap();
    } else {
        f.write_all(text.as_bytes()).unwrap();
    }
    f
}

#[test]
fn label_reader_selects_one_capture_point_plain_or_gzip() {
    let body = "1.0,udp,10.0.0.1,1,10.0.0.2,2,hc-probe,login,false,5,,a,client,core\n\
                1.0,udp,10.0.0.3,1,10.0.0.2,2,hc-probe,login,false,5,,a,client,nat:a\n\
                2.0,tcp,::1,1,::2,2,voice,media,true,,9,a,client,core\n";
    for gz in [false, true] {
        let f = write_labels(body, gz);
        let mut r = LabelReader::open(f.path(), None).unwrap();
        let a = r.next_label().unwrap().unwrap();
        assert_eq!(r.capture(), "core");
        assert_eq!((a.proto, a.txn_id, a.class), (17, Some(5), Login));
        let b = r.next_label().unwrap().unwrap();
        assert_eq!((b.proto, b.call_id, b.home), (6, Some(9), true));
        assert!(r.next_label().unwrap().is_none());
        let mut r = LabelReader::open(f.path(), Some("nat:a".into())).unwrap();
        assert_eq!(r.next_label().unwrap().unwrap().src, sa("10.0.0.3:1"));
        assert!(r.next_label().unwrap().is_none());
    }
}

#[test]
fn label_reader_errors_are_one_line() {
    let missing = LabelReader::open(Path::new("/nonexistent/labels.csv"), None);
    assert!(matches!(missing, Err(LabelError::Open { .. })));
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"hello,world\n1,2\n").unwrap();
    let e = LabelReader::open(f.path(), None).err().unwrap();
    assert!(e.to_string().contains("missing column 'ts'"), "{e}");
    for row in [
        "x,udp,10.0.0.1,1,10.0.0.2,2,a,login,false,,,n,r,c\n",
        "1,sctp,10.0.0.1,1,10.0.0.2,2,a,login,false,,,n,r,c\n",
        "1,udp,10.0.0.999,1,10.0.0.2,2,a,login,false,,,n,r,c\n",
        "1,udp,10.0.0.1,70000,10.0.0.2,2,a,login,false,,,n,r,c\n",
        "1,udp,10.0.0.1,1,10.0.0.2,2,a,chat,false,,,n,r,c\n",
        "1,udp,10.0.0.1,1,10.0.0.2,2,a,login,maybe,,,n,r,c\n",
        "1,udp,10.0.0.1,1,10.0.0.2,2,a,login,false,-3,,n,r,c\n",
        "1,udp,10.0.0.1,1\n",
        // A quoted field spanning lines: escaped in the message.
        "1,udp,10.0.0.1,1,10.0.0.2,2,a,login,false,\"3,\n4\",,n,r,c\n",
    ] {
        let f = write_labels(row, false);
        let mut r = LabelReader::open(f.path(), None).unwrap();
        let e = r.next_label().err().unwrap().to_string();
        assert!(e.contains("line 2") && !e.contains('\n'), "{e}");
    }
    let long = format!(
        "1,udp,10.0.0.1,1,10.0.0.2,2,a,{},false,,,n,r,c\n",
        "x".repeat(500)
    );
    let f = write_labels(&long, false);
    let e = LabelReader::open(f.path(), None)
        .unwrap()
        .next_label()
        .err()
        .unwrap()
        .to_string();
    assert!(e.len() < 150 && e.contains("unknown class 'xxx"), "{e}");
}

proptest! {
    /// Any sequence: never panics, counts stay consistent, and labels equal to messages
    /// always match fully.
    #[test]
    fn join_counts_are_consistent(
        items in proptest::collection::vec((0i64..50, 0usize..3, 0usize..3, any::<bool>(), any::<bool>()), 0..80),
    ) {
        let kinds = ["a", "b", "c"];
        let classes = [Login, Media, Keepalive];
        let mut j = Join::new(2 * MS);
        let mut mirror = Join::new(2 * MS);
        let mut labels = 0u64;
        let mut sorted = items.clone();
        sorted.sort_by_key(|i| i.0);
        for (t, k, c, is_label, tcp) in sorted {
            let ts = t * 10 * MS;
            let proto = if tcp { 6 } else { 17 };
            if is_label {
                let mut l = label(ts, kinds[k], classes[c], None);
                l.proto = proto;
                j.label(l.clone());
                labels += 1;
                mirror.label(l);
                let mut m = obs(ts, kinds[k], Some(classes[c]), None);
                m.proto = proto;
                mirror.message(m);
            } else {
                let mut m = obs(ts, kinds[k], Some(classes[c]), None);
                m.proto = proto;
                j.message(m);
            }
        }
        let t = j.finish();
        prop_assert_eq!(t.labels, labels);
        prop_assert!(t.matched <= t.labels);
        let support: u64 = t.classes.values().map(|c| c.support).sum();
        prop_assert_eq!(support, labels);
        let m = mirror.finish();
        prop_assert_eq!(m.matched, labels);
        prop_assert_eq!(m.unlabelled, 0);
        for c in m.classes.values() {
            prop_assert_eq!(c.true_pos, c.support);
        }
    }
}
