//! Field trees of single messages, for a details pane like Wireshark's: every decoded field
//! of one message with its name, its value as text, the byte range it covers and its nesting
//! depth, flattened in display order.
//!
//! Covers Skylark (header, TLV objects with nesting, compact media frames), STUN (header,
//! attributes, XOR addresses decoded; RFC 4571 framing and TURN ChannelData), DNS (header,
//! questions, resource records; the TCP length prefix), HTTP/1.x (start line, header fields,
//! body) and TLS/DTLS ClientHello and ServerHello (record, handshake, version, random,
//! session id, cipher suites, each extension with SNI, ALPN and supported_versions decoded).
//!
//! Guarantees: never panics on any bytes; at most [`MAX_FIELDS`] fields, each value at most
//! [`MAX_VALUE_LEN`] characters of printable text; every range lies within the input. What
//! does not decode becomes a `data` field over the remaining bytes, so every byte of the
//! message is covered by some top-level field. Must not: allocate in proportion to the input
//! beyond those bounds, or judge a message (status and anomalies are the dissectors' job).

use crate::{dns, http, skylark, stun, tls};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

/// Most fields one message yields (a Skylark message holds at most 512 objects; a DNS
/// message's records are cut here too).
pub const MAX_FIELDS: usize = 1024;
/// Longest value text, in characters (longer values end with `…`).
pub const MAX_VALUE_LEN: usize = 160;
/// Bytes of a blob shown as hex in its value (the hex view shows them all).
const HEX_PREVIEW: usize = 24;
/// Cipher suites listed one by one (the rest are summarised).
const MAX_LISTED_SUITES: usize = 64;

/// One decoded field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// Bytes of the message this field covers (within the input).
    pub range: Range<usize>,
    /// Nesting: 0 for top-level fields, 1 for their children, and so on.
    pub depth: u8,
}

/// The field tree of one message of `protocol` (a registry name: `skylark`, `stun`, `dns`,
/// `http`, `tls`). Unknown protocols and undecodable bytes give one `data` field.
pub fn fields(protocol: &str, bytes: &[u8]) -> Vec<Field> {
    let mut o = Out {
        len: bytes.len(),
        fields: Vec::new(),
        reserve: 1,
    };
    let end = match protocol {
        "skylark" => skylark_msg(&mut o, bytes),
        "stun" => stun_msg(&mut o, bytes),
        "dns" => dns_msg(&mut o, bytes),
        "http" => http_msg(&mut o, bytes),
        "tls" => tls_msg(&mut o, bytes),
        _ => 0,
    };
    o.reserve = 0;
    if o.fields.len() + 1 >= MAX_FIELDS {
        // Cut at the field limit: the rest starts where the last field shown ends.
        let shown = o.fields.last().map_or(0, |f| f.range.end);
        let rest = bytes.len().saturating_sub(shown);
        o.push(
            0,
            "data",
            format_args!("{rest} bytes not shown (field limit)"),
            shown..bytes.len(),
        );
    } else if end < bytes.len() || o.fields.is_empty() {
        let rest = bytes.get(end..).unwrap_or_default();
        o.push(
            0,
            "data",
            format_args!("{} bytes", rest.len()),
            end..bytes.len(),
        );
    }
    o.fields
}

/// Bounded field collector; clamps ranges to the input.
struct Out {
    len: usize,
    fields: Vec<Field>,
    /// Slots kept for the final `data` field, so the undecoded rest always shows.
    reserve: usize,
}

impl Out {
    fn full(&self) -> bool {
        self.fields.len() + self.reserve >= MAX_FIELDS
    }

    fn push(&mut self, depth: usize, name: &str, value: impl fmt::Display, range: Range<usize>) {
        if self.full() {
            return;
        }
        let start = range.start.min(self.len);
        let end = range.end.clamp(start, self.len);
        let mut v = Bounded::default();
        let _ = write!(v, "{value}");
        let mut n = Bounded::default();
        let _ = n.write_str(name);
        self.fields.push(Field {
            name: n.s,
            value: v.s,
            range: start..end,
            depth: u8::try_from(depth).unwrap_or(u8::MAX),
        });
    }
}

/// A `fmt::Write` that keeps printable text only and stops at [`MAX_VALUE_LEN`] characters.
#[derive(Default)]
struct Bounded {
    s: String,
    chars: usize,
    cut: bool,
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.cut {
                break;
            }
            if self.chars >= MAX_VALUE_LEN {
                self.s.pop();
                self.s.push('…');
                self.cut = true;
                break;
            }
            self.s.push(if c.is_control() { '.' } else { c });
            self.chars += 1;
        }
        Ok(())
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be24(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 3)?;
    Some(s.iter().fold(0usize, |a, &x| a << 8 | usize::from(x)))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `hex:0011…` preview plus the length.
struct HexPreview<'a>(&'a [u8]);

impl fmt::Display for HexPreview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hex:")?;
        for b in self.0.iter().take(HEX_PREVIEW) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > HEX_PREVIEW {
            f.write_str("…")?;
        }
        write!(f, " ({} bytes)", self.0.len())
    }
}

/// Text of bytes: printable ASCII kept, anything else as `.`.
struct Text<'a>(&'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in self.0.iter().take(MAX_VALUE_LEN) {
            f.write_char(if (0x20..0x7f).contains(&c) {
                char::from(c)
            } else {
                '.'
            })?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Skylark (PROTOCOL.md §3, §4, §7)

fn skylark_msg(o: &mut Out, b: &[u8]) -> usize {
    use skylark::header::{Packet, header_check};
    use skylark::{Family, Flags, HEADER_LEN, MsgType};
    if b.len() < HEADER_LEN || b.first() != Some(&skylark::MAGIC) {
        return 0;
    }
    let p = Packet::new_unchecked(b);
    let body_len = usize::from(p.body_len());
    let total = (HEADER_LEN + body_len).min(b.len());
    let msg_type = p.msg_type();
    let raw_type = p.msg_type_raw();
    let flags = p.flags();
    let type_name = match msg_type {
        MsgType::Unknown(_) => format!("unknown-0x{raw_type:04x}"),
        t => t.name().to_owned(),
    };
    let is_media = p.family() == Family::Media;
    let id_name = if is_media { "call" } else { "txn" };
    o.push(
        0,
        "Skylark",
        format_args!("{type_name} {} {id_name}={}", flags.as_str(), p.txn_id()),
        0..total,
    );
    o.push(1, "magic", "0x53 ('S')", 0..1);
    o.push(1, "version", p.version(), 1..2);
    let mut fl = String::from(flags.as_str());
    if flags.bits() & (Flags::OBFUSCATED | Flags::RESERVED) != 0 {
        fl.push_str(" +reserved");
    }
    o.push(
        1,
        "flags",
        format_args!("{fl} (0x{:x})", flags.bits()),
        1..2,
    );
    let class = msg_type.class().map_or("reserved family", |c| c.as_str());
    o.push(
        1,
        "message type",
        format_args!("{type_name} (0x{raw_type:04x}, {class})"),
        2..4,
    );
    o.push(
        1,
        if is_media {
            "call id"
        } else {
            "transaction id"
        },
        p.txn_id(),
        4..8,
    );
    o.push(1, "body length", body_len, 8..10);
    let computed = header_check(b.get(..10).unwrap_or_default());
    let verdict = if computed == p.check() {
        "correct".to_owned()
    } else {
        format!("wrong, expected 0x{computed:04x}")
    };
    o.push(
        1,
        "header check",
        format_args!("0x{:04x} ({verdict})", p.check()),
        10..12,
    );
    let body = b.get(HEADER_LEN..total).unwrap_or_default();
    if is_media {
        skylark_media(o, body, HEADER_LEN);
    } else {
        skylark_objects(o, b, HEADER_LEN, total, 1);
    }
    if b.len() < HEADER_LEN + body_len {
        o.push(
            1,
            "truncated",
            format_args!("{} body bytes missing", HEADER_LEN + body_len - b.len()),
            b.len()..b.len(),
        );
    }
    total
}

/// Objects of `b[start..end]` at `depth` (PROTOCOL.md §4.1).
fn skylark_objects(o: &mut Out, b: &[u8], start: usize, end: usize, depth: usize) {
    use skylark::object::Kind;
    use skylark::{FieldId, MAX_DEPTH};
    let mut pos = start;
    while pos < end && !o.full() {
        let (Some(&kind), Some(&id), Some(len)) = (b.get(pos), b.get(pos + 1), be16(b, pos + 2))
        else {
            o.push(depth, "malformed", "object header cut short", pos..end);
            return;
        };
        let vstart = pos + 4;
        let vend = vstart + usize::from(len);
        let fid = FieldId::from(id);
        let name = match fid {
            FieldId::Unknown(i) => format!("id-0x{i:02x}"),
            f => f.name().to_owned(),
        };
        if vend > end {
            o.push(
                depth,
                &name,
                format_args!("length {len} runs past its container"),
                pos..end,
            );
            return;
        }
        let v = b.get(vstart..vend).unwrap_or_default();
        let kind = Kind::from(kind);
        let kind_name = match kind {
            Kind::Unknown(k) => format!("kind-0x{k:02x}"),
            k => k.name().to_owned(),
        };
        let shown: String = match kind {
            Kind::U32 => match be32(v, 0).filter(|_| v.len() == 4) {
                Some(x) => format!("{x}{}", enum_name(fid, x)),
                None => "bad u32 length".into(),
            },
            Kind::U64 => match be64(v, 0).filter(|_| v.len() == 8) {
                Some(x) => x.to_string(),
                None => "bad u64 length".into(),
            },
            Kind::Addr => match addr(v) {
                Some(a) => a.to_string(),
                None => "bad address length".into(),
            },
            Kind::Str => match std::str::from_utf8(v) {
                Ok(s) => format!("{s:?}"),
                Err(_) => format!("invalid utf-8 {}", HexPreview(v)),
            },
            Kind::List => format!("[{} bytes]", v.len()),
            Kind::Blob | Kind::Unknown(_) => HexPreview(v).to_string(),
        };
        o.push(
            depth,
            &name,
            format_args!("{shown} ({kind_name}, len {len})"),
            pos..vend,
        );
        if kind == Kind::List && depth <= MAX_DEPTH {
            skylark_objects(o, b, vstart, vend, depth + 1);
        }
        pos = vend;
    }
}

/// PROTOCOL.md §5.3 names of enumerated values.
fn enum_name(id: skylark::FieldId, v: u32) -> String {
    use skylark::{ErrorCode, FieldId};
    let s = match (id, v) {
        (FieldId::NatType, 0) => "unknown",
        (FieldId::NatType, 1) => "public",
        (FieldId::NatType, 2) => "cone NAT",
        (FieldId::NatType, 3) => "symmetric NAT",
        (FieldId::NatType, 4) => "UDP blocked",
        (FieldId::Status, 0) => "offline",
        (FieldId::Status, 1) => "online",
        (FieldId::Status, 2) => "away",
        (FieldId::Status, 3) => "do not disturb",
        (FieldId::Codec, 1) => "sky-sim",
        (FieldId::Codec, 2) => "PCMU",
        (FieldId::Codec, 3) => "opaque",
        (FieldId::HashAlg, 1) => "SHA-256",
        (FieldId::HashAlg, 2) => "Argon2id",
        (FieldId::ErrorCode, c) => match ErrorCode::from(c) {
            ErrorCode::Unknown(_) => return String::new(),
            e => return format!(" ({})", e.name()),
        },
        _ => return String::new(),
    };
    format!(" ({s})")
}

fn addr(v: &[u8]) -> Option<SocketAddr> {
    match v.len() {
        6 => {
            let ip: [u8; 4] = v.get(..4)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), be16(v, 4)?))
        }
        18 => {
            let ip: [u8; 16] = v.get(..16)?.try_into().ok()?;
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                be16(v, 16)?,
            ))
        }
        _ => None,
    }
}

/// PROTOCOL.md §7.1 compact media layout; `base` is the body's offset in the message.
fn skylark_media(o: &mut Out, body: &[u8], base: usize) {
    let (Some(seq), Some(ts), Some(&codec), Some(&n)) =
        (be16(body, 0), be32(body, 2), body.get(6), body.get(7))
    else {
        o.push(
            1,
            "malformed",
            "media header cut short",
            base..base + body.len(),
        );
        return;
    };
    o.push(1, "seq", seq, base..base + 2);
    o.push(1, "timestamp", ts, base + 2..base + 6);
    let cname = enum_name(skylark::FieldId::Codec, u32::from(codec));
    o.push(
        1,
        "codec",
        format_args!("{codec}{cname}"),
        base + 6..base + 7,
    );
    o.push(1, "redundancy", n, base + 7..base + 8);
    let mut pos = 8usize;
    for i in 1..=usize::from(n).min(skylark::MAX_REDUNDANCY) {
        let Some(&len) = body.get(pos) else {
            o.push(
                1,
                "malformed",
                "redundant frame missing",
                base + pos..base + pos,
            );
            return;
        };
        let end = pos + 1 + usize::from(len);
        let Some(frame) = body.get(pos + 1..end) else {
            o.push(
                1,
                &format!("redundant[{i}]"),
                "runs past the body",
                base + pos..base + body.len(),
            );
            return;
        };
        o.push(
            1,
            &format!("redundant[{i}]"),
            format_args!("seq {} {}", seq.wrapping_sub(i as u16), HexPreview(frame)),
            base + pos..base + end,
        );
        pos = end;
    }
    let payload = body.get(pos..).unwrap_or_default();
    o.push(
        1,
        "payload",
        HexPreview(payload),
        base + pos..base + body.len(),
    );
}

// ---------------------------------------------------------------------------------------
// STUN (RFC 8489, RFC 3489, RFC 8656 §12)

fn stun_attr_name(t: u16) -> Option<&'static str> {
    use stun::attr::*;
    Some(match t {
        MAPPED_ADDRESS => "MAPPED-ADDRESS",
        RESPONSE_ADDRESS => "RESPONSE-ADDRESS",
        CHANGE_REQUEST => "CHANGE-REQUEST",
        SOURCE_ADDRESS => "SOURCE-ADDRESS",
        CHANGED_ADDRESS => "CHANGED-ADDRESS",
        USERNAME => "USERNAME",
        PASSWORD => "PASSWORD",
        MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
        ERROR_CODE => "ERROR-CODE",
        UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
        REFLECTED_FROM => "REFLECTED-FROM",
        CHANNEL_NUMBER => "CHANNEL-NUMBER",
        LIFETIME => "LIFETIME",
        XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
        DATA => "DATA",
        REALM => "REALM",
        NONCE => "NONCE",
        XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
        REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
        MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
        XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
        PRIORITY => "PRIORITY",
        USE_CANDIDATE => "USE-CANDIDATE",
        SOFTWARE => "SOFTWARE",
        ALTERNATE_SERVER => "ALTERNATE-SERVER",
        FINGERPRINT => "FINGERPRINT",
        ICE_CONTROLLED => "ICE-CONTROLLED",
        ICE_CONTROLLING => "ICE-CONTROLLING",
        RESPONSE_ORIGIN => "RESPONSE-ORIGIN",
        OTHER_ADDRESS => "OTHER-ADDRESS",
        _ => return None,
    })
}

fn stun_msg(o: &mut Out, b: &[u8]) -> usize {
    let Some(first) = b.first().copied() else {
        return 0;
    };
    // RFC 4571 framing over TCP: a 2-byte length then the message.
    if let Some(n) = be16(b, 0) {
        if usize::from(n) + 2 == b.len() && b.get(2).is_some_and(|c| c & 0xC0 == 0) && n >= 20 {
            o.push(0, "frame length", n, 0..2);
            let end = stun_plain(o, b, 2);
            return if end == 2 { 0 } else { end };
        }
    }
    if (0x40..0x80).contains(&first) {
        let (Some(ch), Some(len)) = (be16(b, 0), be16(b, 2)) else {
            return 0;
        };
        let end = (4 + usize::from(len)).min(b.len());
        o.push(0, "ChannelData", format_args!("channel 0x{ch:04x}"), 0..end);
        o.push(1, "channel number", format_args!("0x{ch:04x}"), 0..2);
        o.push(1, "length", len, 2..4);
        let data = b.get(4..end).unwrap_or_default();
        o.push(1, "data", HexPreview(data), 4..end);
        return end;
    }
    stun_plain(o, b, 0)
}

/// A STUN message starting at `base`; returns the end of what was decoded (`base` if none).
fn stun_plain(o: &mut Out, b: &[u8], base: usize) -> usize {
    let (Some(typ), Some(len), Some(cookie)) =
        (be16(b, base), be16(b, base + 2), be32(b, base + 4))
    else {
        return base;
    };
    let Some(txn) = b.get(base + 8..base + 20) else {
        return base;
    };
    if typ & 0xC000 != 0 {
        return base;
    }
    let end = (base + 20 + usize::from(len)).min(b.len());
    let mt = stun::MessageType::from_u16(typ);
    let name = mt.name();
    o.push(0, "STUN", format_args!("{name}"), base..end);
    o.push(
        1,
        "message type",
        format_args!("{name} (0x{typ:04x})"),
        base..base + 2,
    );
    o.push(1, "message length", len, base + 2..base + 4);
    let modern = cookie == stun::MAGIC_COOKIE;
    o.push(
        1,
        "magic cookie",
        format_args!(
            "0x{cookie:08x}{}",
            if modern { "" } else { " (classic RFC 3489)" }
        ),
        base + 4..base + 8,
    );
    o.push(1, "transaction id", HexPreview(txn), base + 8..base + 20);
    let mut key = [0u8; 16];
    for (k, v) in key.iter_mut().zip(b.iter().skip(base + 4).take(16)) {
        *k = *v;
    }
    let mut pos = base + 20;
    let mut n = 0usize;
    while pos < end && !o.full() && n < stun::MAX_ATTRIBUTES {
        n += 1;
        let (Some(t), Some(l)) = (be16(b, pos), be16(b, pos + 2)) else {
            o.push(1, "malformed", "attribute header cut short", pos..end);
            return end;
        };
        let vstart = pos + 4;
        let vend = vstart + usize::from(l);
        let padded = vstart + usize::from(l).div_ceil(4) * 4;
        let aname = stun_attr_name(t)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("attr-0x{t:04x}"));
        let Some(v) = b.get(vstart..vend.min(end)).filter(|_| vend <= end) else {
            o.push(
                1,
                &aname,
                format_args!("length {l} runs past the message"),
                pos..end,
            );
            return end;
        };
        let shown = stun_value(t, v, &key);
        o.push(1, &aname, shown, pos..padded.min(end));
        pos = padded;
    }
    end
}

fn stun_value(t: u16, v: &[u8], key: &[u8; 16]) -> String {
    use stun::attr::*;
    let address = |xor: bool| -> Option<String> {
        let family = *v.get(1)?;
        let mut port = be16(v, 2)?;
        let ip = v.get(4..)?;
        let ipaddr = match (family, ip.len()) {
            (1, 4) => {
                let mut a = [0u8; 4];
                for (i, (d, s)) in a.iter_mut().zip(ip).enumerate() {
                    *d = if xor {
                        s ^ key.get(i).copied().unwrap_or(0)
                    } else {
                        *s
                    };
                }
                IpAddr::V4(Ipv4Addr::from(a))
            }
            (2, 16) => {
                let mut a = [0u8; 16];
                for (i, (d, s)) in a.iter_mut().zip(ip).enumerate() {
                    *d = if xor {
                        s ^ key.get(i).copied().unwrap_or(0)
                    } else {
                        *s
                    };
                }
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => return None,
        };
        if xor {
            port ^= (stun::MAGIC_COOKIE >> 16) as u16;
        }
        Some(SocketAddr::new(ipaddr, port).to_string())
    };
    let shown = match t {
        XOR_MAPPED_ADDRESS | XOR_PEER_ADDRESS | XOR_RELAYED_ADDRESS => address(true),
        MAPPED_ADDRESS | RESPONSE_ADDRESS | SOURCE_ADDRESS | CHANGED_ADDRESS | REFLECTED_FROM
        | ALTERNATE_SERVER | RESPONSE_ORIGIN | OTHER_ADDRESS => address(false),
        SOFTWARE | USERNAME | REALM | NONCE => Some(format!("\"{}\"", Text(v))),
        FINGERPRINT | PRIORITY | LIFETIME | CHANGE_REQUEST if v.len() == 4 => be32(v, 0).map(|x| {
            if t == FINGERPRINT {
                format!("0x{x:08x}")
            } else {
                x.to_string()
            }
        }),
        ERROR_CODE if v.len() >= 4 => {
            let class = v.get(2).map_or(0, |c| u16::from(c & 7));
            let num = v.get(3).map_or(0, |n| u16::from(*n));
            Some(format!(
                "{} \"{}\"",
                class * 100 + num,
                Text(v.get(4..).unwrap_or_default())
            ))
        }
        _ => None,
    };
    shown.unwrap_or_else(|| HexPreview(v).to_string())
}

// ---------------------------------------------------------------------------------------
// DNS (RFC 1035)

fn dns_msg(o: &mut Out, b: &[u8]) -> usize {
    // TCP: a 2-byte length prefix delimits the message (RFC 1035 §4.2.2).
    let base = match be16(b, 0) {
        Some(n) if usize::from(n) + 2 == b.len() && usize::from(n) >= dns::HEADER_LEN => {
            o.push(0, "length", n, 0..2);
            2
        }
        _ => 0,
    };
    let Some(msg) = b.get(base..) else {
        return 0;
    };
    let Ok((_, h)) = dns::parse_header(msg) else {
        return base;
    };
    let kind = if h.is_response() { "response" } else { "query" };
    o.push(
        0,
        "DNS",
        format_args!("{kind} id=0x{:04x}", h.id),
        base..b.len(),
    );
    o.push(1, "id", format_args!("0x{:04x}", h.id), base..base + 2);
    let mut fl = String::from(kind);
    for (bit, name) in [
        (0x0400, " AA"),
        (0x0200, " TC"),
        (0x0100, " RD"),
        (0x0080, " RA"),
    ] {
        if h.flags & bit != 0 {
            fl.push_str(name);
        }
    }
    let rcode = match h.rcode() {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "other",
    };
    o.push(
        1,
        "flags",
        format_args!(
            "0x{:04x} ({fl}, opcode {}, rcode {rcode})",
            h.flags,
            h.opcode()
        ),
        base + 2..base + 4,
    );
    let counts = [
        ("question count", h.qdcount),
        ("answer count", h.ancount),
        ("authority count", h.nscount),
        ("additional count", h.arcount),
    ];
    for (i, (name, c)) in counts.iter().enumerate() {
        let at = base + 4 + 2 * i;
        o.push(1, name, c, at..at + 2);
    }
    let mut pos = dns::HEADER_LEN;
    for _ in 0..usize::from(h.qdcount).min(dns::MAX_QUESTIONS) {
        let Ok((name, after)) = dns::Name::parse(msg, pos) else {
            return base + pos;
        };
        let (Some(t), Some(c)) = (be16(msg, after), be16(msg, after + 2)) else {
            return base + pos;
        };
        let tn = type_text(t);
        o.push(
            0,
            "question",
            format_args!("{name} {tn} class {c}"),
            base + pos..base + after + 4,
        );
        o.push(1, "name", name, base + pos..base + after);
        o.push(1, "type", &tn, base + after..base + after + 2);
        o.push(1, "class", c, base + after + 2..base + after + 4);
        pos = after + 4;
    }
    let sections = [
        ("answer", h.ancount),
        ("authority", h.nscount),
        ("additional", h.arcount),
    ];
    let mut records = 0usize;
    for (section, count) in sections {
        for _ in 0..count {
            records += 1;
            if records > dns::MAX_RECORDS || o.full() {
                return base + pos;
            }
            let Ok((name, after)) = dns::Name::parse(msg, pos) else {
                return base + pos;
            };
            let (Some(t), Some(c), Some(ttl), Some(rdlen)) = (
                be16(msg, after),
                be16(msg, after + 2),
                be32(msg, after + 4),
                be16(msg, after + 8),
            ) else {
                return base + pos;
            };
            let rstart = after + 10;
            let rend = rstart + usize::from(rdlen);
            let Some(rdata) = msg.get(rstart..rend) else {
                return base + pos;
            };
            let tn = type_text(t);
            let data = rdata_text(msg, t, rstart, rdata);
            o.push(
                0,
                section,
                format_args!("{name} {tn} {data} ttl={ttl}"),
                base + pos..base + rend,
            );
            o.push(1, "name", name, base + pos..base + after);
            o.push(1, "type", &tn, base + after..base + after + 2);
            o.push(1, "class", c, base + after + 2..base + after + 4);
            o.push(1, "ttl", ttl, base + after + 4..base + after + 8);
            o.push(1, "data length", rdlen, base + after + 8..base + rstart);
            o.push(1, "data", &data, base + rstart..base + rend);
            pos = rend;
        }
    }
    base + pos
}

fn type_text(t: u16) -> String {
    dns::type_name(t).map_or_else(|| format!("TYPE{t}"), str::to_owned)
}

fn rdata_text(msg: &[u8], t: u16, at: usize, rdata: &[u8]) -> String {
    match t {
        dns::rtype::A => {
            if let Ok(a) = <[u8; 4]>::try_from(rdata) {
                return Ipv4Addr::from(a).to_string();
            }
        }
        dns::rtype::AAAA => {
            if let Ok(a) = <[u8; 16]>::try_from(rdata) {
                return Ipv6Addr::from(a).to_string();
            }
        }
        dns::rtype::CNAME | dns::rtype::NS | dns::rtype::PTR => {
            if let Ok((n, _)) = dns::Name::parse(msg, at) {
                return n.to_string();
            }
        }
        _ => {}
    }
    HexPreview(rdata).to_string()
}

// ---------------------------------------------------------------------------------------
// HTTP/1.x (RFC 9112)

/// The next line of `b` from `pos`: (line without CR LF, offset after the LF).
fn next_line(b: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(pos..)?;
    let lf = rest.iter().position(|&c| c == b'\n')?;
    let line = rest.get(..lf)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + lf + 1))
}

fn http_msg(o: &mut Out, b: &[u8]) -> usize {
    let Some((line, mut pos)) = next_line(b, 0) else {
        return 0;
    };
    if line.len() > http::MAX_LINE {
        return 0;
    }
    let Ok(start) = http::parse_start_line(line) else {
        return 0;
    };
    o.push(0, "start line", Text(line), 0..pos);
    // The three parts of the start line, located by their spaces.
    let sp1 = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let sp2 = line
        .iter()
        .skip(sp1 + 1)
        .position(|&c| c == b' ')
        .map_or(line.len(), |p| sp1 + 1 + p);
    let parts = match start {
        http::StartLine::Request { .. } => ["method", "target", "version"],
        http::StartLine::Response { .. } => ["version", "status code", "reason"],
    };
    let spans = [0..sp1, sp1 + 1..sp2, sp2 + 1..line.len()];
    for (name, span) in parts.iter().zip(spans) {
        let text = line.get(span.clone()).unwrap_or_default();
        o.push(1, name, Text(text), span);
    }
    let mut headers = 0usize;
    loop {
        let Some((line, next)) = next_line(b, pos) else {
            // Head cut short: the rest is shown as data.
            return pos;
        };
        if line.is_empty() {
            o.push(0, "end of head", "", pos..next);
            pos = next;
            break;
        }
        headers += 1;
        if headers > http::MAX_HEADERS || o.full() {
            return pos;
        }
        let colon = line.iter().position(|&c| c == b':').unwrap_or(line.len());
        let name = line.get(..colon).unwrap_or_default();
        let value = line.get(colon + 1..).unwrap_or_default();
        let value = value.trim_ascii();
        o.push(0, &Text(name).to_string(), Text(value), pos..next);
        pos = next;
    }
    if pos < b.len() {
        o.push(
            0,
            "body",
            format_args!("{} bytes", b.len() - pos),
            pos..b.len(),
        );
    }
    b.len()
}

// ---------------------------------------------------------------------------------------
// TLS and DTLS hellos (RFC 8446, RFC 5246, RFC 6347)

fn tls_msg(o: &mut Out, b: &[u8]) -> usize {
    match (b.first(), b.get(1)) {
        (Some(&tls::content_type::HANDSHAKE), Some(&3)) => tls_records(o, b, false),
        (Some(&tls::content_type::HANDSHAKE), Some(&0xFE)) => tls_records(o, b, true),
        (Some(1 | 2), _) => tls_handshake(o, b, 0, b.len(), false, 0),
        _ => 0,
    }
}

/// Records back to back; the first handshake record's hello is decoded in place.
fn tls_records(o: &mut Out, b: &[u8], dtls: bool) -> usize {
    let hlen = if dtls {
        tls::DTLS_RECORD_HEADER_LEN
    } else {
        tls::RECORD_HEADER_LEN
    };
    let mut pos = 0usize;
    let mut decoded = false;
    while pos < b.len() && !o.full() {
        let (Some(&ct), Some(ver), Some(len)) =
            (b.get(pos), be16(b, pos + 1), be16(b, pos + hlen - 2))
        else {
            return pos;
        };
        let end = (pos + hlen + usize::from(len)).min(b.len());
        let ctn = match ct {
            20 => "change_cipher_spec",
            21 => "alert",
            22 => "handshake",
            23 => "application_data",
            24 => "heartbeat",
            _ => "unknown",
        };
        o.push(
            0,
            "record",
            format_args!("{ctn} {} len {len}", version_text(ver)),
            pos..end,
        );
        o.push(
            1,
            "content type",
            format_args!("{ctn} ({ct})"),
            pos..pos + 1,
        );
        o.push(1, "version", version_text(ver), pos + 1..pos + 3);
        if dtls {
            if let (Some(epoch), Some(seq)) = (be16(b, pos + 3), b.get(pos + 5..pos + 11)) {
                o.push(1, "epoch", epoch, pos + 3..pos + 5);
                o.push(1, "sequence number", HexPreview(seq), pos + 5..pos + 11);
            }
        }
        o.push(1, "length", len, pos + hlen - 2..pos + hlen);
        if ct == tls::content_type::HANDSHAKE && !decoded {
            decoded = true;
            let done = tls_handshake(o, b, pos + hlen, end, dtls, 1);
            if done < end {
                o.push(1, "data", format_args!("{} bytes", end - done), done..end);
            }
        } else if end > pos + hlen {
            o.push(
                1,
                "fragment",
                format_args!("{} bytes", end - pos - hlen),
                pos + hlen..end,
            );
        }
        pos = end;
    }
    pos
}

fn version_text(v: u16) -> String {
    match tls::version_name(v) {
        Some(n) => format!("{n} (0x{v:04x})"),
        None => format!("0x{v:04x}"),
    }
}

/// One handshake message in `b[start..end]`; returns the end of what was decoded.
fn tls_handshake(o: &mut Out, b: &[u8], start: usize, end: usize, dtls: bool, d: usize) -> usize {
    let (Some(&typ), Some(len)) = (b.get(start), be24(b, start + 1)) else {
        return start;
    };
    let name = match typ {
        tls::handshake_type::CLIENT_HELLO => "ClientHello",
        tls::handshake_type::SERVER_HELLO => "ServerHello",
        tls::handshake_type::HELLO_VERIFY_REQUEST => "HelloVerifyRequest",
        _ => "handshake",
    };
    let hh = if dtls {
        tls::DTLS_HANDSHAKE_HEADER_LEN
    } else {
        tls::HANDSHAKE_HEADER_LEN
    };
    let body_start = start + hh;
    let mend = (body_start + len).min(end);
    o.push(d, name, format_args!("type {typ}, len {len}"), start..mend);
    o.push(d + 1, "handshake type", typ, start..start + 1);
    o.push(d + 1, "length", len, start + 1..start + 4);
    if dtls {
        o.push(
            d + 1,
            "fragment header",
            "seq, offset, length",
            start + 4..body_start,
        );
    }
    if body_start > mend {
        return start;
    }
    let hello = match typ {
        tls::handshake_type::CLIENT_HELLO => Some(true),
        tls::handshake_type::SERVER_HELLO => Some(false),
        _ => None,
    };
    let Some(client) = hello else {
        return body_start;
    };
    let d = d + 1;
    let mut c = Cur {
        b: b.get(..mend).unwrap_or_default(),
        pos: body_start,
    };
    let Some(ver) = c.u16() else {
        return c.pos;
    };
    o.push(d, "version", version_text(ver), c.pos - 2..c.pos);
    let Some(random) = c.take(32) else {
        return c.pos;
    };
    o.push(d, "random", HexPreview(random), c.pos - 32..c.pos);
    let Some(sid) = c.vec8() else {
        return c.pos;
    };
    o.push(
        d,
        "session id",
        HexPreview(sid),
        c.pos - sid.len() - 1..c.pos,
    );
    if client {
        if dtls {
            let Some(cookie) = c.vec8() else {
                return c.pos;
            };
            o.push(
                d,
                "cookie",
                HexPreview(cookie),
                c.pos - cookie.len() - 1..c.pos,
            );
        }
        let Some(suites) = c.vec16() else {
            return c.pos;
        };
        let s0 = c.pos - suites.len();
        o.push(
            d,
            "cipher suites",
            format_args!("{} suites", suites.len() / 2),
            s0 - 2..c.pos,
        );
        for (i, pair) in suites.chunks(2).enumerate().take(MAX_LISTED_SUITES) {
            let v = pair.iter().fold(0u16, |a, &x| a << 8 | u16::from(x));
            let grease = if tls::is_grease(v) { " (GREASE)" } else { "" };
            o.push(
                d + 1,
                "cipher suite",
                format_args!("0x{v:04x}{grease}"),
                s0 + 2 * i..s0 + 2 * i + pair.len(),
            );
        }
        let Some(comp) = c.vec8() else {
            return c.pos;
        };
        o.push(
            d,
            "compression methods",
            HexPreview(comp),
            c.pos - comp.len() - 1..c.pos,
        );
    } else {
        let Some(suite) = c.u16() else {
            return c.pos;
        };
        o.push(
            d,
            "cipher suite",
            format_args!("0x{suite:04x}"),
            c.pos - 2..c.pos,
        );
        let Some(comp) = c.take(1) else {
            return c.pos;
        };
        o.push(d, "compression method", HexPreview(comp), c.pos - 1..c.pos);
    }
    if c.pos >= mend {
        return c.pos;
    }
    let Some(exts) = c.vec16() else {
        return c.pos;
    };
    let e0 = c.pos - exts.len();
    o.push(
        d,
        "extensions",
        format_args!("{} bytes", exts.len()),
        e0 - 2..c.pos,
    );
    let mut e = Cur { b, pos: e0 };
    let eend = c.pos;
    let mut n = 0usize;
    while e.pos + 4 <= eend && n < tls::MAX_EXTENSIONS && !o.full() {
        n += 1;
        let at = e.pos;
        let (Some(t), Some(data)) = (e.u16(), e.vec16()) else {
            break;
        };
        if e.pos > eend {
            break;
        }
        let (ename, value) = ext_text(t, data, client);
        o.push(d + 1, &ename, value, at..e.pos);
    }
    c.pos
}

/// A cursor over `b` (absolute offsets) that never reads past `b`.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        let v = be16(self.b, self.pos)?;
        self.pos += 2;
        Some(v)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(*self.b.get(self.pos)?);
        let s = self.b.get(self.pos + 1..self.pos + 1 + n)?;
        self.pos += 1 + n;
        Some(s)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(be16(self.b, self.pos)?);
        let s = self.b.get(self.pos + 2..self.pos + 2 + n)?;
        self.pos += 2 + n;
        Some(s)
    }
}

fn ext_text(t: u16, data: &[u8], client: bool) -> (String, String) {
    let name = match t {
        0 => "server_name",
        5 => "status_request",
        10 => "supported_groups",
        11 => "ec_point_formats",
        13 => "signature_algorithms",
        16 => "application_layer_protocol_negotiation",
        18 => "signed_certificate_timestamp",
        21 => "padding",
        22 => "encrypt_then_mac",
        23 => "extended_master_secret",
        27 => "compress_certificate",
        35 => "session_ticket",
        41 => "pre_shared_key",
        43 => "supported_versions",
        44 => "cookie",
        45 => "psk_key_exchange_modes",
        51 => "key_share",
        0xff01 => "renegotiation_info",
        _ if tls::is_grease(t) => "GREASE",
        _ => "",
    };
    let name = if name.is_empty() {
        format!("extension 0x{t:04x}")
    } else {
        name.to_owned()
    };
    let mut c = Cur { b: data, pos: 0 };
    let value = match t {
        // RFC 6066 §3: list length, then (type, length, name) entries.
        0 if client => c.vec16().and_then(|list| {
            let mut l = Cur { b: list, pos: 0 };
            let _typ = l.take(1)?;
            let host = l.vec16()?;
            Some(format!("\"{}\"", Text(host)))
        }),
        // RFC 7301 §3.1: list length, then length-prefixed protocol names.
        16 => c.vec16().map(|list| {
            let mut l = Cur { b: list, pos: 0 };
            let mut names = Vec::new();
            while let Some(p) = l.vec8() {
                names.push(Text(p).to_string());
                if names.len() >= tls::MAX_ALPN {
                    break;
                }
            }
            names.join(",")
        }),
        43 if client => c.vec8().map(|list| {
            list.chunks(2)
                .take(tls::MAX_VERSIONS)
                .map(|p| {
                    let v = p.iter().fold(0u16, |a, &x| a << 8 | u16::from(x));
                    tls::version_name(v).map_or_else(|| format!("0x{v:04x}"), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(",")
        }),
        43 => c.u16().map(version_text),
        _ => None,
    };
    (
        name,
        value.unwrap_or_else(|| format!("{} bytes", data.len())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        d.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    #[track_caller]
    fn find<'f>(fs: &'f [Field], name: &str) -> &'f Field {
        fs.iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {fs:#?}"))
    }

    #[track_caller]
    fn check_bounds(fs: &[Field], len: usize) {
        assert!(!fs.is_empty());
        assert!(fs.len() <= MAX_FIELDS);
        for f in fs {
            assert!(f.range.start <= f.range.end && f.range.end <= len, "{f:?}");
            assert!(f.value.chars().count() <= MAX_VALUE_LEN, "{f:?}");
            assert!(!f.value.chars().any(char::is_control), "{f:?}");
        }
    }

    /// PROTOCOL.md §13.3.20.
    const INVITE: &str = "53 10 03 01 00 00 00 0a 00 46 a9 9e 01 17 00 04
        00 00 c0 de 04 18 00 05 61 6c 69 63 65 04 19 00 03 62 6f 62 03 1a 00 06 cb 00 71 07
        9c bc 06 1b 00 10 01 1c 00 04 00 00 00 01 01 1c 00 04 00 00 00 02 01 1d 00 04 00 00
        00 1e 01 25 00 04 00 00 00 01";
    /// PROTOCOL.md §13.3.16: entries nested two levels.
    const PRESENCE_REPORT: &str = "53 11 02 05 00 00 00 07 00 48 aa 9a 06 27 00 44
        06 15 00 2b 04 01 00 03 62 6f 62 01 14 00 04 00 00 00 01 03 04 00 06 c6 33 64 14 c7
        37 03 24 00 06 c0 00 02 02 a0 28 01 0e 00 04 00 00 00 02 06 15 00 11 04 01 00 05 63
        61 72 6f 6c 01 14 00 04 00 00 00 00";
    /// PROTOCOL.md §13.3.40.
    const VOICE_REDUNDANT: &str = "53 10 05 01 00 00 c0 de 00 1c e6 f3 00 08 00 00
        07 80 01 02 06 71 71 71 71 71 71 06 61 61 61 61 61 61 81 81 81 81 81 81";

    #[test]
    fn skylark_invite_shows_header_objects_and_nested_codecs() {
        let b = hex(INVITE);
        let fs = fields("skylark", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "invite Q txn=10");
        assert_eq!(fs[0].range, 0..82);
        assert_eq!(
            find(&fs, "message type").value,
            "invite (0x0301, signalling)"
        );
        assert_eq!(find(&fs, "header check").value, "0xa99e (correct)");
        let call = find(&fs, "call-id");
        assert_eq!(
            (call.value.as_str(), call.range.clone(), call.depth),
            ("49374 (u32, len 4)", 12..20, 1)
        );
        assert_eq!(find(&fs, "caller").value, "\"alice\" (str, len 5)");
        assert_eq!(
            find(&fs, "media-addr").value,
            "203.0.113.7:40124 (addr, len 6)"
        );
        let codecs: Vec<_> = fs.iter().filter(|f| f.name == "codec").collect();
        assert_eq!(codecs.len(), 2);
        assert_eq!(codecs[0].depth, 2);
        assert_eq!(codecs[0].value, "1 (sky-sim) (u32, len 4)");
        assert_eq!(codecs[1].value, "2 (PCMU) (u32, len 4)");
        assert_eq!(find(&fs, "redundancy").range, 74..82);
    }

    #[test]
    fn skylark_nesting_follows_lists() {
        let b = hex(PRESENCE_REPORT);
        let fs = fields("skylark", &b);
        check_bounds(&fs, b.len());
        let depths: Vec<(&str, u8)> = fs
            .iter()
            .skip(8)
            .map(|f| (f.name.as_str(), f.depth))
            .collect();
        assert_eq!(
            depths,
            [
                ("entries", 1),
                ("entry", 2),
                ("user", 3),
                ("status", 3),
                ("addr", 3),
                ("sn-addr", 3),
                ("nat-type", 3),
                ("entry", 2),
                ("user", 3),
                ("status", 3)
            ]
        );
        assert_eq!(find(&fs, "nat-type").value, "2 (cone NAT) (u32, len 4)");
    }

    #[test]
    fn skylark_media_frame_fields() {
        let b = hex(VOICE_REDUNDANT);
        let fs = fields("skylark", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "voice Q call=49374");
        assert_eq!(find(&fs, "call id").value, "49374");
        assert_eq!(find(&fs, "seq").value, "8");
        assert_eq!(find(&fs, "timestamp").value, "1920");
        let r1 = find(&fs, "redundant[1]");
        assert_eq!(r1.value, "seq 7 hex:717171717171 (6 bytes)");
        assert_eq!(r1.range, 20..27);
        assert_eq!(find(&fs, "redundant[2]").range, 27..34);
        assert_eq!(find(&fs, "payload").range, 34..40);
    }

    #[test]
    fn skylark_cut_message_reports_missing_bytes() {
        let b = hex(INVITE);
        let fs = fields("skylark", &b[..23]);
        check_bounds(&fs, 23);
        assert_eq!(find(&fs, "truncated").value, "59 body bytes missing");
        assert_eq!(find(&fs, "malformed").range, 20..23);
        let fs = fields("skylark", &b[..26]);
        assert_eq!(
            find(&fs, "caller").value,
            "length 5 runs past its container"
        );
    }

    #[test]
    fn stun_response_decodes_xor_mapped_address() {
        // RFC 5769 §2.2: XOR-MAPPED-ADDRESS is 192.0.2.1:32853.
        let b = hex("01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
             80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
             00 20 00 08 00 01 a1 47 e1 12 a6 43
             00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
             80 28 00 04 c0 7d 4c 96");
        let fs = fields("stun", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "binding-success");
        let x = find(&fs, "XOR-MAPPED-ADDRESS");
        assert_eq!(
            (x.value.as_str(), x.range.clone()),
            ("192.0.2.1:32853", 36..48)
        );
        assert_eq!(find(&fs, "SOFTWARE").value, "\"test vector\"");
        assert_eq!(find(&fs, "SOFTWARE").range, 20..36);
        assert_eq!(find(&fs, "FINGERPRINT").value, "0xc07d4c96");
        assert_eq!(find(&fs, "magic cookie").value, "0x2112a442");
    }

    #[test]
    fn dns_response_lists_questions_and_answers() {
        let b = hex(
            "e183818000010003000200020567726170680866616365626f6f6b03636f6d0000010001c00c000500
             0100000afd000603617069c012c0300005000100000370000c04737461720463313072c012c0420001
             00010000002200041f0d5608c0470002000100000a1500070162026e73c047c0470002000100000a15
             00040161c06cc07d0001000100000a15000445abef0bc06a0001000100000a15000445abff0b",
        );
        let fs = fields("dns", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "response id=0xe183");
        assert_eq!(find(&fs, "question").value, "graph.facebook.com A class 1");
        let answers: Vec<_> = fs.iter().filter(|f| f.name == "answer").collect();
        assert_eq!(answers.len(), 3);
        assert_eq!(
            answers[0].value,
            "graph.facebook.com CNAME api.facebook.com ttl=2813"
        );
        assert!(
            answers[2].value.contains(" A 31.13.86.8 "),
            "{}",
            answers[2].value
        );
        assert_eq!(fs.iter().filter(|f| f.name == "additional").count(), 2);
        assert!(fs.iter().all(|f| f.name != "data" || f.depth == 1));
        // Over TCP the length prefix comes first.
        let mut tcp = vec![0, b.len() as u8];
        tcp.extend_from_slice(&b);
        let ft = fields("dns", &tcp);
        check_bounds(&ft, tcp.len());
        assert_eq!((ft[0].name.as_str(), ft[0].range.clone()), ("length", 0..2));
        assert_eq!(find(&ft, "question").range, 14..38);
    }

    #[test]
    fn tls_client_hello_shows_sni_alpn_and_suites() {
        let b = hex(
            "16030100ab010000a70303f1f318c3e72492ca306f3789eaff28710f00dcc8987c96a6ad43679b79151b
             0a000018c02bc02ccca9c02fc030cca8c013c014009c009d002f003501000066ff010001000000001000
             0e00000b646973636f72642e636f6d0017000000230000000d0014001204030804040105030805050108
             06060102010005000501000000000010000e000c02683208687474702f312e31000b00020100000a0008
             0006001d00170018",
        );
        let fs = fields("tls", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "handshake 1.0 (0x0301) len 171");
        assert_eq!(find(&fs, "ClientHello").depth, 1);
        assert_eq!(find(&fs, "version").value, "1.0 (0x0301)");
        assert_eq!(find(&fs, "cipher suites").value, "12 suites");
        assert_eq!(fs.iter().filter(|f| f.name == "cipher suite").count(), 12);
        assert_eq!(find(&fs, "server_name").value, "\"discord.com\"");
        assert_eq!(
            find(&fs, "application_layer_protocol_negotiation").value,
            "h2,http/1.1"
        );
        assert!(fs.iter().all(|f| f.name != "data"), "{fs:#?}");
    }

    #[test]
    fn http_request_line_and_headers() {
        let b = b"GET /ui/0/1.0/en/getlatestversion HTTP/1.1\r\nHost: home.example\r\nUser-Agent: skylark/1.0\r\n\r\nxy";
        let fs = fields("http", b);
        check_bounds(&fs, b.len());
        assert_eq!(fs[0].value, "GET /ui/0/1.0/en/getlatestversion HTTP/1.1");
        assert_eq!(find(&fs, "method").value, "GET");
        assert_eq!(find(&fs, "target").range, 4..33);
        assert_eq!(find(&fs, "version").value, "HTTP/1.1");
        let host = find(&fs, "Host");
        assert_eq!(
            (host.value.as_str(), host.range.clone()),
            ("home.example", 44..64)
        );
        assert_eq!(find(&fs, "User-Agent").value, "skylark/1.0");
        assert_eq!(find(&fs, "body").range, b.len() - 2..b.len());
        let r = fields("http", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(find(&r, "status code").value, "200");
        assert_eq!(find(&r, "reason").value, "OK");
    }

    #[test]
    fn unknown_protocol_and_garbage_are_one_data_field() {
        for proto in ["rtp", "skylark", "stun", "dns", "http", "tls"] {
            let fs = fields(proto, &[0xff; 7]);
            assert_eq!(fs.len(), 1, "{proto}: {fs:?}");
            assert_eq!((fs[0].name.as_str(), fs[0].range.clone()), ("data", 0..7));
        }
        assert_eq!(fields("dns", &[])[0].range, 0..0);
    }

    #[test]
    fn field_cap_keeps_room_for_the_undecoded_rest() {
        // 600 empty blobs: more objects than MAX_FIELDS allows after the header fields.
        let n = 600usize;
        let body_len = 4 * n;
        let mut b = vec![0x53, 0x10, 0x01, 0x01, 0, 0, 0, 1];
        b.extend_from_slice(&(body_len as u16).to_be_bytes());
        let check = skylark::header::header_check(&b[..10]);
        b.extend_from_slice(&check.to_be_bytes());
        for _ in 0..n {
            b.extend_from_slice(&[0x05, 0x08, 0, 0]);
        }
        let mut b2 = b.clone();
        b2.extend_from_slice(&b[12..]);
        let fs = fields("skylark", &b);
        check_bounds(&fs, b.len());
        assert_eq!(fs.len(), 8 + n);
        // Twice as many objects: capped, and the last field covers the bytes not shown.
        let len = b2.len();
        b2[8..10].copy_from_slice(&((2 * body_len) as u16).to_be_bytes());
        let check = skylark::header::header_check(&b2[..10]);
        b2[10..12].copy_from_slice(&check.to_be_bytes());
        let fs = fields("skylark", &b2);
        check_bounds(&fs, len);
        assert_eq!(fs.len(), MAX_FIELDS, "{:?}", &fs[fs.len() - 3..]);
        assert_eq!(fs.last().unwrap().name, "data");
        assert_eq!(fs.last().unwrap().range.end, len);
    }

    /// Every `hex vector=` block of PROTOCOL.md §13.
    fn spec_vectors() -> Vec<(String, Vec<u8>)> {
        let md = include_str!("../PROTOCOL.md");
        let mut out = Vec::new();
        let mut lines = md.lines();
        while let Some(line) = lines.next() {
            if let Some(name) = line.trim().strip_prefix("```hex vector=") {
                let hexs: String = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                out.push((name.to_owned(), hex(&hexs)));
            }
        }
        out
    }

    #[test]
    fn every_spec_vector_decodes_completely() {
        let vectors = spec_vectors();
        assert!(vectors.len() >= 40, "{}", vectors.len());
        for (name, b) in vectors {
            let fs = fields("skylark", &b);
            check_bounds(&fs, b.len());
            assert_eq!(fs[0].range, 0..b.len(), "{name}");
            assert!(
                find(&fs, "header check").value.ends_with("(correct)"),
                "{name}"
            );
            for f in &fs {
                assert!(
                    !["data", "malformed", "truncated"].contains(&f.name.as_str())
                        && !f.value.contains("runs past")
                        && !f.value.starts_with("bad "),
                    "{name}: {f:?}"
                );
            }
            // Top-level objects tile the body exactly.
            let top: Vec<_> = fs.iter().filter(|f| f.depth == 1).skip(7).collect();
            let mut at = 12;
            for f in top {
                assert_eq!(f.range.start, at, "{name}: {f:?}");
                at = f.range.end;
            }
            assert_eq!(at, b.len(), "{name}");
        }
    }

    #[test]
    fn every_prefix_of_the_vectors_stays_in_bounds() {
        for (proto, h) in [
            ("skylark", INVITE),
            ("skylark", PRESENCE_REPORT),
            ("skylark", VOICE_REDUNDANT),
        ] {
            let b = hex(h);
            for n in 0..=b.len() {
                check_bounds(&fields(proto, &b[..n]), n);
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_stay_in_bounds(
            proto in prop::sample::select(vec!["skylark", "stun", "dns", "http", "tls", "x"]),
            head in prop::sample::select(vec![
                vec![], vec![0x53, 0x10], vec![0x53, 0x11, 0x05, 0x01], vec![0x00, 0x01],
                vec![0x16, 0x03, 0x01], vec![0x16, 0xfe, 0xfd], vec![0x01, 0x00],
                b"GET / HTTP/1.1\r\n".to_vec(), vec![0x00, 0x20],
            ]),
            tail in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut b = head;
            b.extend_from_slice(&tail);
            check_bounds(&fields(proto, &b), b.len());
        }
    }
}
