//! TLS (RFC 8446, RFC 5246) ClientHello / ServerHello dissector over TCP, and the same hellos
//! in DTLS (RFC 6347, RFC 9147) datagrams over UDP.
//!
//! Guarantees: records are delimited by their length (at most [`MAX_RECORD_LEN`]); the first
//! handshake message of each direction is parsed zero-copy when it sits in one record, and
//! otherwise reassembled in a per-direction buffer capped at [`MAX_HANDSHAKE_LEN`] (the only
//! copy this crate makes of payload bytes). Hellos expose SNI, ALPN and supported_versions;
//! extension walks are bounded by [`MAX_EXTENSIONS`]. After the hello every record of that
//! direction is skipped by length without being held. No panic on any bytes.
//! Must not: decrypt, validate certificates, or emit a row per record.

use crate::DissectError;
use crate::detail::DetailBuf;
use crate::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Status, Transport,
};
use nom::bytes::complete::take;
use nom::multi::length_data;
use nom::number::complete::{be_u8, be_u16};
use nom::{IResult, Parser};
use std::borrow::Cow;

/// RFC 8446 §5.1: type, version, length.
pub const RECORD_HEADER_LEN: usize = 5;
/// RFC 5246 §6.2.3: a record fragment is at most 2^14 + 2048 bytes.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// RFC 8446 §4: type and 24-bit length.
pub const HANDSHAKE_HEADER_LEN: usize = 4;
/// Largest hello we reassemble across records (real ones are under 2 KiB; post-quantum key
/// shares push some past 16 KiB).
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;
/// Extensions walked per hello.
pub const MAX_EXTENSIONS: usize = 128;
/// ALPN protocol names walked per hello.
pub const MAX_ALPN: usize = 16;
/// Versions walked in supported_versions.
pub const MAX_VERSIONS: usize = 32;
/// RFC 8446 §4.1.2: legacy_session_id is at most 32 bytes.
pub const MAX_SESSION_ID_LEN: usize = 32;
/// RFC 6347 §9.3 (as amended): DTLS cookies are at most 255 bytes (u8 length).
pub const MAX_COOKIE_LEN: usize = 255;
/// RFC 6347 §4.1: DTLS record header.
pub const DTLS_RECORD_HEADER_LEN: usize = 13;
/// RFC 6347 §4.2.2: DTLS handshake header.
pub const DTLS_HANDSHAKE_HEADER_LEN: usize = 12;
/// Records walked per DTLS datagram.
pub const MAX_DTLS_RECORDS: usize = 32;
/// Bound on the `detail` column.
pub const MAX_DETAIL_LEN: usize = 200;

pub mod content_type {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

pub mod handshake_type {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const HELLO_VERIFY_REQUEST: u8 = 3;
}

pub mod extension {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

pub const DESCRIPTOR: DissectorDesc = DissectorDesc {
    name: "tls",
    transports: &[Transport::Tcp, Transport::Udp],
    port_hints: &[443, 8443, 5349, 993, 995, 465],
    probe,
    new_flow,
};

fn to_err(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Incomplete(nom::Needed::Size(n)) => DissectError::Truncated { needed: n.get() },
        nom::Err::Incomplete(nom::Needed::Unknown) => DissectError::Truncated { needed: 1 },
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    }
}

fn invalid(what: &'static str) -> DissectError {
    DissectError::Invalid { what }
}

/// TLS record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    pub length: u16,
}

/// Parses and checks a TLS record header (content type 20..=24, version 3.x, length bound).
pub fn parse_record_header(i: &[u8]) -> Result<RecordHeader, DissectError> {
    let [ct, vmaj, vmin, l0, l1, ..] = *i else {
        return Err(DissectError::Truncated {
            needed: RECORD_HEADER_LEN - i.len(),
        });
    };
    if !(content_type::CHANGE_CIPHER_SPEC..=content_type::HEARTBEAT).contains(&ct) {
        return Err(invalid("tls content type"));
    }
    if vmaj != 3 || vmin > 4 {
        return Err(invalid("tls record version"));
    }
    let length = u16::from_be_bytes([l0, l1]);
    if usize::from(length) > MAX_RECORD_LEN {
        return Err(DissectError::TooLarge {
            what: "tls record length",
            value: u64::from(length),
            max: MAX_RECORD_LEN as u64,
        });
    }
    Ok(RecordHeader {
        content_type: ct,
        version: u16::from_be_bytes([vmaj, vmin]),
        length,
    })
}

/// One extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    pub typ: u16,
    pub data: &'a [u8],
}

/// Walks an extensions block, at most [`MAX_EXTENSIONS`]; stops at a malformed one.
#[derive(Clone, Debug)]
pub struct ExtIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for ExtIter<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        if self.left == 0 || self.rest.is_empty() {
            return None;
        }
        self.left -= 1;
        let r: IResult<&[u8], (u16, &[u8]), DissectError> =
            (be_u16, length_data(be_u16)).parse(self.rest);
        match r {
            Ok((rest, (typ, data))) => {
                self.rest = rest;
                Some(Extension { typ, data })
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

fn ext_iter(b: &[u8]) -> ExtIter<'_> {
    ExtIter {
        rest: b,
        left: MAX_EXTENSIONS,
    }
}

/// RFC 8701: GREASE values look like 0x?A?A.
pub fn is_grease(v: u16) -> bool {
    v & 0x0F0F == 0x0A0A && (v >> 8) == (v & 0xFF)
}

fn find_ext(exts: &[u8], typ: u16) -> Option<&[u8]> {
    ext_iter(exts).find(|e| e.typ == typ).map(|e| e.data)
}

/// RFC 6066 §3: the first host_name of server_name.
fn sni_of(exts: &[u8]) -> Option<&[u8]> {
    let data = find_ext(exts, extension::SERVER_NAME)?;
    let r: IResult<&[u8], &[u8], DissectError> = length_data(be_u16).parse(data);
    let (_, mut list) = r.ok()?;
    for _ in 0..MAX_EXTENSIONS {
        let r: IResult<&[u8], (u8, &[u8]), DissectError> = (be_u8, length_data(be_u16)).parse(list);
        let (rest, (name_type, name)) = r.ok()?;
        if name_type == 0 {
            return Some(name);
        }
        list = rest;
    }
    None
}

/// Iterator over ALPN protocol names (RFC 7301 §3.1), at most [`MAX_ALPN`].
#[derive(Clone, Debug)]
pub struct AlpnIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for AlpnIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r: IResult<&[u8], &[u8], DissectError> = length_data(be_u8).parse(self.rest);
        let (rest, name) = r.ok()?;
        self.rest = rest;
        Some(name)
    }
}

fn alpn_of(exts: &[u8]) -> AlpnIter<'_> {
    let list = find_ext(exts, extension::ALPN)
        .and_then(|d| {
            let r: IResult<&[u8], &[u8], DissectError> = length_data(be_u16).parse(d);
            r.ok().map(|(_, l)| l)
        })
        .unwrap_or_default();
    AlpnIter {
        rest: list,
        left: MAX_ALPN,
    }
}

/// Short name of a protocol version.
pub fn version_name(v: u16) -> Option<&'static str> {
    Some(match v {
        0x0300 => "ssl3",
        0x0301 => "1.0",
        0x0302 => "1.1",
        0x0303 => "1.2",
        0x0304 => "1.3",
        0xFEFF => "dtls1.0",
        0xFEFD => "dtls1.2",
        0xFEFC => "dtls1.3",
        _ => return None,
    })
}

/// A ClientHello body (after the handshake header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub legacy_version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    /// DTLS only.
    pub cookie: Option<&'a [u8]>,
    /// Raw cipher suite list (pairs of bytes).
    pub cipher_suites: &'a [u8],
    pub compression_methods: &'a [u8],
    /// Raw extensions block (empty when absent).
    pub extensions: &'a [u8],
}

impl<'a> ClientHello<'a> {
    /// Parses the body; `dtls` adds the cookie field (RFC 6347 §4.2.1).
    pub fn parse(i: &'a [u8], dtls: bool) -> Result<Self, DissectError> {
        parse_client_hello(i, dtls)
            .map(|(_, ch)| ch)
            .map_err(to_err)
    }

    pub fn cipher_suites(&self) -> impl Iterator<Item = u16> + 'a {
        self.cipher_suites.chunks_exact(2).map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
    }

    pub fn extensions(&self) -> ExtIter<'a> {
        ext_iter(self.extensions)
    }

    /// The server_name host name.
    pub fn sni(&self) -> Option<&'a [u8]> {
        sni_of(self.extensions)
    }

    pub fn alpn(&self) -> AlpnIter<'a> {
        alpn_of(self.extensions)
    }

    /// Versions offered in supported_versions (RFC 8446 §4.2.1), GREASE included.
    pub fn supported_versions(&self) -> impl Iterator<Item = u16> + 'a {
        let list = find_ext(self.extensions, extension::SUPPORTED_VERSIONS)
            .and_then(|d| {
                let r: IResult<&[u8], &[u8], DissectError> = length_data(be_u8).parse(d);
                r.ok().map(|(_, l)| l)
            })
            .unwrap_or_default();
        list.chunks_exact(2).take(MAX_VERSIONS).map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
    }

    /// The client's preferred version: first non-GREASE supported_versions entry, else the
    /// legacy version.
    pub fn preferred_version(&self) -> u16 {
        self.supported_versions()
            .find(|v| !is_grease(*v))
            .unwrap_or(self.legacy_version)
    }
}

/// nom parser of a ClientHello body.
pub fn parse_client_hello(i: &[u8], dtls: bool) -> IResult<&[u8], ClientHello<'_>, DissectError> {
    let (i, legacy_version) = be_u16(i)?;
    let (i, random) = take(32usize)(i)?;
    let (i, session_id) = length_data(be_u8).parse(i)?;
    if session_id.len() > MAX_SESSION_ID_LEN {
        return Err(nom::Err::Error(invalid("tls session id length")));
    }
    let (i, cookie) = if dtls {
        let (i, c) = length_data(be_u8).parse(i)?;
        (i, Some(c))
    } else {
        (i, None)
    };
    let (i, cipher_suites) = length_data(be_u16).parse(i)?;
    if cipher_suites.len() % 2 != 0 || cipher_suites.is_empty() {
        return Err(nom::Err::Error(invalid("tls cipher suites length")));
    }
    let (i, compression_methods) = length_data(be_u8).parse(i)?;
    let (i, extensions) = if i.is_empty() {
        (i, &[][..])
    } else {
        length_data(be_u16).parse(i)?
    };
    Ok((
        i,
        ClientHello {
            legacy_version,
            random,
            session_id,
            cookie,
            cipher_suites,
            compression_methods,
            extensions,
        },
    ))
}

/// A ServerHello body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello<'a> {
    pub legacy_version: u16,
    pub random: &'a [u8],
    pub session_id: &'a [u8],
    pub cipher_suite: u16,
    pub compression_method: u8,
    pub extensions: &'a [u8],
}

impl<'a> ServerHello<'a> {
    pub fn parse(i: &'a [u8]) -> Result<Self, DissectError> {
        parse_server_hello(i).map(|(_, sh)| sh).map_err(to_err)
    }

    pub fn extensions(&self) -> ExtIter<'a> {
        ext_iter(self.extensions)
    }

    /// supported_versions in a ServerHello holds the one selected version.
    pub fn selected_version(&self) -> u16 {
        find_ext(self.extensions, extension::SUPPORTED_VERSIONS)
            .and_then(|d| match d {
                [a, b] => Some(u16::from_be_bytes([*a, *b])),
                _ => None,
            })
            .unwrap_or(self.legacy_version)
    }

    pub fn alpn(&self) -> AlpnIter<'a> {
        alpn_of(self.extensions)
    }
}

/// nom parser of a ServerHello body (same shape in TLS and DTLS).
pub fn parse_server_hello(i: &[u8]) -> IResult<&[u8], ServerHello<'_>, DissectError> {
    let (i, legacy_version) = be_u16(i)?;
    let (i, random) = take(32usize)(i)?;
    let (i, session_id) = length_data(be_u8).parse(i)?;
    if session_id.len() > MAX_SESSION_ID_LEN {
        return Err(nom::Err::Error(invalid("tls session id length")));
    }
    let (i, cipher_suite) = be_u16(i)?;
    let (i, compression_method) = be_u8(i)?;
    let (i, extensions) = if i.is_empty() {
        (i, &[][..])
    } else {
        length_data(be_u16).parse(i)?
    };
    Ok((
        i,
        ServerHello {
            legacy_version,
            random,
            session_id,
            cipher_suite,
            compression_method,
            extensions,
        },
    ))
}

fn push_version(d: &mut DetailBuf, v: u16) {
    match version_name(v) {
        Some(n) => d.key("ver").raw(n),
        None => d.key("ver").display(format_args!("0x{v:04x}")),
    };
}

fn push_alpn(d: &mut DetailBuf, alpn: AlpnIter<'_>) {
    for (i, p) in alpn.enumerate() {
        if i == 0 {
            d.key("alpn");
        } else {
            d.raw(",");
        }
        d.bytes(p);
    }
}

/// Row for a handshake message of type `typ` with `body` (complete unless `truncated`).
pub fn hello_message(
    typ: u8,
    body: &[u8],
    dtls: bool,
    wire_len: usize,
    truncated: bool,
) -> Option<Message> {
    let mut d = DetailBuf::new(MAX_DETAIL_LEN);
    let (name, parsed) = match typ {
        handshake_type::CLIENT_HELLO => (
            "client-hello",
            ClientHello::parse(body, dtls).map(|ch| {
                if let Some(sni) = ch.sni() {
                    d.key("sni").bytes(sni);
                }
                push_alpn(&mut d, ch.alpn());
                push_version(&mut d, ch.preferred_version());
            }),
        ),
        handshake_type::SERVER_HELLO => (
            "server-hello",
            ServerHello::parse(body).map(|sh| {
                push_alpn(&mut d, sh.alpn());
                push_version(&mut d, sh.selected_version());
                d.key("cipher")
                    .display(format_args!("0x{:04x}", sh.cipher_suite));
            }),
        ),
        _ => return None,
    };
    let status = match parsed {
        _ if truncated => Status::Truncated,
        Ok(()) => Status::Complete,
        Err(_) => Status::Malformed,
    };
    Some(Message {
        protocol: "tls",
        msg_type: Cow::Borrowed(name),
        type_code: None,
        txn_id: None,
        call_id: None,
        len: u32::try_from(wire_len).unwrap_or(u32::MAX),
        status,
        class: None,
        detail: d.finish(),
        call: None,
    })
}

/// Probes the first bytes of a direction: a handshake record starting a hello (TLS over
/// TCP, DTLS over UDP).
pub fn probe(transport: Transport, _side: Side, data: &[u8]) -> Probe {
    match transport {
        Transport::Tcp => {
            if data.len() < RECORD_HEADER_LEN {
                let plausible = match data {
                    [] => true,
                    [ct] => *ct == content_type::HANDSHAKE,
                    [ct, maj, ..] => *ct == content_type::HANDSHAKE && *maj == 3,
                };
                return if plausible { Probe::Maybe } else { Probe::No };
            }
            match parse_record_header(data) {
                Ok(h)
                    if h.content_type == content_type::HANDSHAKE
                        && usize::from(h.length) >= HANDSHAKE_HEADER_LEN =>
                {
                    match data.get(RECORD_HEADER_LEN) {
                        Some(&(handshake_type::CLIENT_HELLO | handshake_type::SERVER_HELLO)) => {
                            Probe::Yes
                        }
                        Some(_) => Probe::No,
                        None => Probe::Maybe,
                    }
                }
                _ => Probe::No,
            }
        }
        Transport::Udp => match data {
            [ct, 0xFE, vmin, ..]
                if *ct == content_type::HANDSHAKE && matches!(vmin, 0xFF | 0xFD | 0xFC) =>
            {
                match data.get(DTLS_RECORD_HEADER_LEN) {
                    Some(&(1..=3)) => Probe::Yes,
                    Some(_) => Probe::No,
                    None => Probe::Maybe,
                }
            }
            _ => Probe::No,
        },
    }
}

/// Walks the DTLS records of one datagram and returns rows for unfragmented hellos (a first
/// fragment of a larger hello gives a truncated row).
pub fn dtls_datagram(data: &[u8], out: &mut Vec<Message>) -> Result<(), DissectError> {
    let mut rest = data;
    for _ in 0..MAX_DTLS_RECORDS {
        let [ct, vmaj, _vmin, e0, e1, _, _, _, _, _, _, l0, l1, tail @ ..] = rest else {
            return if rest.is_empty() {
                Ok(())
            } else {
                Err(DissectError::Truncated {
                    needed: DTLS_RECORD_HEADER_LEN - rest.len(),
                })
            };
        };
        if !(content_type::CHANGE_CIPHER_SPEC..=content_type::HEARTBEAT + 1).contains(ct)
            || *vmaj != 0xFE
        {
            return Err(invalid("dtls record header"));
        }
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let fragment = tail.get(..len.min(tail.len())).unwrap_or_default();
        let epoch = u16::from_be_bytes([*e0, *e1]);
        if *ct == content_type::HANDSHAKE && epoch == 0 {
            if let [typ, m0, m1, m2, _, _, f0, f1, f2, fl0, fl1, fl2, body @ ..] = fragment {
                let msg_len = u32::from_be_bytes([0, *m0, *m1, *m2]) as usize;
                let frag_off = u32::from_be_bytes([0, *f0, *f1, *f2]) as usize;
                let frag_len = u32::from_be_bytes([0, *fl0, *fl1, *fl2]) as usize;
                if frag_off == 0 {
                    let body = body.get(..frag_len.min(body.len())).unwrap_or_default();
                    let truncated = frag_len < msg_len || body.len() < frag_len;
                    if let Some(m) = hello_message(
                        *typ,
                        body,
                        true,
                        DTLS_HANDSHAKE_HEADER_LEN + msg_len,
                        truncated,
                    ) {
                        out.push(m);
                    }
                }
            }
        }
        if tail.len() < len {
            return Err(DissectError::Truncated {
                needed: len - tail.len(),
            });
        }
        rest = tail.get(len..).unwrap_or_default();
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for this direction's hello.
    Hello,
    /// Hello seen: records skipped by length.
    Skip,
    /// Framing lost (gap or bad record): everything skipped.
    Lost,
}

#[derive(Debug)]
struct TlsSide {
    phase: Phase,
    /// Bytes of the current record still to skip.
    skip: usize,
    /// A handshake message split across records (bounded by MAX_HANDSHAKE_LEN + header).
    hs_buf: Vec<u8>,
}

impl TlsSide {
    fn new() -> Self {
        TlsSide {
            phase: Phase::Hello,
            skip: 0,
            hs_buf: Vec::new(),
        }
    }

    /// Handles the whole handshake messages `buf` holds while still waiting for the hello;
    /// returns how many bytes were used (the rest is the start of an incomplete message).
    fn handshake_messages(phase: &mut Phase, buf: &[u8], out: &mut Vec<Message>) -> usize {
        let mut used = 0usize;
        while *phase == Phase::Hello {
            let rest = buf.get(used..).unwrap_or_default();
            let [typ, l0, l1, l2, ..] = *rest else {
                break;
            };
            let len = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            if len > MAX_HANDSHAKE_LEN {
                let _ = hello_message(typ, &[], false, HANDSHAKE_HEADER_LEN + len, true)
                    .map(|m| out.push(m));
                *phase = Phase::Skip;
                return buf.len();
            }
            let Some(body) = rest.get(HANDSHAKE_HEADER_LEN..HANDSHAKE_HEADER_LEN + len) else {
                break;
            };
            if let Some(m) = hello_message(typ, body, false, HANDSHAKE_HEADER_LEN + len, false) {
                out.push(m);
            }
            // Whatever the first message was, the hellos of this direction are over.
            *phase = Phase::Skip;
            used += HANDSHAKE_HEADER_LEN + len;
        }
        used
    }

    fn on_fragment(&mut self, fragment: &[u8], out: &mut Vec<Message>) {
        if self.hs_buf.is_empty() {
            // Common case: the hello sits in one record, parsed in place.
            let used = Self::handshake_messages(&mut self.phase, fragment, out);
            if self.phase == Phase::Hello {
                self.hs_buf
                    .extend_from_slice(fragment.get(used..).unwrap_or_default());
            }
            return;
        }
        if self.hs_buf.len() + fragment.len() > MAX_HANDSHAKE_LEN + HANDSHAKE_HEADER_LEN {
            // Too big to hold: report what we know and stop looking.
            if let [typ, ..] = *self.hs_buf.as_slice() {
                let _ =
                    hello_message(typ, &[], false, self.hs_buf.len(), true).map(|m| out.push(m));
            }
            self.hs_buf = Vec::new();
            self.phase = Phase::Skip;
            return;
        }
        self.hs_buf.extend_from_slice(fragment);
        let buf = std::mem::take(&mut self.hs_buf);
        let used = Self::handshake_messages(&mut self.phase, &buf, out);
        if self.phase == Phase::Hello {
            self.hs_buf = buf;
            self.hs_buf.drain(..used.min(self.hs_buf.len()));
        }
    }

    fn parse(&mut self, data: &[u8], out: &mut Vec<Message>) -> Progress {
        let mut off = 0usize;
        // Each iteration consumes at least a record header or returns.
        loop {
            if self.phase == Phase::Lost {
                return Progress::Parsed {
                    consumed: data.len(),
                    needed: None,
                };
            }
            let rest = data.get(off..).unwrap_or_default();
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                self.skip -= n;
                off += n;
                if self.skip > 0 {
                    return Progress::Parsed {
                        consumed: off,
                        needed: None,
                    };
                }
                continue;
            }
            if rest.is_empty() {
                return Progress::Parsed {
                    consumed: off,
                    needed: None,
                };
            }
            let h = match parse_record_header(rest) {
                Ok(h) => h,
                Err(DissectError::Truncated { needed }) => {
                    return Progress::Parsed {
                        consumed: off,
                        needed: Some(needed),
                    };
                }
                Err(error) => {
                    self.phase = Phase::Lost;
                    self.hs_buf = Vec::new();
                    return Progress::Error {
                        consumed: data.len(),
                        error,
                    };
                }
            };
            let total = RECORD_HEADER_LEN + usize::from(h.length);
            if self.phase != Phase::Hello || h.content_type != content_type::HANDSHAKE {
                // Skipped records are consumed as they arrive, never held.
                self.skip = total;
                continue;
            }
            let Some(fragment) = rest.get(RECORD_HEADER_LEN..total) else {
                return Progress::Parsed {
                    consumed: off,
                    needed: Some(total - rest.len()),
                };
            };
            self.on_fragment(fragment, out);
            off += total;
        }
    }
}

struct TlsFlow {
    transport: Transport,
    sides: [TlsSide; 2],
}

fn new_flow(transport: Transport) -> Box<dyn FlowDissector> {
    Box::new(TlsFlow {
        transport,
        sides: [TlsSide::new(), TlsSide::new()],
    })
}

impl FlowDissector for TlsFlow {
    fn parse(&mut self, side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        match self.transport {
            Transport::Udp => {
                // RFC 7983 demultiplexing: only first bytes 20..=63 are DTLS; STUN or SRTP
                // sharing the port are not ours and are passed over quietly.
                match data.first() {
                    Some(20..=63) => match dtls_datagram(data, out) {
                        Ok(()) | Err(DissectError::Truncated { .. }) => Progress::Parsed {
                            consumed: data.len(),
                            needed: None,
                        },
                        Err(error) => Progress::Error {
                            consumed: data.len(),
                            error,
                        },
                    },
                    _ => Progress::Parsed {
                        consumed: data.len(),
                        needed: None,
                    },
                }
            }
            Transport::Tcp => {
                let s = match side {
                    Side::Orig => &mut self.sides[0],
                    Side::Resp => &mut self.sides[1],
                };
                s.parse(data, out)
            }
        }
    }

    fn on_gap(&mut self, side: Side, missing: u64) {
        let s = match side {
            Side::Orig => &mut self.sides[0],
            Side::Resp => &mut self.sides[1],
        };
        match usize::try_from(missing) {
            // A gap inside a skipped record only shortens it.
            Ok(m) if m <= s.skip => s.skip -= m,
            _ => {
                s.phase = Phase::Lost;
                s.hs_buf = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values_are_recognised() {
        assert!(is_grease(0x0A0A));
        assert!(is_grease(0xFAFA));
        assert!(!is_grease(0x0A1A));
        assert!(!is_grease(0x0304));
    }

    #[test]
    fn record_header_rejects_non_tls() {
        assert!(parse_record_header(b"GET /").is_err());
        assert!(parse_record_header(&[22, 3, 1, 0xFF, 0xFF]).is_err());
        assert!(parse_record_header(&[22, 3, 1, 0, 5]).is_ok());
    }
}
