//! The `detail` column writer shared by every dissector of this crate.

use std::fmt;

/// Bounded, printable writer for `Message::detail`, shared by the dissectors of
/// this crate: every char outside printable ASCII becomes `.`, and output stops
/// at the bound, so the column never carries control bytes or unbounded text.
pub(crate) struct DetailBuf {
    s: String,
    max: usize,
}

impl DetailBuf {
    pub(crate) fn new(max: usize) -> Self {
        DetailBuf {
            s: String::with_capacity(max.min(64)),
            max,
        }
    }

    /// Starts a `key=` field, space-separated from the previous one.
    pub(crate) fn key(&mut self, key: &str) -> &mut Self {
        if !self.s.is_empty() {
            let _ = fmt::Write::write_str(self, " ");
        }
        let _ = fmt::Write::write_str(self, key);
        let _ = fmt::Write::write_str(self, "=");
        self
    }

    /// Appends raw bytes as printable ASCII.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &c in b {
            if self.s.len() >= self.max {
                break;
            }
            self.s.push(printable(c));
        }
        self
    }

    /// Appends literal text (filtered like everything else).
    pub(crate) fn raw(&mut self, s: &str) -> &mut Self {
        let _ = fmt::Write::write_str(self, s);
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.s.is_empty()
    }

    pub(crate) fn display(&mut self, v: impl fmt::Display) -> &mut Self {
        let _ = fmt::write(self, format_args!("{v}"));
        self
    }

    pub(crate) fn finish(self) -> Option<String> {
        (!self.s.is_empty()).then_some(self.s)
    }
}

impl fmt::Write for DetailBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.s.len() >= self.max {
                break;
            }
            let c = if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '.'
            };
            self.s.push(c);
        }
        Ok(())
    }
}

fn printable(c: u8) -> char {
    if (0x20..0x7f).contains(&c) {
        char::from(c)
    } else {
        '.'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_buf_replaces_control_bytes_and_stops_at_bound() {
        let mut d = DetailBuf::new(10);
        d.key("k").bytes(b"a\x01b\r\nccccccccccc");
        assert_eq!(d.finish().as_deref(), Some("k=a.b..ccc"));
    }
}
