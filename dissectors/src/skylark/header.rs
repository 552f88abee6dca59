//! The 12-byte Skylark common header (PROTOCOL.md §3): a smoltcp-style accessor
//! [`Packet`] over any byte buffer, with a [`field`] module of byte ranges so a probe can read
//! type and length without parsing, and the validated, copyable [`Header`].
//!
//! Guarantees: accessors never panic, whatever the buffer length (short buffers read as zero;
//! use [`Packet::new_checked`] or [`Packet::header`] to validate). Must not: look at the body.

use super::MAX_BODY_LEN;
use super::messages::MsgType;
use crate::DissectError;

/// Byte offsets of the header fields (PROTOCOL.md §3.1).
pub mod field {
    use core::ops::Range;

    pub const MAGIC: usize = 0;
    /// High nibble: version; low nibble: flags.
    pub const VER_FLAGS: usize = 1;
    pub const MSG_TYPE: Range<usize> = 2..4;
    /// Transaction id; for the media family, the call id (PROTOCOL.md §7.1).
    pub const TXN_ID: Range<usize> = 4..8;
    pub const LENGTH: Range<usize> = 8..10;
    pub const CHECK: Range<usize> = 10..12;
    pub const BODY: usize = 12;
}

/// PROTOCOL.md §3.1: the header is 12 bytes.
pub const HEADER_LEN: usize = 12;
/// PROTOCOL.md §3.1: byte 0 is always 0x53 (ASCII `S`).
pub const MAGIC: u8 = 0x53;
/// PROTOCOL.md §3.1: this specification is version 1.
pub const VERSION: u8 = 1;

/// The four flag bits (PROTOCOL.md §3.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// The message answers the request with the same transaction id.
    pub const RESPONSE: u8 = 0x1;
    /// The response is an error (requires `RESPONSE`); the body carries `error-code`.
    pub const ERROR: u8 = 0x2;
    /// Reserved for the obfuscation layer (PROTOCOL.md §12); must be zero in version 1.
    pub const OBFUSCATED: u8 = 0x4;
    /// Reserved; must be zero.
    pub const RESERVED: u8 = 0x8;

    pub const REQUEST: Flags = Flags(0);
    pub const RESP: Flags = Flags(Self::RESPONSE);
    pub const ERR: Flags = Flags(Self::RESPONSE | Self::ERROR);

    /// Builds flags from the low nibble (higher bits are dropped).
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits & 0x0f)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn is_response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR != 0
    }
    /// Version-1 rule (PROTOCOL.md §3.2): reserved and obfuscation bits clear, and `ERROR`
    /// only together with `RESPONSE`.
    pub const fn is_valid_v1(self) -> bool {
        self.0 & (Self::OBFUSCATED | Self::RESERVED) == 0
            && (self.0 & Self::ERROR == 0 || self.0 & Self::RESPONSE != 0)
    }
    /// The short text form used by test vectors: `Q` (request/notification), `R`, `RE`.
    pub fn as_str(self) -> &'static str {
        match self.0 & (Self::RESPONSE | Self::ERROR) {
            0 => "Q",
            Self::RESPONSE => "R",
            _ => "RE",
        }
    }
}

enum_with_unknown! {
    /// Message family: the high byte of the message type (PROTOCOL.md §3.3). In version 1
    /// the family *is* the traffic class.
    pub enum Family(u8) {
        Login = 0x01,
        Lookup = 0x02,
        Signalling = 0x03,
        Keepalive = 0x04,
        Media = 0x05,
    }
}

/// A validated header (PROTOCOL.md §3.4 rules hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: u8,
    pub flags: Flags,
    pub msg_type: MsgType,
    /// Transaction id; for media messages the call id.
    pub txn_id: u32,
    /// Body length in bytes (header excluded).
    pub body_len: u16,
}

impl Header {
    /// Bytes on the wire: header plus body.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len)
    }

    /// Writes the header, computing the check (PROTOCOL.md §3.1).
    pub fn emit(&self, buf: &mut Vec<u8>) {
        let mut bytes = [0u8; HEADER_LEN];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_magic(MAGIC);
        packet.set_version_flags(self.version, self.flags);
        packet.set_msg_type(self.msg_type);
        packet.set_txn_id(self.txn_id);
        packet.set_body_len(self.body_len);
        packet.fill_check();
        buf.extend_from_slice(&bytes);
    }
}

/// PROTOCOL.md §3.1: the header check is the RFC 1071 ones'-complement sum of the five
/// big-endian 16-bit words at offsets 0..10, complemented. Missing bytes count as zero.
pub fn header_check(first10: &[u8]) -> u16 {
    let mut words = [0u8; 10];
    for (w, b) in words.iter_mut().zip(first10) {
        *w = *b;
    }
    check_of(words)
}

/// [`header_check`] of exactly ten bytes.
fn check_of(first10: [u8; 10]) -> u16 {
    let mut sum: u32 = 0;
    for pair in first10.chunks_exact(2) {
        if let &[hi, lo] = pair {
            sum += u32::from(u16::from_be_bytes([hi, lo]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above leaves sum <= 0xffff, so the cast keeps every bit.
    !(sum as u16)
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    b.get(r)
        .and_then(|s| <[u8; 2]>::try_from(s).ok())
        .map_or(0, u16::from_be_bytes)
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    b.get(r)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Zero-copy accessor over a buffer that starts with a Skylark header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without any check; accessors read missing bytes as zero.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps after checking that a whole header is present.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, DissectError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(DissectError::Truncated {
                needed: HEADER_LEN - len,
            });
        }
        Ok(Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn magic(&self) -> u8 {
        self.bytes().get(field::MAGIC).copied().unwrap_or(0)
    }
    pub fn version(&self) -> u8 {
        self.bytes().get(field::VER_FLAGS).copied().unwrap_or(0) >> 4
    }
    pub fn flags(&self) -> Flags {
        Flags::from_bits(self.bytes().get(field::VER_FLAGS).copied().unwrap_or(0))
    }
    pub fn msg_type(&self) -> MsgType {
        MsgType::from(self.msg_type_raw())
    }
    pub fn msg_type_raw(&self) -> u16 {
        be16(self.bytes(), field::MSG_TYPE)
    }
    pub fn family(&self) -> Family {
        Family::from((self.msg_type_raw() >> 8) as u8)
    }
    pub fn txn_id(&self) -> u32 {
        be32(self.bytes(), field::TXN_ID)
    }
    pub fn body_len(&self) -> u16 {
        be16(self.bytes(), field::LENGTH)
    }
    pub fn check(&self) -> u16 {
        be16(self.bytes(), field::CHECK)
    }
    /// The check the first ten bytes call for.
    pub fn computed_check(&self) -> u16 {
        header_check(self.bytes().get(..field::CHECK.start).unwrap_or(&[]))
    }
    /// Header plus body length, as the header claims.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len())
    }
    /// The body bytes present in the buffer (may be shorter or longer than `body_len`).
    pub fn payload(&self) -> &[u8] {
        self.bytes().get(field::BODY..).unwrap_or(&[])
    }

    /// Validates the header (PROTOCOL.md §3.4, in that order) and returns it.
    pub fn header(&self) -> Result<Header, DissectError> {
        let bytes = self.bytes();
        // The twelve bytes taken apart once (the accessors above each bound-check their
        // own field): this runs for every datagram of a Skylark flow.
        let Some(&[magic, ver_flags, t0, t1, x0, x1, x2, x3, l0, l1, c0, c1]) =
            bytes.first_chunk::<HEADER_LEN>()
        else {
            return Err(DissectError::Truncated {
                needed: HEADER_LEN - bytes.len(),
            });
        };
        if magic != MAGIC {
            return Err(DissectError::Invalid { what: "magic" });
        }
        if ver_flags >> 4 != VERSION {
            return Err(DissectError::Invalid { what: "version" });
        }
        let flags = Flags::from_bits(ver_flags);
        if !flags.is_valid_v1() {
            return Err(DissectError::Invalid { what: "flags" });
        }
        let check = check_of([magic, ver_flags, t0, t1, x0, x1, x2, x3, l0, l1]);
        if u16::from_be_bytes([c0, c1]) != check {
            return Err(DissectError::Invalid {
                what: "header check",
            });
        }
        if Family::from(t0) == Family::Unknown(0) {
            return Err(DissectError::Invalid {
                what: "message family",
            });
        }
        let body_len = u16::from_be_bytes([l0, l1]);
        if usize::from(body_len) > MAX_BODY_LEN {
            return Err(DissectError::TooLarge {
                what: "body length",
                value: u64::from(body_len),
                max: MAX_BODY_LEN as u64,
            });
        }
        Ok(Header {
            version: VERSION,
            flags,
            msg_type: MsgType::from(u16::from_be_bytes([t0, t1])),
            txn_id: u32::from_be_bytes([x0, x1, x2, x3]),
            body_len,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set(&mut self, at: usize, value: &[u8]) {
        if let Some(dst) = self
            .buffer
            .as_mut()
            .get_mut(at..at.saturating_add(value.len()))
        {
            dst.copy_from_slice(value);
        }
    }
    pub fn set_magic(&mut self, magic: u8) {
        self.set(field::MAGIC, &[magic]);
    }
    pub fn set_version_flags(&mut self, version: u8, flags: Flags) {
        self.set(field::VER_FLAGS, &[(version << 4) | flags.bits()]);
    }
    pub fn set_msg_type(&mut self, msg_type: MsgType) {
        self.set(field::MSG_TYPE.start, &u16::from(msg_type).to_be_bytes());
    }
    pub fn set_txn_id(&mut self, txn_id: u32) {
        self.set(field::TXN_ID.start, &txn_id.to_be_bytes());
    }
    pub fn set_body_len(&mut self, len: u16) {
        self.set(field::LENGTH.start, &len.to_be_bytes());
    }
    /// Computes and stores the header check; call after setting the other fields.
    pub fn fill_check(&mut self) {
        let check = self.computed_check();
        self.set(field::CHECK.start, &check.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_makes_the_six_words_sum_to_ffff() {
        let mut b = [0x53, 0x10, 0x03, 0x01, 0, 0, 0, 7, 0, 40, 0, 0];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.fill_check();
        let sum: u32 = b
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(folded, 0xffff);
    }

    #[test]
    fn short_buffer_reads_as_zero_and_header_reports_needed() {
        let p = Packet::new_unchecked(&[0x53u8, 0x10][..]);
        assert_eq!(p.txn_id(), 0);
        assert_eq!(p.header(), Err(DissectError::Truncated { needed: 10 }));
    }

    #[test]
    fn error_flag_without_response_is_invalid() {
        assert!(!Flags::from_bits(Flags::ERROR).is_valid_v1());
        assert!(Flags::ERR.is_valid_v1());
        assert!(!Flags::from_bits(Flags::OBFUSCATED).is_valid_v1());
    }
}
