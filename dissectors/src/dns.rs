//! DNS (RFC 1035) dissector: header, questions and resource records over UDP (one message
//! per datagram) and TCP (2-byte length prefix, RFC 1035 §4.2.2, streamed).
//!
//! Guarantees: [`DnsView`] reads the caller's bytes in place and walks its sections lazily;
//! names are decompressed on demand with loop protection ([`MAX_POINTERS`]) and bounded by
//! [`MAX_NAME_LEN`] and [`MAX_LABELS`]; counts are capped by [`MAX_QUESTIONS`] and
//! [`MAX_RECORDS`]; A, AAAA, CNAME, NS and PTR data are decoded, other types kept raw. No
//! panic on any bytes. [`DnsView::name_addresses`] gives the (name, address) pairs the
//! analyzer uses to name hosts. Must not: resolve anything, cache across messages, or
//! allocate while walking.

use crate::DissectError;
use crate::detail::DetailBuf;
use crate::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Status, Transport,
};
use nom::IResult;
use nom::number::complete::{be_u16, be_u32};
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 1035 §4.1.1: fixed 12-byte header.
pub const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4: a name is at most 255 bytes in wire form.
pub const MAX_NAME_LEN: usize = 255;
/// RFC 1035 §2.3.4: labels are at most 63 bytes.
pub const MAX_LABEL_LEN: usize = 63;
/// Most labels a 255-byte name can hold (each needs at least 2 bytes).
pub const MAX_LABELS: usize = 127;
/// Compression pointers followed per name; a loop hits this bound.
pub const MAX_POINTERS: usize = 16;
/// Questions walked per message (real messages carry one).
pub const MAX_QUESTIONS: usize = 16;
/// Resource records walked per message (answer + authority + additional).
pub const MAX_RECORDS: usize = 512;
/// Answers listed in the `detail` column.
pub const MAX_DETAIL_ANSWERS: usize = 8;
/// Bound on the `detail` column.
pub const MAX_DETAIL_LEN: usize = 200;
/// RFC 1035 §4.2.2: TCP length prefix.
pub const TCP_PREFIX_LEN: usize = 2;

pub const DESCRIPTOR: DissectorDesc = DissectorDesc {
    name: "dns",
    transports: &[Transport::Udp, Transport::Tcp],
    port_hints: &[53, 5353, 5355],
    probe,
    new_flow,
};

/// Record types decoded or named here (RFC 1035 §3.2.2, RFC 3596, RFC 9460).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const SVCB: u16 = 64;
    pub const HTTPS: u16 = 65;
    pub const ANY: u16 = 255;
}

/// Mnemonic of a type, or `None` for ones we do not name.
pub fn type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        rtype::A => "A",
        rtype::NS => "NS",
        rtype::CNAME => "CNAME",
        rtype::SOA => "SOA",
        rtype::PTR => "PTR",
        rtype::MX => "MX",
        rtype::TXT => "TXT",
        rtype::AAAA => "AAAA",
        rtype::SRV => "SRV",
        rtype::OPT => "OPT",
        rtype::SVCB => "SVCB",
        rtype::HTTPS => "HTTPS",
        rtype::ANY => "ANY",
        _ => return None,
    })
}

fn rcode_name(r: u8) -> &'static str {
    match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "RCODE",
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0F) as u8
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0x0F) as u8
    }

    /// TC bit: the UDP answer was cut by the server.
    pub fn truncated_flag(&self) -> bool {
        self.flags & 0x0200 != 0
    }
}

fn to_err(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Incomplete(nom::Needed::Size(n)) => DissectError::Truncated { needed: n.get() },
        nom::Err::Incomplete(nom::Needed::Unknown) => DissectError::Truncated { needed: 1 },
        // Complete parsers report running out of input as an Eof error.
        nom::Err::Error(DissectError::Nom {
            kind: nom::error::ErrorKind::Eof,
        })
        | nom::Err::Failure(DissectError::Nom {
            kind: nom::error::ErrorKind::Eof,
        }) => DissectError::Truncated { needed: 1 },
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    }
}

/// Parses the 12-byte header.
pub fn parse_header(i: &[u8]) -> IResult<&[u8], Header, DissectError> {
    if i.len() < HEADER_LEN {
        return Err(nom::Err::Error(DissectError::Truncated {
            needed: HEADER_LEN - i.len(),
        }));
    }
    let (i, id) = be_u16(i)?;
    let (i, flags) = be_u16(i)?;
    let (i, qdcount) = be_u16(i)?;
    let (i, ancount) = be_u16(i)?;
    let (i, nscount) = be_u16(i)?;
    let (i, arcount) = be_u16(i)?;
    Ok((
        i,
        Header {
            id,
            flags,
            qdcount,
            ancount,
            nscount,
            arcount,
        },
    ))
}

/// Walks the name at `start` of `msg`, calling `f` on every label; returns the offset just
/// after the name's in-place bytes (after the first pointer, or the root label).
fn walk_name(msg: &[u8], start: usize, mut f: impl FnMut(&[u8])) -> Result<usize, DissectError> {
    let mut pos = start;
    let mut end: Option<usize> = None;
    let mut pointers = 0usize;
    let mut labels = 0usize;
    // Wire length of the decompressed name, root byte included.
    let mut wire_len = 1usize;
    loop {
        let b = *msg.get(pos).ok_or(DissectError::Truncated { needed: 1 })?;
        match b & 0xC0 {
            0x00 if b == 0 => return Ok(end.unwrap_or(pos + 1)),
            0x00 => {
                let l = usize::from(b);
                let label = msg
                    .get(pos + 1..pos + 1 + l)
                    .ok_or(DissectError::Truncated {
                        needed: (pos + 1 + l).saturating_sub(msg.len()),
                    })?;
                labels += 1;
                wire_len += 1 + l;
                if labels > MAX_LABELS {
                    return Err(DissectError::TooLarge {
                        what: "dns label count",
                        value: labels as u64,
                        max: MAX_LABELS as u64,
                    });
                }
                if wire_len > MAX_NAME_LEN {
                    return Err(DissectError::TooLarge {
                        what: "dns name length",
                        value: wire_len as u64,
                        max: MAX_NAME_LEN as u64,
                    });
                }
                f(label);
                pos += 1 + l;
            }
            0xC0 => {
                let b2 = *msg
                    .get(pos + 1)
                    .ok_or(DissectError::Truncated { needed: 1 })?;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DissectError::TooLarge {
                        what: "dns compression pointers",
                        value: pointers as u64,
                        max: MAX_POINTERS as u64,
                    });
                }
                let target = (usize::from(b & 0x3F) << 8) | usize::from(b2);
                if target >= msg.len() {
                    return Err(DissectError::Invalid {
                        what: "dns compression pointer",
                    });
                }
                pos = target;
            }
            _ => {
                return Err(DissectError::Invalid {
                    what: "dns label type",
                });
            }
        }
    }
}

/// A validated, possibly compressed domain name inside a message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name<'a> {
    msg: &'a [u8],
    offset: usize,
}

impl<'a> Name<'a> {
    /// Validates the name at `offset`; returns it and the offset after its in-place bytes.
    pub fn parse(msg: &'a [u8], offset: usize) -> Result<(Name<'a>, usize), DissectError> {
        let end = walk_name(msg, offset, |_| {})?;
        Ok((Name { msg, offset }, end))
    }

    /// Calls `f` on every label (already validated, so this cannot fail).
    pub fn for_each_label(&self, f: impl FnMut(&'a [u8])) {
        // The lifetime of the labels is the message's: walk_name hands out subslices of it.
        fn walk<'m>(msg: &'m [u8], start: usize, mut f: impl FnMut(&'m [u8])) {
            let mut pos = start;
            for _ in 0..(MAX_LABELS + MAX_POINTERS + 1) {
                let Some(&b) = msg.get(pos) else { return };
                match b & 0xC0 {
                    0x00 if b == 0 => return,
                    0x00 => {
                        let l = usize::from(b);
                        let Some(label) = msg.get(pos + 1..pos + 1 + l) else {
                            return;
                        };
                        f(label);
                        pos += 1 + l;
                    }
                    0xC0 => {
                        let Some(&b2) = msg.get(pos + 1) else { return };
                        pos = (usize::from(b & 0x3F) << 8) | usize::from(b2);
                    }
                    _ => return,
                }
            }
        }
        walk(self.msg, self.offset, f)
    }

    /// Case-insensitive comparison with a dotted name (trailing dot optional).
    pub fn eq_dotted(&self, dotted: &str) -> bool {
        let want = dotted.strip_suffix('.').unwrap_or(dotted);
        let mut parts = want.split('.').filter(|s| !s.is_empty());
        let mut ok = true;
        self.for_each_label(|l| {
            ok &= parts
                .next()
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(l));
        });
        ok && parts.next().is_none()
    }
}

impl fmt::Display for Name<'_> {
    /// Dotted form without the trailing dot (`.` for the root); bytes outside printable
    /// ASCII are written as `\DDD` (RFC 1035 §5.1 master-file escaping).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut res = Ok(());
        self.for_each_label(|l| {
            if !first {
                res = res.and_then(|_| f.write_str("."));
            }
            first = false;
            for &c in l {
                res = res.and_then(|_| {
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        fmt::Write::write_char(f, char::from(c))
                    } else {
                        write!(f, "\\{c:03}")
                    }
                });
            }
        });
        if first {
            res = res.and_then(|_| f.write_str("."));
        }
        res
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// One question entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: u16,
    pub qclass: u16,
}

/// Decoded record data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RData<'a> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name<'a>),
    Ns(Name<'a>),
    Ptr(Name<'a>),
    /// Any other type, raw.
    Other(&'a [u8]),
}

/// Which section a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// One resource record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub section: Section,
    pub name: Name<'a>,
    pub rtype: u16,
    pub rclass: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
    /// Offset of `rdata` in the message (names inside it may point backwards).
    pub rdata_offset: usize,
}

impl<'a> Record<'a> {
    /// Decodes the data of the types we know; a name must end inside the rdata.
    pub fn data(&self) -> Result<RData<'a>, DissectError> {
        let name_in_rdata = || -> Result<Name<'a>, DissectError> {
            let (name, end) = Name::parse(self.name.msg, self.rdata_offset)?;
            if end > self.rdata_offset + self.rdata.len() {
                return Err(DissectError::Invalid {
                    what: "dns name overruns rdata",
                });
            }
            Ok(name)
        };
        match self.rtype {
            rtype::A => <[u8; 4]>::try_from(self.rdata)
                .map(|b| RData::A(Ipv4Addr::from(b)))
                .map_err(|_| DissectError::Invalid {
                    what: "dns A length",
                }),
            rtype::AAAA => <[u8; 16]>::try_from(self.rdata)
                .map(|b| RData::Aaaa(Ipv6Addr::from(b)))
                .map_err(|_| DissectError::Invalid {
                    what: "dns AAAA length",
                }),
            rtype::CNAME => name_in_rdata().map(RData::Cname),
            rtype::NS => name_in_rdata().map(RData::Ns),
            rtype::PTR => name_in_rdata().map(RData::Ptr),
            _ => Ok(RData::Other(self.rdata)),
        }
    }
}

/// One walked entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    Question(Question<'a>),
    Record(Record<'a>),
}

/// Walks questions then records, bounded by the header counts and the `MAX_*` caps; yields
/// one `Err` and stops on a problem.
#[derive(Clone, Debug)]
pub struct EntryIter<'a> {
    msg: &'a [u8],
    pos: usize,
    /// Remaining entries per section: question, answer, authority, additional.
    left: [u16; 4],
    walked_records: usize,
    done: bool,
}

fn parse_fixed_question(i: &[u8]) -> IResult<&[u8], (u16, u16), DissectError> {
    let (i, t) = be_u16(i)?;
    let (i, c) = be_u16(i)?;
    Ok((i, (t, c)))
}

fn parse_fixed_record(i: &[u8]) -> IResult<&[u8], (u16, u16, u32, u16), DissectError> {
    let (i, t) = be_u16(i)?;
    let (i, c) = be_u16(i)?;
    let (i, ttl) = be_u32(i)?;
    let (i, len) = be_u16(i)?;
    Ok((i, (t, c, ttl, len)))
}

impl<'a> EntryIter<'a> {
    /// Byte offset reached so far (the end of the message after a full walk).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>, DissectError> {
        let Some(si) = self.left.iter().position(|&n| n > 0) else {
            return Ok(None);
        };
        let (name, after) = Name::parse(self.msg, self.pos)?;
        let rest = self.msg.get(after..).unwrap_or_default();
        if si == 0 {
            let (rest, (qtype, qclass)) = parse_fixed_question(rest).map_err(to_err)?;
            self.pos = self.msg.len() - rest.len();
            if let Some(n) = self.left.get_mut(0) {
                *n -= 1;
            }
            return Ok(Some(Entry::Question(Question {
                name,
                qtype,
                qclass,
            })));
        }
        self.walked_records += 1;
        if self.walked_records > MAX_RECORDS {
            return Err(DissectError::TooLarge {
                what: "dns record count",
                value: self.walked_records as u64,
                max: MAX_RECORDS as u64,
            });
        }
        let (rest, (rtype, rclass, ttl, rdlen)) = parse_fixed_record(rest).map_err(to_err)?;
        let rdata_offset = self.msg.len() - rest.len();
        let rdata = rest
            .get(..usize::from(rdlen))
            .ok_or_else(|| DissectError::Truncated {
                needed: usize::from(rdlen).saturating_sub(rest.len()),
            })?;
        self.pos = rdata_offset + rdata.len();
        if let Some(n) = self.left.get_mut(si) {
            *n -= 1;
        }
        let section = match si {
            1 => Section::Answer,
            2 => Section::Authority,
            _ => Section::Additional,
        };
        Ok(Some(Entry::Record(Record {
            section,
            name,
            rtype,
            rclass,
            ttl,
            rdata,
            rdata_offset,
        })))
    }
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Result<Entry<'a>, DissectError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A zero-copy view of one DNS message (without the TCP length prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsView<'a> {
    pub header: Header,
    pub msg: &'a [u8],
}

impl<'a> DnsView<'a> {
    /// Parses the header; sections are walked lazily by [`DnsView::entries`].
    pub fn parse(msg: &'a [u8]) -> Result<Self, DissectError> {
        let (_, header) = parse_header(msg).map_err(to_err)?;
        if usize::from(header.qdcount) > MAX_QUESTIONS {
            return Err(DissectError::TooLarge {
                what: "dns question count",
                value: u64::from(header.qdcount),
                max: MAX_QUESTIONS as u64,
            });
        }
        Ok(DnsView { header, msg })
    }

    pub fn entries(&self) -> EntryIter<'a> {
        let h = &self.header;
        EntryIter {
            msg: self.msg,
            pos: HEADER_LEN,
            left: [h.qdcount, h.ancount, h.nscount, h.arcount],
            walked_records: 0,
            done: false,
        }
    }

    pub fn questions(&self) -> impl Iterator<Item = Question<'a>> {
        self.entries().map_while(|e| match e {
            Ok(Entry::Question(q)) => Some(q),
            _ => None,
        })
    }

    /// Records of the answer section (stops at the first error).
    pub fn answers(&self) -> impl Iterator<Item = Record<'a>> {
        self.entries()
            .map_while(Result::ok)
            .filter_map(|e| match e {
                Entry::Record(r) if r.section == Section::Answer => Some(r),
                _ => None,
            })
    }

    /// `(owner name, address)` for every A/AAAA answer: what the analyzer maps addresses to
    /// names with. With a CNAME chain the owner is the canonical name; the question name is
    /// in [`DnsView::questions`].
    pub fn name_addresses(&self) -> impl Iterator<Item = (Name<'a>, IpAddr)> {
        self.answers().filter_map(|r| match r.data() {
            Ok(RData::A(a)) => Some((r.name, IpAddr::V4(a))),
            Ok(RData::Aaaa(a)) => Some((r.name, IpAddr::V6(a))),
            _ => None,
        })
    }

    /// Walks every entry: `Ok(end offset)` or the first error.
    pub fn validate(&self) -> Result<usize, DissectError> {
        let mut it = self.entries();
        for e in it.by_ref() {
            e?;
        }
        Ok(it.position())
    }

    /// The analyzer's row for this message.
    pub fn to_message(&self) -> Message {
        let h = &self.header;
        let mut status = Status::Complete;
        let mut d = DetailBuf::new(MAX_DETAIL_LEN);
        let mut answers = 0usize;
        let mut it = self.entries();
        for e in it.by_ref() {
            match e {
                Ok(Entry::Question(q)) => {
                    if d.is_empty() {
                        d.display(q.name);
                        match type_name(q.qtype) {
                            Some(n) => d.raw(" ").display(n),
                            None => d.raw(" TYPE").display(q.qtype),
                        };
                    }
                }
                Ok(Entry::Record(r)) if r.section == Section::Answer => {
                    if answers >= MAX_DETAIL_ANSWERS {
                        continue;
                    }
                    let sep = if answers == 0 { " -> " } else { "," };
                    match r.data() {
                        Ok(RData::A(a)) => d.raw(sep).display(a),
                        Ok(RData::Aaaa(a)) => d.raw(sep).display(a),
                        Ok(RData::Cname(n)) | Ok(RData::Ptr(n)) | Ok(RData::Ns(n)) => {
                            d.raw(sep).display(n)
                        }
                        Ok(RData::Other(_)) => match type_name(r.rtype) {
                            Some(t) => d.raw(sep).display(t),
                            None => d.raw(sep).display(format_args!("TYPE{}", r.rtype)),
                        },
                        Err(_) => {
                            status = Status::Malformed;
                            d.raw(sep).display("?")
                        }
                    };
                    answers += 1;
                }
                Ok(_) => {}
                Err(DissectError::Truncated { .. }) => {
                    status = Status::Truncated;
                    break;
                }
                Err(_) => {
                    status = Status::Malformed;
                    break;
                }
            }
        }
        if h.is_response() && h.rcode() != 0 {
            d.raw(" -> ").display(rcode_name(h.rcode()));
        }
        let msg_type = match (h.is_response(), h.opcode()) {
            (false, 0) => "query",
            (true, 0) => "response",
            (false, 4) => "notify",
            (true, 4) => "notify-response",
            (false, 5) => "update",
            (true, 5) => "update-response",
            (false, _) => "query-other",
            (true, _) => "response-other",
        };
        Message {
            protocol: "dns",
            msg_type: Cow::Borrowed(msg_type),
            type_code: None,
            txn_id: Some(u64::from(h.id)),
            call_id: None,
            len: u32::try_from(self.msg.len()).unwrap_or(u32::MAX),
            status,
            class: None,
            detail: d.finish(),
            call: None,
        }
    }
}

/// Structural probe of one whole message: plausible header and a full walk.
fn probe_message(msg: &[u8]) -> Probe {
    let Ok(view) = DnsView::parse(msg) else {
        return if msg.len() < HEADER_LEN {
            Probe::Maybe
        } else {
            Probe::No
        };
    };
    let h = view.header;
    // Opcodes in use: QUERY 0, IQUERY 1, STATUS 2, NOTIFY 4, UPDATE 5; Z bit (0x0040) zero.
    if !matches!(h.opcode(), 0 | 1 | 2 | 4 | 5) || h.flags & 0x0040 != 0 {
        return Probe::No;
    }
    let records = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
    if records > MAX_RECORDS || (!h.is_response() && h.ancount > 0 && h.opcode() == 0) {
        return Probe::No;
    }
    match view.validate() {
        // mDNS answers carry no question; accept them but a question-bearing message is the
        // stronger evidence.
        Ok(end) if end == msg.len() && h.qdcount >= 1 => Probe::Yes,
        Ok(end) if end == msg.len() && h.is_response() && records > 0 => Probe::Maybe,
        Err(DissectError::Truncated { .. }) if h.qdcount >= 1 => Probe::Maybe,
        _ => Probe::No,
    }
}

/// Cheap probe: a full structural walk of the datagram, or of the first TCP frame.
pub fn probe(transport: Transport, _side: Side, data: &[u8]) -> Probe {
    match transport {
        Transport::Udp => probe_message(data),
        Transport::Tcp => match data {
            [hi, lo, rest @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                if n < HEADER_LEN {
                    return Probe::No;
                }
                match rest.get(..n) {
                    Some(msg) => probe_message(msg),
                    None => match probe_message(rest) {
                        Probe::No if rest.len() >= HEADER_LEN => {
                            // A partial frame fails the walk as truncated, not as invalid.
                            Probe::Maybe
                        }
                        p => p.min(Probe::Maybe),
                    },
                }
            }
            _ => Probe::Maybe,
        },
    }
}

struct DnsFlow {
    transport: Transport,
    /// Per TCP side: framing lost after a gap or a bad frame. A 2-byte length has no sync
    /// marker to find again, so the rest of that side is skipped.
    lost: [bool; 2],
}

fn new_flow(transport: Transport) -> Box<dyn FlowDissector> {
    Box::new(DnsFlow {
        transport,
        lost: [false; 2],
    })
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Orig => 0,
        Side::Resp => 1,
    }
}

impl FlowDissector for DnsFlow {
    fn parse(&mut self, side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        match self.transport {
            Transport::Udp => match DnsView::parse(data) {
                Ok(v) => {
                    out.push(v.to_message());
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
            Transport::Tcp => {
                let si = side_index(side);
                if self.lost.get(si).copied().unwrap_or(true) {
                    return Progress::Parsed {
                        consumed: data.len(),
                        needed: None,
                    };
                }
                let mut off = 0usize;
                // Each iteration consumes at least TCP_PREFIX_LEN + HEADER_LEN bytes or returns.
                loop {
                    let rest = data.get(off..).unwrap_or_default();
                    let (n, frame_rest) = match rest {
                        [] => {
                            return Progress::Parsed {
                                consumed: off,
                                needed: None,
                            };
                        }
                        [hi, lo, r @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), r),
                        _ => {
                            return Progress::Parsed {
                                consumed: off,
                                needed: Some(TCP_PREFIX_LEN - rest.len()),
                            };
                        }
                    };
                    if n < HEADER_LEN {
                        if let Some(l) = self.lost.get_mut(si) {
                            *l = true;
                        }
                        return Progress::Error {
                            consumed: data.len(),
                            error: DissectError::Invalid {
                                what: "dns tcp length",
                            },
                        };
                    }
                    let Some(msg) = frame_rest.get(..n) else {
                        return Progress::Parsed {
                            consumed: off,
                            needed: Some(n - frame_rest.len()),
                        };
                    };
                    match DnsView::parse(msg) {
                        Ok(v) => out.push(v.to_message()),
                        Err(error) => {
                            if let Some(l) = self.lost.get_mut(si) {
                                *l = true;
                            }
                            return Progress::Error {
                                consumed: data.len(),
                                error,
                            };
                        }
                    }
                    off += TCP_PREFIX_LEN + n;
                }
            }
        }
    }

    fn on_gap(&mut self, side: Side, _missing: u64) {
        if let Some(l) = self.lost.get_mut(side_index(side)) {
            *l = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_loop_is_bounded() {
        // Header then a name that points at itself.
        let mut msg = vec![0u8; HEADER_LEN];
        msg.extend_from_slice(&[0xC0, 12]);
        assert!(matches!(
            Name::parse(&msg, HEADER_LEN),
            Err(DissectError::TooLarge { .. })
        ));
    }

    #[test]
    fn root_name_displays_as_dot() {
        let msg = [0u8; 1];
        let (n, end) = Name::parse(&msg, 0).unwrap();
        assert_eq!(end, 1);
        assert_eq!(n.to_string(), ".");
    }

    #[test]
    fn overlong_name_is_rejected() {
        let mut msg = Vec::new();
        for _ in 0..5 {
            msg.push(63);
            msg.extend_from_slice(&[b'a'; 63]);
        }
        msg.push(0);
        assert!(matches!(
            Name::parse(&msg, 0),
            Err(DissectError::TooLarge { .. })
        ));
    }
}
