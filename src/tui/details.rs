//! The Messages view's details pane (Wireshark's details and bytes panes in one): the
//! selected message's decoded fields as an indented tree, and below it a hex + ASCII dump
//! with the selected field's bytes highlighted.
//!
//! The message's bytes are not kept by the analysis: they are re-extracted from the capture
//! ([`super::payload`]) the first time a message is shown and kept in a [`DetailsCache`]
//! (one message: its bytes and fields), so moving between fields costs nothing.
//!
//! Guarantees: renders into any area, however small, without panicking; the selected field
//! and its bytes are scrolled into view; extraction errors are shown in the pane as one line
//! (nothing is printed). Memory: one message (at most `payload::MAX_MESSAGE_BYTES`) and its
//! at most `dissectors::fields::MAX_FIELDS` fields. Must not: touch the terminal, or hold more
//! than the one message.

use super::payload::{self, MessageQuery};
use crate::time::Ts;
use dissectors::fields::{Field, fields};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use std::net::SocketAddr;
use std::path::PathBuf;

/// A message as the Messages view lists it: enough to find it again in its capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRef {
    pub capture: PathBuf,
    /// The flow's two endpoints (either order).
    pub uid_endpoints: (SocketAddr, SocketAddr),
    /// IP protocol of the flow (6 TCP, 17 UDP).
    pub proto: u8,
    /// The message's sender.
    pub dir_from: SocketAddr,
    /// Capture time of the packet that completed the message.
    pub ts: Ts,
    /// Registry name of the protocol (`skylark`, `stun`, `dns`, `http`, `tls`).
    pub protocol: &'static str,
    pub msg_type: String,
    /// Position among the flow's messages, both directions, in pipeline order.
    pub index_in_flow: usize,
}

/// The last message shown: its bytes and fields, or why they could not be had.
pub struct DetailsCache {
    entry: Option<(MessageRef, State)>,
    /// Captures larger than this are read on a helper thread.
    sync_max_bytes: u64,
}

impl Default for DetailsCache {
    fn default() -> DetailsCache {
        DetailsCache::with_sync_limit(SYNC_EXTRACT_MAX_BYTES)
    }
}

/// Captures up to this size are read on the UI thread (a few milliseconds, and tests see the
/// result at once); from a larger one the message is extracted on a helper thread so keys
/// never wait for the re-read.
pub const SYNC_EXTRACT_MAX_BYTES: u64 = 32 << 20;

enum State {
    Ready(Result<Decoded, String>),
    /// Extraction running on a helper thread.
    Pending(std::sync::mpsc::Receiver<Result<Decoded, String>>),
}

struct Decoded {
    bytes: Vec<u8>,
    cut: bool,
    fields: Vec<Field>,
}

impl DetailsCache {
    /// A cache that extracts on a helper thread from captures larger than `bytes`.
    pub fn with_sync_limit(bytes: u64) -> DetailsCache {
        DetailsCache {
            entry: None,
            sync_max_bytes: bytes,
        }
    }

    /// The decoded message, extracting it when `msg` is not the cached one; `None` while a
    /// helper thread is still extracting it.
    fn get(&mut self, msg: &MessageRef) -> Option<&Result<Decoded, String>> {
        match &mut self.entry {
            Some((m, _)) if m == msg => {}
            slot => *slot = Some((msg.clone(), start(msg, self.sync_max_bytes))),
        }
        let (_, state) = self.entry.as_mut()?;
        if let State::Pending(rx) = state {
            match rx.try_recv() {
                Ok(r) => *state = State::Ready(r),
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    *state = State::Ready(Err("extraction failed".into()))
                }
            }
        }
        match state {
            State::Ready(r) => Some(r),
            State::Pending(_) => None,
        }
    }
}

/// Extracts at once from a small capture, on a helper thread from a large one.
fn start(msg: &MessageRef, sync_max_bytes: u64) -> State {
    let len = std::fs::metadata(&msg.capture).map_or(0, |m| m.len());
    if len <= sync_max_bytes {
        return State::Ready(decode(msg));
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let m = msg.clone();
    let spawned = std::thread::Builder::new()
        .name("p2ptrace-details".into())
        .spawn(move || {
            let _ = tx.send(decode(&m));
        });
    match spawned {
        Ok(_) => State::Pending(rx),
        Err(e) => State::Ready(Err(format!("cannot start the extraction: {e}"))),
    }
}

fn decode(msg: &MessageRef) -> Result<Decoded, String> {
    let q = MessageQuery {
        capture: &msg.capture,
        endpoints: msg.uid_endpoints,
        proto: msg.proto,
        from: msg.dir_from,
        ts: msg.ts,
        protocol: msg.protocol,
        msg_type: &msg.msg_type,
        index_in_flow: msg.index_in_flow,
    };
    let e = payload::extract(&q).map_err(|e| e.to_string())?;
    let fields = fields(msg.protocol, &e.bytes);
    Ok(Decoded {
        bytes: e.bytes,
        cut: e.cut,
        fields,
    })
}

/// Number of fields of `msg` (0 when its bytes cannot be extracted): the selection range.
pub fn field_count(msg: &MessageRef, cache: &mut DetailsCache) -> usize {
    match cache.get(msg) {
        Some(Ok(d)) => d.fields.len(),
        _ => 0,
    }
}

/// Renders the details pane in colour (see [`render_details_styled`]).
pub fn render_details(
    area: Rect,
    buf: &mut Buffer,
    msg: &MessageRef,
    selected_field: usize,
    cache: &mut DetailsCache,
) {
    render_details_styled(area, buf, msg, selected_field, cache, false);
}

/// Renders the details pane: a title line, the field tree (about half the height), a rule
/// naming the selected field's byte range, and the hex dump. `no_color`: reverse video and a
/// `>` marker instead of colours.
pub fn render_details_styled(
    area: Rect,
    buf: &mut Buffer,
    msg: &MessageRef,
    selected_field: usize,
    cache: &mut DetailsCache,
    no_color: bool,
) {
    let area = area.intersection(buf.area);
    if area.is_empty() {
        return;
    }
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            if let Some(c) = buf.cell_mut((x, y)) {
                c.reset();
            }
        }
    }
    let styles = Styles::new(no_color);
    let width = usize::from(area.width);
    let decoded = match cache.get(msg) {
        Some(Ok(d)) => d,
        None => {
            let title = format!("{} {}", msg.protocol, msg.msg_type);
            buf.set_stringn(area.x, area.y, title, width, styles.title);
            if area.height > 1 {
                let line = "extracting the message's bytes from the capture…";
                buf.set_stringn(area.x, area.y + 1, line, width, styles.title);
            }
            return;
        }
        Some(Err(e)) => {
            let title = format!("{} {}", msg.protocol, msg.msg_type);
            buf.set_stringn(area.x, area.y, title, width, styles.title);
            if area.height > 1 {
                let line = format!("bytes unavailable: {e}");
                buf.set_stringn(area.x, area.y + 1, line, width, styles.error);
            }
            return;
        }
    };
    let n = decoded.fields.len();
    let selected = selected_field.min(n.saturating_sub(1));
    let sel = decoded.fields.get(selected);
    let title = format!(
        "{} {} · {} bytes{} · field {}/{}",
        msg.protocol,
        msg.msg_type,
        decoded.bytes.len(),
        if decoded.cut { " (cut)" } else { "" },
        selected + 1,
        n
    );
    buf.set_stringn(area.x, area.y, title, width, styles.title);
    let rest = area.height.saturating_sub(1);
    if rest == 0 {
        return;
    }
    // Tree on top, then a rule, then the bytes; tiny panes get the tree only.
    let (tree_h, hex_h) = if rest < 4 {
        (rest, 0)
    } else {
        let tree = (rest - 1) / 2;
        (tree.max(1), rest - 1 - tree.max(1))
    };
    let tree = Rect::new(area.x, area.y + 1, area.width, tree_h);
    render_tree(tree, buf, &decoded.fields, selected, &styles);
    if hex_h == 0 {
        return;
    }
    let range = sel.map_or(0..0, |f| f.range.clone());
    let rule_y = tree.bottom();
    let label = match sel {
        Some(f) if f.range.is_empty() => format!("── {} (no bytes) ", f.name),
        Some(f) => format!(
            "── {} · bytes {}..{} ({}) ",
            f.name,
            f.range.start,
            f.range.end,
            f.range.len()
        ),
        None => "── bytes ".to_owned(),
    };
    let rule = format!("{label}{}", "─".repeat(width));
    buf.set_stringn(area.x, rule_y, rule, width, styles.rule);
    let hex = Rect::new(area.x, rule_y + 1, area.width, hex_h);
    render_hex(hex, buf, &decoded.bytes, range, &styles);
}

struct Styles {
    title: Style,
    error: Style,
    rule: Style,
    name: Style,
    top_name: Style,
    selected: Style,
    offset: Style,
    hilite: Style,
    marker: bool,
}

impl Styles {
    fn new(no_color: bool) -> Styles {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let rev = Style::default().add_modifier(Modifier::REVERSED);
        if no_color {
            Styles {
                title: bold,
                error: bold,
                rule: Style::default(),
                name: Style::default(),
                top_name: bold,
                selected: rev,
                offset: Style::default(),
                hilite: rev,
                marker: true,
            }
        } else {
            Styles {
                title: bold,
                error: Style::default().fg(Color::Red),
                rule: Style::default().fg(Color::DarkGray),
                name: Style::default().fg(Color::Cyan),
                top_name: bold.fg(Color::Cyan),
                selected: Style::default()
                    .bg(Color::Blue)
                    .fg(Color::White)
                    .add_modifier(Modifier::BOLD),
                offset: Style::default().fg(Color::DarkGray),
                hilite: Style::default().bg(Color::Yellow).fg(Color::Black),
                marker: false,
            }
        }
    }
}

/// First row shown so that `selected` is visible in `rows` rows.
fn scroll(selected: usize, rows: usize) -> usize {
    (selected + 1).saturating_sub(rows)
}

fn render_tree(area: Rect, buf: &mut Buffer, fields: &[Field], selected: usize, s: &Styles) {
    let rows = usize::from(area.height);
    let width = usize::from(area.width);
    let first = scroll(selected, rows);
    for (row, (i, f)) in fields.iter().enumerate().skip(first).take(rows).enumerate() {
        let y = area.y + row as u16;
        let is_sel = i == selected;
        let marker = if s.marker && is_sel { ">" } else { " " };
        let indent = "  ".repeat(usize::from(f.depth).min(8));
        let lead = format!("{marker}{indent}");
        let (x, _) = buf.set_stringn(area.x, y, &lead, width, Style::default());
        let used = usize::from(x - area.x);
        let name_style = if f.depth == 0 { s.top_name } else { s.name };
        let (x, _) = buf.set_stringn(x, y, &f.name, width.saturating_sub(used), name_style);
        let used = usize::from(x - area.x);
        if !f.value.is_empty() {
            let (x, _) = buf.set_stringn(x, y, ": ", width.saturating_sub(used), Style::default());
            let used = usize::from(x - area.x);
            buf.set_stringn(x, y, &f.value, width.saturating_sub(used), Style::default());
        }
        if is_sel {
            buf.set_style(Rect::new(area.x, y, area.width, 1), s.selected);
        }
    }
}

/// Hex + ASCII dump, 16 bytes a line (8 when the pane is narrow), `hilite` bytes marked.
fn render_hex(
    area: Rect,
    buf: &mut Buffer,
    bytes: &[u8],
    hilite: std::ops::Range<usize>,
    s: &Styles,
) {
    let width = usize::from(area.width);
    let per_line = if width >= 6 + 16 * 3 { 16 } else { 8 };
    let ascii_x = 6 + per_line * 3 + 2;
    let show_ascii = width >= ascii_x + per_line;
    let lines = bytes.len().div_ceil(per_line).max(1);
    let rows = usize::from(area.height);
    let first = if hilite.is_empty() {
        scroll(hilite.start / per_line, rows)
    } else {
        let (a, b) = (hilite.start / per_line, (hilite.end - 1) / per_line);
        if b < rows {
            0
        } else if b - a < rows {
            b + 1 - rows
        } else {
            a
        }
    };
    let first = first.min(lines.saturating_sub(rows));
    for row in 0..rows {
        let line = first + row;
        let start = line * per_line;
        if start >= bytes.len() && !(start == 0 && bytes.is_empty()) {
            break;
        }
        let y = area.y + row as u16;
        buf.set_stringn(area.x, y, format!("{start:04x}  "), width, s.offset);
        for (k, b) in bytes.iter().enumerate().skip(start).take(per_line) {
            let col = k - start;
            let style = if hilite.contains(&k) {
                s.hilite
            } else {
                Style::default()
            };
            let hx = 6 + col * 3 + usize::from(col >= 8 && per_line == 16);
            if hx + 2 <= width {
                buf.set_stringn(area.x + hx as u16, y, format!("{b:02x}"), 2, style);
            }
            if show_ascii {
                let c = if (0x20..0x7f).contains(b) {
                    char::from(*b)
                } else {
                    '.'
                };
                let ax = ascii_x + col;
                if ax < width {
                    buf.set_stringn(area.x + ax as u16, y, c.to_string(), 1, style);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::path::Path;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The invite of the one-nat simulation (alice's client → its super node, over TCP).
    fn invite() -> MessageRef {
        MessageRef {
            capture: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("captures/sim/one-nat/capture.pcapng.gz"),
            uid_endpoints: (addr("100.64.0.1:42788"), addr("203.0.113.1:33033")),
            proto: 6,
            dir_from: addr("100.64.0.1:42788"),
            ts: Ts(1_767_225_617_106_907_578),
            protocol: "skylark",
            msg_type: "invite".into(),
            index_in_flow: 8,
        }
    }

    /// A DNS answer of captures/voip-mix.pcap (UDP).
    #[test]
    fn large_captures_are_extracted_off_the_ui_thread() {
        let mut cache = DetailsCache::with_sync_limit(0);
        let msg = invite();
        let area = Rect::new(0, 0, 60, 12);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut buf = Buffer::empty(area);
            render_details(area, &mut buf, &msg, 0, &mut cache);
            let text: String = buf.content().iter().map(|c| c.symbol()).collect();
            if field_count(&msg, &mut cache) > 0 {
                assert!(!text.contains("extracting"), "{text}");
                break;
            }
            assert!(text.contains("extracting"), "pending is said: {text}");
            assert!(std::time::Instant::now() < deadline, "never extracted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn dns_response() -> MessageRef {
        MessageRef {
            capture: Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/voip-mix.pcap"),
            uid_endpoints: (addr("74.242.75.7:48995"), addr("99.28.249.59:53")),
            proto: 17,
            dir_from: addr("99.28.249.59:53"),
            ts: Ts(1_700_000_001_735_310_000),
            protocol: "dns",
            msg_type: "response".into(),
            index_in_flow: 1,
        }
    }

    fn render(
        msg: &MessageRef,
        sel: usize,
        w: u16,
        h: u16,
        no_color: bool,
    ) -> Terminal<TestBackend> {
        let mut cache = DetailsCache::default();
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| {
            let area = f.area();
            render_details_styled(area, f.buffer_mut(), msg, sel, &mut cache, no_color)
        })
        .unwrap();
        t
    }

    fn field_index(msg: &MessageRef, name: &str) -> usize {
        let mut cache = DetailsCache::default();
        let _ = field_count(msg, &mut cache);
        let Some((_, State::Ready(Ok(d)))) = &cache.entry else {
            panic!("not decoded")
        };
        d.fields.iter().position(|f| f.name == name).unwrap()
    }

    #[test]
    fn skylark_invite_details_snapshot() {
        let msg = invite();
        let sel = field_index(&msg, "codecs");
        let t = render(&msg, sel, 80, 14, false);
        insta::assert_snapshot!(t.backend());
        // The codecs object (bytes 46..66) is highlighted in the hex dump: row 0x0020 starts
        // at byte 32, so byte 46 is its 15th column (after the mid-line gap).
        let buf = t.backend().buffer();
        let hx = 6 + 14 * 3 + 1;
        let y = (0..14)
            .find(|&y| buf[(0u16, y)].symbol() == "0" && buf[(2u16, y)].symbol() == "2")
            .unwrap();
        assert_eq!(buf[(hx as u16, y)].bg, Color::Yellow);
        assert_eq!(buf[((hx - 3) as u16, y)].bg, Color::Reset);
    }

    #[test]
    fn dns_response_details_snapshot_without_colour() {
        let msg = dns_response();
        let sel = field_index(&msg, "answer");
        let t = render(&msg, sel, 80, 12, true);
        insta::assert_snapshot!(t.backend());
        let buf = t.backend().buffer();
        let marked = (0..12).any(|y| buf[(0u16, y)].symbol() == ">");
        assert!(marked, "no-colour mode marks the selected field");
    }

    #[test]
    fn selection_far_down_is_scrolled_into_view() {
        let msg = invite();
        let mut cache = DetailsCache::default();
        let n = field_count(&msg, &mut cache);
        assert!(n > 15);
        let t = render(&msg, n - 1, 80, 12, true);
        let text = format!("{}", t.backend());
        assert!(text.contains(">  relay-token: hex:"), "{text}");
        assert!(!text.contains("0010  "), "{text}");
        assert!(text.contains("0060  "), "{text}");
    }

    #[test]
    fn tiny_and_narrow_areas_do_not_panic() {
        let msg = invite();
        for (w, h) in [(1, 1), (10, 3), (40, 12), (60, 5), (200, 60)] {
            for sel in [0, 3, 1000] {
                let _ = render(&msg, sel, w, h, false);
            }
        }
    }

    #[test]
    fn unavailable_bytes_are_one_line_in_the_pane() {
        let mut msg = invite();
        msg.ts = Ts(1);
        let mut cache = DetailsCache::default();
        assert_eq!(field_count(&msg, &mut cache), 0);
        let t = render(&msg, 0, 60, 4, false);
        let text = format!("{}", t.backend());
        assert!(
            text.contains("bytes unavailable: no skylark invite from"),
            "{text}"
        );
    }
}
