//! Datagrams shaped like one seen just before. Keepalives are most of an overlay's messages
//! (nine in ten of the simulator's `large` capture): every client pings super nodes over UDP
//! every few seconds and each answers (`nat-ping`/`nat-pong`, PROTOCOL.md §5.1 family 4,
//! §8.5), and these messages differ from one another only in values no rule checks and no
//! row reads. A datagram equal to a remembered one outside such values gets its row without
//! its body being walked and checked again.
//!
//! What may differ (the *varying* bytes): the transaction id and the header check (§3.1),
//! and the value of every top-level object of kind `u32`, `u64` or `addr` except `call-id`
//! and `error-code`. §4 constrains those values by their length only (§4.2; the length is
//! in the object's header, compared like every other byte), and a row reads no such value
//! but `call-id` (a call's messages) and `error-code` (error responses).
//!
//! Guarantees: the row is the one the full parse gives (a test compares them on mutated
//! messages of every type). The header check is still verified (§3.1: it covers the new
//! transaction id); the header's other bytes are the remembered one's, which passed every
//! rule of §3.4. Only datagrams of 16 to 48 bytes are looked at, and only rows of plain
//! messages remembered: whole (`complete`), without a detail or call fields. The memory is
//! a few shapes per analysing thread, not per flow: the shapes do not depend on the flow,
//! and a flow-sized table of them cost more in cache misses than the parsing it saved
//! (2026-12-04).

use super::header::{HEADER_LEN, Header, field, header_check};
use super::messages::FieldId;
use super::object::{Kind, OBJECT_HEADER_LEN, ObjectsView};
use crate::registry::{Message, Status};
use std::cell::RefCell;

/// Longest datagram remembered: a `nat-pong` with an IPv4 reflexive address is 42 bytes.
const MAX_LEN: usize = 48;

const WORDS: usize = MAX_LEN / 8;

/// Shapes remembered per thread, by message type and length.
const SLOTS: usize = 8;

/// Bit `i` set: byte `i` may vary. The transaction id and the header check (§3.1).
const HEADER_VARYING: u64 = bits(field::TXN_ID) | bits(field::CHECK);

/// The bits of the bytes in `r` (below 64).
const fn bits(r: core::ops::Range<usize>) -> u64 {
    ((1u64 << (r.end - r.start)) - 1) << r.start
}

/// A remembered datagram: its bytes with the varying ones zeroed, the masks keeping the
/// others, and what its row took. `len` 0: none (no datagram shorter than 16 bytes is
/// looked at); a sentinel, not an `Option`, which cost +0.6 % instructions a frame.
#[derive(Clone, Copy, Debug)]
struct Shape {
    words: [u64; WORDS],
    keep: [u64; WORDS],
    len: u8,
    /// The header, transaction id aside (its bytes but the varying ones are `words`').
    header: Header,
    call_id: Option<u32>,
}

impl Shape {
    const NONE: Shape = Shape {
        words: [0; WORDS],
        keep: [0; WORDS],
        len: 0,
        header: Header {
            version: 0,
            flags: super::header::Flags::REQUEST,
            msg_type: super::messages::MsgType::Unknown(0),
            txn_id: 0,
            body_len: 0,
        },
        call_id: None,
    };
}

thread_local! {
    static SHAPES: RefCell<[Shape; SLOTS]> = const { RefCell::new([Shape::NONE; SLOTS]) };
}

/// The row of `data` if it has the shape of a remembered plain message: equal to it in
/// every byte that does not vary. Such a datagram has the remembered one's objects (their
/// headers are among those bytes), so its varying bytes are the same ones.
#[inline]
pub(super) fn row(data: &[u8]) -> Option<Message> {
    let words = words(data)?;
    let slot = slot(data)?;
    // `try_`: a parser never panics, not even when called as the thread ends.
    let remembered = SHAPES.try_with(|shapes| {
        let shapes = shapes.try_borrow().ok()?;
        let s = shapes.get(slot)?;
        let same = usize::from(s.len) == data.len()
            && words
                .iter()
                .zip(&s.keep)
                .zip(&s.words)
                .all(|((w, keep), want)| w & keep == *want);
        same.then_some((s.header, s.call_id))
    });
    let (header, call_id) = remembered.ok().flatten()?;
    // The header's other bytes are the remembered one's, which passed every rule of §3.4:
    // only the check, over the new transaction id, is left to verify.
    let (&[_, _, _, _, x0, x1, x2, x3, _, _, c0, c1], _) = data.split_first_chunk()?;
    if header_check(data) != u16::from_be_bytes([c0, c1]) {
        return None;
    }
    let header = Header {
        txn_id: u32::from_be_bytes([x0, x1, x2, x3]),
        ..header
    };
    Some(super::flow::plain_row(&header, call_id.map(u64::from)))
}

/// Remembers the shape of `data`, whose header is `header`, objects `objects` (whole) and row
/// `msg`, if it is a plain message.
pub(super) fn note(data: &[u8], header: &Header, objects: ObjectsView<'_>, msg: &Message) {
    let plain = msg.status == Status::Complete && msg.detail.is_none() && msg.call.is_none();
    let call_id = msg.call_id.map(u32::try_from);
    if !plain || matches!(call_id, Some(Err(_))) {
        return;
    }
    let (Some(words), Some(slot), Ok(len)) = (words(data), slot(data), u8::try_from(data.len()))
    else {
        return;
    };
    let keep = keep(objects);
    let _ = SHAPES.try_with(|shapes| {
        if let Some(s) = shapes
            .try_borrow_mut()
            .ok()
            .as_deref_mut()
            .and_then(|s| s.get_mut(slot))
        {
            let mut masked = words;
            for (w, k) in masked.iter_mut().zip(&keep) {
                *w &= k;
            }
            *s = Shape {
                words: masked,
                keep,
                len,
                header: *header,
                call_id: call_id.and_then(Result::ok),
            };
        }
    });
}

/// The slot of a datagram's shape: by message type and length.
fn slot(data: &[u8]) -> Option<usize> {
    let (&[_, _, family, number], _) = data.split_first_chunk::<4>()?;
    Some((usize::from(family) * 3 + usize::from(number) + data.len()) % SLOTS)
}

/// `data` (16 to [`MAX_LEN`] bytes) as little-endian words, zero-padded.
#[inline]
fn words(data: &[u8]) -> Option<[u64; WORDS]> {
    let buf = padded(data)?;
    let mut words = [0u64; WORDS];
    for (w, chunk) in words.iter_mut().zip(buf.chunks_exact(8)) {
        *w = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
    }
    Some(words)
}

/// Masks over [`words`] keeping the bytes that do not vary of a datagram whose body is
/// `objects` (at most [`MAX_LEN`] bytes in all, so every shift stays below 64).
fn keep(objects: ObjectsView<'_>) -> [u64; WORDS] {
    let mut varying = HEADER_VARYING;
    let mut at = HEADER_LEN;
    for o in objects.raw() {
        let value = at + OBJECT_HEADER_LEN;
        at += o.wire_len();
        if at <= MAX_LEN && varies(o.kind, o.id) {
            varying |= bits(value..at);
        }
    }
    let mut keep = [0u64; WORDS];
    for (i, k) in keep.iter_mut().enumerate() {
        let byte_bits = (varying >> (8 * i)) & 0xff;
        *k = !BYTE_MASKS.get(byte_bits as usize).copied().unwrap_or(0);
    }
    keep
}

/// `data` (16 to [`MAX_LEN`] bytes) zero-padded, copied as two overlapping fixed-size
/// halves (a copy of variable length is a `memcpy` call).
#[inline]
fn padded(data: &[u8]) -> Option<[u8; MAX_LEN]> {
    let n = data.len();
    if !(16..=MAX_LEN).contains(&n) {
        return None;
    }
    let mut buf = [0u8; MAX_LEN];
    if n >= 32 {
        *buf.first_chunk_mut::<32>()? = *data.first_chunk::<32>()?;
    } else {
        *buf.first_chunk_mut::<16>()? = *data.first_chunk::<16>()?;
    }
    *buf.get_mut(n - 16..)?.first_chunk_mut::<16>()? = *data.last_chunk::<16>()?;
    Some(buf)
}

/// Whether an object's value may vary between messages of one shape (see the module docs).
fn varies(kind: Kind, id: FieldId) -> bool {
    matches!(kind, Kind::U32 | Kind::U64 | Kind::Addr)
        && !matches!(id, FieldId::CallId | FieldId::ErrorCode)
}

/// For each set of eight bits, the little-endian word with 0xff in the bytes they name.
// Indexing in a constant's evaluation: out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const BYTE_MASKS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut bits = 0;
    while bits < 256 {
        let mut byte = 0;
        while byte < 8 {
            if bits & (1 << byte) != 0 {
                t[bits] |= 0xff << (8 * byte);
            }
            byte += 1;
        }
        bits += 1;
    }
    t
};
