//! Whole Skylark messages (PROTOCOL.md §3–§7): the zero-copy [`MessageView`] with its strict
//! [`MessageView::parse`] (for the peer: exact length, every bound, every schema rule) and
//! lax [`MessageView::parse_lax`] (for the analyzer: whatever parsed plus a [`Stop`] saying
//! where and why it stopped), and the owned [`Message`] with the same field names, `emit`
//! and `buffer_len`. [`MessageView::render`] is the text form the test vectors of
//! PROTOCOL.md §13 are written in.
//!
//! Guarantees: no panic on any input; views never allocate; whatever `emit` writes, the
//! structural parse accepts. Must not: frame TCP streams (see `framing`) or keep state.

use super::header::{Flags, HEADER_LEN, Header, Packet, VERSION};
use super::messages::{Dir, ERROR_FIELDS, FieldId, MsgType, Need};
use super::object::{self, Object, ObjectsView, Value, ValueView};
use super::{MAX_BODY_LEN, MAX_FRAME_LEN, MAX_REDUNDANCY};
use crate::DissectError;
use nom::Parser;
use nom::number::complete::{be_u8, be_u16, be_u32};
use std::fmt::Write as _;

/// PROTOCOL.md §7.1: sequence, timestamp, codec and redundancy count.
pub const MEDIA_HEADER_LEN: usize = 8;

/// Where and why a lax parse stopped; `offset` counts from the start of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub offset: usize,
    pub reason: DissectError,
}

/// A voice frame body borrowing the message bytes (PROTOCOL.md §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaView<'a> {
    pub seq: u16,
    pub timestamp: u32,
    pub codec: u8,
    redundancy_count: u8,
    redundancy_bytes: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> MediaView<'a> {
    /// The redundant frames, newest first: item `i` (0-based) carries frame `seq - 1 - i`.
    pub fn redundancy(&self) -> RedundancyIter<'a> {
        RedundancyIter {
            rest: self.redundancy_bytes,
            left: self.redundancy_count,
        }
    }

    pub fn redundancy_count(&self) -> u8 {
        self.redundancy_count
    }

    pub fn to_owned_media(&self) -> Media {
        Media {
            seq: self.seq,
            timestamp: self.timestamp,
            codec: self.codec,
            redundancy: self.redundancy().map(<[u8]>::to_vec).collect(),
            payload: self.payload.to_vec(),
        }
    }
}

/// Iterator over the redundant frames of a validated [`MediaView`].
#[derive(Clone, Debug)]
pub struct RedundancyIter<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for RedundancyIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let (len, rest) = self.rest.split_first()?;
        let (frame, rest) = rest.split_at_checked(usize::from(*len))?;
        self.rest = rest;
        Some(frame)
    }
}

/// A message body: TLV objects, or the compact media layout for the media family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyView<'a> {
    Objects(ObjectsView<'a>),
    Media(MediaView<'a>),
}

/// A structurally valid message borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageView<'a> {
    pub header: Header,
    pub body: BodyView<'a>,
}

/// The result of [`MessageView::parse_lax`]: what parsed, and the stop if it did not all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaxMessage<'a> {
    /// `None` only when the header itself is short or invalid.
    pub header: Option<Header>,
    /// The valid leading part of the body (every whole object before the stop).
    pub body: Option<BodyView<'a>>,
    pub stop: Option<Stop>,
}

impl LaxMessage<'_> {
    pub fn is_complete(&self) -> bool {
        self.stop.is_none()
    }
}

/// An owned voice frame body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Media {
    pub seq: u16,
    pub timestamp: u32,
    pub codec: u8,
    /// Redundant frames, newest first (at most [`MAX_REDUNDANCY`]).
    pub redundancy: Vec<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// An owned message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Objects(Vec<Object>),
    Media(Media),
}

/// An owned message; `emit` writes the bytes `parse` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub msg_type: MsgType,
    pub flags: Flags,
    /// Transaction id; for media messages the call id (PROTOCOL.md §7.1).
    pub txn_id: u32,
    pub body: Body,
}

fn media_header(i: &[u8]) -> nom::IResult<&[u8], (u16, u32, u8, u8), DissectError> {
    (be_u16, be_u32, be_u8, be_u8).parse(i)
}

/// Parses a media body; `missing` > 0 when the capture cut the message. Returns the view
/// (with whatever parsed) and the stop, offsets relative to the message.
fn parse_media(body: &[u8], missing: usize) -> (Option<MediaView<'_>>, Option<Stop>) {
    let at = |off: usize, reason| {
        Some(Stop {
            offset: HEADER_LEN + off,
            reason,
        })
    };
    let Ok((rest, (seq, timestamp, codec, count))) = media_header(body) else {
        let reason = if missing > 0 {
            DissectError::Truncated { needed: missing }
        } else {
            DissectError::Invalid {
                what: "media header",
            }
        };
        return (None, at(0, reason));
    };
    if usize::from(count) > MAX_REDUNDANCY {
        let reason = DissectError::TooLarge {
            what: "redundancy count",
            value: u64::from(count),
            max: MAX_REDUNDANCY as u64,
        };
        return (None, at(7, reason));
    }
    let mut cursor = rest;
    for _ in 0..count {
        let off = body.len() - cursor.len();
        let frame = cursor
            .split_first()
            .and_then(|(len, r)| r.get(usize::from(*len)..));
        match frame {
            Some(r) => cursor = r,
            None if missing > 0 => {
                return (None, at(off, DissectError::Truncated { needed: missing }));
            }
            None => {
                let reason = DissectError::Invalid {
                    what: "redundant frame length",
                };
                return (None, at(off, reason));
            }
        }
    }
    let red_len = rest.len() - cursor.len();
    let redundancy_bytes = rest.get(..red_len).unwrap_or(&[]);
    let view = MediaView {
        seq,
        timestamp,
        codec,
        redundancy_count: count,
        redundancy_bytes,
        payload: cursor,
    };
    let payload_at = body.len() - cursor.len();
    if cursor.len() > MAX_FRAME_LEN {
        let reason = DissectError::TooLarge {
            what: "frame length",
            value: cursor.len() as u64,
            max: MAX_FRAME_LEN as u64,
        };
        return (None, at(payload_at, reason));
    }
    if missing > 0 {
        return (
            Some(view),
            at(body.len(), DissectError::Truncated { needed: missing }),
        );
    }
    (Some(view), None)
}

/// PROTOCOL.md §3.4 rule 10, §4.4 and §5.2, for known types: the flags fit the type, every
/// known field has its one kind at every depth (`wrong_kind`, found by the walk), no field
/// twice, every mandatory field present. `exact_ids`: the top-level ids when the walk found
/// them exact ([`object::Walked::ids_exact`]).
fn check_schema(
    header: &Header,
    objects: ObjectsView<'_>,
    wrong_kind: Option<usize>,
    exact_ids: Option<u64>,
) -> Result<(), Stop> {
    let end = header.total_len();
    let invalid = |offset, what| {
        Err(Stop {
            offset,
            reason: DissectError::Invalid { what },
        })
    };
    let Some(dir) = header.msg_type.dir() else {
        return Ok(());
    };
    let fields = if header.flags.is_error() {
        if dir != Dir::Request {
            return invalid(1, "error flag on a non-request type");
        }
        ERROR_FIELDS
    } else {
        if header.flags.is_response() != (dir == Dir::Response) {
            return invalid(1, "response flag");
        }
        header.msg_type.fields()
    };
    if header.msg_type.is_media() {
        return Ok(());
    }
    if let Some(offset) = wrong_kind {
        return invalid(offset, "field kind");
    }
    // The fields present, as id bits (every known id is below 64, §4.4). The usual body (no
    // id twice, none above 63) has them from the walk already; any other is walked again
    // to find a field twice, at its offset.
    let bit = |f: FieldId| object::id_bit(u8::from(f));
    let present = match exact_ids {
        Some(ids) => ids,
        None => {
            let mut seen = 0u64;
            let mut offset = HEADER_LEN;
            for o in objects.raw() {
                if fields.iter().any(|(f, _)| *f == o.id) {
                    if seen & bit(o.id) != 0 {
                        return invalid(offset, "duplicate field");
                    }
                    seen |= bit(o.id);
                }
                offset += o.wire_len();
            }
            seen
        }
    };
    if fields
        .iter()
        .any(|&(f, need)| need == Need::Mandatory && present & bit(f) == 0)
    {
        return invalid(end, "missing mandatory field");
    }
    Ok(())
}

impl<'a> MessageView<'a> {
    /// Strict parse of one whole message (a UDP datagram, or a TCP frame from
    /// [`super::framing::parse_frame`]): the header rules, exact length, every bound, and
    /// the schema of known types. Unknown types parse with their objects.
    pub fn parse(bytes: &'a [u8]) -> Result<MessageView<'a>, DissectError> {
        let lax = MessageView::parse_lax(bytes);
        match (lax.stop, lax.header, lax.body) {
            (Some(stop), _, _) => Err(stop.reason),
            (None, Some(header), Some(body)) => Ok(MessageView { header, body }),
            _ => Err(DissectError::Invalid { what: "message" }),
        }
    }

    /// Lax parse for the analyzer: never fails, reports what parsed and where it stopped.
    /// A datagram shorter than the header's length is `Truncated { needed }`; a longer one
    /// stops at the header's end with `Invalid("trailing bytes")` (the message is whole).
    pub fn parse_lax(bytes: &'a [u8]) -> LaxMessage<'a> {
        let packet = Packet::new_unchecked(bytes);
        let header = match packet.header() {
            Ok(h) => h,
            Err(reason) => {
                return LaxMessage {
                    header: None,
                    body: None,
                    stop: Some(Stop { offset: 0, reason }),
                };
            }
        };
        let total = header.total_len();
        let avail = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        let (body_bytes, missing) = match avail.split_at_checked(usize::from(header.body_len)) {
            Some((b, _)) => (b, 0),
            None => (avail, total - bytes.len()),
        };
        let (mut wrong_kind, mut exact_ids) = (None, None);
        let (body, mut stop) = if header.msg_type.is_media() {
            let (view, stop) = parse_media(body_bytes, missing);
            (view.map(BodyView::Media), stop)
        } else {
            let walked = object::walk(body_bytes, HEADER_LEN, missing);
            wrong_kind = walked.wrong_kind;
            exact_ids = walked.ids_exact.then_some(walked.ids);
            let objects =
                ObjectsView::from_walked(body_bytes.get(..walked.valid).unwrap_or(&[]), walked.ids);
            let mut stop = walked.stop.map(|(offset, reason)| Stop { offset, reason });
            if stop.is_none() && missing > 0 {
                // Cut on an object boundary: every present object is whole, the rest is not.
                stop = Some(Stop {
                    offset: bytes.len(),
                    reason: DissectError::Truncated { needed: missing },
                });
            }
            (Some(BodyView::Objects(objects)), stop)
        };
        if stop.is_none() && bytes.len() > total {
            stop = Some(Stop {
                offset: total,
                reason: DissectError::Invalid {
                    what: "trailing bytes",
                },
            });
        }
        if stop.is_none() {
            let objects = match body {
                Some(BodyView::Objects(o)) => o,
                _ => ObjectsView::default(),
            };
            stop = check_schema(&header, objects, wrong_kind, exact_ids).err();
        }
        LaxMessage {
            header: Some(header),
            body,
            stop,
        }
    }

    pub fn msg_type(&self) -> MsgType {
        self.header.msg_type
    }

    pub fn flags(&self) -> Flags {
        self.header.flags
    }

    /// Transaction id; for media messages the call id.
    pub fn txn_id(&self) -> u32 {
        self.header.txn_id
    }

    /// Bytes on the wire (header plus body).
    pub fn buffer_len(&self) -> usize {
        self.header.total_len()
    }

    /// The TLV objects, `None` for media messages.
    pub fn objects(&self) -> Option<ObjectsView<'a>> {
        match self.body {
            BodyView::Objects(o) => Some(o),
            BodyView::Media(_) => None,
        }
    }

    /// The media frame (§7.1), `None` for object messages.
    pub fn frame(&self) -> Option<MediaView<'a>> {
        match self.body {
            BodyView::Media(m) => Some(m),
            BodyView::Objects(_) => None,
        }
    }

    /// The call a message belongs to: the header's id for media, `call-id` otherwise.
    pub fn call_id(&self) -> Option<u32> {
        match self.body {
            BodyView::Media(_) => Some(self.header.txn_id),
            BodyView::Objects(o) => o.get_u32(FieldId::CallId),
        }
    }

    pub fn to_owned_message(&self) -> Message {
        Message {
            msg_type: self.header.msg_type,
            flags: self.header.flags,
            txn_id: self.header.txn_id,
            body: match self.body {
                BodyView::Objects(o) => {
                    Body::Objects(o.iter().map(|x| x.to_owned_object()).collect())
                }
                BodyView::Media(m) => Body::Media(m.to_owned_media()),
            },
        }
    }

    /// The text form of PROTOCOL.md §13.1 (test vectors are written in it).
    pub fn render(&self) -> String {
        let mut out = String::new();
        render_header(&mut out, &self.header);
        match self.body {
            BodyView::Objects(o) => render_objects(&mut out, o, 1),
            BodyView::Media(m) => {
                let _ = writeln!(out, "  seq = {}", m.seq);
                let _ = writeln!(out, "  timestamp = {}", m.timestamp);
                let _ = writeln!(out, "  codec = {}", m.codec);
                for (i, frame) in m.redundancy().enumerate() {
                    let _ = writeln!(out, "  redundant[{}] = {}", i + 1, hex(frame));
                }
                let _ = writeln!(out, "  payload = {}", hex(m.payload));
            }
        }
        out
    }
}

fn render_header(out: &mut String, h: &Header) {
    let name = match h.msg_type {
        MsgType::Unknown(raw) => format!("unknown-0x{raw:04x}"),
        t => t.name().to_owned(),
    };
    let id = if h.msg_type.is_media() { "call" } else { "txn" };
    let _ = writeln!(out, "{name} {} {id}={}", h.flags.as_str(), h.txn_id);
}

/// Lowercase hex with a `hex:` prefix (the form blobs take in the text form).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(4 + 2 * bytes.len());
    s.push_str("hex:");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn render_objects(out: &mut String, objects: ObjectsView<'_>, depth: usize) {
    for o in objects.iter() {
        let pad = "  ".repeat(depth);
        let name = match o.id {
            FieldId::Unknown(raw) => format!("id-0x{raw:02x}"),
            id => id.name().to_owned(),
        };
        match o.value {
            ValueView::U32(v) => {
                let _ = writeln!(out, "{pad}{name} = {v}");
            }
            ValueView::U64(v) => {
                let _ = writeln!(out, "{pad}{name} = {v}");
            }
            ValueView::Addr(a) => {
                let _ = writeln!(out, "{pad}{name} = {a}");
            }
            ValueView::Str(s) => {
                let _ = writeln!(out, "{pad}{name} = {s:?}");
            }
            ValueView::Blob(b) => {
                let _ = writeln!(out, "{pad}{name} = {}", hex(b));
            }
            ValueView::List(items) => {
                let _ = writeln!(out, "{pad}{name} = [");
                render_objects(out, items, depth + 1);
                let _ = writeln!(out, "{pad}]");
            }
            ValueView::Unknown { kind, bytes } => {
                let _ = writeln!(out, "{pad}{name} = kind-0x{kind:02x} {}", hex(bytes));
            }
        }
    }
}

impl Message {
    /// A TLV message.
    pub fn new(msg_type: MsgType, flags: Flags, txn_id: u32, objects: Vec<Object>) -> Message {
        Message {
            msg_type,
            flags,
            txn_id,
            body: Body::Objects(objects),
        }
    }

    /// A media message; `call_id` goes in the header's id field.
    pub fn media(msg_type: MsgType, call_id: u32, media: Media) -> Message {
        Message {
            msg_type,
            flags: Flags::REQUEST,
            txn_id: call_id,
            body: Body::Media(media),
        }
    }

    /// Strict parse into owned values (see [`MessageView::parse`]).
    pub fn parse(bytes: &[u8]) -> Result<Message, DissectError> {
        MessageView::parse(bytes).map(|v| v.to_owned_message())
    }

    fn body_len(&self) -> usize {
        match &self.body {
            Body::Objects(o) => o.iter().map(Object::buffer_len).sum(),
            Body::Media(m) => {
                MEDIA_HEADER_LEN
                    + m.redundancy.iter().map(|f| 1 + f.len()).sum::<usize>()
                    + m.payload.len()
            }
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// The same structural rules a receiver applies (bounds, layout, flags), so nothing
    /// `emit` writes is refused by [`MessageView::parse_lax`] for structure.
    pub fn check(&self) -> Result<(), DissectError> {
        if !self.flags.is_valid_v1() {
            return Err(DissectError::Invalid { what: "flags" });
        }
        if u16::from(self.msg_type) >> 8 == 0 {
            return Err(DissectError::Invalid {
                what: "message family",
            });
        }
        match (&self.body, self.msg_type.is_media()) {
            (Body::Objects(o), false) => object::check_objects(o, 1, &mut 0)?,
            (Body::Media(m), true) => {
                if m.redundancy.len() > MAX_REDUNDANCY {
                    return Err(DissectError::TooLarge {
                        what: "redundancy count",
                        value: m.redundancy.len() as u64,
                        max: MAX_REDUNDANCY as u64,
                    });
                }
                let longest = m
                    .redundancy
                    .iter()
                    .map(Vec::len)
                    .chain([m.payload.len()])
                    .max()
                    .unwrap_or(0);
                if longest > MAX_FRAME_LEN {
                    return Err(DissectError::TooLarge {
                        what: "frame length",
                        value: longest as u64,
                        max: MAX_FRAME_LEN as u64,
                    });
                }
            }
            _ => {
                return Err(DissectError::Invalid {
                    what: "body layout",
                });
            }
        }
        let len = self.body_len();
        if len > MAX_BODY_LEN {
            return Err(DissectError::TooLarge {
                what: "body length",
                value: len as u64,
                max: MAX_BODY_LEN as u64,
            });
        }
        Ok(())
    }

    /// Appends the message to `buf` after [`Message::check`]; on error nothing is written.
    pub fn emit(&self, buf: &mut Vec<u8>) -> Result<(), DissectError> {
        self.check()?;
        let body_len = u16::try_from(self.body_len()).map_err(|_| DissectError::TooLarge {
            what: "body length",
            value: self.body_len() as u64,
            max: MAX_BODY_LEN as u64,
        })?;
        buf.reserve(self.buffer_len());
        Header {
            version: VERSION,
            flags: self.flags,
            msg_type: self.msg_type,
            txn_id: self.txn_id,
            body_len,
        }
        .emit(buf);
        match &self.body {
            Body::Objects(o) => o.iter().for_each(|x| x.emit_unchecked(buf)),
            Body::Media(m) => {
                buf.extend_from_slice(&m.seq.to_be_bytes());
                buf.extend_from_slice(&m.timestamp.to_be_bytes());
                buf.push(m.codec);
                buf.push(m.redundancy.len() as u8);
                for frame in &m.redundancy {
                    buf.push(frame.len() as u8);
                    buf.extend_from_slice(frame);
                }
                buf.extend_from_slice(&m.payload);
            }
        }
        Ok(())
    }

    /// The media frame (§7.1), `None` for object messages.
    pub fn frame(&self) -> Option<&Media> {
        match &self.body {
            Body::Media(m) => Some(m),
            Body::Objects(_) => None,
        }
    }

    /// The call a message belongs to: the header's id for media, `call-id` otherwise
    /// (PROTOCOL.md §7.1), as [`MessageView::call_id`] says for the same bytes.
    pub fn call_id(&self) -> Option<u32> {
        match &self.body {
            Body::Media(_) => Some(self.txn_id),
            Body::Objects(_) => match self.get(FieldId::CallId) {
                Some(Value::U32(v)) => Some(*v),
                _ => None,
            },
        }
    }

    /// Convenience: `emit` into a fresh vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DissectError> {
        let mut buf = Vec::with_capacity(self.buffer_len());
        self.emit(&mut buf)?;
        Ok(buf)
    }

    /// The objects of a TLV message (empty for media).
    pub fn objects(&self) -> &[Object] {
        match &self.body {
            Body::Objects(o) => o,
            Body::Media(_) => &[],
        }
    }

    /// The first top-level object with this id.
    pub fn get(&self, id: FieldId) -> Option<&Value> {
        self.objects().iter().find(|o| o.id == id).map(|o| &o.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skylark::messages::ErrorCode;

    fn ringing() -> Message {
        Message::new(
            MsgType::Ringing,
            Flags::RESP,
            7,
            vec![Object::u32(FieldId::CallId, 42)],
        )
    }

    #[test]
    fn emit_then_parse_gives_the_same_message() {
        let m = ringing();
        let b = m.to_bytes().unwrap();
        assert_eq!(b.len(), m.buffer_len());
        assert_eq!(Message::parse(&b).unwrap(), m);
    }

    #[test]
    fn trailing_bytes_are_refused_strictly_and_reported_laxly() {
        let mut b = ringing().to_bytes().unwrap();
        let total = b.len();
        b.push(0);
        assert_eq!(
            MessageView::parse(&b),
            Err(DissectError::Invalid {
                what: "trailing bytes"
            })
        );
        let lax = MessageView::parse_lax(&b);
        assert_eq!(lax.stop.unwrap().offset, total);
        assert!(lax.header.is_some());
    }

    #[test]
    fn every_known_field_id_has_its_own_bit() {
        // check_schema keeps the fields present as `id_bit`s: exact only below 64.
        for id in 0..=u8::MAX {
            if FieldId::from(id).kind().is_some() {
                assert!(id < 64, "field id {id:#x} shares a bit");
            }
        }
    }

    proptest::proptest! {
        /// The schema check on the walk's id bits answers as the pass over the objects
        /// does: fields twice (known or not), ids a multiple of 64 above a field's (same
        /// bit), mandatory fields missing or present.
        #[test]
        fn schema_on_the_walks_bits_agrees_with_the_pass_over_objects(
            t in proptest::sample::select(vec![
                MsgType::Ringing, MsgType::Cancel, MsgType::HcExchangeRequest,
                MsgType::Reject, MsgType::Bye,
            ]),
            ids in proptest::collection::vec(proptest::sample::select(vec![
                0x17u8, 0x10, 0x16, 0x14, 0x0f, 0x30, 0x57, 0x50, 0x97,
            ]), 0..6),
        ) {
            let flags = match t.dir() {
                Some(Dir::Response) => Flags::RESP,
                _ => Flags::REQUEST,
            };
            let objects = ids.iter().map(|&id| Object::u32(FieldId::from(id), 1)).collect();
            let b = Message::new(t, flags, 7, objects).to_bytes().unwrap();
            let header = Packet::new_unchecked(&b[..]).header().unwrap();
            let body = &b[HEADER_LEN..];
            let w = object::walk(body, HEADER_LEN, 0);
            proptest::prop_assert!(w.stop.is_none());
            let view = ObjectsView::from_walked(body, w.ids);
            let distinct_low = ids.iter().all(|&id| id < 64)
                && (1..ids.len()).all(|i| !ids[..i].contains(&ids[i]));
            proptest::prop_assert_eq!(w.ids_exact, distinct_low);
            proptest::prop_assert_eq!(
                check_schema(&header, view, w.wrong_kind, w.ids_exact.then_some(w.ids)),
                check_schema(&header, view, w.wrong_kind, None)
            );
        }
    }

    #[test]
    fn missing_mandatory_field_is_invalid() {
        let m = Message::new(MsgType::Ringing, Flags::RESP, 7, vec![]);
        let b = m.to_bytes().unwrap();
        assert_eq!(
            MessageView::parse(&b),
            Err(DissectError::Invalid {
                what: "missing mandatory field"
            })
        );
    }

    #[test]
    fn response_flag_must_match_the_catalogue() {
        let m = Message::new(
            MsgType::Ringing,
            Flags::REQUEST,
            7,
            vec![Object::u32(FieldId::CallId, 42)],
        );
        let b = m.to_bytes().unwrap();
        assert_eq!(
            MessageView::parse(&b),
            Err(DissectError::Invalid {
                what: "response flag"
            })
        );
    }

    #[test]
    fn error_response_needs_error_code_only() {
        let m = Message::new(
            MsgType::Search,
            Flags::ERR,
            9,
            vec![Object::u32(FieldId::ErrorCode, ErrorCode::NotFound.into())],
        );
        let b = m.to_bytes().unwrap();
        assert_eq!(Message::parse(&b).unwrap(), m);
    }

    #[test]
    fn unknown_type_parses_with_its_objects() {
        let m = Message::new(
            MsgType::Unknown(0x03ff),
            Flags::REQUEST,
            1,
            vec![Object::u32(FieldId::CallId, 5)],
        );
        let b = m.to_bytes().unwrap();
        let v = MessageView::parse(&b).unwrap();
        assert_eq!(v.msg_type(), MsgType::Unknown(0x03ff));
        assert_eq!(v.call_id(), Some(5));
        assert!(v.frame().is_none());
    }

    #[test]
    fn a_media_view_gives_its_frame_and_call() {
        let media = Media {
            seq: 7,
            timestamp: 1120,
            codec: 1,
            redundancy: vec![],
            payload: vec![3; 4],
        };
        let m = Message::media(MsgType::Voice, 42, media.clone());
        assert_eq!(m.frame(), Some(&media));
        let b = m.to_bytes().unwrap();
        let v = MessageView::parse(&b).unwrap();
        assert_eq!(v.call_id(), Some(42));
        assert_eq!(v.frame().map(|m| m.to_owned_media()), Some(media));
    }

    #[test]
    fn media_body_layout_must_match_family() {
        let m = Message::new(MsgType::Voice, Flags::REQUEST, 1, vec![]);
        assert_eq!(
            m.to_bytes(),
            Err(DissectError::Invalid {
                what: "body layout"
            })
        );
    }

    #[test]
    fn truncated_media_reports_header_and_needed() {
        let m = Message::media(
            MsgType::Voice,
            42,
            Media {
                seq: 1,
                timestamp: 240,
                codec: 1,
                redundancy: vec![vec![1, 2, 3]],
                payload: vec![9; 10],
            },
        );
        let b = m.to_bytes().unwrap();
        let cut = b.get(..b.len() - 3).unwrap();
        let lax = MessageView::parse_lax(cut);
        assert_eq!(
            lax.stop.unwrap().reason,
            DissectError::Truncated { needed: 3 }
        );
        assert!(matches!(lax.body, Some(BodyView::Media(_))));
    }
}
