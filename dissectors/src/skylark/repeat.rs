//! Datagrams shaped like one seen just before. Keepalives are most of an overlay's messages
//! (nine in ten of the simulator's `large` capture): every client pings super nodes over UDP
//! every few seconds and each answers (`nat-ping`/`nat-pong`, PROTOCOL.md §5.1 family 4,
//! §8.5), and these messages differ from one another only in values no rule checks and no
//! row reads. A datagram equal to a remembered one outside such values gets its row without
//! its body being walked and checked again.
//!
//! What may differ (the *varying* bytes): the transaction id and the header check (§3.1),
//! and the value of every top-level object of kind `u32`, `u64` or `addr` (§4.2) except
//! `call-id` and `error-code`. §4.3 and §4.4 constrain those values by their length only
//! (which is in the object's header, compared like every other byte), and a row reads no
//! such value but `call-id` (a call's messages) and `error-code` (error responses).
//!
//! Guarantees: the row is the one the full parse gives (a test compares them on mutated
//! messages of every type). The header is still validated (§3.4; the check covers the new
//! transaction id), and only rows of plain messages are remembered: whole (`complete`),
//! without a detail or call fields. The memory is a few shapes per analysing thread, not
//! per flow: the shapes do not depend on the flow, and a flow-sized table of them cost more
//! in cache misses than the parsing it saved (2026-12-04).

use super::header::{HEADER_LEN, Packet};
use super::messages::FieldId;
use super::object::{Kind, OBJECT_HEADER_LEN};
use crate::registry::{Message, Status};
use std::cell::RefCell;

/// Longest datagram remembered: a `nat-pong` with an IPv4 reflexive address is 42 bytes.
const MAX_LEN: usize = 48;

const WORDS: usize = MAX_LEN / 8;

/// Shapes remembered per thread, by message type and length.
const SLOTS: usize = 8;

/// Bit `i` set: byte `i` may vary. The transaction id and the header check (§3.1).
const HEADER_VARYING: u64 = 0b1100_1111_0000;

/// A remembered datagram: its bytes with the varying ones zeroed, which those are, and what
/// its row took from the body. `len` 0: none.
#[derive(Clone, Copy, Debug)]
struct Shape {
    words: [u64; WORDS],
    varying: u64,
    len: u8,
    call_id: Option<u32>,
}

impl Shape {
    const NONE: Shape = Shape {
        words: [0; WORDS],
        varying: 0,
        len: 0,
        call_id: None,
    };
}

thread_local! {
    static SHAPES: RefCell<[Shape; SLOTS]> = const { RefCell::new([Shape::NONE; SLOTS]) };
}

/// The row of `data` if it has the shape of a remembered plain message.
#[inline]
pub(super) fn row(data: &[u8]) -> Option<Message> {
    let (words, varying) = masked(data)?;
    let slot = slot(data)?;
    let remembered = SHAPES.with_borrow(|shapes| {
        let s = shapes.get(slot)?;
        let same = usize::from(s.len) == data.len() && s.varying == varying && s.words == words;
        same.then_some(s.call_id)
    });
    let call_id = remembered?;
    let header = Packet::new_unchecked(data).header().ok()?;
    Some(super::flow::plain_row(&header, call_id.map(u64::from)))
}

/// Remembers the shape of `data`, whose row is `msg`, if it is a plain message.
pub(super) fn note(data: &[u8], msg: &Message) {
    let plain = msg.status == Status::Complete && msg.detail.is_none() && msg.call.is_none();
    let call_id = msg.call_id.map(u32::try_from);
    if !plain || matches!(call_id, Some(Err(_))) {
        return;
    }
    let (Some((words, varying)), Some(slot), Ok(len)) =
        (masked(data), slot(data), u8::try_from(data.len()))
    else {
        return;
    };
    SHAPES.with_borrow_mut(|shapes| {
        if let Some(s) = shapes.get_mut(slot) {
            *s = Shape {
                words,
                varying,
                len,
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

/// `data` (a header and at most [`MAX_LEN`] bytes in all) as words, zero-padded, with its
/// varying bytes zeroed, and the bit set of those bytes.
#[inline]
fn masked(data: &[u8]) -> Option<([u64; WORDS], u64)> {
    if !(HEADER_LEN..=MAX_LEN).contains(&data.len()) {
        return None;
    }
    let mut buf = [0u8; MAX_LEN];
    buf.get_mut(..data.len())?.copy_from_slice(data);
    let mut varying = HEADER_VARYING;
    let mut at = HEADER_LEN;
    while let Some(&[kind, id, l0, l1]) = data.get(at..).and_then(|r| r.first_chunk()) {
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let value = at + OBJECT_HEADER_LEN;
        // `value + len` within the datagram (at most 48 bytes) keeps the shifts below 64.
        if value + len <= data.len() && varies(kind, id) {
            varying |= ((1u64 << len) - 1) << value;
        }
        at = value + len;
    }
    let mut words = [0u64; WORDS];
    for (i, (w, chunk)) in words.iter_mut().zip(buf.chunks_exact(8)).enumerate() {
        let bytes = <[u8; 8]>::try_from(chunk).ok()?;
        let byte_bits = (varying >> (8 * i)) & 0xff;
        *w = u64::from_le_bytes(bytes) & !BYTE_MASKS.get(byte_bits as usize).copied()?;
    }
    Some((words, varying))
}

/// Whether an object's value may vary between messages of one shape (see the module docs).
fn varies(kind: u8, id: u8) -> bool {
    matches!(Kind::from(kind), Kind::U32 | Kind::U64 | Kind::Addr)
        && !matches!(FieldId::from(id), FieldId::CallId | FieldId::ErrorCode)
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
