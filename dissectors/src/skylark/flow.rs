//! Registry glue (PROTOCOL.md §2.1, §2.3): per-flow Skylark state driving the codec. UDP: one
//! message per datagram, parsed laxly so malformed or cut messages become reported rows.
//! TCP: whole frames from the in-order stream; an incomplete frame returns `needed`; garbage
//! is skipped up to [`MAX_RESYNC_SCAN`] bytes (reported as one `resync` row), beyond that the
//! dissector reports an error.
//!
//! Guarantees: no panic; per-flow state is nothing over UDP, two counters over TCP. Must not: buffer stream bytes (the
//! caller keeps what was not consumed) or classify beyond the spec's class of each message.

use super::codec::{LaxMessage, MessageView};
use super::framing::{MAX_RESYNC_SCAN, Resync, frame_len, known_family, plausible_prefix, resync};
use super::header::{Family, HEADER_LEN, Header};
use super::messages::{ErrorCode, FieldId, MsgType};
use super::object::{ObjectsView, ValueView};
use super::repeat;
use crate::DissectError;
use crate::registry::{
    CallInfo, CallSignal, FlowDissector, Message, Probe, Progress, Side, Status, Transport,
};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest `detail` text of a row, in bytes.
pub const MAX_DETAIL_LEN: usize = 128;

/// Creates the per-flow state (the descriptor's `new_flow`): none over UDP (a zero-sized
/// box allocates nothing, and nearly every flow of a Skylark overlay is a short UDP one),
/// two counters over TCP.
pub fn new_flow(transport: Transport) -> Box<dyn FlowDissector> {
    match transport {
        Transport::Udp => Box::new(SkylarkDatagrams),
        Transport::Tcp => Box::new(SkylarkStream::default()),
    }
}

/// Skylark over UDP (PROTOCOL.md §2.1): one message per datagram, nothing kept between them
/// (a datagram shaped like a recent one takes its row: `repeat.rs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SkylarkDatagrams;

impl FlowDissector for SkylarkDatagrams {
    fn parse(&mut self, _side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        if let Some(row) = repeat::row(data) {
            out.push(row);
            return parsed(data);
        }
        let lax = MessageView::parse_lax(data);
        if lax.header.is_none() {
            let error = lax
                .stop
                .map_or(DissectError::Invalid { what: "header" }, |s| s.reason);
            return Progress::Error {
                consumed: data.len(),
                error,
            };
        }
        datagram_row(&lax, data, out)
    }

    /// One parse instead of the probe's header check and then the parse's: the lax parse's
    /// header is the one the probe checks (PROTOCOL.md §2.5: valid, of a known family, as
    /// long as the datagram), and nothing is kept between datagrams. A datagram shaped like
    /// a remembered one is sure: only sure ones are remembered, and the shape covers the
    /// family and length.
    fn parse_datagram_if_sure(
        &mut self,
        _probe: fn(Transport, Side, &[u8]) -> Probe,
        _side: Side,
        _ts_ns: i64,
        data: &[u8],
        out: &mut Vec<Message>,
    ) -> Option<Progress> {
        if let Some(row) = repeat::row(data) {
            out.push(row);
            return Some(parsed(data));
        }
        let lax = MessageView::parse_lax(data);
        let sure = lax.header.is_some_and(|h| h.total_len() == data.len()) && known_family(data);
        sure.then(|| datagram_row(&lax, data, out))
    }
}

/// The row of a datagram whose header parsed, its shape remembered if it is one
/// [`SkylarkDatagrams::parse_datagram_if_sure`] is sure of (of a known family).
fn datagram_row(lax: &LaxMessage<'_>, data: &[u8], out: &mut Vec<Message>) -> Progress {
    let msg = row(lax, data.len());
    if let (Some(h), Some(super::codec::BodyView::Objects(o))) = (lax.header, lax.body) {
        if h.total_len() == data.len() && known_family(data) {
            repeat::note(data, &h, o, &msg);
        }
    }
    out.push(msg);
    parsed(data)
}

/// A whole datagram taken.
fn parsed(data: &[u8]) -> Progress {
    Progress::Parsed {
        consumed: data.len(),
        needed: None,
    }
}

/// Skylark over TCP (PROTOCOL.md §2.3): per side, garbage skipped since the last good frame.
#[derive(Clone, Debug, Default)]
pub struct SkylarkStream {
    skipped_orig: usize,
    skipped_resp: usize,
}

impl SkylarkStream {
    fn skipped(&mut self, side: Side) -> &mut usize {
        match side {
            Side::Orig => &mut self.skipped_orig,
            Side::Resp => &mut self.skipped_resp,
        }
    }

    fn parse_tcp(&mut self, side: Side, data: &[u8], out: &mut Vec<Message>) -> Progress {
        let mut pos = 0usize;
        loop {
            let Some(rest) = data.get(pos..) else {
                return Progress::Parsed {
                    consumed: data.len(),
                    needed: None,
                };
            };
            if rest.is_empty() {
                return Progress::Parsed {
                    consumed: pos,
                    needed: None,
                };
            }
            match frame_len(rest) {
                Ok(total) => {
                    let Some(frame) = rest.get(..total) else {
                        return Progress::Parsed {
                            consumed: pos,
                            needed: Some(total - rest.len()),
                        };
                    };
                    self.flush_skipped(side, out);
                    out.push(row(&MessageView::parse_lax(frame), frame.len()));
                    pos += total;
                }
                Err(DissectError::Truncated { needed }) if plausible_prefix(rest) => {
                    return Progress::Parsed {
                        consumed: pos,
                        needed: Some(needed),
                    };
                }
                Err(_) => {
                    let step = match resync(rest) {
                        Resync::Found(off) => off,
                        Resync::NeedMore(off) => {
                            *self.skipped(side) += off;
                            if let Some(p) = self.give_up(side, pos + off) {
                                return p;
                            }
                            return Progress::Parsed {
                                consumed: pos + off,
                                needed: Some(HEADER_LEN - (rest.len() - off)),
                            };
                        }
                        Resync::NotFound { scanned } => scanned.max(1),
                    };
                    *self.skipped(side) += step;
                    pos += step;
                    if let Some(p) = self.give_up(side, pos) {
                        return p;
                    }
                }
            }
        }
    }

    /// PROTOCOL.md §2.3: more than `MAX_RESYNC_SCAN` bytes without a header ends the stream.
    fn give_up(&mut self, side: Side, consumed: usize) -> Option<Progress> {
        let skipped = *self.skipped(side);
        if skipped <= MAX_RESYNC_SCAN {
            return None;
        }
        *self.skipped(side) = 0;
        Some(Progress::Error {
            consumed,
            error: DissectError::TooLarge {
                what: "bytes skipped resynchronising",
                value: skipped as u64,
                max: MAX_RESYNC_SCAN as u64,
            },
        })
    }

    /// Reports skipped garbage as one malformed `resync` row before the next good frame.
    fn flush_skipped(&mut self, side: Side, out: &mut Vec<Message>) {
        let skipped = self.skipped(side);
        if *skipped == 0 {
            return;
        }
        out.push(Message {
            protocol: "skylark",
            msg_type: Cow::Borrowed("resync"),
            type_code: None,
            txn_id: None,
            call_id: None,
            len: u32::try_from(*skipped).unwrap_or(u32::MAX),
            status: Status::Malformed,
            class: None,
            detail: Some(format!("skipped {} bytes", *skipped)),
            call: None,
        });
        *skipped = 0;
    }
}

impl FlowDissector for SkylarkStream {
    fn parse(&mut self, side: Side, _ts_ns: i64, data: &[u8], out: &mut Vec<Message>) -> Progress {
        self.parse_tcp(side, data, out)
    }

    fn on_gap(&mut self, _side: Side, _missing: u64) {
        // Nothing to drop: frames are never buffered here. The bytes after the gap start
        // mid-frame, fail the header check and go through `resync`.
    }
}

fn push_detail(detail: &mut String, text: &str) {
    // Fast path: printable ASCII that fits is copied whole (same result as the loop below).
    if detail.len() + text.len() <= MAX_DETAIL_LEN
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        detail.push_str(text);
        return;
    }
    for c in text.chars() {
        if detail.len() + c.len_utf8() > MAX_DETAIL_LEN {
            break;
        }
        detail.push(if c.is_control() { '?' } else { c });
    }
}

/// One `messages.csv` row from a lax parse of `seen` bytes.
fn row(lax: &LaxMessage<'_>, seen: usize) -> Message {
    let Some(header) = lax.header else {
        return Message {
            protocol: "skylark",
            msg_type: Cow::Borrowed("unknown"),
            type_code: None,
            txn_id: None,
            call_id: None,
            len: u32::try_from(seen).unwrap_or(u32::MAX),
            status: Status::Malformed,
            class: None,
            detail: None,
            call: None,
        };
    };
    let status = match &lax.stop {
        None => Status::Complete,
        Some(s) if matches!(s.reason, DissectError::Truncated { .. }) => Status::Truncated,
        Some(_) => Status::Malformed,
    };
    let (objects, frame) = match lax.body {
        Some(super::codec::BodyView::Objects(o)) => (Some(o), None),
        Some(super::codec::BodyView::Media(m)) => (None, Some(m)),
        None => (None, None),
    };
    let media = header.msg_type.is_media();
    let call_id = if media {
        Some(u64::from(header.txn_id))
    } else {
        objects
            .and_then(|o| o.get_u32(FieldId::CallId))
            .map(u64::from)
    };
    let mut detail = String::new();
    if header.flags.is_error() {
        let code = objects
            .and_then(|o| o.get_u32(FieldId::ErrorCode))
            .unwrap_or(0);
        let _ = write!(detail, "error={}", ErrorCode::from(code).name());
    }
    if let Some(o) = objects {
        let named = match header.msg_type {
            MsgType::Search | MsgType::SearchResult | MsgType::SearchReferral => {
                o.get_str(FieldId::Target)
            }
            MsgType::AuthHello | MsgType::AuthProof | MsgType::SnRegister => {
                o.get_str(FieldId::User)
            }
            MsgType::Invite => o.get_str(FieldId::Callee),
            _ => None,
        };
        if let Some(name) = named {
            if !detail.is_empty() {
                detail.push(' ');
            }
            push_detail(&mut detail, name);
        }
        // A search can find a user who is offline (§8.4: the entry outlives the session);
        // lookups.csv tells that apart from an online answer (§5.3 status 0).
        if header.msg_type == MsgType::SearchResult {
            let status = match o.get(FieldId::Entry).map(|e| e.value) {
                Some(ValueView::List(entry)) => entry.get_u32(FieldId::Status),
                _ => None,
            };
            if status == Some(0) {
                push_detail(&mut detail, " status=offline");
            }
        }
    }
    if let (Some(stop), false) = (&lax.stop, status == Status::Complete) {
        if !detail.is_empty() {
            detail.push(' ');
        }
        push_detail(
            &mut detail,
            &format!("stop@{}: {}", stop.offset, stop.reason),
        );
    }
    let call = match (frame, objects) {
        (Some(m), _) => Some(CallInfo::Media {
            seq: m.seq,
            timestamp: m.timestamp,
        }),
        (None, Some(o)) if header.msg_type.family() == Family::Signalling => {
            Some(CallInfo::Signal(Box::new(signal(o))))
        }
        _ => None,
    };
    Message {
        status,
        detail: (!detail.is_empty()).then_some(detail),
        call,
        ..plain_row(&header, call_id)
    }
}

/// The row of a whole message without detail or call fields: what [`row`] gives for one
/// whose header is `header` and whose body names `call_id`.
pub(super) fn plain_row(header: &Header, call_id: Option<u64>) -> Message {
    let name = match header.msg_type {
        MsgType::Unknown(_) => "unknown",
        t => t.name(),
    };
    Message {
        protocol: "skylark",
        msg_type: Cow::Borrowed(name),
        type_code: header.msg_type.type_code(),
        txn_id: (!header.msg_type.is_media()).then_some(u64::from(header.txn_id)),
        call_id,
        len: u32::try_from(header.total_len()).unwrap_or(u32::MAX),
        status: Status::Complete,
        class: header.msg_type.class(),
        detail: None,
        call: None,
    }
}

/// The typed call fields of a signalling message (PROTOCOL.md §5.1, family 3).
fn signal(o: ObjectsView<'_>) -> CallSignal {
    let text = |id| o.get_str(id).map(str::to_string);
    let members = match o.get(FieldId::Members).map(|m| m.value) {
        Some(ValueView::List(list)) => list
            .iter()
            .filter_map(|item| match item.value {
                ValueView::Str(u) if item.id == FieldId::User => Some(u.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    CallSignal {
        caller: text(FieldId::Caller),
        callee: text(FieldId::Callee),
        user: text(FieldId::User),
        mixer: text(FieldId::Mixer),
        members,
        media_addr: o.get_addr(FieldId::MediaAddr),
        relay_addr: o.get_addr(FieldId::RelayAddr),
        frame_ms: o.get_u32(FieldId::FrameMs),
        error_code: o.get_u32(FieldId::ErrorCode),
        reason: text(FieldId::Reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skylark::{Flags, Media, Message as Wire, Object};

    fn nat_ping() -> Wire {
        Wire::new(
            MsgType::NatPing,
            Flags::REQUEST,
            1,
            vec![
                Object::u64(FieldId::NodeId, 1),
                Object::u32(FieldId::Seq, 1),
            ],
        )
    }

    /// A message of type `t` with its mandatory fields and the optional ones `optional`
    /// picks; the values of `u32`, `u64` and `addr` fields from `v`, but `call-id` and
    /// `error-code` (which rows read) from `read`; other values fixed.
    fn shaped(
        t: MsgType,
        flags: Flags,
        txn: u32,
        (v, read): (u64, u32),
        optional: u16,
    ) -> Option<Vec<u8>> {
        use crate::skylark::messages::Need;
        use crate::skylark::object::Kind;
        let objects = t
            .fields()
            .iter()
            .enumerate()
            .filter(|&(i, &(_, need))| need == Need::Mandatory || optional >> (i % 16) & 1 == 1)
            .map(|(_, &(f, _))| match (f, f.kind()) {
                (FieldId::CallId | FieldId::ErrorCode, _) => Object::u32(f, read),
                (_, Some(Kind::U32)) => Object::u32(f, v as u32),
                (_, Some(Kind::U64)) => Object::u64(f, v),
                (_, Some(Kind::Addr)) => Object::addr(
                    f,
                    std::net::SocketAddr::from(([10, 0, (v >> 8) as u8, v as u8], v as u16)),
                ),
                (_, Some(Kind::Str)) => Object::str(f, "a"),
                (_, Some(Kind::Blob)) => Object::blob(f, &[1]),
                _ => Object::list(f, vec![]),
            })
            .collect();
        Wire::new(t, flags, txn, objects).to_bytes().ok()
    }

    /// The row of a full parse, whatever is remembered.
    fn parsed_row(d: &[u8]) -> Message {
        row(&MessageView::parse_lax(d), d.len())
    }

    proptest::proptest! {
        /// A datagram with the shape of a remembered one (every type, both directions, an
        /// error flag, optional fields) gets the row a parse gives: when only varying values
        /// differ, and whatever bytes are changed beyond them (then it is parsed).
        #[test]
        fn a_datagram_shaped_like_a_remembered_one_gets_the_row_a_parse_gives(
            t in proptest::sample::select(MsgType::ALL.to_vec()),
            flags in proptest::sample::select(vec![
                Flags::REQUEST, Flags::RESP, Flags::from_bits(Flags::RESPONSE | Flags::ERROR),
            ]),
            optional in proptest::prelude::any::<u16>(),
            (txn1, txn2, v1, v2) in proptest::prelude::any::<(u32, u32, u64, u64)>(),
            (read1, read2) in (0..3u32, 0..3u32),
            flips in proptest::collection::vec((0..48usize, 1..=255u8), 0..3),
            fix_check in proptest::prelude::any::<bool>(),
        ) {
            let (Some(a), Some(mut b)) =
                (shaped(t, flags, txn1, (v1, read1), optional), shaped(t, flags, txn2, (v2, read2), optional))
            else {
                return Ok(());
            };
            let mut out = Vec::new();
            datagram_row(&MessageView::parse_lax(&a), &a, &mut out);
            let first = parsed_row(&a);
            let remembered = first.status == Status::Complete
                && first.detail.is_none()
                && first.call.is_none()
                && a.len() <= 48
                && known_family(&a);
            if flips.is_empty() {
                let got = repeat::row(&b);
                let same_reads = first.call_id == parsed_row(&b).call_id;
                proptest::prop_assert_eq!(got.is_some(), remembered && same_reads);
                proptest::prop_assert_eq!(got.unwrap_or_else(|| parsed_row(&b)), parsed_row(&b));
            }
            for (at, x) in flips {
                if let Some(byte) = b.get_mut(at) {
                    *byte ^= x;
                }
            }
            if fix_check {
                crate::skylark::header::Packet::new_unchecked(&mut b[..]).fill_check();
            }
            if let Some(got) = repeat::row(&b) {
                proptest::prop_assert_eq!(got, parsed_row(&b));
            }
        }
    }

    fn parse_udp(m: &Wire) -> Message {
        let mut buf = Vec::new();
        m.emit(&mut buf).unwrap();
        let mut out = Vec::new();
        SkylarkDatagrams.parse(Side::Orig, 0, &buf, &mut out);
        out.pop().unwrap()
    }

    #[test]
    fn search_result_for_an_offline_user_says_so() {
        let result = |status| {
            Wire::new(
                MsgType::SearchResult,
                Flags::RESP,
                6,
                vec![
                    Object::str(FieldId::Target, "bob"),
                    Object::list(
                        FieldId::Entry,
                        vec![
                            Object::str(FieldId::User, "bob"),
                            Object::u32(FieldId::Status, status),
                        ],
                    ),
                ],
            )
        };
        assert_eq!(
            parse_udp(&result(0)).detail.as_deref(),
            Some("bob status=offline")
        );
        assert_eq!(parse_udp(&result(1)).detail.as_deref(), Some("bob"));
    }

    #[test]
    fn call_messages_carry_typed_fields() {
        let invite = Wire::new(
            MsgType::Invite,
            Flags::REQUEST,
            9,
            vec![
                Object::u32(FieldId::CallId, 77),
                Object::str(FieldId::Caller, "alice"),
                Object::str(FieldId::Callee, "bob"),
                Object::addr(FieldId::MediaAddr, "10.0.0.1:5000".parse().unwrap()),
                Object::list(FieldId::Codecs, vec![Object::u32(FieldId::Codec, 1)]),
                Object::u32(FieldId::FrameMs, 30),
                Object::list(
                    FieldId::Members,
                    vec![
                        Object::str(FieldId::User, "alice"),
                        Object::str(FieldId::User, "carol"),
                    ],
                ),
                Object::str(FieldId::Mixer, "bob"),
            ],
        );
        let row = parse_udp(&invite);
        assert_eq!(row.call_id, Some(77));
        let Some(CallInfo::Signal(s)) = row.call else {
            panic!("{row:?}")
        };
        assert_eq!(
            (s.caller.as_deref(), s.callee.as_deref()),
            (Some("alice"), Some("bob"))
        );
        assert_eq!(s.mixer.as_deref(), Some("bob"));
        assert_eq!(s.members, ["alice", "carol"]);
        assert_eq!(s.media_addr, Some("10.0.0.1:5000".parse().unwrap()));
        assert_eq!(s.frame_ms, Some(30));

        let voice = Wire::media(
            MsgType::Voice,
            77,
            Media {
                seq: 65535,
                timestamp: 4_294_967_000,
                codec: 1,
                redundancy: Vec::new(),
                payload: vec![0; 67],
            },
        );
        let row = parse_udp(&voice);
        assert_eq!(row.call_id, Some(77));
        assert_eq!(
            row.call,
            Some(CallInfo::Media {
                seq: 65535,
                timestamp: 4_294_967_000
            })
        );

        // Other families carry nothing typed.
        let ping = nat_ping();
        assert_eq!(parse_udp(&ping).call, None);
    }

    #[test]
    fn one_look_takes_what_the_probe_is_sure_of_and_leaves_the_rest() {
        let ping = nat_ping();
        let mut valid = Vec::new();
        ping.emit(&mut valid).unwrap();
        // A reserved family (6) under a valid header check (PROTOCOL.md §2.5: Maybe).
        let mut reserved = valid.clone();
        let mut packet = crate::skylark::Packet::new_unchecked(&mut reserved[..]);
        packet.set_msg_type(MsgType::from(0x0601));
        packet.fill_check();
        let cut = valid[..valid.len() - 1].to_vec();
        let trailing = [valid.as_slice(), &[0]].concat();
        let probe = crate::skylark::probe::probe;
        for (bytes, sure) in [
            (&valid, true),
            (&reserved, false),
            (&cut, false),
            (&trailing, false),
        ] {
            assert_eq!(probe(Transport::Udp, Side::Orig, bytes) == Probe::Yes, sure);
            let (mut once, mut parsed) = (Vec::new(), Vec::new());
            let got =
                SkylarkDatagrams.parse_datagram_if_sure(probe, Side::Orig, 0, bytes, &mut once);
            let want = SkylarkDatagrams.parse(Side::Orig, 0, bytes, &mut parsed);
            if sure {
                assert_eq!((got, once), (Some(want), parsed));
            } else {
                assert_eq!((got, once.len()), (None, 0), "{bytes:02x?}");
            }
        }
    }
}
