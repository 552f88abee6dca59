//! Shared test material for the Skylark tests: the hand-built message of every test vector
//! of PROTOCOL.md §10 (by vector name), the extractor that reads the vectors straight from
//! PROTOCOL.md (so spec and code cannot drift), and proptest strategies for every family.
#![allow(dead_code)]

use dissectors::skylark::messages::ErrorCode;
use dissectors::skylark::{FieldId as F, Flags, Media, Message, MsgType as T, Object, Value};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const SOFTWARE: &str = "skylark/1.0.0";
pub const NODE_ALICE: u64 = 0x0123_4567_89ab_cdef;
pub const NODE_SN: u64 = 0x5a5a_0000_0000_0001;
/// PROTOCOL.md §11.4: salt, nonce, Argon2id parameters, proof (HMAC-SHA-256 keyed with the
/// Argon2id verifier) and the Ed25519-signed credential (format version 2).
pub const SALT: [u8; 16] = [
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
pub const NONCE: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
pub const PROOF_HEX: &str = "edd4d2323d15386fcbc9729bffac8de1b82efd2370a1a898f9a77d3b6757ccd2";
/// Argon2id cost of the §11.4 example: 64 KiB, 1 pass, 1 lane (test-only cheapness).
pub const ARGON: (u32, u32, u32) = (64, 1, 1);
pub const CREDENTIAL_HEX: &str = "02000000006955b9000123456789abcdef05616c696365eb73fc9a43c058de6cb2f55abed225133fffc022ef0a0b25cdf003cd265ae4b5acf5591113d2f16d6044efc2955e1a0d03f1f78372d77f7a58eddc076826bd06";
pub const EXPIRY: u64 = 1_767_225_600;

pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
}

fn sn_list(addrs: &[SocketAddr]) -> Object {
    Object::list(
        F::SnList,
        addrs.iter().map(|a| Object::addr(F::Addr, *a)).collect(),
    )
}

fn users(id: F, names: &[&str]) -> Object {
    Object::list(id, names.iter().map(|n| Object::str(F::User, n)).collect())
}

fn msg(t: T, flags: Flags, txn: u32, objects: Vec<Object>) -> Message {
    Message::new(t, flags, txn, objects)
}

const Q: Flags = Flags::REQUEST;
const R: Flags = Flags::RESP;

/// Every test vector of PROTOCOL.md §10, by name, as the message it must decode to.
pub fn vectors() -> Vec<(&'static str, Message)> {
    let alice_pub = v4(203, 0, 113, 7, 40123);
    let alice_media = v4(203, 0, 113, 7, 40124);
    let bob_media = v4(198, 51, 100, 20, 51000);
    let sn1 = v4(192, 0, 2, 1, 33033);
    let sn2 = v4(192, 0, 2, 2, 41000);
    let sn3 = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3)),
        33033,
    );
    let entry_bob = Object::list(
        F::Entry,
        vec![
            Object::str(F::User, "bob"),
            Object::u32(F::Status, 1),
            Object::addr(F::Addr, v4(198, 51, 100, 20, 50999)),
            Object::addr(F::SnAddr, sn2),
            Object::u32(F::NatType, 2),
        ],
    );
    let entry_carol = Object::list(
        F::Entry,
        vec![Object::str(F::User, "carol"), Object::u32(F::Status, 0)],
    );
    let voice_payload: Vec<u8> = (0u8..67).collect();
    vec![
        (
            "hc-probe",
            msg(
                T::HcProbe,
                Q,
                1,
                vec![
                    Object::u64(F::NodeId, NODE_ALICE),
                    Object::str(F::Software, SOFTWARE),
                ],
            ),
        ),
        (
            "hc-probe-ack",
            msg(
                T::HcProbeAck,
                R,
                1,
                vec![
                    Object::u64(F::NodeId, NODE_SN),
                    Object::addr(F::Reflexive, alice_pub),
                    sn_list(&[sn2, sn3]),
                ],
            ),
        ),
        (
            "auth-hello",
            msg(
                T::AuthHello,
                Q,
                2,
                vec![
                    Object::str(F::User, "alice"),
                    Object::str(F::Software, SOFTWARE),
                ],
            ),
        ),
        (
            "auth-challenge",
            msg(
                T::AuthChallenge,
                R,
                2,
                vec![
                    Object::blob(F::Salt, &SALT),
                    Object::blob(F::Nonce, &NONCE),
                    Object::u32(F::HashAlg, 2),
                    Object::u32(F::ArgonM, ARGON.0),
                    Object::u32(F::ArgonT, ARGON.1),
                    Object::u32(F::ArgonP, ARGON.2),
                ],
            ),
        ),
        (
            "auth-proof",
            msg(
                T::AuthProof,
                Q,
                3,
                vec![
                    Object::str(F::User, "alice"),
                    Object::blob(F::Proof, &unhex(PROOF_HEX)),
                ],
            ),
        ),
        (
            "credential",
            msg(
                T::Credential,
                R,
                3,
                vec![
                    Object::blob(F::CredentialBlob, &unhex(CREDENTIAL_HEX)),
                    Object::u64(F::Expiry, EXPIRY),
                    sn_list(&[sn1]),
                ],
            ),
        ),
        (
            "buddy-list",
            msg(
                T::BuddyList,
                R,
                3,
                vec![users(F::Buddies, &["bob", "carol"])],
            ),
        ),
        (
            "sn-register",
            msg(
                T::SnRegister,
                Q,
                4,
                vec![
                    Object::str(F::User, "alice"),
                    Object::blob(F::CredentialBlob, &unhex(CREDENTIAL_HEX)),
                    Object::u64(F::Expiry, EXPIRY),
                    Object::addr(F::Addr, alice_pub),
                    Object::u32(F::NatType, 2),
                ],
            ),
        ),
        (
            "sn-register-ack",
            msg(
                T::SnRegisterAck,
                R,
                4,
                vec![Object::u32(F::Ttl, 259_200), sn_list(&[sn2])],
            ),
        ),
        (
            "fallback-probe",
            msg(
                T::FallbackProbe,
                Q,
                5,
                vec![Object::u64(F::NodeId, NODE_ALICE)],
            ),
        ),
        (
            "fallback-probe-ack",
            msg(
                T::FallbackProbeAck,
                R,
                5,
                vec![
                    Object::u64(F::NodeId, NODE_SN),
                    Object::addr(F::Reflexive, alice_pub),
                ],
            ),
        ),
        (
            "search",
            msg(
                T::Search,
                Q,
                6,
                vec![Object::str(F::Target, "bob"), Object::u32(F::Ring, 1)],
            ),
        ),
        (
            "search-result",
            msg(
                T::SearchResult,
                R,
                6,
                vec![Object::str(F::Target, "bob"), entry_bob.clone()],
            ),
        ),
        (
            "search-referral",
            msg(
                T::SearchReferral,
                R,
                6,
                vec![
                    Object::str(F::Target, "bob"),
                    Object::u32(F::Ring, 2),
                    sn_list(&[sn2, sn3]),
                ],
            ),
        ),
        (
            "presence-query",
            msg(
                T::PresenceQuery,
                Q,
                7,
                vec![users(F::Users, &["bob", "carol"])],
            ),
        ),
        (
            "presence-report",
            msg(
                T::PresenceReport,
                R,
                7,
                vec![Object::list(F::Entries, vec![entry_bob, entry_carol])],
            ),
        ),
        (
            "presence-update",
            msg(
                T::PresenceUpdate,
                Q,
                8,
                vec![Object::str(F::User, "alice"), Object::u32(F::Status, 2)],
            ),
        ),
        (
            "hc-exchange-request",
            msg(
                T::HcExchangeRequest,
                Q,
                9,
                vec![Object::u32(F::MaxCount, 200)],
            ),
        ),
        (
            "hc-exchange",
            msg(T::HcExchange, R, 9, vec![sn_list(&[sn1, sn2])]),
        ),
        (
            "invite",
            msg(
                T::Invite,
                Q,
                10,
                vec![
                    Object::u32(F::CallId, 0x0000_c0de),
                    Object::str(F::Caller, "alice"),
                    Object::str(F::Callee, "bob"),
                    Object::addr(F::MediaAddr, alice_media),
                    Object::list(
                        F::Codecs,
                        vec![Object::u32(F::Codec, 1), Object::u32(F::Codec, 2)],
                    ),
                    Object::u32(F::FrameMs, 30),
                    Object::u32(F::Redundancy, 1),
                ],
            ),
        ),
        (
            "ringing",
            msg(T::Ringing, R, 10, vec![Object::u32(F::CallId, 0xc0de)]),
        ),
        (
            "accept",
            msg(
                T::Accept,
                R,
                10,
                vec![
                    Object::u32(F::CallId, 0xc0de),
                    Object::addr(F::MediaAddr, bob_media),
                    Object::u32(F::Codec, 1),
                ],
            ),
        ),
        (
            "reject",
            msg(
                T::Reject,
                R,
                10,
                vec![
                    Object::u32(F::CallId, 0xc0de),
                    Object::u32(F::ErrorCode, ErrorCode::Busy.into()),
                    Object::str(F::Reason, "busy"),
                ],
            ),
        ),
        (
            "cancel",
            msg(T::Cancel, Q, 11, vec![Object::u32(F::CallId, 0xc0de)]),
        ),
        (
            "hold",
            msg(T::Hold, Q, 12, vec![Object::u32(F::CallId, 0xc0de)]),
        ),
        (
            "resume",
            msg(T::Resume, Q, 13, vec![Object::u32(F::CallId, 0xc0de)]),
        ),
        (
            "bye",
            msg(
                T::Bye,
                Q,
                14,
                vec![
                    Object::u32(F::CallId, 0xc0de),
                    Object::str(F::Reason, "hangup"),
                ],
            ),
        ),
        (
            "relay-request",
            msg(
                T::RelayRequest,
                Q,
                15,
                vec![
                    Object::u32(F::CallId, 0xc0de),
                    Object::str(F::Callee, "bob"),
                ],
            ),
        ),
        (
            "relay-grant",
            msg(
                T::RelayGrant,
                R,
                15,
                vec![
                    Object::u32(F::CallId, 0xc0de),
                    Object::addr(F::RelayAddr, v4(192, 0, 2, 2, 41002)),
                    Object::blob(F::RelayToken, &[0x7e; 16]),
                ],
            ),
        ),
        (
            "conf-join",
            msg(
                T::ConfJoin,
                Q,
                16,
                vec![
                    Object::u32(F::CallId, 0xc0f0),
                    Object::str(F::User, "carol"),
                    Object::addr(F::MediaAddr, v4(198, 51, 100, 30, 52000)),
                ],
            ),
        ),
        (
            "conf-leave",
            msg(
                T::ConfLeave,
                Q,
                17,
                vec![
                    Object::u32(F::CallId, 0xc0f0),
                    Object::str(F::User, "carol"),
                ],
            ),
        ),
        (
            "conf-mixer",
            msg(
                T::ConfMixer,
                Q,
                18,
                vec![
                    Object::u32(F::CallId, 0xc0f0),
                    Object::str(F::Mixer, "alice"),
                    Object::addr(F::MediaAddr, alice_media),
                    users(F::Members, &["alice", "bob", "carol"]),
                ],
            ),
        ),
        (
            "sn-refresh",
            msg(
                T::SnRefresh,
                Q,
                19,
                vec![Object::str(F::User, "alice"), Object::u32(F::Seq, 1)],
            ),
        ),
        (
            "sn-refresh-full",
            msg(
                T::SnRefresh,
                Q,
                20,
                vec![
                    Object::str(F::User, "alice"),
                    Object::u32(F::Seq, 60),
                    Object::u32(F::Full, 1),
                    Object::u32(F::Status, 1),
                ],
            ),
        ),
        (
            "sn-refresh-ack",
            msg(T::SnRefreshAck, R, 19, vec![Object::u32(F::Seq, 1)]),
        ),
        (
            "nat-ping",
            msg(
                T::NatPing,
                Q,
                21,
                vec![Object::u64(F::NodeId, NODE_ALICE), Object::u32(F::Seq, 3)],
            ),
        ),
        (
            "nat-pong",
            msg(
                T::NatPong,
                R,
                21,
                vec![
                    Object::u64(F::NodeId, NODE_SN),
                    Object::u32(F::Seq, 3),
                    Object::addr(F::Reflexive, alice_pub),
                ],
            ),
        ),
        (
            "hold-keepalive",
            msg(
                T::HoldKeepalive,
                Q,
                22,
                vec![Object::u32(F::CallId, 0xc0de), Object::u32(F::Seq, 5)],
            ),
        ),
        (
            "voice",
            Message::media(
                T::Voice,
                0xc0de,
                Media {
                    seq: 7,
                    timestamp: 1680,
                    codec: 1,
                    redundancy: vec![],
                    payload: voice_payload,
                },
            ),
        ),
        (
            "voice-redundant",
            Message::media(
                T::Voice,
                0xc0de,
                Media {
                    seq: 8,
                    timestamp: 1920,
                    codec: 1,
                    redundancy: vec![vec![0x71; 6], vec![0x61; 6]],
                    payload: vec![0x81; 6],
                },
            ),
        ),
        (
            "mix",
            Message::media(
                T::Mix,
                0xc0f0,
                Media {
                    seq: 100,
                    timestamp: 24000,
                    codec: 1,
                    redundancy: vec![],
                    payload: vec![0x4d; 8],
                },
            ),
        ),
        (
            "error-unauthenticated",
            msg(
                T::Search,
                Flags::ERR,
                23,
                vec![Object::u32(F::ErrorCode, ErrorCode::Unauthenticated.into())],
            ),
        ),
        (
            "error-overloaded",
            msg(
                T::SnRegister,
                Flags::ERR,
                24,
                vec![
                    Object::u32(F::ErrorCode, ErrorCode::Overloaded.into()),
                    Object::str(F::Reason, "full"),
                    sn_list(&[sn2]),
                ],
            ),
        ),
        (
            "unknown-type",
            msg(
                T::Unknown(0x02ff),
                Q,
                25,
                vec![
                    Object::new(
                        F::Unknown(0x60),
                        Value::Unknown {
                            kind: 0x7f,
                            bytes: vec![0xde, 0xad],
                        },
                    ),
                    Object::u32(F::Seq, 1),
                ],
            ),
        ),
    ]
}

/// A vector read from PROTOCOL.md: name, bytes, and the decoded text form.
#[derive(Debug, Clone)]
pub struct SpecVector {
    pub name: String,
    pub bytes: Vec<u8>,
    pub text: String,
}

pub fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
    std::fs::read_to_string(path).expect("PROTOCOL.md is readable")
}

/// Every "```hex vector=<name>" block of PROTOCOL.md with the "```text" block after it.
pub fn spec_vectors() -> Vec<SpecVector> {
    blocks("```hex vector=")
}

/// Every "```hex invalid=<name>" block of PROTOCOL.md §13.4 with its expected stop.
pub fn spec_invalid() -> Vec<SpecVector> {
    blocks("```hex invalid=")
}

fn blocks(prefix: &str) -> Vec<SpecVector> {
    let md = protocol_md();
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix(prefix) else {
            continue;
        };
        let mut hex = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            hex.push_str(l);
            hex.push('\n');
        }
        let mut text = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```text" {
                break;
            }
            assert!(
                l.trim().is_empty(),
                "vector {name}: text block must follow the hex block"
            );
        }
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        out.push(SpecVector {
            name: name.trim().to_owned(),
            bytes: unhex(&hex),
            text,
        });
    }
    out
}

/// The spec vector with this name.
#[track_caller]
pub fn spec_vector(name: &str) -> SpecVector {
    spec_vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no vector {name}"))
}

/// Lays bytes out as PROTOCOL.md does: 16 per line, lowercase, space separated.
pub fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- proptest strategies (shared by every round-trip property) ----

pub fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

pub fn arb_field() -> impl Strategy<Value = F> {
    prop_oneof![
        prop::sample::select(F::ALL.to_vec()),
        (0x40u8..=0xff).prop_map(F::from),
    ]
}

/// A value of any kind; lists nest up to `depth` more levels.
pub fn arb_value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        any::<u32>().prop_map(Value::U32),
        any::<u64>().prop_map(Value::U64),
        arb_addr().prop_map(Value::Addr),
        ".{0,24}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
        (0x07u8..=0xff, prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(kind, bytes)| Value::Unknown { kind, bytes }),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        4 => leaf,
        1 => prop::collection::vec(arb_object(depth - 1), 0..5).prop_map(Value::List),
    ]
    .boxed()
}

/// Objects whose id kind matches the value when the id is known (strictly valid).
pub fn arb_object(depth: u32) -> BoxedStrategy<Object> {
    (arb_field(), arb_value(depth))
        .prop_map(|(id, value)| {
            let id = match id.kind() {
                Some(k) if k != value.kind() => F::Unknown(0x40),
                _ => id,
            };
            Object::new(id, value)
        })
        .boxed()
}

pub fn arb_media() -> impl Strategy<Value = Media> {
    (
        any::<u16>(),
        any::<u32>(),
        any::<u8>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..=4),
        prop::collection::vec(any::<u8>(), 0..=255),
    )
        .prop_map(|(seq, timestamp, codec, redundancy, payload)| Media {
            seq,
            timestamp,
            codec,
            redundancy,
            payload,
        })
}

/// Any structurally valid message of the given family (1..=5); the body is arbitrary, so use
/// `MessageView::parse_lax` structure, or `strict` messages from [`arb_strict_message`].
pub fn arb_message_of_family(family: u8) -> BoxedStrategy<Message> {
    let types: Vec<T> = T::ALL
        .iter()
        .copied()
        .filter(|t| u16::from(*t) >> 8 == u16::from(family))
        .collect();
    let flags = prop::sample::select(vec![Flags::REQUEST, Flags::RESP, Flags::ERR]);
    if family == 5 {
        (prop::sample::select(types), any::<u32>(), arb_media())
            .prop_map(|(t, call, m)| Message::media(t, call, m))
            .boxed()
    } else {
        (
            prop::sample::select(types),
            flags,
            any::<u32>(),
            prop::collection::vec(arb_object(3), 0..8),
        )
            .prop_map(|(t, f, txn, o)| Message::new(t, f, txn, o))
            .boxed()
    }
}

/// A message that also satisfies the schema: the mandatory fields of its type with values of
/// the right kind, plus arbitrary unknown-id extras.
pub fn arb_strict_message(family: u8) -> BoxedStrategy<Message> {
    use dissectors::skylark::Kind;
    use dissectors::skylark::messages::{Dir, Need};
    if family == 5 {
        return arb_message_of_family(5);
    }
    let types: Vec<T> = T::ALL
        .iter()
        .copied()
        .filter(|t| u16::from(*t) >> 8 == u16::from(family))
        .collect();
    (
        prop::sample::select(types),
        any::<u32>(),
        any::<u64>(),
        ".{0,12}",
        prop::collection::vec(arb_object(2), 0..3),
        arb_addr(),
    )
        .prop_map(|(t, txn, n, s, extras, addr)| {
            let flags = if t.dir() == Some(Dir::Response) {
                Flags::RESP
            } else {
                Flags::REQUEST
            };
            let mut objects: Vec<Object> = t
                .fields()
                .iter()
                .filter(|(_, need)| *need == Need::Mandatory || n % 2 == 0)
                .map(|(id, _)| {
                    let value = match id.kind() {
                        Some(Kind::U32) => Value::U32(n as u32),
                        Some(Kind::U64) => Value::U64(n),
                        Some(Kind::Addr) => Value::Addr(addr),
                        Some(Kind::Str) => Value::Str(s.clone()),
                        Some(Kind::Blob) => Value::Blob(s.as_bytes().to_vec()),
                        _ => Value::List(vec![Object::str(F::User, &s)]),
                    };
                    Object::new(*id, value)
                })
                .collect();
            // Extras with ids outside the message's table are ignored by receivers.
            objects.extend(extras.into_iter().filter(|o| matches!(o.id, F::Unknown(_))));
            Message::new(t, flags, txn, objects)
        })
        .boxed()
}
