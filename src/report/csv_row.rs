//! A minimal RFC 4180 row encoder writing straight into a reused byte buffer: fields are
//! quoted only when they contain a comma, quote, CR or LF (quotes doubled), rows end with
//! `\n`. Shared by every CSV report so they all quote the same way.

use std::fmt::{self, Write as _};

/// Builds one CSV row at a time in a reused buffer.
#[derive(Default)]
pub struct CsvRow {
    /// Bytes, not a `String`: every piece pushed is valid UTF-8 already, and ASCII digits
    /// go in without a UTF-8 check per field (a visible cost at millions of rows).
    /// Every field is followed by a comma, which [`Self::end_row`] turns into the line end:
    /// no count of the row's fields to keep and test per field. A field's own text never
    /// ends in a bare comma (a comma makes it quoted), so a trailing one is a separator.
    buf: Vec<u8>,
    scratch: String,
    /// The whole seconds of the last time written, as text: consecutive rows' timestamps
    /// mostly share them, so most times format only their nine fractional digits.
    whole: WholeSecs,
}

/// `value` in decimal: its `len` digits at the start of `text`.
#[derive(Clone, Copy)]
struct WholeSecs {
    value: u64,
    text: [u8; 20],
    len: usize,
}

impl Default for WholeSecs {
    fn default() -> Self {
        WholeSecs::new(0)
    }
}

impl WholeSecs {
    fn new(value: u64) -> WholeSecs {
        let mut text = [b'0'; 20];
        let len = decimal_digits(value);
        if let Some(t) = text.get_mut(..len) {
            write_digits(t, value);
        }
        WholeSecs { value, text, len }
    }
}

impl CsvRow {
    /// Appends a field rendered by `Display`, quoting it if needed.
    pub fn field(&mut self, value: impl fmt::Display) -> &mut Self {
        self.scratch.clear();
        let _ = write!(self.scratch, "{value}");
        if needs_quotes(&self.scratch) {
            push_quoted(&mut self.buf, &self.scratch);
        } else {
            self.buf.extend_from_slice(self.scratch.as_bytes());
        }
        self.end_field()
    }

    /// Appends a string field (quoted if needed) without going through `fmt`.
    #[inline]
    pub fn str(&mut self, value: &str) -> &mut Self {
        if needs_quotes(value) {
            push_quoted(&mut self.buf, value);
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
        self.end_field()
    }

    /// Appends one of the program's own names — a direction, a protocol, a message type from
    /// a dissector's table (`orig`, `skylark`, `nat-ping`, `GET`): letters, digits and
    /// dashes — without looking for characters to quote (a load per byte, on the hottest
    /// report). Debug builds check that claim.
    #[inline]
    pub fn name(&mut self, name: &'static str) -> &mut Self {
        debug_assert!(!needs_quotes(name), "{name:?} needs quoting");
        self.unquoted(name.as_bytes())
    }

    /// Appends a field known to need no quoting, as it is.
    #[inline]
    fn unquoted(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.end_field()
    }

    /// Appends one field made of `parts` joined by `sep` (e.g. `a;b;c`), without building
    /// the joined string unless it needs quoting.
    pub fn joined<S: AsRef<str>>(&mut self, parts: &[S], sep: &str) -> &mut Self {
        if needs_quotes(sep) || parts.iter().any(|p| needs_quotes(p.as_ref())) {
            let all: Vec<&str> = parts.iter().map(AsRef::as_ref).collect();
            return self.str(&all.join(sep));
        }
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                self.buf.extend_from_slice(sep.as_bytes());
            }
            self.buf.extend_from_slice(p.as_ref().as_bytes());
        }
        self.end_field()
    }

    /// Appends fields encoded once by [`Encoded::new`]: the same bytes as pushing them here.
    #[inline]
    pub fn encoded(&mut self, fields: &Encoded) -> &mut Self {
        self.buf.extend_from_slice(&fields.bytes);
        self
    }

    /// Appends an unsigned integer field (the hot path of every report's numeric columns).
    #[inline]
    pub fn uint(&mut self, value: u64) -> &mut Self {
        push_u64(&mut self.buf, value);
        self.end_field()
    }

    /// Appends a flow uid (`C` and 11 base-62 digits: never needs quoting).
    #[inline]
    pub fn uid(&mut self, uid: &crate::flow::UidText) -> &mut Self {
        self.unquoted(uid.as_bytes())
    }

    /// Appends an IP address; IPv4 without `fmt`.
    pub fn ip(&mut self, ip: std::net::IpAddr) -> &mut Self {
        match ip {
            std::net::IpAddr::V4(v4) => {
                push_ipv4(&mut self.buf, v4.octets());
                self.end_field()
            }
            v6 => self.field(v6),
        }
    }

    /// Appends a timestamp as epoch seconds with 9 fractional digits (like
    /// `Ts::display(9)`), without `fmt` for the usual non-negative case.
    pub fn ts9(&mut self, ts: crate::time::Ts) -> &mut Self {
        self.ts(ts, 9)
    }

    /// Appends a timestamp with `digits` fractional digits, truncated like
    /// `Ts::display(digits)`, without `fmt` for the usual non-negative case.
    #[inline]
    pub fn ts(&mut self, ts: crate::time::Ts, digits: u8) -> &mut Self {
        self.secs(ts.as_nanos(), digits)
    }

    /// Appends a duration of `nanos` as seconds with `digits` fractional digits, truncated
    /// like [`crate::time::SecsDisplay`] (the same format as timestamps). Always inlined:
    /// every messages.csv row starts with one (-0.22 % instructions against a call).
    #[inline(always)]
    pub fn secs(&mut self, n: i64, digits: u8) -> &mut Self {
        let digits = digits.min(9);
        if n < 0 {
            return self.field(crate::time::SecsDisplay { nanos: n, digits });
        }
        let n = n.unsigned_abs();
        let whole = n / 1_000_000_000;
        if whole != self.whole.value {
            self.whole = WholeSecs::new(whole);
        }
        // One fixed-size room for the field: the cached whole seconds copied in full (a
        // fixed copy is a few moves, a variable one a `memcpy` call), then the dot and all
        // nine fractional digits, then cut to the first `digits` (truncated, not rounded;
        // dividing by a power of ten chosen at run time would cost a hardware divide), and
        // the field's comma written over the first digit cut (the room has one to spare).
        let (start, w) = (self.buf.len(), self.whole.len);
        self.buf.extend_from_slice(&[0u8; 32]);
        if let Some(whole) = self.buf.get_mut(start..start + 20) {
            whole.copy_from_slice(&self.whole.text);
        }
        if let Some([dot, frac @ ..]) = self.buf.get_mut(start + w..start + w + 10) {
            *dot = b'.';
            write_digits(frac, n % 1_000_000_000);
        }
        let kept = if digits == 0 {
            0
        } else {
            1 + usize::from(digits)
        };
        let end = start + w + kept;
        if let Some(comma) = self.buf.get_mut(end) {
            *comma = b',';
        }
        self.buf.truncate(end + 1);
        self
    }

    /// Appends an optional unsigned integer (empty when `None`). Always inlined: a
    /// messages.csv row has two, and with fat LTO the compiler kept it a call (-0.13 %
    /// instructions inlined).
    #[inline(always)]
    pub fn opt_uint(&mut self, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.uint(v),
            None => self.end_field(),
        }
    }

    #[inline]
    fn end_field(&mut self) -> &mut Self {
        self.buf.push(b',');
        self
    }

    /// Finishes the row (appends the line end) and returns its bytes; the next `field`
    /// starts a new row.
    pub fn finish(&mut self) -> &[u8] {
        self.end_row();
        &self.buf
    }

    /// Finishes the row and keeps it: the next `field` starts a new row after it in the
    /// buffer, so a hot report can gather many rows and write them at once ([`Self::rows`]).
    #[inline]
    pub fn end_row(&mut self) {
        match self.buf.last_mut() {
            Some(last @ b',') => *last = b'\n',
            _ => self.buf.push(b'\n'), // a row without fields
        }
    }

    /// The finished rows gathered since the last [`Self::clear`].
    pub fn rows(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer of finished rows, to be handed over whole (and replaced, e.g. by an empty
    /// one: [`crate::report::file_sink::FileSink::hand_over`]). Only between rows.
    pub fn rows_buf(&mut self) -> &mut Vec<u8> {
        debug_assert_ne!(self.buf.last(), Some(&b','), "a row is unfinished");
        &mut self.buf
    }

    /// Clears the finished row so the buffer can be reused.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Encodes a header row.
    pub fn header(columns: &[&str]) -> Vec<u8> {
        let mut row = CsvRow::default();
        for c in columns {
            row.field(c);
        }
        row.finish().to_vec()
    }
}

/// A run of fields encoded once and appended to many rows ([`CsvRow::encoded`]): for
/// columns that together take one of a handful of values, one copy per row instead of a
/// separator, a quote check and a copy per field.
pub struct Encoded {
    bytes: Vec<u8>,
}

impl Encoded {
    /// Encodes the fields `fill` pushes, exactly as a row would.
    pub fn new(fill: impl FnOnce(&mut CsvRow)) -> Encoded {
        let mut row = CsvRow::default();
        fill(&mut row);
        Encoded { bytes: row.buf }
    }
}

/// Inlined for the numbers most counts in the reports are, a digit or two.
#[inline]
fn push_u64(buf: &mut Vec<u8>, v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
    } else if v < 100 {
        let i = v as usize * 2;
        buf.extend_from_slice(&[DIGIT_PAIRS[i], DIGIT_PAIRS[i + 1]]);
    } else {
        push_long(buf, v);
    }
}

#[inline(never)]
fn push_long(buf: &mut Vec<u8>, v: u64) {
    // Room for the longest number appended as a fixed 20-byte copy, the digits written in
    // place two at a time, then cut: a fixed-size copy is a couple of moves, a variable one
    // a `memcpy` call per field (and digits built on the stack then copied as a block stall
    // on store forwarding).
    let (len, n) = (buf.len(), decimal_digits(v));
    buf.extend_from_slice(&[0u8; 20]);
    if let Some(out) = buf.get_mut(len..len + n) {
        write_digits(out, v);
    }
    buf.truncate(len + n);
}

/// How many decimal digits `v` has (at least one), without a loop: the bit length times
/// log10(2) (1233 / 4096) is the count or one short, and one comparison tells which (a
/// loop over powers of ten mispredicts its exit on numbers of varying length).
fn decimal_digits(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    let guess = (bits * 1233) >> 12;
    let above = v >= POW10.get(guess).copied().unwrap_or(u64::MAX);
    (guess + usize::from(above)).max(1)
}

/// Fills `out` with the last `out.len()` decimal digits of `v`, zero-padded.
fn write_digits(out: &mut [u8], mut v: u64) {
    let mut pairs = out.rchunks_exact_mut(2);
    for pair in &mut pairs {
        let i = (v % 100) as usize * 2;
        pair.copy_from_slice(DIGIT_PAIRS.get(i..i + 2).unwrap_or(b"00"));
        v /= 100;
    }
    if let [d] = pairs.into_remainder() {
        *d = b'0' + (v % 10) as u8;
    }
}

/// Appends `a.b.c.d`: each octet's text (with a dot after it) copied from a table as four
/// fixed bytes into room made once, then the last dot cut.
fn push_ipv4(buf: &mut Vec<u8>, octets: [u8; 4]) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 16]);
    let mut at = start;
    for o in octets {
        let (text, len) = OCTETS[usize::from(o)];
        if let Some(out) = buf.get_mut(at..at + 4) {
            out.copy_from_slice(&text);
        }
        at += len;
    }
    buf.truncate(at - 1);
}

/// Each octet in decimal followed by a dot (`b"7.\0\0"`), and that text's length.
const OCTETS: [([u8; 4], usize); 256] = {
    let mut t = [([0u8; 4], 0usize); 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, u) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u, b'.'], 4)
        } else if i >= 10 {
            ([b'0' + d, b'0' + u, b'.', 0], 3)
        } else {
            ([b'0' + u, b'.', 0, 0], 2)
        };
        i += 1;
    }
    t
};

/// Whether a field must be quoted: it holds a comma, quote, CR or LF.
fn needs_quotes(value: &str) -> bool {
    value.bytes().any(|b| SPECIAL[usize::from(b)])
}

/// `SPECIAL[b]`: byte `b` makes a field need quotes (one load per byte, not four compares).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b',' as usize] = true;
    t[b'"' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// "00" to "99", two bytes each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `POW10[i]` = 10^i.
const POW10: [u64; 20] = {
    let mut p = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// Appends `value` quoted, its quotes doubled (byte-wise: `"` never occurs inside a UTF-8
/// multi-byte sequence).
fn push_quoted(buf: &mut Vec<u8>, value: &str) {
    buf.push(b'"');
    for &b in value.as_bytes() {
        if b == b'"' {
            buf.push(b'"');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed_and_doubles_quotes() {
        let mut row = CsvRow::default();
        row.field("plain")
            .field(42)
            .field("a,b")
            .field("say \"hi\"")
            .field("l1\nl2");
        assert_eq!(
            std::str::from_utf8(row.finish()).unwrap(),
            "plain,42,\"a,b\",\"say \"\"hi\"\"\",\"l1\nl2\"\n"
        );
        row.clear();
        row.field("");
        assert_eq!(row.finish(), b"\n");
    }

    #[test]
    fn joined_equals_str_of_the_joined_text() {
        let cases: [&[&str]; 5] = [&[], &["a"], &["a", "b", "c"], &["a,b", "c"], &["q\"", "x"]];
        for parts in cases {
            let (mut fast, mut slow) = (CsvRow::default(), CsvRow::default());
            fast.uint(1).joined(parts, ";");
            slow.uint(1).str(&parts.join(";"));
            assert_eq!(fast.finish(), slow.finish(), "{parts:?}");
        }
    }

    #[test]
    fn encoded_fields_are_the_bytes_of_pushing_them() {
        let tail = Encoded::new(|r| {
            r.str("a,b").uint(7).str("");
        });
        let empty = Encoded::new(|_| {});
        for before in 0..3 {
            let (mut direct, mut reused) = (CsvRow::default(), CsvRow::default());
            for _ in 0..before {
                direct.str("x");
                reused.str("x");
            }
            direct.str("a,b").uint(7).str("").str("end");
            reused
                .encoded(&empty)
                .encoded(&tail)
                .encoded(&empty)
                .str("end");
            assert_eq!(direct.finish(), reused.finish());
        }
    }

    #[test]
    fn digit_counts_are_exact_at_every_power_of_ten() {
        let mut edges = vec![0, 1, u64::MAX];
        for p in POW10.iter().skip(1) {
            edges.extend([p - 1, *p, p + 1]);
        }
        for v in edges {
            assert_eq!(decimal_digits(v), v.to_string().len(), "{v}");
        }
    }

    proptest::proptest! {
        /// Every integer, of every length, as `Display` writes it.
        #[test]
        fn integers_match_display(v in proptest::prelude::any::<u64>(), shift in 0u32..64) {
            let v = v >> shift;
            let mut row = CsvRow::default();
            row.uint(v).uint(v / 10);
            proptest::prop_assert_eq!(row.finish().to_vec(), format!("{v},{}\n", v / 10).into_bytes());
        }

        /// Every time, at every precision, as `SecsDisplay` writes it (truncated, padded).
        #[test]
        fn seconds_match_display(n in proptest::prelude::any::<i64>(), shift in 0u32..63, digits in 0u8..13) {
            let n = n >> shift;
            let mut row = CsvRow::default();
            row.secs(n, digits);
            let want = crate::time::SecsDisplay { nanos: n, digits: digits.min(9) }.to_string();
            proptest::prop_assert_eq!(row.finish().to_vec(), format!("{want}\n").into_bytes());
        }

        /// Times written one after another into one row, as each is alone: the whole
        /// seconds cached from one never show in the next.
        #[test]
        fn consecutive_seconds_match_display(
            ns in proptest::collection::vec(0i64..4_000_000_000, 1..8),
            big in proptest::prelude::any::<i64>(),
            digits in 0u8..10,
        ) {
            let mut row = CsvRow::default();
            let mut want = Vec::new();
            for n in ns.into_iter().chain([big, 0]) {
                row.secs(n, digits);
                want.push(crate::time::SecsDisplay { nanos: n, digits }.to_string());
            }
            proptest::prop_assert_eq!(row.finish().to_vec(), format!("{}\n", want.join(",")).into_bytes());
        }
    }

    #[test]
    fn every_ipv4_octet_matches_display() {
        use std::net::{IpAddr, Ipv4Addr};
        let (mut a, mut b) = (CsvRow::default(), CsvRow::default());
        for o in 0..=255u8 {
            for ip in [Ipv4Addr::new(o, o, o, o), Ipv4Addr::new(o, 0, 255, o / 3)] {
                a.ip(IpAddr::V4(ip));
                b.field(ip);
            }
        }
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn fast_paths_match_display() {
        use crate::time::Ts;
        use std::net::IpAddr;
        let mut a = CsvRow::default();
        let mut b = CsvRow::default();
        for v in [0u64, 7, 10, 65535, u64::MAX] {
            a.uint(v);
            b.field(v);
        }
        for ip in ["0.0.0.0", "203.0.113.255", "10.1.2.3", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            a.ip(ip);
            b.field(ip);
        }
        for n in [0i64, 5, 1_767_225_600_123_456_789, -1_500_000_000] {
            a.ts9(Ts(n));
            b.field(Ts(n).display(9));
            for digits in [0, 1, 3, 6, 9, 12] {
                a.ts(Ts(n), digits);
                b.field(Ts(n).display(digits));
                a.secs(n, digits);
                b.field(crate::time::SecsDisplay { nanos: n, digits });
            }
        }
        for v in [None, Some(0), Some(u64::MAX)] {
            a.opt_uint(v);
            b.field(v.map(|v| v.to_string()).unwrap_or_default());
        }
        for v in ["plain", "a,b", "q\"uote", ""] {
            a.str(v);
            b.field(v);
        }
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn the_csv_crate_reads_back_what_we_write() {
        let values = ["x", "a,b", "\"q\"", "multi\nline", " spaced ", ""];
        let mut row = CsvRow::default();
        for v in values {
            row.field(v);
        }
        let bytes = row.finish().to_vec();
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        let rec = rd.records().next().unwrap().unwrap();
        assert_eq!(rec.iter().collect::<Vec<_>>(), values);
    }
}
