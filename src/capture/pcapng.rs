//! pcapng pieces the reader needs: block type numbers, the per-interface description (link
//! type, snap length, timestamp resolution and offset) and exact timestamp conversion.
//!
//! Guarantees: timestamps are converted with integer arithmetic only (no `f64`), exact to the
//! nanosecond (truncated below it), saturating instead of overflowing; option parsing never
//! reads past the block body. Must not: do I/O or decide what is fatal (the reader does).

use super::LinkType;
use crate::time::Ts;

/// pcapng spec §4.1: Section Header Block (a palindrome, so readable before the byte order
/// is known).
pub(crate) const BT_SHB: u32 = 0x0A0D_0D0A;
/// §4.2 Interface Description Block.
pub(crate) const BT_IDB: u32 = 0x0000_0001;
/// Appendix: obsolete Packet Block.
pub(crate) const BT_PB: u32 = 0x0000_0002;
/// §4.4 Simple Packet Block.
pub(crate) const BT_SPB: u32 = 0x0000_0003;
/// §4.5 Name Resolution Block.
pub(crate) const BT_NRB: u32 = 0x0000_0004;
/// §4.6 Interface Statistics Block.
pub(crate) const BT_ISB: u32 = 0x0000_0005;
/// §4.3 Enhanced Packet Block.
pub(crate) const BT_EPB: u32 = 0x0000_0006;
/// §4.3: where an Enhanced Packet Block's fields sit in its body (after the block type and
/// length), for the reader, its look-ahead and the writer alike.
pub(crate) mod epb {
    pub(crate) const INTERFACE: usize = 0;
    pub(crate) const TS_HIGH: usize = 4;
    pub(crate) const TS_LOW: usize = 8;
    pub(crate) const CAPLEN: usize = 12;
    pub(crate) const ORIG_LEN: usize = 16;
    /// The frame, after the fixed fields (also their length).
    pub(crate) const DATA: usize = 20;
}
/// §4.7 Decryption Secrets Block.
pub(crate) const BT_DSB: u32 = 0x0000_000A;
/// §4.8 Custom Block, copiable and non-copiable.
pub(crate) const BT_CB_COPY: u32 = 0x0000_0BAD;
pub(crate) const BT_CB_NOCOPY: u32 = 0x4000_0BAD;

/// §4.1: the byte-order magic of a section, as it appears in a big-endian section.
pub(crate) const BYTE_ORDER_MAGIC_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
pub(crate) const BYTE_ORDER_MAGIC_LE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];

/// §4.2 option codes.
pub(crate) const OPT_ENDOFOPT: u16 = 0;
pub(crate) const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// §4.2: without `if_tsresol` timestamps are in microseconds.
const DEFAULT_TSRESOL: u8 = 6;

/// How timestamp units become nanoseconds for one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TsScale {
    /// Units of 10^-n s with n <= 9: multiply.
    Mul(u64),
    /// Units of 10^-n s with n > 9: divide (finer than we keep).
    Div(u128),
    /// Units of 2^-n s.
    Pow2(u32),
    /// Units so fine that every u64 count is below one nanosecond.
    Zero,
}

impl TsScale {
    /// From an `if_tsresol` byte: returns the scale and the fractional decimal digits it
    /// warrants (capped at 9, the resolution of [`Ts`]).
    pub(crate) fn from_tsresol(r: u8) -> (TsScale, u8) {
        let n = u32::from(r & 0x7F);
        if r & 0x80 == 0 {
            if n <= 9 {
                (TsScale::Mul(10u64.pow(9 - n)), n as u8)
            } else {
                match 10u128.checked_pow(n - 9) {
                    Some(d) => (TsScale::Div(d), 9),
                    None => (TsScale::Zero, 9),
                }
            }
        } else {
            // Smallest d with 10^d >= 2^n: enough digits to show every distinct tick.
            let ticks = 1u128 << n; // n <= 127
            let mut d = 0u8;
            let mut t = 1u128;
            while d < 9 && t < ticks {
                t *= 10;
                d += 1;
            }
            (TsScale::Pow2(n), d)
        }
    }

    /// Nanoseconds for `units` ticks, truncated, saturating at `u64::MAX`.
    #[inline]
    pub(crate) fn nanos(self, units: u64) -> u64 {
        let ns: u128 = match self {
            TsScale::Mul(m) => u128::from(units) * u128::from(m),
            TsScale::Div(d) => u128::from(units) / d,
            // units * 10^9 < 2^94, so the product cannot overflow u128.
            TsScale::Pow2(n) => (u128::from(units) * 1_000_000_000) >> n,
            TsScale::Zero => 0,
        };
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One interface of the current section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interface {
    pub(crate) linktype: LinkType,
    /// 0 means "no limit" (§4.2).
    pub(crate) snaplen: u32,
    pub(crate) scale: TsScale,
    /// `if_tsoffset` in nanoseconds.
    pub(crate) offset_ns: i64,
    /// Fractional digits the resolution warrants.
    pub(crate) digits: u8,
}

impl Interface {
    /// Parses an IDB body (after type and length, before the trailing length). `None` when
    /// the body is too short for the fixed fields.
    pub(crate) fn parse(body: &[u8], be: bool) -> Option<Interface> {
        let linktype = u32::from(rd16(body, 0, be)?);
        let snaplen = rd32(body, 4, be)?;
        let mut tsresol = DEFAULT_TSRESOL;
        let mut tsoffset: i64 = 0;
        let opts = body.get(8..).unwrap_or_default();
        let mut off = 0usize;
        // Malformed options end the option list rather than the file: the fixed fields are
        // what frames need, and Wireshark is equally lenient.
        while let (Some(code), Some(len)) = (rd16(opts, off, be), rd16(opts, off + 2, be)) {
            if code == OPT_ENDOFOPT {
                break;
            }
            let len = usize::from(len);
            let Some(val) = opts.get(off + 4..off + 4 + len) else {
                break;
            };
            match (code, val) {
                (OPT_IF_TSRESOL, [r, ..]) => tsresol = *r,
                (OPT_IF_TSOFFSET, v) if v.len() == 8 => {
                    let b: [u8; 8] = v.try_into().ok()?;
                    tsoffset = if be {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            off += 4 + len.next_multiple_of(4);
        }
        let (scale, digits) = TsScale::from_tsresol(tsresol);
        Some(Interface {
            linktype: LinkType(linktype),
            snaplen,
            scale,
            offset_ns: tsoffset.saturating_mul(Ts::NANOS_PER_SEC),
            digits,
        })
    }

    /// The timestamp of a packet whose 64-bit tick count is `high:low`.
    #[inline]
    pub(crate) fn ts(&self, high: u32, low: u32) -> Ts {
        let units = (u64::from(high) << 32) | u64::from(low);
        let ns = i64::try_from(self.scale.nanos(units)).unwrap_or(i64::MAX);
        Ts(ns.saturating_add(self.offset_ns))
    }
}

#[inline(always)]
pub(crate) fn rd32(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    })
}

#[inline(always)]
pub(crate) fn rd16(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let a: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_ten_resolutions_are_exact() {
        assert_eq!(TsScale::from_tsresol(6), (TsScale::Mul(1000), 6));
        assert_eq!(TsScale::from_tsresol(9).0.nanos(123), 123);
        assert_eq!(TsScale::from_tsresol(12).0.nanos(123_456), 123);
        assert_eq!(TsScale::from_tsresol(0).0.nanos(2), 2_000_000_000);
        assert_eq!(TsScale::from_tsresol(127).0.nanos(u64::MAX), 0);
    }

    #[test]
    fn power_of_two_resolution_truncates_to_nanoseconds() {
        let (s, d) = TsScale::from_tsresol(0x80 | 20);
        assert_eq!(d, 7); // 2^20 = 1_048_576 ticks need 7 digits
        assert_eq!(s.nanos(1 << 20), 1_000_000_000);
        assert_eq!(s.nanos(1), 953); // 10^9 / 2^20 = 953.67
        let (s, d) = TsScale::from_tsresol(0x80 | 127);
        assert_eq!(d, 9);
        assert_eq!(s.nanos(u64::MAX), 0);
    }

    #[test]
    fn huge_counts_saturate() {
        assert_eq!(TsScale::from_tsresol(0).0.nanos(u64::MAX), u64::MAX);
    }
}
