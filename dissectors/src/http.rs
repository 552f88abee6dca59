//! HTTP/1.x dissector (RFC 9112 message syntax): request and status lines, the headers an
//! analyzer needs (Host, User-Agent, Content-Length, Transfer-Encoding), and body framing
//! walked incrementally over the TCP stream.
//!
//! Guarantees: the head (start line + headers) is parsed zero-copy from the caller's bytes
//! and bounded by [`MAX_LINE`], [`MAX_HEADERS`] and [`MAX_HEAD_LEN`]; bodies are never
//! buffered — the per-flow state only remembers how many body bytes (or which chunk-framing
//! step) remain, so later calls consume body data as it arrives. No panic on any bytes.
//! Must not: decode bodies, decompress, or interpret anything beyond framing.

use crate::DissectError;
use crate::detail::DetailBuf;
use crate::registry::{
    DissectorDesc, FlowDissector, Message, Probe, Progress, Side, Status, Transport,
};
use nom::IResult;
use nom::bytes::streaming::{tag, take_while1};
use std::borrow::Cow;

/// Longest start line or header line we accept (bytes, CRLF excluded). Common servers
/// refuse lines above 8 KiB.
pub const MAX_LINE: usize = 8 * 1024;
/// Most header fields in one head.
pub const MAX_HEADERS: usize = 128;
/// Longest head (start line, headers and the blank line) the caller must hold for us.
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Longest chunk-size line (hex digits and extensions).
pub const MAX_CHUNK_LINE: usize = 1024;
/// Largest chunk size accepted (anything larger is treated as malformed framing).
pub const MAX_CHUNK_SIZE: u64 = 1 << 40;
/// Requests remembered while waiting for their responses (to know that a response to
/// HEAD has no body). Older ones are forgotten.
pub const MAX_PIPELINE: u32 = 64;
/// Bound on the `detail` column of a message row.
pub const MAX_DETAIL_LEN: usize = 200;
/// Trailer fields accepted after the last chunk.
pub const MAX_TRAILERS: usize = 64;

/// Request methods the probe recognises (RFC 9110 §9 plus PATCH, RFC 5789).
pub const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH",
];

pub const DESCRIPTOR: DissectorDesc = DissectorDesc {
    name: "http",
    transports: &[Transport::Tcp],
    port_hints: &[80, 8080, 8000, 3128],
    probe,
    new_flow,
};

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        method: &'a [u8],
        target: &'a [u8],
        /// `b"HTTP/1.1"` etc.
        version: &'a [u8],
    },
    Response {
        version: &'a [u8],
        code: u16,
        reason: &'a [u8],
    },
}

/// One header field, name and value trimmed of optional whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// How the body after a head is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    ContentLength(u64),
    Chunked,
    /// Response without length: the body runs until the connection closes.
    UntilClose,
}

/// A parsed head: start line plus the raw header block, walked again on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView<'a> {
    pub start: StartLine<'a>,
    /// Header lines (CRLF-terminated, blank line excluded); every line already validated.
    headers: &'a [u8],
    /// Bytes of the head on the wire, blank line included.
    pub head_len: usize,
    /// Number of header fields.
    pub header_count: usize,
}

impl<'a> HeadView<'a> {
    /// The header fields in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            rest: self.headers,
            left: MAX_HEADERS,
        }
    }

    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value)
    }

    pub fn host(&self) -> Option<&'a [u8]> {
        self.header("host")
    }

    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.header("user-agent")
    }

    /// Content-Length when present and a valid decimal; `Err` when present but invalid or
    /// repeated with different values (RFC 9112 §6.3 item 5: unrecoverable framing error).
    pub fn content_length(&self) -> Result<Option<u64>, DissectError> {
        let mut found: Option<u64> = None;
        for h in self.headers() {
            if !h.name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let v = parse_decimal(h.value).ok_or(DissectError::Invalid {
                what: "content-length",
            })?;
            match found {
                Some(prev) if prev != v => {
                    return Err(DissectError::Invalid {
                        what: "content-length",
                    });
                }
                _ => found = Some(v),
            }
        }
        Ok(found)
    }

    /// True when the last transfer coding is `chunked`.
    pub fn chunked(&self) -> bool {
        let mut last = false;
        for h in self.headers() {
            if h.name.eq_ignore_ascii_case(b"transfer-encoding") {
                last = h
                    .value
                    .rsplit(|&c| c == b',')
                    .next()
                    .map(|t| trim(t).eq_ignore_ascii_case(b"chunked"))
                    .unwrap_or(false);
            }
        }
        last
    }

    /// Body framing of this message; `request_was_head` tells whether the request a
    /// response answers was a HEAD (such responses have no body).
    pub fn body_framing(&self, request_was_head: bool) -> Result<BodyFraming, DissectError> {
        if let StartLine::Response { code, .. } = self.start {
            if request_was_head || (100..200).contains(&code) || code == 204 || code == 304 {
                return Ok(BodyFraming::None);
            }
        }
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 item 3).
        if self.chunked() {
            return Ok(BodyFraming::Chunked);
        }
        match (self.content_length()?, self.start) {
            (Some(n), _) => Ok(BodyFraming::ContentLength(n)),
            (None, StartLine::Request { .. }) => Ok(BodyFraming::None),
            // A response with neither header (or a non-chunked transfer coding) is
            // delimited by the connection close (RFC 9112 §6.3 items 4 and 8).
            (None, StartLine::Response { .. }) => Ok(BodyFraming::UntilClose),
        }
    }
}

/// Iterator over validated header lines.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 || self.rest.is_empty() {
            return None;
        }
        self.left -= 1;
        let (line, rest) = split_line(self.rest)?;
        self.rest = rest;
        parse_header_line(line).ok()
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if *first == b' ' || *first == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if *last == b' ' || *last == b'\t' {
            b = rest;
        } else {
            break;
        }
    }
    b
}

fn parse_decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Splits off one line ending in LF (CR before it removed). `None` when no LF is present.
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let lf = b.iter().position(|&c| c == b'\n')?;
    let line = b.get(..lf)?;
    let rest = b.get(lf + 1..)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, rest))
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn parse_header_line(line: &[u8]) -> Result<Header<'_>, DissectError> {
    let r: IResult<&[u8], &[u8], DissectError> = take_while1(is_tchar)(line);
    let (rest, name) = r.map_err(|_| DissectError::Invalid {
        what: "header name",
    })?;
    let value = rest.strip_prefix(b":").ok_or(DissectError::Invalid {
        what: "header line",
    })?;
    Ok(Header {
        name,
        value: trim(value),
    })
}

fn parse_version(v: &[u8]) -> bool {
    matches!(v, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit())
}

/// Parses a start line (without its line ending).
pub fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, DissectError> {
    if line.len() > MAX_LINE {
        return Err(DissectError::TooLarge {
            what: "http start line",
            value: line.len() as u64,
            max: MAX_LINE as u64,
        });
    }
    if line.starts_with(b"HTTP/") {
        let mut parts = line.splitn(3, |&c| c == b' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default();
        if !parse_version(version) || code.len() != 3 {
            return Err(DissectError::Invalid {
                what: "http status line",
            });
        }
        let code = parse_decimal(code)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (100..=999).contains(c))
            .ok_or(DissectError::Invalid {
                what: "http status code",
            })?;
        return Ok(StartLine::Response {
            version,
            code,
            reason,
        });
    }
    let r: IResult<&[u8], &[u8], DissectError> = take_while1(is_tchar)(line);
    let (rest, method) = r.map_err(|_| DissectError::Invalid {
        what: "http method",
    })?;
    let r: IResult<&[u8], &[u8], DissectError> = tag(&b" "[..])(rest);
    let (rest, _) = r.map_err(|_| DissectError::Invalid {
        what: "http request line",
    })?;
    let sp = rest
        .iter()
        .rposition(|&c| c == b' ')
        .ok_or(DissectError::Invalid {
            what: "http request line",
        })?;
    let target = rest.get(..sp).unwrap_or_default();
    let version = rest.get(sp + 1..).unwrap_or_default();
    if target.is_empty() || !parse_version(version) || target.iter().any(|&c| c <= b' ') {
        return Err(DissectError::Invalid {
            what: "http request line",
        });
    }
    Ok(StartLine::Request {
        method,
        target,
        version,
    })
}

/// Parses a message head from the start of a stream. `Err(Truncated)` while the blank line
/// has not arrived (and the head is still within bounds).
pub fn parse_head(data: &[u8]) -> Result<HeadView<'_>, DissectError> {
    let (start_line, mut rest) = match split_line(data) {
        Some(x) => x,
        None if data.len() > MAX_LINE => {
            return Err(DissectError::TooLarge {
                what: "http start line",
                value: data.len() as u64,
                max: MAX_LINE as u64,
            });
        }
        None => {
            // Reject garbage early rather than waiting for a line ending that never comes.
            if !data.is_empty() && !maybe_http_prefix(data) {
                return Err(DissectError::Invalid {
                    what: "http start line",
                });
            }
            return Err(DissectError::Truncated { needed: 1 });
        }
    };
    let start = parse_start_line(start_line)?;
    let headers_start = data.len() - rest.len();
    let mut count = 0usize;
    loop {
        let consumed = data.len() - rest.len();
        if consumed > MAX_HEAD_LEN {
            return Err(DissectError::TooLarge {
                what: "http head",
                value: consumed as u64,
                max: MAX_HEAD_LEN as u64,
            });
        }
        let Some((line, next)) = split_line(rest) else {
            if rest.len() > MAX_LINE {
                return Err(DissectError::TooLarge {
                    what: "http header line",
                    value: rest.len() as u64,
                    max: MAX_LINE as u64,
                });
            }
            return Err(DissectError::Truncated { needed: 1 });
        };
        if line.is_empty() {
            let headers_end = data.len() - rest.len();
            let head_len = data.len() - next.len();
            return Ok(HeadView {
                start,
                headers: data.get(headers_start..headers_end).unwrap_or_default(),
                head_len,
                header_count: count,
            });
        }
        if line.len() > MAX_LINE {
            return Err(DissectError::TooLarge {
                what: "http header line",
                value: line.len() as u64,
                max: MAX_LINE as u64,
            });
        }
        parse_header_line(line)?;
        count += 1;
        if count > MAX_HEADERS {
            return Err(DissectError::TooLarge {
                what: "http header count",
                value: count as u64,
                max: MAX_HEADERS as u64,
            });
        }
        rest = next;
    }
}

/// True when `data` could still become an HTTP/1 start line: a known method and a space,
/// `HTTP/1.`, or a prefix of one of them.
fn maybe_http_prefix(data: &[u8]) -> bool {
    let n = data.len().min(8);
    let head = data.get(..n).unwrap_or_default();
    if b"HTTP/1.".starts_with(head) || head.starts_with(b"HTTP/1.") {
        return true;
    }
    // Zip stops at the shorter side: either `head` is a prefix of "METHOD " or starts with it.
    METHODS.iter().any(|m| {
        m.as_bytes()
            .iter()
            .chain(b" ")
            .zip(head)
            .all(|(a, b)| a == b)
    })
}

/// Cheap look at the head of a stream direction: a known method plus space, or `HTTP/1.`.
pub fn probe(transport: Transport, _side: Side, data: &[u8]) -> Probe {
    if transport != Transport::Tcp {
        return Probe::No;
    }
    if data.is_empty() {
        return Probe::Maybe;
    }
    if !maybe_http_prefix(data) {
        return Probe::No;
    }
    let line = match data.iter().position(|&c| c == b'\n') {
        Some(lf) => data.get(..lf).unwrap_or_default(),
        None if data.len() > MAX_LINE => return Probe::No,
        None => return Probe::Maybe,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match parse_start_line(line) {
        Ok(StartLine::Request { method, .. }) if METHODS.iter().any(|m| m.as_bytes() == method) => {
            Probe::Yes
        }
        Ok(StartLine::Response { .. }) => Probe::Yes,
        _ => Probe::No,
    }
}

/// Builds the message row of a head. `len` is the head plus a Content-Length body; for
/// chunked or until-close bodies the total is unknown when the row is made, so only the head
/// counts.
pub fn head_message(head: &HeadView<'_>, body_len: Option<u64>, status: Status) -> Message {
    let mut d = DetailBuf::new(MAX_DETAIL_LEN);
    let msg_type = match head.start {
        StartLine::Request { method, target, .. } => {
            if let Some(h) = head.host() {
                d.key("host").bytes(h);
            }
            d.key("path").bytes(target);
            match METHODS.iter().find(|m| m.as_bytes() == method) {
                Some(m) => Cow::Borrowed(*m),
                None => Cow::Owned(String::from_utf8_lossy(method).into_owned()),
            }
        }
        StartLine::Response { code, reason, .. } => {
            d.key("status").display(code);
            if !reason.is_empty() {
                d.key("reason").bytes(reason);
            }
            Cow::Borrowed("response")
        }
    };
    if let Some(ua) = head.user_agent() {
        d.key("ua").bytes(ua);
    }
    let len = (head.head_len as u64).saturating_add(body_len.unwrap_or(0));
    Message {
        protocol: "http",
        msg_type,
        type_code: None,
        txn_id: None,
        call_id: None,
        len: u32::try_from(len).unwrap_or(u32::MAX),
        status,
        class: None,
        detail: d.finish(),
        call: None,
    }
}

/// Where one direction's stream is in the message grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    /// Expecting a start line.
    Head,
    /// `remaining` body bytes of a Content-Length body.
    Fixed { remaining: u64 },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside chunk data (`remaining` bytes, then CRLF).
    ChunkData { remaining: u64 },
    /// Expecting the CRLF after chunk data.
    ChunkDataEnd,
    /// After the last chunk: trailer lines until the blank line.
    Trailers { seen: usize },
    /// Everything until the connection closes is body.
    UntilClose,
    /// Lost sync (gap or framing error): everything is skipped.
    Lost,
}

struct HttpFlow {
    state: [BodyState; 2],
    /// Bit queue of outstanding requests, 1 = HEAD (oldest in bit 0).
    pending_head: u64,
    pending: u32,
}

fn new_flow(_t: Transport) -> Box<dyn FlowDissector> {
    Box::new(HttpFlow {
        state: [BodyState::Head; 2],
        pending_head: 0,
        pending: 0,
    })
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Orig => 0,
        Side::Resp => 1,
    }
}

impl HttpFlow {
    fn push_request(&mut self, is_head: bool) {
        if self.pending >= MAX_PIPELINE {
            // Forget the oldest.
            self.pending_head >>= 1;
            self.pending -= 1;
        }
        if is_head {
            self.pending_head |= 1u64 << self.pending;
        }
        self.pending += 1;
    }

    fn pop_request(&mut self) -> bool {
        if self.pending == 0 {
            return false;
        }
        let was_head = self.pending_head & 1 == 1;
        self.pending_head >>= 1;
        self.pending -= 1;
        was_head
    }
}

/// Outcome of one step of the per-direction state machine.
enum Step {
    /// Consumed this many bytes; continue.
    Advance(usize),
    /// Need more data (at least this many bytes when known).
    Wait(Option<usize>),
    Fail(DissectError),
}

impl HttpFlow {
    fn step(&mut self, si: usize, data: &[u8], out: &mut Vec<Message>) -> Step {
        let Some(state) = self.state.get(si).copied() else {
            return Step::Fail(DissectError::Invalid { what: "side" });
        };
        let (next, step) = match state {
            BodyState::Head => match parse_head(data) {
                Ok(head) => {
                    let is_request = matches!(head.start, StartLine::Request { .. });
                    let was_head = if is_request {
                        let is_head = matches!(head.start, StartLine::Request { method, .. } if method == b"HEAD");
                        self.push_request(is_head);
                        false
                    } else if matches!(head.start, StartLine::Response { code, .. } if (100..200).contains(&code))
                    {
                        // Interim responses do not answer the request.
                        false
                    } else {
                        self.pop_request()
                    };
                    match head.body_framing(was_head) {
                        Ok(framing) => {
                            let body_len = match framing {
                                BodyFraming::ContentLength(n) => Some(n),
                                _ => None,
                            };
                            out.push(head_message(&head, body_len, Status::Complete));
                            let next = match framing {
                                BodyFraming::None | BodyFraming::ContentLength(0) => {
                                    BodyState::Head
                                }
                                BodyFraming::ContentLength(n) => BodyState::Fixed { remaining: n },
                                BodyFraming::Chunked => BodyState::ChunkSize,
                                BodyFraming::UntilClose => BodyState::UntilClose,
                            };
                            (next, Step::Advance(head.head_len))
                        }
                        Err(e) => {
                            out.push(head_message(&head, None, Status::Malformed));
                            (BodyState::Lost, Step::Fail(e))
                        }
                    }
                }
                Err(DissectError::Truncated { .. }) => (state, Step::Wait(None)),
                Err(e) => (BodyState::Lost, Step::Fail(e)),
            },
            BodyState::Fixed { remaining } => {
                let take = remaining.min(data.len() as u64);
                let left = remaining - take;
                let next = if left == 0 {
                    BodyState::Head
                } else {
                    BodyState::Fixed { remaining: left }
                };
                (next, Step::Advance(take as usize))
            }
            BodyState::ChunkSize => match split_line_bounded(data, MAX_CHUNK_LINE) {
                Ok(Some((line, used))) => match parse_chunk_size(line) {
                    Some(0) => (BodyState::Trailers { seen: 0 }, Step::Advance(used)),
                    Some(n) => (BodyState::ChunkData { remaining: n }, Step::Advance(used)),
                    None => (
                        BodyState::Lost,
                        Step::Fail(DissectError::Invalid { what: "chunk size" }),
                    ),
                },
                Ok(None) => (state, Step::Wait(None)),
                Err(e) => (BodyState::Lost, Step::Fail(e)),
            },
            BodyState::ChunkData { remaining } => {
                let take = remaining.min(data.len() as u64);
                let left = remaining - take;
                let next = if left == 0 {
                    BodyState::ChunkDataEnd
                } else {
                    BodyState::ChunkData { remaining: left }
                };
                (next, Step::Advance(take as usize))
            }
            BodyState::ChunkDataEnd => match data {
                [b'\r', b'\n', ..] => (BodyState::ChunkSize, Step::Advance(2)),
                [b'\n', ..] => (BodyState::ChunkSize, Step::Advance(1)),
                [] | [b'\r'] => (state, Step::Wait(Some(2 - data.len()))),
                _ => (
                    BodyState::Lost,
                    Step::Fail(DissectError::Invalid {
                        what: "chunk data end",
                    }),
                ),
            },
            BodyState::Trailers { seen } => match split_line_bounded(data, MAX_LINE) {
                Ok(Some(([], used))) => (BodyState::Head, Step::Advance(used)),
                Ok(Some((_, used))) if seen < MAX_TRAILERS => {
                    (BodyState::Trailers { seen: seen + 1 }, Step::Advance(used))
                }
                Ok(Some(_)) => (
                    BodyState::Lost,
                    Step::Fail(DissectError::TooLarge {
                        what: "http trailer count",
                        value: seen as u64 + 1,
                        max: MAX_TRAILERS as u64,
                    }),
                ),
                Ok(None) => (state, Step::Wait(None)),
                Err(e) => (BodyState::Lost, Step::Fail(e)),
            },
            BodyState::UntilClose | BodyState::Lost => (state, Step::Advance(data.len())),
        };
        if let Some(s) = self.state.get_mut(si) {
            *s = next;
        }
        step
    }
}

fn split_line_bounded(data: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, DissectError> {
    match split_line(data) {
        Some((line, rest)) if line.len() <= max => Ok(Some((line, data.len() - rest.len()))),
        Some((line, _)) => Err(DissectError::TooLarge {
            what: "http line",
            value: line.len() as u64,
            max: max as u64,
        }),
        None if data.len() > max + 1 => Err(DissectError::TooLarge {
            what: "http line",
            value: data.len() as u64,
            max: max as u64,
        }),
        None => Ok(None),
    }
}

/// `hex[;ext]` → size, bounded by [`MAX_CHUNK_SIZE`].
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&c| c == b';').next().map(trim)?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in hex {
        let d = char::from(c).to_digit(16)?;
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
    }
    (v <= MAX_CHUNK_SIZE).then_some(v)
}

impl FlowDissector for HttpFlow {
    fn parse(&mut self, side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        let si = side_index(side);
        let mut off = 0usize;
        // Each step consumes at least one byte or returns, so this loop ends.
        loop {
            let rest = data.get(off..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Parsed {
                    consumed: off,
                    needed: None,
                };
            }
            match self.step(si, rest, out) {
                Step::Advance(0) => {
                    return Progress::Parsed {
                        consumed: off,
                        needed: None,
                    };
                }
                Step::Advance(n) => off = off.saturating_add(n).min(data.len()),
                Step::Wait(needed) => {
                    return Progress::Parsed {
                        consumed: off,
                        needed,
                    };
                }
                Step::Fail(error) => {
                    return Progress::Error {
                        consumed: data.len(),
                        error,
                    };
                }
            }
        }
    }

    fn on_gap(&mut self, side: Side, missing: u64) {
        let si = side_index(side);
        if let Some(s) = self.state.get_mut(si) {
            // A gap inside a body of known size only shortens it; anywhere else the
            // framing position is unknown.
            *s = match *s {
                BodyState::Fixed { remaining } if missing < remaining => BodyState::Fixed {
                    remaining: remaining - missing,
                },
                BodyState::Fixed { remaining } if missing == remaining => BodyState::Head,
                BodyState::ChunkData { remaining } if missing < remaining => BodyState::ChunkData {
                    remaining: remaining - missing,
                },
                BodyState::UntilClose => BodyState::UntilClose,
                _ => BodyState::Lost,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_accepts_extensions_and_rejects_overflow() {
        assert_eq!(parse_chunk_size(b"1a;name=v"), Some(26));
        assert_eq!(parse_chunk_size(b"ffffffffffffffffff"), None);
        assert_eq!(parse_chunk_size(b"zz"), None);
    }

    #[test]
    fn prefix_of_method_is_maybe() {
        assert_eq!(probe(Transport::Tcp, Side::Orig, b"GE"), Probe::Maybe);
        assert_eq!(probe(Transport::Tcp, Side::Orig, b"GET /x"), Probe::Maybe);
        assert_eq!(probe(Transport::Tcp, Side::Orig, b"GETX"), Probe::No);
        assert_eq!(
            probe(Transport::Tcp, Side::Orig, b"\x16\x03\x01"),
            Probe::No
        );
    }
}
