//! Re-extracts one message's bytes from its capture file, for the details pane: the UI keeps
//! message rows (flow, sender, time, type, index) but never their bytes, so on demand this
//! re-reads the capture, keeps only the flow's frames up to the message's time and runs the
//! flow's dissection again — the same [`Engine`] the analysis used, so the message sequence,
//! directions and flow splits are the pipeline's own.
//!
//! Bytes: UDP, the datagram that produced the message; TCP, the message's range of the
//! direction's in-order stream, rebuilt by a private [`TcpReassembler`] fed the same segments
//! and cut where each protocol's framing puts it (Skylark and STUN frames back to back, DNS
//! with its length prefix, HTTP from its start line, TLS records covering the hello).
//!
//! Guarantees: bounded memory — each TCP direction keeps at most [`MAX_STREAM_BYTES`] not yet
//! passed, the bytes returned are at most [`MAX_MESSAGE_BYTES`]; reading stops shortly after
//! the message's time. Failures are [`PayloadError`] values, never panics. Must not: write
//! anything, or be called on the UI thread for large captures without expecting a delay of
//! one pass over the capture up to the message.

use crate::capture::{CaptureError, CaptureReader};
use crate::decode::{Decoder, DefragLimits, L4, tcp_flags};
use crate::flow::reassembly::{ReassemblyBudget, StreamConsumer, StreamEnd, TcpReassembler};
use crate::flow::{Dir, FlowRecord, Uid};
use crate::pipeline::{Engine, FlowConsumer, MsgCtx, PipelineConfig, Step, read_frames};
use crate::time::Ts;
use dissectors::registry::Message;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Stream bytes kept per TCP direction beyond the last message cut (a message longer than
/// this, or one behind that much unparsed data, cannot be shown).
pub const MAX_STREAM_BYTES: usize = 4 << 20;
/// Bytes of one message handed back (longer ones are cut and flagged).
pub const MAX_MESSAGE_BYTES: usize = 256 << 10;
/// Frames read past the message's time before giving up on finding it (capture files are
/// not always in strict time order).
const SLACK_NS: i64 = 2 * Ts::NANOS_PER_SEC;
/// Scanned past the expected start for an HTTP start line (chunked bodies are not counted
/// in a message's length).
const MAX_HTTP_SCAN: usize = 64 << 10;

/// Which message to extract.
#[derive(Clone, Debug)]
pub struct MessageQuery<'a> {
    pub capture: &'a Path,
    /// The flow's two endpoints (either order).
    pub endpoints: (SocketAddr, SocketAddr),
    /// IP protocol: 6 TCP, 17 UDP.
    pub proto: u8,
    /// The message's sender.
    pub from: SocketAddr,
    pub ts: Ts,
    pub protocol: &'a str,
    pub msg_type: &'a str,
    /// Position among the flow's messages (both directions, pipeline order).
    pub index_in_flow: usize,
}

/// The message's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub bytes: Vec<u8>,
    /// The message is longer than what is returned (cut at [`MAX_MESSAGE_BYTES`], or its end
    /// was not captured).
    pub cut: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("cannot read the capture: {0}")]
    Capture(#[from] CaptureError),
    #[error("no {protocol} {msg_type} from {from} at that time in {}", path.display())]
    NotFound {
        path: PathBuf,
        protocol: String,
        msg_type: String,
        from: SocketAddr,
    },
    #[error("the message's stream bytes are not available (capture gap or more than {max} bytes pending)", max = MAX_STREAM_BYTES)]
    StreamUnavailable,
}

/// Reads `q.capture` and returns the bytes of the message `q` names.
pub fn extract(q: &MessageQuery<'_>) -> Result<Extracted, PayloadError> {
    let mut reader = CaptureReader::open(q.capture)?;
    let state = Rc::new(RefCell::new(State::new(q)));
    let mut consumer = Recorder(Rc::clone(&state));
    let config = PipelineConfig {
        dissect: Some(Default::default()),
        ..Default::default()
    };
    let mut engine = Engine::new(&config, &mut consumer);
    let mut decoder = Decoder::new(DefragLimits::default());
    let mut tcp = TcpSide::default();
    let (a, b) = q.endpoints;
    let (_, read_error) = read_frames(
        &mut reader,
        &mut engine,
        &mut |frame| {
            if frame.ts.since(q.ts) > SLACK_NS || state.borrow().done() {
                return Step::Stop;
            }
            // Decoded once here to select the flow's frames (and keep what the engine's
            // messages will need); frames that do not decode alone (IP fragments) go to the
            // engine anyway so its defragmenter sees every piece.
            let Some(pkt) = decoder.decode(frame) else {
                return Step::Analyse;
            };
            let (src, dst) = pkt.ends();
            if pkt.ip_proto != q.proto || ((src, dst) != (a, b) && (src, dst) != (b, a)) {
                return Step::Skip;
            }
            let mut st = state.borrow_mut();
            match &pkt.l4 {
                L4::Udp(u) => {
                    st.datagram.clear();
                    st.datagram.extend_from_slice(u.payload);
                }
                L4::Tcp(seg) => tcp.segment(&mut st, src, pkt.ts, seg),
                _ => {}
            }
            Step::Analyse
        },
        &mut |_| {},
    );
    {
        let mut st = state.borrow_mut();
        if !st.done() {
            tcp.finish(&mut st);
        }
    }
    let _ = engine.finish();
    drop(consumer);
    state.borrow_mut().take_fallback();
    let st = state.take();
    match st.found {
        Some(Ok(e)) => Ok(e),
        Some(Err(e)) => Err(e),
        None => match read_error {
            // A capture damaged before the message: say so rather than "not found".
            Some(e) => Err(PayloadError::Capture(e)),
            None => Err(PayloadError::NotFound {
                path: q.capture.to_path_buf(),
                protocol: q.protocol.to_owned(),
                msg_type: q.msg_type.to_owned(),
                from: q.from,
            }),
        },
    }
}

/// One TCP direction's in-order bytes: `buf` starts at stream offset `base`.
#[derive(Default)]
struct Stream {
    base: usize,
    buf: Vec<u8>,
    /// Bytes were dropped (gap, or over [`MAX_STREAM_BYTES`]): offsets past here are lost.
    broken_at: Option<usize>,
}

impl Stream {
    fn end(&self) -> usize {
        self.base + self.buf.len()
    }

    fn push(&mut self, data: &[u8]) {
        if self.broken_at.is_some() {
            return;
        }
        if self.buf.len() + data.len() > MAX_STREAM_BYTES {
            self.broken_at = Some(self.end());
            return;
        }
        self.buf.extend_from_slice(data);
    }

    fn get(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        let s = range.start.checked_sub(self.base)?;
        let e = range.end.checked_sub(self.base)?;
        self.buf.get(s..e)
    }

    /// Forgets bytes before `offset` (they belong to messages already cut).
    fn release(&mut self, offset: usize) {
        let n = offset.saturating_sub(self.base).min(self.buf.len());
        if n > 0 && n >= self.buf.len() / 2 {
            self.buf.drain(..n);
            self.base += n;
        }
    }
}

/// Shared between the read loop and the engine's consumer.
struct State {
    from: SocketAddr,
    ts: Ts,
    proto: u8,
    protocol: String,
    msg_type: String,
    index: usize,
    /// Payload of the UDP datagram being analysed.
    datagram: Vec<u8>,
    /// TCP streams of the current connection, by sender.
    streams: HashMap<SocketAddr, Stream>,
    /// Per flow: messages so far; per (flow, sender): where the next message starts.
    counts: HashMap<Uid, usize>,
    cursors: HashMap<(Uid, SocketAddr), usize>,
    /// STUN over TCP with RFC 4571 prefixes, per sender (decided on the first bytes).
    rfc4571: HashMap<SocketAddr, bool>,
    /// A candidate at the right time whose index differs (used if no exact match comes).
    fallback: Option<Result<Extracted, PayloadError>>,
    found: Option<Result<Extracted, PayloadError>>,
}

impl Default for State {
    fn default() -> Self {
        State {
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            ts: Ts(0),
            proto: 0,
            protocol: String::new(),
            msg_type: String::new(),
            index: 0,
            datagram: Vec::new(),
            streams: HashMap::new(),
            counts: HashMap::new(),
            cursors: HashMap::new(),
            rfc4571: HashMap::new(),
            fallback: None,
            found: None,
        }
    }
}

impl State {
    fn new(q: &MessageQuery<'_>) -> State {
        State {
            from: q.from,
            ts: q.ts,
            proto: q.proto,
            protocol: q.protocol.to_owned(),
            msg_type: q.msg_type.to_owned(),
            index: q.index_in_flow,
            ..State::default()
        }
    }

    fn done(&self) -> bool {
        self.found.is_some()
    }

    /// At the end: a candidate with another index is better than nothing.
    fn take_fallback(&mut self) {
        if self.found.is_none() {
            self.found = self.fallback.take();
        }
    }

    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let count = self.counts.entry(ctx.uid).or_default();
        let index = *count;
        *count += 1;
        let wanted = ctx.src == self.from
            && ctx.ts == self.ts
            && msg.protocol == self.protocol
            && msg.msg_type == self.msg_type
            && self.found.is_none();
        // Every TCP message advances its direction's cursor, wanted or not.
        let bytes = if self.proto == 17 {
            wanted.then(|| Ok(self.datagram.clone()))
        } else {
            self.cut_tcp(ctx, msg)
        };
        if !wanted {
            return;
        }
        let result = match bytes {
            Some(Ok(mut b)) => {
                let cut = b.len() > MAX_MESSAGE_BYTES || (msg.len as usize) > b.len();
                b.truncate(MAX_MESSAGE_BYTES);
                Ok(Extracted { bytes: b, cut })
            }
            Some(Err(e)) => Err(e),
            None => Err(PayloadError::StreamUnavailable),
        };
        if index == self.index {
            self.found = Some(result);
        } else if self.fallback.is_none() {
            self.fallback = Some(result);
        }
    }

    /// Cuts the message out of its direction's stream and advances the cursor past it.
    fn cut_tcp(&mut self, ctx: &MsgCtx, msg: &Message) -> Option<Result<Vec<u8>, PayloadError>> {
        let key = (ctx.uid, ctx.src);
        let stream = self.streams.get(&ctx.src)?;
        let cursor = *self.cursors.get(&key).unwrap_or(&stream.base);
        let len = msg.len as usize;
        let range = match msg.protocol {
            "dns" => cursor..cursor + 2 + len,
            "stun" => {
                let framed = *self.rfc4571.entry(ctx.src).or_insert_with(|| {
                    let head = stream.get(stream.base..stream.end()).unwrap_or_default();
                    dissectors::stun::detect_framing(head)
                        == Some(dissectors::stun::Framing::Rfc4571)
                });
                cursor..cursor + len + if framed { 2 } else { 0 }
            }
            "http" => {
                let start = http_start(stream, cursor).unwrap_or(cursor);
                start..start + len
            }
            "tls" => tls_records(stream, cursor, len),
            _ => cursor..cursor + len,
        };
        self.cursors.insert(key, range.end);
        let stream = self.streams.get_mut(&ctx.src)?;
        let end = range.end.min(stream.end());
        let bytes = stream.get(range.start..end).map(<[u8]>::to_vec);
        if stream.broken_at.is_some_and(|b| b < range.end) && bytes.is_none() {
            return Some(Err(PayloadError::StreamUnavailable));
        }
        stream.release(range.start.min(end));
        Some(bytes.ok_or(PayloadError::StreamUnavailable))
    }
}

/// The first offset at or after `from` where an HTTP start line begins.
fn http_start(stream: &Stream, from: usize) -> Option<usize> {
    let data = stream.get(from..stream.end())?;
    let limit = data.len().min(MAX_HTTP_SCAN);
    (0..limit)
        .filter(|&i| i == 0 || data.get(i - 1) == Some(&b'\n'))
        .find(|&i| {
            let rest = data.get(i..).unwrap_or_default();
            let line_end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            let line = rest.get(..line_end).unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            dissectors::http::parse_start_line(line).is_ok()
        })
        .map(|i| from + i)
}

/// The records from `from` that carry a handshake message of `len` bytes.
fn tls_records(stream: &Stream, from: usize, len: usize) -> std::ops::Range<usize> {
    let mut pos = from;
    let mut carried = 0usize;
    while carried < len {
        let Some(h) = stream.get(pos..pos + 5) else {
            break;
        };
        let rlen = h
            .get(3..5)
            .and_then(|l| <[u8; 2]>::try_from(l).ok())
            .map_or(0, |l| usize::from(u16::from_be_bytes(l)));
        if h.first() == Some(&dissectors::tls::content_type::HANDSHAKE) {
            carried += rlen;
        }
        pos += 5 + rlen;
    }
    from..pos.max(from + len.min(1))
}

/// The private TCP reassembly of the selected flow.
#[derive(Default)]
struct TcpSide {
    reassembler: TcpReassembler,
    budget: Option<ReassemblyBudget>,
    /// The originator of the current connection (its streams are Dir::Orig).
    orig: Option<SocketAddr>,
    /// The other end.
    resp: Option<SocketAddr>,
    last_ts: Ts,
    data_seen: bool,
}

/// Appends delivered bytes to the sender's stream.
struct Collect<'s> {
    st: &'s mut State,
    ends: (SocketAddr, SocketAddr),
}

impl StreamConsumer for Collect<'_> {
    fn on_data(&mut self, dir: Dir, _ts: Ts, data: &[u8]) {
        let who = if dir == Dir::Orig {
            self.ends.0
        } else {
            self.ends.1
        };
        self.st.streams.entry(who).or_default().push(data);
    }
    fn on_gap(&mut self, dir: Dir, _ts: Ts, _missing: u64) {
        let who = if dir == Dir::Orig {
            self.ends.0
        } else {
            self.ends.1
        };
        let s = self.st.streams.entry(who).or_default();
        s.broken_at.get_or_insert(s.end());
    }
    fn on_end(&mut self, _dir: Dir, _ts: Ts, _how: StreamEnd) {}
}

impl TcpSide {
    fn segment(
        &mut self,
        st: &mut State,
        src: SocketAddr,
        ts: Ts,
        seg: &crate::decode::TcpSegment<'_>,
    ) {
        let syn_only = seg.flags & tcp_flags::SYN != 0 && seg.flags & tcp_flags::ACK == 0;
        // A new connection on the same endpoints starts new streams (as the flow table
        // starts a new flow).
        if syn_only && self.data_seen {
            self.finish(st);
            *self = TcpSide::default();
            st.streams.clear();
        }
        if self.orig.is_none() && self.resp.is_none() {
            // The SYN-ACK's sender is the responder; otherwise the first sender originates.
            let synack = seg.flags & tcp_flags::SYN != 0 && seg.flags & tcp_flags::ACK != 0;
            if synack {
                self.resp = Some(src);
            } else {
                self.orig = Some(src);
            }
        }
        let dir = if self.orig == Some(src) {
            Dir::Orig
        } else if self.resp == Some(src) {
            Dir::Resp
        } else if self.orig.is_some() {
            self.resp = Some(src);
            Dir::Resp
        } else {
            self.orig = Some(src);
            Dir::Orig
        };
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let ends = (self.orig.unwrap_or(unknown), self.resp.unwrap_or(unknown));
        self.data_seen |= !seg.payload.is_empty();
        self.last_ts = ts;
        let budget = self
            .budget
            .get_or_insert_with(|| ReassemblyBudget::new(2 * MAX_STREAM_BYTES));
        self.reassembler
            .segment(dir, ts, seg, budget, &mut Collect { st, ends });
    }

    /// Delivers what the reassembler still holds (the engine does the same at flow end).
    fn finish(&mut self, st: &mut State) {
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let ends = (self.orig.unwrap_or(unknown), self.resp.unwrap_or(unknown));
        if let Some(budget) = &mut self.budget {
            self.reassembler.finish(
                self.last_ts,
                StreamEnd::Timeout,
                budget,
                &mut Collect { st, ends },
            );
        }
    }
}

/// The engine's consumer: hands every message of the flow to the shared state.
struct Recorder(Rc<RefCell<State>>);

impl FlowConsumer for Recorder {
    fn flow(&mut self, _record: &FlowRecord, _digits: u8) {}
    fn message(&mut self, ctx: &MsgCtx, msg: &Message) {
        let mut st = self.0.borrow_mut();
        st.message(ctx, msg);
        if st.found.is_none() && ctx.ts.since(st.ts) > SLACK_NS {
            if let Some(f) = st.fallback.take() {
                st.found = Some(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_capture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/sim/one-nat/capture.pcapng.gz")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The one-nat call's signalling connection, alice's client ↔ its super node
    /// (`p2ptrace analyze` uid C8TNcGGAYbil).
    fn signalling<'a>(
        path: &'a Path,
        from: &str,
        ts: i64,
        t: &'a str,
        i: usize,
    ) -> MessageQuery<'a> {
        MessageQuery {
            capture: path,
            endpoints: (addr("100.64.0.1:42788"), addr("203.0.113.1:33033")),
            proto: 6,
            from: addr(from),
            ts: Ts(ts),
            protocol: "skylark",
            msg_type: t,
            index_in_flow: i,
        }
    }

    #[test]
    fn tcp_message_is_cut_from_the_reassembled_stream() {
        let path = sim_capture();
        let q = signalling(
            &path,
            "100.64.0.1:42788",
            1_767_225_617_106_907_578,
            "invite",
            8,
        );
        let e = extract(&q).unwrap();
        assert!(!e.cut);
        assert_eq!(e.bytes.len(), 104);
        let (view, used) = dissectors::skylark::parse_frame(&e.bytes).unwrap();
        assert_eq!((view.msg_type().name(), used), ("invite", 104));
    }

    #[test]
    fn two_messages_in_one_segment_are_told_apart_by_index() {
        let path = sim_capture();
        let ts = 1_767_225_617_232_435_038;
        for (t, i, len) in [("ringing", 9, 20), ("accept", 10, 38)] {
            let e = extract(&signalling(&path, "203.0.113.1:33033", ts, t, i)).unwrap();
            let (view, _) = dissectors::skylark::parse_frame(&e.bytes).unwrap();
            assert_eq!((view.msg_type().name(), e.bytes.len()), (t, len));
        }
    }

    #[test]
    fn udp_message_is_its_datagram() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap");
        let q = MessageQuery {
            capture: &path,
            endpoints: (addr("74.242.75.7:48995"), addr("99.28.249.59:53")),
            proto: 17,
            from: addr("99.28.249.59:53"),
            ts: Ts(1_700_000_001_735_310_000),
            protocol: "dns",
            msg_type: "response",
            index_in_flow: 1,
        };
        let e = extract(&q).unwrap();
        assert_eq!(e.bytes.len(), 52);
        assert!(dissectors::dns::DnsView::parse(&e.bytes).is_ok());
    }

    #[test]
    fn stun_answer_decodes_to_the_mapped_address_the_analysis_reported() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap");
        let q = MessageQuery {
            capture: &path,
            endpoints: (addr("92.5.180.25:33445"), addr("62.227.8.118:3478")),
            proto: 17,
            from: addr("62.227.8.118:3478"),
            ts: Ts(1_700_000_007_919_875_000),
            protocol: "stun",
            msg_type: "binding-success",
            index_in_flow: 1,
        };
        let e = extract(&q).unwrap();
        assert_eq!(e.bytes.len(), 32);
        let fs = dissectors::fields::fields("stun", &e.bytes);
        let x = fs.iter().find(|f| f.name == "XOR-MAPPED-ADDRESS").unwrap();
        assert_eq!(
            (x.value.as_str(), x.range.clone()),
            ("92.5.180.25:33445", 20..32)
        );
    }

    #[test]
    fn http_request_is_its_head_and_body() {
        let path = sim_capture();
        let q = MessageQuery {
            capture: &path,
            endpoints: (addr("100.64.0.1:42786"), addr("198.51.100.80:80")),
            proto: 6,
            from: addr("198.51.100.80:80"),
            ts: Ts(1_767_225_600_148_879_039),
            protocol: "http",
            msg_type: "response",
            index_in_flow: 1,
        };
        let e = extract(&q).unwrap();
        assert_eq!(e.bytes.len(), 97);
        assert!(e.bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    /// The last message of a 6-hour simulation (866 messages into its flow), timed:
    /// `cargo test --release --lib tui::payload -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn late_message_of_a_long_capture() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/sim/phone-home/capture.pcapng.gz");
        let q = MessageQuery {
            capture: &path,
            endpoints: (addr("100.64.0.3:38296"), addr("203.0.113.2:33033")),
            proto: 6,
            from: addr("203.0.113.2:33033"),
            ts: Ts(1_767_247_199_189_156_143),
            protocol: "skylark",
            msg_type: "sn-refresh-ack",
            index_in_flow: 865,
        };
        let t = std::time::Instant::now();
        let e = extract(&q).unwrap();
        println!("extracted {} bytes in {:?}", e.bytes.len(), t.elapsed());
        assert_eq!(e.bytes.len(), 20);
    }

    #[test]
    fn missing_message_and_missing_file_are_errors() {
        let path = sim_capture();
        let q = signalling(
            &path,
            "100.64.0.1:42788",
            1_767_225_617_106_907_579,
            "invite",
            8,
        );
        let err = extract(&q).unwrap_err();
        assert!(matches!(err, PayloadError::NotFound { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("no skylark invite from 100.64.0.1:42788")
        );
        let nowhere = Path::new("/nonexistent/capture.pcap");
        let q = signalling(nowhere, "100.64.0.1:42788", 0, "invite", 0);
        assert!(matches!(extract(&q), Err(PayloadError::Capture(_))));
    }
}
