//! Typed TLV objects, the body encoding of every non-media message (PROTOCOL.md §4).
//!
//! Wire form: `kind u8 | id u8 | length u16 (big-endian) | value[length]`. The length is
//! generic for every kind, so unknown kinds are skipped, never fatal. [`walk`] validates a
//! whole object sequence against every bound once; afterwards [`ObjectsView`] iterates it
//! lazily without allocating, and [`Object`]/[`Value`] are the owned forms that `emit` the
//! same bytes.
//!
//! Guarantees: no panic; depth, object count, list items, string and blob lengths bounded by
//! the `MAX_*` constants (checked before anything is copied). Must not: interpret field
//! meanings (see `messages`).

use super::messages::FieldId;
use super::{MAX_BLOB_LEN, MAX_DEPTH, MAX_LIST_ITEMS, MAX_OBJECTS, MAX_STRING_LEN};
use crate::DissectError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// PROTOCOL.md §4.1: kind, id and a 16-bit length precede every value.
pub const OBJECT_HEADER_LEN: usize = 4;

enum_with_unknown! {
    /// Object kind (PROTOCOL.md §4.2).
    pub enum Kind(u8) {
        U32 = 0x01,
        U64 = 0x02,
        Addr = 0x03,
        Str = 0x04,
        Blob = 0x05,
        List = 0x06,
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::U32 => "u32",
            Kind::U64 => "u64",
            Kind::Addr => "addr",
            Kind::Str => "str",
            Kind::Blob => "blob",
            Kind::List => "list",
            Kind::Unknown(_) => "unknown",
        }
    }
}

/// A decoded object borrowing the message bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectView<'a> {
    pub id: FieldId,
    pub value: ValueView<'a>,
}

/// A decoded value borrowing the message bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueView<'a> {
    U32(u32),
    U64(u64),
    Addr(SocketAddr),
    Str(&'a str),
    Blob(&'a [u8]),
    List(ObjectsView<'a>),
    /// An object of a kind this implementation does not know, skipped by its length.
    Unknown {
        kind: u8,
        bytes: &'a [u8],
    },
}

impl ValueView<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            ValueView::U32(_) => Kind::U32,
            ValueView::U64(_) => Kind::U64,
            ValueView::Addr(_) => Kind::Addr,
            ValueView::Str(_) => Kind::Str,
            ValueView::Blob(_) => Kind::Blob,
            ValueView::List(_) => Kind::List,
            ValueView::Unknown { kind, .. } => Kind::from(*kind),
        }
    }

    pub fn to_owned_value(&self) -> Value {
        match *self {
            ValueView::U32(v) => Value::U32(v),
            ValueView::U64(v) => Value::U64(v),
            ValueView::Addr(a) => Value::Addr(a),
            ValueView::Str(s) => Value::Str(s.to_owned()),
            ValueView::Blob(b) => Value::Blob(b.to_vec()),
            ValueView::List(l) => Value::List(l.iter().map(|o| o.to_owned_object()).collect()),
            ValueView::Unknown { kind, bytes } => Value::Unknown {
                kind,
                bytes: bytes.to_vec(),
            },
        }
    }
}

impl ObjectView<'_> {
    pub fn to_owned_object(&self) -> Object {
        Object {
            id: self.id,
            value: self.value.to_owned_value(),
        }
    }
}

/// A validated sequence of objects (a body or a list value). Iterating never fails.
/// Equal when their bytes are.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObjectsView<'a> {
    bytes: &'a [u8],
    /// Bit `id % 64` ([`id_bit`]) is set for the field id of every object at this level, and
    /// maybe others: a clear bit tells [`Self::get`] the field is absent without walking the
    /// objects (most lookups of a message's row are of absent fields). All set when unknown.
    ids: u64,
}

impl PartialEq for ObjectsView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for ObjectsView<'_> {}

/// The bit of raw field id `id` in [`ObjectsView`]'s filter.
pub(super) fn id_bit(id: u8) -> u64 {
    1 << (id % 64)
}

impl<'a> ObjectsView<'a> {
    /// Wraps bytes that [`walk`] accepted. On other bytes iteration simply stops early.
    pub(crate) fn from_validated(bytes: &'a [u8]) -> ObjectsView<'a> {
        ObjectsView {
            bytes,
            ids: u64::MAX,
        }
    }

    /// [`Self::from_validated`] for a body whose walk noted its top-level ids ([`Walked::ids`]).
    pub(crate) fn from_walked(bytes: &'a [u8], ids: u64) -> ObjectsView<'a> {
        ObjectsView { bytes, ids }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn iter(&self) -> ObjectsIter<'a> {
        ObjectsIter { rest: self.raw() }
    }

    /// Number of objects at this level.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The objects at this level with their values still undecoded.
    pub fn raw(&self) -> RawIter<'a> {
        RawIter { rest: self.bytes }
    }

    /// The first object with this id (only that object's value is decoded).
    pub fn get(&self, id: FieldId) -> Option<ObjectView<'a>> {
        if self.ids & id_bit(u8::from(id)) == 0 {
            return None;
        }
        self.raw().find(|o| o.id == id)?.decode()
    }

    pub fn get_u32(&self, id: FieldId) -> Option<u32> {
        match self.get(id)?.value {
            ValueView::U32(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_str(&self, id: FieldId) -> Option<&'a str> {
        match self.get(id)?.value {
            ValueView::Str(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_addr(&self, id: FieldId) -> Option<SocketAddr> {
        match self.get(id)?.value {
            ValueView::Addr(v) => Some(v),
            _ => None,
        }
    }
}

impl<'a> IntoIterator for ObjectsView<'a> {
    type Item = ObjectView<'a>;
    type IntoIter = ObjectsIter<'a>;
    fn into_iter(self) -> ObjectsIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated object sequence.
#[derive(Clone, Debug)]
pub struct ObjectsIter<'a> {
    rest: RawIter<'a>,
}

impl<'a> Iterator for ObjectsIter<'a> {
    type Item = ObjectView<'a>;
    fn next(&mut self) -> Option<ObjectView<'a>> {
        self.rest.next()?.decode()
    }
}

/// One object of a validated sequence before its value is decoded: enough to match ids,
/// check kinds and step over it without building the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawObject<'a> {
    pub kind: Kind,
    pub id: FieldId,
    pub value: &'a [u8],
}

impl<'a> RawObject<'a> {
    /// Bytes the object takes on the wire, header included.
    pub fn wire_len(&self) -> usize {
        OBJECT_HEADER_LEN + self.value.len()
    }

    /// The decoded object; `None` only if the bytes were not validated by [`walk`].
    pub fn decode(&self) -> Option<ObjectView<'a>> {
        Some(ObjectView {
            id: self.id,
            value: decode_value(self.kind, self.value)?,
        })
    }
}

/// Iterator over the [`RawObject`]s of a validated object sequence.
#[derive(Clone, Debug)]
pub struct RawIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawIter<'a> {
    type Item = RawObject<'a>;
    fn next(&mut self) -> Option<RawObject<'a>> {
        let (kind, id, value, rest) = split_object(self.rest).ok()?;
        self.rest = rest;
        Some(RawObject {
            kind: Kind::from(kind),
            id: FieldId::from(id),
            value,
        })
    }
}

type Split<'a> = (u8, u8, &'a [u8], &'a [u8]);

/// Splits one object off `i` (PROTOCOL.md §4.1): `(kind, id, value, rest)`.
/// Errors: `Truncated { needed }` counted against `i` when the header or value runs off it.
// The four header bytes taken as one array rather than by nom's `(be_u8, be_u8, be_u16)`:
// this runs for every object of every message (more than once: the walk, the schema check,
// each field lookup), and the combinator's results cost 36 instructions a frame more on a
// slice of the simulator's hour (callgrind, benches/instructions.sh).
fn split_object(i: &[u8]) -> Result<Split<'_>, DissectError> {
    let Some((&[kind, id, l0, l1], rest)) = i.split_first_chunk::<OBJECT_HEADER_LEN>() else {
        return Err(DissectError::Truncated {
            needed: OBJECT_HEADER_LEN.saturating_sub(i.len()),
        });
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    match rest.split_at_checked(len) {
        Some((value, rest)) => Ok((kind, id, value, rest)),
        None => Err(DissectError::Truncated {
            needed: len - rest.len(),
        }),
    }
}

/// `KIND_OF_ID[id]`: the kind byte field `id` carries ([`FieldId::kind`], PROTOCOL.md
/// §4.4), or [`KIND_ANY`] for an id of no known field. A table, not
/// `FieldId::from(id).kind()`: the walk asks for every object, and the conversion compiled
/// to a chain of compares.
// Indexing in a constant cannot panic at run time: out of bounds fails the build.
#[allow(clippy::indexing_slicing)]
const KIND_OF_ID: [u8; 256] = {
    let mut t = [KIND_ANY; 256];
    let mut i = 0;
    while i < FieldId::ALL.len() {
        let id = FieldId::ALL[i];
        if let Some(kind) = id.kind() {
            assert!(
                kind.raw() != KIND_ANY,
                "a field's kind byte is the table's `any`"
            );
            t[id.raw() as usize] = kind.raw();
        }
        i += 1;
    }
    t
};

/// In [`KIND_OF_ID`], an id whose objects may be of any kind: 0x00 is no kind
/// (PROTOCOL.md §4.2), so no field carries it (checked as the table is built).
const KIND_ANY: u8 = 0;

/// Bounds shared by one message's walk.
struct Walk {
    objects: usize,
    /// [`id_bit`] of every top-level object's field id.
    ids: u64,
    /// Every id noted in `ids` is below 64 and came once (see [`Walked::ids_exact`]).
    ids_exact: bool,
    /// Message offset of the first object whose known field id has another kind.
    wrong_kind: Option<usize>,
}

/// Decodes one value of validated bytes; `None` where [`check_value`] would have failed.
fn decode_value(kind: Kind, v: &[u8]) -> Option<ValueView<'_>> {
    Some(match kind {
        Kind::U32 => ValueView::U32(u32::from_be_bytes(v.try_into().ok()?)),
        Kind::U64 => ValueView::U64(u64::from_be_bytes(v.try_into().ok()?)),
        Kind::Addr => ValueView::Addr(decode_addr(v)?),
        Kind::Str if v.len() <= MAX_STRING_LEN => ValueView::Str(core::str::from_utf8(v).ok()?),
        Kind::Blob if v.len() <= MAX_BLOB_LEN => ValueView::Blob(v),
        Kind::Str | Kind::Blob => return None,
        Kind::List => ValueView::List(ObjectsView::from_validated(v)),
        Kind::Unknown(kind) => ValueView::Unknown { kind, bytes: v },
    })
}

/// Validates one value (bounds, UTF-8, nested lists) without building it: the walk decodes
/// nothing, readers decode only the objects they look at.
fn check_value(
    kind: Kind,
    v: &[u8],
    walk: &mut Walk,
    depth: usize,
    base: usize,
) -> Result<(), (Option<usize>, DissectError)> {
    let invalid = |what| Err((None, DissectError::Invalid { what }));
    let too_large = |what, max: usize| {
        Err((
            None,
            DissectError::TooLarge {
                what,
                value: v.len() as u64,
                max: max as u64,
            },
        ))
    };
    match kind {
        Kind::U32 if v.len() != 4 => invalid("u32 length"),
        Kind::U64 if v.len() != 8 => invalid("u64 length"),
        Kind::Addr if !matches!(v.len(), 6 | 18) => invalid("address length"),
        Kind::Str if v.len() > MAX_STRING_LEN => too_large("string length", MAX_STRING_LEN),
        Kind::Str if core::str::from_utf8(v).is_err() => invalid("utf-8 string"),
        Kind::Blob if v.len() > MAX_BLOB_LEN => too_large("blob length", MAX_BLOB_LEN),
        Kind::List => {
            let (_, stop) = walk_level(v, base, depth + 1, MAX_LIST_ITEMS, 0, walk);
            match stop {
                Some((at, e)) => Err((Some(at), e)),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn decode_addr(v: &[u8]) -> Option<SocketAddr> {
    match v.len() {
        6 => {
            let (ip, port) = v.split_at_checked(4)?;
            let ip = <[u8; 4]>::try_from(ip).ok()?;
            let port = <[u8; 2]>::try_from(port).ok()?;
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(ip)),
                u16::from_be_bytes(port),
            ))
        }
        18 => {
            let (ip, port) = v.split_at_checked(16)?;
            let ip = <[u8; 16]>::try_from(ip).ok()?;
            let port = <[u8; 2]>::try_from(port).ok()?;
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes(port),
            ))
        }
        _ => None,
    }
}

/// Walks one level of objects at nesting `depth`, starting at message offset `base`.
/// Returns the bytes of the leading objects that are entirely valid and, if the walk
/// stopped early, where (message offset of the offending object or field) and why.
/// `missing` > 0 says the sequence was cut by the capture: running off the end is then
/// `Truncated { needed: missing }` instead of a malformed length.
fn walk_level(
    bytes: &[u8],
    base: usize,
    depth: usize,
    max_items: usize,
    missing: usize,
    walk: &mut Walk,
) -> (usize, Option<(usize, DissectError)>) {
    let mut rest = bytes;
    let mut items = 0usize;
    while !rest.is_empty() {
        let valid = bytes.len() - rest.len();
        let at = base + valid;
        let fail = |e| (valid, Some((at, e)));
        walk.objects += 1;
        if walk.objects > MAX_OBJECTS {
            return fail(DissectError::TooLarge {
                what: "object count",
                value: walk.objects as u64,
                max: MAX_OBJECTS as u64,
            });
        }
        items += 1;
        if items > max_items {
            return fail(DissectError::TooLarge {
                what: "list items",
                value: items as u64,
                max: max_items as u64,
            });
        }
        if depth > MAX_DEPTH {
            return fail(DissectError::TooLarge {
                what: "nesting depth",
                value: depth as u64,
                max: MAX_DEPTH as u64,
            });
        }
        let (kind, id, value, next) = match split_object(rest) {
            Ok(s) => s,
            Err(_) if missing > 0 => return fail(DissectError::Truncated { needed: missing }),
            Err(_) if rest.len() < OBJECT_HEADER_LEN => {
                return fail(DissectError::Invalid {
                    what: "object header",
                });
            }
            Err(_) => {
                return fail(DissectError::Invalid {
                    what: "object length",
                });
            }
        };
        if depth == 1 {
            walk.ids_exact &= id < 64 && walk.ids & id_bit(id) == 0;
            walk.ids |= id_bit(id);
        }
        let want = KIND_OF_ID.get(usize::from(id)).copied().unwrap_or(KIND_ANY);
        if walk.wrong_kind.is_none() && want != KIND_ANY && want != kind {
            walk.wrong_kind = Some(at);
        }
        let kind = Kind::from(kind);
        let value_at = at + OBJECT_HEADER_LEN;
        if let Err((inner, e)) = check_value(kind, value, walk, depth, value_at) {
            // Scalar errors point at the object; nested ones at the inner object.
            return (valid, Some((inner.unwrap_or(at), e)));
        }
        rest = next;
    }
    (bytes.len(), None)
}

/// What [`walk`] found in a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// Length of the valid prefix of whole top-level objects.
    pub valid: usize,
    /// Where (message offset) and why the walk stopped early, if it did.
    pub stop: Option<(usize, DissectError)>,
    /// Message offset of the first object in the valid prefix, at any depth, whose known
    /// field id carries another kind (PROTOCOL.md §4.4) — a schema error, not a structural one.
    pub wrong_kind: Option<usize>,
    /// Bit `id % 64` set for the field id of every whole top-level object (and maybe of the
    /// one the walk stopped at): the lookup filter of the body's [`ObjectsView`].
    pub ids: u64,
    /// Every id noted in `ids` is below 64 (all known field ids are, PROTOCOL.md §4.4) and
    /// none came twice: `ids` is then exactly the set of those ids, and a field is present
    /// if and only if its bit is set.
    pub ids_exact: bool,
}

/// Validates a whole body (top-level objects have depth 1) against every bound of
/// PROTOCOL.md §4.3 and notes the first field of the wrong kind (§4.4) on the way. `base`
/// is the message offset of the body (12); `missing` is how many body bytes the capture
/// cut off.
pub fn walk(bytes: &[u8], base: usize, missing: usize) -> Walked {
    let mut w = Walk {
        objects: 0,
        ids: 0,
        ids_exact: true,
        wrong_kind: None,
    };
    let (valid, stop) = walk_level(bytes, base, 1, usize::MAX, missing, &mut w);
    Walked {
        valid,
        stop,
        wrong_kind: w.wrong_kind,
        ids: w.ids,
        ids_exact: w.ids_exact,
    }
}

/// An owned object: field id and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub id: FieldId,
    pub value: Value,
}

/// An owned value; `emit` writes the same bytes the view was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    U32(u32),
    U64(u64),
    /// Only the IP and port are on the wire (IPv6 flow info and scope are dropped).
    Addr(SocketAddr),
    Str(String),
    Blob(Vec<u8>),
    List(Vec<Object>),
    Unknown {
        kind: u8,
        bytes: Vec<u8>,
    },
}

impl Object {
    pub fn new(id: FieldId, value: Value) -> Object {
        Object { id, value }
    }
    pub fn u32(id: FieldId, v: u32) -> Object {
        Object::new(id, Value::U32(v))
    }
    pub fn u64(id: FieldId, v: u64) -> Object {
        Object::new(id, Value::U64(v))
    }
    pub fn addr(id: FieldId, v: SocketAddr) -> Object {
        Object::new(id, Value::Addr(v))
    }
    pub fn str(id: FieldId, v: &str) -> Object {
        Object::new(id, Value::Str(v.to_owned()))
    }
    pub fn blob(id: FieldId, v: &[u8]) -> Object {
        Object::new(id, Value::Blob(v.to_vec()))
    }
    pub fn list(id: FieldId, v: Vec<Object>) -> Object {
        Object::new(id, Value::List(v))
    }

    /// Bytes on the wire, object header included.
    pub fn buffer_len(&self) -> usize {
        OBJECT_HEADER_LEN + self.value.value_len()
    }

    /// Writes the object. Call [`check_objects`] first: lengths above 65535 are cut here.
    pub(crate) fn emit_unchecked(&self, buf: &mut Vec<u8>) {
        let len = self.value.value_len();
        buf.push(self.value.kind_byte());
        buf.push(u8::from(self.id));
        buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        match &self.value {
            Value::U32(v) => buf.extend_from_slice(&v.to_be_bytes()),
            Value::U64(v) => buf.extend_from_slice(&v.to_be_bytes()),
            Value::Addr(a) => {
                match a.ip() {
                    IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
                    IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
                }
                buf.extend_from_slice(&a.port().to_be_bytes());
            }
            Value::Str(s) => buf.extend_from_slice(s.as_bytes()),
            Value::Blob(b) | Value::Unknown { bytes: b, .. } => buf.extend_from_slice(b),
            Value::List(items) => items.iter().for_each(|o| o.emit_unchecked(buf)),
        }
    }
}

impl Value {
    pub fn kind(&self) -> Kind {
        Kind::from(self.kind_byte())
    }

    fn kind_byte(&self) -> u8 {
        match self {
            Value::U32(_) => Kind::U32.into(),
            Value::U64(_) => Kind::U64.into(),
            Value::Addr(_) => Kind::Addr.into(),
            Value::Str(_) => Kind::Str.into(),
            Value::Blob(_) => Kind::Blob.into(),
            Value::List(_) => Kind::List.into(),
            Value::Unknown { kind, .. } => *kind,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            Value::U32(_) => 4,
            Value::U64(_) => 8,
            Value::Addr(SocketAddr::V4(_)) => 6,
            Value::Addr(SocketAddr::V6(_)) => 18,
            Value::Str(s) => s.len(),
            Value::Blob(b) | Value::Unknown { bytes: b, .. } => b.len(),
            Value::List(items) => items.iter().map(Object::buffer_len).sum(),
        }
    }
}

/// Checks owned objects against the bounds a receiver enforces, so `emit` never writes what
/// `parse` would refuse. `depth` is the depth of these objects (1 for a body).
pub fn check_objects(
    objects: &[Object],
    depth: usize,
    count: &mut usize,
) -> Result<(), DissectError> {
    if depth > 1 && objects.len() > MAX_LIST_ITEMS {
        return Err(DissectError::TooLarge {
            what: "list items",
            value: objects.len() as u64,
            max: MAX_LIST_ITEMS as u64,
        });
    }
    for o in objects {
        *count += 1;
        if *count > MAX_OBJECTS {
            return Err(DissectError::TooLarge {
                what: "object count",
                value: *count as u64,
                max: MAX_OBJECTS as u64,
            });
        }
        if depth > MAX_DEPTH {
            return Err(DissectError::TooLarge {
                what: "nesting depth",
                value: depth as u64,
                max: MAX_DEPTH as u64,
            });
        }
        match &o.value {
            Value::Str(s) if s.len() > MAX_STRING_LEN => {
                return Err(DissectError::TooLarge {
                    what: "string length",
                    value: s.len() as u64,
                    max: MAX_STRING_LEN as u64,
                });
            }
            Value::Blob(b) if b.len() > MAX_BLOB_LEN => {
                return Err(DissectError::TooLarge {
                    what: "blob length",
                    value: b.len() as u64,
                    max: MAX_BLOB_LEN as u64,
                });
            }
            Value::Unknown { kind, bytes } => {
                if !matches!(Kind::from(*kind), Kind::Unknown(_)) {
                    return Err(DissectError::Invalid {
                        what: "unknown object with a known kind",
                    });
                }
                if bytes.len() > usize::from(u16::MAX) {
                    return Err(DissectError::TooLarge {
                        what: "object length",
                        value: bytes.len() as u64,
                        max: u64::from(u16::MAX),
                    });
                }
            }
            Value::List(items) => {
                check_objects(items, depth + 1, count)?;
                let len = o.value.value_len();
                if len > usize::from(u16::MAX) {
                    return Err(DissectError::TooLarge {
                        what: "object length",
                        value: len as u64,
                        max: u64::from(u16::MAX),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kind_table_agrees_with_field_ids_for_every_byte() {
        for id in 0..=u8::MAX {
            let want = FieldId::from(id).kind().map_or(KIND_ANY, Kind::raw);
            assert_eq!(
                KIND_OF_ID.get(usize::from(id)),
                Some(&want),
                "field id {id:#04x}"
            );
        }
    }

    /// Objects `(kind, id, value)` on the wire, then `tail`.
    fn tlv(objects: &[(u8, u8, Vec<u8>)], tail: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for (kind, id, value) in objects {
            b.extend([*kind, *id]);
            b.extend(u16::try_from(value.len()).unwrap().to_be_bytes());
            b.extend(value);
        }
        b.extend(tail);
        b
    }

    #[test]
    fn an_absent_field_is_found_absent_by_the_filter_and_a_present_one_is_found() {
        // CallId (0x17) and raw id 0x57 share a filter bit; Seq (0x22) is alone.
        let b = tlv(
            &[(1, 0x57, vec![0, 0, 0, 1]), (1, 0x22, vec![0, 0, 0, 2])],
            &[],
        );
        let walked = walk(&b, 12, 0);
        assert_eq!((walked.valid, walked.stop), (b.len(), None));
        assert_eq!(walked.ids, id_bit(0x57) | id_bit(0x22));
        let v = ObjectsView::from_walked(&b, walked.ids);
        assert_eq!(v.get_u32(FieldId::Seq), Some(2));
        assert_eq!(v.get_u32(FieldId::CallId), None);
        assert_eq!(v.get_u32(FieldId::from(0x57)), Some(1));
        assert_eq!(v.get(FieldId::User), None);
        assert_eq!(v, ObjectsView::from_validated(&b));
    }

    proptest! {
        /// The filter only ever skips walks that would find nothing: every lookup through a
        /// walked body's view equals the unfiltered lookup, for every raw id.
        #[test]
        fn the_id_filter_never_hides_a_field(
            objects in proptest::collection::vec(
                (prop::sample::select(vec![1u8, 2, 5, 0x7f]), any::<u8>(),
                 proptest::collection::vec(any::<u8>(), 0..10)),
                0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            // Scalars of their own length, so most bodies walk past several objects.
            let objects: Vec<_> = objects
                .into_iter()
                .map(|(kind, id, mut value)| {
                    match kind {
                        1 => value.resize(4, 0),
                        2 => value.resize(8, 0),
                        _ => {}
                    }
                    (kind, id, value)
                })
                .collect();
            let b = tlv(&objects, &tail);
            let walked = walk(&b, 12, 0);
            let prefix = &b[..walked.valid];
            let filtered = ObjectsView::from_walked(prefix, walked.ids);
            let plain = ObjectsView::from_validated(prefix);
            for raw in 0..=u8::MAX {
                let id = FieldId::from(raw);
                prop_assert_eq!(filtered.get(id), plain.get(id), "id {:#x}", raw);
            }
        }
    }

    fn walk_all(b: &[u8]) -> Option<(usize, DissectError)> {
        walk(b, 0, 0).stop
    }

    #[test]
    fn unknown_kind_is_skipped_by_length() {
        let b = [
            0x7f, 0x40, 0x00, 0x02, 0xaa, 0xbb, 0x01, 0x17, 0x00, 0x04, 0, 0, 0, 9,
        ];
        assert_eq!(walk_all(&b), None);
        let v = ObjectsView::from_validated(&b);
        let all: Vec<_> = v.iter().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].value,
            ValueView::Unknown {
                kind: 0x7f,
                bytes: &[0xaa, 0xbb]
            }
        );
        assert_eq!(v.get_u32(FieldId::CallId), Some(9));
    }

    #[test]
    fn u32_with_wrong_length_is_invalid_at_its_offset() {
        let b = [0x01, 0x17, 0x00, 0x03, 0, 0, 9];
        assert_eq!(
            walk_all(&b),
            Some((0, DissectError::Invalid { what: "u32 length" }))
        );
    }

    #[test]
    fn object_running_off_a_complete_body_is_malformed_but_off_a_cut_one_is_truncated() {
        let b = [0x04, 0x01, 0x00, 0x05, b'a'];
        assert_eq!(
            walk_all(&b),
            Some((
                0,
                DissectError::Invalid {
                    what: "object length"
                }
            ))
        );
        assert_eq!(
            walk(&b, 12, 4).stop,
            Some((12, DissectError::Truncated { needed: 4 }))
        );
    }

    #[test]
    fn list_at_max_depth_must_be_empty() {
        // depth1 list > depth2 list > depth3 list > depth4 list (empty): fine.
        let nest = |inner: Vec<Object>| Object::list(FieldId::Entries, inner);
        let ok = nest(vec![nest(vec![nest(vec![nest(vec![])])])]);
        let mut buf = Vec::new();
        ok.emit_unchecked(&mut buf);
        assert_eq!(walk_all(&buf), None);
        let deep = nest(vec![nest(vec![nest(vec![nest(vec![Object::u32(
            FieldId::Seq,
            1,
        )])])])]);
        let mut buf = Vec::new();
        deep.emit_unchecked(&mut buf);
        assert_eq!(
            walk_all(&buf).map(|s| s.1),
            Some(DissectError::TooLarge {
                what: "nesting depth",
                value: 5,
                max: 4
            })
        );
        assert!(check_objects(&[deep], 1, &mut 0).is_err());
    }

    #[test]
    fn invalid_utf8_string_is_rejected() {
        let b = [0x04, 0x01, 0x00, 0x01, 0xff];
        assert_eq!(
            walk_all(&b),
            Some((
                0,
                DissectError::Invalid {
                    what: "utf-8 string"
                }
            ))
        );
    }
}
