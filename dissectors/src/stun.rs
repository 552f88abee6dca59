//! STUN (RFC 8489, and classic RFC 3489) and TURN ChannelData (RFC 8656 §12) dissector, plus
//! an owned [`StunMessage`] that emits the same bytes (the Skylark peer sends Binding
//! requests for NAT discovery with it).
//!
//! Guarantees: [`StunView`] reads the caller's bytes in place; attributes are decoded lazily
//! by [`AttrIter`], at most [`MAX_ATTRIBUTES`] of them, text values bounded by
//! [`MAX_TEXT_LEN`]; FINGERPRINT is verified (CRC-32 XOR `0x5354554E`); no panic on any
//! bytes. Over UDP one message per datagram; over TCP messages back to back (the header
//! length delimits each) or RFC 4571 length-prefixed frames, detected on the first bytes.
//! Must not: check MESSAGE-INTEGRITY (no keys here), keep transaction state, or allocate per
//! attribute while dissecting.

use crate::DissectError;
use crate::detail::DetailBuf;
use crate::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Status, Transport,
};
use nom::IResult;
use nom::bytes::streaming::take;
use nom::number::streaming::{be_u16, be_u32};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;

/// RFC 8489 §5: every message starts with a 20-byte header.
pub const HEADER_LEN: usize = 20;
/// RFC 8489 §5: the fixed value that tells RFC 5389+ STUN from classic RFC 3489.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8489 §14.7: FINGERPRINT is the CRC-32 of the message XORed with this.
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Largest body: the length field is 16 bits and a multiple of 4 (RFC 8489 §5).
pub const MAX_BODY_LEN: usize = 65_532;
/// Attributes decoded per message; real messages carry fewer than 20.
pub const MAX_ATTRIBUTES: usize = 64;
/// RFC 8489 §14.9, §14.14, §14.10: SOFTWARE, REALM and NONCE are under 763 bytes
/// (USERNAME under 513); we accept up to this for all text attributes.
pub const MAX_TEXT_LEN: usize = 763;
/// Bound on the `detail` column.
pub const MAX_DETAIL_LEN: usize = 160;
/// RFC 8656 §12.4: channel number (2 bytes) and length (2 bytes).
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;
/// RFC 4571: 16-bit length prefix before each frame on a TCP connection.
pub const RFC4571_PREFIX_LEN: usize = 2;
/// Bytes at the head of a stream needed to decide the TCP framing.
pub const FRAMING_PROBE_LEN: usize = RFC4571_PREFIX_LEN + HEADER_LEN;

pub const DESCRIPTOR: DissectorDesc = DissectorDesc {
    name: "stun",
    transports: &[Transport::Udp, Transport::Tcp],
    port_hints: &[3478, 3479, 5349, 19302],
    probe,
    new_flow,
};

/// Attribute type codes (RFC 8489 §18.3, RFC 3489 §11.2, RFC 8656 §18, RFC 8445 §16.1).
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const RESPONSE_ADDRESS: u16 = 0x0002;
    pub const CHANGE_REQUEST: u16 = 0x0003;
    pub const SOURCE_ADDRESS: u16 = 0x0004;
    pub const CHANGED_ADDRESS: u16 = 0x0005;
    pub const USERNAME: u16 = 0x0006;
    pub const PASSWORD: u16 = 0x0007;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const REFLECTED_FROM: u16 = 0x000B;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const SOFTWARE: u16 = 0x8022;
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;
    pub const RESPONSE_ORIGIN: u16 = 0x802B;
    pub const OTHER_ADDRESS: u16 = 0x802C;
}

/// Message class: the C1/C0 bits of the type (RFC 8489 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Request => "request",
            Class::Indication => "indication",
            Class::Success => "success",
            Class::Error => "error",
        }
    }
}

/// STUN/TURN method (RFC 8489 §18.2, RFC 8656 §17, RFC 6062 §6.1); unknown values kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Binding,
    /// RFC 3489 only.
    SharedSecret,
    Allocate,
    Refresh,
    Send,
    Data,
    CreatePermission,
    ChannelBind,
    Connect,
    ConnectionBind,
    ConnectionAttempt,
    Unknown(u16),
}

impl Method {
    pub fn from_u16(v: u16) -> Method {
        match v {
            0x001 => Method::Binding,
            0x002 => Method::SharedSecret,
            0x003 => Method::Allocate,
            0x004 => Method::Refresh,
            0x006 => Method::Send,
            0x007 => Method::Data,
            0x008 => Method::CreatePermission,
            0x009 => Method::ChannelBind,
            0x00A => Method::Connect,
            0x00B => Method::ConnectionBind,
            0x00C => Method::ConnectionAttempt,
            v => Method::Unknown(v & 0x0FFF),
        }
    }

    pub fn to_u16(self) -> u16 {
        match self {
            Method::Binding => 0x001,
            Method::SharedSecret => 0x002,
            Method::Allocate => 0x003,
            Method::Refresh => 0x004,
            Method::Send => 0x006,
            Method::Data => 0x007,
            Method::CreatePermission => 0x008,
            Method::ChannelBind => 0x009,
            Method::Connect => 0x00A,
            Method::ConnectionBind => 0x00B,
            Method::ConnectionAttempt => 0x00C,
            Method::Unknown(v) => v & 0x0FFF,
        }
    }

    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Method::Binding => "binding",
            Method::SharedSecret => "shared-secret",
            Method::Allocate => "allocate",
            Method::Refresh => "refresh",
            Method::Send => "send",
            Method::Data => "data",
            Method::CreatePermission => "create-permission",
            Method::ChannelBind => "channel-bind",
            Method::Connect => "connect",
            Method::ConnectionBind => "connection-bind",
            Method::ConnectionAttempt => "connection-attempt",
            Method::Unknown(_) => return None,
        })
    }
}

/// The 14-bit message type split into method and class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub method: Method,
    pub class: Class,
}

impl MessageType {
    pub const BINDING_REQUEST: MessageType = MessageType {
        method: Method::Binding,
        class: Class::Request,
    };
    pub const BINDING_SUCCESS: MessageType = MessageType {
        method: Method::Binding,
        class: Class::Success,
    };

    /// Decodes the type field; the two top bits must be zero (checked by the header parser).
    pub fn from_u16(v: u16) -> MessageType {
        let class = match ((v >> 7) & 0b10) | ((v >> 4) & 0b01) {
            0 => Class::Request,
            1 => Class::Indication,
            2 => Class::Success,
            _ => Class::Error,
        };
        let method = (v & 0x000F) | ((v >> 1) & 0x0070) | ((v >> 2) & 0x0F80);
        MessageType {
            method: Method::from_u16(method),
            class,
        }
    }

    pub fn to_u16(self) -> u16 {
        let m = self.method.to_u16();
        let c: u16 = match self.class {
            Class::Request => 0,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        };
        (m & 0x000F)
            | ((m & 0x0070) << 1)
            | ((m & 0x0F80) << 2)
            | ((c & 0b01) << 4)
            | ((c & 0b10) << 7)
    }

    /// Row name such as `binding-request` or `allocate-error`.
    pub fn name(self) -> Cow<'static, str> {
        let n = match (self.method, self.class) {
            (Method::Binding, Class::Request) => "binding-request",
            (Method::Binding, Class::Indication) => "binding-indication",
            (Method::Binding, Class::Success) => "binding-success",
            (Method::Binding, Class::Error) => "binding-error",
            (Method::Allocate, Class::Request) => "allocate-request",
            (Method::Allocate, Class::Success) => "allocate-success",
            (Method::Allocate, Class::Error) => "allocate-error",
            (Method::Refresh, Class::Request) => "refresh-request",
            (Method::Refresh, Class::Success) => "refresh-success",
            (Method::Refresh, Class::Error) => "refresh-error",
            (Method::Send, Class::Indication) => "send-indication",
            (Method::Data, Class::Indication) => "data-indication",
            (Method::CreatePermission, Class::Request) => "create-permission-request",
            (Method::CreatePermission, Class::Success) => "create-permission-success",
            (Method::CreatePermission, Class::Error) => "create-permission-error",
            (Method::ChannelBind, Class::Request) => "channel-bind-request",
            (Method::ChannelBind, Class::Success) => "channel-bind-success",
            (Method::ChannelBind, Class::Error) => "channel-bind-error",
            (m, c) => {
                return Cow::Owned(match m.as_str() {
                    Some(name) => format!("{name}-{}", c.as_str()),
                    None => format!("method-0x{:03x}-{}", m.to_u16(), c.as_str()),
                });
            }
        };
        Cow::Borrowed(n)
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub msg_type: MessageType,
    /// Body length in bytes (a multiple of 4).
    pub length: u16,
    /// [`MAGIC_COOKIE`] for RFC 5389+; in classic RFC 3489 these are the first 32 bits of
    /// the 128-bit transaction id.
    pub magic_cookie: u32,
    pub transaction_id: [u8; 12],
}

impl Header {
    /// True for RFC 5389/8489 messages (magic cookie present).
    pub fn is_modern(&self) -> bool {
        self.magic_cookie == MAGIC_COOKIE
    }

    /// The low 64 bits of the transaction id (the analyzer's `txn_id`).
    pub fn txn_id_low64(&self) -> u64 {
        let mut b = [0u8; 8];
        if let Some(src) = self.transaction_id.get(4..12) {
            b.copy_from_slice(src);
        }
        u64::from_be_bytes(b)
    }

    /// Key used by the XOR-address rule: cookie followed by transaction id.
    fn xor_key(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        let (c, t) = k.split_at_mut(4);
        c.copy_from_slice(&self.magic_cookie.to_be_bytes());
        t.copy_from_slice(&self.transaction_id);
        k
    }
}

fn to_err(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Incomplete(nom::Needed::Size(n)) => DissectError::Truncated { needed: n.get() },
        nom::Err::Incomplete(nom::Needed::Unknown) => DissectError::Truncated { needed: 1 },
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    }
}

/// Parses the 20-byte header (streaming: `Incomplete` when fewer bytes are present).
pub fn parse_header(i: &[u8]) -> IResult<&[u8], Header, DissectError> {
    let (i, typ) = be_u16(i)?;
    if typ & 0xC000 != 0 {
        return Err(nom::Err::Error(DissectError::Invalid {
            what: "stun message type",
        }));
    }
    let (i, length) = be_u16(i)?;
    let (i, magic_cookie) = be_u32(i)?;
    // RFC 8489 §5 requires a multiple of 4. WhatsApp sends cookie-bearing messages that
    // break this; the cookie is evidence enough, so they parse (and are reported
    // malformed). Without the cookie the rule is what tells STUN from noise.
    if length % 4 != 0 && magic_cookie != MAGIC_COOKIE {
        return Err(nom::Err::Error(DissectError::Invalid {
            what: "stun message length",
        }));
    }
    let (i, tid) = take(12usize)(i)?;
    let mut transaction_id = [0u8; 12];
    transaction_id.copy_from_slice(tid);
    Ok((
        i,
        Header {
            msg_type: MessageType::from_u16(typ),
            length,
            magic_cookie,
            transaction_id,
        },
    ))
}

/// One decoded attribute. `B` is `&[u8]` in the zero-copy view and `Vec<u8>` in the owned
/// message, so both share field names. Addresses are stored decoded (XOR removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attribute<B> {
    MappedAddress(SocketAddr),
    XorMappedAddress(SocketAddr),
    XorPeerAddress(SocketAddr),
    XorRelayedAddress(SocketAddr),
    ResponseOrigin(SocketAddr),
    OtherAddress(SocketAddr),
    AlternateServer(SocketAddr),
    /// RFC 3489.
    SourceAddress(SocketAddr),
    /// RFC 3489.
    ChangedAddress(SocketAddr),
    ChangeRequest {
        change_ip: bool,
        change_port: bool,
    },
    Username(B),
    Software(B),
    Realm(B),
    Nonce(B),
    ErrorCode {
        code: u16,
        reason: B,
    },
    MessageIntegrity(B),
    MessageIntegritySha256(B),
    /// On emit the correct CRC is always written, whatever this holds.
    Fingerprint(u32),
    Priority(u32),
    UseCandidate,
    IceControlled(u64),
    IceControlling(u64),
    /// Any other type, value kept raw.
    Unknown {
        typ: u16,
        value: B,
    },
}

/// A decoded attribute borrowing the message bytes.
pub type AttributeView<'a> = Attribute<&'a [u8]>;

fn invalid(what: &'static str) -> DissectError {
    DissectError::Invalid { what }
}

fn decode_address(v: &[u8], xor: Option<&[u8; 16]>) -> Result<SocketAddr, DissectError> {
    let (family, port, addr) = match v {
        [_, family, p0, p1, addr @ ..] => (*family, u16::from_be_bytes([*p0, *p1]), addr),
        _ => return Err(invalid("stun address length")),
    };
    let mut key = [0u8; 16];
    if let Some(k) = xor {
        key = *k;
    }
    let port = port ^ u16::from_be_bytes([key[0], key[1]]);
    let mut bytes = [0u8; 16];
    for ((o, a), k) in bytes.iter_mut().zip(addr).zip(key) {
        *o = a ^ k;
    }
    match (family, addr.len()) {
        (1, 4) => {
            let [a, b, c, d, ..] = bytes;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port))
        }
        (2, 16) => Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(bytes)), port)),
        _ => Err(invalid("stun address family")),
    }
}

fn encode_address(a: &SocketAddr, xor: Option<&[u8; 16]>, out: &mut Vec<u8>) {
    let key = xor.copied().unwrap_or([0u8; 16]);
    let port = a.port() ^ u16::from_be_bytes([key[0], key[1]]);
    let (family, raw): (u8, [u8; 16]) = match a.ip() {
        IpAddr::V4(v4) => {
            let mut r = [0u8; 16];
            for (d, s) in r.iter_mut().zip(v4.octets()) {
                *d = s;
            }
            (1, r)
        }
        IpAddr::V6(v6) => (2, v6.octets()),
    };
    let n = if family == 1 { 4 } else { 16 };
    out.extend_from_slice(&[0, family]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend(raw.iter().zip(key).take(n).map(|(a, k)| a ^ k));
}

fn text<'a>(v: &'a [u8], max: usize, what: &'static str) -> Result<&'a [u8], DissectError> {
    if v.len() > max {
        return Err(DissectError::TooLarge {
            what,
            value: v.len() as u64,
            max: max as u64,
        });
    }
    Ok(v)
}

fn fixed<const N: usize>(v: &[u8], what: &'static str) -> Result<[u8; N], DissectError> {
    <[u8; N]>::try_from(v).map_err(|_| invalid(what))
}

impl<'a> Attribute<&'a [u8]> {
    /// Decodes one attribute value. `key` is the header's cookie + transaction id, used by
    /// the XOR-address rule (RFC 8489 §14.2).
    pub fn decode(typ: u16, v: &'a [u8], key: &[u8; 16]) -> Result<Self, DissectError> {
        use attr::*;
        Ok(match typ {
            MAPPED_ADDRESS => Attribute::MappedAddress(decode_address(v, None)?),
            XOR_MAPPED_ADDRESS => Attribute::XorMappedAddress(decode_address(v, Some(key))?),
            XOR_PEER_ADDRESS => Attribute::XorPeerAddress(decode_address(v, Some(key))?),
            XOR_RELAYED_ADDRESS => Attribute::XorRelayedAddress(decode_address(v, Some(key))?),
            RESPONSE_ORIGIN => Attribute::ResponseOrigin(decode_address(v, None)?),
            OTHER_ADDRESS => Attribute::OtherAddress(decode_address(v, None)?),
            ALTERNATE_SERVER => Attribute::AlternateServer(decode_address(v, None)?),
            SOURCE_ADDRESS => Attribute::SourceAddress(decode_address(v, None)?),
            CHANGED_ADDRESS => Attribute::ChangedAddress(decode_address(v, None)?),
            CHANGE_REQUEST => {
                let b = u32::from_be_bytes(fixed::<4>(v, "change-request length")?);
                Attribute::ChangeRequest {
                    change_ip: b & 0x4 != 0,
                    change_port: b & 0x2 != 0,
                }
            }
            USERNAME => Attribute::Username(text(v, MAX_TEXT_LEN, "stun username length")?),
            SOFTWARE => Attribute::Software(text(v, MAX_TEXT_LEN, "stun software length")?),
            REALM => Attribute::Realm(text(v, MAX_TEXT_LEN, "stun realm length")?),
            NONCE => Attribute::Nonce(text(v, MAX_TEXT_LEN, "stun nonce length")?),
            ERROR_CODE => match v {
                [_, _, class, number, reason @ ..] => {
                    let class = u16::from(class & 0x07);
                    let number = u16::from(*number);
                    if !(3..=6).contains(&class) || number > 99 {
                        return Err(invalid("stun error code"));
                    }
                    Attribute::ErrorCode {
                        code: class * 100 + number,
                        reason: text(reason, MAX_TEXT_LEN, "stun error reason length")?,
                    }
                }
                _ => return Err(invalid("stun error-code length")),
            },
            MESSAGE_INTEGRITY => {
                fixed::<20>(v, "message-integrity length")?;
                Attribute::MessageIntegrity(v)
            }
            MESSAGE_INTEGRITY_SHA256 => {
                if !(16..=32).contains(&v.len()) || v.len() % 4 != 0 {
                    return Err(invalid("message-integrity-sha256 length"));
                }
                Attribute::MessageIntegritySha256(v)
            }
            FINGERPRINT => {
                Attribute::Fingerprint(u32::from_be_bytes(fixed::<4>(v, "fingerprint length")?))
            }
            PRIORITY => Attribute::Priority(u32::from_be_bytes(fixed::<4>(v, "priority length")?)),
            USE_CANDIDATE => {
                if !v.is_empty() {
                    return Err(invalid("use-candidate length"));
                }
                Attribute::UseCandidate
            }
            ICE_CONTROLLED => Attribute::IceControlled(u64::from_be_bytes(fixed::<8>(
                v,
                "ice-controlled length",
            )?)),
            ICE_CONTROLLING => Attribute::IceControlling(u64::from_be_bytes(fixed::<8>(
                v,
                "ice-controlling length",
            )?)),
            typ => Attribute::Unknown { typ, value: v },
        })
    }

    /// Copies the borrowed values into an owned attribute.
    pub fn to_owned_attr(&self) -> Attribute<Vec<u8>> {
        self.map(|b| b.to_vec())
    }
}

impl<B> Attribute<B> {
    fn map<C>(&self, f: impl Fn(&B) -> C) -> Attribute<C> {
        match self {
            Attribute::MappedAddress(a) => Attribute::MappedAddress(*a),
            Attribute::XorMappedAddress(a) => Attribute::XorMappedAddress(*a),
            Attribute::XorPeerAddress(a) => Attribute::XorPeerAddress(*a),
            Attribute::XorRelayedAddress(a) => Attribute::XorRelayedAddress(*a),
            Attribute::ResponseOrigin(a) => Attribute::ResponseOrigin(*a),
            Attribute::OtherAddress(a) => Attribute::OtherAddress(*a),
            Attribute::AlternateServer(a) => Attribute::AlternateServer(*a),
            Attribute::SourceAddress(a) => Attribute::SourceAddress(*a),
            Attribute::ChangedAddress(a) => Attribute::ChangedAddress(*a),
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            } => Attribute::ChangeRequest {
                change_ip: *change_ip,
                change_port: *change_port,
            },
            Attribute::Username(b) => Attribute::Username(f(b)),
            Attribute::Software(b) => Attribute::Software(f(b)),
            Attribute::Realm(b) => Attribute::Realm(f(b)),
            Attribute::Nonce(b) => Attribute::Nonce(f(b)),
            Attribute::ErrorCode { code, reason } => Attribute::ErrorCode {
                code: *code,
                reason: f(reason),
            },
            Attribute::MessageIntegrity(b) => Attribute::MessageIntegrity(f(b)),
            Attribute::MessageIntegritySha256(b) => Attribute::MessageIntegritySha256(f(b)),
            Attribute::Fingerprint(v) => Attribute::Fingerprint(*v),
            Attribute::Priority(v) => Attribute::Priority(*v),
            Attribute::UseCandidate => Attribute::UseCandidate,
            Attribute::IceControlled(v) => Attribute::IceControlled(*v),
            Attribute::IceControlling(v) => Attribute::IceControlling(*v),
            Attribute::Unknown { typ, value } => Attribute::Unknown {
                typ: *typ,
                value: f(value),
            },
        }
    }
}

impl<B: AsRef<[u8]>> Attribute<B> {
    /// Wire type code.
    pub fn typ(&self) -> u16 {
        use attr::*;
        match self {
            Attribute::MappedAddress(_) => MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => XOR_MAPPED_ADDRESS,
            Attribute::XorPeerAddress(_) => XOR_PEER_ADDRESS,
            Attribute::XorRelayedAddress(_) => XOR_RELAYED_ADDRESS,
            Attribute::ResponseOrigin(_) => RESPONSE_ORIGIN,
            Attribute::OtherAddress(_) => OTHER_ADDRESS,
            Attribute::AlternateServer(_) => ALTERNATE_SERVER,
            Attribute::SourceAddress(_) => SOURCE_ADDRESS,
            Attribute::ChangedAddress(_) => CHANGED_ADDRESS,
            Attribute::ChangeRequest { .. } => CHANGE_REQUEST,
            Attribute::Username(_) => USERNAME,
            Attribute::Software(_) => SOFTWARE,
            Attribute::Realm(_) => REALM,
            Attribute::Nonce(_) => NONCE,
            Attribute::ErrorCode { .. } => ERROR_CODE,
            Attribute::MessageIntegrity(_) => MESSAGE_INTEGRITY,
            Attribute::MessageIntegritySha256(_) => MESSAGE_INTEGRITY_SHA256,
            Attribute::Fingerprint(_) => FINGERPRINT,
            Attribute::Priority(_) => PRIORITY,
            Attribute::UseCandidate => USE_CANDIDATE,
            Attribute::IceControlled(_) => ICE_CONTROLLED,
            Attribute::IceControlling(_) => ICE_CONTROLLING,
            Attribute::Unknown { typ, .. } => *typ,
        }
    }

    /// Value length on the wire (padding excluded).
    pub fn value_len(&self) -> usize {
        let addr_len = |a: &SocketAddr| if a.is_ipv4() { 8 } else { 20 };
        match self {
            Attribute::MappedAddress(a)
            | Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a)
            | Attribute::AlternateServer(a)
            | Attribute::SourceAddress(a)
            | Attribute::ChangedAddress(a) => addr_len(a),
            Attribute::ChangeRequest { .. }
            | Attribute::Fingerprint(_)
            | Attribute::Priority(_) => 4,
            Attribute::Username(b)
            | Attribute::Software(b)
            | Attribute::Realm(b)
            | Attribute::Nonce(b)
            | Attribute::MessageIntegrity(b)
            | Attribute::MessageIntegritySha256(b)
            | Attribute::Unknown { value: b, .. } => b.as_ref().len(),
            Attribute::ErrorCode { reason, .. } => 4 + reason.as_ref().len(),
            Attribute::UseCandidate => 0,
            Attribute::IceControlled(_) | Attribute::IceControlling(_) => 8,
        }
    }

    /// Writes the value (no TLV header, no padding). FINGERPRINT is written by the message.
    fn emit_value(&self, key: &[u8; 16], out: &mut Vec<u8>) {
        match self {
            Attribute::MappedAddress(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a)
            | Attribute::AlternateServer(a)
            | Attribute::SourceAddress(a)
            | Attribute::ChangedAddress(a) => encode_address(a, None, out),
            Attribute::XorMappedAddress(a)
            | Attribute::XorPeerAddress(a)
            | Attribute::XorRelayedAddress(a) => encode_address(a, Some(key), out),
            Attribute::ChangeRequest {
                change_ip,
                change_port,
            } => {
                let v = (u32::from(*change_ip) << 2) | (u32::from(*change_port) << 1);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Attribute::Username(b)
            | Attribute::Software(b)
            | Attribute::Realm(b)
            | Attribute::Nonce(b)
            | Attribute::MessageIntegrity(b)
            | Attribute::MessageIntegritySha256(b)
            | Attribute::Unknown { value: b, .. } => out.extend_from_slice(b.as_ref()),
            Attribute::ErrorCode { code, reason } => {
                let class = u8::try_from(code / 100).unwrap_or(0) & 0x07;
                let number = u8::try_from(code % 100).unwrap_or(0);
                out.extend_from_slice(&[0, 0, class, number]);
                out.extend_from_slice(reason.as_ref());
            }
            Attribute::Fingerprint(v) | Attribute::Priority(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            Attribute::UseCandidate => {}
            Attribute::IceControlled(v) | Attribute::IceControlling(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
        }
    }
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as FINGERPRINT uses it. Bitwise:
/// STUN messages are short, and this keeps the crate free of tables and dependencies.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One raw attribute position, before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub typ: u16,
    pub value: &'a [u8],
    /// Offset of the attribute's TLV header from the start of the message.
    pub offset: usize,
}

/// Walks the attribute TLVs of a body (each padded to 4 bytes), at most
/// [`MAX_ATTRIBUTES`]; yields one `Err` and stops on a structural problem.
#[derive(Clone, Debug)]
pub struct AttrIter<'a> {
    rest: &'a [u8],
    offset: usize,
    count: usize,
    done: bool,
}

impl<'a> AttrIter<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        AttrIter {
            rest: body,
            offset: HEADER_LEN,
            count: 0,
            done: false,
        }
    }
}

fn parse_tlv(i: &[u8]) -> IResult<&[u8], (u16, &[u8]), DissectError> {
    let (i, typ) = be_u16(i)?;
    let (i, len) = be_u16(i)?;
    let (i, value) = take(usize::from(len))(i)?;
    // The last attribute's padding may be missing in a truncated capture: tolerate it.
    let pad = pad4(usize::from(len)) - usize::from(len);
    let i = i.get(pad.min(i.len())..).unwrap_or_default();
    Ok((i, (typ, value)))
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<RawAttribute<'a>, DissectError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        if self.count >= MAX_ATTRIBUTES {
            self.done = true;
            return Some(Err(DissectError::TooLarge {
                what: "stun attribute count",
                value: self.count as u64 + 1,
                max: MAX_ATTRIBUTES as u64,
            }));
        }
        match parse_tlv(self.rest) {
            Ok((rest, (typ, value))) => {
                let at = self.offset;
                self.offset += self.rest.len() - rest.len();
                self.rest = rest;
                self.count += 1;
                Some(Ok(RawAttribute {
                    typ,
                    value,
                    offset: at,
                }))
            }
            Err(e) => {
                self.done = true;
                Some(Err(to_err(e)))
            }
        }
    }
}

/// A zero-copy view of one STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StunView<'a> {
    pub header: Header,
    /// The message bytes: header plus as much of the body as was present (at most
    /// `HEADER_LEN + length`).
    pub bytes: &'a [u8],
}

impl<'a> StunView<'a> {
    /// Parses a message at the start of `data`. Bytes after `HEADER_LEN + length` are not
    /// part of it; a short body is allowed (see [`StunView::is_truncated`]).
    pub fn parse(data: &'a [u8]) -> Result<Self, DissectError> {
        let (_, header) = parse_header(data).map_err(to_err)?;
        let total = HEADER_LEN + usize::from(header.length);
        let bytes = data.get(..total.min(data.len())).unwrap_or(data);
        Ok(StunView { header, bytes })
    }

    /// Bytes the message occupies on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + usize::from(self.header.length)
    }

    pub fn is_truncated(&self) -> bool {
        self.bytes.len() < self.wire_len()
    }

    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    pub fn raw_attributes(&self) -> AttrIter<'a> {
        AttrIter::new(self.body())
    }

    /// Decoded attributes in order.
    pub fn attributes(&self) -> impl Iterator<Item = Result<AttributeView<'a>, DissectError>> {
        let key = self.header.xor_key();
        self.raw_attributes()
            .map(move |r| r.and_then(|a| Attribute::decode(a.typ, a.value, &key)))
    }

    /// `Some(true)` when a FINGERPRINT attribute is present and matches, `Some(false)` when
    /// it does not (or cannot be checked), `None` without one.
    pub fn fingerprint_ok(&self) -> Option<bool> {
        for a in self.raw_attributes() {
            let Ok(a) = a else { return None };
            if a.typ == attr::FINGERPRINT {
                let Ok(v) = fixed::<4>(a.value, "fingerprint") else {
                    return Some(false);
                };
                let covered = self.bytes.get(..a.offset)?;
                return Some(crc32(covered) ^ FINGERPRINT_XOR == u32::from_be_bytes(v));
            }
        }
        None
    }

    /// The analyzer's row for this message.
    pub fn to_message(&self) -> Message {
        let mut d = DetailBuf::new(MAX_DETAIL_LEN);
        let mut status = if self.is_truncated() {
            Status::Truncated
        } else if self.header.length % 4 != 0 {
            Status::Malformed
        } else {
            Status::Complete
        };
        let mut software: Option<&[u8]> = None;
        for a in self.attributes() {
            match a {
                Ok(Attribute::XorMappedAddress(s)) => {
                    d.key("xor-mapped").display(s);
                }
                Ok(Attribute::MappedAddress(s)) => {
                    d.key("mapped").display(s);
                }
                Ok(Attribute::XorRelayedAddress(s)) => {
                    d.key("relayed").display(s);
                }
                Ok(Attribute::ErrorCode { code, .. }) => {
                    d.key("error").display(code);
                }
                Ok(Attribute::Software(s)) => software = Some(s),
                Ok(_) => {}
                Err(DissectError::Truncated { .. }) if self.is_truncated() => break,
                Err(_) => {
                    status = Status::Malformed;
                    break;
                }
            }
        }
        if !self.header.is_modern() {
            d.key("classic").display(1);
        }
        match self.fingerprint_ok() {
            Some(true) => {
                d.key("fingerprint").display("ok");
            }
            Some(false) => {
                d.key("fingerprint").display("bad");
                if status == Status::Complete {
                    status = Status::Malformed;
                }
            }
            None => {}
        }
        // Software last: it is free text and may contain spaces.
        if let Some(s) = software {
            d.key("software").bytes(s);
        }
        Message {
            protocol: "stun",
            msg_type: self.header.msg_type.name(),
            type_code: NonZeroU16::new(self.header.msg_type.to_u16()),
            txn_id: Some(self.header.txn_id_low64()),
            call_id: None,
            len: u32::try_from(self.wire_len()).unwrap_or(u32::MAX),
            status,
            class: None,
            detail: d.finish(),
            call: None,
        }
    }
}

/// A TURN ChannelData message (RFC 8656 §12.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelDataView<'a> {
    /// 0x4000..=0x7FFF.
    pub channel: u16,
    /// Application data as present (may be short when truncated).
    pub data: &'a [u8],
    /// The length field.
    pub length: u16,
}

impl<'a> ChannelDataView<'a> {
    pub fn parse(i: &'a [u8]) -> Result<Self, DissectError> {
        let r: IResult<&[u8], (u16, u16), DissectError> = (|i| {
            let (i, channel) = be_u16(i)?;
            let (i, length) = be_u16(i)?;
            Ok((i, (channel, length)))
        })(i);
        let (rest, (channel, length)) = r.map_err(to_err)?;
        if !(0x4000..=0x7FFF).contains(&channel) {
            return Err(invalid("turn channel number"));
        }
        let data = rest
            .get(..usize::from(length).min(rest.len()))
            .unwrap_or_default();
        Ok(ChannelDataView {
            channel,
            data,
            length,
        })
    }

    pub fn to_message(&self) -> Message {
        let mut d = DetailBuf::new(MAX_DETAIL_LEN);
        d.key("channel")
            .display(format_args!("0x{:04x}", self.channel));
        Message {
            protocol: "stun",
            msg_type: Cow::Borrowed("channel-data"),
            type_code: None,
            txn_id: None,
            call_id: None,
            len: u32::from(self.length) + CHANNEL_DATA_HEADER_LEN as u32,
            status: if self.data.len() < usize::from(self.length) {
                Status::Truncated
            } else {
                Status::Complete
            },
            class: None,
            detail: d.finish(),
            call: None,
        }
    }
}

/// An owned STUN message: build, `emit`, and `parse` back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StunMessage {
    pub msg_type: MessageType,
    /// [`MAGIC_COOKIE`] unless this is a classic RFC 3489 message.
    pub magic_cookie: u32,
    pub transaction_id: [u8; 12],
    pub attributes: Vec<Attribute<Vec<u8>>>,
}

impl StunMessage {
    pub fn new(msg_type: MessageType, transaction_id: [u8; 12]) -> Self {
        StunMessage {
            msg_type,
            magic_cookie: MAGIC_COOKIE,
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// A Binding request with optional SOFTWARE, closed by FINGERPRINT (RFC 8489 §7.1).
    pub fn binding_request(transaction_id: [u8; 12], software: Option<&str>) -> Self {
        let mut m = StunMessage::new(MessageType::BINDING_REQUEST, transaction_id);
        if let Some(s) = software {
            m.attributes
                .push(Attribute::Software(s.as_bytes().to_vec()));
        }
        m.attributes.push(Attribute::Fingerprint(0));
        m
    }

    /// A Binding success response carrying the reflexive address as XOR-MAPPED-ADDRESS.
    pub fn binding_success(
        transaction_id: [u8; 12],
        mapped: SocketAddr,
        software: Option<&str>,
    ) -> Self {
        let mut m = StunMessage::new(MessageType::BINDING_SUCCESS, transaction_id);
        m.attributes.push(Attribute::XorMappedAddress(mapped));
        if let Some(s) = software {
            m.attributes
                .push(Attribute::Software(s.as_bytes().to_vec()));
        }
        m.attributes.push(Attribute::Fingerprint(0));
        m
    }

    fn header(&self) -> Header {
        Header {
            msg_type: self.msg_type,
            length: 0,
            magic_cookie: self.magic_cookie,
            transaction_id: self.transaction_id,
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self
                .attributes
                .iter()
                .map(|a| 4 + pad4(a.value_len()))
                .sum::<usize>()
    }

    /// The first XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        let xor = self.attributes.iter().find_map(|a| match a {
            Attribute::XorMappedAddress(s) => Some(*s),
            _ => None,
        });
        xor.or_else(|| {
            self.attributes.iter().find_map(|a| match a {
                Attribute::MappedAddress(s) => Some(*s),
                _ => None,
            })
        })
    }

    /// Appends the wire form to `out`. FINGERPRINT, wherever listed, gets the correct CRC of
    /// the bytes before it. Fails when the body would exceed [`MAX_BODY_LEN`] or a value
    /// exceeds 65535 bytes.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), DissectError> {
        let body = self.buffer_len() - HEADER_LEN;
        if body > MAX_BODY_LEN {
            return Err(DissectError::TooLarge {
                what: "stun body length",
                value: body as u64,
                max: MAX_BODY_LEN as u64,
            });
        }
        let start = out.len();
        let header = self.header();
        let key = header.xor_key();
        out.reserve(self.buffer_len());
        out.extend_from_slice(&self.msg_type.to_u16().to_be_bytes());
        out.extend_from_slice(&u16::try_from(body).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.magic_cookie.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        for a in &self.attributes {
            let len = u16::try_from(a.value_len()).map_err(|_| DissectError::TooLarge {
                what: "stun attribute length",
                value: a.value_len() as u64,
                max: u64::from(u16::MAX),
            })?;
            out.extend_from_slice(&a.typ().to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            if let Attribute::Fingerprint(_) = a {
                let covered = out.get(start..out.len() - 4).unwrap_or_default();
                let crc = crc32(covered) ^ FINGERPRINT_XOR;
                out.extend_from_slice(&crc.to_be_bytes());
            } else {
                a.emit_value(&key, out);
            }
            let pad = pad4(usize::from(len)) - usize::from(len);
            out.extend(std::iter::repeat_n(0u8, pad));
        }
        Ok(())
    }

    /// Strict parse: the whole of `data` must be exactly one complete message whose
    /// attributes all decode.
    pub fn parse(data: &[u8]) -> Result<StunMessage, DissectError> {
        let view = StunView::parse(data)?;
        if view.is_truncated() {
            return Err(DissectError::Truncated {
                needed: view.wire_len() - view.bytes.len(),
            });
        }
        if view.bytes.len() != data.len() {
            return Err(invalid("trailing bytes after stun message"));
        }
        if view.header.length % 4 != 0 {
            return Err(invalid("stun message length"));
        }
        let attributes = view
            .attributes()
            .map(|a| a.map(|a| a.to_owned_attr()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StunMessage {
            msg_type: view.header.msg_type,
            magic_cookie: view.header.magic_cookie,
            transaction_id: view.header.transaction_id,
            attributes,
        })
    }
}

/// Classic RFC 3489 attribute types (plus the pre-5389 XOR-MAPPED-ADDRESS 0x8020 and
/// SERVER 0x8022 that 3489 stacks send).
fn is_classic_attribute(typ: u16) -> bool {
    (0x0001..=0x000B).contains(&typ)
        || typ == 0x8020
        || typ == 0x8022
        || typ == attr::XOR_MAPPED_ADDRESS
}

/// Classic STUN has no magic cookie, so a random datagram passes the header check one time
/// in 16; require a known Binding/Shared-Secret type and an attribute walk that ends exactly
/// at the length, with classic attribute types only.
fn probe_classic(h: &Header, msg: &[u8]) -> Probe {
    let t = h.msg_type.to_u16();
    if !matches!(t, 0x0001 | 0x0101 | 0x0111 | 0x0002 | 0x0102 | 0x0112) {
        return Probe::No;
    }
    let body = msg.get(HEADER_LEN..).unwrap_or_default();
    let mut walked = 0usize;
    for a in AttrIter::new(body) {
        match a {
            Ok(a) if is_classic_attribute(a.typ) && a.value.len() % 4 == 0 => {
                walked += 4 + a.value.len();
            }
            _ => return Probe::No,
        }
    }
    if walked == body.len() {
        Probe::Yes
    } else {
        Probe::No
    }
}

/// Probes one STUN message (or ChannelData) at the start of `data`; `exact` requires it to
/// fill `data` (a datagram).
fn probe_message(data: &[u8], exact: bool) -> Probe {
    let Some(&first) = data.first() else {
        return Probe::Maybe;
    };
    if first & 0xC0 == 0x40 {
        // ChannelData alone is weak evidence: any payload starting 0x40..0x7F matches.
        return match ChannelDataView::parse(data) {
            Ok(c) if usize::from(c.length) + CHANNEL_DATA_HEADER_LEN <= data.len() => Probe::Maybe,
            Ok(_) | Err(DissectError::Truncated { .. }) => Probe::Maybe,
            Err(_) => Probe::No,
        };
    }
    let h = match parse_header(data) {
        Ok((_, h)) => h,
        Err(nom::Err::Incomplete(_)) => return Probe::Maybe,
        Err(_) => return Probe::No,
    };
    let total = HEADER_LEN + usize::from(h.length);
    if !h.is_modern() {
        if data.len() < total && !exact {
            return Probe::Maybe;
        }
        if data.len() != total && exact {
            return Probe::No;
        }
        return probe_classic(&h, data.get(..total).unwrap_or_default());
    }
    if data.len() < total {
        return Probe::Maybe;
    }
    if exact && data.len() != total {
        return Probe::Maybe;
    }
    Probe::Yes
}

/// How a TCP direction frames its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    #[default]
    Unknown,
    /// Messages back to back, delimited by their own length fields.
    Plain,
    /// RFC 4571: 2-byte length before every frame.
    Rfc4571,
}

/// Decides the TCP framing from the head of a stream: `None` when more bytes are needed or
/// neither fits.
pub fn detect_framing(data: &[u8]) -> Option<Framing> {
    if let [hi, lo, rest @ ..] = data {
        let n = usize::from(u16::from_be_bytes([*hi, *lo]));
        if n >= HEADER_LEN && rest.len() >= HEADER_LEN {
            if let Ok((_, h)) = parse_header(rest) {
                if h.is_modern() && HEADER_LEN + usize::from(h.length) == n {
                    return Some(Framing::Rfc4571);
                }
            }
        }
    }
    // A modern header is enough on a stream (the cookie is the evidence); classic needs
    // its whole first message to pass the strict walk.
    match parse_header(data) {
        Ok((_, h)) if h.is_modern() => Some(Framing::Plain),
        _ => match probe_message(data, false) {
            Probe::Yes if data.first().is_some_and(|b| b & 0xC0 == 0) => Some(Framing::Plain),
            _ => None,
        },
    }
}

/// Cheap probe: a STUN header whose length fits (UDP: fills the datagram), the magic cookie
/// or a strict classic-3489 walk; on TCP also an RFC 4571 prefix.
pub fn probe(transport: Transport, _side: Side, data: &[u8]) -> Probe {
    match transport {
        Transport::Udp => probe_message(data, true),
        Transport::Tcp => match detect_framing(data) {
            Some(_) => Probe::Yes,
            None if undecided(data) => Probe::Maybe,
            None => Probe::No,
        },
    }
}

/// True when the stream head could still turn out to be STUN with more bytes.
fn undecided(data: &[u8]) -> bool {
    let head_ok = match data.first() {
        // ChannelData cannot open a stream (an Allocate comes first).
        Some(b) if b & 0xC0 == 0x40 => false,
        _ => probe_message(data, false) != Probe::No,
    };
    // An RFC 4571 prefix hides the header until 22 bytes are in.
    head_ok || data.len() < FRAMING_PROBE_LEN
}

/// Decodes one datagram (or one framed TCP message) into a row; `None` when it is neither
/// STUN nor ChannelData.
pub fn message_of(data: &[u8]) -> Result<Message, DissectError> {
    match data.first() {
        Some(b) if b & 0xC0 == 0x40 => Ok(ChannelDataView::parse(data)?.to_message()),
        Some(_) => Ok(StunView::parse(data)?.to_message()),
        None => Err(DissectError::Truncated { needed: 1 }),
    }
}

/// Total length of the plain-framed message at the start of `data`.
fn plain_frame_len(data: &[u8]) -> Result<usize, DissectError> {
    match data.first() {
        Some(b) if b & 0xC0 == 0x40 => {
            let c = ChannelDataView::parse(data)?;
            // RFC 8656 §12.5: over TCP ChannelData is padded to a multiple of 4.
            Ok(CHANNEL_DATA_HEADER_LEN + pad4(usize::from(c.length)))
        }
        Some(_) => {
            let (_, h) = parse_header(data).map_err(to_err)?;
            Ok(HEADER_LEN + usize::from(h.length))
        }
        None => Err(DissectError::Truncated { needed: 1 }),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct SideState {
    framing: Framing,
    /// After a gap or a framing error: look for the next magic cookie before parsing.
    resync: bool,
}

struct StunFlow {
    transport: Transport,
    sides: [SideState; 2],
}

fn new_flow(transport: Transport) -> Box<dyn FlowDissector> {
    Box::new(StunFlow {
        transport,
        sides: [SideState::default(); 2],
    })
}

/// Offset of the first plausible modern STUN header in `data`.
fn find_modern_header(data: &[u8]) -> Option<usize> {
    data.windows(8).position(|w| match w {
        [t0, _, _, l1, c @ ..] => {
            t0 & 0xC0 == 0 && l1 % 4 == 0 && c == MAGIC_COOKIE.to_be_bytes().as_slice()
        }
        _ => false,
    })
}

impl StunFlow {
    fn parse_tcp(&mut self, si: usize, data: &[u8], out: &mut Vec<Message>) -> Progress {
        let Some(st) = self.sides.get_mut(si) else {
            return Progress::Error {
                consumed: data.len(),
                error: invalid("side"),
            };
        };
        let mut off = 0usize;
        if st.resync {
            match find_modern_header(data) {
                Some(p) => {
                    off = p;
                    st.resync = false;
                    // A cookie found mid-stream belongs to a plain-framed message.
                    if st.framing == Framing::Rfc4571 {
                        st.framing = Framing::Plain;
                    }
                }
                None => {
                    return Progress::Parsed {
                        consumed: data.len().saturating_sub(7),
                        needed: None,
                    };
                }
            }
        }
        if st.framing == Framing::Unknown {
            match detect_framing(data.get(off..).unwrap_or_default()) {
                Some(f) => st.framing = f,
                None if undecided(data.get(off..).unwrap_or_default()) => {
                    let have = data.len() - off;
                    let want = match plain_frame_len(data.get(off..).unwrap_or_default()) {
                        Ok(n) => n.max(FRAMING_PROBE_LEN),
                        Err(_) => FRAMING_PROBE_LEN,
                    };
                    return Progress::Parsed {
                        consumed: off,
                        needed: Some(want.saturating_sub(have).max(1)),
                    };
                }
                None => {
                    st.resync = true;
                    return Progress::Error {
                        consumed: data.len(),
                        error: invalid("stun stream framing"),
                    };
                }
            }
        }
        // Every iteration consumes at least 2 bytes or returns.
        loop {
            let rest = data.get(off..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Parsed {
                    consumed: off,
                    needed: None,
                };
            }
            let (frame_start, total) = match st.framing {
                Framing::Rfc4571 => match rest {
                    [hi, lo, ..] => (2, 2 + usize::from(u16::from_be_bytes([*hi, *lo]))),
                    _ => {
                        return Progress::Parsed {
                            consumed: off,
                            needed: Some(2 - rest.len()),
                        };
                    }
                },
                _ => match plain_frame_len(rest) {
                    Ok(n) => (0, n),
                    Err(DissectError::Truncated { needed }) => {
                        return Progress::Parsed {
                            consumed: off,
                            needed: Some(needed),
                        };
                    }
                    Err(error) => {
                        st.resync = true;
                        return Progress::Error {
                            consumed: data.len(),
                            error,
                        };
                    }
                },
            };
            if rest.len() < total {
                return Progress::Parsed {
                    consumed: off,
                    needed: Some(total - rest.len()),
                };
            }
            let frame = rest.get(frame_start..total).unwrap_or_default();
            // RFC 4571 frames may carry media (ICE-TCP): only STUN/ChannelData are rows.
            let is_stun = st.framing != Framing::Rfc4571
                || probe_message(frame, true) == Probe::Yes
                || frame.first().is_some_and(|b| b & 0xC0 == 0x40);
            if is_stun {
                if let Ok(m) = message_of(frame) {
                    out.push(m);
                }
            }
            off += total.max(2);
        }
    }
}

impl FlowDissector for StunFlow {
    fn parse(&mut self, side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        let si = match side {
            Side::Orig => 0,
            Side::Resp => 1,
        };
        match self.transport {
            Transport::Udp => match message_of(data) {
                Ok(m) => {
                    out.push(m);
                    Progress::Parsed {
                        consumed: data.len(),
                        needed: None,
                    }
                }
                Err(error) => Progress::Error {
                    consumed: data.len(),
                    error,
                },
            },
            Transport::Tcp => self.parse_tcp(si, data, out),
        }
    }

    fn on_gap(&mut self, side: Side, _missing: u64) {
        let si = match side {
            Side::Orig => 0,
            Side::Resp => 1,
        };
        if let Some(s) = self.sides.get_mut(si) {
            s.resync = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_bits_round_trip_for_every_value() {
        for v in 0u16..0x4000 {
            assert_eq!(MessageType::from_u16(v).to_u16(), v, "{v:#x}");
        }
    }

    #[test]
    fn known_types_have_expected_names() {
        assert_eq!(MessageType::from_u16(0x0001).name(), "binding-request");
        assert_eq!(MessageType::from_u16(0x0101).name(), "binding-success");
        assert_eq!(MessageType::from_u16(0x0111).name(), "binding-error");
        assert_eq!(MessageType::from_u16(0x0003).name(), "allocate-request");
        assert_eq!(MessageType::from_u16(0x0113).name(), "allocate-error");
        assert_eq!(MessageType::from_u16(0x0016).name(), "send-indication");
        assert_eq!(MessageType::from_u16(0x0009).name(), "channel-bind-request");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
