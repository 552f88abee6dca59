//! TCP framing (PROTOCOL.md §2.3): a TCP direction is a sequence of whole messages back to
//! back, each delimited by its header's length, so one parser serves UDP and TCP. nom 8
//! streaming parsers turn a short buffer into `Truncated { needed }`; [`resync`] finds the
//! next plausible header after garbage, scanning at most [`MAX_RESYNC_SCAN`] bytes.
//!
//! Guarantees: no panic, no allocation; `needed` is exact once the header is in. Must not:
//! buffer bytes (the caller keeps unconsumed bytes) or decide when to give up on a flow.

use super::MAX_BODY_LEN;
use super::codec::MessageView;
use super::header::{Family, Flags, HEADER_LEN, MAGIC, Packet, VERSION};
use crate::DissectError;
use nom::bytes::streaming::take;

/// PROTOCOL.md §2.3: a receiver skips at most 4096 bytes looking for the next header, then
/// gives up on the connection.
pub const MAX_RESYNC_SCAN: usize = 4096;

fn incomplete(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Incomplete(nom::Needed::Size(n)) => DissectError::Truncated { needed: n.get() },
        nom::Err::Incomplete(nom::Needed::Unknown) => DissectError::Truncated { needed: 1 },
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    }
}

/// The length of the frame starting at `stream[0]` (header included), after validating its
/// header. `Truncated { needed }` while fewer than 12 bytes are present.
pub fn frame_len(stream: &[u8]) -> Result<usize, DissectError> {
    let (_, head) = take::<_, _, DissectError>(HEADER_LEN)(stream).map_err(incomplete)?;
    let header = Packet::new_unchecked(head).header()?;
    Ok(header.total_len())
}

/// Parses the frame at the start of `stream` strictly; returns it and the bytes it used.
/// `Truncated { needed }` gives exactly how many more bytes complete the frame.
pub fn parse_frame(stream: &[u8]) -> Result<(MessageView<'_>, usize), DissectError> {
    let total = frame_len(stream)?;
    let (_, frame) = take::<_, _, DissectError>(total)(stream).map_err(incomplete)?;
    Ok((MessageView::parse(frame)?, total))
}

/// Whether `bytes` could be the start of a header: every rule of PROTOCOL.md §3.4 that the
/// present bytes can be checked against holds (all of them once 12 bytes are present).
pub fn plausible_prefix(bytes: &[u8]) -> bool {
    if bytes.len() >= HEADER_LEN {
        return Packet::new_unchecked(bytes).header().is_ok();
    }
    let mut it = bytes.iter().copied();
    if it.next().is_some_and(|b| b != MAGIC) {
        return false;
    }
    if let Some(vf) = it.next() {
        if vf >> 4 != VERSION || !Flags::from_bits(vf).is_valid_v1() {
            return false;
        }
    }
    if it.next() == Some(0) {
        return false; // family 0 is never valid
    }
    let p = Packet::new_unchecked(bytes);
    bytes.len() < 10 || usize::from(p.body_len()) <= MAX_BODY_LEN
}

/// Outcome of [`resync`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    /// A valid header starts at this offset.
    Found(usize),
    /// A header may start at this offset but too few bytes follow to tell.
    NeedMore(usize),
    /// No candidate in the first `scanned` bytes.
    NotFound { scanned: usize },
}

/// Looks for the next header at offsets `1..`, at most [`MAX_RESYNC_SCAN`] bytes in.
pub fn resync(stream: &[u8]) -> Resync {
    let limit = stream.len().min(MAX_RESYNC_SCAN);
    for off in 1..limit {
        let Some(rest) = stream.get(off..) else { break };
        // Cheap first filter: the magic byte.
        if rest.first() != Some(&MAGIC) {
            continue;
        }
        if plausible_prefix(rest) {
            return if rest.len() >= HEADER_LEN {
                Resync::Found(off)
            } else {
                Resync::NeedMore(off)
            };
        }
    }
    Resync::NotFound { scanned: limit }
}

/// True if the message family is one version 1 defines (used by the probe).
pub fn known_family(bytes: &[u8]) -> bool {
    !matches!(Packet::new_unchecked(bytes).family(), Family::Unknown(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_stream_needs_the_rest_of_the_header() {
        assert_eq!(
            frame_len(&[MAGIC, 0x10]),
            Err(DissectError::Truncated { needed: 10 })
        );
    }

    #[test]
    fn resync_skips_garbage_without_magic() {
        assert_eq!(resync(&[0u8; 100]), Resync::NotFound { scanned: 100 });
        assert_eq!(resync(&[0, 0, MAGIC]), Resync::NeedMore(2));
        assert_eq!(
            resync(&[0, 0, MAGIC, 0x20]),
            Resync::NotFound { scanned: 4 }
        );
    }
}
