//! Capture-clock timestamps: nanoseconds since the Unix epoch, kept at full precision end to
//! end. Nothing in the analyzer reads the wall clock; time comes from the capture.

use std::fmt;

/// A capture timestamp in nanoseconds since 1970-01-01T00:00:00Z (may be negative for
/// pre-epoch clocks; pcapng `if_tsoffset` can produce those).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

impl Ts {
    pub const NANOS_PER_SEC: i64 = 1_000_000_000;

    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Ts {
        Ts(secs
            .saturating_mul(Self::NANOS_PER_SEC)
            .saturating_add(i64::from(nanos)))
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// Signed difference `self - earlier`, in nanoseconds.
    pub fn since(self, earlier: Ts) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn add_nanos(self, nanos: i64) -> Ts {
        Ts(self.0.saturating_add(nanos))
    }

    /// Formats as epoch seconds with `digits` fractional digits (0..=9), truncating —
    /// so a microsecond capture prints 6 digits and a nanosecond capture 9.
    pub fn display(self, digits: u8) -> TsDisplay {
        TsDisplay {
            ts: self,
            digits: digits.min(9),
        }
    }
}

/// Formatter returned by [`Ts::display`].
pub struct TsDisplay {
    ts: Ts,
    digits: u8,
}

impl fmt::Display for TsDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_fixed(f, self.ts.0, self.digits)
    }
}

/// A signed duration in nanoseconds printed as seconds with `digits` fractional digits.
pub struct SecsDisplay {
    pub nanos: i64,
    pub digits: u8,
}

impl fmt::Display for SecsDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_fixed(f, self.nanos, self.digits.min(9))
    }
}

/// A span of `secs` seconds for people: `45.0 s` below 90 s, `12.5 min` below 90 min,
/// else `6.0 h` — so a short capture's span does not read `0.0 h`.
pub fn human_secs(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.1} s")
    } else if secs < 90.0 * 60.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn fmt_fixed(f: &mut fmt::Formatter<'_>, nanos: i64, digits: u8) -> fmt::Result {
    let neg = nanos < 0;
    let abs = nanos.unsigned_abs();
    let secs = abs / 1_000_000_000;
    let frac = abs % 1_000_000_000;
    if neg {
        f.write_str("-")?;
    }
    if digits == 0 {
        return write!(f, "{secs}");
    }
    let scaled = frac / 10u64.pow(9 - u32::from(digits));
    write!(f, "{secs}.{scaled:0width$}", width = usize::from(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_secs_picks_the_unit_a_reader_expects() {
        assert_eq!(human_secs(0.0), "0.0 s");
        assert_eq!(human_secs(89.94), "89.9 s");
        assert_eq!(human_secs(90.0), "1.5 min");
        assert_eq!(human_secs(1806.0), "30.1 min");
        assert_eq!(human_secs(5399.0), "90.0 min");
        assert_eq!(human_secs(5400.0), "1.5 h");
        assert_eq!(human_secs(6.0 * 3600.0), "6.0 h");
    }

    #[test]
    fn prints_capture_precision() {
        let ts = Ts::from_secs_nanos(1_700_000_000, 123_456_789);
        assert_eq!(ts.display(6).to_string(), "1700000000.123456");
        assert_eq!(ts.display(9).to_string(), "1700000000.123456789");
        assert_eq!(ts.display(0).to_string(), "1700000000");
        assert_eq!(Ts(-1_500_000_000).display(3).to_string(), "-1.500");
    }
}
